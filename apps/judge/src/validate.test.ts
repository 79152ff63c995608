// The judge's request checks without a model: every limit of judge.proto and
// common.proto refused as INVALID_ARGUMENT naming the field path, the
// documented defaults applied (k = 3, temperature 0.8, top-p 0.95, 256 new
// tokens), and the token checks against a model's vocabulary and context.
import { describe, expect, it } from 'vitest';
import { RubricStyle, type JudgeWithRubricRequest, type ScoreItem, type ScoreLogProbsRequest } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { checkJudgeRequest, checkScoreRequest, checkTokenizedItem, checkTopK, decodeSampling } from './validate';

const textItem = (id: string, response = 'a response'): ScoreItem => ({
  id,
  input: { $case: 'text', value: { prompt: { id: '', content: { $case: 'text', value: 'a prompt' } }, response } },
});
const tokenItem = (id: string, promptIds: number[], responseIds: number[]): ScoreItem => ({ id, input: { $case: 'tokens', value: { promptIds, responseIds } } });
const scoreRequest = (items: ScoreItem[], modelVersion = 'm1'): ScoreLogProbsRequest => ({ modelVersion, items });

/** The field an InvalidArgumentError names, or a failure when something else is thrown. */
function fieldOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidArgumentError) return error.field;
    throw error;
  }
  throw new Error('no error thrown');
}

describe('checkScoreRequest', () => {
  it('accepts text and token items and keeps their order', () => {
    const { version, items } = checkScoreRequest(scoreRequest([textItem('a'), tokenItem('b', [1, 2], [3])], 'latest'));
    expect(version).toBe('latest');
    expect(items).toEqual([
      { id: 'a', kind: 'text', prompt: { text: 'a prompt' }, response: 'a response' },
      { id: 'b', kind: 'tokens', promptIds: [1, 2], responseIds: [3] },
    ]);
  });

  it('decodes a chat prompt into messages', () => {
    const item: ScoreItem = {
      id: 'c',
      input: {
        $case: 'text',
        value: { prompt: { id: '', content: { $case: 'chat', value: { messages: [{ role: 'user', content: 'hi' }] } } }, response: 'hello' },
      },
    };
    expect(checkScoreRequest(scoreRequest([item])).items[0]).toMatchObject({ prompt: { messages: [{ role: 'user', content: 'hi' }] } });
  });

  const cases: Array<[string, ScoreLogProbsRequest, string]> = [
    ['no version', scoreRequest([textItem('a')], ''), 'model_version'],
    ['no items', scoreRequest([]), 'items'],
    ['too many items', scoreRequest(Array.from({ length: 65537 }, (_, i) => tokenItem(`i${i}`, [1], [2]))), 'items'],
    ['an empty id', scoreRequest([textItem('a'), textItem('')]), 'items[1].id'],
    ['an id over 256 bytes', scoreRequest([textItem('é'.repeat(129))]), 'items[0].id'],
    ['a repeated id', scoreRequest([textItem('a'), textItem('b'), textItem('a')]), 'items[2].id'],
    ['no input', scoreRequest([{ id: 'a', input: undefined }]), 'items[0].input'],
    ['an empty response', scoreRequest([textItem('a', '')]), 'items[0].text.response'],
    ['a response over 1 MiB', scoreRequest([textItem('a', 'x'.repeat(1024 * 1024 + 1))]), 'items[0].text.response'],
    [
      'no prompt',
      scoreRequest([{ id: 'a', input: { $case: 'text', value: { prompt: undefined, response: 'r' } } }]),
      'items[0].text.prompt',
    ],
    [
      'a prompt without content',
      scoreRequest([{ id: 'a', input: { $case: 'text', value: { prompt: { id: '', content: undefined }, response: 'r' } } }]),
      'items[0].text.prompt.content',
    ],
    [
      'an empty raw prompt',
      scoreRequest([{ id: 'a', input: { $case: 'text', value: { prompt: { id: '', content: { $case: 'text', value: '' } }, response: 'r' } } }]),
      'items[0].text.prompt.text',
    ],
    [
      'a conversation without turns',
      scoreRequest([{ id: 'a', input: { $case: 'text', value: { prompt: { id: '', content: { $case: 'chat', value: { messages: [] } } }, response: 'r' } } }]),
      'items[0].text.prompt.chat.messages',
    ],
    [
      'an unknown role',
      scoreRequest([
        {
          id: 'a',
          input: {
            $case: 'text',
            value: { prompt: { id: '', content: { $case: 'chat', value: { messages: [{ role: 'user', content: 'q' }, { role: 'robot', content: 'x' }] } } }, response: 'r' },
          },
        },
      ]),
      'items[0].text.prompt.chat.messages[1].role',
    ],
    [
      'a conversation of empty turns',
      scoreRequest([
        { id: 'a', input: { $case: 'text', value: { prompt: { id: '', content: { $case: 'chat', value: { messages: [{ role: 'user', content: '' }] } } }, response: 'r' } } },
      ]),
      'items[0].text.prompt.chat.messages',
    ],
    ['empty prompt ids', scoreRequest([tokenItem('a', [], [1])]), 'items[0].tokens.prompt_ids'],
    ['empty response ids', scoreRequest([tokenItem('a', [1], [])]), 'items[0].tokens.response_ids'],
    ['a negative token id', scoreRequest([tokenItem('a', [1], [2, -3])]), 'items[0].tokens.response_ids[1]'],
  ];

  it.each(cases)('refuses %s, naming the field', (_name, request, field) => {
    expect(fieldOf(() => checkScoreRequest(request))).toBe(field);
  });
});

