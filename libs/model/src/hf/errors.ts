// Typed errors of the Hugging Face checkpoint I/O: safetensors files, checkpoint
// directories and tokenizers. Each names the file (and tensor) at fault so the
// message alone tells an operator what to fix; a service maps them all to
// FAILED_PRECONDITION or INVALID_ARGUMENT. Tensors that disagree with the config
// (wrong shape, missing, unexpected) are the package's ModelWeightsError, and a
// bad config.json field is its ModelConfigError (../errors).

/** What is wrong with a safetensors file or a sharded index. */
export type SafetensorsErrorKind =
  /** The file ends before the data its header describes (or before the header itself). */
  | 'truncated'
  /** The 8-byte header length points past the end of the file, or past the 100 MB cap. */
  | 'header-overflow'
  /** The JSON header is not valid JSON or not the documented shape. */
  | 'bad-header'
  /** Tensor byte ranges overlap, leave holes, or do not cover the data section. */
  | 'bad-offsets'
  /** A tensor's byte range does not hold shape × dtype size bytes. */
  | 'size-mismatch'
  /** model.safetensors.index.json is malformed or disagrees with its shards. */
  | 'bad-index';

/** A safetensors file or shard index that cannot be read as the format defines it. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    message: string,
    /** The category of fault, for callers that branch on it. */
    readonly kind: SafetensorsErrorKind,
    /** The file at fault. */
    readonly file: string,
    options?: { tensor?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.tensor = options?.tensor;
  }
  /** The tensor at fault, when the fault is in one tensor's entry. */
  readonly tensor: string | undefined;
}

/** A tensor stored in a dtype this library cannot read (or a dtype name the format does not define). */
export class UnsupportedDtypeError extends Error {
  override name = 'UnsupportedDtypeError';
  constructor(
    message: string,
    /** The dtype as written in the file, e.g. `I8` or `F8_E4M3`. */
    readonly dtype: string,
    /** The file holding the tensor. */
    readonly file: string,
    /** The tensor stored in that dtype. */
    readonly tensor: string,
  ) {
    super(message);
  }
}

/** What is wrong with a checkpoint directory as a whole. */
export type CheckpointErrorKind =
  /** A required file (config.json, weights, tokenizer.json) is absent. */
  | 'missing-file'
  /** A JSON file does not parse, or is not an object. */
  | 'malformed-json'
  /** The checkpoint uses something this engine does not run (quantization, a .bin-only checkpoint). */
  | 'unsupported'
  /** The destination of a save already exists and overwriting was not asked for. */
  | 'exists';

/** A checkpoint directory that cannot be loaded or saved as asked. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    message: string,
    /** The category of fault. */
    readonly kind: CheckpointErrorKind,
    /** The file (or directory) at fault. */
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What is wrong with a tokenizer or its chat template. */
export type TokenizerErrorKind =
  /** tokenizer.json / tokenizer_config.json cannot be built into a tokenizer. */
  | 'malformed'
  /** No chat template is configured, or the named one does not exist. */
  | 'no-chat-template'
  /** The chat template failed to parse or to render (including its own raise_exception). */
  | 'template'
  /** Options to a tokenizer helper are out of range. */
  | 'invalid-argument';

/** A tokenizer that cannot be built, or a chat template that cannot be applied. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
  constructor(
    message: string,
    /** The category of fault. */
    readonly kind: TokenizerErrorKind,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `error` is a SafetensorsError. */
export function isSafetensorsError(error: unknown): error is SafetensorsError {
  return error instanceof SafetensorsError;
}

/** True when `error` is an UnsupportedDtypeError. */
export function isUnsupportedDtypeError(error: unknown): error is UnsupportedDtypeError {
  return error instanceof UnsupportedDtypeError;
}

/** True when `error` is a CheckpointError. */
export function isCheckpointError(error: unknown): error is CheckpointError {
  return error instanceof CheckpointError;
}

/** True when `error` is a TokenizerError. */
export function isTokenizerError(error: unknown): error is TokenizerError {
  return error instanceof TokenizerError;
}
