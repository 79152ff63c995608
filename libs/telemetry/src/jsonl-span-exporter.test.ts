// The JSONL trace file as the real SDK pipeline writes it: parent/child links,
// durations, status and exception events, and whole lines when two processes
// append to the same file at once.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSpanRecords, startTelemetry, withSpan, type SpanRecord, type TelemetryHandle } from './index';
import { cleanEnv, runProgram } from './test-programs/run-program';

const sleep = (ms: number) => new Promise((wake) => setTimeout(wake, ms));

function byName(records: SpanRecord[], name: string): SpanRecord {
  const found = records.filter((record) => record.name === name);
  expect(found, `exactly one span named ${name}`).toHaveLength(1);
  return found[0];
}

describe('JsonlSpanExporter through the SDK', () => {
  let telemetry: TelemetryHandle | undefined;
  afterEach(async () => {
    await telemetry?.shutdown();
    telemetry = undefined;
  });

  it('writes one line per span with parent links, times and durations', async () => {
    const traceFile = join(mkdtempSync(join(tmpdir(), 'cream-telemetry-')), 'nested', 'spans.jsonl');
    telemetry = startTelemetry({ serviceName: 'exporter-test', env: {}, traceFile });
    expect(telemetry.exporterKind).toBe('file');
    expect(telemetry.traceFile).toBe(traceFile);

    await withSpan('parent', { 'test.answer': 42 }, async () => {
      await sleep(20);
      await withSpan('child', { 'test.flag': true }, () => sleep(30));
    });
    await telemetry.shutdown();

    const lines = readFileSync(traceFile, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(2);
    const records = readSpanRecords(traceFile);
    const parent = byName(records, 'parent');
    const child = byName(records, 'child');

    expect(parent.parentSpanId).toBeNull();
    expect(child.parentSpanId).toBe(parent.spanId);
    expect(child.traceId).toBe(parent.traceId);
    expect(parent.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(parent.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(parent.kind).toBe('INTERNAL');
    expect(parent.service).toBe('exporter-test');
    expect(parent.status).toEqual({ code: 'UNSET' });
    expect(parent.attributes).toEqual({ 'test.answer': 42 });
    expect(child.attributes).toEqual({ 'test.flag': true });

    // Timers never fire early by more than clock rounding, so these are lower bounds.
    expect(child.durationMs).toBeGreaterThanOrEqual(29);
    expect(parent.durationMs).toBeGreaterThanOrEqual(child.durationMs + 19);
    for (const record of [parent, child]) {
      const nanos = BigInt(record.endTimeUnixNano) - BigInt(record.startTimeUnixNano);
      // End minus start agrees with the duration (start times are millisecond-rounded by the SDK).
      expect(Math.abs(Number(nanos) / 1e6 - record.durationMs)).toBeLessThan(1.5);
    }
    expect(BigInt(child.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(parent.startTimeUnixNano));
    expect(BigInt(child.endTimeUnixNano)).toBeLessThanOrEqual(BigInt(parent.endTimeUnixNano));
  });

  it('appends to an existing file and records a failure as ERROR with an exception event', async () => {
    const traceFile = join(mkdtempSync(join(tmpdir(), 'cream-telemetry-')), 'spans.jsonl');
    telemetry = startTelemetry({ serviceName: 'exporter-test', env: {}, traceFile });
    withSpan('first', {}, () => undefined);
    await telemetry.shutdown();

    telemetry = startTelemetry({ serviceName: 'exporter-test-again', env: {}, traceFile });
    await expect(
      withSpan('failing', {}, async () => {
        throw new RangeError('step out of range');
      }),
    ).rejects.toThrow('step out of range');
    await telemetry.shutdown();

    const records = readSpanRecords(traceFile);
    expect(records.map((record) => record.name)).toEqual(['first', 'failing']);
    const failing = byName(records, 'failing');
    expect(failing.service).toBe('exporter-test-again');
    expect(failing.status).toEqual({ code: 'ERROR', message: 'RangeError: step out of range' });
    expect(failing.events).toHaveLength(1);
    expect(failing.events[0].name).toBe('exception');
    expect(failing.events[0].attributes).toMatchObject({ 'exception.type': 'RangeError', 'exception.message': 'step out of range' });
    expect(BigInt(failing.events[0].timeUnixNano)).toBeGreaterThanOrEqual(BigInt(failing.startTimeUnixNano));
  });
});

describe('two processes appending to one trace file', () => {
  it('never interleave parts of lines', async () => {
    const spansEach = 400;
    // Lines far larger than a pipe buffer (4 KiB): a writer that split a line
    // into several writes would be caught.
    const padBytes = 32 * 1024;
    // Both writers start at a barrier, but on a loaded 2-core machine one can
    // still finish before the other writes: then the file shows nothing about
    // concurrent appends, and the experiment runs again (every attempt's lines
    // are checked whole; at least one attempt must have overlapped).
    let overlapped = false;
    for (let attempt = 0; attempt < 4 && !overlapped; attempt++) {
      const directory = mkdtempSync(join(tmpdir(), 'cream-telemetry-'));
      const traceFile = join(directory, 'spans.jsonl');
      const writers = ['writer-a', 'writer-b'].map((service) =>
        runProgram('write-spans', [String(spansEach), String(padBytes), directory, '2'], cleanEnv({ CREAM_TRACE_FILE: traceFile, OTEL_SERVICE_NAME: service })),
      );
      const results = await Promise.all(writers);
      for (const result of results) {
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        expect(JSON.parse(result.stdout)).toEqual({ exporterKind: 'file', traceFile });
      }

      const records = readSpanRecords(traceFile);
      expect(records).toHaveLength(2 * spansEach);
      for (const service of ['writer-a', 'writer-b']) {
        const mine = records.filter((record) => record.service === service);
        expect(mine.map((record) => record.attributes.index)).toEqual([...Array(spansEach).keys()]);
        expect(mine.every((record) => record.attributes.padding === 'x'.repeat(padBytes))).toBe(true);
      }
      // The writers overlapped in time when the file switches between them more than once.
      const switches = records.filter((record, index) => index > 0 && record.service !== records[index - 1].service).length;
      overlapped = switches > 1;
    }
    expect(overlapped, 'the two writers never appended at the same time in 4 attempts').toBe(true);
  }, 240_000);
});
