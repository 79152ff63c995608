// The one model configuration: the hyperparameters of a Llama-family decoder
// (Llama, Mistral, Qwen2, Qwen3, SmolLM), with a reason beside each default,
// its validation, and the mapping to and from a Hugging Face config.json.

import { ModelConfigError } from './errors';

/** The Hugging Face model family a config describes; it fixes which biases and norms exist. */
export type ModelArchitecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

/** Rotary frequency scaling for a longer context than the model was first trained on. */
export type RopeScaling =
  /** Position interpolation (Chen et al. 2023): every frequency divided by `factor`. */
  | { readonly type: 'linear'; readonly factor: number }
  /** Llama 3.1's scaling: low frequencies divided by `factor`, high ones kept, a smooth ramp between. */
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** Hyperparameters of a Llama-family decoder; names follow Meta's llama and HF (headDim, nKvHeads). */
export interface ModelConfig {
  /** The Hugging Face family: which biases and norms the checkpoint has. */
  readonly architecture: ModelArchitecture;
  /** Rows of the embedding and of lm_head. */
  readonly vocabSize: number;
  /** Width of the residual stream (HF hidden_size, Meta dim). */
  readonly hiddenSize: number;
  /** Number of decoder blocks. */
  readonly nLayers: number;
  /** Query heads. */
  readonly nHeads: number;
  /** Key/value heads; nHeads / nKvHeads query heads share each (grouped-query attention). */
  readonly nKvHeads: number;
  /** Width of one head; hiddenSize / nHeads unless the checkpoint says otherwise (Qwen3). */
  readonly headDim: number;
  /** Hidden width of the SwiGLU MLP (gate_proj/up_proj rows). */
  readonly intermediateSize: number;
  /** Base of the rotary frequencies: theta_i = ropeTheta^(-2i / headDim). */
  readonly ropeTheta: number;
  /** Rotary frequency scaling, or null for plain RoPE. */
  readonly ropeScaling: RopeScaling | null;
  /** Epsilon inside RMSNorm's square root. */
  readonly rmsNormEps: number;
  /** Longest sequence (prompt plus generated tokens) the model accepts. */
  readonly maxPositionEmbeddings: number;
  /** Biases on q_proj, k_proj and v_proj (Qwen2; Llama and Qwen3 with attention_bias). */
  readonly attentionBias: boolean;
  /** A bias on o_proj (Llama and Qwen3 with attention_bias; never Qwen2). */
  readonly attentionOutputBias: boolean;
  /** RMSNorm of each query and key head before the rotation (Qwen3's q_norm, k_norm). */
  readonly qkNorm: boolean;
  /** lm_head is the embedding matrix (no lm_head.weight). */
  readonly tieWordEmbeddings: boolean;
  /** Beginning-of-sequence token, when the checkpoint names one. */
  readonly bosTokenId: number | null;
  /** Tokens that end generation. */
  readonly eosTokenIds: readonly number[];
  /**
   * The checkpoint's sliding attention window, or null. Sliding-window attention equals full
   * attention while a sequence fits in the window, so maxPositionEmbeddings is capped at it.
   */
  readonly slidingWindow: number | null;
}

/** What createModelConfig needs: the sizes, and any field to override its default. */
export type ModelConfigInput = Pick<
  ModelConfig,
  'vocabSize' | 'hiddenSize' | 'nLayers' | 'nHeads' | 'intermediateSize'
> &
  Partial<ModelConfig>;

