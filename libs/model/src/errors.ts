// Typed errors of the model library. Each carries the domain fields a caller
// needs to report the problem (the config field, the tensor name, the token id,
// the length and its limit); a service maps all of them to INVALID_ARGUMENT
// except ModelWeightsError, which means the model itself is broken.

/** A model configuration (ours or a Hugging Face config.json) is missing a field, malformed or unsupported. */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
  /** The offending field, as named in the input (e.g. `num_key_value_heads` or `nKvHeads`). */
  readonly field: string | undefined;

  constructor(message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = field;
  }
}

/** A weight tensor is missing, unexpected, of the wrong shape or dtype, or its variable name is taken. */
export class ModelWeightsError extends Error {
  override name = 'ModelWeightsError';
  /** Hugging Face name of the tensor, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly tensorName: string | undefined;
  /** The shape the config implies, when the error is about a shape. */
  readonly expectedShape: readonly number[] | undefined;
  /** The shape that was given, when the error is about a shape. */
  readonly actualShape: readonly number[] | undefined;

  constructor(
    message: string,
    tensorName?: string,
    options?: { expectedShape?: readonly number[]; actualShape?: readonly number[]; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.tensorName = tensorName;
    this.expectedShape = options?.expectedShape;
    this.actualShape = options?.actualShape;
  }
}

/** A sequence does not fit the model's context (maxPositionEmbeddings). */
export class ContextLengthError extends Error {
  override name = 'ContextLengthError';
  /** Tokens the sequence needs. */
  readonly length: number;
  /** The model's limit (maxPositionEmbeddings). */
  readonly limit: number;
  /** Index of the offending item or row in the caller's batch. */
  readonly index: number | undefined;

  constructor(message: string, length: number, limit: number, index?: number) {
    super(message);
    this.length = length;
    this.limit = limit;
    this.index = index;
  }
}

/** A token id is not an integer in [0, vocabSize). */
export class TokenIdError extends Error {
  override name = 'TokenIdError';
  /** The offending value. */
  readonly tokenId: number;
  /** The model's vocabulary size. */
  readonly vocabSize: number;
  /** Index of the offending item or row in the caller's batch. */
  readonly index: number | undefined;

  constructor(message: string, tokenId: number, vocabSize: number, index?: number) {
    super(message);
    this.tokenId = tokenId;
    this.vocabSize = vocabSize;
    this.index = index;
  }
}

/** An option or argument of forward, generate or scoreResponses is out of its range. */
export class InvalidOptionError extends Error {
  override name = 'InvalidOptionError';
  /** Name of the option, e.g. `topP`. */
  readonly option: string;

  constructor(message: string, option: string) {
    super(message);
    this.option = option;
  }
}

/** True when `error` is a ModelConfigError. */
export function isModelConfigError(error: unknown): error is ModelConfigError {
  return error instanceof ModelConfigError;
}

/** True when `error` is a ModelWeightsError. */
export function isModelWeightsError(error: unknown): error is ModelWeightsError {
  return error instanceof ModelWeightsError;
}

/** True when `error` is a ContextLengthError. */
export function isContextLengthError(error: unknown): error is ContextLengthError {
  return error instanceof ContextLengthError;
}

/** True when `error` is a TokenIdError. */
export function isTokenIdError(error: unknown): error is TokenIdError {
  return error instanceof TokenIdError;
}

/** True when `error` is an InvalidOptionError. */
export function isInvalidOptionError(error: unknown): error is InvalidOptionError {
  return error instanceof InvalidOptionError;
}
