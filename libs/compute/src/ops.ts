// The fused ops of a Llama-family decoder as tfjs op functions: on the wasm
// backend with the native addon they run one fused kernel each
// (fused-kernels.ts), with gradients registered here on the kernel names;
// on every other backend (cpu, tfjs-node, tfjs-node-gpu), or without the
// addon, they compose the same plain tfjs ops the model used before, so
// every backend computes the same math and differentiates.
import * as tf from '@tensorflow/tfjs-core';

import { ComputeError } from './errors';
import { FusedKernel, fusedKernelsActive, nativeSumOfSquares } from './fused-kernels';

const run = (name: string, inputs: tf.NamedTensorMap, attrs: Record<string, number | boolean | string> = {}) =>
  tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap);

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * weight; x [..., D], weight [D]. */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor, eps: number): T {
  if (fusedKernelsActive()) return run(FusedKernel.rmsNorm, { x, weight }, { eps }) as T;
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight) as T; // [..., D]
  });
}

/**
 * A residual add and the RMSNorm after it: [h, rmsNorm(h, weight, eps)] with
 * h = x + y (same shapes, [..., D]). One kernel each way on wasm+native: the
 * gradient of x and y is h's own plus the norm's, summed in the same pass.
 */
export function addRmsNorm<T extends tf.Tensor>(x: T, y: T, weight: tf.Tensor, eps: number): [T, T] {
  if (fusedKernelsActive()) return run(FusedKernel.addRmsNorm, { x, y, weight }, { eps }) as [T, T];
  const h = tf.add(x, y) as T;
  return [h, rmsNorm(h, weight, eps)];
}

/** SwiGLU's gating: silu(gate) * up = gate * sigmoid(gate) * up, elementwise (same shapes). */
export function swiglu<T extends tf.Tensor>(gate: T, up: T): T {
  if (fusedKernelsActive()) return run(FusedKernel.swiglu, { gate, up }) as T;
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as T);
}

/**
 * Rotary embedding in the rotate-half convention (Hugging Face's Llama),
 * fused with the move of heads before tokens: x [B, T, H, Dh] (a projection's
 * output split into heads) becomes [B, H, T, Dh] with each pair
 * (x_i, x_{i + Dh/2}) rotated by the token's angle: x * cos + rotate_half(x) * sin.
 * cos and sin are [B, T, Dh/2] (any shape of that size, e.g. [B, 1, T, Dh/2]).
 */
export function rotaryHeads(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
  const [B, T, , Dh] = x.shape;
  if (fusedKernelsActive()) {
    return tf.tidy(() => run(FusedKernel.rotaryHeads, { x, cos: tf.reshape(cos, [B, T, Dh / 2]), sin: tf.reshape(sin, [B, T, Dh / 2]) }) as tf.Tensor4D);
  }
  return tf.tidy(() => {
    const heads = tf.transpose(x, [0, 2, 1, 3]); // [B, H, T, Dh]
    const [x1, x2] = tf.split(heads, 2, -1); // [B, H, T, Dh/2] each
    const c = tf.reshape(cos, [B, 1, T, Dh / 2]);
    const s = tf.reshape(sin, [B, 1, T, Dh / 2]);
    const first = tf.sub(tf.mul(x1, c), tf.mul(x2, s)); // [B, H, T, Dh/2]
    const second = tf.add(tf.mul(x2, c), tf.mul(x1, s)); // [B, H, T, Dh/2]
    return tf.concat([first, second], -1) as tf.Tensor4D; // [B, H, T, Dh]
  });
}

/**
 * A merged q/k/v projection [B, T, (Hq + 2 Hkv) Dh] (the heads of q, then k,
 * then v) split into heads first: q and k rotated as rotaryHeads does, v moved.
 * One kernel each way on wasm+native (the gradient flows to the projection
 * only: cos and sin [B, T, Dh/2], any shape of that size, are constants).
 */
