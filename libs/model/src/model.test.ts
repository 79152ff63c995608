// The decoder against the float64 reference on several shapes; the KV cache
// against one full pass; left padding with positions and a mask; typed errors;
// and no tensor leaks.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  ContextLengthError,
  InvalidOptionError,
  LlamaModel,
  ModelConfigError,
  ModelWeightsError,
  TokenIdError,
  type ModelConfig,
} from './index';
import { TEST_CONFIGS, createTestModel, referenceLogits, testTokens, relativeDifference } from './testing';

const configs = Object.entries(TEST_CONFIGS);

const tokens = testTokens;


function setup(config: ModelConfig, seed = 1) {
  const test = createTestModel(config, seed);
  onTestFinished(test.dispose);
  return test;
}

describe('LlamaModel.forward', () => {
  it.each(configs)('%s: logits equal the float64 reference (batch of 3, 24 tokens)', (_name, config) => {
    const { model, reference } = setup(config);
    const rows = [0, 1, 2].map((seed) => tokens(config, 24, seed));
    const logits = model.forward(rows);
    const values = logits.dataSync();
    logits.dispose();
    const V = config.vocabSize;
    rows.forEach((row, b) => {
      const expected = Float64Array.from(referenceLogits(config, reference, row).flatMap((r) => [...r]));
      expect(relativeDifference(values.subarray(b * 24 * V, (b + 1) * 24 * V), expected)).toBeLessThan(1e-5);
    });
  });

  it.each(configs)('%s: left-padded rows with positions and a mask equal the unpadded rows', (_name, config) => {
    const { model } = setup(config);
    const lengths = [9, 4, 6];
    const T = 9;
    const rows = lengths.map((n, b) => tokens(config, n, 10 + b));
    const padded = rows.map((row) => [...new Array<number>(T - row.length).fill(0), ...row]);
    const positions = rows.map((row) => [...new Array<number>(T - row.length).fill(0), ...row.map((_, t) => t)]);
    const mask = rows.map((row) => [...new Array<number>(T - row.length).fill(0), ...row.map(() => 1)]);
    const logits = model.forward(padded, { positions, attentionMask: mask });
    const values = logits.dataSync();
    logits.dispose();
    const V = config.vocabSize;
    rows.forEach((row, b) => {
      const alone = model.forward([row]);
      const start = (b * T + T - row.length) * V;
      expect(relativeDifference(values.subarray(start, start + row.length * V), alone.dataSync())).toBeLessThan(1e-5);
      alone.dispose();
    });
  });

  it.each(configs)('%s: sequences packed in rows by segments equal each sequence alone', (_name, config) => {
    const { model } = setup(config);
    // Row 0: sequences of 5 and 4 tokens, then 1 padding token; row 1: 7 tokens, then 3 padding.
    const seqs = [5, 4, 7].map((n, i) => tokens(config, n, 20 + i));
    const T = 10;
    const ids = [[...seqs[0], ...seqs[1], 0], [...seqs[2], 0, 0, 0]];
    const segments = [[0, 0, 0, 0, 0, 1, 1, 1, 1, -1], [2, 2, 2, 2, 2, 2, 2, -1, -1, -1]];
    const starts = [0, 5, T]; // flat position of each sequence's first token
    const logits = model.forward(ids, { segments });
    const values = logits.dataSync();
    logits.dispose();
    const V = config.vocabSize;
    seqs.forEach((seq, i) => {
      const alone = model.forward([seq]);
      expect(relativeDifference(values.subarray(starts[i] * V, (starts[i] + seq.length) * V), alone.dataSync())).toBeLessThan(1e-5);
      alone.dispose();
    });
    // With an attention mask too (here masking only the padding keys): the segments' mask and it combined.
    const attentionMask = segments.map((row) => row.map((id) => (id < 0 ? 0 : 1)));
    const masked = model.forward(ids, { segments, attentionMask });
    const maskedValues = masked.dataSync();
    masked.dispose();
    seqs.forEach((seq, i) => {
      const real = (starts[i] + seq.length) * V;
      expect(relativeDifference(maskedValues.subarray(starts[i] * V, real), values.subarray(starts[i] * V, real))).toBeLessThan(1e-6);
    });
  });

  it('counts positions from each segment start: a row longer than the context holds segments that fit it', () => {
    const { model } = setup(TEST_CONFIGS.llama);
    const limit = TEST_CONFIGS.llama.maxPositionEmbeddings;
    const seqs = [0, 1].map((i) => tokens(TEST_CONFIGS.llama, limit, 30 + i));
    const segments = [[...new Array<number>(limit).fill(0), ...new Array<number>(limit).fill(1)]];
    const logits = model.forward([[...seqs[0], ...seqs[1]]], { segments });
    const V = TEST_CONFIGS.llama.vocabSize;
    const alone = model.forward([seqs[1]]);
    expect(relativeDifference(logits.dataSync().subarray(limit * V), alone.dataSync())).toBeLessThan(1e-5);
    logits.dispose();
    alone.dispose();
  });
});

