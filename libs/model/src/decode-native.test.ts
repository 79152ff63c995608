// The wasm+native decoder layer kernel (one CreamDecodeLayer per layer, the
// cache written in place or made by it) for decoding steps and for prefill and
// scoring chunks, against the model's separate ops and against one full pass,
// across a cache growth, for plain Llama layers and for the Qwen2 / Qwen3
// biases and q/k head norms. Runs on wasm+native whatever
// CREAM_BACKEND says, and puts the suite's backend back after.
import { FusedKernel, initCompute, silentLogger, useFusedKernels } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createModelConfig, generate, scoreResponses, type LlamaModel } from './index';
import { TEST_CONFIGS, createTestModel, testTokens, relativeDifference } from './testing';

const tokens = testTokens;


// Prefills `sequences` (all of `prefill` tokens), then feeds the rest one token
// per step; returns each row's logits of every fed token after the prefill,
// and the kernels that ran in the steps.
async function decodeLogits(model: LlamaModel, sequences: number[][], prefill: number): Promise<{ logits: Float32Array[]; kernels: string[] }> {
  const V = model.config.vocabSize;
  const cache = model.createCache(sequences.length);
  const logits: Float32Array[] = sequences.map(() => new Float32Array(0));
  const rows: number[][] = sequences.map(() => []);
  const kernels: string[] = [];
  try {
    model.forward(sequences.map((s) => s.slice(0, prefill)), { cache }).dispose();
    for (let t = prefill; t < sequences[0].length; t++) {
      const profile = await tf.profile(() => {
        const out = model.forward(sequences.map((s) => [s[t]]), { cache }); // [B, 1, V]
        const values = out.dataSync();
        out.dispose();
        sequences.forEach((_, b) => rows[b].push(...values.subarray(b * V, (b + 1) * V)));
        return [];
      });
      kernels.push(...profile.kernels.map((k) => k.name));
    }
  } finally {
    cache.dispose();
  }
  rows.forEach((row, b) => (logits[b] = Float32Array.from(row)));
  return { logits, kernels };
}

