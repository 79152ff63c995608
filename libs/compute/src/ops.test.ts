// The fused ops against the plain tfjs ops they replace: values and
// gradients (tf.grads) on random inputs of odd shapes, with the native
// kernels on the wasm backend and composed on the cpu backend; no leaked
// tensors; bad targets rejected.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { initCompute } from './backend';
import { FusedKernel, fusedKernelsActive, useFusedKernels } from './fused-kernels';
import { loadNativeGemm } from './native';
import { adamwUpdate, addRmsNorm, attentionKeepLimit, attentionKeeps, causalAttention, defaultAttentionKeepBytes, logSoftmaxGather, maskedSoftmax, qkvAttention, setAttentionKeepLimit, qkvHeads, rmsNorm, rotaryHeads, sumOfSquares, sumOfSquaresAll, swiglu, swigluMerged } from './ops';
import { randomFloats, relativeError, seededUniform } from './testing-random';

const random = seededUniform(21);
const uniform = (shape: number[], scale = 1) => tf.tensor(randomFloats(tf.util.sizeFromShape(shape), random).map((x) => x * scale), shape);

// An additive causal mask [B, T, S] whose queries sit at the last T of S slots,
// plus a masked padding slot; `emptyRows` of sequence 0 attend no key at all.
function causalMask(B: number, T: number, S: number, emptyRows: number[] = []): tf.Tensor3D {
  const bias = new Float32Array(B * T * S);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < S; s++) {
        if (s > S - T + t || (b === 1 && s === 0 && t > 0) || (b === 0 && emptyRows.includes(t))) bias[(b * T + t) * S + s] = -1e9;
      }
    }
  }
  return tf.tensor3d(bias, [B, T, S]);
}

// SegmentedCausal's starts [B * T] of rows whose segments begin at the given
// query indices (each row's first at 0): the slot of its segment's first query.
function packedStarts(T: number, rows: number[][], past: number[] = rows.map(() => 0)): Int32Array {
  const starts = new Int32Array(rows.length * T);
  rows.forEach((begins, b) => {
    for (let t = 0; t < T; t++) starts[b * T + t] = past[b] + Math.max(...begins.filter((x) => x <= t));
  });
  return starts;
}

// The additive mask [B, 1, S] of one decoding step over a cache whose row b
// holds lengths[b] tokens: later slots (unused capacity) masked.
function decodeMask(lengths: number[], S: number): tf.Tensor3D {
  const bias = new Float32Array(lengths.length * S);
  lengths.forEach((length, b) => bias.fill(-1e9, b * S + length, (b + 1) * S));
  return tf.tensor3d(bias, [lengths.length, 1, S]);
}

// Each case: inputs, the op on them, and which inputs to differentiate.
interface Case {
  name: string;
  inputs: () => tf.Tensor[];
  op: (...inputs: tf.Tensor[]) => tf.Tensor;
  differentiable: number[];
}

