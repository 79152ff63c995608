// Typed errors of @cream/compute: backend selection, configuration and the
// native kernels. Each carries the fields a caller needs to act on it.

/** Base of every error this library throws on purpose. */
export class ComputeError extends Error {
  override name = 'ComputeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An environment variable or option holds a value this library does not accept. */
export class ComputeConfigError extends ComputeError {
  override name = 'ComputeConfigError';
  constructor(
    message: string,
    /** The environment variable or option name, e.g. `CREAM_BACKEND`. */
    readonly variable: string,
    /** The rejected value. */
    readonly value: string,
  ) {
    super(message);
  }
}

/** A backend that was required (by CREAM_BACKEND) or needed cannot be used here. */
export class BackendUnavailableError extends ComputeError {
  override name = 'BackendUnavailableError';
  constructor(
    message: string,
    /** The variant that could not be used, e.g. `tfjs-node`. */
    readonly variant: string,
    options?: { cause?: unknown; variable?: string },
  ) {
    super(message, options);
    this.variable = options?.variable;
  }
  /** The variable that asked for it, when one did. */
  readonly variable: string | undefined;
}

/** Operand shapes or buffers that do not fit a GEMM. */
export class GemmShapeError extends ComputeError {
  override name = 'GemmShapeError';
  constructor(
    message: string,
    /** The operand at fault: `a`, `b`, `c`, `bias` or `shape`. */
    readonly operand: string,
  ) {
    super(message);
  }
}

/**
 * The wasm backend's memory cannot hold another tensor: wasm32 addresses at
 * most 4 GiB, and tfjs-backend-wasm would otherwise place the tensor at
 * address 0, over its own data. Nothing was allocated; the backend keeps
 * working, with less at once.
 */
export class WasmMemoryError extends ComputeError {
  override name = 'WasmMemoryError';
  constructor(
    message: string,
    /** Bytes asked for. */
    readonly requestedBytes: number,
    /** The wasm memory's size when it failed, bytes. */
    readonly heapBytes: number,
    /** The most it can grow to, bytes. */
    readonly limitBytes: number,
  ) {
    super(message);
  }
}

/** True when `error` is one of this library's errors. */
export function isComputeError(error: unknown): error is ComputeError {
  return error instanceof ComputeError;
}

/** True when `error` is a rejected configuration value. */
export function isComputeConfigError(error: unknown): error is ComputeConfigError {
  return error instanceof ComputeConfigError;
}

/** True when `error` says a backend cannot be used. */
export function isBackendUnavailableError(error: unknown): error is BackendUnavailableError {
  return error instanceof BackendUnavailableError;
}