/** Builds a validated, frozen ModelConfig from the sizes; every other field has a default. */
export function createModelConfig(input: ModelConfigInput): ModelConfig {
  const architecture = input.architecture ?? 'llama'; // the plain family; the others add options
  const attentionBias = input.attentionBias ?? architecture === 'qwen2'; // Qwen2 always has q/k/v biases
  const config: ModelConfig = {
    architecture,
    vocabSize: input.vocabSize,
    hiddenSize: input.hiddenSize,
    nLayers: input.nLayers,
    nHeads: input.nHeads,
    nKvHeads: input.nKvHeads ?? input.nHeads, // plain multi-head attention unless grouped
    headDim: input.headDim ?? input.hiddenSize / input.nHeads, // HF's rule when config.json has no head_dim
    intermediateSize: input.intermediateSize,
    ropeTheta: input.ropeTheta ?? 10000, // RoFormer's base and HF LlamaConfig's default
    ropeScaling: input.ropeScaling ?? null, // plain RoPE unless the checkpoint extends its context
    rmsNormEps: input.rmsNormEps ?? 1e-6, // HF LlamaConfig's default (Llama 2 checkpoints set 1e-5)
    maxPositionEmbeddings: input.maxPositionEmbeddings ?? 2048, // HF LlamaConfig's default (Llama 1's context)
    attentionBias,
    // Llama's and Qwen3's attention_bias covers o_proj too; Qwen2 and Mistral never have it.
    attentionOutputBias:
      input.attentionOutputBias ?? ((architecture === 'llama' || architecture === 'qwen3') && attentionBias),
    qkNorm: input.qkNorm ?? architecture === 'qwen3', // only Qwen3 normalizes q and k per head
    tieWordEmbeddings: input.tieWordEmbeddings ?? false, // HF's default; SmolLM and small Qwens tie
    bosTokenId: input.bosTokenId ?? null, // no special tokens unless the checkpoint names them
    eosTokenIds: Object.freeze([...(input.eosTokenIds ?? [])]),
    slidingWindow: input.slidingWindow ?? null, // full attention
  };
  validateModelConfig(config);
  return Object.freeze(config);
}

/** Throws ModelConfigError (with the field name) unless `config` is consistent and supported. */
export function validateModelConfig(config: ModelConfig): void {
  for (const field of ['vocabSize', 'hiddenSize', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'intermediateSize'] as const) {
    requirePositiveInteger(config[field], field);
  }
  requirePositiveInteger(config.maxPositionEmbeddings, 'maxPositionEmbeddings');
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new ModelConfigError(
      `nHeads (${config.nHeads}) must be a multiple of nKvHeads (${config.nKvHeads}) for grouped-query attention`,
      'nKvHeads',
    );
  }
  if (config.headDim % 2 !== 0) {
    throw new ModelConfigError(`headDim (${config.headDim}) must be even: RoPE rotates pairs of dimensions`, 'headDim');
  }
  requirePositiveFinite(config.ropeTheta, 'ropeTheta');
  requirePositiveFinite(config.rmsNormEps, 'rmsNormEps');
  validateRopeScaling(config.ropeScaling);
  for (const [field, value] of [['bosTokenId', config.bosTokenId], ...config.eosTokenIds.map((id) => ['eosTokenIds', id] as const)] as const) {
    if (value !== null && !(Number.isInteger(value) && value >= 0 && value < config.vocabSize)) {
      throw new ModelConfigError(`${field} ${value} is not a token id in [0, ${config.vocabSize})`, field);
    }
  }
  if (config.slidingWindow !== null) {
    requirePositiveInteger(config.slidingWindow, 'slidingWindow');
    if (config.maxPositionEmbeddings > config.slidingWindow) {
      throw new ModelConfigError(
        `maxPositionEmbeddings (${config.maxPositionEmbeddings}) exceeds slidingWindow (${config.slidingWindow}); ` +
          'only full attention is implemented, which equals sliding-window attention within the window',
        'maxPositionEmbeddings',
      );
    }
  }
  validateArchitectureOptions(config);
}

// Each family fixes its biases and norms, so that any valid config can be written
// back as a config.json that Hugging Face loads into the same math.
function validateArchitectureOptions(config: ModelConfig): void {
  const { architecture, attentionBias, attentionOutputBias, qkNorm } = config;
  const fail = (field: string, rule: string): never => {
    throw new ModelConfigError(`architecture '${architecture}' requires ${rule}`, field);
  };
  switch (architecture) {
    case 'llama':
      if (qkNorm) fail('qkNorm', 'qkNorm false');
      if (attentionOutputBias !== attentionBias) fail('attentionOutputBias', 'attentionOutputBias equal to attentionBias (attention_bias)');
      return;
    case 'mistral':
      if (attentionBias || attentionOutputBias) fail('attentionBias', 'no attention biases');
      if (qkNorm) fail('qkNorm', 'qkNorm false');
      return;
    case 'qwen2':
      if (!attentionBias || attentionOutputBias) fail('attentionBias', 'q/k/v biases and no o_proj bias');
      if (qkNorm) fail('qkNorm', 'qkNorm false');
      return;
    case 'qwen3':
      if (!qkNorm) fail('qkNorm', 'qkNorm true');
      if (attentionOutputBias !== attentionBias) fail('attentionOutputBias', 'attentionOutputBias equal to attentionBias (attention_bias)');
      return;
    default:
      throw new ModelConfigError(`unknown architecture '${String(architecture)}'`, 'architecture');
  }
}

