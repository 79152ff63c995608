// The evaluation harness: prompts go to an injected generate function in
// batches (the caller decides how: greedy decoding on the generator service,
// as the paper evaluates), each response is checked against its item's key,
// and accuracy is reported per task and as the mean over tasks (the paper's
// "average" column weighs tasks equally, not items). Pure apart from the
// generate function; its errors propagate unchanged.
import { checkResponse } from './answer';
import { GenerateResultError, InvalidOptionsError } from './errors';
import type { TaskItem } from './item';

/** Writes one response per prompt, in order. */
export type GenerateFn = (prompts: string[]) => Promise<string[]>;

/** Options of evaluate. */
export interface EvaluateOptions {
  /** Prompts per call of the generate function; default 16. */
  batchSize?: number;
  /** Called after each batch with the items done and the total, for progress bars. */
  onProgress?: (done: number, total: number) => void;
}

/** Accuracy on one task (proto TaskAccuracy, plus counts). */
export interface TaskAccuracy {
  /** Task name. */
  task: string;
  /** Correct / items, in [0, 1]. */
  accuracy: number;
  /** Items evaluated. */
  numItems: number;
  /** Items answered correctly. */
  numCorrect: number;
  /** Responses without a parsable Answer line (counted wrong). */
  numUnparsable: number;
}

/** What became of one item. */
export interface ItemResult {
  /** The item's id. */
  id: string;
  /** Its task. */
  task: string;
  /** The model's response. */
  response: string;
  /** The answer read from it, or null when unparsable. */
  parsed: string | null;
  /** Whether it matches the key. */
  correct: boolean;
}

/** The result of an evaluation. */
export interface EvaluationReport {
  /** Per task, in order of first appearance among the items. */
  tasks: TaskAccuracy[];
  /** Mean of the tasks' accuracies. */
  meanAccuracy: number;
  /** Items evaluated, all tasks. */
  numItems: number;
  /** Unparsable responses, all tasks. */
  numUnparsable: number;
  /** Every item's result, in input order. */
  items: ItemResult[];
}

/** Default prompts per generate call. */
export const DEFAULT_EVAL_BATCH_SIZE = 16;

/** Generates a response to every item, checks it, and reports accuracy per task and on average. */
export async function evaluate(items: readonly TaskItem[], generate: GenerateFn, options: EvaluateOptions = {}): Promise<EvaluationReport> {
  const batchSize = options.batchSize ?? DEFAULT_EVAL_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new InvalidOptionsError(`batchSize must be a positive integer, got ${String(batchSize)}`, 'batchSize');
  }
  if (items.length === 0) throw new InvalidOptionsError('there are no items to evaluate', 'items');
  const ids = new Set<string>();
  items.forEach((item, index) => {
    if (ids.has(item.id)) throw new InvalidOptionsError(`items[${index}]: duplicate id "${item.id}"`, `items[${index}].id`);
    ids.add(item.id);
  });

  const results: ItemResult[] = [];
  for (let start = 0, batch = 0; start < items.length; start += batchSize, batch++) {
    const slice = items.slice(start, start + batchSize);
    const responses = await generate(slice.map((item) => item.prompt));
    if (!Array.isArray(responses) || responses.length !== slice.length) {
      const received = Array.isArray(responses) ? responses.length : 0;
      throw new GenerateResultError(`generate returned ${received} responses for the ${slice.length} prompts of batch ${batch}`, batch, slice.length, received);
    }
    slice.forEach((item, i) => {
      const response = responses[i];
      if (typeof response !== 'string') {
        throw new GenerateResultError(`generate returned a ${typeof response} at index ${i} of batch ${batch}, not a string`, batch, slice.length, i);
      }
      results.push({ id: item.id, task: item.task, response, ...checkResponse(item, response) });
    });
    options.onProgress?.(results.length, items.length);
  }
  return summarizeResults(results);
}

/** Accuracy per task and on average from item results. */
export function summarizeResults(results: readonly ItemResult[]): EvaluationReport {
  const byTask = new Map<string, TaskAccuracy>();
  for (const result of results) {
    let entry = byTask.get(result.task);
    if (entry === undefined) {
      entry = { task: result.task, accuracy: 0, numItems: 0, numCorrect: 0, numUnparsable: 0 };
      byTask.set(result.task, entry);
    }
    entry.numItems += 1;
    if (result.correct) entry.numCorrect += 1;
    if (result.parsed === null) entry.numUnparsable += 1;
  }
  const tasks = [...byTask.values()].map((entry) => ({ ...entry, accuracy: entry.numCorrect / entry.numItems }));
  return {
    tasks,
    meanAccuracy: tasks.length === 0 ? 0 : tasks.reduce((sum, entry) => sum + entry.accuracy, 0) / tasks.length,
    numItems: results.length,
    numUnparsable: tasks.reduce((sum, entry) => sum + entry.numUnparsable, 0),
    items: [...results],
  };
}