export function qkvHeads(qkv: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, nHeads: number, nKvHeads: number): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const [B, T, width] = qkv.shape;
  const Dh = width / (nHeads + 2 * nKvHeads);
  if (fusedKernelsActive()) {
    return tf.tidy(() => {
      const angles = { cos: tf.reshape(cos, [B, T, Dh / 2]), sin: tf.reshape(sin, [B, T, Dh / 2]) };
      return run(FusedKernel.qkvHeads, { qkv, ...angles }, { nHeads, nKvHeads }) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    });
  }
  return tf.tidy(() => {
    const [q, k, v] = tf.split(qkv, [nHeads * Dh, nKvHeads * Dh, nKvHeads * Dh], -1);
    return [
      rotaryHeads(tf.reshape(q, [B, T, nHeads, Dh]), cos, sin),
      rotaryHeads(tf.reshape(k, [B, T, nKvHeads, Dh]), cos, sin),
      tf.transpose(tf.reshape(v, [B, T, nKvHeads, Dh]), [0, 2, 1, 3]) as tf.Tensor4D,
    ];
  });
}

/** silu(gate) * up of a merged gate/up projection [..., 2I] (gate first): [..., I]. */
export function swigluMerged<T extends tf.Tensor>(gateUp: T): T {
  if (fusedKernelsActive()) return run(FusedKernel.swigluMerged, { gateUp }) as T;
  return tf.tidy(() => {
    const [gate, up] = tf.split(gateUp, 2, -1);
    return swiglu(gate, up) as T;
  });
}

/**
 * softmax(scores * scale + mask) over the last axis: scores [B, H, T, S], mask
 * an additive bias [B, T, S] (any shape of that size) shared by the heads, or
 * null for none.
 */
export function maskedSoftmax(scores: tf.Tensor4D, mask: tf.Tensor | null, scale: number): tf.Tensor4D {
  const [B, , T, S] = scores.shape;
  if (fusedKernelsActive()) {
    return tf.tidy(() => {
      const inputs: tf.NamedTensorMap = { scores };
      if (mask !== null) inputs.mask = tf.reshape(mask, [B, T, S]);
      return run(FusedKernel.maskedSoftmax, inputs, { scale }) as tf.Tensor4D;
    });
  }
  return tf.tidy(() => {
    const scaled = tf.mul(scores, scale);
    return tf.softmax(mask === null ? scaled : tf.add(scaled, tf.reshape(mask, [B, 1, T, S]))) as tf.Tensor4D;
  });
}

/**
 * The causal mask of rows that pack several sequences, each a segment of its
 * own: query t of row b (at slot past[b] + t) attends slots starts[b * T + t]
 * .. past[b] + t, its segment's start to itself. Every start 0 is the plain
 * causal mask of each row's past.
 */
export interface SegmentedCausal {
  readonly past: readonly number[];
  /** [B * T]: each query's first attended slot, in [0, past[b] + t]. */
  readonly starts: Int32Array;
}

/** How attention is masked: a bias [B, T, S], each row's past (causal), or causal within packed segments. */
export type AttentionMask = tf.Tensor | readonly number[] | SegmentedCausal;

