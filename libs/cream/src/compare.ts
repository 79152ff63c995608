// Compare two score sets, CREAM steps 4 to 6: the consistency c_i of every
// prompt, the consistency rate, and the weighted preference pairs built from
// the current rewards. Everything is keyed by prompt id, never by position
// (the authors' code misaligns ids and values once a prompt is skipped).
// Field paths in error messages are those of cream/v1/consistency.proto.
import { promptConsistency, type ConsistencyMethod, type LeftOutReason, type RankingMode } from './consistency';
import { InvalidScoresError } from './errors';

/** The scores of one prompt's responses under one model (proto PromptScores). */
export interface PromptScores {
  /** The prompt's id, unique within its set; 1 to 256 UTF-8 bytes by default. */
  promptId: string;
  /** One score per response, in response order; finite except at missing indices. */
  scores: readonly number[];
  /** Indices into scores whose score is missing; the value there is ignored (it may be NaN). */
  missingIndices?: readonly number[];
}

/** How consistency becomes the weight of each pair (proto ConsistencyRate). */
export type ConsistencyRateMode = 'avg' | 'dyn';

/** What to do with a prompt whose lists differ in length or that is in only one set (proto MismatchPolicy). */
export type MismatchPolicy = 'reject' | 'leave-out';

/** Size limits of a comparison. */
export interface ScoreLimits {
  /** Most prompts in each of the two sets. */
  maxPrompts: number;
  /** Most scores (responses) per prompt. */
  maxScoresPerPrompt: number;
  /** Most UTF-8 bytes in a prompt id. */
  maxPromptIdBytes: number;
}

/** The limits of the cream.v1 contract. */
export const DEFAULT_SCORE_LIMITS: Readonly<ScoreLimits> = Object.freeze({
  maxPrompts: 100_000,
  maxScoresPerPrompt: 1024,
  maxPromptIdBytes: 256,
});

/**
 * The weight of every pair when NO prompt has a c_i (rate.count = 0), where the
 * rate's mean is reported as 0. A weight of 0 would be wrong: the loss at C = 0
 * is -log sigmoid(-h), DPO with chosen and rejected swapped, so it would train
 * the model towards the worst responses on no evidence at all. At C = 0.5 the
 * gradient of the loss is sigmoid(h) - 0.5, zero at h = 0 where training starts
 * (policy = reference): the pairs teach nothing, which is what no evidence
 * should do. A coordinator should still treat count = 0 as a sign of bad input.
 */
export const NO_CONSISTENCY_WEIGHT = 0.5;

/** Options of compareScoreSets; the service resolves the proto's unspecified values before calling. */
export interface CompareOptions {
  /** kendall (the paper's default), spearman or toporder. */
  method: ConsistencyMethod;
  /** ordinal (the authors' choice) or average (tie-aware). */
  ranking: RankingMode;
  /** avg: every pair weighs C = mean c_i; dyn: each pair weighs its own prompt's c_i. */
  rate: ConsistencyRateMode;
  /** reject: mismatches throw InvalidScoresError; leave-out: they are reported in leftOut. */
  mismatchPolicy: MismatchPolicy;
  /** Overrides of DEFAULT_SCORE_LIMITS. */
  limits?: Partial<ScoreLimits>;
}

/** The consistency of one prompt (proto PromptConsistency). */
export interface PromptConsistencyEntry {
  promptId: string;
  /** Kendall's tau or Spearman's rho in [-1, 1], or the top-order agreement in {0, 1}. */
  statistic: number;
  /** c_i in [0, 1]. */
  consistency: number;
  /** Number of responses compared. */
  numResponses: number;
}

/** Summary of c_i over the prompts that have one (proto RateSummary). */
export interface RateSummary {
  /** Mean c_i: the rate C of avg mode. 0 when count is 0. */
  mean: number;
  /** Smallest c_i; 0 when count is 0. */
  min: number;
  /** Largest c_i; 0 when count is 0. */
  max: number;
  /** Population standard deviation (ddof 0); 0 when count is 0. */
  std: number;
  /** Number of prompts with a c_i. */
  count: number;
}

