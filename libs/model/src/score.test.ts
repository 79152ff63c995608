// Response scoring against the float64 reference, its invariance to padding,
// batch composition and chunking, the differentiable form and its gradient
// against central differences of the reference, typed errors and leaks.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  ContextLengthError,
  InvalidOptionError,
  TokenIdError,
  registerTrainingGradients,
  responseLogProbs,
  scoreResponses,
  type ModelConfig,
  type ScoreItem,
} from './index';
import { targetLogProbs } from './score';
import {
  TEST_CONFIGS,
  centralDifference,
  createTestModel,
  gradientError,
  probeIndices,
  pseudoRandom,
  referenceResponseLogProbs,
  testTokens,
} from './testing';

const tokens = testTokens;

// The gather gradient the trainer registers (tfjs's needs UnsortedSegmentSum, which the wasm backend lacks).
beforeAll(() => registerTrainingGradients());

// Items of varied prompt and response lengths (one response of a single token).
function itemsFor(config: ModelConfig): ScoreItem[] {
  return [
    [3, 5],
    [1, 9],
    [7, 1],
    [4, 12],
    [10, 3],
    [2, 6],
  ].map(([p, r], i) => ({ promptIds: tokens(config, p, 40 + i), responseIds: tokens(config, r, 50 + i) }));
}

function setup(config: ModelConfig, seed = 1) {
  const test = createTestModel(config, seed);
  onTestFinished(test.dispose);
  return test;
}

