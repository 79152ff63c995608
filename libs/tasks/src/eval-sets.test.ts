import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCorrect } from './answer';
import { isDataFileError, isDataFormatError, isInvalidOptionsError, type DataFormatError } from './errors';
import { loadEvalFile, parseArcJsonl, parseGsm8kJsonl, toArcRecord, toGsm8kRecord, toJsonl } from './eval-sets';
import { evaluationPrompt } from './prompt';
import { buildSuite } from './suite';
import { TASK_FIXTURES } from './testing';

async function formatError(load: Promise<unknown>): Promise<DataFormatError> {
  const error = await load.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!isDataFormatError(error)) throw new Error(`expected a DataFormatError, got ${String(error)}`);
  return error;
}

describe('ARC JSONL', () => {
  it('loads the AI2 shape, mapping digit labels to letters', async () => {
    const items = await loadEvalFile(TASK_FIXTURES.arc, 'arc', { task: 'arc-easy' });
    expect(items.map((item) => [item.id, item.answer, item.choices!.length])).toEqual([
      ['arc-easy/Mercury_SC_400001', 'B', 4],
      ['arc-easy/ACTAAP_2010_5_7', 'B', 4],
      ['arc-easy/NYSEDREGENTS_2015_4_12', 'A', 3],
    ]);
    const [first, second] = items;
    expect(first).toMatchObject({ task: 'arc-easy', answerKind: 'letter', question: 'Which form of energy does a plant use to make its food?' });
    expect(first.prompt).toBe(
      [
        'Which form of energy does a plant use to make its food?',
        'A) sound',
        'B) light',
        'C) heat from the soil',
        'D) electricity',
        `Let's think step by step. End with a line "Answer: <letter>".`,
      ].join('\n'),
    );
    expect(second.choices).toEqual([
      { label: 'A', text: 'It melts.' },
      { label: 'B', text: 'It freezes.' },
      { label: 'C', text: 'It boils.' },
      { label: 'D', text: 'It evaporates.' },
    ]);
    for (const item of items) expect(isCorrect(item, item.solution)).toBe(true);
    expect(isCorrect(second, 'Water freezes when cold.\nAnswer: B')).toBe(true);
  });

  it('loads OpenBookQA, ignoring its extra fields, and names the task after the file by default', async () => {
    const items = await loadEvalFile(TASK_FIXTURES.openbookqa, 'arc');
    expect(items.map((item) => [item.id, item.task, item.answer])).toEqual([
      ['openbookqa-sample/7-101', 'openbookqa-sample', 'B'],
      ['openbookqa-sample/9-202', 'openbookqa-sample', 'C'],
    ]);
  });

  it('keeps at most `limit` items, after checking them all', async () => {
    expect(await loadEvalFile(TASK_FIXTURES.arc, 'arc', { limit: 2 })).toHaveLength(2);
    expect(await loadEvalFile(TASK_FIXTURES.arc, 'arc', { limit: 0 })).toHaveLength(3);
    const error = await formatError(loadEvalFile(TASK_FIXTURES.arcBadAnswerKey, 'arc', { limit: 1 }));
    expect([error.line, error.field]).toEqual([3, 'answerKey']);
  });

  it('names the file, the line and the field of the first bad record', async () => {
    const error = await formatError(loadEvalFile(TASK_FIXTURES.arcBadAnswerKey, 'arc'));
    expect([error.file, error.line, error.field]).toEqual([TASK_FIXTURES.arcBadAnswerKey, 3, 'answerKey']);
    expect(error.message).toBe(`${TASK_FIXTURES.arcBadAnswerKey}:3 (answerKey): answerKey "E" is not one of the labels A, B`);
  });

  it('refuses a GSM8K file, with a hint', async () => {
    const error = await formatError(loadEvalFile(TASK_FIXTURES.gsm8k, 'arc'));
    expect([error.line, error.field]).toEqual([1, 'question']);
    expect(error.message).toContain('this looks like GSM8K');
  });

  const choice = (label: string, text = 'x') => ({ text, label });
  const record = (overrides: Record<string, unknown>, question: Record<string, unknown> = {}) =>
    JSON.stringify({ id: 'q', question: { stem: 'Which?', choices: [choice('A'), choice('B', 'y')], ...question }, answerKey: 'A', ...overrides });
  it.each([
    ['no id', record({ id: undefined }), 'id'],
    ['a number id', record({ id: 7 }), 'id'],
    ['no stem', record({}, { stem: undefined }), 'question.stem'],
    ['choices not an array', record({}, { choices: {} }), 'question.choices'],
    ['one choice', record({}, { choices: [choice('A')] }), 'question.choices'],
    ['a choice without text', record({}, { choices: [choice('A'), { label: 'B' }] }), 'question.choices[1].text'],
    ['a bad label', record({}, { choices: [choice('A'), choice('AB')] }), 'question.choices[1].label'],
    ['a repeated label', record({}, { choices: [choice('A'), choice('a', 'y')] }), 'question.choices[1].label'],
    ['no answerKey', record({ answerKey: undefined }), 'answerKey'],
  ])('refuses %s', (_, line, field) => {
    let caught: unknown;
    try {
      parseArcJsonl(`${record({ id: 'first' })}\n${line}`, 'arc.jsonl');
    } catch (error) {
      caught = error;
    }
    expect(isDataFormatError(caught) && [caught.file, caught.line, caught.field]).toEqual(['arc.jsonl', 2, field]);
  });

  it('refuses a duplicate id', () => {
    expect(() => parseArcJsonl(`${record({})}\n${record({})}`, 'arc.jsonl')).toThrow('arc.jsonl:2 (id): duplicate id "q" (first on line 1)');
  });
});

