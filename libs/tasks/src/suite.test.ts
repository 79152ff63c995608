import { describe, expect, it } from 'vitest';
import { isCorrect, parseAnswer } from './answer';
import { isInvalidOptionsError, isSuiteCapacityError } from './errors';
import { toPromptRecord, toSftExample, type TaskItem } from './item';
import { evaluationPrompt, normalizePrompt } from './prompt';
import { createRng } from './rng';
import { buildSuite, createDrawer, DEFAULT_CORRUPTION_RATES, DEFAULT_SUITE_SIZES, summarizeSuite, type Suite } from './suite';
import type { TaskGenerator } from './tasks/task';

const SMALL = { pretrainPerTask: 200, seedPerTask: 16, iterations: 3, promptsPerIterationPerTask: 8, testPerTask: 20 };

function splits(suite: Suite): Record<string, readonly { messages?: { content: string }[]; prompt?: string }[]> {
  return {
    pretrain: suite.pretrain,
    seed: suite.seedSft,
    ...Object.fromEntries(suite.iterations.map((subset, i) => [`iter-${i + 1}`, subset])),
    test: Object.values(suite.test).flat(),
  };
}

const promptOf = (entry: { messages?: { content: string }[]; prompt?: string }): string => entry.prompt ?? entry.messages![0].content;

