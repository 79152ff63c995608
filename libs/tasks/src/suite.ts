// The built-in suite: every split a CREAM run needs, drawn from a seed.
// - pretrain: the corpus the base model M0 is trained on, in chat form, with a
//   share of wrong solutions and of badly formatted ones (no parsable Answer
//   line), so that M0 knows the tasks imperfectly and SFT and the iterations
//   have room to improve it;
// - seedSft: a small clean set for M1 = SFT(M0, seed set) (CREAM.md);
// - eft: evaluation fine-tuning examples of the seed items (eft.ts): the
//   compact rubric prompt with a correct, a badly formatted and a wrong
//   response, answered with a justification and "Score: 5 / 3 / 1", so that M1
//   can judge (the SRLM baseline's reward);
// - iterations: unlabeled prompts in disjoint per-iteration subsets (their keys
//   are kept on the items, for the oracle baseline and for analysis only);
// - test: held-out evaluation items per task.
// Each task draws from its own stream ("<seed>/<task>"), so a task's items do
// not depend on which other tasks are in the suite, and the splits are drawn
// in the order test, seed, iterations, pretrain, so that asking for a bigger
// corpus leaves the test sets as they were; the EFT corruptions draw from their
// own stream ("<seed>/<task>/eft"), so they move nothing else. A prompt is never drawn twice: the
// splits are disjoint by normalized prompt text, across tasks too.
import { InvalidOptionsError, SuiteCapacityError } from './errors';
import { chatTurns, type AnswerKind, type ChatExample, type TaskItem } from './item';
import { eftExamples, type EftExample } from './eft';
import { evaluationPrompt, normalizePrompt } from './prompt';
import { createRng, type Rng } from './rng';
import { BUILTIN_TASK_NAMES, BUILTIN_TASKS, isBuiltinTask, type BuiltinTaskName } from './tasks/registry';
import type { GeneratedProblem, TaskGenerator } from './tasks/task';

/** How many items each split holds, per task. */
export interface SuiteSizes {
  /** Pretraining examples per task. */
  pretrainPerTask: number;
  /** Clean SFT examples per task. */
  seedPerTask: number;
  /** Number of per-iteration prompt subsets. */
  iterations: number;
  /** Unlabeled prompts per task in each iteration's subset. */
  promptsPerIterationPerTask: number;
  /** Held-out test items per task. */
  testPerTask: number;
}

/** Shares of the pretraining corpus whose response is corrupted. */
export interface CorruptionRates {
  /** Share with a false step and a wrong answer. */
  wrong: number;
  /** Share with right reasoning and no parsable Answer line. */
  badFormat: number;
}

/** Options of buildSuite. */
export interface SuiteOptions {
  /** Master seed: a non-negative safe integer (the run's seed). */
  seed: number;
  /** Sizes; unset fields take DEFAULT_SUITE_SIZES. */
  sizes?: Partial<SuiteSizes>;
  /** Corruption of the pretraining corpus; unset fields take DEFAULT_CORRUPTION_RATES. */
  corruption?: Partial<CorruptionRates>;
  /** The tasks to include, in report order; default every built-in task. */
  tasks?: readonly BuiltinTaskName[];
}

/** What a pretraining response is. */
export type PretrainQuality = 'correct' | 'wrong' | 'bad-format';

/** One pretraining example: a user turn and an assistant turn, with its key and what the response is. */
export interface PretrainExample extends ChatExample {
  /** `pretrain/<task>/<index>`. */
  id: string;
  /** Its task. */
  task: BuiltinTaskName;
  /** How the answer is written. */
  answerKind: AnswerKind;
  /** The right answer to the prompt (the response may not give it). */
  answer: string;
  /** Whether the response is correct, wrong or badly formatted. */
  quality: PretrainQuality;
}

/** Every split of the built-in suite. */
export interface Suite {
  /** The seed it was drawn from. */
  seed: number;
  /** Its tasks, in report order. */
  tasks: BuiltinTaskName[];
  /** Its sizes, defaults filled in. */
  sizes: SuiteSizes;
  /** Its corruption rates, defaults filled in. */
  corruption: CorruptionRates;
  /** The base model's corpus, tasks interleaved in a seeded order. */
  pretrain: PretrainExample[];
  /** The clean SFT seed set (use toSftExample), task by task. */
  seedSft: TaskItem[];
  /** Judging examples of the seed items, three per item (eft.ts), task by task in seedSft's order. */
  eft: EftExample[];
  /** One list of unlabeled prompts per iteration (use toPromptRecord), disjoint. */
  iterations: TaskItem[][];
  /** Held-out test items by task. */
  test: Record<string, TaskItem[]>;
}

