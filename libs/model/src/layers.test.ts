// Each building block against the float64 reference: values, and gradients
// (tfjs autodiff in fp32) against central differences of the reference w.r.t.
// inputs and every weight, on configs with GQA, biases, q/k norms and scaling.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type ModelConfig } from './index';
import { RotaryEmbedding, applyRotary, rmsNorm, ropeInverseFrequencies, selfAttention, swiGluMlp, type AttentionWeights } from './layers';
import { layerWeightNames } from './weights';
import {
  TEST_CONFIGS,
  centralDifference,
  createTestModel,
  gradientError,
  probeIndices,
  pseudoRandom,
  referenceAttention,
  referenceInverseFrequencies,
  referenceLayer,
  referenceMlp,
  referenceRmsNorm,
  referenceRotary,
  type ReferenceLayer,
} from './testing';

const rows = (flat: Float64Array, width: number) =>
  Array.from({ length: flat.length / width }, (_, t) => flat.subarray(t * width, (t + 1) * width));

// Sum of out * projection: a scalar loss whose gradient reaches every output.
const project = (out: readonly Float64Array[], projection: Float64Array) =>
  out.reduce((sum, row, t) => row.reduce((s, v, i) => s + v * projection[t * row.length + i], sum), 0);

// Checks tf gradients `analytic[k]` of inputs `values[k]` (the reference's arrays) by central differences.
function expectGradients(
  loss: () => number,
  values: readonly Float64Array[],
  analytic: readonly ArrayLike<number>[],
  names: readonly string[],
  tolerance = 1e-5,
  probes = 5,
): void {
  values.forEach((array, k) => {
    const indices = probeIndices(array.length, probes);
    const numeric = indices.map((index) => centralDifference(loss, array, index));
    const error = gradientError(analytic[k], indices, numeric);
    if (process.env.SHOW_GRADIENT_ERRORS) console.log(names[k], error);
    expect(error, names[k]).toBeLessThan(tolerance);
  });
}

// A causal additive mask [1, 1, 1, T, T].
function causalBias(T: number): tf.Tensor {
  const values = new Float32Array(T * T);
  for (let t = 0; t < T; t++) for (let s = t + 1; s < T; s++) values[t * T + s] = -1e9;
  return tf.tensor(values, [1, 1, 1, T, T]);
}

describe('rmsNorm', () => {
  it('matches the reference, and its gradients w.r.t. x and weight', () => {
    const D = 7;
    const eps = 1e-5;
    const x = pseudoRandom(3 * D, 1).map((v) => 4 * v);
    const weight = pseudoRandom(D, 2).map((v) => Math.fround(1 + v));
    const projection = pseudoRandom(3 * D, 3);
    const loss = () => project(rows(x, D).map((row) => referenceRmsNorm(row, weight, eps)), projection);

    const [xT, wT, pT] = [tf.tensor2d(Float32Array.from(x), [3, D], 'float32'), tf.tensor1d(Float32Array.from(weight), 'float32'), tf.tensor2d(Float32Array.from(projection), [3, D], 'float32')];
    const out = tf.tidy(() => tf.sum(tf.mul(rmsNorm(xT, wT, eps), pT)));
    expect(Math.abs(out.dataSync()[0] - loss()) / Math.abs(loss())).toBeLessThan(1e-5);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b, eps), pT)))([xT, wT]);
    expectGradients(loss, [x, weight], grads.map((g) => g.dataSync()), ['x', 'weight'], 1e-5, 21);
    tf.dispose([xT, wT, pT, out, ...grads]);
  });
});

describe('rotary embeddings', () => {
  it.each(Object.entries(TEST_CONFIGS))('%s: frequencies and the rotate-half rotation match the reference', (_name, config) => {
    const ours = ropeInverseFrequencies(config);
    const theirs = referenceInverseFrequencies(config);
    ours.forEach((f, i) => expect(Math.abs(f - theirs[i]) / theirs[i]).toBeLessThan(1e-12));

    const { headDim } = config;
    const positions = [0, 1, 7, 30, config.maxPositionEmbeddings - 1];
    const x = pseudoRandom(positions.length * headDim, 4);
    const rotary = new RotaryEmbedding(config);
    const got = tf.tidy(() => {
      const angles = rotary.angles(tf.tensor2d([positions], [1, positions.length], 'int32'), Math.max(...positions));
      return applyRotary(tf.tensor4d(Float32Array.from(x), [1, 1, positions.length, headDim], 'float32'), angles).dataSync();
    });
    rotary.dispose();
    positions.forEach((p, t) => {
      const expected = referenceRotary(x.subarray(t * headDim, (t + 1) * headDim), p, theirs);
      expected.forEach((v, d) => expect(Math.abs(got[t * headDim + d] - v)).toBeLessThan(1e-5));
    });
  });
});