/**
 * Scaled dot-product attention with grouped-query heads, for prefill, training
 * and single-token decoding over a cache alike: q [B, Hq, T, Dh], k and v
 * [B, Hkv, S, Dh] (query head h reads kv head floor(h / (Hq / Hkv))), maskBias
 * [B, T, S] (any shape of that size) adding 0 where a query may attend a key
 * and a large negative number where not: the causal mask, padding, unused
 * cache slots. Returns [B, T, Hq * Dh], heads side by side per token.
 * Instead of a bias, `mask` may give each row's past (B numbers): query t of
 * row b then attends slots 0 .. past[b] + t, the plain causal mask, which the
 * whole-sequence kernel applies without a [B, T, S] tensor; or a
 * SegmentedCausal, which that kernel applies from each query's start (keys
 * before a whole block's starts are not computed).
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: AttentionMask): tf.Tensor3D {
  const [B, nHeads, T, headDim] = q.shape;
  const [, nKvHeads, S] = k.shape;
  const groups = nHeads / nKvHeads;
  if (!(mask instanceof tf.Tensor)) {
    const causal = checkCausal('causalAttention', mask, B, T, S);
    if (T > 1 && fusedKernelsActive()) return wholeSequenceAttention(q, k, v, mask);
    return tf.tidy(() => causalAttention(q, k, v, causalBias(causal.past, T, S, causal.starts)));
  }
  const maskBias = mask;
  if (T === 1 && fusedKernelsActive() && !tf.engine().state.gradientDepth) {
    // A decoding step: one kernel for scores, softmax and the weighted sum
    // (no gradient: it is never trained through).
    return tf.tidy(() => run(FusedKernel.decodeAttention, { q, keys: k, values: v, mask: tf.reshape(maskBias, [B, S]) }, { scale: 1 / Math.sqrt(headDim) }) as tf.Tensor3D);
  }
  if (fusedKernelsActive()) return wholeSequenceAttention(q, k, v, maskBias);
  return tf.tidy(() => {
    // The query heads sharing a kv head are adjacent: they are the rows of one
    // product per kv head, with no copy of keys and values.
    const qGrouped = tf.reshape(q, [B, nKvHeads, groups * T, headDim]); // [B, Hkv, groups*T, Dh]
    const scores = tf.reshape(tf.matMul(qGrouped, k, false, true), [B, nHeads, T, S]) as tf.Tensor4D; // [B, Hq, T, S]
    const probs = tf.reshape(maskedSoftmax(scores, maskBias, 1 / Math.sqrt(headDim)), [B, nKvHeads, groups * T, S]); // [B, Hkv, groups*T, S]
    const out = tf.reshape(tf.matMul(probs, v), [B, nHeads, T, headDim]); // [B, Hq, T, Dh]
    // One token (a decoding step): heads-first and tokens-first are the same layout.
    const tokensFirst = T === 1 ? out : tf.transpose(out, [0, 2, 1, 3]); // [B, T, Hq, Dh]
    return tf.reshape(tokensFirst, [B, T, nHeads * headDim]) as tf.Tensor3D; // [B, T, Hq*Dh]
  });
}

// One kernel per (sequence, query head): scores, softmax and the weighted sum
// while they are in cache, masked by a bias or causal from each row's past;
// one kernel gives dq, dk and dv from what the forward pass kept (see
// attentionKeepLimit).
function wholeSequenceAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: AttentionMask): tf.Tensor3D {
  const [B, Hq, T, headDim] = q.shape;
  const S = k.shape[2];
  return tf.tidy(() => {
    const masking = maskInputs(mask, B, T, S);
    return attentionKernels(FusedKernel.attention, FusedKernel.attentionGrad, { q, keys: k, values: v }, masking, {}, { scale: 1 / Math.sqrt(headDim) }, attentionKeeps(B, Hq, T, S));
  });
}

/** attentionKeepLimit's value until setAttentionKeepLimit changes it: 16 MiB. */
export const defaultAttentionKeepBytes = 16 * 1024 * 1024;
let attentionKeepBytes = defaultAttentionKeepBytes;

/**
 * On wasm+native, a trained whole-sequence attention (causalAttention,
 * qkvAttention under a gradient tape) keeps its probabilities [B, Hq, T, S]
 * for the gradient when they take at most this many bytes (float32); a larger
 * one keeps each query's log-sum-exp [B, Hq, T] instead, and its gradient
 * computes the probabilities again, block by block: the memory held between
 * the passes then grows with T, not T * S (the kernels take about as long;
 * bench/README.md, session 13).
 * The composed ops (cpu, plain wasm) always keep them.
 */
export function attentionKeepLimit(): number {
  return attentionKeepBytes;
}

/** Sets attentionKeepLimit (0: never keep the probabilities; Infinity: always); returns the previous limit. */
export function setAttentionKeepLimit(bytes: number): number {
  if (!(bytes >= 0)) throw new ComputeError(`setAttentionKeepLimit: bytes must be a number >= 0, got ${bytes}`);
  const previous = attentionKeepBytes;
  attentionKeepBytes = bytes;
  return previous;
}