describe('GSM8K JSONL', () => {
  it('loads the published shape: annotations dropped, #### becomes the Answer line', async () => {
    const items = await loadEvalFile(TASK_FIXTURES.gsm8k, 'gsm8k', { task: 'gsm8k' });
    expect(items.map((item) => [item.id, item.answer])).toEqual([
      ['gsm8k/line-1', '36'],
      ['gsm8k/line-2', '1200'],
      ['gsm8k/line-3', '-3'],
    ]);
    expect(items[0]).toMatchObject({
      task: 'gsm8k',
      answerKind: 'integer',
      prompt: evaluationPrompt(items[0].question),
      solution: 'On Tuesday Mia picked 12*2 = 24 apples.\nIn total she picked 12+24 = 36 apples.\nAnswer: 36',
    });
    expect(items[0].choices).toBeUndefined();
    for (const item of items) expect(isCorrect(item, item.solution)).toBe(true);
    expect(isCorrect(items[1], 'Answer: 1,200')).toBe(true);
  });

  it('names the line without a #### answer', async () => {
    const error = await formatError(loadEvalFile(TASK_FIXTURES.gsm8kMissingMarker, 'gsm8k'));
    expect([error.file, error.line, error.field]).toEqual([TASK_FIXTURES.gsm8kMissingMarker, 2, 'answer']);
    expect(error.message).toContain('#### <number>');
  });

  it('refuses an ARC file, with a hint', async () => {
    const error = await formatError(loadEvalFile(TASK_FIXTURES.arc, 'gsm8k'));
    expect([error.line, error.field]).toEqual([1, 'question']);
    expect(error.message).toContain('this looks like ARC');
  });

  it.each([
    ['no answer', '{"question": "q"}', 'answer'],
    ['a number that is not one', '{"question": "q", "answer": "#### many"}', 'answer'],
    ['an empty question', '{"question": " ", "answer": "#### 1"}', 'question'],
  ])('refuses %s', (_, line, field) => {
    let caught: unknown;
    try {
      parseGsm8kJsonl(line, 'g.jsonl');
    } catch (error) {
      caught = error;
    }
    expect(isDataFormatError(caught) && [caught.line, caught.field]).toEqual([1, field]);
  });
});

describe('files and options', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('names a missing file and refuses an unknown format', async () => {
    const missing = await loadEvalFile('/no/such/arc.jsonl', 'arc').catch((caught: unknown) => caught);
    expect(isDataFileError(missing) && missing.file).toBe('/no/such/arc.jsonl');
    const unknown = await loadEvalFile(TASK_FIXTURES.arc, 'mmlu' as 'arc').catch((caught: unknown) => caught);
    expect(isInvalidOptionsError(unknown) && unknown.option).toBe('format');
    const limit = await loadEvalFile(TASK_FIXTURES.arc, 'arc', { limit: -1 }).catch((caught: unknown) => caught);
    expect(isInvalidOptionsError(limit) && limit.option).toBe('limit');
  });

  it('writes the built-in test sets in the published formats and reads them back to the same prompts and keys', async () => {
    const suite = buildSuite({ seed: 5, sizes: { pretrainPerTask: 0, seedPerTask: 0, iterations: 0, testPerTask: 10 } });
    const dir = await mkdtemp(join(tmpdir(), 'cream-tasks-'));
    dirs.push(dir);
    for (const task of suite.tasks) {
      const items = suite.test[task];
      const arithmetic = task === 'arithmetic';
      const path = join(dir, `${task}.jsonl`);
      await writeFile(path, toJsonl(items.map((item) => (arithmetic ? toGsm8kRecord(item) : toArcRecord(item)))));
      const loaded = await loadEvalFile(path, arithmetic ? 'gsm8k' : 'arc', { task });
      expect(loaded.map((item) => [item.prompt, item.answer, item.answerKind])).toEqual(items.map((item) => [item.prompt, item.answer, item.answerKind]));
      // GSM8K keeps the reasoning, so the solution survives the round trip too.
      if (arithmetic) expect(loaded.map((item) => item.solution)).toEqual(items.map((item) => item.solution));
    }
    expect(() => toArcRecord(suite.test.arithmetic[0])).toThrow(/write it as GSM8K/);
    expect(() => toGsm8kRecord(suite.test.science[0])).toThrow(/write it as ARC/);
    expect(toJsonl([])).toBe('');
  });
});