describe('KV cache', () => {
  it.each(configs)('%s: chunked prefill then one token at a time equals one full pass, per sequence', (_name, config) => {
    const { model } = setup(config);
    const lengths = [13, 6, 10];
    const prefill = [5, 2, 7];
    const sequences = lengths.map((n, b) => tokens(config, n, 20 + b));
    const V = config.vocabSize;
    // logits[b][t] of each real token, from the cached path.
    const cached: Float32Array[][] = sequences.map(() => []);
    const cache = model.createCache(3);
    const feed = (ids: number[][], inputLengths: number[]) => {
      const T = ids[0].length;
      const logits = model.forward(ids, { cache, inputLengths });
      const values = logits.dataSync() as Float32Array;
      logits.dispose();
      inputLengths.forEach((n, b) => {
        for (let t = 0; t < n; t++) cached[b].push(values.slice((b * T + t) * V, (b * T + t + 1) * V));
      });
    };
    // Prefill in two chunks of right-padded rows, the second chunk empty for row 1.
    const chunk = (from: number, to: number) => {
      const inputLengths = prefill.map((p) => Math.max(0, Math.min(to, p) - from));
      feed(sequences.map((s, b) => [...s.slice(from, from + inputLengths[b]), ...new Array<number>(to - from - inputLengths[b]).fill(0)]), inputLengths);
    };
    chunk(0, 4);
    chunk(4, 7);
    expect(cache.lengths).toEqual(prefill);
    // Then one token per step; finished rows feed padding with input length 0.
    for (let step = 0; Math.max(...cache.lengths.map((n, b) => lengths[b] - n)) > 0; step++) {
      const inputLengths = cache.lengths.map((n, b) => (n < lengths[b] ? 1 : 0));
      feed(sequences.map((s, b) => [inputLengths[b] === 1 ? s[cache.lengths[b]] : 0]), inputLengths);
    }
    expect(cache.lengths).toEqual(lengths);
    cache.dispose();

    sequences.forEach((sequence, b) => {
      const full = model.forward([sequence]);
      const values = full.dataSync();
      full.dispose();
      const got = Float32Array.from(cached[b].flatMap((row) => [...row]));
      expect(relativeDifference(got, values)).toBeLessThan(1e-5);
      // On the CPU backend the sums run over the same slots in the same order: bit for bit.
      if (tf.getBackend() === 'cpu') expect(got).toEqual(values);
    });
  });

  it('select keeps, reorders and repeats sequences', () => {
    const config = TEST_CONFIGS.llamaGqaTied;
    const { model } = setup(config);
    const sequences = [tokens(config, 6, 30), tokens(config, 4, 31)];
    const cache = model.createCache(2);
    model.forward(sequences.map((s) => [...s, ...new Array<number>(6 - s.length).fill(0)]), { cache, inputLengths: [6, 4] }).dispose();
    cache.select([1, 1, 0]);
    expect(cache.lengths).toEqual([4, 4, 6]);
    const next = [5, 6, 7];
    const logits = model.forward(next.map((id) => [id]), { cache });
    const values = logits.dataSync();
    logits.dispose();
    cache.dispose();
    const V = config.vocabSize;
    [[...sequences[1], 5], [...sequences[1], 6], [...sequences[0], 7]].forEach((sequence, b) => {
      const full = model.forward([sequence]);
      const last = full.dataSync().slice((sequence.length - 1) * V);
      full.dispose();
      expect(relativeDifference(values.subarray(b * V, (b + 1) * V), last)).toBeLessThan(1e-5);
    });
  });
});

