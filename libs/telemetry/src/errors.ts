// Typed errors of @cream/telemetry. A trace file that cannot be read or holds
// a line that is not a span record says which file and which line, so the
// engineer can open it there; misuse of the SDK life cycle says what was
// already running.

/** A trace file (JSONL span records) cannot be written, read, or holds a malformed line. */
export class TraceFileError extends Error {
  override name = 'TraceFileError';
  constructor(
    message: string,
    /** The trace file, or undefined when the records came from memory. */
    readonly path: string | undefined,
    /** 1-based line number of the bad record; undefined when the whole file is at fault. */
    readonly line: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** startTelemetry was called while an earlier handle is still running in this process. */
export class TelemetryStateError extends Error {
  override name = 'TelemetryStateError';
  constructor(
    message: string,
    /** The service name of the handle that is still running. */
    readonly runningService: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `value` is a TraceFileError. */
export function isTraceFileError(value: unknown): value is TraceFileError {
  return value instanceof TraceFileError;
}

/** True when `value` is a TelemetryStateError. */
export function isTelemetryStateError(value: unknown): value is TelemetryStateError {
  return value instanceof TelemetryStateError;
}
