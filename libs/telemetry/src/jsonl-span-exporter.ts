// The local trace file: a SpanExporter that appends one JSON object per
// finished span to a JSONL file. This is a public format (the CLI's latency
// table reads it, and engineers grep and jq it), so change it only by adding
// fields.
//
// One line per span, UTF-8, '\n'-terminated:
//   {
//     "traceId": "32 hex chars",
//     "spanId": "16 hex chars",
//     "parentSpanId": "16 hex chars" | null,          (null for a root span)
//     "name": "stage generate" | "grpc.cream.v1.Generator/Generate" | ...,
//     "kind": "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER",
//     "service": "cream-generator",                  (resource service.name)
//     "startTimeUnixNano": "1732770000123456789",    (decimal string: exceeds 2^53)
//     "endTimeUnixNano": "1732770000223456789",
//     "durationMs": 100.0,                            (float milliseconds)
//     "status": { "code": "UNSET" | "OK" | "ERROR", "message"?: "..." },
//     "attributes": { "cream.stage": "generate", "rpc.method": "Generate", ... },
//     "events": [ { "name": "exception", "timeUnixNano": "...", "attributes": { ... } } ]
//   }
//
// Several processes (every cream service on one machine) append to the same
// file. Each export is one append-mode write of whole lines: with O_APPEND the
// kernel positions and performs the write as one unit, so lines from two
// processes never interleave and no process needs a lock.
import { appendFileSync } from 'node:fs';
import { SpanKind, SpanStatusCode, type Attributes, type HrTime } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** A span kind as written in the file. */
export type SpanKindName = 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';

/** A span status code as written in the file. */
export type SpanStatusName = 'UNSET' | 'OK' | 'ERROR';

/** One event of a span (an exception, a log point) as written in the file. */
export interface SpanEventRecord {
  name: string;
  timeUnixNano: string;
  attributes: Attributes;
}

/** One line of the trace file: a finished span. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: SpanKindName;
  service: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  durationMs: number;
  status: { code: SpanStatusName; message?: string };
  attributes: Attributes;
  events: SpanEventRecord[];
}

const nanosPerSecond = 1_000_000_000n;

/** An OpenTelemetry [seconds, nanoseconds] time as a decimal string of nanoseconds. */
function hrTimeToNanoString([seconds, nanos]: HrTime): string {
  return (BigInt(Math.trunc(seconds)) * nanosPerSecond + BigInt(Math.trunc(nanos))).toString();
}

function hrTimeToMilliseconds([seconds, nanos]: HrTime): number {
  return seconds * 1e3 + nanos / 1e6;
}

/** The file record of a finished span. */
export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const context = span.spanContext();
  const status: SpanRecord['status'] = { code: SpanStatusCode[span.status.code] as SpanStatusName };
  if (span.status.message) status.message = span.status.message;
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    name: span.name,
    kind: SpanKind[span.kind] as SpanKindName,
    service: String(span.resource.attributes['service.name'] ?? 'unknown_service'),
    startTimeUnixNano: hrTimeToNanoString(span.startTime),
    endTimeUnixNano: hrTimeToNanoString(span.endTime),
    durationMs: hrTimeToMilliseconds(span.duration),
    status,
    attributes: { ...span.attributes },
    events: span.events.map((event) => ({
      name: event.name,
      timeUnixNano: hrTimeToNanoString(event.time),
      attributes: { ...(event.attributes ?? {}) },
    })),
  };
}

/** Appends every finished span to a JSONL file (format in this file's header). */
export class JsonlSpanExporter implements SpanExporter {
  private stopped = false;

  constructor(
    /** Absolute path of the trace file; its directory must exist. */
    readonly path: string,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`span exporter for ${this.path} is shut down`) });
      return;
    }
    try {
      const lines = spans.map((span) => JSON.stringify(toSpanRecord(span)) + '\n').join('');
      // One append-mode write per export keeps whole lines together (see header).
      appendFileSync(this.path, lines, { encoding: 'utf8' });
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
  }

  async forceFlush(): Promise<void> {
    // Every export is written synchronously: there is never anything buffered.
  }
}