/**
 * Default sizes, chosen for the 20-minute main job on 2 cores: 2000 examples
 * per task are enough for a model of a few million parameters to learn the
 * formats and most facts in minutes; 32 prompts per task and iteration give
 * 128 prompts x 5 samples to score per iteration; 50 test items per task put
 * a 95% interval of about +-0.14 on one task's accuracy and +-0.07 on the mean.
 */
export const DEFAULT_SUITE_SIZES: Readonly<SuiteSizes> = Object.freeze({
  pretrainPerTask: 2000,
  seedPerTask: 64,
  iterations: 3,
  promptsPerIterationPerTask: 32,
  testPerTask: 50,
});

/**
 * The seed of the built-in suite that the shipped base model M0 was pretrained
 * on. Runs on the built-in suite always draw their splits from this seed (the
 * run's own seed drives sampling and training only), so that the test sets and
 * the iteration prompts stay disjoint from M0's pretraining corpus.
 */
export const BUILTIN_SUITE_SEED = 20250101;

/** Default corruption: half the corpus is flawed, so M0 is right and well formatted only some of the time. */
export const DEFAULT_CORRUPTION_RATES: Readonly<CorruptionRates> = Object.freeze({ wrong: 0.3, badFormat: 0.2 });

/** Most items one task may be asked for, all splits together. */
export const MAX_ITEMS_PER_TASK = 200_000;

// Consecutive duplicate draws after which a task is taken to be exhausted (a
// task near its capacity is refused after a few seconds rather than never).
const MAX_CONSECUTIVE_DUPLICATES = 5000;

/** Draws every split of the suite from options.seed. */
export function buildSuite(options: SuiteOptions): Suite {
  const seed = checkSeed(options.seed);
  const sizes = checkSizes({ ...DEFAULT_SUITE_SIZES, ...options.sizes });
  const corruption = checkCorruption({ ...DEFAULT_CORRUPTION_RATES, ...options.corruption });
  const tasks = checkTasks(options.tasks ?? BUILTIN_TASK_NAMES);

  const seen = new Set<string>();
  const suite: Suite = { seed, tasks, sizes, corruption, pretrain: [], seedSft: [], eft: [], iterations: [], test: {} };
  for (let i = 0; i < sizes.iterations; i++) suite.iterations.push([]);
  for (const task of tasks) {
    const needed = sizes.testPerTask + sizes.seedPerTask + sizes.iterations * sizes.promptsPerIterationPerTask + sizes.pretrainPerTask;
    const draw = createDrawer(BUILTIN_TASKS[task], createRng(`${seed}/${task}`), needed, seen);
    suite.test[task] = draw('test', sizes.testPerTask).map(({ item }) => item);
    const seedDrawn = draw('seed', sizes.seedPerTask);
    suite.seedSft.push(...seedDrawn.map(({ item }) => item));
    suite.eft.push(...eftExamples(seedDrawn, createRng(`${seed}/${task}/eft`)));
    suite.iterations.forEach((subset, i) => subset.push(...draw(`iter-${i + 1}`, sizes.promptsPerIterationPerTask).map(({ item }) => item)));
    suite.pretrain.push(...pretrainExamples(task, seed, corruption, draw('pretrain', sizes.pretrainPerTask)));
  }
  suite.pretrain = createRng(`${seed}/pretrain-order`).shuffle(suite.pretrain);
  return suite;
}

/** Counts of a suite by split and task, and the pretraining corpus by quality. */
export interface SuiteSummary {
  /** Items per split: `pretrain`, `seed`, `iter-1`..., `test`, each by task and in total. */
  splits: { split: string; byTask: Record<string, number>; total: number }[];
  /** Pretraining examples by quality. */
  pretrainQuality: Record<PretrainQuality, number>;
}

/** Counts of a suite, for reports. */
export function summarizeSuite(suite: Suite): SuiteSummary {
  const count = (split: string, items: readonly { task: string }[]) => {
    const byTask: Record<string, number> = Object.fromEntries(suite.tasks.map((task) => [task, 0]));
    for (const item of items) byTask[item.task] += 1;
    return { split, byTask, total: items.length };
  };
  const pretrainQuality: Record<PretrainQuality, number> = { correct: 0, wrong: 0, 'bad-format': 0 };
  for (const example of suite.pretrain) pretrainQuality[example.quality] += 1;
  return {
    splits: [
      count('pretrain', suite.pretrain),
      count('seed', suite.seedSft),
      ...suite.iterations.map((subset, i) => count(`iter-${i + 1}`, subset)),
      count('test', Object.values(suite.test).flat()),
    ],
    pretrainQuality,
  };
}