describe('errors', () => {
  const config = TEST_CONFIGS.llama;

  it.each([
    ['a negative id', -1],
    ['an id = vocabSize', config.vocabSize],
    ['a fractional id', 2.5],
    ['NaN', NaN],
  ])('throws TokenIdError for %s, naming the row', (_what, id) => {
    const { model } = setup(config);
    const error = (() => {
      try {
        model.forward([[1, 2, 3], [4, id, 5]]);
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(TokenIdError);
    expect(error).toMatchObject({ index: 1, vocabSize: config.vocabSize });
  });

  it('throws ContextLengthError past maxPositionEmbeddings, with or without a cache', () => {
    const { model } = setup(config);
    const limit = config.maxPositionEmbeddings;
    expect(() => model.forward([new Array<number>(limit + 1).fill(1)])).toThrow(ContextLengthError);
    expect(() => model.forward([[1, 2]], { positions: [[limit - 1, limit]] })).toThrow(ContextLengthError);
    const cache = model.createCache(1);
    model.forward([new Array<number>(limit - 1).fill(1)], { cache }).dispose();
    model.forward([[1]], { cache }).dispose(); // exactly full
    expect(() => model.forward([[1]], { cache })).toThrow(ContextLengthError);
    expect(cache.lengths).toEqual([limit]); // a failed pass leaves the cache as it was
    cache.dispose();
  });

  it('throws InvalidOptionError for malformed inputs and options', () => {
    const { model } = setup(config);
    expect(() => model.forward([])).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2], [3]])).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2]], { positions: [[0]] })).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2]], { attentionMask: [[1, 1, 1]] })).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2]], { inputLengths: [3] })).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2]], { segments: [[0, 0, 1]] })).toThrow(/segments must be \[1, 2\], got \[1, 3\]/);
    expect(() => model.forward([[1, 2]], { segments: [[0, 0.5]] })).toThrow(/segment 0.5 is not an integer/);
    const cache = model.createCache(2);
    expect(() => model.forward([[1, 2]], { cache })).toThrow(InvalidOptionError);
    expect(() => model.forward([[1, 2], [3, 4]], { cache, segments: [[0, 0], [0, 0]] })).toThrow(/segments apply to a pass without a cache/);
    cache.dispose();
    expect(() => model.createCache(0)).toThrow(InvalidOptionError);
  });

  it('throws ModelWeightsError for a missing or misshapen weight, ModelConfigError for a bad config', () => {
    const { weights } = setup(config);
    const without = new Map(weights);
    without.delete('model.layers.1.mlp.up_proj.weight');
    expect(() => new LlamaModel(config, without)).toThrow(ModelWeightsError);
    const wrong = tf.zeros([3, 3]);
    onTestFinished(() => wrong.dispose());
    const misshapen = new Map<string, tf.Tensor>(weights).set('model.norm.weight', wrong);
    expect(() => new LlamaModel(config, misshapen)).toThrow(expect.objectContaining({ tensorName: 'model.norm.weight', actualShape: [3, 3] }));
    expect(() => new LlamaModel({ ...config, nKvHeads: 3 }, weights)).toThrow(ModelConfigError);
  });
});

describe('tensor leaks', () => {
  it('forward, hidden states, cache prefill, decode and select leave no tensor behind', () => {
    const before = tf.memory().numTensors;
    const { model, dispose } = createTestModel(TEST_CONFIGS.qwen3, 2);
    const withWeights = tf.memory().numTensors;
    model.forward([[1, 2, 3]]).dispose();
    model.hiddenStates([[1, 2, 3], [4, 5, 6]]).dispose();
    const cache = model.createCache(2);
    model.forward([[1, 2, 3], [4, 5, 0]], { cache, inputLengths: [3, 2] }).dispose();
    cache.select([1, 0, 0]);
    model.forward([[7], [8], [9]], { cache }).dispose();
    expect(() => model.forward([[99]], { cache })).toThrow(TokenIdError);
    cache.dispose();
    model.dispose(); // the rotary tables
    expect(tf.memory().numTensors).toBe(withWeights);
    dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