/** One preference pair built from the current rewards (proto PreferencePair). */
export interface PreferencePair {
  promptId: string;
  /** argmax of the present current scores, the first index on ties. */
  chosenIndex: number;
  /** argmin of the present current scores, the first index on ties. */
  rejectedIndex: number;
  chosenScore: number;
  rejectedScore: number;
  /** The label's confidence C in [0, 1]. */
  weight: number;
  /** True when weight is the prompt's own c_i (dyn mode and the prompt has one). */
  weightIsOwn: boolean;
}

/** A prompt without a consistency value, and why (proto LeftOutPrompt). */
export interface LeftOutPrompt {
  promptId: string;
  reason: LeftOutReason;
  /** The reason in words, with the numbers involved. */
  detail: string;
}

/** The result of compareScoreSets (proto CompareResponse without the echoed options). */
export interface CompareResult {
  /** c_i of every prompt that has one, in the order of the current set. */
  prompts: PromptConsistencyEntry[];
  /** Summary of the c_i; its mean is C. */
  rate: RateSummary;
  /** One pair per current prompt whose present scores are not all equal, in current order. */
  pairs: PreferencePair[];
  /** Prompts without a c_i: current-set prompts in current order, then previous-only prompts in previous order. */
  leftOut: LeftOutPrompt[];
  /** Current prompts that gave no pair: fewer than 2 present scores, or all present scores equal. */
  noPairPromptIds: string[];
}

type SetName = 'current' | 'previous';

/** One validated prompt: where it sits in its set and which of its indices are missing. */
interface CheckedPrompt {
  index: number;
  scores: readonly number[];
  missing: ReadonlySet<number>;
}

const utf8 = new TextEncoder();
/** The missing set shared by every prompt that marks none (most of them). */
const NONE_MISSING: ReadonlySet<number> = new Set();

function describeValue(value: unknown): string {
  return typeof value === 'number' ? String(value) : `${JSON.stringify(value)} (${typeof value})`;
}

/**
 * Checks one set against the contract and the limits and indexes it by prompt
 * id. Throws InvalidScoresError naming the first offending field.
 */
function checkSet(set: readonly PromptScores[], name: SetName, limits: ScoreLimits): Map<string, CheckedPrompt> {
  if (set.length === 0) {
    throw new InvalidScoresError(`${name} is empty; each set needs 1 to ${limits.maxPrompts} prompts`, name);
  }
  if (set.length > limits.maxPrompts) {
    throw new InvalidScoresError(`${name} has ${set.length} prompts; the limit is ${limits.maxPrompts}`, name, {
      limit: limits.maxPrompts,
    });
  }
  const byId = new Map<string, CheckedPrompt>();
  for (let index = 0; index < set.length; index++) {
    const { promptId, scores, missingIndices = [] } = set[index];
    // Field paths are built only on error: this loop may run 100000 times.
    const field = (suffix: string) => `${name}[${index}].${suffix}`;
    if (typeof promptId !== 'string' || promptId.length === 0) {
      throw new InvalidScoresError(
        `${field('prompt_id')} is empty; a prompt id needs 1 to ${limits.maxPromptIdBytes} UTF-8 bytes`,
        field('prompt_id'),
      );
    }
    // A UTF-16 unit takes at most 3 UTF-8 bytes: short ids need no encoding.
    const bytes = promptId.length * 3 <= limits.maxPromptIdBytes ? 0 : utf8.encode(promptId).length;
    if (bytes > limits.maxPromptIdBytes) {
      throw new InvalidScoresError(
        `${field('prompt_id')} is ${bytes} UTF-8 bytes; the limit is ${limits.maxPromptIdBytes}`,
        field('prompt_id'),
        { limit: limits.maxPromptIdBytes },
      );
    }
    const first = byId.get(promptId);
    if (first !== undefined) {
      throw new InvalidScoresError(
        `${field('prompt_id')} ${JSON.stringify(promptId)} is duplicated (first at ${name}[${first.index}])`,
        field('prompt_id'),
      );
    }
    if (scores.length === 0) {
      throw new InvalidScoresError(
        `${field('scores')} is empty; each prompt needs 1 to ${limits.maxScoresPerPrompt} scores`,
        field('scores'),
      );
    }
    if (scores.length > limits.maxScoresPerPrompt) {
      throw new InvalidScoresError(
        `${field('scores')} has ${scores.length} scores; the limit is ${limits.maxScoresPerPrompt}`,
        field('scores'),
        { limit: limits.maxScoresPerPrompt },
      );
    }
    missingIndices.forEach((missingIndex, k) => {
      if (!Number.isInteger(missingIndex) || missingIndex < 0 || missingIndex >= scores.length) {
        throw new InvalidScoresError(
          `${field(`missing_indices[${k}]`)} = ${describeValue(missingIndex)} is out of range [0, ${scores.length})`,
          field(`missing_indices[${k}]`),
        );
      }
    });
    // Most prompts mark nothing missing: they share one empty set. Repeated indices are harmless.
    const missing = missingIndices.length === 0 ? NONE_MISSING : new Set(missingIndices);
    for (let k = 0; k < scores.length; k++) {
      if (!Number.isFinite(scores[k]) && !missing.has(k)) {
        throw new InvalidScoresError(
          `${field(`scores[${k}]`)} is ${describeValue(scores[k])}; scores must be finite`,
          field(`scores[${k}]`),
        );
      }
    }
    byId.set(promptId, { index, scores, missing });
  }
  return byId;
}