function validateRopeScaling(scaling: RopeScaling | null): void {
  if (scaling === null) return;
  requirePositiveFinite(scaling.factor, 'ropeScaling.factor');
  if (scaling.type === 'llama3') {
    requirePositiveFinite(scaling.lowFreqFactor, 'ropeScaling.lowFreqFactor');
    requirePositiveFinite(scaling.highFreqFactor, 'ropeScaling.highFreqFactor');
    requirePositiveFinite(scaling.originalMaxPositionEmbeddings, 'ropeScaling.originalMaxPositionEmbeddings');
    if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
      throw new ModelConfigError('llama3 rope scaling needs highFreqFactor > lowFreqFactor', 'ropeScaling.highFreqFactor');
    }
  } else if (scaling.type !== 'linear') {
    throw new ModelConfigError(`unknown rope scaling type '${String((scaling as { type: unknown }).type)}'`, 'ropeScaling.type');
  }
}

function requirePositiveInteger(value: number, field: string): void {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new ModelConfigError(`${field} must be a positive integer, got ${value}`, field);
  }
}

function requirePositiveFinite(value: number, field: string): void {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new ModelConfigError(`${field} must be a positive finite number, got ${value}`, field);
  }
}

// ---------------------------------------------------------------------------
// Hugging Face config.json

const HF_CLASS_BY_ARCHITECTURE: Record<ModelArchitecture, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

// Defaults of the HF config classes for fields a config.json may leave out.
const HF_DEFAULTS: Record<ModelArchitecture, { maxPositionEmbeddings: number; slidingWindow: number | null }> = {
  llama: { maxPositionEmbeddings: 2048, slidingWindow: null },
  mistral: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096 },
  qwen2: { maxPositionEmbeddings: 32768, slidingWindow: 4096 },
  qwen3: { maxPositionEmbeddings: 32768, slidingWindow: 4096 },
};

/**
 * Maps a parsed Hugging Face config.json (LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM, Qwen3ForCausalLM; SmolLM is Llama) to a ModelConfig. Throws
 * ModelConfigError, naming the config.json field, for a missing or malformed
 * field, an unsupported architecture, or a feature this decoder does not
 * implement (rope scaling other than linear and llama3, partial rotary, MLP
 * biases, activations other than SiLU, quantization). A sliding window caps the
 * context at the window, where full attention computes the same thing.
 */
export function modelConfigFromHf(json: unknown): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelConfigError('config.json must hold a JSON object');
  }
  const hf = json as Record<string, unknown>;
  const architecture = hfArchitecture(hf);
  const defaults = HF_DEFAULTS[architecture];

  const vocabSize = requiredInteger(hf, 'vocab_size');
  const hiddenSize = requiredInteger(hf, 'hidden_size');
  const nHeads = requiredInteger(hf, 'num_attention_heads');
  const hiddenAct = optionalString(hf, 'hidden_act') ?? optionalString(hf, 'hidden_activation');
  if (hiddenAct !== undefined && hiddenAct !== 'silu') {
    throw new ModelConfigError(`hidden_act '${hiddenAct}' is not supported (only 'silu', SwiGLU)`, 'hidden_act');
  }
  if (optionalBoolean(hf, 'mlp_bias') === true) {
    throw new ModelConfigError('mlp_bias true is not supported', 'mlp_bias');
  }
  if (hf.quantization_config !== undefined && hf.quantization_config !== null) {
    throw new ModelConfigError('quantized checkpoints are not supported (quantization_config)', 'quantization_config');
  }
  const bias = architecture === 'qwen2' ? true : architecture === 'mistral' ? false : (optionalBoolean(hf, 'attention_bias') ?? false);

  const { ropeTheta, ropeScaling } = hfRope(hf);
  let maxPositionEmbeddings = optionalInteger(hf, 'max_position_embeddings') ?? defaults.maxPositionEmbeddings;
  const slidingWindow = hfSlidingWindow(hf, architecture, defaults.slidingWindow);
  if (slidingWindow !== null) maxPositionEmbeddings = Math.min(maxPositionEmbeddings, slidingWindow);

  const eos = hf.eos_token_id;
  let eosTokenIds: number[];
  if (eos === undefined || eos === null) eosTokenIds = [];
  else if (Array.isArray(eos)) eosTokenIds = eos.map((id, i) => integerValue(id, `eos_token_id[${i}]`));
  else eosTokenIds = [integerValue(eos, 'eos_token_id')];

  return createModelConfig({
    architecture,
    vocabSize,
    hiddenSize,
    nLayers: requiredInteger(hf, 'num_hidden_layers'),
    nHeads,
    nKvHeads: optionalInteger(hf, 'num_key_value_heads') ?? nHeads,
    headDim: optionalInteger(hf, 'head_dim') ?? (architecture === 'qwen3' ? 128 : hiddenSize / nHeads),
    intermediateSize: requiredInteger(hf, 'intermediate_size'),
    ropeTheta,
    ropeScaling,
    rmsNormEps: optionalNumber(hf, 'rms_norm_eps') ?? 1e-6,
    maxPositionEmbeddings,
    attentionBias: bias,
    attentionOutputBias: architecture === 'llama' || architecture === 'qwen3' ? bias : false,
    qkNorm: architecture === 'qwen3',
    tieWordEmbeddings: optionalBoolean(hf, 'tie_word_embeddings') ?? false,
    bosTokenId: optionalInteger(hf, 'bos_token_id') ?? null,
    eosTokenIds,
    slidingWindow,
  });
}