// The configs whose attention differs: MHA, GQA + small theta, biases, q/k norms, o bias + llama3 scaling.
const attentionConfigs = Object.entries(TEST_CONFIGS);

describe('selfAttention', () => {
  it.each(attentionConfigs)('%s: matches the reference, and its gradients w.r.t. x and every weight', (_name, config: ModelConfig) => {
    const test = createTestModel(config, 5);
    onTestFinished(test.dispose);
    const D = config.hiddenSize;
    const T = 5;
    const positions = [3, 4, 5, 6, 7]; // not from 0, so a rotation is tested at every step
    const layer: ReferenceLayer = referenceLayer(test.reference, 1);
    const x = pseudoRandom(T * D, 6);
    const projection = pseudoRandom(T * D, 7);
    const loss = () => project(referenceAttention(config, layer, rows(x, D), positions), projection);

    const names = layerWeightNames(1);
    const roles = (['wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'bo', 'qNorm', 'kNorm'] as const).filter((role) => test.weights.has(names[role]));
    const tensors = roles.map((role) => test.weights.get(names[role]) as tf.Tensor);
    const referenceArrays = roles.map((role) => test.reference.get(names[role]) as Float64Array);
    const rotary = new RotaryEmbedding(config);
    const [xT, pT, mask, positionsT] = [
      tf.tensor3d(Float32Array.from(x), [1, T, D], 'float32'),
      tf.tensor3d(Float32Array.from(projection), [1, T, D], 'float32'),
      causalBias(T),
      tf.tensor2d([positions], [1, T], 'int32'),
    ];
    const f = (input: tf.Tensor, ...weights: tf.Tensor[]) => {
      const w = Object.fromEntries(roles.map((role, k) => [role, weights[k]])) as unknown as AttentionWeights;
      const angles = rotary.angles(positionsT as tf.Tensor2D, 7);
      return tf.sum(tf.mul(selfAttention(input as tf.Tensor3D, w, config, angles, mask), pT));
    };
    const value = tf.tidy(() => f(xT, ...tensors).dataSync()[0]);
    expect(Math.abs(value - loss()) / Math.abs(loss())).toBeLessThan(1e-5);
    const grads = tf.grads(f)([xT, ...tensors]);
    expectGradients(loss, [x, ...referenceArrays], grads.map((g) => g.dataSync()), ['x', ...roles]);
    tf.dispose([xT, pT, mask, positionsT, ...grads]);
    rotary.dispose();
  });
});

describe('swiGluMlp', () => {
  it('matches the reference, and its gradients w.r.t. x, w1, w2, w3', () => {
    const test = createTestModel(TEST_CONFIGS.llama3Odd, 8);
    onTestFinished(test.dispose);
    const D = test.config.hiddenSize;
    const T = 3;
    const layer = referenceLayer(test.reference, 0);
    const x = pseudoRandom(T * D, 9).map((v) => 2 * v);
    const projection = pseudoRandom(T * D, 10);
    const loss = () => project(rows(x, D).map((row) => referenceMlp(layer, row)), projection);
    const names = layerWeightNames(0);
    const [w1, w2, w3] = [names.w1, names.w2, names.w3].map((name) => test.weights.get(name) as tf.Tensor);
    const [xT, pT] = [tf.tensor3d(Float32Array.from(x), [1, T, D], 'float32'), tf.tensor3d(Float32Array.from(projection), [1, T, D], 'float32')];
    const f = (input: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(swiGluMlp(input as tf.Tensor3D, { w1: a, w2: b, w3: c }), pT));
    const value = tf.tidy(() => f(xT, w1, w2, w3).dataSync()[0]);
    expect(Math.abs(value - loss()) / Math.abs(loss())).toBeLessThan(1e-5);
    const grads = tf.grads(f)([xT, w1, w2, w3]);
    expectGradients(loss, [x, layer.gateProj, layer.downProj, layer.upProj], grads.map((g) => g.dataSync()), ['x', 'w1', 'w2', 'w3']);
    tf.dispose([xT, pT, ...grads]);
  });
});
