// Evaluation sets in their published formats, read into TaskItems (and the
// built-in items written out in the same formats):
// - ARC JSONL, as AI2 publishes ARC-Easy / ARC-Challenge, and OpenBookQA in
//   the same shape: {"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}.
//   Labels are letters, or digits 1-9 as on some ARC items; digits are mapped
//   to letters (1 -> A) so that every prompt asks for a letter.
// - GSM8K JSONL: {"question", "answer"}, the answer text's last line being
//   `#### <number>`; its calculator annotations `<<48/2=24>>` are dropped and
//   the rest becomes the reference solution, ending `Answer: <number>`.
// Item ids are `<task>/<record id>` (GSM8K has no ids: `<task>/line-<n>`),
// so that sets evaluated together never share an id. Every record is checked
// before anything is returned; the first bad one throws DataFormatError, with
// a hint when the file looks like the other format.
import { basename, extname } from 'node:path';
import { parseNumber } from './answer';
import { DataFormatError, InvalidOptionsError } from './errors';
import type { Choice, TaskItem } from './item';
import { expectArray, expectId, expectObject, expectString, jsonlRecords, readDataFile } from './jsonl';
import { answerLine, choiceLabel, evaluationPrompt } from './prompt';

/** A published evaluation-set format (proto EvalFormat). */
export type EvalFormat = 'arc' | 'gsm8k';

/** Options of the evaluation-set parsers. */
export interface EvalSetOptions {
  /** The task name of its items (proto EvalSetSpec.name); default the file's base name without extension. */
  task?: string;
  /** Keep at most this many items, in file order, after checking all; 0 or unset keeps all. */
  limit?: number;
}

/** An ARC / OpenBookQA record. */
export interface ArcRecord {
  id: string;
  question: { stem: string; choices: { text: string; label: string }[] };
  answerKey: string;
}

/** A GSM8K record. */
export interface Gsm8kRecord {
  question: string;
  answer: string;
}

const LOOKS_LIKE_GSM8K = ' (this looks like GSM8K: load it with format gsm8k)';
const LOOKS_LIKE_ARC = ' (this looks like ARC: load it with format arc)';

/** Reads an evaluation set in a published format. */
export async function loadEvalFile(path: string, format: EvalFormat, options: EvalSetOptions = {}): Promise<TaskItem[]> {
  checkFormat(format);
  const text = await readDataFile(path);
  return format === 'arc' ? parseArcJsonl(text, path, options) : parseGsm8kJsonl(text, path, options);
}

/** Parses ARC / OpenBookQA JSONL; `file` names it in errors and, by default, the task. */
export function parseArcJsonl(text: string, file: string, options: EvalSetOptions = {}): TaskItem[] {
  const task = taskName(file, options);
  const ids = new Map<string, number>();
  const items = jsonlRecords(text, file).map(({ line, record }): TaskItem => {
    const at = { file, line };
    // The question first: a GSM8K file read as ARC fails here, with the hint.
    const question = expectObject(record.question, at, 'question', typeof record.question === 'string' ? LOOKS_LIKE_GSM8K : '');
    const id = expectId(record.id, at, 'id', ids);
    const stem = expectString(question.stem, at, 'question.stem');
    const rawChoices = expectArray(question.choices, at, 'question.choices');
    if (rawChoices.length < 2 || rawChoices.length > 26) {
      throw new DataFormatError(`expected 2 to 26 choices, got ${rawChoices.length}`, file, line, 'question.choices');
    }
    const choices: Choice[] = rawChoices.map((entry, index) => {
      const field = `question.choices[${index}]`;
      const choice = expectObject(entry, at, field);
      const text = expectString(choice.text, at, `${field}.text`);
      const label = arcLabel(expectString(choice.label, at, `${field}.label`));
      if (label === null) throw new DataFormatError(`label "${String(choice.label)}" is not a letter A-Z or a digit 1-9`, file, line, `${field}.label`);
      return { label, text: text.trim() };
    });
    choices.forEach((choice, index) => {
      if (choices.findIndex((other) => other.label === choice.label) !== index) {
        throw new DataFormatError(`label "${choice.label}" is used twice`, file, line, `question.choices[${index}].label`);
      }
    });
    const key = expectString(record.answerKey, at, 'answerKey');
    const answer = arcLabel(key);
    const right = choices.find((choice) => choice.label === answer);
    if (right === undefined) {
      throw new DataFormatError(`answerKey "${key}" is not one of the labels ${choices.map((choice) => choice.label).join(', ')}`, file, line, 'answerKey');
    }
    return {
      id: `${task}/${id}`,
      task,
      answerKind: 'letter',
      question: stem.trim(),
      choices,
      prompt: evaluationPrompt(stem, choices),
      answer: right.label,
      solution: [`The correct option is ${right.text}.`, answerLine(right.label)].join('\n'),
    };
  });
  return limited(items, options);
}

