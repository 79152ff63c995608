// Span helpers for cream code: run a piece of work inside an active span so
// that gRPC calls made from it become its children, and so a failure is on
// the span rather than only in a log. They use only @opentelemetry/api, so a
// library may call them whether or not the process started telemetry (without
// it they are no-ops that still run the function).
import { SpanStatusCode, isSpanContextValid, trace, type Attributes, type Span } from '@opentelemetry/api';

/** The instrumentation scope of spans made by these helpers. */
export const tracerName = '@cream/telemetry';

/** The attribute that names a coordinator stage on its span. */
export const stageAttribute = 'cream.stage';

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

function recordFailure(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : String(error);
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
}

/**
 * Runs `fn` inside a new active span named `name`, ends the span when `fn`
 * returns or its promise settles, and on a throw or rejection records the
 * exception, sets ERROR status and rethrows. Returns what `fn` returns.
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => T): T {
  // The tracer is looked up per call: a module-level one would stay bound to
  // whichever provider was registered first.
  return trace.getTracer(tracerName).startActiveSpan(name, { attributes }, (span) => {
    let result: T;
    try {
      result = fn(span);
    } catch (error) {
      recordFailure(span, error);
      span.end();
      throw error;
    }
    if (!isPromiseLike(result)) {
      span.end();
      return result;
    }
    return Promise.resolve(result).then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        recordFailure(span, error);
        span.end();
        throw error;
      },
    ) as T;
  });
}

/** withSpan for a coordinator stage: span `stage <stageName>` with attribute `cream.stage`. */
export function stageSpan<T>(stageName: string, attributes: Attributes, fn: (span: Span) => T): T {
  return withSpan(`stage ${stageName}`, { ...attributes, [stageAttribute]: stageName }, fn);
}

/** The trace id of the active span, or undefined outside a recorded span (or with telemetry off). */
export function currentTraceId(): string | undefined {
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const context = span.spanContext();
  return isSpanContextValid(context) ? context.traceId : undefined;
}