/** What a trained attention over [B, Hq, T, S] keeps for its gradient under attentionKeepLimit. */
export function attentionKeeps(B: number, Hq: number, T: number, S: number): 'probs' | 'lse' {
  return B * Hq * T * S * 4 <= attentionKeepBytes ? 'probs' : 'lse';
}

// The mask as the attention kernels take it (constants: no gradient): a bias
// [B, T, S], or each row's past, with each query's start when packed.
function maskInputs(mask: AttentionMask, B: number, T: number, S: number): tf.NamedTensorMap {
  if (mask instanceof tf.Tensor) return { mask: tf.reshape(mask, [B, T, S]) };
  const { past, starts } = causalOf(mask);
  const pastInput = { past: tf.tensor1d(past as number[], 'int32') };
  return starts === undefined ? pastInput : { ...pastInput, starts: tf.tensor2d(starts, [B, T], 'int32') };
}

function causalOf(mask: readonly number[] | SegmentedCausal): { past: readonly number[]; starts?: Int32Array } {
  return Array.isArray(mask) ? { past: mask as readonly number[] } : (mask as SegmentedCausal);
}

// The causal mask's past (and starts), checked against the shapes.
function checkCausal(op: string, mask: readonly number[] | SegmentedCausal, B: number, T: number, S: number): { past: readonly number[]; starts?: Int32Array } {
  const causal = causalOf(mask);
  checkPast(op, causal.past, B, T, S);
  const { past, starts } = causal;
  if (starts !== undefined) {
    if (starts.length !== B * T) throw new ComputeError(`${op}: starts must hold ${B * T} values (B * T), got ${starts.length}`);
    for (let i = 0; i < starts.length; i++) {
      const last = past[Math.floor(i / T)] + (i % T); // the query's own slot
      if (!(starts[i] >= 0 && starts[i] <= last)) {
        throw new ComputeError(`${op}: start ${starts[i]} of query ${i % T} in row ${Math.floor(i / T)} is outside [0, ${last}]`);
      }
    }
  }
  return causal;
}

// A whole-sequence attention kernel and its gradient kernel, [B, T, Hq*Dh]
// out. `inputs` are differentiated (the gradient kernel returns their
// gradients in this order), `masking` (maskInputs') and `constants` are not;
// the gradient kernel reads dy, the inputs, `constants` and what the forward
// pass kept: the probabilities, or each query's log-sum-exp with `masking`
// (it computes the probabilities again). With no gradient taped (scoring,
// prefill) nothing is kept.
function attentionKernels(
  forward: string,
  backward: string,
  inputs: tf.NamedTensorMap,
  masking: tf.NamedTensorMap,
  constants: tf.NamedTensorMap,
  attrs: Record<string, number>,
  keep: 'probs' | 'lse',
): tf.Tensor3D {
  if (!tf.engine().state.gradientDepth) return run(forward, { ...inputs, ...masking, ...constants }, { ...attrs, keep: 'none' }) as tf.Tensor3D;
  const names = Object.keys(inputs);
  const gradConstants = keep === 'lse' ? { ...constants, ...masking } : constants;
  const constantNames = Object.keys(gradConstants);
  const attend = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xs = args.slice(0, names.length) as tf.Tensor[];
    const save = args[names.length] as tf.GradSaveFunc;
    const named = Object.fromEntries(names.map((name, i) => [name, xs[i]]));
    const [out, kept] = run(forward, { ...named, ...masking, ...constants }, { ...attrs, keep }) as tf.Tensor[];
    save([...xs, kept, ...constantNames.map((name) => gradConstants[name])]);
    return {
      value: out,
      gradFunc: (dy, saved) => {
        const savedInputs = Object.fromEntries(names.map((name, i) => [name, saved[i]]));
        const savedConstants = Object.fromEntries(constantNames.map((name, i) => [name, saved[names.length + 1 + i]]));
        return run(backward, { dy: dy as tf.Tensor, ...savedInputs, [keep]: saved[names.length], ...savedConstants }, attrs) as tf.Tensor | tf.Tensor[];
      },
    };
  });
  return attend(...names.map((name) => inputs[name])) as tf.Tensor3D;
}

