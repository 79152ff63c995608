// Test fixtures of @cream/tasks (the `@cream/tasks/testing` entry point): tiny
// hand-written data files in the published shapes, good and bad, for tests of
// this library and of the services that load users' data (a run spec with an
// evaluation set in the wrong format must fail before any work starts).
import { join } from 'node:path';

const dir = join(__dirname, 'fixtures');

/** Paths of the fixture files. */
export const TASK_FIXTURES = Object.freeze({
  /** AI2 ARC JSONL: 3 items, one with digit labels, one with three choices, a blank line. */
  arc: join(dir, 'arc-sample.jsonl'),
  /** OpenBookQA JSONL (ARC's shape, plus the "Additional" fields such as fact1): 2 items. */
  openbookqa: join(dir, 'openbookqa-sample.jsonl'),
  /** GSM8K JSONL: 3 items with calculator annotations, a `#### 1,200` and a negative answer. */
  gsm8k: join(dir, 'gsm8k-sample.jsonl'),
  /** Chat-messages SFT JSONL: 2 conversations, one with a system turn. */
  sft: join(dir, 'sft-sample.jsonl'),
  /** Prompt list JSONL: one {"id","prompt"}, one {"id","messages"}. */
  promptsJsonl: join(dir, 'prompts.jsonl'),
  /** Prompt list in plain text, one per line, with a blank line (ids line-1 and line-3). */
  promptsText: join(dir, 'prompts.txt'),
  /** ARC JSONL whose line 3 has an answerKey that is not a label. */
  arcBadAnswerKey: join(dir, 'arc-bad-answer-key.jsonl'),
  /** GSM8K JSONL whose line 2 has no `#### <number>` line. */
  gsm8kMissingMarker: join(dir, 'gsm8k-missing-marker.jsonl'),
});