describe('decoding step on wasm+native: one kernel per layer', () => {
  beforeAll(async () => {
    await initCompute({ env: { CREAM_BACKEND: 'wasm-native' }, logger: silentLogger });
  });
  afterAll(async () => {
    useFusedKernels(true);
    await initCompute({ env: { CREAM_BACKEND: process.env.CREAM_BACKEND ?? 'cpu' }, logger: silentLogger });
  });

  // Grouped-query heads, tied embeddings, 80 positions: the cache grows past its first 64-slot block.
  const config = createModelConfig({
    vocabSize: 53, hiddenSize: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, intermediateSize: 40, tieWordEmbeddings: true, maxPositionEmbeddings: 96,
  });

  it('equals the separate ops and one full pass, token by token, across a cache growth', async () => {
    const test = createTestModel(config, 3);
    onTestFinished(test.dispose);
    const sequences = [tokens(config, 80, 1), tokens(config, 80, 2), tokens(config, 80, 3)];
    await decodeLogits(test.model, sequences, 5); // grows the model's rotary tables (kept)
    const before = tf.memory().numTensors;
    const fused = await decodeLogits(test.model, sequences, 5);
    expect(fused.kernels.filter((k) => k === FusedKernel.decodeLayer)).toHaveLength(75 * config.nLayers);
    expect(tf.memory().numTensors).toBe(before); // no leak
    useFusedKernels(false);
    const separate = await decodeLogits(test.model, sequences, 5);
    useFusedKernels(true);
    expect(separate.kernels).not.toContain(FusedKernel.decodeLayer);
    sequences.forEach((sequence, b) => {
      expect(relativeDifference(fused.logits[b], separate.logits[b]), `row ${b} vs separate ops`).toBeLessThan(1e-5);
      const full = test.model.forward([sequence]);
      const all = full.dataSync().slice(5 * config.vocabSize);
      full.dispose();
      expect(relativeDifference(fused.logits[b], all), `row ${b} vs one pass`).toBeLessThan(1e-4);
    });
  });

  it('gives generate the same greedy tokens as the separate ops, alone and in a batch', async () => {
    const test = createTestModel(config, 4);
    onTestFinished(test.dispose);
    const requests = [5, 1, 12].map((length, key) => ({ promptIds: tokens(config, length, 10 + key), key }));
    const options = { maxNewTokens: 20, temperature: 0, eosTokenIds: [] };
    const fused = await generate(test.model, requests, options);
    const alone = await Promise.all(requests.map(async (request) => (await generate(test.model, [request], options))[0]));
    useFusedKernels(false);
    const separate = await generate(test.model, requests, options);
    useFusedKernels(true);
    fused.forEach((result, i) => {
      expect(result.tokenIds).toEqual(separate[i].tokenIds);
      expect(result.tokenIds).toEqual(alone[i].tokenIds);
      expect(relativeDifference(result.tokenLogprobs, separate[i].tokenLogprobs)).toBeLessThan(1e-4);
    });
  });

  it('scores in chunks with one kernel per layer and chunk, equal to the separate ops, across a cache growth', async () => {
    const test = createTestModel(config, 6);
    onTestFinished(test.dispose);
    // Right-padded chunks: rows of 80, 41 and 9 tokens fed 23 positions at a
    // time (a fresh cache, then writes in place, then growth past 64 slots).
    const items = [80, 41, 9].map((length, i) => {
      const ids = tokens(config, length, 20 + i);
      return { promptIds: ids.slice(0, 3), responseIds: ids.slice(3) };
    });
    const options = { batchSize: 3, chunkSize: 23 };
    await scoreResponses(test.model, items, options); // grows the rotary tables (kept)
    const before = tf.memory().numTensors;
    let fused: Awaited<ReturnType<typeof scoreResponses>> = [];
    const profile = await tf.profile(async () => {
      fused = await scoreResponses(test.model, items, options);
      return [];
    });
    expect(tf.memory().numTensors).toBe(before); // no leak
    expect(profile.kernels.filter((k) => k.name === FusedKernel.decodeLayer)).toHaveLength(Math.ceil(79 / 23) * config.nLayers);
    useFusedKernels(false);
    const separate = await scoreResponses(test.model, items, options);
    const whole = await scoreResponses(test.model, items, { batchSize: 1, chunkSize: Infinity });
    useFusedKernels(true);
    fused.forEach((score, i) => {
      expect(score.numTokens).toBe(separate[i].numTokens);
      expect(Math.abs(score.logprobSum - separate[i].logprobSum) / Math.abs(separate[i].logprobSum), `item ${i} vs separate ops`).toBeLessThan(1e-5);
      expect(Math.abs(score.logprobSum - whole[i].logprobSum) / Math.abs(whole[i].logprobSum), `item ${i} vs one pass each`).toBeLessThan(1e-5);
    });
  });

  it('scores a pass of more than 512 rows (the GEMM, not the packed products) equal to the separate ops', async () => {
    const test = createTestModel(config, 7);
    onTestFinished(test.dispose);
    const items = Array.from({ length: 8 }, (_, i) => {
      const ids = tokens(config, 81 - i, 30 + i);
      return { promptIds: ids.slice(0, 2), responseIds: ids.slice(2) };
    });
    const options = { batchSize: 8, chunkSize: Infinity }; // one pass of 8 x 80 rows
    const fused = await scoreResponses(test.model, items, options);
    useFusedKernels(false);
    const separate = await scoreResponses(test.model, items, options);
    useFusedKernels(true);
    fused.forEach((score, i) => {
      expect(Math.abs(score.logprobSum - separate[i].logprobSum) / Math.abs(separate[i].logprobSum), `item ${i}`).toBeLessThan(1e-5);
    });
  });

  it('scores Qwen2 and Qwen3 (biases, q/k norms) in chunks and in one pass of more than 512 rows equal to the separate ops', async () => {
    for (const name of ['qwen2', 'qwen3'] as const) {
      const test = createTestModel(TEST_CONFIGS[name], 8);
      try {
        const items = Array.from({ length: 10 }, (_, i) => {
          const ids = tokens(test.config, 60 - i, 40 + i);
          return { promptIds: ids.slice(0, 2), responseIds: ids.slice(2) };
        });
        for (const options of [{ batchSize: 10, chunkSize: 17 }, { batchSize: 10, chunkSize: Infinity }]) {
          let fused: Awaited<ReturnType<typeof scoreResponses>> = [];
          const profile = await tf.profile(async () => {
            fused = await scoreResponses(test.model, items, options);
            return [];
          });
          expect(profile.kernels.some((k) => k.name === FusedKernel.decodeLayer), `${name} ${options.chunkSize}`).toBe(true);
          useFusedKernels(false);
          const separate = await scoreResponses(test.model, items, options);
          useFusedKernels(true);
          fused.forEach((score, i) => {
            expect(Math.abs(score.logprobSum - separate[i].logprobSum) / Math.abs(separate[i].logprobSum), `${name} ${options.chunkSize} item ${i}`).toBeLessThan(1e-5);
          });
        }
      } finally {
        useFusedKernels(true);
        test.dispose();
      }
    }
  });

  it('covers q/k/v and o biases, q/k head norms and rotary scaling: equal to the separate ops and one full pass', async () => {
    for (const name of ['qwen2', 'qwen3', 'llama3Odd'] as const) {
      const test = createTestModel(TEST_CONFIGS[name], 5);
      try {
        const { config: c } = test;
        const sequences = [tokens(c, 30, 1), tokens(c, 30, 2)];
        const fused = await decodeLogits(test.model, sequences, 4);
        expect(fused.kernels.filter((k) => k === FusedKernel.decodeLayer), name).toHaveLength(26 * c.nLayers);
        useFusedKernels(false);
        const separate = await decodeLogits(test.model, sequences, 4);
        useFusedKernels(true);
        expect(separate.kernels).not.toContain(FusedKernel.decodeLayer);
        sequences.forEach((sequence, b) => {
          expect(relativeDifference(fused.logits[b], separate.logits[b]), `${name} row ${b} vs separate ops`).toBeLessThan(1e-5);
          const full = test.model.forward([sequence]);
          const all = full.dataSync().slice(4 * c.vocabSize);
          full.dispose();
          expect(relativeDifference(fused.logits[b], all), `${name} row ${b} vs one pass`).toBeLessThan(1e-4);
        });
      } finally {
        useFusedKernels(true);
        test.dispose();
      }
    }
  });
});