function checkPast(op: string, past: readonly number[], B: number, T: number, S: number): void {
  if (past.length !== B || past.some((p) => !(Number.isInteger(p) && p >= 0 && p + T <= S))) {
    throw new ComputeError(`${op}: past must hold ${B} integers in [0, ${S - T}], got [${past.join(', ')}]`);
  }
}

/**
 * causalAttention over the q, k and v that qkvHeads splits from one merged
 * projection qkv [B, T, (Hq + 2 Hkv) Dh] (q and k rotated by cos and sin
 * [B, T, Dh/2]), the keys being the same T tokens (no cache); mask as
 * causalAttention's with S = T. Returns [B, T, Hq * Dh]. On wasm+native one
 * kernel each way reads and writes the merged layout, and no heads-first
 * q, k and v are written or kept for the gradient.
 */
export function qkvAttention(qkv: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, nHeads: number, nKvHeads: number, mask: AttentionMask): tf.Tensor3D {
  if (!fusedKernelsActive()) {
    return tf.tidy(() => {
      const [q, k, v] = qkvHeads(qkv, cos, sin, nHeads, nKvHeads);
      return causalAttention(q, k, v, mask);
    });
  }
  const [B, T, width] = qkv.shape;
  const headDim = width / (nHeads + 2 * nKvHeads);
  if (!(mask instanceof tf.Tensor)) checkCausal('qkvAttention', mask, B, T, T);
  const attrs = { nHeads, nKvHeads, scale: 1 / Math.sqrt(headDim) };
  return tf.tidy(() => {
    // The rotary angles are constants the gradient kernel reads too.
    const angles: tf.NamedTensorMap = { cos: tf.reshape(cos, [B, T, headDim / 2]), sin: tf.reshape(sin, [B, T, headDim / 2]) };
    return attentionKernels(FusedKernel.qkvAttention, FusedKernel.qkvAttentionGrad, { qkv }, maskInputs(mask, B, T, T), angles, attrs, attentionKeeps(B, nHeads, T, T));
  });
}

/**
 * The additive bias [B, T, S] of the plain causal mask: query t of row b (at
 * slot past[b] + t) sees slots 0 .. past[b] + t (0), the later ones -1e9;
 * with `starts` ([B * T], SegmentedCausal's) slots before starts[b * T + t] too.
 */
export function causalBias(past: readonly number[], T: number, S: number, starts?: Int32Array): tf.Tensor3D {
  const bias = new Float32Array(past.length * T * S);
  past.forEach((first, b) => {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * S;
      bias.fill(-1e9, row + first + t + 1, row + S);
      if (starts !== undefined) bias.fill(-1e9, row, row + starts[b * T + t]);
    }
  });
  return tf.tensor3d(bias, [past.length, T, S]);
}

/** log softmax(logits[n])[targets[n]] per row/** log softmax(logits[n])[targets[n]] per row: logits [N, V], targets [N] int32 in [0, V); returns [N]. */
export function logSoftmaxGather(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  if (fusedKernelsActive()) return run(FusedKernel.logSoftmaxGather, { logits, targets }) as tf.Tensor1D;
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits); // [N, V]
    // The pick is a product with a one-hot mask, so its gradient is elementwise
    // (a gather's needs UnsortedSegmentSum, which the wasm backend lacks). The
    // mask is made int32 and cast: the wasm OneHot kernel writes int32 whatever dtype it is asked for.
    const picks = tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32'); // [N, V]
    return tf.sum(tf.mul(logProbs, picks), -1) as tf.Tensor1D; // [N]
  });
}

/**
 * sum(x^2) over every value of all `tensors` as one vector, as a number (a
 * global gradient norm's square): one native pass over all of them on
 * wasm+native, else sumOfSquares per tensor, added and read back once.
 */
export function sumOfSquaresAll(tensors: readonly tf.Tensor[]): number {
  if (tensors.length === 0) return 0;
  const direct = nativeSumOfSquares(tensors);
  if (direct !== undefined) return direct;
  const total = tf.tidy(() => tf.addN(tensors.map((t) => sumOfSquares(t)))); // []
  try {
    return total.dataSync()[0];
  } finally {
    total.dispose();
  }
}