describe('checkTokenizedItem', () => {
  const limits = { vocabSize: 10, contextLength: 6 };

  it('accepts ids in the vocabulary within the context', () => {
    expect(() => checkTokenizedItem([0, 9], [1, 2, 3, 4], limits, 'items[0].tokens', true)).not.toThrow();
  });

  it('names the id outside the vocabulary, the empty part, and an item over the context', () => {
    expect(fieldOf(() => checkTokenizedItem([0, 10], [1], limits, 'items[4].tokens', true))).toBe('items[4].tokens.prompt_ids[1]');
    expect(fieldOf(() => checkTokenizedItem([0], [1, 2, 30], limits, 'items[4].tokens', true))).toBe('items[4].tokens.response_ids[2]');
    expect(fieldOf(() => checkTokenizedItem([], [1], limits, 'items[2].text', false))).toBe('items[2].text.prompt');
    expect(fieldOf(() => checkTokenizedItem([1, 2, 3], [1, 2, 3, 4], limits, 'items[3].text', false))).toBe('items[3].text');
    expect(() => checkTokenizedItem([1, 2, 3], [1, 2, 3, 4], limits, 'items[3].text', false)).toThrow(/7 tokens.*context length is 6/);
  });
});

describe('decodeSampling', () => {
  it('applies the documented defaults to unset fields', () => {
    expect(decodeSampling(undefined, 1024)).toEqual({ temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 256, stop: [], seed: 0 });
    expect(decodeSampling({ temperature: 0, topP: 1, topK: 5, maxNewTokens: 7, stop: ['\n'], seed: 9 }, 1024)).toEqual({
      temperature: 0,
      topP: 1,
      topK: 5,
      maxNewTokens: 7,
      stop: ['\n'],
      seed: 9,
    });
    // A server limit below 256 caps the default too.
    expect(decodeSampling(undefined, 100).maxNewTokens).toBe(100);
  });

  const base = { temperature: undefined, topP: undefined, topK: 0, maxNewTokens: 0, stop: [] as string[], seed: 0 };
  it.each([
    ['a negative temperature', { ...base, temperature: -0.1 }, 'sampling.temperature'],
    ['a temperature over 10', { ...base, temperature: 10.5 }, 'sampling.temperature'],
    ['a NaN temperature', { ...base, temperature: NaN }, 'sampling.temperature'],
    ['top-p 0', { ...base, topP: 0 }, 'sampling.top_p'],
    ['top-p over 1', { ...base, topP: 1.01 }, 'sampling.top_p'],
    ['max tokens over the limit', { ...base, maxNewTokens: 1025 }, 'sampling.max_new_tokens'],
    ['nine stop strings', { ...base, stop: Array.from({ length: 9 }, (_, i) => `s${i}`) }, 'sampling.stop'],
    ['an empty stop string', { ...base, stop: ['ok', ''] }, 'sampling.stop[1]'],
    ['a stop string over 64 bytes', { ...base, stop: ['x'.repeat(65)] }, 'sampling.stop[0]'],
  ])('refuses %s', (_name, sampling, field) => {
    expect(fieldOf(() => decodeSampling(sampling, 1024))).toBe(field);
  });

  it('refuses top_k over the vocabulary', () => {
    expect(() => checkTopK(320, 320)).not.toThrow();
    expect(fieldOf(() => checkTopK(321, 320))).toBe('sampling.top_k');
  });
});

