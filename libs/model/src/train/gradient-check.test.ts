// Finite-difference checks of both training losses through a real decoder:
// the tfjs gradients of the SFT loss and of the consistency-regularized DPO
// loss (C strictly between 0 and 1) with respect to the weights, against
// central differences of the same losses computed by the independent float64
// reference of the Hugging Face math (testing/reference-llama.ts) on padded
// batches of different lengths, right-padded and packed (two sequences in one
// row). On the tests' backend (cpu unless
// CREAM_BACKEND says otherwise), then on wasm with the native kernels when
// built, the backend the services train on.
import * as tf from '@tensorflow/tfjs-core';
import { FusedKernel, initCompute, setAttentionKeepLimit, silentLogger } from '@cream/compute';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_CONFIGS, referenceResponseLogProbs, toReferenceWeights, type ReferenceWeights } from '../testing';
import type { ModelConfig } from '../config';
import { packBatch, padBatch, pairSequences, type DpoPair, type SftExample } from './batching';
import { registerTrainingGradients } from './gather-gradient';
import { batchResponseLogprobs, batchResponseTokenLogprobs } from './logprobs';
import { dpoLoss, sftLoss } from './losses';
import { TINY_CONFIG, dpoPairs, seededRandom, testModel } from './test-fixtures';
import { computeReferenceLogprobs, trainDpo } from './trainer';

// Steps of a tiny model take milliseconds, but these machines are shared: room for a slow moment.
const SLOW = 30_000;

beforeAll(() => {
  registerTrainingGradients();
});

const examples: SftExample[] = [
  { promptIds: [5, 9, 2], responseIds: [7, 1, 30, 4] },
  { promptIds: [11], responseIds: [3, 8] },
  { promptIds: [20, 21, 22, 23, 24], responseIds: [6] },
  { promptIds: [9], responseIds: [14] }, // packed after the second example (3 + 2 of 7 positions)
];

const pairs: DpoPair[] = [
  { promptIds: [4, 2, 9], chosenIds: [13, 5, 7], rejectedIds: [1, 2], consistency: 0.3 },
  { promptIds: [17], chosenIds: [8], rejectedIds: [40, 12, 3, 6], consistency: 0.85 },
];
const referenceChosen = [-14.5, -3.25];
const referenceRejected = [-9.75, -16];
const beta = 0.7; // large enough that h varies with the weights

// Loss functions of float64 weights through the reference decoder.
function referenceSftLoss(config: ModelConfig, weights: ReferenceWeights): number {
  let total = 0;
  let tokens = 0;
  for (const { promptIds, responseIds } of examples) {
    for (const lp of referenceResponseLogProbs(config, weights, promptIds, responseIds)) total += lp;
    tokens += responseIds.length;
  }
  return -total / tokens;
}

function referenceDpoLoss(config: ModelConfig, weights: ReferenceWeights): number {
  const sum = (promptIds: readonly number[], responseIds: readonly number[]) =>
    referenceResponseLogProbs(config, weights, promptIds, responseIds).reduce((a, b) => a + b, 0);
  const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
  let total = 0;
  pairs.forEach((pair, i) => {
    const h = beta * (sum(pair.promptIds, pair.chosenIds) - referenceChosen[i] - (sum(pair.promptIds, pair.rejectedIds) - referenceRejected[i]));
    total += pair.consistency * softplus(-h) + (1 - pair.consistency) * softplus(h);
  });
  return total / pairs.length;
}