const cases: Case[] = [
  { name: 'rmsNorm', inputs: () => [uniform([3, 5, 37], 2), uniform([37])], op: (x, w) => rmsNorm(x, w, 1e-5), differentiable: [0, 1] },
  {
    // Both outputs weighted by the probe, so the residual's gradient and the norm's add up.
    name: 'addRmsNorm',
    inputs: () => [uniform([3, 5, 37], 2), uniform([3, 5, 37]), uniform([37])],
    op: (x, y, w) => tf.concat(addRmsNorm(x, y, w, 1e-5).map((t) => tf.reshape(t, [-1]))),
    differentiable: [0, 1, 2],
  },
  {
    // Only the normed output reaches the loss: h's gradient is null on the tape.
    name: 'addRmsNorm (normed output only)',
    inputs: () => [uniform([4, 33], 2), uniform([4, 33]), uniform([33])],
    op: (x, y, w) => addRmsNorm(x, y, w, 1e-6)[1],
    differentiable: [0, 1, 2],
  },
  {
    // Only the sum reaches the loss: the norm's gradient is null (and the weight has none).
    name: 'addRmsNorm (sum output only)',
    inputs: () => [uniform([4, 33], 2), uniform([4, 33]), uniform([33])],
    op: (x, y, w) => tf.mul(addRmsNorm(x, y, w, 1e-6)[0], 2),
    differentiable: [0, 1],
  },
  { name: 'swiglu', inputs: () => [uniform([7, 53], 4), uniform([7, 53])], op: (g, u) => swiglu(g, u), differentiable: [0, 1] },
  {
    name: 'rotaryHeads',
    inputs: () => [uniform([2, 9, 3, 10]), uniform([2, 1, 9, 5]), uniform([2, 1, 9, 5])],
    op: (x, c, s) => rotaryHeads(x as tf.Tensor4D, c, s),
    differentiable: [0, 1, 2],
  },
  {
    name: 'swigluMerged',
    inputs: () => [uniform([3, 5, 2 * 27], 4)],
    op: (gu) => swigluMerged(gu),
    differentiable: [0],
  },
  {
    // q, k and v of grouped heads from one projection; each output weighted
    // differently so all three gradients are checked.
    name: 'qkvHeads (grouped heads)',
    inputs: () => [uniform([2, 9, (4 + 2 * 2) * 10]), uniform([2, 1, 9, 5]), uniform([2, 1, 9, 5])],
    op: (x, c, s) => {
      const [q, k, v] = qkvHeads(x as tf.Tensor3D, c, s, 4, 2);
      return tf.concat([tf.reshape(q, [-1]), tf.reshape(tf.mul(k, 2), [-1]), tf.reshape(tf.mul(v, -3), [-1])]);
    },
    differentiable: [0],
  },
  {
    name: 'maskedSoftmax',
    inputs: () => [uniform([2, 3, 5, 19], 3), causalMask(2, 5, 19)],
    op: (s, m) => maskedSoftmax(s as tf.Tensor4D, m, 0.7),
    differentiable: [0],
  },
  {
    name: 'maskedSoftmax without a mask',
    inputs: () => [uniform([2, 3, 5, 19], 3)],
    op: (s) => maskedSoftmax(s as tf.Tensor4D, null, 1.3),
    differentiable: [0],
  },
  {
    name: 'causalAttention (grouped heads)',
    inputs: () => [uniform([2, 4, 7, 6]), uniform([2, 2, 11, 6]), uniform([2, 2, 11, 6]), causalMask(2, 7, 11)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    name: 'causalAttention (one decoding step)',
    inputs: () => [uniform([3, 2, 1, 8]), uniform([3, 2, 13, 8]), uniform([3, 2, 13, 8]), causalMask(3, 1, 13)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    // Values by the fused decode kernel (gradients compose: it is never trained through).
    name: 'causalAttention (decoding step, grouped heads, unused slots masked)',
    inputs: () => [uniform([3, 4, 1, 8], 2), uniform([3, 2, 13, 8]), uniform([3, 2, 13, 8]), decodeMask([13, 5, 1], 13)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    name: 'logSoftmaxGather',
    inputs: () => [uniform([13, 67], 5), tf.tensor1d(Array.from({ length: 13 }, (_, i) => (i * 29) % 67), 'int32')],
    op: (l, t) => logSoftmaxGather(l as tf.Tensor2D, t as tf.Tensor1D),
    differentiable: [0],
  },
  // Large enough to split across the native thread pool.
  { name: 'rmsNorm (threaded)', inputs: () => [uniform([301, 131], 2), uniform([131])], op: (x, w) => rmsNorm(x, w, 1e-6), differentiable: [0, 1] },
  {
    name: 'addRmsNorm (threaded)',
    inputs: () => [uniform([301, 131], 2), uniform([301, 131]), uniform([131])],
    op: (x, y, w) => tf.concat(addRmsNorm(x, y, w, 1e-6).map((t, i) => tf.reshape(tf.mul(t, i + 1), [-1]))),
    differentiable: [0, 1, 2],
  },
  { name: 'swiglu (threaded)', inputs: () => [uniform([257, 131], 4), uniform([257, 131])], op: (g, u) => swiglu(g, u), differentiable: [0, 1] },
  {
    name: 'rotaryHeads (threaded)',
    inputs: () => [uniform([2, 65, 4, 66]), uniform([2, 65, 33]), uniform([2, 65, 33])],
    op: (x, c, s) => rotaryHeads(x as tf.Tensor4D, c, s),
    differentiable: [0],
  },
  { name: 'swigluMerged (threaded)', inputs: () => [uniform([257, 2 * 131], 4)], op: (gu) => swigluMerged(gu), differentiable: [0] },
  {
    name: 'qkvHeads (threaded)',
    inputs: () => [uniform([2, 65, 3 * 4 * 40]), uniform([2, 65, 20]), uniform([2, 65, 20])],
    op: (x, c, s) => tf.concat(qkvHeads(x as tf.Tensor3D, c, s, 4, 4).map((t, i) => tf.reshape(tf.mul(t, i + 1), [-1]))),
    differentiable: [0],
  },
  {
    name: 'maskedSoftmax (threaded)',
    inputs: () => [uniform([2, 4, 33, 131], 3), causalMask(2, 33, 131)],
    op: (s, m) => maskedSoftmax(s as tf.Tensor4D, m, 0.125),
    differentiable: [0],
  },
  {
    name: 'causalAttention (grouped heads, threaded)',
    inputs: () => [uniform([2, 6, 33, 16]), uniform([2, 2, 33, 16]), uniform([2, 2, 33, 16]), causalMask(2, 33, 33)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    name: 'causalAttention (decoding step, threaded)',
    inputs: () => [uniform([9, 6, 1, 64], 2), uniform([9, 3, 131, 64]), uniform([9, 3, 131, 64]), decodeMask([131, 64, 100, 7, 1, 131, 30, 2, 90], 131)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0],
  },
  {
    // Head sizes that are not a multiple of the vector width (masked tails in
    // the SIMD scores and weighted sums): 40 (32 + 8) and 28 (24 + 4).
    name: 'causalAttention (decoding step, 40- and 28-wide heads)',
    inputs: () => [uniform([4, 4, 1, 68], 2), uniform([4, 2, 29, 68]), uniform([4, 2, 29, 68]), decodeMask([29, 3, 17, 1], 29)],
    op: (q, k, v, m) => {
      const [q40, q28] = tf.split(q, [40, 28], 3);
      const [k40, k28] = tf.split(k, [40, 28], 3);
      const [v40, v28] = tf.split(v, [40, 28], 3);
      const wide = causalAttention(q40 as tf.Tensor4D, k40 as tf.Tensor4D, v40 as tf.Tensor4D, m);
      const narrow = causalAttention(q28 as tf.Tensor4D, k28 as tf.Tensor4D, v28 as tf.Tensor4D, m);
      return tf.concat([wide, narrow], -1);
    },
    differentiable: [0],
  },
  {
    // 40-wide heads (a masked last chunk), rows past the tiles' multiples, keys
    // past a multiple of 16, and rows that attend no key (uniform, as composed).
    name: 'causalAttention (40-wide heads, rows with no key, threaded)',
    inputs: () => [uniform([3, 4, 37, 40]), uniform([3, 2, 45, 40]), uniform([3, 2, 45, 40]), causalMask(3, 37, 45, [0, 5, 30])],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    // 40-wide heads take a 24-wide strip of 4-row tiles and a 16-wide one:
    // 11 rows and 15 keys leave 3 rows past the 4-row tiles.
    name: 'causalAttention (40-wide heads, 3 rows past the 4-row tiles)',
    inputs: () => [uniform([2, 2, 11, 40]), uniform([2, 1, 15, 40]), uniform([2, 1, 15, 40]), causalMask(2, 11, 15)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    // The causal mask given as each row's past (no bias tensor), queries at slots 4.. and 0..
    name: 'causalAttention (causal from each row\'s past)',
    inputs: () => [uniform([2, 4, 9, 40]), uniform([2, 2, 13, 40]), uniform([2, 2, 13, 40])],
    op: (q, k, v) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, [4, 0]),
    differentiable: [0, 1, 2],
  },
  {
    // Wider than the register-tiled products take: the GEMM's.
    name: 'causalAttention (136-wide heads)',
    inputs: () => [uniform([1, 2, 9, 136]), uniform([1, 1, 9, 136]), uniform([1, 1, 9, 136]), causalMask(1, 9, 9)],
    op: (q, k, v, m) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, m),
    differentiable: [0, 1, 2],
  },
  {
    // Read straight from the merged projection: grouped heads, a mask with
    // padding and rows that attend no key, 40-wide heads, threaded.
    name: 'qkvAttention (grouped heads, a mask, rows with no key, threaded)',
    inputs: () => [uniform([3, 37, (4 + 2 * 2) * 40]), uniform([3, 37, 20]), uniform([3, 37, 20]), causalMask(3, 37, 37, [0, 5, 30])],
    op: (x, c, s, m) => qkvAttention(x as tf.Tensor3D, c, s, 4, 2, m),
    differentiable: [0],
  },
  {
    // Causal from each row's past (here 0: keys are the queries' own tokens), 64-wide heads.
    name: 'qkvAttention (causal from each row\'s past)',
    inputs: () => [uniform([2, 19, 3 * 2 * 64]), uniform([2, 19, 32]), uniform([2, 19, 32])],
    op: (x, c, s) => qkvAttention(x as tf.Tensor3D, c, s, 2, 2, [0, 0]),
    differentiable: [0],
  },
  {
    // 40-wide heads from the merged projection, 14 tokens: 2 rows past the 4-row tiles.
    name: 'qkvAttention (40-wide heads, 2 rows past the 4-row tiles)',
    inputs: () => [uniform([2, 14, (2 + 2 * 1) * 40]), uniform([2, 14, 20]), uniform([2, 14, 20]), causalMask(2, 14, 14)],
    op: (x, c, s, m) => qkvAttention(x as tf.Tensor3D, c, s, 2, 1, m),
    differentiable: [0],
  },
  {
    // One token per row, no cache (a one-token scoring pass): each query sees its own key only.
    name: 'qkvAttention (one token)',
    inputs: () => [uniform([3, 1, (2 + 2 * 1) * 8]), uniform([3, 1, 4]), uniform([3, 1, 4]), causalMask(3, 1, 1)],
    op: (x, c, s, m) => qkvAttention(x as tf.Tensor3D, c, s, 2, 1, m),
    differentiable: [0],
  },
  {
    // Wider than the register-tiled products take: the GEMM's.
    name: 'qkvAttention (136-wide heads)',
    inputs: () => [uniform([1, 9, 3 * 136]), uniform([1, 9, 68]), uniform([1, 9, 68]), causalMask(1, 9, 9)],
    op: (x, c, s, m) => qkvAttention(x as tf.Tensor3D, c, s, 1, 1, m),
    differentiable: [0],
  },
  {
    // Sequences packed in rows (segments from 0, 25, 60 and from 0, 40, one of
    // them a padding run): whole 16-key chunks before a block's starts skipped.
    name: 'qkvAttention (causal within packed segments)',
    inputs: () => [uniform([2, 70, (4 + 2 * 2) * 40]), uniform([2, 70, 20]), uniform([2, 70, 20])],
    op: (x, c, s) => qkvAttention(x as tf.Tensor3D, c, s, 4, 2, { past: [0, 0], starts: packedStarts(70, [[0, 25, 60], [0, 40]]) }),
    differentiable: [0],
  },
  {
    name: 'causalAttention (causal within packed segments, past 3 and 0, 64-wide heads)',
    inputs: () => [uniform([2, 4, 50, 64]), uniform([2, 2, 53, 64]), uniform([2, 2, 53, 64])],
    op: (q, k, v) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, { past: [3, 0], starts: packedStarts(50, [[0, 20], [0, 17, 49]], [3, 0]) }),
    differentiable: [0, 1, 2],
  },
  {
    name: 'logSoftmaxGather (threaded)',
    inputs: () => [uniform([131, 517], 5), tf.tensor1d(Array.from({ length: 131 }, (_, i) => (i * 97) % 517), 'int32')],
    op: (l, t) => logSoftmaxGather(l as tf.Tensor2D, t as tf.Tensor1D),
    differentiable: [0],
  },
];

// Values and gradients of sum(op(...) * probe) for a fixed random probe.
function evaluate(c: Case, inputs: tf.Tensor[]): { value: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const value = c.op(...inputs);
    const probe = tf.tensor(randomFloats(value.size, seededUniform(3)), value.shape);
    const loss = (...xs: tf.Tensor[]) => {
      const all = inputs.map((t, i) => (c.differentiable.includes(i) ? xs[c.differentiable.indexOf(i)] : t));
      return tf.sum(tf.mul(c.op(...all), probe));
    };
    const grads = tf.grads(loss)(c.differentiable.map((i) => inputs[i]));
    return { value: value.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

describe('fused ops', () => {
  beforeAll(async () => {
    await initCompute({ env: { CREAM_BACKEND: 'wasm-native' } });
  });
  afterAll(() => useFusedKernels(true));

  // The case's values and gradients with the native kernels and composed.
  function expectFusedEqualsComposed(c: Case): void {
    const inputs = c.inputs();
    useFusedKernels(true);
    expect(fusedKernelsActive()).toBe(true);
    const fused = evaluate(c, inputs);
    useFusedKernels(false);
    const composed = evaluate(c, inputs);
    useFusedKernels(true);
    expect(relativeError(fused.value, composed.value), `${c.name} value`).toBeLessThan(1e-5);
    fused.grads.forEach((g, i) => expect(relativeError(g, composed.grads[i]), `${c.name} d/dinput${c.differentiable[i]}`).toBeLessThan(1e-4));
    tf.dispose(inputs);
  }

  for (const c of cases) {
    it(`${c.name}: the native kernel equals the composed ops, values and gradients`, () => expectFusedEqualsComposed(c));
  }

  // Whole-sequence attention has register-tiled AVX-512 and AVX2 products and
  // the GEMM's for other CPUs: each kernel the CPU supports against the composed ops.
  const native = loadNativeGemm();
  const isas = native.ok ? native.native.info().supported : [];
  // Each with the probabilities kept for the gradient, and with only each
  // query's log-sum-exp kept (the gradient computes them again).
  const wholeSequence = cases.filter((c) => /^(causal|qkv)Attention/.test(c.name) && !c.name.includes('decoding'));
  for (const isa of isas) {
    for (const [kept, limit] of [['probabilities', Infinity], ['log-sum-exp', 0]] as const) {
      it(`causalAttention and qkvAttention over whole sequences with the ${isa} kernel, ${kept} kept, equal the composed ops`, () => {
        if (!native.ok) throw new Error(native.reason);
        const before = native.native.info().isa;
        const limitBefore = setAttentionKeepLimit(limit);
        native.native.configure({ isa });
        try {
          for (const c of wholeSequence) expectFusedEqualsComposed(c);
        } finally {
          native.native.configure({ isa: before });
          setAttentionKeepLimit(limitBefore);
        }
      });
    }
  }

  it('keeps the attention probabilities up to attentionKeepLimit, above it only each query log-sum-exp', () => {
    expect(attentionKeepLimit()).toBe(defaultAttentionKeepBytes);
    // [B, Hq, T, S] float32 bytes against the limit.
    expect(attentionKeeps(16, 4, 128, 128)).toBe('probs'); // 4 MiB
    expect(attentionKeeps(16, 4, 256, 256)).toBe('probs'); // 16 MiB
    expect(attentionKeeps(16, 4, 257, 256)).toBe('lse');
    expect(() => setAttentionKeepLimit(-1)).toThrow(/bytes must be a number >= 0, got -1/);
    expect(() => setAttentionKeepLimit(Number.NaN)).toThrow(/bytes must be a number >= 0/);
    // What a gradient holds: the peak bytes of a forward and backward pass
    // drop by about the probabilities' [2, 4, 128, 128] (512 KiB) with the
    // log-sum-exp kept.
    const [B, Hq, T] = [2, 4, 128];
    const qkv = uniform([B, T, (Hq + 2 * 2) * 32]) as tf.Tensor3D;
    const [cos, sin] = [uniform([B, T, 16]), uniform([B, T, 16])];
    const loss = (x: tf.Tensor) => tf.sum(qkvAttention(x as tf.Tensor3D, cos, sin, Hq, 2, [0, 0]));
    const peak = async (limit: number) => {
      const before = setAttentionKeepLimit(limit);
      try {
        const info = await tf.profile(() => tf.grad(loss)(qkv));
        tf.dispose(info.result as tf.Tensor);
        return info.peakBytes;
      } finally {
        setAttentionKeepLimit(before);
      }
    };
    return (async () => {
      const [kept, recomputed] = [await peak(Infinity), await peak(0)];
      const probsBytes = B * Hq * T * T * 4;
      expect(kept - recomputed).toBeGreaterThan(0.9 * probsBytes);
      // The default keeps these: the same peak as Infinity.
      expect(await peak(defaultAttentionKeepBytes)).toBe(kept);
      tf.dispose([qkv, cos, sin]);
    })();
  });

  it('the attention gradient kernel takes exactly one of probs and lse', () => {
    tf.tidy(() => {
      const [q, k] = [uniform([1, 1, 3, 8]), uniform([1, 1, 3, 8])];
      const [probs, lse] = [uniform([1, 1, 3, 3]), uniform([1, 1, 3])];
      const grad = (kept: tf.NamedTensorMap) => () => tf.engine().runKernel(FusedKernel.attentionGrad, { dy: uniform([1, 3, 8]), q, keys: k, values: k, ...kept }, { scale: 1 });
      expect(grad({})).toThrow(/give exactly one of probs and lse/);
      expect(grad({ probs, lse })).toThrow(/give exactly one of probs and lse/);
    });
  });

  it('adamwUpdate: the native kernel equals the composed update over several steps', () => {
    const shape = [190, 177]; // split across the thread pool
    const params = { learningRate: 3e-3, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1 };
    const start = uniform(shape);
    const trajectories = [true, false].map((on) => {
      useFusedKernels(on);
      let state = { p: start.clone(), m: tf.zeros(shape), v: tf.zeros(shape) };
      const gradientRandom = seededUniform(8);
      for (let step = 1; step <= 3; step++) {
        const g = tf.tensor(randomFloats(190 * 177, gradientRandom), shape);
        const next = adamwUpdate(state.p, state.m, state.v, g, { ...params, step });
        tf.dispose([state.p, state.m, state.v, g]);
        state = next;
      }
      const values = [state.p, state.m, state.v].map((t) => t.dataSync() as Float32Array);
      tf.dispose([state.p, state.m, state.v]);
      return values;
    });
    useFusedKernels(true);
    start.dispose();
    trajectories[0].forEach((values, i) => expect(relativeError(values, trajectories[1][i]), ['p', 'm', 'v'][i]).toBeLessThan(1e-5));
  });

  it('adamwUpdate with a gradient scale equals the update on the scaled gradient, native and composed', () => {
    const shape = [190, 177];
    const [p, m, v] = [uniform(shape), uniform(shape, 0.1), tf.abs(uniform(shape, 0.1))];
    const g = uniform(shape);
    const params = { learningRate: 3e-3, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, step: 4 };
    const results = [true, false].flatMap((on) => {
      useFusedKernels(on);
      const scaled = tf.mul(g, 0.37);
      const viaScale = adamwUpdate(p, m, v, g, { ...params, gradientScale: 0.37 });
      const viaTensor = adamwUpdate(p, m, v, scaled, params);
      const out = [viaScale, viaTensor].map((r) => [r.p, r.m, r.v].map((t) => t.dataSync() as Float32Array));
      tf.dispose([scaled, viaScale.p, viaScale.m, viaScale.v, viaTensor.p, viaTensor.m, viaTensor.v]);
      return out;
    });
    useFusedKernels(true);
    // Native: bit for bit (the same product, rounded once); composed likewise; native against composed within rounding.
    results[0].forEach((values, i) => expect(values).toEqual(results[1][i]));
    results[2].forEach((values, i) => expect(values).toEqual(results[3][i]));
    results[0].forEach((values, i) => expect(relativeError(values, results[2][i])).toBeLessThan(1e-5));
    tf.dispose([p, m, v, g]);
  });

  it('sumOfSquares equals the float64 sum, small and split across the pool', () => {
    for (const n of [1, 37, 70001]) {
      const values = randomFloats(n, random);
      const x = tf.tensor1d(values);
      let want = 0;
      for (const value of values) want += value * value;
      try {
        for (const on of [true, false]) {
          useFusedKernels(on);
          const got = sumOfSquares(x);
          expect(got.shape).toEqual([]);
          // Native: float lanes per 4,096 values, summed in float64; composed: tf.sum in float32.
          expect(Math.abs(got.dataSync()[0] - want) / want, `n ${n} fused ${on}`).toBeLessThan(on ? 1e-6 : 1e-4);
          got.dispose();
        }
      } finally {
        useFusedKernels(true);
        x.dispose();
      }
    }
  });

  it('sumOfSquaresAll equals the float64 sum over many tensors, the same on 1 and 2 threads, native and composed', () => {
    const sizes = [1, 37, 4096, 4097, 70007, 160];
    const arrays = sizes.map((n) => randomFloats(n, random));
    const tensors = arrays.map((values, i) => tf.reshape(tf.tensor1d(values), i === 4 ? [7, 10000 + 1] : [values.length]));
    let want = 0;
    for (const values of arrays) for (const value of values) want += value * value;
    const native = loadNativeGemm();
    if (!native.ok) throw new Error(native.reason);
    const threads = native.native.info().threads;
    try {
      const byThreads = [1, 2].map((t) => {
        native.native.configure({ threads: t });
        return sumOfSquaresAll(tensors);
      });
      // Chunk sums added in list order: the same number whatever the split.
      expect(byThreads[0]).toBe(byThreads[1]);
      expect(Math.abs(byThreads[0] - want) / want).toBeLessThan(1e-6);
      useFusedKernels(false);
      expect(Math.abs(sumOfSquaresAll(tensors) - want) / want).toBeLessThan(1e-4);
      expect(sumOfSquaresAll([])).toBe(0);
    } finally {
      useFusedKernels(true);
      native.native.configure({ threads });
      tf.dispose(tensors);
    }
  });

  it('leaks no tensors, forward or backward (attention keeping its probabilities or its log-sum-exp)', () => {
    const before = tf.memory().numTensors;
    for (const limit of [Infinity, 0]) {
      const limitBefore = setAttentionKeepLimit(limit);
      for (const c of cases) {
        const inputs = c.inputs();
        evaluate(c, inputs);
        tf.dispose(inputs);
      }
      setAttentionKeepLimit(limitBefore);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a target outside the vocabulary', () => {
    tf.tidy(() => {
      expect(() => logSoftmaxGather(uniform([2, 5]) as tf.Tensor2D, tf.tensor1d([1, 5], 'int32'))).toThrow(/target 5 at row 1 is outside \[0, 5\)/);
    });
  });

  it('rejects a past that leaves the queries no room in the keys', () => {
    tf.tidy(() => {
      const [q, k] = [uniform([2, 2, 5, 8]) as tf.Tensor4D, uniform([2, 2, 7, 8]) as tf.Tensor4D];
      expect(() => causalAttention(q, k, k, [2, 3])).toThrow(/past must hold 2 integers in \[0, 2\], got \[2, 3\]/);
      expect(() => causalAttention(q, k, k, [0])).toThrow(/past must hold 2 integers/);
      // Without a cache the keys are the queries' own tokens: only past 0 fits.
      expect(() => qkvAttention(uniform([2, 5, 3 * 8]) as tf.Tensor3D, uniform([2, 5, 4]), uniform([2, 5, 4]), 1, 1, [0, 1])).toThrow(
        /qkvAttention: past must hold 2 integers in \[0, 0\], got \[0, 1\]/,
      );
      // A packed segment's start past its query's own slot, or too few starts.
      const starts = packedStarts(5, [[0, 3], [0]], [2, 0]);
      starts[4] = 5; // query 4 of row 0 sits at slot 2 + 4 = 6: start 5 is fine
      expect(() => causalAttention(q, k, k, { past: [2, 0], starts })).not.toThrow();
      starts[5] = 1; // query 0 of row 1 sits at slot 0
      expect(() => causalAttention(q, k, k, { past: [2, 0], starts })).toThrow(/causalAttention: start 1 of query 0 in row 1 is outside \[0, 0\]/);
      expect(() => causalAttention(q, k, k, { past: [2, 0], starts: starts.subarray(1) })).toThrow(/starts must hold 10 values \(B \* T\), got 9/);
    });
  });

  it('compose plain tfjs ops on the cpu backend, with the same results', async () => {
    const inputs = cases.map((c) => c.inputs());
    const onWasm = cases.map((c, i) => evaluate(c, inputs[i]));
    const host = inputs.map((list) => list.map((t) => ({ values: t.dataSync().slice(), shape: t.shape, dtype: t.dtype })));
    tf.dispose(inputs);
    await initCompute({ env: { CREAM_BACKEND: 'cpu' } });
    try {
      expect(fusedKernelsActive()).toBe(false);
      cases.forEach((c, i) => {
        const onCpuInputs = host[i].map(({ values, shape, dtype }) => tf.tensor(values, shape, dtype));
        const onCpu = evaluate(c, onCpuInputs);
        expect(relativeError(onCpu.value, onWasm[i].value), c.name).toBeLessThan(1e-5);
        onCpu.grads.forEach((g, j) => expect(relativeError(g, onWasm[i].grads[j]), `${c.name} gradient ${j}`).toBeLessThan(1e-4));
        tf.dispose(onCpuInputs);
      });
    } finally {
      await initCompute({ env: { CREAM_BACKEND: 'wasm-native' } });
    }
  });
});