/** The Hugging Face config.json object for `config`, which modelConfigFromHf reads back equal. */
export function modelConfigToHf(config: ModelConfig): Record<string, unknown> {
  const hf: Record<string, unknown> = {
    architectures: [HF_CLASS_BY_ARCHITECTURE[config.architecture]],
    model_type: config.architecture,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.nLayers,
    num_attention_heads: config.nHeads,
    num_key_value_heads: config.nKvHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeScalingToHf(config.ropeScaling),
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 0 ? null : config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : [...config.eosTokenIds],
    torch_dtype: 'float32',
  };
  if (config.architecture === 'llama' || config.architecture === 'qwen3') hf.attention_bias = config.attentionBias;
  if (config.architecture === 'llama') hf.mlp_bias = false;
  if (config.architecture === 'mistral') hf.sliding_window = config.slidingWindow;
  if (config.architecture === 'qwen2' || config.architecture === 'qwen3') {
    hf.use_sliding_window = config.slidingWindow !== null;
    hf.sliding_window = config.slidingWindow;
    hf.max_window_layers = config.slidingWindow !== null ? 0 : config.nLayers;
  }
  return hf;
}

function hfArchitecture(hf: Record<string, unknown>): ModelArchitecture {
  const classes = hf.architectures;
  if (classes !== undefined && classes !== null) {
    if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) {
      throw new ModelConfigError('architectures must be a list of class names', 'architectures');
    }
    for (const [architecture, className] of Object.entries(HF_CLASS_BY_ARCHITECTURE)) {
      if (classes.includes(className)) return architecture as ModelArchitecture;
    }
    throw new ModelConfigError(
      `unsupported architecture ${JSON.stringify(classes)}; supported: ${Object.values(HF_CLASS_BY_ARCHITECTURE).join(', ')}`,
      'architectures',
    );
  }
  const modelType = optionalString(hf, 'model_type');
  if (modelType !== undefined && modelType in HF_CLASS_BY_ARCHITECTURE) return modelType as ModelArchitecture;
  throw new ModelConfigError(
    modelType === undefined
      ? 'config.json names neither architectures nor model_type'
      : `unsupported model_type '${modelType}'; supported: ${Object.keys(HF_CLASS_BY_ARCHITECTURE).join(', ')}`,
    modelType === undefined ? 'architectures' : 'model_type',
  );
}