// Central differences at a few coordinates of every weight tensor vs the tfjs gradients.
function checkGradients(
  config: ModelConfig,
  seed: number,
  tfLoss: (model: ReturnType<typeof testModel>['model']) => tf.Scalar,
  referenceLoss: (config: ModelConfig, weights: ReferenceWeights) => number,
): number {
  const { model, dispose } = testModel(config, seed, { std: 0.3, normStd: 0.2, biasStd: 0.2 });
  try {
    const variables = [...model.weights.values()] as tf.Variable[];
    const { value, grads } = tf.variableGrads(() => tfLoss(model), variables);
    const base = toReferenceWeights(model.weights);
    expect(value.dataSync()[0]).toBeCloseTo(referenceLoss(config, base), 4);
    const random = seededRandom(seed);
    const eps = 1e-5;
    let checked = 0;
    for (const [name, variable] of model.weights) {
      const gradient = grads[(variable as tf.Variable).name].dataSync();
      const scale = Math.max(...gradient.map(Math.abs));
      for (let k = 0; k < 3; k++) {
        const index = Math.floor(random() * variable.size);
        const at = (delta: number) => {
          const shifted = Float64Array.from(base.get(name) as Float64Array);
          shifted[index] += delta;
          return referenceLoss(config, new Map(base).set(name, shifted));
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        // float32 backward against float64 differences: relative to the tensor's largest entry
        expect(Math.abs(gradient[index] - numeric), `${name}[${index}]`).toBeLessThanOrEqual(2e-5 * scale + 1e-7);
        checked++;
      }
    }
    value.dispose();
    tf.dispose(Object.values(grads));
    return checked;
  } finally {
    dispose();
  }
}

const sftThroughModel = (model: ReturnType<typeof testModel>['model']) => {
  return sftLoss(batchResponseTokenLogprobs(model, padBatch(examples)));
};

const sftThroughPackedRows = (model: ReturnType<typeof testModel>['model']) => {
  const batch = packBatch(examples);
  expect(batch.rows).toBe(examples.length - 1);
  return sftLoss(batchResponseTokenLogprobs(model, batch));
};

const dpoThroughModel = (model: ReturnType<typeof testModel>['model']) => {
  const sums = batchResponseLogprobs(model, padBatch(pairSequences(pairs))); // [4]: chosen rows, rejected rows
  const [policyChosen, policyRejected] = tf.split(sums, 2) as [tf.Tensor1D, tf.Tensor1D];
  return dpoLoss(
    { policyChosen, policyRejected, referenceChosen: tf.tensor1d(referenceChosen), referenceRejected: tf.tensor1d(referenceRejected) },
    tf.tensor1d(pairs.map((pair) => pair.consistency)),
    beta,
  ).loss;
};

describe("gradients through the decoder (the tests' backend)", () => {
  for (const configName of ['qwen2', 'llamaGqaTied'] as const) {
    const config = TEST_CONFIGS[configName];
    it(`SFT loss (${configName}): tfjs gradients equal float64 central differences`, () => {
      expect(checkGradients(config, 3, sftThroughModel, referenceSftLoss)).toBeGreaterThan(20);
    }, SLOW);
    it(`DPO loss with C = 0.3 and 0.85 (${configName}): tfjs gradients equal float64 central differences`, () => {
      expect(checkGradients(config, 4, dpoThroughModel, referenceDpoLoss)).toBeGreaterThan(20);
    }, SLOW);
  }
  it('SFT loss over packed rows (qwen2): tfjs gradients equal float64 central differences', () => {
    expect(checkGradients(TEST_CONFIGS.qwen2, 9, sftThroughPackedRows, referenceSftLoss)).toBeGreaterThan(20);
  }, SLOW);
});

// The kernels one SFT loss and its gradients run, on a fresh model of `config`.
async function trainingKernels(config: ModelConfig, seed: number): Promise<Set<string>> {
  const test = testModel(config, seed);
  try {
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => sftThroughModel(test.model), [...test.model.weights.values()] as tf.Variable[]);
      tf.dispose([value, ...Object.values(grads)]);
      return [];
    });
    return new Set(profile.kernels.map((k) => k.name));
  } finally {
    test.dispose();
  }
}

