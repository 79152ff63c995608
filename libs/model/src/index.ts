// Public surface of @cream/model: the Llama-family decoder on TensorFlow.js.
/** ModelConfig, its defaults and validation, and the Hugging Face config.json mapping. */
export {
  createModelConfig,
  validateModelConfig,
  modelConfigFromHf,
  modelConfigToHf,
  type ModelConfig,
  type ModelConfigInput,
  type ModelArchitecture,
  type RopeScaling,
} from './config';
/** Weights keyed by HF tensor name: shapes, validation, variables from tensors, random init. */
export {
  weightShapes,
  validateWeights,
  createWeights,
  initWeights,
  disposeWeights,
  type ModelWeights,
  type CreateWeightsOptions,
  type InitWeightsOptions,
} from './weights';
/** The decoder: forward to logits, hidden states, lm_head, KV cache creation. */
export { LlamaModel, type ForwardOptions, type IntegerRows } from './model';
/** The per-sequence key/value cache of batched decoding. */
export { KvCache, type KvCacheWrite } from './kv-cache';
/** Batched log-probability of responses given prompts, and its differentiable form for losses. */
export {
  scoreResponses,
  responseLogProbs,
  type ScoreItem,
  type ResponseScore,
  type ScoreOptions,
} from './score';
/** Batched, seeded, reproducible generation with a KV cache. */
export {
  generate,
  type GenerationRequest,
  type GenerateOptions,
  type GenerationResult,
  type FinishReason,
} from './generate';
/** Next-token choice from one row of logits: temperature, top-k, top-p, greedy; log-sum-exp. */
export { sampleToken, validateSamplingParams, logSumExp, argmax, type SamplingParams } from './sampling';
/** Counter-based random streams (Philox4x32-10) named by (seed, key). */
export { philox4x32, randomStream, randomUniform, type RandomStream } from './random';
/** Typed errors and their guards. */
export {
  ModelConfigError,
  ModelWeightsError,
  ContextLengthError,
  TokenIdError,
  InvalidOptionError,
  isModelConfigError,
  isModelWeightsError,
  isContextLengthError,
  isTokenIdError,
  isInvalidOptionError,
} from './errors';

// Hugging Face checkpoints
/** Load and save a checkpoint directory (config.json, safetensors, tokenizer, generation_config.json), atomically. */
export {
  loadCheckpoint,
  saveCheckpoint,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  type Checkpoint,
  type SaveCheckpointInput,
  type SaveCheckpointOptions,
} from './hf/checkpoint';
/** The safetensors format: F32/F16/BF16 read into fp32, F32 written, sharded index read and written. */
export {
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsTensors,
  writeSafetensors,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsIndex,
  inspectSafetensorsDir,
  readSafetensorsDir,
  writeSafetensorsDir,
  decodeFloat16,
  decodeBFloat16,
  SAFETENSORS_WEIGHTS_FILE,
  SAFETENSORS_INDEX_FILE,
  DEFAULT_SAFETENSORS_METADATA,
  MAX_HEADER_BYTES,
  type HostTensor,
  type TensorMap,
  type SafetensorsTensorInfo,
  type SafetensorsHeader,
  type SafetensorsContents,
  type SafetensorsIndex,
  type SafetensorsDirInfo,
  type WriteSafetensorsDirOptions,
} from './hf/safetensors';
/** Host tensors to tfjs tensors and back, bit for bit (checkpoint tensors to createWeights, weights to saveCheckpoint). */
export { toHostTensors, fromHostTensors } from './hf/host-tensors';
/** tokenizer.json through @huggingface/tokenizers, chat templates through @huggingface/jinja, stop strings. */
export {
  HfTokenizer,
  loadTokenizer,
  readTokenizerFiles,
  writeTokenizerFiles,
  stopStringPredicate,
  trimAtStopString,
  TOKENIZER_FILE_NAMES,
  type TokenizerFiles,
  type ChatMessage,
  type ChatTemplateOptions,
  type EncodeOptions,
  type DecodeOptions,
  type StopStringOptions,
} from './hf/tokenizer';
/** A byte-level BPE tokenizer of an exact vocabulary size for random and tiny models, with a ChatML template. */
export {
  buildByteLevelBpeTokenizer,
  CHATML_TEMPLATE,
  type ByteLevelBpeOptions,
  type ByteLevelBpeTokenizer,
} from './hf/byte-level-bpe';
/** Typed errors of checkpoint I/O (bad safetensors, unreadable dtype, bad checkpoint directory, tokenizer) and guards. */
export {
  SafetensorsError,
  UnsupportedDtypeError,
  CheckpointError,
  TokenizerError,
  isSafetensorsError,
  isUnsupportedDtypeError,
  isCheckpointError,
  isTokenizerError,
  type SafetensorsErrorKind,
  type CheckpointErrorKind,
  type TokenizerErrorKind,
} from './hf/errors';