// rope_theta and rope_scaling (transformers 4.x), or rope_parameters (transformers 5).
function hfRope(hf: Record<string, unknown>): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const parameters = optionalObject(hf, 'rope_parameters');
  const scaling = optionalObject(hf, 'rope_scaling') ?? parameters;
  const field = hf.rope_scaling !== undefined && hf.rope_scaling !== null ? 'rope_scaling' : 'rope_parameters';
  const ropeTheta =
    optionalNumber(hf, 'rope_theta') ??
    (parameters === undefined ? undefined : optionalNumber(parameters, 'rope_theta', 'rope_parameters.')) ??
    10000;
  const partial = optionalNumber(hf, 'partial_rotary_factor') ?? (scaling && optionalNumber(scaling, 'partial_rotary_factor', `${field}.`));
  if (partial !== undefined && partial !== 1) {
    throw new ModelConfigError(`partial_rotary_factor ${partial} is not supported (only 1)`, 'partial_rotary_factor');
  }
  if (scaling === undefined) return { ropeTheta, ropeScaling: null };
  const type = optionalString(scaling, 'rope_type', `${field}.`) ?? optionalString(scaling, 'type', `${field}.`) ?? 'default';
  switch (type) {
    case 'default':
      return { ropeTheta, ropeScaling: null };
    case 'linear':
      return { ropeTheta, ropeScaling: { type: 'linear', factor: requiredNumber(scaling, 'factor', `${field}.`) } };
    case 'llama3':
      return {
        ropeTheta,
        ropeScaling: {
          type: 'llama3',
          factor: requiredNumber(scaling, 'factor', `${field}.`),
          lowFreqFactor: requiredNumber(scaling, 'low_freq_factor', `${field}.`),
          highFreqFactor: requiredNumber(scaling, 'high_freq_factor', `${field}.`),
          originalMaxPositionEmbeddings: requiredNumber(scaling, 'original_max_position_embeddings', `${field}.`),
        },
      };
    default:
      throw new ModelConfigError(
        `rope scaling type '${type}' is not supported (supported: default, linear, llama3)`,
        `${field}.rope_type`,
      );
  }
}

function ropeScalingToHf(scaling: RopeScaling | null): Record<string, unknown> | null {
  if (scaling === null) return null;
  if (scaling.type === 'linear') return { rope_type: 'linear', factor: scaling.factor };
  return {
    rope_type: 'llama3',
    factor: scaling.factor,
    low_freq_factor: scaling.lowFreqFactor,
    high_freq_factor: scaling.highFreqFactor,
    original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
  };
}

// The window size when any layer slides, else null.
function hfSlidingWindow(hf: Record<string, unknown>, architecture: ModelArchitecture, defaultWindow: number | null): number | null {
  if (architecture === 'llama') return null;
  const window = () => {
    const value = hf.sliding_window === undefined ? defaultWindow : hf.sliding_window;
    return value === null ? null : integerValue(value, 'sliding_window');
  };
  if (architecture === 'mistral') return window();
  const layerTypes = hf.layer_types;
  if (layerTypes !== undefined && layerTypes !== null) {
    if (!Array.isArray(layerTypes)) throw new ModelConfigError('layer_types must be a list', 'layer_types');
    for (const [i, type] of layerTypes.entries()) {
      if (type !== 'full_attention' && type !== 'sliding_attention') {
        throw new ModelConfigError(`layer_types[${i}] '${String(type)}' is not supported`, 'layer_types');
      }
    }
    return layerTypes.includes('sliding_attention') ? window() : null;
  }
  // Qwen2/Qwen3 slide only from layer max_window_layers on, and only with use_sliding_window.
  if (optionalBoolean(hf, 'use_sliding_window') !== true) return null;
  const firstSliding = optionalInteger(hf, 'max_window_layers') ?? 28;
  return firstSliding < requiredInteger(hf, 'num_hidden_layers') ? window() : null;
}

function integerValue(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ModelConfigError(`${field} must be an integer, got ${JSON.stringify(value)}`, field);
  }
  return value;
}

function requiredInteger(obj: Record<string, unknown>, key: string): number {
  if (obj[key] === undefined || obj[key] === null) throw new ModelConfigError(`config.json has no ${key}`, key);
  return integerValue(obj[key], key);
}

function optionalInteger(obj: Record<string, unknown>, key: string): number | undefined {
  return obj[key] === undefined || obj[key] === null ? undefined : integerValue(obj[key], key);
}

function optionalNumber(obj: Record<string, unknown>, key: string, prefix = ''): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ModelConfigError(`${prefix}${key} must be a number, got ${JSON.stringify(value)}`, `${prefix}${key}`);
  }
  return value;
}

function requiredNumber(obj: Record<string, unknown>, key: string, prefix = ''): number {
  const value = optionalNumber(obj, key, prefix);
  if (value === undefined) throw new ModelConfigError(`config.json has no ${prefix}${key}`, `${prefix}${key}`);
  return value;
}

function optionalString(obj: Record<string, unknown>, key: string, prefix = ''): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new ModelConfigError(`${prefix}${key} must be a string, got ${JSON.stringify(value)}`, `${prefix}${key}`);
  }
  return value;
}

function optionalBoolean(obj: Record<string, unknown>, key: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new ModelConfigError(`${key} must be true or false, got ${JSON.stringify(value)}`, key);
  return value;
}

function optionalObject(obj: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelConfigError(`${key} must be an object or null`, key);
  }
  return value as Record<string, unknown>;
}