/** A drawn item and the problem it came from (which can write corrupted responses). */
export interface Drawn {
  item: TaskItem;
  problem: GeneratedProblem;
}

/**
 * A function that draws the next `count` items of a task for a split, never a
 * prompt already in `seen` (which it extends); `needed` is only for the error
 * raised when the task runs out of distinct prompts.
 */
export function createDrawer(generator: TaskGenerator, rng: Rng, needed: number, seen: Set<string>): (split: string, count: number) => Drawn[] {
  let produced = 0;
  return (split, count) => {
    const out: Drawn[] = [];
    let misses = 0;
    while (out.length < count) {
      const problem = generator.generate(rng);
      const prompt = evaluationPrompt(problem.question, problem.choices);
      const key = normalizePrompt(prompt);
      if (seen.has(key)) {
        if (++misses >= MAX_CONSECUTIVE_DUPLICATES) throw new SuiteCapacityError(generator.name, needed, produced);
        continue;
      }
      misses = 0;
      seen.add(key);
      produced += 1;
      const item: TaskItem = {
        id: `${split}/${generator.name}/${String(out.length).padStart(4, '0')}`,
        task: generator.name,
        answerKind: generator.answerKind,
        question: problem.question,
        ...(problem.choices === undefined ? {} : { choices: problem.choices }),
        prompt,
        answer: problem.answer,
        solution: problem.solution,
      };
      out.push({ item, problem });
    }
    return out;
  };
}

function pretrainExamples(task: BuiltinTaskName, seed: number, rates: CorruptionRates, drawn: readonly Drawn[]): PretrainExample[] {
  // Exact shares, placed at random: round(n * rate) wrong, round(n * rate) badly formatted.
  const wrong = Math.round(drawn.length * rates.wrong);
  const badFormat = Math.min(drawn.length - wrong, Math.round(drawn.length * rates.badFormat));
  const qualities: PretrainQuality[] = drawn.map((_, i) => (i < wrong ? 'wrong' : i < wrong + badFormat ? 'bad-format' : 'correct'));
  const rng: Rng = createRng(`${seed}/${task}/corruption`);
  const placed = rng.shuffle(qualities);
  return drawn.map(({ item, problem }, i) => {
    const quality = placed[i];
    const response =
      quality === 'correct' ? problem.solution : quality === 'wrong' ? problem.wrongSolution(rng) : problem.badFormatSolution(rng);
    return { id: item.id, task, answerKind: item.answerKind, answer: item.answer, quality, messages: chatTurns(item.prompt, response) };
  });
}

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new InvalidOptionsError(`seed must be a non-negative safe integer, got ${String(seed)}`, 'seed');
  }
  return seed;
}

function checkSizes(sizes: SuiteSizes): SuiteSizes {
  for (const [key, value] of Object.entries(sizes)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidOptionsError(`sizes.${key} must be a non-negative integer, got ${String(value)}`, `sizes.${key}`);
    }
  }
  const perTask = sizes.testPerTask + sizes.seedPerTask + sizes.iterations * sizes.promptsPerIterationPerTask + sizes.pretrainPerTask;
  if (perTask > MAX_ITEMS_PER_TASK) {
    throw new InvalidOptionsError(`the sizes ask for ${perTask} items per task, more than ${MAX_ITEMS_PER_TASK}`, 'sizes');
  }
  return sizes;
}

function checkCorruption(rates: CorruptionRates): CorruptionRates {
  for (const [key, value] of Object.entries(rates)) {
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw new InvalidOptionsError(`corruption.${key} must be in [0, 1], got ${String(value)}`, `corruption.${key}`);
    }
  }
  if (rates.wrong + rates.badFormat > 1) {
    throw new InvalidOptionsError(`corruption.wrong + corruption.badFormat must be at most 1, got ${rates.wrong + rates.badFormat}`, 'corruption');
  }
  return rates;
}

function checkTasks(tasks: readonly string[]): BuiltinTaskName[] {
  if (tasks.length === 0) throw new InvalidOptionsError('tasks must name at least one task', 'tasks');
  tasks.forEach((task, index) => {
    if (!isBuiltinTask(task)) {
      throw new InvalidOptionsError(`tasks[${index}]: unknown task "${task}"; the built-in tasks are ${BUILTIN_TASK_NAMES.join(', ')}`, `tasks[${index}]`);
    }
    if (tasks.indexOf(task) !== index) throw new InvalidOptionsError(`tasks[${index}]: "${task}" is listed twice`, `tasks[${index}]`);
  });
  return tasks as BuiltinTaskName[];
}