// Runtime
/** A loaded model with its tokenizer behind text-level calls: prompt ids, generateText, scoreText, scoreIds. */
export {
  LanguageModel,
  type PromptInput,
  type LoadOptions,
  type TextGenerationRequest,
  type TextGenerationOptions,
  type TextGenerationResult,
} from './runtime';
/** A random checkpoint of an architecture with a byte-level BPE tokenizer (`cream init-model`). */
export { initCheckpoint, type InitCheckpointResult } from './init-checkpoint';

// Training
/** SFT and consistency-regularized DPO runs on a model's variables, reference log-probs computed once, and their progress, options and result. */
export {
  trainSft,
  trainDpo,
  computeReferenceLogprobs,
  type TrainProgress,
  type TrainOptions,
  type CheckpointOptions,
  type TrainResult,
  type ReferenceLogprobsOptions,
} from './train/trainer';
/** Training hyperparameters, the paper's SFT and DPO defaults, and their validation. */
export {
  SFT_DEFAULTS,
  DPO_DEFAULTS,
  resolveHyperparameters,
  validateHyperparameters,
  type TrainHyperparameters,
  type TrainKind,
} from './train/hyperparameters';
/** Training data as token ids: examples, pairs with C, truncation, right-padded and packed batches, the seeded shuffle. */
export {
  packBatch,
  padBatch,
  pairSequences,
  truncateSequence,
  shuffledOrder,
  type TokenSequence,
  type SftExample,
  type DpoPair,
  type PaddedBatch,
} from './train/batching';
/** The SFT loss and CREAM's consistency-regularized DPO loss on tensors, and TRL's DPO metrics. */
export { tokenLogprobs, sftLoss, dpoLoss, dpoMetrics, type PairLogprobs, type DpoLossResult, type DpoMetrics } from './train/losses';
/** Differentiable response log-probs of a padded batch: per token, and summed per row. */
export { batchResponseTokenLogprobs, batchResponseLogprobs } from './train/logprobs';
/** AdamW as torch.optim.AdamW, its state keyed by weight name, and the default decay filter (2-D matrices). */
export {
  AdamW,
  decayMatricesOnly,
  type AdamWOptions,
  type AdamWState,
  type AdamWStateEntry,
  type WeightDecayFilter,
} from './train/adamw';
/** Learning-rate schedules as transformers' (cosine, linear, constant, each with linear warmup). */
export {
  createSchedule,
  learningRateAt,
  scheduleMultiplier,
  warmupStepsFromRatio,
  type ScheduleKind,
  type LearningRateSchedule,
} from './train/schedule';
/** Global gradient norm and clipping as torch's clip_grad_norm_. */
export { globalNorm, clipByGlobalNorm, clipFactor, type ClippedGradients } from './train/clip';
/** Training-state snapshots (weights, optimizer, position, RNG, reference log-probs): atomic save, load. */
export {
  saveTrainingState,
  loadTrainingState,
  latestSnapshot,
  type TrainingState,
  type ReferenceLogprobs,
} from './train/state';
/** The GatherV2 gradient by ScatterNd (wasm has no UnsortedSegmentSum), registered by the trainer. */
export { gatherGradient, registerTrainingGradients } from './train/gather-gradient';
/** Typed errors of training (cancelled, non-finite loss, bad snapshot) and their guards. */
export {
  TrainingCancelledError,
  NonFiniteLossError,
  TrainingStateError,
  isTrainingCancelledError,
  isNonFiniteLossError,
  isTrainingStateError,
} from './train/errors';