function listOrNone(indices: ReadonlySet<number>): string {
  return indices.size === 0 ? 'none' : [...indices].sort((a, b) => a - b).join(', ');
}

/**
 * The pair of one current prompt (CREAM step 5): chosen = argmax, rejected =
 * argmin of the present scores, the first index on ties. Undefined when fewer
 * than two scores are present or all present scores are equal. Its weight is
 * filled in once the rate is known.
 */
function buildPair(promptId: string, { scores, missing }: CheckedPrompt): PreferencePair | undefined {
  let chosenIndex = -1;
  let rejectedIndex = -1;
  for (let index = 0; index < scores.length; index++) {
    if (missing.has(index)) continue;
    if (chosenIndex < 0 || scores[index] > scores[chosenIndex]) chosenIndex = index;
    if (rejectedIndex < 0 || scores[index] < scores[rejectedIndex]) rejectedIndex = index;
  }
  if (chosenIndex < 0 || scores[chosenIndex] === scores[rejectedIndex]) return undefined;
  return {
    promptId,
    chosenIndex,
    rejectedIndex,
    chosenScore: scores[chosenIndex],
    rejectedScore: scores[rejectedIndex],
    weight: NaN,
    weightIsOwn: false,
  };
}

/** Mean, extremes and population standard deviation of the c_i; all 0 for none. */
function summarize(values: readonly number[]): RateSummary {
  const count = values.length;
  if (count === 0) return { mean: 0, min: 0, max: 0, std: 0, count: 0 };
  const mean = values.reduce((sum, value) => sum + value, 0) / count;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / count;
  // reduce, not Math.min(...values): 100000 arguments can overflow the stack.
  const min = values.reduce((low, value) => Math.min(low, value));
  const max = values.reduce((high, value) => Math.max(high, value));
  return { mean, min, max, std: Math.sqrt(variance), count };
}

/**
 * Compares the current rewards r_t with the previous rewards r_{t-1} of the same
 * responses, prompt by prompt (matched by id), and builds the weighted pairs.
 *
 * Validation (InvalidScoresError, message and `field` naming the proto path):
 * an empty set or one over `maxPrompts`; an empty, over-long or duplicated
 * prompt_id; an empty or over-long scores list; a missing_indices entry outside
 * [0, n); a NaN or infinite score not marked missing. With mismatchPolicy
 * `reject` also a prompt present in only one set, or two lists of different
 * lengths; with `leave-out` those become leftOut entries.
 *
 * Consistency (step 4): a prompt is left out, in this order of checks, when it
 * is in only one set (`missing-previous` / `missing-current`), its lists differ
 * in length (`length-mismatch`), either list marks a score missing
 * (`missing-score`), it has fewer than 2 responses (`too-few-responses`), or
 * average ranking meets a constant list (`constant-scores`). Otherwise
 * promptConsistency gives its c_i.
 *
 * Pairs (step 5): from the current scores alone, for every current prompt,
 * including those left out of the consistency; a prompt only in previous has
 * none. See buildPair.
 *
 * Rate (step 6): rate summarizes the c_i. avg: every pair weighs rate.mean.
 * dyn: a pair weighs its prompt's own c_i, or rate.mean when the prompt has
 * none (weightIsOwn false). When no prompt has a c_i, rate is all zeros and
 * every pair weighs NO_CONSISTENCY_WEIGHT (0.5; see there why not 0).
 */
