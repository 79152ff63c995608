// Scores to ranks, CREAM step 4 ("Rank and compare"). Two ways, matching
// scipy.stats.rankdata so that results can be checked against scipy:
// - ordinal: ranks 1..n, ties broken by position (what the authors' code does);
// - average: tied scores share the mean of the ranks they span (tie-aware).
// A NaN anywhere makes every rank NaN, as scipy's default nan_policy does.

/**
 * -1, 0 or 1 as a is below, equal to or above b. Uses < and > rather than
 * a - b, so that equal infinities compare equal (Infinity - Infinity is NaN).
 * Internal to the library (not in index.ts).
 */
export function compareScores(a: number, b: number): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Indices 0..n-1 sorted by ascending score, equal scores kept in index order (sort is stable). */
function sortedIndices(scores: readonly number[]): number[] {
  return scores.map((_, index) => index).sort((a, b) => compareScores(scores[a], scores[b]));
}

/**
 * Ordinal ranks, as scipy.stats.rankdata(scores, method='ordinal'): 1-based, the
 * smallest score gets rank 1, and among equal scores the earlier index gets the
 * lower rank. Every rank is distinct. All NaN when any score is NaN.
 */
export function rankOrdinal(scores: readonly number[]): number[] {
  if (scores.some(Number.isNaN)) return scores.map(() => NaN);
  const ranks = new Array<number>(scores.length);
  sortedIndices(scores).forEach((index, position) => {
    ranks[index] = position + 1;
  });
  return ranks;
}

/**
 * Average ranks, as scipy.stats.rankdata(scores, method='average'): 1-based, the
 * smallest score gets rank 1, and a group of k equal scores occupying sorted
 * positions p+1..p+k all get (2p + k + 1) / 2. Ranks are multiples of 0.5 and
 * always sum to n(n+1)/2. All NaN when any score is NaN.
 */
export function rankAverage(scores: readonly number[]): number[] {
  if (scores.some(Number.isNaN)) return scores.map(() => NaN);
  const order = sortedIndices(scores);
  const ranks = new Array<number>(scores.length);
  let start = 0;
  while (start < order.length) {
    let end = start + 1; // one past the last position holding the same score
    while (end < order.length && scores[order[end]] === scores[order[start]]) end++;
    // Positions start..end-1 hold ranks start+1..end; their mean is (start+1+end)/2.
    const rank = (start + 1 + end) / 2;
    for (let position = start; position < end; position++) ranks[order[position]] = rank;
    start = end;
  }
  return ranks;
}
