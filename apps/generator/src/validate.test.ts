// Tests of Generate and LoadModel request validation: the defaults of
// common.proto, every documented limit, and the field each error names.
import { GenerateRequest, type Prompt, type SamplingParams } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_NEW_TOKENS,
  DEFAULT_TEMPERATURE,
  DEFAULT_TOP_P,
  validateGenerateRequest,
  validateLoadVersion,
} from './validate';

const limits = { maxNewTokensLimit: 1024 };

function text(id: string, value: string): Prompt {
  return { id, content: { $case: 'text', value } };
}

function chat(id: string, messages: Array<{ role: string; content: string }>): Prompt {
  return { id, content: { $case: 'chat', value: { messages } } };
}

function request(overrides: Omit<Partial<GenerateRequest>, 'sampling'> & { sampling?: Partial<SamplingParams> } = {}): GenerateRequest {
  const { sampling, ...rest } = overrides;
  return GenerateRequest.fromPartial({ prompts: [text('p', 'hello')], ...rest, sampling });
}

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as InvalidArgumentError).field;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('validateGenerateRequest', () => {
  it('applies the documented defaults when sampling is unset or zero', () => {
    for (const sampling of [undefined, {}]) {
      const plan = validateGenerateRequest(request({ sampling }), limits);
      expect(plan.numSamples).toBe(1);
      expect(plan.sampling).toEqual({ temperature: DEFAULT_TEMPERATURE, topP: DEFAULT_TOP_P, topK: 0, maxNewTokens: DEFAULT_MAX_NEW_TOKENS, stop: [], seed: 0 });
      expect(plan.modelVersion).toBeUndefined();
    }
    expect(DEFAULT_TEMPERATURE).toBe(0.8);
    expect(DEFAULT_TOP_P).toBe(0.95);
    expect(DEFAULT_MAX_NEW_TOKENS).toBe(256);
  });

  it('keeps explicit values, temperature 0 (greedy) included, and the pinned version', () => {
    const plan = validateGenerateRequest(
      request({
        prompts: [text('a', 'x'), chat('b', [{ role: 'system', content: '' }, { role: 'user', content: 'hi' }])],
        numSamples: 5,
        modelVersion: 'run-1.m2',
        sampling: { temperature: 0, topP: 1, topK: 7, maxNewTokens: 1024, stop: ['\n\n'], seed: 99 },
      }),
      limits,
    );
    expect(plan.numSamples).toBe(5);
    expect(plan.sampling).toEqual({ temperature: 0, topP: 1, topK: 7, maxNewTokens: 1024, stop: ['\n\n'], seed: 99 });
    expect(plan.modelVersion).toBe('run-1.m2');
    expect(plan.prompts).toEqual([
      { id: 'a', input: { text: 'x' }, field: 'prompts[0].text' },
      { id: 'b', input: { messages: [{ role: 'system', content: '' }, { role: 'user', content: 'hi' }] }, field: 'prompts[1].chat' },
    ]);
  });

  const bad: Array<[string, Parameters<typeof request>[0], string]> = [
    ['no prompts', { prompts: [] }, 'prompts'],
    ['4097 prompts', { prompts: Array.from({ length: 4097 }, (_, i) => text(`p${i}`, 'x')) }, 'prompts'],
    ['an empty prompt id', { prompts: [text('', 'x')] }, 'prompts[0].id'],
    ['a prompt id over 256 bytes', { prompts: [text('é'.repeat(129), 'x')] }, 'prompts[0].id'],
    ['a repeated prompt id', { prompts: [text('a', 'x'), text('b', 'y'), text('a', 'z')] }, 'prompts[2].id'],
    ['a prompt without content', { prompts: [text('a', 'x'), { id: 'b', content: undefined }] }, 'prompts[1].text'],
    ['an empty prompt text', { prompts: [text('a', 'x'), text('b', 'y'), text('c', '')] }, 'prompts[2].text'],
    ['a prompt text over 1 MiB', { prompts: [text('a', 'x'.repeat(1024 * 1024 + 1))] }, 'prompts[0].text'],
    ['an empty conversation', { prompts: [chat('a', [])] }, 'prompts[0].chat.messages'],
    ['a conversation of empty turns', { prompts: [chat('a', [{ role: 'user', content: '' }])] }, 'prompts[0].chat.messages'],
    ['257 turns', { prompts: [chat('a', Array.from({ length: 257 }, () => ({ role: 'user', content: 'x' })))] }, 'prompts[0].chat.messages'],
    ['an unknown role', { prompts: [chat('a', [{ role: 'user', content: 'x' }, { role: 'robot', content: 'y' }])] }, 'prompts[0].chat.messages[1].role'],
    ['a turn over 1 MiB', { prompts: [chat('a', [{ role: 'user', content: 'x'.repeat(1024 * 1024 + 1) }])] }, 'prompts[0].chat.messages[0].content'],
    ['65 samples', { numSamples: 65 }, 'num_samples'],
    ['a negative temperature', { sampling: { temperature: -0.1 } }, 'sampling.temperature'],
    ['a temperature over 10', { sampling: { temperature: 10.5 } }, 'sampling.temperature'],
    ['a NaN temperature', { sampling: { temperature: NaN } }, 'sampling.temperature'],
    ['top_p 0', { sampling: { topP: 0 } }, 'sampling.top_p'],
    ['top_p over 1', { sampling: { topP: 1.01 } }, 'sampling.top_p'],
    ['a negative top_p', { sampling: { topP: -0.5 } }, 'sampling.top_p'],
    ['max_new_tokens over the server limit', { sampling: { maxNewTokens: 1025 } }, 'sampling.max_new_tokens'],
    ['9 stop strings', { sampling: { stop: Array.from({ length: 9 }, (_, i) => `s${i}`) } }, 'sampling.stop'],
    ['an empty stop string', { sampling: { stop: ['a', ''] } }, 'sampling.stop[1]'],
    ['a stop string over 64 bytes', { sampling: { stop: ['x'.repeat(65)] } }, 'sampling.stop[0]'],
    ['a malformed pinned version', { modelVersion: '../etc' }, 'model_version'],
    ['a pinned version over 128 bytes', { modelVersion: 'v'.repeat(129) }, 'model_version'],
  ];

  it.each(bad)('rejects %s, naming the field', (_name, overrides, field) => {
    expect(fieldOf(() => validateGenerateRequest(request(overrides), limits))).toBe(field);
  });

  it('takes the limits at their edges', () => {
    const plan = validateGenerateRequest(
      request({
        prompts: Array.from({ length: 4096 }, (_, i) => text(`p${i}`, 'x')),
        numSamples: 64,
        sampling: { temperature: 10, topP: Number.MIN_VALUE, maxNewTokens: 1024, stop: Array.from({ length: 8 }, () => 'y'.repeat(64)) },
      }),
      limits,
    );
    expect(plan.prompts).toHaveLength(4096);
    expect(plan.numSamples).toBe(64);
    expect(validateGenerateRequest(request({ prompts: [text('i'.repeat(256), 'x'.repeat(1024 * 1024))] }), limits).prompts[0].id).toHaveLength(256);
  });

  it('uses the server limit it is given for max_new_tokens', () => {
    expect(fieldOf(() => validateGenerateRequest(request({ sampling: { maxNewTokens: 65 } }), { maxNewTokensLimit: 64 }))).toBe('sampling.max_new_tokens');
    expect(validateGenerateRequest(request({ sampling: { maxNewTokens: 64 } }), { maxNewTokensLimit: 64 }).sampling.maxNewTokens).toBe(64);
  });
});

describe('validateLoadVersion', () => {
  it('takes names and "latest", and names the field for anything else', () => {
    expect(validateLoadVersion('m2')).toBe('m2');
    expect(validateLoadVersion('latest')).toBe('latest');
    for (const bad of ['', '.hidden', 'a/b', 'x'.repeat(129), 'sp ace']) expect(fieldOf(() => validateLoadVersion(bad))).toBe('version');
  });
});