describe('checkJudgeRequest', () => {
  const judgeRequest = (overrides: Partial<JudgeWithRubricRequest> = {}): JudgeWithRubricRequest => ({
    modelVersion: 'm1',
    items: [
      { id: 'a', item: { prompt: { id: '', content: { $case: 'text', value: 'What is 2 + 3?' } }, response: '5' } },
      {
        id: 'b',
        item: {
          prompt: { id: '', content: { $case: 'chat', value: { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Why?' }] } } },
          response: 'Because.',
        },
      },
    ],
    numJudgments: 0,
    sampling: undefined,
    style: RubricStyle.RUBRIC_STYLE_UNSPECIFIED,
    ...overrides,
  });

  it('takes k = 3 by default and the last turn of a conversation as the question', () => {
    const checked = checkJudgeRequest(judgeRequest(), 1024);
    expect(checked.numJudgments).toBe(3);
    expect(checked.items).toEqual([
      { id: 'a', question: 'What is 2 + 3?', response: '5' },
      { id: 'b', question: 'Why?', response: 'Because.' },
    ]);
    expect(checked.sampling.temperature).toBe(0.8);
  });

  it('refuses k over 16, too many items, a missing item and bad sampling, naming the field', () => {
    expect(checkJudgeRequest(judgeRequest({ numJudgments: 16 }), 1024).numJudgments).toBe(16);
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ numJudgments: 17 }), 1024))).toBe('num_judgments');
    const many = Array.from({ length: 4097 }, (_, i) => ({ ...judgeRequest().items[0], id: `i${i}` }));
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ items: many }), 1024))).toBe('items');
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ items: [{ id: 'x', item: undefined }] }), 1024))).toBe('items[0].item');
    const empty = judgeRequest();
    empty.items[1] = { ...empty.items[1], item: { ...empty.items[1].item!, response: '' } };
    expect(fieldOf(() => checkJudgeRequest(empty, 1024))).toBe('items[1].item.response');
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ sampling: { temperature: -1, topP: undefined, topK: 0, maxNewTokens: 0, stop: [], seed: 0 } }), 1024))).toBe(
      'sampling.temperature',
    );
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ modelVersion: '' }), 1024))).toBe('model_version');
  });

  it('takes the rubric style: unspecified and full are the paper text, compact the short one; an unknown value is refused', () => {
    expect(checkJudgeRequest(judgeRequest(), 1024).style).toBe('full');
    expect(checkJudgeRequest(judgeRequest({ style: RubricStyle.RUBRIC_STYLE_FULL }), 1024).style).toBe('full');
    expect(checkJudgeRequest(judgeRequest({ style: RubricStyle.RUBRIC_STYLE_COMPACT }), 1024).style).toBe('compact');
    expect(fieldOf(() => checkJudgeRequest(judgeRequest({ style: 9 as RubricStyle }), 1024))).toBe('style');
  });
});
