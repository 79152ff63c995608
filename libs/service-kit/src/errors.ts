// Typed service errors and their mapping to gRPC status codes: the one place
// where an error becomes a status. Handlers throw these (or library errors
// that the service registers in its error map); clients see the code and a
// message that names the field and the limit.
import { status as GrpcStatus, Metadata, type ServiceError as GrpcServiceError } from '@grpc/grpc-js';

/** Base of every error a handler may throw on purpose. */
export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    message: string,
    readonly code: GrpcStatus,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The request is malformed; `field` is the proto field path (e.g. `current[2].scores[0]`). */
export class InvalidArgumentError extends ServiceError {
  override name = 'InvalidArgumentError';
  constructor(
    message: string,
    readonly field: string,
    options?: { cause?: unknown; limit?: number | string },
  ) {
    super(message, GrpcStatus.INVALID_ARGUMENT, options);
    this.limit = options?.limit;
  }
  readonly limit: number | string | undefined;
}

/** A named resource (a model version, a run, a job) does not exist. */
export class NotFoundError extends ServiceError {
  override name = 'NotFoundError';
  constructor(
    message: string,
    readonly resource: string,
    options?: { cause?: unknown },
  ) {
    super(message, GrpcStatus.NOT_FOUND, options);
  }
}

/** The system is not in the state the call needs (e.g. a pinned version is not loaded). */
export class FailedPreconditionError extends ServiceError {
  override name = 'FailedPreconditionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, GrpcStatus.FAILED_PRECONDITION, options);
  }
}

/** A capacity limit is reached (a job already runs, a memory budget is full). */
export class ResourceExhaustedError extends ServiceError {
  override name = 'ResourceExhaustedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, GrpcStatus.RESOURCE_EXHAUSTED, options);
  }
}

/** The service cannot serve now (no model loaded, shutting down); retry later. */
export class UnavailableError extends ServiceError {
  override name = 'UnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, GrpcStatus.UNAVAILABLE, options);
  }
}

/** Configuration is invalid at start; names the flag or environment variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly variable: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Maps a library's error class to a status code, registered by the service that uses the library. */
export interface ErrorMapping {
  /** Does this mapping apply to the error? */
  matches(error: unknown): boolean;
  /** The status code for it. */
  code: GrpcStatus;
}

/** An ErrorMapping for every instance of a class. */
export function mapErrorClass(errorClass: abstract new (...args: never[]) => Error, code: GrpcStatus): ErrorMapping {
  return { matches: (error) => error instanceof errorClass, code };
}

/** The status a thrown value becomes; unknown errors are INTERNAL (their message kept, never their stack). */
export function toStatus(error: unknown, mappings: readonly ErrorMapping[] = []): Partial<GrpcServiceError> {
  const metadata = new Metadata();
  if (error instanceof ServiceError) {
    if (error instanceof InvalidArgumentError) metadata.set('cream-field', error.field);
    return { code: error.code, details: error.message, metadata };
  }
  const message = error instanceof Error ? error.message : String(error);
  for (const mapping of mappings) {
    if (mapping.matches(error)) {
      const field = (error as { field?: unknown }).field;
      if (typeof field === 'string') metadata.set('cream-field', field);
      return { code: mapping.code, details: message, metadata };
    }
  }
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, metadata };
}

/** True when a status is a server fault worth logging as an error (not a caller's mistake). */
export function isServerFault(code: GrpcStatus | undefined): boolean {
  return code === GrpcStatus.INTERNAL || code === GrpcStatus.UNKNOWN || code === GrpcStatus.DATA_LOSS;
}