/** Parses GSM8K JSONL; `file` names it in errors and, by default, the task. */
export function parseGsm8kJsonl(text: string, file: string, options: EvalSetOptions = {}): TaskItem[] {
  const task = taskName(file, options);
  const ids = new Map<string, number>();
  const items = jsonlRecords(text, file).map(({ line, record }): TaskItem => {
    const at = { file, line };
    const question = expectString(record.question, at, 'question', { hint: typeof record.question === 'object' ? LOOKS_LIKE_ARC : '' });
    const answerText = expectString(record.answer, at, 'answer', { hint: record.answerKey !== undefined ? LOOKS_LIKE_ARC : '' });
    const lines = answerText.split(/\r\n|\r|\n/).filter((answerLineText) => answerLineText.trim() !== '');
    const final = /^\s*####\s*(.*)$/.exec(lines[lines.length - 1]);
    if (final === null) throw new DataFormatError('the answer must end with a line "#### <number>"', file, line, 'answer');
    const answer = parseNumber(final[1]);
    if (answer === null) throw new DataFormatError(`"#### ${final[1]}" does not end with a number`, file, line, 'answer');
    const id = record.id === undefined ? `line-${line}` : expectId(record.id, at, 'id', ids);
    const steps = lines.slice(0, -1).map((step) => step.replace(/<<[^>]*>>/g, '').trimEnd());
    return {
      id: `${task}/${id}`,
      task,
      answerKind: 'integer',
      question: question.trim(),
      prompt: evaluationPrompt(question),
      answer,
      solution: [...steps, answerLine(answer)].join('\n'),
    };
  });
  return limited(items, options);
}

/** A multiple-choice item as an ARC JSONL record (its id without the task prefix when it has one). */
export function toArcRecord(item: TaskItem): ArcRecord {
  if (item.choices === undefined || item.answerKind !== 'letter') {
    throw new InvalidOptionsError(`item ${item.id} has no choices; write it as GSM8K`, 'item.choices');
  }
  return {
    id: stripTask(item),
    question: { stem: item.question, choices: item.choices.map(({ text, label }) => ({ text, label })) },
    answerKey: item.answer,
  };
}

/** An integer-answer item as a GSM8K JSONL record: its solution's steps, then `#### <answer>`. */
export function toGsm8kRecord(item: TaskItem): Gsm8kRecord {
  if (item.answerKind !== 'integer') throw new InvalidOptionsError(`item ${item.id} is multiple choice; write it as ARC`, 'item.answerKind');
  const steps = item.solution.split('\n').filter((line) => !/^\s*answer\s*:/i.test(line));
  return { question: item.question, answer: [...steps, `#### ${item.answer}`].join('\n') };
}

/** Records as JSONL text, one per line, with a final line break. */
export function toJsonl(records: readonly object[]): string {
  return records.map((record) => JSON.stringify(record)).join('\n') + (records.length > 0 ? '\n' : '');
}

function arcLabel(label: string): string | null {
  const trimmed = label.trim();
  if (/^[A-Za-z]$/.test(trimmed)) return trimmed.toUpperCase();
  if (/^[1-9]$/.test(trimmed)) return choiceLabel(Number(trimmed) - 1);
  return null;
}

function taskName(file: string, options: EvalSetOptions): string {
  const task = options.task ?? basename(file, extname(file));
  if (task.trim() === '') throw new InvalidOptionsError('the task name of an evaluation set must not be empty', 'task');
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 0)) {
    throw new InvalidOptionsError(`limit must be a non-negative integer, got ${String(options.limit)}`, 'limit');
  }
  return task;
}

function limited(items: TaskItem[], options: EvalSetOptions): TaskItem[] {
  return options.limit === undefined || options.limit === 0 ? items : items.slice(0, options.limit);
}

function stripTask(item: TaskItem): string {
  return item.id.startsWith(`${item.task}/`) ? item.id.slice(item.task.length + 1) : item.id;
}

function checkFormat(format: string): void {
  if (format !== 'arc' && format !== 'gsm8k') {
    throw new InvalidOptionsError(`unknown evaluation format "${format}"; expected arc or gsm8k`, 'format');
  }
}
