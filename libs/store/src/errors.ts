// Typed errors of @cream/store. Each names what it is about (the version, the
// run, the stage, the file, the field) so a service can map it to a gRPC status
// in one place and the caller can act on it: InvalidInputError is
// INVALID_ARGUMENT (its `field` goes to the `cream-field` metadata), the
// *NotFoundError classes NOT_FOUND, the *ExistsError classes ALREADY_EXISTS,
// ManifestMismatchError FAILED_PRECONDITION (the version is refused, never
// served) and StageCorruptError / RunCorruptError DATA_LOSS.

/** Base of every error this library throws on purpose. */
export class StoreError extends Error {
  override name = 'StoreError';
}

/** A name, path, recipe or option is malformed or over a limit; `field` names it, `limit` says the rule. */
export class InvalidInputError extends StoreError {
  override name = 'InvalidInputError';
  constructor(
    message: string,
    /** The offending field, e.g. `version`, `recipe.dataSha256`, `files[2]`. */
    readonly field: string,
    /** The rule or bound that was broken, e.g. 128 (bytes) or `[A-Za-z0-9._-]`. */
    readonly limit: number | string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A publish lost: the version name is already taken (the winner's files are untouched). */
export class VersionExistsError extends StoreError {
  override name = 'VersionExistsError';
  constructor(
    readonly version: string,
    options?: { cause?: unknown },
  ) {
    super(`model version "${version}" already exists; versions are immutable, publish under another name`, options);
  }
}

/** No such version in the registry (or `latest` asked of an empty registry). */
export class VersionNotFoundError extends StoreError {
  override name = 'VersionNotFoundError';
  constructor(
    readonly version: string,
    /** The field that named it, e.g. `version` or `parent`. */
    readonly field: string = 'version',
    options?: { cause?: unknown },
  ) {
    super(`model version "${version}" (${field}) is not in the registry`, options);
  }
}

/** What is wrong with a file compared with its manifest. */
export type MismatchProblem =
  /** Same size, other bytes (a flipped byte). */
  | 'modified'
  /** Other size. */
  | 'size'
  /** In the manifest, not on disk. */
  | 'missing'
  /** On disk, not in the manifest. */
  | 'extra'
  /** A symbolic link, socket or other non-regular file where a file belongs. */
  | 'not-a-file'
  /** The manifest itself cannot be read or parsed. */
  | 'unreadable'
  /** The manifest names another version than its directory. */
  | 'wrong-version'
  /** The manifest's own sha256 differs from the one the caller pinned. */
  | 'manifest-sha256';

/** A version's files do not match its manifest: it is refused, never served. */
export class ManifestMismatchError extends StoreError {
  override name = 'ManifestMismatchError';
  constructor(
    readonly version: string,
    /** Path of the file inside the version directory (posix separators). */
    readonly file: string,
    readonly problem: MismatchProblem,
    /** What the manifest says (a sha256, a size, or `absent`). */
    readonly expected: string,
    /** What is on disk (a sha256, a size, or `absent`). */
    readonly actual: string,
    options?: { cause?: unknown },
  ) {
    super(`model version "${version}" does not match its manifest: ${file} is ${problem} (expected ${expected}, actual ${actual})`, options);
  }
}

/** A run id is already taken. */
export class RunExistsError extends StoreError {
  override name = 'RunExistsError';
  constructor(
    readonly runId: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}" already exists`, options);
  }
}

/** No such run in the run store. */
export class RunNotFoundError extends StoreError {
  override name = 'RunNotFoundError';
  constructor(
    readonly runId: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}" is not in the run store`, options);
  }
}

/** A run's run.json cannot be read or parsed. */
export class RunCorruptError extends StoreError {
  override name = 'RunCorruptError';
  constructor(
    readonly runId: string,
    /** The file at fault, relative to the run folder. */
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}": ${file} cannot be read${options?.cause instanceof Error ? `: ${options.cause.message}` : ''}`, options);
  }
}

/** A stage was written before: a finished stage is never written (or computed) again. */
export class StageExistsError extends StoreError {
  override name = 'StageExistsError';
  constructor(
    readonly runId: string,
    readonly stage: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}": stage "${stage}" is already stored`, options);
  }
}

/** The stage has not been stored (not started, or its writer never committed). */
export class StageNotFoundError extends StoreError {
  override name = 'StageNotFoundError';
  constructor(
    readonly runId: string,
    readonly stage: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}": stage "${stage}" is not stored`, options);
  }
}

/** A stored stage's files do not match its manifest (detected on read). */
export class StageCorruptError extends StoreError {
  override name = 'StageCorruptError';
  constructor(
    readonly runId: string,
    readonly stage: string,
    /** Path of the file inside the stage directory (posix separators). */
    readonly file: string,
    readonly problem: MismatchProblem,
    readonly expected: string,
    readonly actual: string,
    options?: { cause?: unknown },
  ) {
    super(`run "${runId}": stage "${stage}" is corrupt: ${file} is ${problem} (expected ${expected}, actual ${actual})`, options);
  }
}

/** True when `value` is any error of this library. */
export function isStoreError(value: unknown): value is StoreError {
  return value instanceof StoreError;
}

/** True when `value` is an InvalidInputError. */
export function isInvalidInputError(value: unknown): value is InvalidInputError {
  return value instanceof InvalidInputError;
}

/** True when `value` is a VersionExistsError. */
export function isVersionExistsError(value: unknown): value is VersionExistsError {
  return value instanceof VersionExistsError;
}

/** True when `value` is a VersionNotFoundError. */
export function isVersionNotFoundError(value: unknown): value is VersionNotFoundError {
  return value instanceof VersionNotFoundError;
}

/** True when `value` is a ManifestMismatchError. */
export function isManifestMismatchError(value: unknown): value is ManifestMismatchError {
  return value instanceof ManifestMismatchError;
}

/** True when `value` is a RunExistsError. */
export function isRunExistsError(value: unknown): value is RunExistsError {
  return value instanceof RunExistsError;
}

/** True when `value` is a RunNotFoundError. */
export function isRunNotFoundError(value: unknown): value is RunNotFoundError {
  return value instanceof RunNotFoundError;
}

/** True when `value` is a RunCorruptError. */
export function isRunCorruptError(value: unknown): value is RunCorruptError {
  return value instanceof RunCorruptError;
}

/** True when `value` is a StageExistsError. */
export function isStageExistsError(value: unknown): value is StageExistsError {
  return value instanceof StageExistsError;
}

/** True when `value` is a StageNotFoundError. */
export function isStageNotFoundError(value: unknown): value is StageNotFoundError {
  return value instanceof StageNotFoundError;
}

/** True when `value` is a StageCorruptError. */
export function isStageCorruptError(value: unknown): value is StageCorruptError {
  return value instanceof StageCorruptError;
}
