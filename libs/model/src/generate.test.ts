// Generation: greedy decoding token for token against the float64 reference,
// seeded samples identical alone and in any batch, log-probs equal to scoring,
// finish reasons, typed errors and leaks.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  InvalidOptionError,
  TokenIdError,
  generate,
  scoreResponses,
  type GenerateOptions,
  type GenerationRequest,
  type ModelConfig,
} from './index';
import { TEST_CONFIGS, createTestModel, referenceGreedy, referenceLogits, referenceLogSoftmax, testTokens } from './testing';

const tokens = testTokens;

function setup(config: ModelConfig, seed = 1) {
  const test = createTestModel(config, seed);
  onTestFinished(test.dispose);
  return test;
}

describe('generate, greedy', () => {
  it.each(Object.entries(TEST_CONFIGS))('%s: tokens equal the argmax of the float64 reference, token by token', async (_name, config) => {
    const { model, reference } = setup(config);
    const prompts = [tokens(config, 5, 1), tokens(config, 1, 2), tokens(config, 9, 3)];
    const results = await generate(
      model,
      prompts.map((promptIds, key) => ({ promptIds, key })),
      { maxNewTokens: 10, temperature: 0 },
    );
    results.forEach((result, i) => {
      const expected = referenceGreedy(config, reference, prompts[i], 10);
      expect(result.tokenIds).toEqual(expected);
      expect(result.finishReason).toBe(config.eosTokenIds.includes(expected[expected.length - 1]) ? 'eos' : 'length');
    });
  });
});

describe('generate, sampling', () => {
  const config = TEST_CONFIGS.llamaGqaTied;
  const settings: [string, Partial<GenerateOptions>][] = [
    ['temperature 1', { temperature: 1 }],
    ['temperature 0.8, top-p 0.95 (the paper)', { temperature: 0.8, topP: 0.95 }],
    ['temperature 1.2, top-k 5, top-p 0.9', { temperature: 1.2, topK: 5, topP: 0.9 }],
  ];

  it.each(settings)('%s: a sequence alone equals the same sequence in a batch of 4 of other lengths', async (_name, sampling) => {
    const { model } = setup(config, 2);
    const options = { maxNewTokens: 12, seed: 7, ...sampling };
    const requests: GenerationRequest[] = [
      { promptIds: tokens(config, 3, 10), key: 'p0/0' },
      { promptIds: tokens(config, 11, 11), key: 'p1/0' },
      { promptIds: tokens(config, 3, 10), key: 'p0/1' }, // same prompt, another sample
      { promptIds: tokens(config, 1, 12), key: 'p2/0' },
    ];
    const batch = await generate(model, requests, options);
    const alone = await Promise.all(requests.map(async (request) => (await generate(model, [request], options))[0]));
    if (tf.getBackend() === 'cpu') expect(batch).toEqual(alone); // bit for bit
    batch.forEach((result, i) => expect(result.tokenIds).toEqual(alone[i].tokenIds));
    // Reordered, the results follow their requests.
    const reversed = (await generate(model, [...requests].reverse(), options)).reverse();
    reversed.forEach((result, i) => expect(result.tokenIds).toEqual(alone[i].tokenIds));
    // Two samples of one prompt differ (different keys), and another seed changes them.
    expect(batch[0].tokenIds).not.toEqual(batch[2].tokenIds);
    const reseeded = await generate(model, requests, { ...options, seed: 8 });
    expect(reseeded.map((r) => r.tokenIds)).not.toEqual(batch.map((r) => r.tokenIds));
  });

  it('reports log-probs under the unmodified distribution, equal to scoring the tokens', async () => {
    const { model } = setup(config, 3);
    const requests = [0, 1, 2].map((i) => ({ promptIds: tokens(config, 2 + 3 * i, 20 + i), key: i }));
    const results = await generate(model, requests, { maxNewTokens: 8, temperature: 0.5, topK: 3, seed: 1 });
    const scores = await scoreResponses(model, results.map((r, i) => ({ promptIds: requests[i].promptIds, responseIds: r.tokenIds })));
    results.forEach((result, i) => {
      expect(result.tokenLogprobs).toHaveLength(result.tokenIds.length);
      expect(Math.abs(result.logprobSum - scores[i].logprobSum)).toBeLessThan(1e-5 * Math.abs(scores[i].logprobSum));
    });
  });

  it('draws first tokens with the model probabilities (400 keys, one prefill)', async () => {
    const { model, reference } = setup(config, 4);
    const promptIds = tokens(config, 4, 30);
    const requests = Array.from({ length: 400 }, (_, key) => ({ promptIds, key }));
    const results = await generate(model, requests, { maxNewTokens: 1, seed: 3 });
    const logits = referenceLogits(config, reference, promptIds);
    const probabilities = referenceLogSoftmax(logits[logits.length - 1]).map(Math.exp);
    const counts = new Array<number>(config.vocabSize).fill(0);
    results.forEach((r) => counts[r.tokenIds[0]]++);
    counts.forEach((count, token) => {
      const p = probabilities[token];
      // Within 5 standard deviations of the binomial mean (plus one for tiny p).
      expect(Math.abs(count - 400 * p)).toBeLessThan(5 * Math.sqrt(400 * p * (1 - p)) + 1);
    });
  });
});