/** sum(x^2) over every value of x, as a scalar tensor: one pass on wasm+native (a gradient's share of the global norm). */
export function sumOfSquares(x: tf.Tensor): tf.Scalar {
  if (fusedKernelsActive() && x.dtype === 'float32') return run(FusedKernel.sumSquares, { x }) as tf.Scalar;
  return tf.tidy(() => tf.sum(tf.square(x)) as tf.Scalar);
}

/** Hyperparameters of one AdamW update of one weight (its own step count t). */
export interface AdamWUpdateParams {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** Decoupled weight decay of this weight (0 for none). */
  readonly weightDecay: number;
  /** The weight's step, 1 on its first update. */
  readonly step: number;
  /** The gradient is used as g * gradientScale (gradient clipping's factor). Default 1. */
  readonly gradientScale?: number;
}

/**
 * One AdamW update as PyTorch's torch.optim.AdamW: p * (1 - lr * wd) minus
 * lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), with the new
 * moments m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2. Returns
 * new tensors; the inputs are left as they were.
 */
export function adamwUpdate(
  p: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  params: AdamWUpdateParams,
): { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  const { learningRate, beta1, beta2, epsilon, weightDecay, step } = params;
  const gradientScale = params.gradientScale ?? 1;
  const decayFactor = 1 - learningRate * weightDecay;
  const stepSize = learningRate / (1 - Math.pow(beta1, step));
  const biasCorrection2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  if (fusedKernelsActive()) {
    const [pNext, mNext, vNext] = run(FusedKernel.adamw, { p, m, v, g }, { beta1, beta2, epsilon, decayFactor, stepSize, biasCorrection2Sqrt, gradientScale }) as tf.Tensor[];
    return { p: pNext, m: mNext, v: vNext };
  }
  const [pNext, mNext, vNext] = tf.tidy(() => {
    const scaled = gradientScale === 1 ? g : tf.mul(g, gradientScale);
    const mNew = tf.add(tf.mul(m, beta1), tf.mul(scaled, 1 - beta1));
    const vNew = tf.add(tf.mul(v, beta2), tf.mul(tf.square(scaled), 1 - beta2));
    const denominator = tf.add(tf.div(tf.sqrt(vNew), biasCorrection2Sqrt), epsilon);
    const decayed = weightDecay === 0 ? p : tf.mul(p, decayFactor);
    return [tf.sub(decayed, tf.mul(tf.div(mNew, denominator), stepSize)), mNew, vNew];
  });
  return { p: pNext, m: mNext, v: vNext };
}