describe('gradients through the decoder (wasm)', () => {
  let isTest: boolean;
  beforeAll(async () => {
    await initCompute({ prefer: 'wasm-native', env: {}, logger: silentLogger });
    registerTrainingGradients(); // after initCompute, which may load tfjs's gradients
    // tfjs's debug-mode kernel leak check misfires on wasm for the copy that
    // logSoftmax's custom gradient saves; the training test below counts
    // tensors and data buffers itself.
    isTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', false);
  }, SLOW);
  afterAll(() => {
    tf.env().set('IS_TEST', isTest);
  });

  it('SFT and DPO losses (qwen2: attention read from the merged q/k/v projection and its stacked biases): tfjs gradients equal float64 central differences', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const names = await trainingKernels(TEST_CONFIGS.qwen2, 14);
    for (const name of [FusedKernel.qkvAttention, FusedKernel.qkvAttentionGrad]) expect(names.has(name), name).toBe(true);
    expect(checkGradients(TEST_CONFIGS.qwen2, 5, sftThroughModel, referenceSftLoss)).toBeGreaterThan(20);
    expect(checkGradients(TEST_CONFIGS.qwen2, 6, dpoThroughModel, referenceDpoLoss)).toBeGreaterThan(20);
  }, SLOW);

  it('SFT and DPO losses (llamaGqaTied: attention read from the merged q/k/v projection, residual adds joined to the norms): tfjs gradients equal float64 central differences', async () => {
    const config = TEST_CONFIGS.llamaGqaTied;
    // The fused kernels this config's training step runs on wasm+native (a plain Llama: no biases, no q/k norms).
    const names = await trainingKernels(config, 11);
    for (const name of [FusedKernel.qkvAttention, FusedKernel.qkvAttentionGrad, FusedKernel.addRmsNorm, FusedKernel.rmsNormGrad]) {
      expect(names.has(name), name).toBe(true);
    }
    expect(names.has(FusedKernel.qkvHeads)).toBe(false);
    expect(checkGradients(config, 7, sftThroughModel, referenceSftLoss)).toBeGreaterThan(20);
    expect(checkGradients(config, 8, dpoThroughModel, referenceDpoLoss)).toBeGreaterThan(20);
    // Packed rows: the same kernels with a segment mask instead of each row's past.
    expect(checkGradients(config, 10, sftThroughPackedRows, referenceSftLoss)).toBeGreaterThan(20);
  }, SLOW);

  it('SFT loss, plain and packed (llamaGqaTied), with attention keeping only each query log-sum-exp: tfjs gradients equal float64 central differences', () => {
    // Attention longer than attentionKeepLimit keeps no probabilities for the
    // gradient, which computes them again: here every attention does.
    const before = setAttentionKeepLimit(0);
    try {
      expect(checkGradients(TEST_CONFIGS.llamaGqaTied, 12, sftThroughModel, referenceSftLoss)).toBeGreaterThan(20);
      expect(checkGradients(TEST_CONFIGS.llamaGqaTied, 13, sftThroughPackedRows, referenceSftLoss)).toBeGreaterThan(20);
    } finally {
      setAttentionKeepLimit(before);
    }
  }, SLOW);

  it('a DPO run lowers its loss and leaves no tensor or data buffer behind', async () => {
    const policy = testModel(TINY_CONFIG, 7);
    const reference = testModel(TINY_CONFIG, 7, { trainable: false });
    for (const { model } of [policy, reference]) tf.dispose(model.forward([[1, 2]]));
    const before = tf.memory();
    const pairs = dpoPairs(8, 8);
    const logprobs = await computeReferenceLogprobs(reference.model, pairs);
    const losses: number[] = [];
    await trainDpo(policy.model, logprobs, pairs, { learningRate: 1e-2, beta: 0.5, epochs: 4, batchSize: 4, gradientAccumulation: 2 }, {
      onStep: (p) => {
        losses.push(p.loss);
      },
    });
    expect(losses[0]).toBeCloseTo(Math.LN2, 5);
    expect(losses.at(-1)).toBeLessThan(0.6);
    const after = tf.memory() as tf.MemoryInfo & { numDataBuffers: number };
    expect([after.numTensors, after.numDataBuffers]).toEqual([before.numTensors, (before as typeof after).numDataBuffers]);
    policy.dispose();
    reference.dispose();
  }, SLOW);
});