describe('generate, stopping', () => {
  const config = TEST_CONFIGS.qwen2;

  it('stops at an EOS token (kept), at the stop predicate, at maxNewTokens and at the context', async () => {
    const { model } = setup(config);
    const promptIds = tokens(config, 4, 40);
    const [greedy] = await generate(model, [{ promptIds, key: 0 }], { maxNewTokens: 6, temperature: 0, eosTokenIds: [] });
    expect(greedy.finishReason).toBe('length');
    expect(greedy.tokenIds).toHaveLength(6);

    const eos = greedy.tokenIds[3];
    const firstEos = greedy.tokenIds.indexOf(eos);
    const [stopped] = await generate(model, [{ promptIds, key: 0 }], { maxNewTokens: 6, temperature: 0, eosTokenIds: [eos] });
    expect(stopped).toMatchObject({ finishReason: 'eos', tokenIds: greedy.tokenIds.slice(0, firstEos + 1) });
    expect(stopped.tokenLogprobs).toEqual(greedy.tokenLogprobs.slice(0, firstEos + 1));

    const [byPredicate] = await generate(model, [{ promptIds, key: 0 }], {
      maxNewTokens: 6,
      temperature: 0,
      eosTokenIds: [],
      stop: (ids) => ids.length === 2,
    });
    expect(byPredicate).toMatchObject({ finishReason: 'stop', tokenIds: greedy.tokenIds.slice(0, 2) });

    const limit = config.maxPositionEmbeddings;
    const [context, full, none] = await generate(
      model,
      [
        { promptIds: new Array<number>(limit - 3).fill(5), key: 0 },
        { promptIds: new Array<number>(limit).fill(5), key: 1 },
        { promptIds, key: 2 },
      ],
      { maxNewTokens: 10, temperature: 0, eosTokenIds: [] },
    );
    expect(context).toMatchObject({ finishReason: 'context' });
    expect(context.tokenIds).toHaveLength(3);
    expect(full).toEqual({ finishReason: 'context', tokenIds: [], tokenLogprobs: [], logprobSum: 0 });
    expect(none.finishReason).toBe('length');
    expect(await generate(model, [{ promptIds, key: 0 }], { maxNewTokens: 0 })).toEqual([
      { finishReason: 'length', tokenIds: [], tokenLogprobs: [], logprobSum: 0 },
    ]);
  });

  it('drops finished sequences without changing the others, reporting each as it finishes', async () => {
    const { model } = setup(config, 2);
    const requests = [0, 1, 2, 3].map((i) => ({ promptIds: tokens(config, 1 + 2 * i, 50 + i), key: i }));
    const options = { maxNewTokens: 8, seed: 5, eosTokenIds: [] };
    const free = await generate(model, requests, options);
    const finished: [number, unknown][] = [];
    const stopped = await generate(model, requests, {
      ...options,
      stop: (ids, index) => index % 2 === 1 && ids.length === index, // request 1 after 1 token, 3 after 3
      onFinished: (index, result) => finished.push([index, result]),
    });
    expect(finished).toEqual([1, 3, 0, 2].map((index) => [index, stopped[index]]));
    expect(stopped[1]).toMatchObject({ finishReason: 'stop', tokenIds: free[1].tokenIds.slice(0, 1) });
    expect(stopped[3]).toMatchObject({ finishReason: 'stop', tokenIds: free[3].tokenIds.slice(0, 3) });
    for (const i of [0, 2]) {
      expect(stopped[i].tokenIds).toEqual(free[i].tokenIds);
      // Bit for bit on CPU; other backends' kernels may round differently for another batch size.
      if (tf.getBackend() === 'cpu') expect(stopped[i]).toEqual(free[i]);
      else expect(Math.abs(stopped[i].logprobSum - free[i].logprobSum)).toBeLessThan(1e-5);
    }
  });
});

describe('generate, errors and leaks', () => {
  const config = TEST_CONFIGS.llama3Odd;

  it('throws typed errors naming the request', async () => {
    const { model } = setup(config);
    const ok = { promptIds: [1, 2], key: 0 };
    const options = { maxNewTokens: 2 };
    await expect(generate(model, [ok, { promptIds: new Array<number>(config.maxPositionEmbeddings + 1).fill(1), key: 1 }], options)).rejects.toMatchObject({
      name: 'ContextLengthError',
      index: 1,
      limit: config.maxPositionEmbeddings,
    });
    await expect(generate(model, [{ promptIds: [1, config.vocabSize], key: 0 }], options)).rejects.toThrow(TokenIdError);
    await expect(generate(model, [{ promptIds: [], key: 0 }], options)).rejects.toThrow(InvalidOptionError);
    for (const bad of [{ maxNewTokens: -1 }, { maxNewTokens: 2, temperature: -1 }, { maxNewTokens: 2, topP: 0 }, { maxNewTokens: 2, seed: -1 }, { maxNewTokens: 2, prefillChunkSize: 0 }]) {
      await expect(generate(model, [ok], bad)).rejects.toThrow(InvalidOptionError);
    }
  });

  it('leaves no tensor behind, also when aborted mid-way', async () => {
    const { model } = setup(config);
    const requests = [0, 1, 2].map((i) => ({ promptIds: tokens(config, 3 + i, 60 + i), key: i }));
    await generate(model, requests, { maxNewTokens: 4 }); // grows the rotary tables once
    const before = tf.memory().numTensors;
    await generate(model, requests, { maxNewTokens: 6, topP: 0.9, prefillChunkSize: 2 });
    const controller = new AbortController();
    const aborted = generate(model, requests, {
      maxNewTokens: 6,
      signal: controller.signal,
      onFinished: () => undefined,
      stop: (ids) => {
        if (ids.length === 2) controller.abort(new Error('cancelled'));
        return false;
      },
    });
    await expect(aborted).rejects.toThrow('cancelled');
    expect(tf.memory().numTensors).toBe(before);
  });
});
