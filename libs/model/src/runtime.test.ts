// The text-level runtime on a real random checkpoint written to disk by
// initCheckpoint: loading (twice, with scopes), seeded generation that is the
// same alone and in a batch, scoring by text equal to scoring by ids, stop
// strings, context errors, and no tensor leaks.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextLengthError } from './errors';
import { initCheckpoint } from './init-checkpoint';
import { LanguageModel } from './runtime';

const hfConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 320,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 96,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
};

let dir: string;
let lm: LanguageModel;

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'cream-runtime-')), 'model');
  const written = await initCheckpoint(dir, hfConfig, { seed: 3 });
  expect(written.files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
  lm = await LanguageModel.load(dir, { scope: 'runtime-test' });
});

afterAll(() => lm?.dispose());

describe('initCheckpoint + LanguageModel', () => {
  it('loads what init wrote, with the tokenizer EOS as the config EOS', () => {
    expect(lm.config.vocabSize).toBe(320);
    expect(lm.eosTokenIds).toEqual([lm.tokenizer.tokenToId('<|im_end|>')]);
    expect(lm.numParameters).toBeGreaterThan(20_000);
    expect(lm.weightBytes).toBe(lm.numParameters * 4);
  });

  it('renders chat prompts with the template and the generation prompt', () => {
    const ids = lm.promptIds({ messages: [{ role: 'user', content: 'hi' }] });
    expect(lm.tokenizer.decode(ids)).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('samples the same text for a key alone and inside a batch, and greedy twice the same', async () => {
    const options = { maxNewTokens: 12, temperature: 0.8, topP: 0.95, topK: 0, seed: 7 };
    const prompt = { messages: [{ role: 'user', content: 'What is 2 + 3?' }] };
    const [alone] = await lm.generateText([{ key: 'p1/0', prompt }], options);
    const batch = await lm.generateText(
      [
        { key: 'other/0', prompt: { text: 'a much longer prompt than the other one, to pad the batch' } },
        { key: 'p1/0', prompt },
        { key: 'p1/1', prompt },
      ],
      options,
    );
    expect(batch[1]).toEqual(alone);
    expect(batch[2].tokenIds).not.toEqual(alone.tokenIds);
    const greedy = { ...options, temperature: 0 };
    const [g1] = await lm.generateText([{ key: 'a', prompt }], greedy);
    const [g2] = await lm.generateText([{ key: 'b', prompt }], { ...greedy, seed: 99 });
    expect(g1.tokenIds).toEqual(g2.tokenIds);
    expect(alone.numPromptTokens).toBe(lm.promptIds(prompt).length);
  });

  it('scores a generated response by text as it scores it by ids, and the generator log-prob agrees', async () => {
    const prompt = { text: 'Question: 1 + 1?' };
    const [sample] = await lm.generateText([{ key: 'k', prompt }], { maxNewTokens: 10, temperature: 1, topP: 1, topK: 0, seed: 1 });
    const promptIds = lm.promptIds(prompt);
    const [byIds] = await lm.scoreIds([{ promptIds, responseIds: sample.tokenIds }]);
    // Re-tokenizing the decoded text may merge bytes differently; ids are the exact path.
    expect(byIds.numTokens).toBe(sample.tokenIds.length);
    if (sample.finishReason === 'length') expect(byIds.logprobSum).toBeCloseTo(sample.logprobSum, 4);
    const [byText] = await lm.scoreText([{ prompt, response: 'hello there' }]);
    const [same] = await lm.scoreIds([{ promptIds, responseIds: lm.responseIds('hello there') }]);
    expect(byText).toEqual(same);
    expect(lm.responseIds('hello there').at(-1)).toBe(lm.eosTokenIds[0]);
  });

  it('stops at a stop string and removes it from the text', async () => {
    const prompt = { text: 'abc' };
    const options = { maxNewTokens: 30, temperature: 1, topP: 1, topK: 0, seed: 11 };
    const [free] = await lm.generateText([{ key: 's', prompt }], options);
    const text = free.text;
    if (text.length >= 4) {
      const stop = text.slice(2, 4);
      const [stopped] = await lm.generateText([{ key: 's', prompt }], { ...options, stop: [stop] });
      expect(stopped.finishReason).toBe('stop');
      expect(stopped.text).toBe(text.slice(0, text.indexOf(stop)));
    }
  });

  it('refuses a prompt that fills the context, and an item longer than the context', async () => {
    const long = { text: 'x '.repeat(200) };
    await expect(lm.generateText([{ key: 'l', prompt: long }], { maxNewTokens: 4, temperature: 0, topP: 1, topK: 0, seed: 0 })).rejects.toThrow(
      ContextLengthError,
    );
    await expect(lm.scoreText([{ prompt: long, response: 'y' }])).rejects.toThrow(/context length is 96/);
  });

  it('holds two versions at once under scopes and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const second = await LanguageModel.load(dir, { scope: 'runtime-test-2' });
    const [a] = await lm.scoreText([{ prompt: { text: 'q' }, response: 'r' }]);
    const [b] = await second.scoreText([{ prompt: { text: 'q' }, response: 'r' }]);
    expect(b).toEqual(a);
    second.dispose();
    await lm.generateText([{ key: 'x', prompt: { text: 'q' } }], { maxNewTokens: 3, temperature: 0, topP: 1, topK: 0, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
  });
});
