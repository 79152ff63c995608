// The `data` stage's content: the SFT examples, the prompts of each iteration
// (with their answer keys when known: the built-in suite, for the oracle) and
// the evaluation sets, resolved from the built-in suite or from the user's
// files with @cream/tasks' loaders. It is loaded once at StartRun (to reject a
// bad file before the run exists) and again by the data stage, whose stored
// copy is what every later stage and every resumed attempt reads, so a run
// never sees a file that changed after it started. On the built-in suite the
// SFT set is the seed items (instruction data) AND their evaluation
// fine-tuning examples (judging with the compact rubric, "Score: 5 / 3 / 1"),
// as the Self-Rewarding LM paper trains M1, for every method alike.
import { BUILTIN_SUITE_SEED, buildSuite, DEFAULT_SUITE_SIZES, isTasksError, loadEvalFile, loadPromptFile, loadSftFile, toPromptRecord, toSftExample, type ChatMessage, type TaskItem } from '@cream/tasks';
import { EvalFormat, type DataSpec } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

/** One SFT example: the conversation up to the target, and the target. */
export interface SftRecord {
  id: string;
  /** The turns before the target (ending with a user turn). */
  messages: ChatMessage[];
  /** The assistant turn to learn. */
  response: string;
}

/** One unlabeled prompt of an iteration, with its key when the data has one. */
export interface PromptItem {
  id: string;
  messages: ChatMessage[];
  task?: string;
  /** The evaluation item behind the prompt (its answer key), for the oracle baseline. */
  item?: TaskItem;
}

/** One evaluation set. */
export interface EvalSet {
  name: string;
  items: TaskItem[];
}

/** What the data stage stores. */
export interface RunData {
  source: 'builtin' | 'files';
  sft: SftRecord[];
  /** Prompts of iteration t at index t - 1. */
  iterations: PromptItem[][];
  evalSets: EvalSet[];
}

const FORMATS = new Map<EvalFormat, 'arc' | 'gsm8k'>([
  [EvalFormat.EVAL_FORMAT_ARC, 'arc'],
  [EvalFormat.EVAL_FORMAT_GSM8K, 'gsm8k'],
]);

/** Wraps a loader's error as INVALID_ARGUMENT naming the spec field (and the file's own message). */
async function load<T>(field: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isTasksError(error)) throw new InvalidArgumentError(`${field}: ${(error as Error).message}`, field, { cause: error });
    throw error;
  }
}

/** Splits `prompts` into `iterations` consecutive subsets of `perIteration` (0: as many as divide evenly). */
export function splitPrompts<T>(prompts: readonly T[], iterations: number, perIteration: number, field: string): T[][] {
  const size = perIteration === 0 ? Math.floor(prompts.length / iterations) : perIteration;
  if (size === 0) {
    throw new InvalidArgumentError(`${field}: ${prompts.length} prompts cannot give each of ${iterations} iterations at least one`, field);
  }
  if (size * iterations > prompts.length) {
    throw new InvalidArgumentError(`${field}: ${size} prompts per iteration x ${iterations} iterations needs ${size * iterations} prompts; the data has ${prompts.length}`, field);
  }
  return Array.from({ length: iterations }, (_, i) => prompts.slice(i * size, (i + 1) * size));
}

/** Takes `count` items from a list grouped by task, round-robin across tasks (so a cap keeps every task). */
export function interleaveByTask<T extends { task: string }>(items: readonly T[], count: number): T[] {
  const byTask = new Map<string, T[]>();
  for (const item of items) byTask.set(item.task, [...(byTask.get(item.task) ?? []), item]);
  const queues = [...byTask.values()];
  const out: T[] = [];
  for (let round = 0; out.length < Math.min(count, items.length); round++) {
    for (const queue of queues) if (round < queue.length && out.length < count) out.push(queue[round]);
  }
  return out;
}

function sftRecord(id: string, messages: ChatMessage[]): SftRecord {
  const last = messages[messages.length - 1];
  return { id, messages: messages.slice(0, -1), response: last.content };
}

/** Loads the run's data as the spec describes; INVALID_ARGUMENT names the field and the file's problem. */
export async function loadRunData(data: DataSpec, iterations: number): Promise<RunData> {
  const evalSets: EvalSet[] = [];
  for (const [i, set] of data.evalSets.entries()) {
    const format = FORMATS.get(set.format);
    const field = `spec.data.eval_sets[${i}]`;
    if (format === undefined) throw new InvalidArgumentError(`${field}.format: set EVAL_FORMAT_ARC or EVAL_FORMAT_GSM8K`, `${field}.format`);
    const items = await load(field, () => loadEvalFile(set.path, format, { task: set.name, limit: set.limit }));
    evalSets.push({ name: set.name, items });
  }
  if (data.builtinSuite) {
    // The suite's splits always come from BUILTIN_SUITE_SEED (M0 was pretrained on its corpus);
    // the corpus itself is not needed here.
    const suite = buildSuite({ seed: BUILTIN_SUITE_SEED, sizes: { pretrainPerTask: 0, iterations: Math.max(iterations, DEFAULT_SUITE_SIZES.iterations) } });
    const cap = data.maxSftExamples === 0 ? suite.seedSft.length : data.maxSftExamples;
    const seed = interleaveByTask(suite.seedSft, cap);
    // max_sft_examples caps the seed items; each kept item brings its EFT examples.
    const kept = new Set(seed.map((item) => item.id));
    const sft = [
      ...seed.map((item) => sftRecord(item.id, toSftExample(item).messages)),
      ...suite.eft.filter((example) => kept.has(example.sourceId)).map((example) => sftRecord(example.id, example.messages)),
    ];
    const subsets = suite.iterations.slice(0, iterations).map((subset) => {
      const chosen = data.promptsPerIteration === 0 ? subset : interleaveByTask(subset, data.promptsPerIteration);
      return chosen.map((item) => ({ ...toPromptRecord(item), task: item.task, item }));
    });
    const builtinSets = suite.tasks.map((task) => ({ name: task, items: suite.test[task] }));
    return { source: 'builtin', sft, iterations: subsets, evalSets: [...builtinSets, ...evalSets] };
  }
  const examples = await load('spec.data.sft_path', () => loadSftFile(data.sftPath));
  const capped = data.maxSftExamples === 0 ? examples : examples.slice(0, data.maxSftExamples);
  const sft = capped.map((example, i) => sftRecord(`sft-${i}`, example.messages));
  const prompts = await load('spec.data.prompts_path', () => loadPromptFile(data.promptsPath));
  const subsets = splitPrompts(
    prompts.map((prompt) => ({ id: prompt.id, messages: prompt.messages, ...(prompt.task === undefined ? {} : { task: prompt.task }) })),
    iterations,
    data.promptsPerIteration,
    'spec.data.prompts_per_iteration',
  );
  return { source: 'files', sft, iterations: subsets, evalSets };
}
