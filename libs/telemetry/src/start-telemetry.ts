// OpenTelemetry start-up for a cream process.
//
// !!! startTelemetry MUST run before anything requires @grpc/grpc-js. !!!
// The gRPC instrumentation works by patching grpc-js as it is required; code
// that got hold of grpc-js earlier (an import of @cream/service-kit or
// @cream/proto at the top of main.ts) makes calls that carry no trace context
// and produce no spans. So a service's main.ts imports only @cream/telemetry
// at the top, calls startTelemetry first, and requires the rest after it
// (apps/consistency-scorer/src/main.ts shows the pattern). When grpc-js is
// already loaded, the handle's `warnings` say so and the logger is told.
//
// Where spans go: OTLP over gRPC when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT is set (a cluster with a collector), batched;
// otherwise the local JSONL trace file (jsonl-span-exporter.ts), written span
// by span so a crash loses nothing; OTEL_SDK_DISABLED=true turns it all off.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { DiagLogLevel, context, diag, propagation, trace, type DiagLogger } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TelemetryStateError, TraceFileError } from './errors';
import { JsonlSpanExporter } from './jsonl-span-exporter';

/** Environment variables, as in process.env. */
export type Environment = Record<string, string | undefined>;

/** Where telemetry reports its own problems; a cream service-kit Logger fits. */
export interface TelemetryLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Options of startTelemetry. */
export interface TelemetryOptions {
  /** resource service.name, e.g. "cream-generator"; OTEL_SERVICE_NAME overrides it. */
  serviceName: string;
  /** Environment to read OTEL_* and CREAM_* from; process.env when absent. */
  env?: Environment;
  /** The JSONL trace file; else CREAM_TRACE_FILE, else <CREAM_HOME or ./.cream>/traces/spans.jsonl. */
  traceFile?: string;
  /** Receives warnings (grpc-js loaded too early) and OpenTelemetry's own warnings and errors. */
  logger?: TelemetryLogger;
  /**
   * gRPC method names (the part after the last '/') that make no spans.
   * Default: the health and reflection methods that probes and `cream up`
   * call every few seconds, which would otherwise flood the trace file.
   */
  ignoreGrpcMethods?: readonly string[];
}

/** Where spans are exported. */
export type ExporterKind = 'otlp' | 'file' | 'disabled';

/** What startTelemetry decided from its options and the environment. */
export interface TelemetryConfig {
  exporterKind: ExporterKind;
  serviceName: string;
  /** Absolute path of the JSONL trace file when exporterKind is 'file'. */
  traceFile: string | undefined;
  /** The OTLP gRPC endpoint when exporterKind is 'otlp'. */
  otlpEndpoint: string | undefined;
}

/** A started (or disabled) telemetry set-up. */
export interface TelemetryHandle extends TelemetryConfig {
  /** Problems found at start, e.g. grpc-js loaded before startTelemetry. */
  readonly warnings: readonly string[];
  /** Exports every span that has ended so far. */
  flush(): Promise<void>;
  /** Flushes and stops the SDK, returning the process to no-op tracing; safe to call more than once. */
  shutdown(): Promise<void>;
}

/** Methods left untraced by default: grpc.health.v1 Check/Watch and reflection. */
export const defaultIgnoredGrpcMethods: readonly string[] = ['Check', 'Watch', 'ServerReflectionInfo'];

/** An environment value with surrounding blanks removed; empty counts as unset (as Kubernetes manifests often leave it). */
function envValue(env: Environment, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** OpenTelemetry's boolean environment values: "true" in any case, blanks ignored. */
function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === 'true';
}

/** The default trace file: CREAM_TRACE_FILE, else <CREAM_HOME or ./.cream>/traces/spans.jsonl, absolute. */
export function defaultTraceFile(env: Environment, cwd: string = process.cwd()): string {
  const explicit = envValue(env, 'CREAM_TRACE_FILE');
  if (explicit) return resolve(cwd, explicit);
  return resolve(cwd, envValue(env, 'CREAM_HOME') ?? '.cream', 'traces', 'spans.jsonl');
}

