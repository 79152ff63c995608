// startTelemetry: the decisions it takes from the environment, the no-op
// handle, start-up failures, W3C trace context crossing a real gRPC call, and
// OTLP export to a real gRPC server standing in for a collector.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  TelemetryStateError,
  TraceFileError,
  currentTraceId,
  defaultTraceFile,
  readSpanRecords,
  resolveTelemetryConfig,
  startTelemetry,
  withSpan,
} from './index';
import { bytesUnaryMethod } from './test-programs/bytes-method';
import { cleanEnv, runProgram } from './test-programs/run-program';

const temporaryDirectory = () => mkdtempSync(join(tmpdir(), 'cream-telemetry-'));

describe('resolveTelemetryConfig', () => {
  const cwd = '/srv/cream';

  it('defaults to the file exporter under ./.cream, or CREAM_HOME, or CREAM_TRACE_FILE', () => {
    expect(resolveTelemetryConfig({ serviceName: 'cream-judge', env: {} }, cwd)).toEqual({
      exporterKind: 'file',
      serviceName: 'cream-judge',
      traceFile: '/srv/cream/.cream/traces/spans.jsonl',
      otlpEndpoint: undefined,
    });
    expect(defaultTraceFile({ CREAM_HOME: '/var/lib/cream' }, cwd)).toBe('/var/lib/cream/traces/spans.jsonl');
    expect(defaultTraceFile({ CREAM_HOME: 'home', CREAM_TRACE_FILE: 'here.jsonl' }, cwd)).toBe('/srv/cream/here.jsonl');
    // An explicit traceFile wins over the environment.
    expect(resolveTelemetryConfig({ serviceName: 's', env: { CREAM_TRACE_FILE: '/a.jsonl' }, traceFile: 'b.jsonl' }, cwd).traceFile).toBe('/srv/cream/b.jsonl');
  });

  it('picks OTLP when an endpoint is set, the traces endpoint first; blank values count as unset', () => {
    expect(resolveTelemetryConfig({ serviceName: 's', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' } }, cwd)).toEqual({
      exporterKind: 'otlp',
      serviceName: 's',
      traceFile: undefined,
      otlpEndpoint: 'http://collector:4317',
    });
    const both = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://all:4317', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4317' };
    expect(resolveTelemetryConfig({ serviceName: 's', env: both }, cwd).otlpEndpoint).toBe('http://traces:4317');
    expect(resolveTelemetryConfig({ serviceName: 's', env: { OTEL_EXPORTER_OTLP_ENDPOINT: '  ' } }, cwd).exporterKind).toBe('file');
  });

  it('takes OTEL_SERVICE_NAME over the given name and OTEL_SDK_DISABLED over everything', () => {
    expect(resolveTelemetryConfig({ serviceName: 'cream-judge', env: { OTEL_SERVICE_NAME: 'judge-canary' } }, cwd).serviceName).toBe('judge-canary');
    const disabled = resolveTelemetryConfig({ serviceName: 's', env: { OTEL_SDK_DISABLED: ' TRUE ', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' } }, cwd);
    expect(disabled).toEqual({ exporterKind: 'disabled', serviceName: 's', traceFile: undefined, otlpEndpoint: undefined });
    expect(resolveTelemetryConfig({ serviceName: 's', env: { OTEL_SDK_DISABLED: 'false' } }, cwd).exporterKind).toBe('file');
  });
});

describe('startTelemetry', () => {
  it('with OTEL_SDK_DISABLED=true is a no-op handle: spans run their function, no file appears', async () => {
    const traceFile = join(temporaryDirectory(), 'traces', 'spans.jsonl');
    const telemetry = startTelemetry({ serviceName: 'off', env: { OTEL_SDK_DISABLED: 'true' }, traceFile });
    expect(telemetry.exporterKind).toBe('disabled');
    expect(telemetry.traceFile).toBeUndefined();
    const traceIdInside = await withSpan('ignored', {}, async () => currentTraceId());
    expect(traceIdInside).toBeUndefined();
    await telemetry.flush();
    await telemetry.shutdown();
    expect(existsSync(traceFile)).toBe(false);
    expect(existsSync(join(traceFile, '..'))).toBe(false);
  });

  it('fails at start, naming the path, when the trace file cannot be created', () => {
    const directory = temporaryDirectory();
    writeFileSync(join(directory, 'not-a-directory'), '');
    const traceFile = join(directory, 'not-a-directory', 'spans.jsonl');
    const error = (() => {
      try {
        startTelemetry({ serviceName: 'broken', env: {}, traceFile });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(TraceFileError);
    expect((error as TraceFileError).path).toBe(traceFile);
    expect((error as TraceFileError).message).toContain('CREAM_TRACE_FILE');
    // Nothing was left running: a correct start works right after.
    const telemetry = startTelemetry({ serviceName: 'fine', env: {}, traceFile: join(directory, 'spans.jsonl') });
    return telemetry.shutdown();
  });

  it('reports span export failures to the logger', async () => {
    const traceFile = join(temporaryDirectory(), 'spans.jsonl');
    const errors: string[] = [];
    const telemetry = startTelemetry({ serviceName: 'unlucky', env: {}, traceFile, logger: { warn: () => {}, error: (message) => errors.push(message) } });
    // The file turns into a directory after start: every append now fails.
    rmSync(traceFile);
    mkdirSync(traceFile);
    withSpan('lost', {}, () => undefined);
    await telemetry.flush().catch(() => undefined);
    await telemetry.shutdown();
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/^opentelemetry: .*EISDIR/);
  });

  it('refuses a second start while the first runs, and allows one after shutdown', async () => {
    const directory = temporaryDirectory();
    const first = startTelemetry({ serviceName: 'first', env: {}, traceFile: join(directory, 'a.jsonl') });
    expect(() => startTelemetry({ serviceName: 'second', env: {}, traceFile: join(directory, 'b.jsonl') })).toThrow(TelemetryStateError);
    await first.shutdown();
    await first.shutdown();
    const second = startTelemetry({ serviceName: 'second', env: {}, traceFile: join(directory, 'b.jsonl') });
    withSpan('after restart', {}, () => undefined);
    await second.shutdown();
    expect(readSpanRecords(join(directory, 'b.jsonl')).map((record) => [record.name, record.service])).toEqual([['after restart', 'second']]);
    expect(readSpanRecords(join(directory, 'a.jsonl'))).toEqual([]);
  });
});

describe('trace context across a real gRPC call (child process)', () => {
  it('links the client span, the server span and the caller\'s root span in one trace', async () => {
    const traceFile = join(temporaryDirectory(), 'spans.jsonl');
    const result = await runProgram('grpc-round-trip', [traceFile], cleanEnv({}));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const seen = JSON.parse(result.stdout) as {
      grpcLoadedBeforeStart: boolean;
      warnings: string[];
      logged: string[];
      rootTraceId: string;
      reply: { request: string; traceparent: string | null; serverTraceId: string | null };
    };
    expect(seen.grpcLoadedBeforeStart).toBe(false);
    expect(seen.warnings).toEqual([]);
    expect(seen.logged).toEqual([]);

    const records = readSpanRecords(traceFile);
    const root = records.find((record) => record.name === 'client-root');
    const client = records.find((record) => record.kind === 'CLIENT' && record.name === 'grpc.cream.test.Echo/Echo');
    const server = records.find((record) => record.kind === 'SERVER' && record.name === 'grpc.cream.test.Echo/Echo');
    expect(root && client && server, `spans in ${traceFile}: ${records.map((r) => `${r.kind} ${r.name}`).join(', ')}`).toBeTruthy();
    if (!root || !client || !server) return;

    expect(root.traceId).toBe(seen.rootTraceId);
    expect(root.parentSpanId).toBeNull();
    expect(client.traceId).toBe(root.traceId);
    expect(client.parentSpanId).toBe(root.spanId);
    expect(server.traceId).toBe(root.traceId);
    expect(server.parentSpanId).toBe(client.spanId);
    // What crossed the wire: a W3C traceparent naming the client span, sampled.
    expect(seen.reply.traceparent).toBe(`00-${root.traceId}-${client.spanId}-01`);
    expect(seen.reply.serverTraceId).toBe(root.traceId);
    expect(seen.reply.request).toBe('hello');
    expect(server.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'cream.test.Echo', 'rpc.method': 'Echo', 'rpc.grpc.status_code': 0 });
    expect(client.durationMs).toBeGreaterThanOrEqual(server.durationMs);
    expect(records.every((record) => record.service === 'round-trip')).toBe(true);
  }, 60_000);

  it('warns through the handle when grpc-js was required before startTelemetry', async () => {
    const traceFile = join(temporaryDirectory(), 'spans.jsonl');
    const result = await runProgram('grpc-round-trip', [traceFile, 'grpc-first'], cleanEnv({}));
    expect(result.code).toBe(0);
    const seen = JSON.parse(result.stdout) as { grpcLoadedBeforeStart: boolean; warnings: string[]; logged: string[] };
    expect(seen.grpcLoadedBeforeStart).toBe(true);
    expect(seen.warnings).toHaveLength(1);
    expect(seen.warnings[0]).toMatch(/^@grpc\/grpc-js was loaded before startTelemetry/);
    expect(seen.logged).toEqual([`warn ${seen.warnings[0]}`]);
  }, 60_000);
});

describe('OTLP export (child process, real gRPC server as the collector)', () => {
  it('sends the spans with the service name to OTEL_EXPORTER_OTLP_ENDPOINT and no file', async () => {
    const requests: Buffer[] = [];
    const traceService = { Export: bytesUnaryMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export') };
    const collector = new grpc.Server();
    collector.addService(traceService, {
      // An empty ExportTraceServiceResponse is zero bytes on the wire.
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        requests.push(call.request);
        callback(null, Buffer.alloc(0));
      },
    });
    const port = await new Promise<number>((done, fail) =>
      collector.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? fail(error) : done(bound))),
    );
    const home = temporaryDirectory();
    try {
      const result = await runProgram(
        'write-spans',
        ['3', '0'],
        cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'otlp-writer', CREAM_HOME: home }),
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ exporterKind: 'otlp', traceFile: null });
    } finally {
      collector.forceShutdown();
    }
    const payload = Buffer.concat(requests).toString('latin1');
    // Span names and resource attributes are plain UTF-8 strings in the protobuf.
    expect(payload.split('written-span').length - 1).toBe(3);
    expect(payload).toContain('otlp-writer');
    // The exporter's own Export call is not traced (no span feeding on itself).
    expect(payload).not.toContain('TraceService/Export');
    expect(readdirSync(home)).toEqual([]);
  }, 60_000);
});
