// Typed errors of the CREAM method library. A service maps InvalidScoresError
// to INVALID_ARGUMENT; its `field` is the proto field path of the bad value
// (as in cream/v1/consistency.proto), so the caller can find it.

/** A score set given to compareScoreSets is malformed or over a limit. */
export class InvalidScoresError extends Error {
  override name = 'InvalidScoresError';
  /** Proto field path of the offending value, e.g. `current[3].scores[2]`. */
  readonly field: string;
  /** The limit that was exceeded, when the error is about a limit. */
  readonly limit: number | undefined;

  constructor(message: string, field: string, options?: { limit?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = field;
    this.limit = options?.limit;
  }
}

/** True when `error` is an InvalidScoresError. */
export function isInvalidScoresError(error: unknown): error is InvalidScoresError {
  return error instanceof InvalidScoresError;
}