/** Decides exporter, service name and destination from options and environment, touching nothing. */
export function resolveTelemetryConfig(options: TelemetryOptions, cwd: string = process.cwd()): TelemetryConfig {
  const env = options.env ?? process.env;
  const serviceName = envValue(env, 'OTEL_SERVICE_NAME') ?? options.serviceName;
  if (isTrue(env.OTEL_SDK_DISABLED)) {
    return { exporterKind: 'disabled', serviceName, traceFile: undefined, otlpEndpoint: undefined };
  }
  const otlpEndpoint = envValue(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? envValue(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (otlpEndpoint) return { exporterKind: 'otlp', serviceName, traceFile: undefined, otlpEndpoint };
  const traceFile = options.traceFile ? resolve(cwd, options.traceFile) : defaultTraceFile(env, cwd);
  return { exporterKind: 'file', serviceName, traceFile, otlpEndpoint: undefined };
}

/** Files of @grpc/grpc-js already in the CommonJS module cache. */
function loadedGrpcJsFiles(): string[] {
  const marker = `${sep}@grpc${sep}grpc-js${sep}`;
  return Object.keys(require.cache).filter((file) => file.includes(marker));
}

/** Creates the trace file's directory and checks the file can be opened for appending, failing at start rather than per span. */
function prepareTraceFile(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    closeSync(openSync(path, 'a'));
  } catch (error) {
    throw new TraceFileError(
      `cannot open trace file ${path} for appending: ${(error as Error).message} (set CREAM_TRACE_FILE to a writable path, OTEL_EXPORTER_OTLP_ENDPOINT to export to a collector, or OTEL_SDK_DISABLED=true)`,
      path,
      undefined,
      { cause: error },
    );
  }
}

/** OpenTelemetry's internal diagnostics (export failures, misconfiguration) routed to the caller's logger. */
function diagLogger(logger: TelemetryLogger): DiagLogger {
  const forward = (level: 'warn' | 'error') => (message: string, ...args: unknown[]) =>
    logger[level](`opentelemetry: ${message}`, args.length > 0 ? { details: args.map((arg) => (arg instanceof Error ? arg.message : arg)) } : undefined);
  const ignore = () => {};
  return { error: forward('error'), warn: forward('warn'), info: ignore, debug: ignore, verbose: ignore };
}

function disabledHandle(config: TelemetryConfig): TelemetryHandle {
  return { ...config, warnings: [], flush: async () => {}, shutdown: async () => {} };
}

/** The service name of the handle running in this process, if any. */
let runningService: string | undefined;

/**
 * Starts OpenTelemetry for this process: the NodeSDK with the gRPC
 * instrumentation, W3C trace-context and baggage propagation, and the OTLP
 * or file exporter (see this file's header). MUST be called before
 * @grpc/grpc-js is first required. Throws TraceFileError when the trace file
 * cannot be opened, TelemetryStateError when telemetry already runs here.
 */
export function startTelemetry(options: TelemetryOptions): TelemetryHandle {
  let config = resolveTelemetryConfig(options);
  // The NodeSDK reads OTEL_SDK_DISABLED from process.env whatever `env` says;
  // honour it here too so the handle never claims an exporter that is off.
  if (config.exporterKind !== 'disabled' && isTrue(process.env.OTEL_SDK_DISABLED)) {
    config = { exporterKind: 'disabled', serviceName: config.serviceName, traceFile: undefined, otlpEndpoint: undefined };
  }
  if (config.exporterKind === 'disabled') return disabledHandle(config);
  if (runningService !== undefined) {
    throw new TelemetryStateError(`telemetry already runs in this process for ${runningService}; shut that handle down first`, runningService);
  }
  const env = options.env ?? process.env;
  const warnings: string[] = [];
  const grpcFiles = loadedGrpcJsFiles();
  if (grpcFiles.length > 0) {
    warnings.push(
      `@grpc/grpc-js was loaded before startTelemetry (${grpcFiles.length} files in require.cache): calls through code that already holds it may carry no trace context and make no spans; call startTelemetry before importing anything that imports grpc-js`,
    );
  }
  const protocol = envValue(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? envValue(env, 'OTEL_EXPORTER_OTLP_PROTOCOL');
  if (config.exporterKind === 'otlp' && protocol !== undefined && protocol !== 'grpc') {
    warnings.push(`OTLP protocol "${protocol}" is not used: cream exports traces with OTLP over gRPC to ${config.otlpEndpoint}`);
  }
  if (config.traceFile !== undefined) prepareTraceFile(config.traceFile);

  // The SDK is required here rather than imported at the top: processes that
  // only use the span helpers or read trace files (the CLI's latency table)
  // never pay for loading it.
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded on start on purpose, see above */
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { BatchSpanProcessor, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  let processor: SpanProcessor;
  if (config.exporterKind === 'otlp') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc') as typeof import('@opentelemetry/exporter-trace-otlp-grpc');
    processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlpEndpoint }));
  } else {
    processor = new SimpleSpanProcessor(new JsonlSpanExporter(config.traceFile as string));
  }
  /* eslint-enable @typescript-eslint/no-require-imports */

  const grpcInstrumentation = new GrpcInstrumentation({ ignoreGrpcMethods: [...(options.ignoreGrpcMethods ?? defaultIgnoredGrpcMethods)] });
  const sdk = new NodeSDK({
    serviceName: config.serviceName,
    spanProcessors: [processor],
    instrumentations: [grpcInstrumentation],
    textMapPropagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    // Traces only: without these the SDK would start OTLP metric and log
    // exporters towards localhost by default.
    metricReaders: [],
    logRecordProcessors: [],
  });
  // OTEL_LOG_LEVEL is an explicit request for OpenTelemetry's console
  // diagnostics (the SDK sets them up), so the logger only takes over without it.
  const routeDiagnostics = options.logger !== undefined && process.env.OTEL_LOG_LEVEL === undefined;
  if (routeDiagnostics && options.logger) diag.setLogger(diagLogger(options.logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  sdk.start();
  runningService = config.serviceName;
  for (const warning of warnings) options.logger?.warn(warning, { service: config.serviceName });

  let stopping: Promise<void> | undefined;
  const shutdown = async () => {
    try {
      // Flush first: shutting the simple processor down does not wait for
      // exports still waiting on async resource attributes, so they would be
      // dropped.
      await processor.forceFlush();
      await sdk.shutdown();
    } finally {
      // Unregister everything so a later startTelemetry in this process (a
      // test, an embedded run) starts from a clean API.
      grpcInstrumentation.disable();
      trace.disable();
      context.disable();
      propagation.disable();
      if (routeDiagnostics) diag.disable();
      runningService = undefined;
    }
  };
  return {
    ...config,
    warnings,
    flush: () => processor.forceFlush(),
    shutdown: () => (stopping ??= shutdown()),
  };
}