describe('scoreResponses', () => {
  it.each(Object.entries(TEST_CONFIGS))('%s: sums and means equal the float64 reference to 1e-5 relative', async (_name, config) => {
    const { model, reference } = setup(config);
    const items = itemsFor(config);
    const scores = await scoreResponses(model, items, { batchSize: 4, chunkSize: 5 });
    items.forEach((item, i) => {
      const expected = referenceResponseLogProbs(config, reference, item.promptIds, item.responseIds);
      const sum = expected.reduce((a, b) => a + b, 0);
      expect(scores[i].numTokens).toBe(item.responseIds.length);
      expect(Math.abs(scores[i].logprobSum - sum) / Math.abs(sum)).toBeLessThan(1e-5);
      expect(Math.abs(scores[i].logprobMean - sum / expected.length) / Math.abs(sum / expected.length)).toBeLessThan(1e-5);
    });
  });

  it.each(Object.entries(TEST_CONFIGS))('%s: identical whatever the padding, batch and chunking', async (_name, config) => {
    const { model } = setup(config);
    const items = itemsFor(config);
    const alone = await Promise.all(items.map(async (item) => (await scoreResponses(model, [item], { chunkSize: Infinity }))[0]));
    const together = await scoreResponses(model, items, { batchSize: 4, chunkSize: 3 });
    const reversed = (await scoreResponses(model, [...items].reverse(), { batchSize: 2, chunkSize: 7 })).reverse();
    if (tf.getBackend() === 'cpu') {
      expect(together).toEqual(alone); // bit for bit
      expect(reversed).toEqual(alone);
    }
    [together, reversed].forEach((scores) =>
      scores.forEach((score, i) => expect(Math.abs(score.logprobSum - alone[i].logprobSum)).toBeLessThan(1e-6 * Math.abs(alone[i].logprobSum))),
    );
  });

  it('masks the prompt: splitting a response at a token moves that token into the prompt', async () => {
    const config = TEST_CONFIGS.qwen2;
    const { model } = setup(config);
    const [a, b, c, d] = tokens(config, 4, 60);
    const [whole, head, tail] = await scoreResponses(model, [
      { promptIds: [a], responseIds: [b, c, d] },
      { promptIds: [a], responseIds: [b] },
      { promptIds: [a, b], responseIds: [c, d] },
    ]);
    expect(Math.abs(whole.logprobSum - (head.logprobSum + tail.logprobSum))).toBeLessThan(1e-5);
    expect(tail.numTokens).toBe(2);
  });

  it('gives an empty response sum 0, mean NaN, 0 tokens', async () => {
    const { model } = setup(TEST_CONFIGS.llama);
    expect(await scoreResponses(model, [{ promptIds: [1, 2], responseIds: [] }])).toEqual([{ logprobSum: 0, logprobMean: NaN, numTokens: 0 }]);
  });

  it('throws typed errors naming the item', async () => {
    const config = TEST_CONFIGS.llama;
    const { model } = setup(config);
    const ok = { promptIds: [1], responseIds: [2] };
    await expect(scoreResponses(model, [ok, { promptIds: [], responseIds: [1] }])).rejects.toThrow(InvalidOptionError);
    await expect(scoreResponses(model, [ok, { promptIds: [1], responseIds: [config.vocabSize] }])).rejects.toMatchObject({
      name: 'TokenIdError',
      index: 1,
    });
    await expect(scoreResponses(model, [ok, { promptIds: [1], responseIds: [-3] }])).rejects.toThrow(TokenIdError);
    const tooLong = { promptIds: new Array<number>(config.maxPositionEmbeddings).fill(1), responseIds: [1] };
    await expect(scoreResponses(model, [tooLong])).rejects.toThrow(ContextLengthError);
    await expect(scoreResponses(model, [tooLong])).rejects.toMatchObject({ index: 0, length: config.maxPositionEmbeddings + 1 });
    await expect(scoreResponses(model, [ok], { batchSize: 0 })).rejects.toThrow(InvalidOptionError);
    expect(() => responseLogProbs(model, [tooLong])).toThrow(ContextLengthError);
  });

  it('gives the event loop a turn between chunks and batches', async () => {
    const { model } = setup(TEST_CONFIGS.llama);
    let ticked = false;
    setImmediate(() => (ticked = true));
    await scoreResponses(model, itemsFor(TEST_CONFIGS.llama), { batchSize: 2, chunkSize: 4 });
    expect(ticked).toBe(true);
  });

  it('leaves no tensor behind, also when aborted', async () => {
    const { model } = setup(TEST_CONFIGS.llama3Odd);
    await scoreResponses(model, itemsFor(TEST_CONFIGS.llama3Odd)); // grows the rotary tables once
    const before = tf.memory().numTensors;
    await scoreResponses(model, itemsFor(TEST_CONFIGS.llama3Odd), { batchSize: 3, chunkSize: 4 });
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(scoreResponses(model, itemsFor(TEST_CONFIGS.llama3Odd), { signal: controller.signal })).rejects.toThrow('stop');
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('targetLogProbs', () => {
  it('gives the same log-probabilities in blocks of rows as in one product, the last block short', () => {
    const test = createTestModel(TEST_CONFIGS.qwen2, 21);
    onTestFinished(test.dispose);
    const { hiddenSize, vocabSize } = test.config;
    const values = Array.from({ length: 11 * hiddenSize }, (_, i) => Math.sin(i * 0.37));
    const targets = Array.from({ length: 11 }, (_, i) => (i * 7) % vocabSize);
    const before = tf.memory().numTensors;
    const [whole, blocked] = tf.tidy(() => {
      const hidden = tf.tensor2d(values, [11, hiddenSize]);
      return [targetLogProbs(test.model, hidden, targets).arraySync(), targetLogProbs(test.model, hidden, targets, 4).arraySync()];
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(blocked).toHaveLength(11);
    blocked.forEach((value, i) => expect(value, `row ${i}`).toBeCloseTo(whole[i], 5));
    expect(new Set(whole.map((v) => v.toFixed(4))).size).toBeGreaterThan(5); // distinct rows, not one value
  });
});

describe('responseLogProbs', () => {
  it('equals scoreResponses', async () => {
    const config = TEST_CONFIGS.llamaGqaTied;
    const { model } = setup(config);
    const items = itemsFor(config);
    const sums = responseLogProbs(model, items);
    const values = sums.dataSync();
    sums.dispose();
    const scores = await scoreResponses(model, items);
    scores.forEach((score, i) => expect(Math.abs(values[i] - score.logprobSum)).toBeLessThan(1e-5 * Math.abs(score.logprobSum)));
  });

  it.each(['llamaGqaTied', 'qwen2', 'qwen3', 'llama3Odd'] as const)(
    '%s: gradient w.r.t. every weight equals central differences of the reference; no leak',
    (name) => {
      const config = TEST_CONFIGS[name];
      const { model, weights, reference } = setup(config, 3);
      const items = itemsFor(config).slice(0, 3);
      const referenceLoss = () =>
        items.reduce((sum, item) => sum + referenceResponseLogProbs(config, reference, item.promptIds, item.responseIds).reduce((a, b) => a + b, 0), 0);
      responseLogProbs(model, items).dispose(); // grows the rotary tables once
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => tf.sum(responseLogProbs(model, items)) as tf.Scalar, [...weights.values()]);
      expect(Math.abs(value.dataSync()[0] - referenceLoss()) / Math.abs(referenceLoss())).toBeLessThan(1e-5);
      for (const [tensorName, variable] of weights) {
        const analytic = grads[variable.name].dataSync();
        const values = reference.get(tensorName) as Float64Array;
        const indices = probeIndices(values.length, 3);
        const numeric = indices.map((index) => centralDifference(referenceLoss, values, index));
        expect(gradientError(analytic, indices, numeric), tensorName).toBeLessThan(1e-4);
      }
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('has a gradient whose directional derivative matches fp32 finite differences of itself', () => {
    const config = TEST_CONFIGS.qwen2;
    const { model, weights } = setup(config, 4);
    const items = itemsFor(config).slice(0, 2);
    const loss = () => tf.tidy(() => tf.sum(responseLogProbs(model, items)).dataSync()[0]);
    const { value, grads } = tf.variableGrads(() => tf.sum(responseLogProbs(model, items)) as tf.Scalar, [...weights.values()]);
    // A random direction over all weights, unit norm.
    const directions = [...weights.values()].map((variable, k) => pseudoRandom(variable.size, 70 + k));
    const norm = Math.sqrt(directions.reduce((sum, d) => sum + d.reduce((s, v) => s + v * v, 0), 0));
    const analytic = [...weights.values()].reduce(
      (sum, variable, k) => sum + (grads[variable.name].dataSync() as Float32Array).reduce((s, g, i) => s + (g * directions[k][i]) / norm, 0),
      0,
    );
    const originals = [...weights.values()].map((variable) => variable.dataSync().slice());
    const shift = (step: number) =>
      [...weights.values()].forEach((variable, k) =>
        tf.tidy(() => variable.assign(tf.tensor(originals[k].map((v, i) => v + (step * directions[k][i]) / norm), variable.shape))),
      );
    const step = 1e-2;
    shift(step);
    const plus = loss();
    shift(-step);
    const minus = loss();
    shift(0);
    expect(Math.abs((plus - minus) / (2 * step) - analytic) / Math.abs(analytic)).toBeLessThan(1e-2);
    tf.dispose([value, ...Object.values(grads)]);
  });
});
