import { describe, expect, it } from 'vitest';
import { isGenerateResultError, isInvalidOptionsError } from './errors';
import { evaluate, summarizeResults } from './evaluate';
import type { TaskItem } from './item';
import { buildSuite } from './suite';

const suite = buildSuite({ seed: 9, sizes: { pretrainPerTask: 0, seedPerTask: 0, iterations: 0, testPerTask: 10 } });
const items: TaskItem[] = Object.values(suite.test).flat();
const byPrompt = new Map(items.map((item) => [item.prompt, item]));

// The injected dependency: a "model" that answers from the key, with chosen
// tasks answered wrongly or without an Answer line.
function fakeModel(behaviour: (item: TaskItem, index: number) => 'right' | 'wrong' | 'unparsable') {
  const calls: number[] = [];
  let seen = 0;
  const generate = async (prompts: string[]): Promise<string[]> => {
    calls.push(prompts.length);
    return prompts.map((prompt) => {
      const item = byPrompt.get(prompt)!;
      const how = behaviour(item, seen++);
      if (how === 'unparsable') return 'I am not sure.';
      if (how === 'right') return item.solution;
      return item.answerKind === 'letter' ? `Answer: ${item.answer === 'A' ? 'B' : 'A'}` : `Answer: ${Number(item.answer) + 1}`;
    });
  };
  return { generate, calls };
}

describe('evaluate', () => {
  it('scores every task and the mean over tasks, in batches', async () => {
    const model = fakeModel((item, index) => {
      if (item.task === 'science') return 'right';
      if (item.task === 'objects') return index % 2 === 0 ? 'right' : 'wrong';
      if (item.task === 'social') return 'unparsable';
      return index % 5 === 0 ? 'unparsable' : 'right';
    });
    const progress: number[] = [];
    const report = await evaluate(items, model.generate, { batchSize: 16, onProgress: (done) => progress.push(done) });
    expect(model.calls).toEqual([16, 16, 8]);
    expect(progress).toEqual([16, 32, 40]);
    expect(report.tasks).toEqual([
      { task: 'science', accuracy: 1, numItems: 10, numCorrect: 10, numUnparsable: 0 },
      { task: 'objects', accuracy: 0.5, numItems: 10, numCorrect: 5, numUnparsable: 0 },
      { task: 'social', accuracy: 0, numItems: 10, numCorrect: 0, numUnparsable: 10 },
      { task: 'arithmetic', accuracy: 0.8, numItems: 10, numCorrect: 8, numUnparsable: 2 },
    ]);
    expect(report.meanAccuracy).toBeCloseTo((1 + 0.5 + 0 + 0.8) / 4, 12);
    expect(report.numItems).toBe(40);
    expect(report.numUnparsable).toBe(12);
    expect(report.items[0]).toEqual({ id: items[0].id, task: 'science', response: items[0].solution, parsed: items[0].answer, correct: true });
    expect(report.items.map((result) => result.id)).toEqual(items.map((item) => item.id));
  });

  it('weighs tasks equally in the mean, not items', () => {
    const report = summarizeResults([
      { id: 'a', task: 'big', response: '', parsed: 'A', correct: true },
      { id: 'b', task: 'big', response: '', parsed: 'A', correct: true },
      { id: 'c', task: 'big', response: '', parsed: 'A', correct: true },
      { id: 'd', task: 'small', response: '', parsed: null, correct: false },
    ]);
    expect(report.meanAccuracy).toBe(0.5);
  });

  it('uses batches of 16 by default and takes any batch size', async () => {
    const model = fakeModel(() => 'right');
    expect((await evaluate(items, model.generate)).meanAccuracy).toBe(1);
    expect(model.calls).toEqual([16, 16, 8]);
    const single = fakeModel(() => 'right');
    await evaluate(items.slice(0, 3), single.generate, { batchSize: 1 });
    expect(single.calls).toEqual([1, 1, 1]);
  });

  it('refuses a generate function that returns the wrong number of responses, or non-strings', async () => {
    const short = await evaluate(items, async (prompts) => prompts.slice(1), { batchSize: 8 }).catch((error: unknown) => error);
    expect(isGenerateResultError(short) && [short.batch, short.expected, short.received]).toEqual([0, 8, 7]);
    const numbers = await evaluate(items, async (prompts) => prompts.map(() => 5 as unknown as string)).catch((error: unknown) => error);
    expect(isGenerateResultError(numbers) && numbers.message).toContain('a number at index 0');
  });

  it('passes the generate function’s own errors through', async () => {
    const failure = new Error('generator unavailable');
    await expect(
      evaluate(items, async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
  });

  it.each([
    [{ batchSize: 0 }, 'batchSize'],
    [{ batchSize: 2.5 }, 'batchSize'],
  ])('refuses options %j', async (options, option) => {
    const error = await evaluate(items, fakeModel(() => 'right').generate, options).catch((caught: unknown) => caught);
    expect(isInvalidOptionsError(error) && error.option).toBe(option);
  });

  it('refuses no items and duplicate ids before generating', async () => {
    const model = fakeModel(() => 'right');
    const empty = await evaluate([], model.generate).catch((caught: unknown) => caught);
    expect(isInvalidOptionsError(empty) && empty.option).toBe('items');
    const duplicate = await evaluate([items[0], items[1], items[0]], model.generate).catch((caught: unknown) => caught);
    expect(isInvalidOptionsError(duplicate) && duplicate.option).toBe('items[2].id');
    expect(model.calls).toEqual([]);
  });
});
