// Public surface of @cream/telemetry: OpenTelemetry start-up for cream
// processes (call startTelemetry before grpc-js loads), span helpers, and the
// local JSONL trace file with its latency table.

/** Starts the OpenTelemetry SDK with gRPC instrumentation; MUST run before @grpc/grpc-js is required. */
export {
  startTelemetry,
  resolveTelemetryConfig,
  defaultTraceFile,
  defaultIgnoredGrpcMethods,
  type TelemetryOptions,
  type TelemetryHandle,
  type TelemetryConfig,
  type TelemetryLogger,
  type ExporterKind,
  type Environment,
} from './start-telemetry';
/** Run work inside an active span (errors recorded), name coordinator stages, read the active trace id. */
export { withSpan, stageSpan, currentTraceId, stageAttribute, tracerName } from './span-helpers';
/** The JSONL trace file: its record format and the exporter that appends to it. */
export { JsonlSpanExporter, toSpanRecord, type SpanRecord, type SpanEventRecord, type SpanKindName, type SpanStatusName } from './jsonl-span-exporter';
/** Reads and checks the span records of a trace file (or of its lines). */
export { readSpanRecords, type SpanSource } from './trace-file';
/** Latency per span name and kind, and its printable table. */
export { summarizeSpans, formatLatencyTable, percentile, type LatencyRow, type SummaryFilter } from './latency-summary';
/** Typed errors and their guards. */
export { TraceFileError, TelemetryStateError, isTraceFileError, isTelemetryStateError } from './errors';
/** The span type the helpers pass to their function. */
export type { Span, Attributes } from '@opentelemetry/api';
