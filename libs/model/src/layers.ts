// Building blocks of the Llama-family decoder, in the order the model uses them:
// RMSNorm, linear, rotary embeddings, grouped-query attention, the SwiGLU MLP,
// and the pre-norm decoder layer. The math is Hugging Face's modeling_llama.py
// (and modeling_qwen2.py / modeling_qwen3.py for the biases and q/k norms).
// Pure functions of tensors; RMSNorm, rotary, attention's softmax, SwiGLU's
// gating come from @cream/compute, one fused native kernel each on the
// wasm+native backend and plain tf ops elsewhere, so they run on any backend
// and differentiate; call them inside tf.tidy.

import { type AttentionMask, addRmsNorm, causalAttention, fusedKernelsActive, qkvAttention, qkvHeads, rmsNorm as fusedRmsNorm, rotaryHeads, swiglu, swigluMerged } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config';

/** RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * weight over the last axis, in fp32. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return fusedRmsNorm(x, weight, eps); // [..., D]
}

/** A Linear layer with HF's [out, in] weight layout: x @ weight^T + bias over the last axis. */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const [outFeatures, inFeatures] = weight.shape;
  const rows = tf.reshape(x, [-1, inFeatures]); // [N, in]
  let y = tf.matMul(rows, weight as tf.Tensor2D, false, true); // [N, out]
  if (bias !== undefined) y = tf.add(y, bias); // [N, out]
  return tf.reshape(y, [...x.shape.slice(0, -1), outFeatures]); // [..., out]
}

/**
 * Rotary inverse frequencies theta_i = ropeTheta^(-2i / headDim), i < headDim / 2,
 * with the config's scaling, in float64.
 */
export function ropeInverseFrequencies(config: ModelConfig): Float64Array {
  const { headDim, ropeTheta, ropeScaling } = config;
  const frequencies = new Float64Array(headDim / 2);
  for (let i = 0; i < frequencies.length; i++) {
    const frequency = 1 / Math.pow(ropeTheta, (2 * i) / headDim);
    if (ropeScaling === null) {
      frequencies[i] = frequency;
    } else if (ropeScaling.type === 'linear') {
      frequencies[i] = frequency / ropeScaling.factor;
    } else {
      // Llama 3.1: wavelengths longer than the original context / lowFreqFactor are
      // stretched by `factor`, those shorter than context / highFreqFactor kept,
      // and the ones between interpolated.
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: context } = ropeScaling;
      const wavelength = (2 * Math.PI) / frequency;
      if (wavelength < context / highFreqFactor) {
        frequencies[i] = frequency;
      } else if (wavelength > context / lowFreqFactor) {
        frequencies[i] = frequency / factor;
      } else {
        const smooth = (context / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        frequencies[i] = (1 - smooth) * (frequency / factor) + smooth * frequency;
      }
    }
  }
  return frequencies;
}

/** cos and sin of each token's rotary angles, ready to broadcast over heads. */
export interface RotaryAngles {
  readonly cos: tf.Tensor4D; // [B, 1, T, headDim/2]
  readonly sin: tf.Tensor4D; // [B, 1, T, headDim/2]
}

/**
 * Rotary embedding tables cos(p * theta_i), sin(p * theta_i) computed in float64
 * and cached as fp32 tensors; they grow (by doubling) to the longest position
 * asked for, up to maxPositionEmbeddings.
 */
export class RotaryEmbedding {
  readonly inverseFrequencies: Float64Array;
  private readonly maxPositions: number;
  private cosTable: tf.Tensor2D | null = null; // [L, headDim/2]
  private sinTable: tf.Tensor2D | null = null; // [L, headDim/2]
  private length = 0;

  constructor(config: ModelConfig) {
    this.inverseFrequencies = ropeInverseFrequencies(config);
    this.maxPositions = config.maxPositionEmbeddings;
  }