describe('buildSuite', () => {
  const suite = buildSuite({ seed: 11, sizes: SMALL });

  it('is the same for the same seed and different for another', () => {
    expect(JSON.stringify(buildSuite({ seed: 11, sizes: SMALL }))).toBe(JSON.stringify(suite));
    const other = buildSuite({ seed: 12, sizes: SMALL });
    expect(other.test.science.map((item) => item.prompt)).not.toEqual(suite.test.science.map((item) => item.prompt));
    expect(other.pretrain.map(promptOf)).not.toEqual(suite.pretrain.map(promptOf));
  });

  it('keeps the splits disjoint by normalized prompt, across tasks too, with the default sizes', () => {
    const full = buildSuite({ seed: 3 });
    const owner = new Map<string, string>();
    let total = 0;
    for (const [split, entries] of Object.entries(splits(full))) {
      for (const entry of entries) {
        const key = normalizePrompt(promptOf(entry));
        expect(owner.get(key), `${split}: ${key}`).toBeUndefined();
        owner.set(key, split);
        total += 1;
      }
    }
    expect(total).toBe(4 * (2000 + 64 + 3 * 32 + 50));
  });

  it('has the asked sizes, per task and split, and unique ids', () => {
    const summary = summarizeSuite(suite);
    expect(summary.splits.map((split) => [split.split, split.total])).toEqual([
      ['pretrain', 800],
      ['seed', 64],
      ['iter-1', 32],
      ['iter-2', 32],
      ['iter-3', 32],
      ['test', 80],
    ]);
    for (const split of summary.splits) expect(Object.values(split.byTask)).toEqual([1, 1, 1, 1].map(() => split.total / 4));
    const ids = Object.values(splits(suite)).flatMap((entries) => entries.map((entry) => (entry as { id: string }).id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(suite.test.arithmetic[0].id).toBe('test/arithmetic/0000');
    expect(suite.iterations[2][0].id).toBe('iter-3/science/0000');
  });

  it('writes every prompt with the one evaluation template and a solution that passes its checker', () => {
    const items: TaskItem[] = [...suite.seedSft, ...suite.iterations.flat(), ...Object.values(suite.test).flat()];
    for (const item of items) {
      expect(item.prompt).toBe(evaluationPrompt(item.question, item.choices));
      expect(isCorrect(item, item.solution)).toBe(true);
    }
    expect(toSftExample(suite.seedSft[0]).messages.map((message) => message.role)).toEqual(['user', 'assistant']);
    expect(toPromptRecord(suite.iterations[0][0])).toEqual({
      id: suite.iterations[0][0].id,
      task: suite.iterations[0][0].task,
      messages: [{ role: 'user', content: suite.iterations[0][0].prompt }],
    });
  });

  it('mixes wrong and badly formatted responses into the pretraining corpus at the asked rates', () => {
    expect(summarizeSuite(suite).pretrainQuality).toEqual({ correct: 400, wrong: 240, 'bad-format': 160 });
    for (const example of suite.pretrain) {
      const [user, assistant] = example.messages;
      expect([user.role, assistant.role]).toEqual(['user', 'assistant']);
      const parsed = parseAnswer(example.answerKind, assistant.content);
      if (example.quality === 'correct') expect(parsed).toBe(example.answer);
      if (example.quality === 'wrong') expect(parsed !== null && parsed !== example.answer).toBe(true);
      if (example.quality === 'bad-format') expect(parsed).toBeNull();
    }
    // Tasks are interleaved, not in blocks.
    expect(new Set(suite.pretrain.slice(0, 20).map((example) => example.task)).size).toBeGreaterThan(1);

    const clean = buildSuite({ seed: 11, sizes: SMALL, corruption: { wrong: 0, badFormat: 0 } });
    expect(summarizeSuite(clean).pretrainQuality).toEqual({ correct: 800, wrong: 0, 'bad-format': 0 });
    const noisy = buildSuite({ seed: 11, sizes: SMALL, corruption: { wrong: 0.5, badFormat: 0.5 } });
    expect(summarizeSuite(noisy).pretrainQuality).toEqual({ correct: 0, wrong: 400, 'bad-format': 400 });
  });

  it('keeps the test and seed sets when only the corpus or the iterations grow, and a task apart from the others', () => {
    const bigger = buildSuite({ seed: 11, sizes: { ...SMALL, pretrainPerTask: 400, iterations: 4 } });
    expect(bigger.test).toEqual(suite.test);
    expect(bigger.seedSft).toEqual(suite.seedSft);
    expect(bigger.iterations.slice(0, 3)).toEqual(suite.iterations);
    const alone = buildSuite({ seed: 11, sizes: SMALL, tasks: ['arithmetic'] });
    expect(alone.tasks).toEqual(['arithmetic']);
    expect(alone.test.arithmetic).toEqual(suite.test.arithmetic);
    expect(Object.keys(alone.test)).toEqual(['arithmetic']);
  });

  it('fills in the defaults', () => {
    const tiny = buildSuite({ seed: 0, sizes: { pretrainPerTask: 0, testPerTask: 1 } });
    expect(tiny.sizes).toEqual({ ...DEFAULT_SUITE_SIZES, pretrainPerTask: 0, testPerTask: 1 });
    expect(tiny.corruption).toEqual(DEFAULT_CORRUPTION_RATES);
    expect(tiny.pretrain).toEqual([]);
  });

  it.each([
    [{ seed: -1 }, 'seed'],
    [{ seed: 1.5 }, 'seed'],
    [{ seed: 1, sizes: { testPerTask: -1 } }, 'sizes.testPerTask'],
    [{ seed: 1, sizes: { iterations: 0.5 } }, 'sizes.iterations'],
    [{ seed: 1, sizes: { pretrainPerTask: 1e6 } }, 'sizes'],
    [{ seed: 1, corruption: { wrong: 1.5 } }, 'corruption.wrong'],
    [{ seed: 1, corruption: { badFormat: Number.NaN } }, 'corruption.badFormat'],
    [{ seed: 1, corruption: { wrong: 0.6, badFormat: 0.6 } }, 'corruption'],
    [{ seed: 1, tasks: [] }, 'tasks'],
    [{ seed: 1, tasks: ['science', 'gsm8k'] }, 'tasks[1]'],
    [{ seed: 1, tasks: ['science', 'science'] }, 'tasks[1]'],
  ])('refuses %j naming %s', (options, option) => {
    let caught: unknown;
    try {
      buildSuite(options as Parameters<typeof buildSuite>[0]);
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionsError(caught) && caught.option).toBe(option);
  });
});

describe('createDrawer', () => {
  // A task with five distinct questions, to reach its capacity quickly.
  const fiveQuestions: TaskGenerator = {
    name: 'five',
    answerKind: 'integer',
    mirrors: 'none',
    description: 'what is n + 1, n from 1 to 5',
    generate: (rng) => {
      const n = rng.int(1, 5);
      const solution = `${n} + 1 = ${n + 1}.\nAnswer: ${n + 1}`;
      return { question: `What is ${n} + 1?`, answer: String(n + 1), solution, wrongSolution: () => solution, badFormatSolution: () => solution };
    },
  };

  it('draws distinct prompts across splits, skipping those already seen, then reports the task exhausted', () => {
    const seen = new Set([normalizePrompt(evaluationPrompt('WHAT IS 1  + 1?'))]);
    const draw = createDrawer(fiveQuestions, createRng('five'), 6, seen);
    const first = draw('test', 2);
    const second = draw('seed', 2);
    const prompts = [...first, ...second].map(({ item }) => item.question);
    expect(new Set(prompts).size).toBe(4);
    expect(prompts).not.toContain('What is 1 + 1?');
    expect(second.map(({ item }) => item.id)).toEqual(['seed/five/0000', 'seed/five/0001']);
    let caught: unknown;
    try {
      draw('pretrain', 2);
    } catch (error) {
      caught = error;
    }
    expect(isSuiteCapacityError(caught) && [caught.task, caught.needed, caught.produced]).toEqual(['five', 6, 4]);
  });
});
