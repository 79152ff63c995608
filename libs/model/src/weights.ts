// The weights of a decoder: a map from Hugging Face tensor names to trainable
// tf.Variables, with the shapes a config implies (Linear weights stored
// [out, in] as HF stores them), a deterministic random init, and the checks a
// checkpoint loader needs before handing tensors to the model.

import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config';
import { ModelWeightsError } from './errors';
import { fillNormal, randomStream } from './random';

/** Weights keyed by Hugging Face tensor name (`model.layers.0.self_attn.q_proj.weight`, ...). */
export type ModelWeights = Map<string, tf.Variable>;

/** Hugging Face tensor names of one decoder layer. */
export function layerWeightNames(layer: number) {
  const prefix = `model.layers.${layer}`;
  return {
    inputNorm: `${prefix}.input_layernorm.weight`,
    wq: `${prefix}.self_attn.q_proj.weight`,
    wk: `${prefix}.self_attn.k_proj.weight`,
    wv: `${prefix}.self_attn.v_proj.weight`,
    wo: `${prefix}.self_attn.o_proj.weight`,
    bq: `${prefix}.self_attn.q_proj.bias`,
    bk: `${prefix}.self_attn.k_proj.bias`,
    bv: `${prefix}.self_attn.v_proj.bias`,
    bo: `${prefix}.self_attn.o_proj.bias`,
    qNorm: `${prefix}.self_attn.q_norm.weight`,
    kNorm: `${prefix}.self_attn.k_norm.weight`,
    postAttentionNorm: `${prefix}.post_attention_layernorm.weight`,
    w1: `${prefix}.mlp.gate_proj.weight`,
    w2: `${prefix}.mlp.down_proj.weight`,
    w3: `${prefix}.mlp.up_proj.weight`,
  } as const;
}

/** Name of the token embedding [vocabSize, hiddenSize]. */
export const EMBEDDING_WEIGHT = 'model.embed_tokens.weight';
/** Name of the final RMSNorm weight [hiddenSize]. */
export const FINAL_NORM_WEIGHT = 'model.norm.weight';
/** Name of the output projection [vocabSize, hiddenSize], absent when embeddings are tied. */
export const LM_HEAD_WEIGHT = 'lm_head.weight';

/** Every tensor the config implies, in checkpoint order, with its HF shape. */
export function weightShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: D, nHeads, nKvHeads, headDim, intermediateSize: I } = config;
  const shapes = new Map<string, number[]>([[EMBEDDING_WEIGHT, [V, D]]]);
  for (let i = 0; i < config.nLayers; i++) {
    const n = layerWeightNames(i);
    shapes.set(n.inputNorm, [D]);
    shapes.set(n.wq, [nHeads * headDim, D]);
    if (config.attentionBias) shapes.set(n.bq, [nHeads * headDim]);
    shapes.set(n.wk, [nKvHeads * headDim, D]);
    if (config.attentionBias) shapes.set(n.bk, [nKvHeads * headDim]);
    shapes.set(n.wv, [nKvHeads * headDim, D]);
    if (config.attentionBias) shapes.set(n.bv, [nKvHeads * headDim]);
    shapes.set(n.wo, [D, nHeads * headDim]);
    if (config.attentionOutputBias) shapes.set(n.bo, [D]);
    if (config.qkNorm) {
      shapes.set(n.qNorm, [headDim]);
      shapes.set(n.kNorm, [headDim]);
    }
    shapes.set(n.postAttentionNorm, [D]);
    shapes.set(n.w1, [I, D]);
    shapes.set(n.w3, [I, D]);
    shapes.set(n.w2, [D, I]);
  }
  shapes.set(FINAL_NORM_WEIGHT, [D]);
  if (!config.tieWordEmbeddings) shapes.set(LM_HEAD_WEIGHT, [V, D]);
  return shapes;
}

/**
 * Throws ModelWeightsError unless `tensors` holds every tensor of `config` as
 * float32 with the right shape; names the config does not use are an error too
 * unless `ignoreUnexpected`.
 */