  /** cos and sin at `positions` [B, T] (int32, each below maxPositionEmbeddings), largest `maxPosition`. */
  angles(positions: tf.Tensor2D, maxPosition: number): RotaryAngles {
    this.grow(maxPosition + 1);
    const [B, T] = positions.shape;
    const half = this.inverseFrequencies.length;
    const flat = tf.reshape(positions, [-1]); // [B*T]
    const cos = tf.reshape(tf.gather(this.cosTable as tf.Tensor2D, flat), [B, 1, T, half]) as tf.Tensor4D; // [B, 1, T, half]
    const sin = tf.reshape(tf.gather(this.sinTable as tf.Tensor2D, flat), [B, 1, T, half]) as tf.Tensor4D; // [B, 1, T, half]
    return { cos, sin };
  }

  /** The tables cos / sin [L, headDim/2] of positions 0..L-1, L >= `length` (owned by this object: do not dispose). */
  tables(length: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    this.grow(length);
    return { cos: this.cosTable as tf.Tensor2D, sin: this.sinTable as tf.Tensor2D };
  }

  /** Frees the cached tables. */
  dispose(): void {
    this.cosTable?.dispose();
    this.sinTable?.dispose();
    this.cosTable = this.sinTable = null;
    this.length = 0;
  }

  private grow(length: number): void {
    if (length <= this.length) return;
    const newLength = Math.min(this.maxPositions, Math.max(length, 2 * this.length, 64));
    const half = this.inverseFrequencies.length;
    const cos = new Float32Array(newLength * half);
    const sin = new Float32Array(newLength * half);
    for (let p = 0; p < newLength; p++) {
      for (let i = 0; i < half; i++) {
        const angle = p * this.inverseFrequencies[i];
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
      }
    }
    this.dispose();
    // Kept: the tables outlive the tidy of the forward pass that grew them.
    this.cosTable = tf.keep(tf.tensor2d(cos, [newLength, half])); // [L, half]
    this.sinTable = tf.keep(tf.tensor2d(sin, [newLength, half])); // [L, half]
    this.length = newLength;
  }
}

/**
 * Rotates pairs (x_i, x_{i + headDim/2}) by each token's angles: HF's rotate-half
 * convention, x * cos + rotate_half(x) * sin with rotate_half(x1, x2) = (-x2, x1).
 */
export function applyRotary(x: tf.Tensor4D, angles: RotaryAngles): tf.Tensor4D {
  return rotaryHeads(tf.transpose(x, [0, 2, 1, 3]) as tf.Tensor4D, angles.cos, angles.sin); // [B, H, T, headDim]
}

/** An additive attention mask: 0 where a query may attend a key, MASKED where it may not. */
export const MASKED = -1e9;

/** Weights of one self-attention block (HF [out, in] layout); biases and norms as the config says. */
export interface AttentionWeights {
  readonly wq: tf.Tensor; // [nHeads*headDim, D]
  readonly wk: tf.Tensor; // [nKvHeads*headDim, D]
  readonly wv: tf.Tensor; // [nKvHeads*headDim, D]
  readonly wo: tf.Tensor; // [D, nHeads*headDim]
  readonly bq?: tf.Tensor; // [nHeads*headDim]
  readonly bk?: tf.Tensor; // [nKvHeads*headDim]
  readonly bv?: tf.Tensor; // [nKvHeads*headDim]
  readonly bo?: tf.Tensor; // [D]
  readonly qNorm?: tf.Tensor; // [headDim]
  readonly kNorm?: tf.Tensor; // [headDim]
}

/**
 * Takes this step's keys and values [B, nKvHeads, T, headDim] and returns the
 * ones to attend over [B, nKvHeads, S, headDim]: a KV cache appends them to the past.
 */
export type KeyValueStore = (k: tf.Tensor4D, v: tf.Tensor4D) => [tf.Tensor4D, tf.Tensor4D];

