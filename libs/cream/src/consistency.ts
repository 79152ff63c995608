// The consistency c_i of one prompt, CREAM step 4: how far the current model's
// ranking of the prompt's responses agrees with the previous model's ranking of
// the same responses. c_i becomes the confidence of the prompt's preference
// label in the regularized DPO loss of step 7 (see loss.ts).
import { kendallTau, spearmanRho } from './correlation';
import { rankOrdinal } from './ranking';

/** How two rankings are compared (proto ConsistencyMethod). */
export type ConsistencyMethod = 'kendall' | 'spearman' | 'toporder';

/**
 * How scores become rankings (proto RankingMode).
 * - `ordinal`: ranks 1..n with ties broken by response index, as the authors'
 *   code does (scipy rankdata 'ordinal'); every ranking is strict.
 * - `average`: tie-aware; tied scores share their average rank.
 */
export type RankingMode = 'ordinal' | 'average';

/** Why a prompt has no consistency value (proto LeftOutReason). */
export type LeftOutReason =
  | 'missing-previous'
  | 'missing-current'
  | 'length-mismatch'
  | 'missing-score'
  | 'too-few-responses'
  | 'constant-scores';

/** Options of promptConsistency. */
export interface ConsistencyOptions {
  /** The comparison; the paper's default is `kendall`. */
  method: ConsistencyMethod;
  /** The ranking; `ordinal` (the authors' choice) when not given. */
  ranking?: RankingMode;
}

/** A prompt's consistency, or why it has none. */
export type PromptConsistencyResult =
  | {
      measured: true;
      /** Kendall's tau or Spearman's rho in [-1, 1], or the top-order agreement in {0, 1}. */
      statistic: number;
      /** c_i in [0, 1]: (statistic + 1) / 2 for kendall and spearman, the agreement itself for toporder. */
      consistency: number;
    }
  | {
      measured: false;
      /** `too-few-responses` (n < 2) or `constant-scores` (average ranking, kendall or spearman). */
      reason: Extract<LeftOutReason, 'too-few-responses' | 'constant-scores'>;
      /** The reason in words, with the numbers involved. */
      detail: string;
    };

/** The value every score of a list equals, or undefined when the list is not constant. */
function constantValue(scores: readonly number[]): number | undefined {
  return scores.every((score) => score === scores[0]) ? scores[0] : undefined;
}

/** Indices whose score equals the list's maximum (or minimum), ascending. */
function indicesOf(scores: readonly number[], pick: (...values: number[]) => number): number[] {
  const target = pick(...scores);
  return scores.flatMap((score, index) => (score === target ? [index] : []));
}

function sameIndices(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((index, k) => index === b[k]);
}

/**
 * Top-order agreement: 1 when both rankings agree on the best response AND on
 * the worst, else 0. This is the meaning the paper states; the authors' code
 * compares the ranks of the first and the last response instead (a bug this
 * product does not copy).
 * - ordinal: the best response is the one ranked n and the worst the one ranked
 *   1 in the ordinal ranking. Among tied top scores the LAST index holds rank n
 *   (ties go to the earlier index first), among tied bottom scores the FIRST
 *   index holds rank 1. So with ordinal ranks the agreement is consistent with
 *   Kendall: identical ordinal rankings always agree.
 * - average: the SET of indices holding the maximum must be the same in both
 *   lists, and so must the set holding the minimum. Two constant lists agree.
 */
function topOrderAgreement(current: readonly number[], previous: readonly number[], ranking: RankingMode): 0 | 1 {
  if (ranking === 'ordinal') {
    const n = current.length;
    const ranksCurrent = rankOrdinal(current);
    const ranksPrevious = rankOrdinal(previous);
    const agree =
      ranksCurrent.indexOf(n) === ranksPrevious.indexOf(n) && ranksCurrent.indexOf(1) === ranksPrevious.indexOf(1);
    return agree ? 1 : 0;
  }
  const agree =
    sameIndices(indicesOf(current, Math.max), indicesOf(previous, Math.max)) &&
    sameIndices(indicesOf(current, Math.min), indicesOf(previous, Math.min));
  return agree ? 1 : 0;
}

/**
 * The consistency c_i of one prompt from its current scores r_t and previous
 * scores r_{t-1} (same responses, same order, every score present).
 * - kendall: c = (tau + 1) / 2; spearman: c = (rho + 1) / 2. With `ordinal`
 *   ranking the correlation is computed on the ordinal ranks of each list
 *   (scipy: kendalltau(rankdata(x, 'ordinal'), rankdata(y, 'ordinal'))); with
 *   `average` on the raw scores, i.e. tie-aware (tau-b; Spearman on average
 *   ranks), and a constant list is left out as `constant-scores` since the
 *   correlation is undefined.
 * - toporder: c = 1 when both rankings agree on the best and on the worst
 *   response, else 0 (see topOrderAgreement for ties).
 * Fewer than two responses is left out as `too-few-responses`.
 * Throws a RangeError when the lists differ in length or hold a NaN (callers
 * such as compareScoreSets check both first and report them by field).
 */
export function promptConsistency(
  current: readonly number[],
  previous: readonly number[],
  options: ConsistencyOptions,
): PromptConsistencyResult {
  const ranking = options.ranking ?? 'ordinal';
  if (current.length !== previous.length) {
    throw new RangeError(`current has ${current.length} scores but previous has ${previous.length}`);
  }
  if (current.some(Number.isNaN) || previous.some(Number.isNaN)) {
    throw new RangeError('scores must not be NaN');
  }
  const n = current.length;
  if (n < 2) {
    return {
      measured: false,
      reason: 'too-few-responses',
      detail: `${n} response${n === 1 ? '' : 's'}; comparing rankings needs at least 2`,
    };
  }
  if (options.method === 'toporder') {
    const agreement = topOrderAgreement(current, previous, ranking);
    return { measured: true, statistic: agreement, consistency: agreement };
  }
  if (ranking === 'average') {
    const constant = [
      ['current', constantValue(current)],
      ['previous', constantValue(previous)],
    ].flatMap(([side, value]) => (value === undefined ? [] : [`all ${n} ${side} scores equal ${value}`]));
    if (constant.length > 0) {
      return {
        measured: false,
        reason: 'constant-scores',
        detail: `${constant.join(' and ')}; a tie-aware ${options.method} correlation is undefined`,
      };
    }
  }
  const [x, y] = ranking === 'ordinal' ? [rankOrdinal(current), rankOrdinal(previous)] : [current, previous];
  const statistic = options.method === 'kendall' ? kendallTau(x, y) : spearmanRho(x, y);
  return { measured: true, statistic, consistency: (statistic + 1) / 2 };
}