export function compareScoreSets(
  current: readonly PromptScores[],
  previous: readonly PromptScores[],
  options: CompareOptions,
): CompareResult {
  const limits: ScoreLimits = { ...DEFAULT_SCORE_LIMITS, ...options.limits };
  const currentById = checkSet(current, 'current', limits);
  const previousById = checkSet(previous, 'previous', limits);
  const reject = options.mismatchPolicy === 'reject';

  const prompts: PromptConsistencyEntry[] = [];
  const leftOut: LeftOutPrompt[] = [];

  /** The c_i of one current prompt, recorded in prompts; or undefined, recorded in leftOut (or thrown). */
  function measure(promptId: string, now: CheckedPrompt): number | undefined {
    const before = previousById.get(promptId);
    if (before === undefined) {
      const field = `current[${now.index}].prompt_id`;
      const quotedId = JSON.stringify(promptId);
      if (reject) throw new InvalidScoresError(`${field} ${quotedId} has no entry in previous`, field);
      const detail = `prompt ${quotedId} is current[${now.index}] but has no entry in previous`;
      leftOut.push({ promptId, reason: 'missing-previous', detail });
      return undefined;
    }
    const n = now.scores.length;
    if (before.scores.length !== n) {
      const field = `previous[${before.index}].scores`;
      const detail = `${field} has ${before.scores.length} scores but current[${now.index}] (${JSON.stringify(promptId)}) has ${n}`;
      if (reject) throw new InvalidScoresError(detail, field);
      leftOut.push({ promptId, reason: 'length-mismatch', detail });
      return undefined;
    }
    if (now.missing.size > 0 || before.missing.size > 0) {
      const detail =
        `scores marked missing at current[${now.index}] indices ${listOrNone(now.missing)} and ` +
        `previous[${before.index}] indices ${listOrNone(before.missing)}, of ${n}; consistency needs every score`;
      leftOut.push({ promptId, reason: 'missing-score', detail });
      return undefined;
    }
    const result = promptConsistency(now.scores, before.scores, options);
    if (!result.measured) {
      leftOut.push({ promptId, reason: result.reason, detail: result.detail });
      return undefined;
    }
    prompts.push({ promptId, statistic: result.statistic, consistency: result.consistency, numResponses: n });
    return result.consistency;
  }

  const pairs: PreferencePair[] = [];
  const ownConsistency: (number | undefined)[] = []; // c_i of the prompt of pairs[k]
  const noPairPromptIds: string[] = [];
  for (const [promptId, now] of currentById) {
    const consistency = measure(promptId, now);
    const pair = buildPair(promptId, now);
    if (pair === undefined) {
      noPairPromptIds.push(promptId);
    } else {
      pairs.push(pair);
      ownConsistency.push(consistency);
    }
  }

  for (const [promptId, before] of previousById) {
    if (currentById.has(promptId)) continue;
    const field = `previous[${before.index}].prompt_id`;
    const quotedId = JSON.stringify(promptId);
    if (reject) throw new InvalidScoresError(`${field} ${quotedId} has no entry in current`, field);
    const detail = `prompt ${quotedId} is previous[${before.index}] but has no entry in current`;
    leftOut.push({ promptId, reason: 'missing-current', detail });
  }

  const rate = summarize(prompts.map((prompt) => prompt.consistency));
  const fallbackWeight = rate.count > 0 ? rate.mean : NO_CONSISTENCY_WEIGHT;
  pairs.forEach((pair, k) => {
    const own = options.rate === 'dyn' ? ownConsistency[k] : undefined;
    pair.weight = own ?? fallbackWeight;
    pair.weightIsOwn = own !== undefined;
  });
  return { prompts, rate, pairs, leftOut, noPairPromptIds };
}