// With the fused kernels and no q/k norms: one product of the stacked q, k
// and v weights, plus their stacked biases when they have them (Qwen2), for
// fewer passes and one gradient product for x.
function mergedProjection(x: tf.Tensor3D, w: AttentionWeights): tf.Tensor3D | undefined {
  if (!fusedKernelsActive() || w.qNorm !== undefined || w.kNorm !== undefined) return undefined;
  const biases = [w.bq, w.bk, w.bv];
  if (biases.every((b) => b === undefined)) return linear(x, tf.concat([w.wq, w.wk, w.wv], 0)) as tf.Tensor3D; // [B, T, (nHeads + 2 nKvHeads) headDim]
  if (biases.some((b) => b === undefined)) return undefined;
  return linear(x, tf.concat([w.wq, w.wk, w.wv], 0), tf.concat(biases as tf.Tensor[], 0)) as tf.Tensor3D;
}

// q, k and v heads first [B, H, T, headDim], q and k rotated: the merged
// projection split by one kernel, else a product per projection.
function projectHeads(x: tf.Tensor3D, w: AttentionWeights, config: ModelConfig, angles: RotaryAngles): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const [B, T] = x.shape;
  const { nHeads, nKvHeads, headDim, rmsNormEps } = config;
  const qkv = mergedProjection(x, w);
  if (qkv !== undefined) return qkvHeads(qkv, angles.cos, angles.sin, nHeads, nKvHeads);
  let q = tf.reshape(linear(x, w.wq, w.bq), [B, T, nHeads, headDim]); // [B, T, nHeads, headDim]
  let k = tf.reshape(linear(x, w.wk, w.bk), [B, T, nKvHeads, headDim]); // [B, T, nKvHeads, headDim]
  const v = tf.reshape(linear(x, w.wv, w.bv), [B, T, nKvHeads, headDim]); // [B, T, nKvHeads, headDim]
  if (w.qNorm !== undefined && w.kNorm !== undefined) {
    q = rmsNorm(q, w.qNorm, rmsNormEps); // [B, T, nHeads, headDim]
    k = rmsNorm(k, w.kNorm, rmsNormEps); // [B, T, nKvHeads, headDim]
  }
  // Rotated and moved to heads-first in one step each.
  const qRotated = rotaryHeads(q as tf.Tensor4D, angles.cos, angles.sin); // [B, nHeads, T, headDim]
  const kRotated = rotaryHeads(k as tf.Tensor4D, angles.cos, angles.sin); // [B, nKvHeads, T, headDim]
  // With one token (a decoding step) the move of heads first is a reshape.
  const vHeads = (T === 1 ? tf.reshape(v, [B, nKvHeads, 1, headDim]) : tf.transpose(v, [0, 2, 1, 3])) as tf.Tensor4D; // [B, nKvHeads, T, headDim]
  return [qRotated, kRotated, vHeads];
}

/** Multi-head self-attention: projections, optional q/k norms, RoPE, attention, output projection. */
export function selfAttention(
  x: tf.Tensor3D, // [B, T, D]
  w: AttentionWeights,
  config: ModelConfig,
  angles: RotaryAngles,
  maskBias: AttentionMask, // [B, 1, 1, T, S], each row's past (causal), or causal within packed segments (causalAttention)
  store?: KeyValueStore,
): tf.Tensor3D {
  if (store === undefined) {
    // No cache (training, scoring): attention reads the merged projection as it is.
    const qkv = mergedProjection(x, w);
    if (qkv !== undefined) return linear(qkvAttention(qkv, angles.cos, angles.sin, config.nHeads, config.nKvHeads, maskBias), w.wo, w.bo) as tf.Tensor3D; // [B, T, D]
  }
  const [qRotated, kRotated, vHeads] = projectHeads(x, w, config, angles); // [B, nHeads | nKvHeads, T, headDim]
  const [keys, values] = store === undefined ? [kRotated, vHeads] : store(kRotated, vHeads); // [B, nKvHeads, S, headDim]
  // Grouped-query heads: query head h reads kv head floor(h / (nHeads / nKvHeads)), as HF's repeat_kv.
  const out = causalAttention(qRotated, keys, values, maskBias); // [B, T, nHeads*headDim]
  return linear(out, w.wo, w.bo) as tf.Tensor3D; // [B, T, D]
}