// Gradients of the fused kernels. Each input's gradient is its own kernel, so
// an input that needs none costs nothing; the rarely needed ones (of cos, sin
// and the mask) compose plain ops.
const gradients: tf.GradConfig[] = [
  {
    kernelName: FusedKernel.rmsNorm,
    inputsToSave: ['x', 'weight'],
    gradFunc: (dy, [x, weight], attrs) => ({
      x: () => run(FusedKernel.rmsNormGradX, { x, weight, dy: dy as tf.Tensor }, { eps: Number(attrs.eps) }) as tf.Tensor,
      weight: () => run(FusedKernel.rmsNormGradWeight, { x, dy: dy as tf.Tensor }, { eps: Number(attrs.eps) }) as tf.Tensor,
    }),
  },
  {
    kernelName: FusedKernel.addRmsNorm,
    inputsToSave: ['weight'],
    outputsToSave: [true, false],
    gradFunc: (dy, saved, attrs) => {
      const [weight, h] = saved;
      // A null dy: that output does not reach the loss.
      const [dh, dNormed] = dy as (tf.Tensor | null)[];
      if (dNormed === null) {
        const through = () => (dh === null ? tf.zerosLike(h) : tf.clone(dh));
        return { x: through, y: through, weight: () => tf.zerosLike(weight) };
      }
      // Both gradients in one pass; y gets a clone of x's (the tape may dispose x's).
      const inputs: tf.NamedTensorMap = dh === null ? { x: h, weight, dy: dNormed } : { x: h, weight, dy: dNormed, addend: dh };
      const [dx, dWeight] = run(FusedKernel.rmsNormGrad, inputs, { eps: Number(attrs.eps) }) as tf.Tensor[];
      return { x: () => dx, y: () => tf.clone(dx), weight: () => dWeight };
    },
  },
  {
    kernelName: FusedKernel.swiglu,
    inputsToSave: ['gate', 'up'],
    gradFunc: (dy, [gate, up]) => ({
      gate: () => run(FusedKernel.swigluGradGate, { gate, up, dy: dy as tf.Tensor }) as tf.Tensor,
      up: () => run(FusedKernel.swigluGradUp, { gate, dy: dy as tf.Tensor }) as tf.Tensor,
    }),
  },
  {
    kernelName: FusedKernel.qkvHeads,
    inputsToSave: ['cos', 'sin'],
    gradFunc: (dy, [cos, sin]) => {
      const [dq, dk, dv] = dy as tf.Tensor[];
      const constant = () => {
        throw new ComputeError('qkvHeads has no gradient for the rotary angles: they are constants');
      };
      return { qkv: () => run(FusedKernel.qkvHeadsGrad, { dq, dk, dv, cos, sin }) as tf.Tensor, cos: constant, sin: constant };
    },
  },
  {
    kernelName: FusedKernel.swigluMerged,
    inputsToSave: ['gateUp'],
    gradFunc: (dy, [gateUp]) => ({
      gateUp: () => run(FusedKernel.swigluMergedGrad, { gateUp, dy: dy as tf.Tensor }) as tf.Tensor,
    }),
  },
  {
    kernelName: FusedKernel.rotaryHeads,
    inputsToSave: ['x', 'cos', 'sin'],
    gradFunc: (dy, [x, cos, sin]) => {
      const upstream = dy as tf.Tensor4D;
      // d/dcos = sum over heads of dy1 x1 + dy2 x2; d/dsin = sum over heads of dy2 x1 - dy1 x2.
      const angleGradient = (which: 'cos' | 'sin') => {
        const [x1, x2] = tf.split(tf.transpose(x, [0, 2, 1, 3]), 2, -1); // [B, H, T, Dh/2]
        const [dy1, dy2] = tf.split(upstream, 2, -1); // [B, H, T, Dh/2]
        const terms = which === 'cos' ? tf.add(tf.mul(dy1, x1), tf.mul(dy2, x2)) : tf.sub(tf.mul(dy2, x1), tf.mul(dy1, x2));
        return tf.reshape(tf.sum(terms, 1), cos.shape);
      };
      return {
        x: () => run(FusedKernel.rotaryHeadsGrad, { dy: upstream, cos, sin }) as tf.Tensor,
        cos: () => angleGradient('cos'),
        sin: () => angleGradient('sin'),
      };
    },
  },
  {
    kernelName: FusedKernel.maskedSoftmax,
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const probs = saved[saved.length - 1];
      const upstream = dy as tf.Tensor;
      return {
        scores: () => run(FusedKernel.maskedSoftmaxGrad, { probs, dy: upstream }, { scale: Number(attrs.scale) }) as tf.Tensor,
        // The mask adds to every head's scores: its gradient is the unscaled one summed over heads.
        mask: () => tf.sum(run(FusedKernel.maskedSoftmaxGrad, { probs, dy: upstream }, { scale: 1 }) as tf.Tensor, 1),
      };
    },
  },
  {
    kernelName: FusedKernel.logSoftmaxGather,
    inputsToSave: ['logits', 'targets'],
    gradFunc: (dy, [logits, targets]) => ({
      logits: () => run(FusedKernel.logSoftmaxGatherGrad, { logits, targets, dy: dy as tf.Tensor }) as tf.Tensor,
      targets: () => tf.zerosLike(targets),
    }),
  },
];

let registered = false;

/** Registers the gradients of the fused kernels (idempotent; initCompute calls it). */
export function registerFusedGradients(): void {
  if (registered) return;
  for (const gradient of gradients) tf.registerGradient(gradient);
  registered = true;
}
