// The data stage's content: the built-in suite (its own seed, capped SFT set,
// per-iteration prompts with keys, test sets) and users' files (split per
// iteration, loader errors as INVALID_ARGUMENT naming the spec field).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRubricScore } from '@cream/cream';
import { DataSpec, EvalFormat } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interleaveByTask, loadRunData, splitPrompts } from './data';

// Created at load: the table of it.each below names files in it.
const dir = mkdtempSync(join(tmpdir(), 'cream-coordinator-data-'));
const path = (name: string) => join(dir, name);

beforeAll(() => {
  const sft = Array.from({ length: 5 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: `a${i}` }] }));
  writeFileSync(path('sft.jsonl'), sft.join('\n'));
  writeFileSync(path('prompts.jsonl'), Array.from({ length: 7 }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `prompt ${i}` })).join('\n'));
  writeFileSync(path('gsm.jsonl'), JSON.stringify({ question: 'What is 1 + 1?', answer: '1 + 1 = 2\n#### 2' }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = (fields: Partial<DataSpec> = {}) => DataSpec.fromPartial({ sftPath: path('sft.jsonl'), promptsPath: path('prompts.jsonl'), ...fields });

describe('loadRunData', () => {
  it('draws the built-in suite from its own seed: capped SFT over every task with its EFT examples, keyed prompts per iteration, test sets', async () => {
    const data = await loadRunData(DataSpec.fromPartial({ builtinSuite: true, maxSftExamples: 8, promptsPerIteration: 12 }), 2);
    expect(data.source).toBe('builtin');
    // 8 seed items (instruction data), then their 3 x 8 judging examples (evaluation fine-tuning).
    expect(data.sft).toHaveLength(32);
    const [ift, eft] = [data.sft.slice(0, 8), data.sft.slice(8)];
    expect(new Set(ift.map((example) => example.id.split('/')[1])).size).toBe(4);
    expect(ift[0].messages.at(-1)?.role).toBe('user');
    expect(ift[0].response).toMatch(/Answer: /);
    const seedIds = new Set(ift.map((example) => example.id.split('/').slice(1).join('/')));
    for (const example of eft) {
      expect(example.id).toMatch(/^eft\/\w+\/\d{4}\/(correct|bad-format|wrong)$/);
      expect(seedIds.has(example.id.split('/').slice(1, 3).join('/'))).toBe(true);
      expect(example.messages.map((message) => message.role)).toEqual(['user']);
      expect(example.messages[0].content).toMatch(/^Add 1 point each if/);
      expect(parseRubricScore(example.response)).toBe({ correct: 5, 'bad-format': 3, wrong: 1 }[example.id.split('/')[3]]);
    }
    expect(data.iterations.map((subset) => subset.length)).toEqual([12, 12]);
    expect(data.iterations[0].every((prompt) => prompt.item?.answer !== undefined && prompt.id.startsWith('iter-1/'))).toBe(true);
    expect(data.iterations[1][0].id.startsWith('iter-2/')).toBe(true);
    expect(data.evalSets.map((set) => set.name)).toHaveLength(4);
    // The same data whatever the run: the suite does not depend on the run seed.
    expect(await loadRunData(DataSpec.fromPartial({ builtinSuite: true, maxSftExamples: 8, promptsPerIteration: 12 }), 2)).toEqual(data);
  });

  it('splits the user prompt list evenly (or as asked) across iterations', async () => {
    const even = await loadRunData(files({ evalSets: [{ name: 'gsm', path: path('gsm.jsonl'), format: EvalFormat.EVAL_FORMAT_GSM8K, limit: 0 }] }), 3);
    expect(even.iterations.map((subset) => subset.map((prompt) => prompt.id))).toEqual([['p0', 'p1'], ['p2', 'p3'], ['p4', 'p5']]);
    expect(even.sft.map((example) => [example.id, example.response])).toEqual([['sft-0', 'a0'], ['sft-1', 'a1'], ['sft-2', 'a2'], ['sft-3', 'a3'], ['sft-4', 'a4']]);
    expect(even.evalSets[0].items[0]).toMatchObject({ task: 'gsm', answer: '2' });
    const asked = await loadRunData(files({ promptsPerIteration: 3, maxSftExamples: 2 }), 2);
    expect(asked.iterations.map((subset) => subset.length)).toEqual([3, 3]);
    expect(asked.sft).toHaveLength(2);
  });

  it.each([
    ['a missing SFT file', files({ sftPath: path('absent.jsonl') }), 1, 'spec.data.sft_path', /absent\.jsonl: no such file/],
    ['too few prompts', files(), 8, 'spec.data.prompts_per_iteration', /7 prompts cannot give each of 8 iterations/],
    ['too many prompts asked for', files({ promptsPerIteration: 4 }), 2, 'spec.data.prompts_per_iteration', /needs 8 prompts; the data has 7/],
    ['an eval set in the wrong format', files({ evalSets: [{ name: 'x', path: path('gsm.jsonl'), format: EvalFormat.EVAL_FORMAT_ARC, limit: 0 }] }), 1, 'spec.data.eval_sets[0]', /gsm\.jsonl:1.*looks like GSM8K/],
  ])('rejects %s naming the field', async (_, spec, iterations, field, message) => {
    const error = await loadRunData(spec, iterations).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).field).toBe(field);
    expect((error as Error).message).toMatch(message);
  });

  it('helpers: round-robin across tasks, even splits', () => {
    const items = ['a1', 'a2', 'a3', 'b1', 'c1', 'c2'].map((id) => ({ id, task: id[0] }));
    expect(interleaveByTask(items, 5).map((item) => item.id)).toEqual(['a1', 'b1', 'c1', 'a2', 'c2']);
    expect(interleaveByTask(items, 10)).toHaveLength(6);
    expect(splitPrompts([1, 2, 3, 4, 5], 2, 0, 'f')).toEqual([[1, 2], [3, 4]]);
  });
});