/** Weights of the SwiGLU MLP: w1 = gate_proj, w3 = up_proj, w2 = down_proj (Meta's names). */
export interface MlpWeights {
  readonly w1: tf.Tensor; // [I, D]
  readonly w2: tf.Tensor; // [D, I]
  readonly w3: tf.Tensor; // [I, D]
}

/** SwiGLU MLP (Shazeer 2020): w2(silu(w1 x) * w3 x). */
export function swiGluMlp(x: tf.Tensor3D, w: MlpWeights): tf.Tensor3D {
  if (fusedKernelsActive()) {
    // One product for gate and up (their weights stacked), one kernel for the gating.
    const gateUp = linear(x, tf.concat([w.w1, w.w3], 0)); // [B, T, 2I]
    return linear(swigluMerged(gateUp), w.w2) as tf.Tensor3D; // [B, T, D]
  }
  const gate = linear(x, w.w1); // [B, T, I]
  const up = linear(x, w.w3); // [B, T, I]
  const hidden = swiglu(gate, up); // [B, T, I]
  return linear(hidden, w.w2) as tf.Tensor3D; // [B, T, D]
}

/** Weights of one decoder layer. */
export interface LayerWeights extends AttentionWeights, MlpWeights {
  readonly inputNorm: tf.Tensor; // [D]
  readonly postAttentionNorm: tf.Tensor; // [D]
}

/** A pre-norm decoder layer: h = x + attention(norm(x)); out = h + mlp(norm(h)). */
export function decoderLayer(
  x: tf.Tensor3D, // [B, T, D]
  w: LayerWeights,
  config: ModelConfig,
  angles: RotaryAngles,
  maskBias: AttentionMask, // [B, 1, 1, T, S], each row's past (causal), or causal within packed segments (causalAttention)
  store?: KeyValueStore,
): tf.Tensor3D {
  return decoderLayerNormed(x, undefined, w, config, angles, maskBias, store)[0];
}

/**
 * decoderLayer with the norms on the residual stream joined to the adds
 * before them (addRmsNorm: one pass each way on wasm+native): normed is
 * rmsNorm(x, w.inputNorm) when the layer before made it (else computed here),
 * and with nextNorm the layer returns [out, rmsNorm(out, nextNorm)] (the next
 * layer's input norm, or the final norm), else [out].
 */
export function decoderLayerNormed(
  x: tf.Tensor3D, // [B, T, D]
  normed: tf.Tensor3D | undefined, // [B, T, D]
  w: LayerWeights,
  config: ModelConfig,
  angles: RotaryAngles,
  maskBias: AttentionMask, // [B, 1, 1, T, S], each row's past (causal), or causal within packed segments (causalAttention)
  store?: KeyValueStore,
  nextNorm?: tf.Tensor, // [D]
): [tf.Tensor3D] | [tf.Tensor3D, tf.Tensor3D] {
  const eps = config.rmsNormEps;
  const attended = selfAttention(normed ?? (rmsNorm(x, w.inputNorm, eps) as tf.Tensor3D), w, config, angles, maskBias, store); // [B, T, D]
  const [h, hNormed] = addRmsNorm(x, attended, w.postAttentionNorm, eps); // [B, T, D] each
  const mlpOut = swiGluMlp(hNormed, w); // [B, T, D]
  return nextNorm === undefined ? [tf.add(h, mlpOut) as tf.Tensor3D] : addRmsNorm(h, mlpOut, nextNorm, eps); // [B, T, D] each
}