export function validateWeights(
  config: ModelConfig,
  tensors: ReadonlyMap<string, tf.Tensor>,
  options: { ignoreUnexpected?: boolean } = {},
): void {
  const shapes = weightShapes(config);
  for (const [name, shape] of shapes) {
    const tensor = tensors.get(name);
    if (tensor === undefined) throw new ModelWeightsError(`missing tensor ${name}`, name, { expectedShape: shape });
    if (tensor.shape.length !== shape.length || tensor.shape.some((n, i) => n !== shape[i])) {
      throw new ModelWeightsError(
        `tensor ${name} has shape [${tensor.shape}], the config implies [${shape}]`,
        name,
        { expectedShape: shape, actualShape: tensor.shape },
      );
    }
    if (tensor.dtype !== 'float32') throw new ModelWeightsError(`tensor ${name} is ${tensor.dtype}, not float32`, name);
  }
  if (!options.ignoreUnexpected) {
    for (const name of tensors.keys()) {
      if (!shapes.has(name)) throw new ModelWeightsError(`unexpected tensor ${name} for this config`, name);
    }
  }
}

/** How weights become variables. */
export interface CreateWeightsOptions {
  /** Whether the optimizer may update them (false for a frozen DPO reference). Default true. */
  trainable?: boolean;
  /**
   * Prefix of the variable names, `${scope}/${hfName}`. tfjs variable names are
   * global, so a second live model with the same names needs a scope. Default: none.
   */
  scope?: string;
  /** Skip tensors the config does not use (e.g. a duplicated lm_head.weight). Default false. */
  ignoreUnexpected?: boolean;
}

/**
 * Validated weights as variables from loaded tensors (the checkpoint reader's
 * output). The tensors stay the caller's to dispose; the variables are new.
 */
export function createWeights(
  config: ModelConfig,
  tensors: ReadonlyMap<string, tf.Tensor>,
  options: CreateWeightsOptions = {},
): ModelWeights {
  validateWeights(config, tensors, options);
  const registered = tf.engine().registeredVariables;
  const weights: ModelWeights = new Map();
  try {
    for (const name of weightShapes(config).keys()) {
      const variableName = options.scope === undefined ? name : `${options.scope}/${name}`;
      if (registered[variableName] !== undefined) {
        throw new ModelWeightsError(
          `a variable named ${variableName} already exists: dispose the other model's weights or pass a scope`,
          name,
        );
      }
      weights.set(name, tf.variable(tensors.get(name) as tf.Tensor, options.trainable ?? true, variableName));
    }
  } catch (error) {
    disposeWeights(weights);
    throw error;
  }
  return weights;
}

/** Random-init choices; the defaults are Hugging Face's `_init_weights` for these models. */
export interface InitWeightsOptions extends Omit<CreateWeightsOptions, 'ignoreUnexpected'> {
  /** Std of the normal init of embeddings and Linear weights: HF initializer_range. Default 0.02. */
  std?: number;
  /** Std of the normal init of biases; HF zeroes them. Default 0. */
  biasStd?: number;
  /** Std of the normal noise added to the RMSNorm weights; HF sets them to 1. Default 0. */
  normStd?: number;
}

/**
 * Fresh random weights, deterministic per (seed, tensor name): a tensor's
 * values do not depend on the other tensors, so adding layers keeps layer 0.
 */
export function initWeights(config: ModelConfig, seed: number, options: InitWeightsOptions = {}): ModelWeights {
  const std = options.std ?? 0.02;
  const biasStd = options.biasStd ?? 0;
  const normStd = options.normStd ?? 0;
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, shape] of weightShapes(config)) {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const isNorm = name.endsWith('norm.weight') || name.endsWith('layernorm.weight');
      const scale = isNorm ? normStd : name.endsWith('.bias') ? biasStd : std;
      if (scale > 0) fillNormal(values, randomStream(seed, `init/${name}`), scale);
      if (isNorm) for (let i = 0; i < values.length; i++) values[i] += 1;
      tensors.set(name, tf.tensor(values, shape, 'float32'));
    }
    return createWeights(config, tensors, options);
  } finally {
    for (const tensor of tensors.values()) tensor.dispose();
  }
}

/** Disposes every variable of `weights` (their names become free again). */
export function disposeWeights(weights: ReadonlyMap<string, tf.Tensor>): void {
  for (const tensor of weights.values()) tensor.dispose();
}
