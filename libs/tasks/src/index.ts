// Public surface of @cream/tasks: the built-in task suite that mirrors the
// paper's evaluation in miniature (ARC-, OpenBookQA-, SIQA- and GSM8K-like
// tasks drawn from a seed), its splits, the answer checkers, loaders for users'
// data in the published formats, and the evaluation harness. No model, no gRPC.

/** Shapes shared by every split: items, chat turns, SFT examples, prompt records, and conversions. */
export {
  toSftExample,
  toPromptRecord,
  chatTurns,
  type AnswerKind,
  type Choice,
  type TaskItem,
  type ChatRole,
  type ChatMessage,
  type ChatExample,
  type PromptRecord,
} from './item';
/** The paper's evaluation prompt (question, lettered options, step-by-step and Answer-line instruction) and its parts. */
export {
  evaluationPrompt,
  answerLine,
  answerKindOf,
  choiceLabel,
  toChoices,
  normalizePrompt,
  LETTER_INSTRUCTION,
  NUMBER_INSTRUCTION,
} from './prompt';
/** Answer checkers: the last `Answer:` line, parsed as a letter or a number, compared with the key. */
export { parseAnswer, isCorrect, checkResponse, lastAnswerLine, parseNumber, type CheckResult } from './answer';
/** The built-in tasks (science, objects, social, arithmetic) and their generator interface. */
export { BUILTIN_TASK_NAMES, BUILTIN_TASKS, isBuiltinTask, type BuiltinTaskName } from './tasks/registry';
/** What a task generator is and what it draws. */
export type { TaskGenerator, GeneratedProblem } from './tasks/task';
/** The seeded random stream the suite is drawn from (sfc32 keyed by a string). */
export { createRng, type Rng } from './rng';
/** The built-in suite from a seed: pretraining corpus, seed SFT set, per-iteration prompts, test sets. */
export {
  buildSuite,
  summarizeSuite,
  BUILTIN_SUITE_SEED,
  DEFAULT_SUITE_SIZES,
  DEFAULT_CORRUPTION_RATES,
  MAX_ITEMS_PER_TASK,
  type Suite,
  type SuiteOptions,
  type SuiteSizes,
  type CorruptionRates,
  type PretrainExample,
  type PretrainQuality,
  type SuiteSummary,
} from './suite';
/** Evaluation fine-tuning examples: the compact rubric prompt on responses of known quality, answered "Score: 5 / 3 / 1". */
export {
  eftExamples,
  eftVerdict,
  EFT_QUALITIES,
  EFT_SCORES,
  EFT_JUSTIFICATIONS,
  type EftExample,
  type EftQuality,
} from './eft';
/** Loaders for users' SFT sets (chat-messages JSONL) and prompt lists (JSONL or plain text). */
export { loadSftFile, parseSftJsonl, loadPromptFile, parsePromptList } from './chat-data';
/** Evaluation sets in the published ARC / OpenBookQA and GSM8K JSONL formats, read and written. */
export {
  loadEvalFile,
  parseArcJsonl,
  parseGsm8kJsonl,
  toArcRecord,
  toGsm8kRecord,
  toJsonl,
  type EvalFormat,
  type EvalSetOptions,
  type ArcRecord,
  type Gsm8kRecord,
} from './eval-sets';
/** The most UTF-8 bytes of an id in users' files (proto Prompt.id). */
export { MAX_ID_BYTES } from './jsonl';
/** The evaluation harness: batched generation through an injected function, accuracy per task and mean. */
export {
  evaluate,
  summarizeResults,
  DEFAULT_EVAL_BATCH_SIZE,
  type GenerateFn,
  type EvaluateOptions,
  type TaskAccuracy,
  type ItemResult,
  type EvaluationReport,
} from './evaluate';
/** Typed errors (file, line and field of bad data; the option; the task; the batch) and their guards. */
export {
  TasksError,
  InvalidOptionsError,
  SuiteCapacityError,
  DataFileError,
  DataFormatError,
  GenerateResultError,
  isTasksError,
  isInvalidOptionsError,
  isSuiteCapacityError,
  isDataFileError,
  isDataFormatError,
  isGenerateResultError,
} from './errors';
