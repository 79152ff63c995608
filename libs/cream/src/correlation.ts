// Rank correlations between two score lists of the same responses, CREAM
// step 4: Kendall's tau (the paper's default) and Spearman's rho. Both match
// scipy.stats (kendalltau with its default variant 'b', spearmanr) to 1e-12;
// see test/fixtures/make-consistency-scipy.py. Both are NaN where scipy's are:
// fewer than two values, a constant input, or a NaN anywhere.
import { compareScores, rankAverage } from './ranking';

/** Throws when two lists that must pair up element by element differ in length. */
function assertSameLength(x: readonly number[], y: readonly number[]): void {
  if (x.length !== y.length) {
    throw new RangeError(`x has ${x.length} values but y has ${y.length}; a correlation needs paired values`);
  }
}

/**
 * Kendall's tau-b, as scipy.stats.kendalltau(x, y).statistic:
 * tau_b = (concordant - discordant) / sqrt(pairs not tied in x) / sqrt(pairs not tied in y),
 * over the n(n-1)/2 pairs i < j. On inputs without ties it equals tau-a. Pairs
 * are counted exactly in integers (O(n^2), fine for the 1024 responses a prompt
 * may have), so the only rounding is in the final square root and division;
 * the result is clipped to [-1, 1] as scipy does. NaN when n < 2, when x or y
 * is constant (every pair tied), or when any value is NaN.
 */
export function kendallTau(x: readonly number[], y: readonly number[]): number {
  assertSameLength(x, y);
  const n = x.length;
  if (n < 2 || x.some(Number.isNaN) || y.some(Number.isNaN)) return NaN;
  let concordantMinusDiscordant = 0;
  let untiedInX = 0;
  let untiedInY = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const sx = compareScores(x[i], x[j]);
      const sy = compareScores(y[i], y[j]);
      concordantMinusDiscordant += sx * sy;
      if (sx !== 0) untiedInX++;
      if (sy !== 0) untiedInY++;
    }
  }
  if (untiedInX === 0 || untiedInY === 0) return NaN;
  // untiedInX * untiedInY < 2^53 is exact, so equal counts give exactly +-1
  // (scipy's two square roots can give 0.9999999999999999).
  const tau = concordantMinusDiscordant / Math.sqrt(untiedInX * untiedInY);
  return Math.min(1, Math.max(-1, tau));
}

/**
 * Spearman's rho, as scipy.stats.spearmanr(x, y).statistic: the Pearson
 * correlation of the average ranks of x and of y (ties share their mean rank).
 * Average ranks are multiples of 0.5 with mean (n+1)/2, so 2*rank - (n+1) is an
 * exact integer; the centred sums are therefore exact and only the final
 * square root and division round. Clipped to [-1, 1]. NaN when n < 2, when x or y is constant,
 * or when any value is NaN.
 */
export function spearmanRho(x: readonly number[], y: readonly number[]): number {
  assertSameLength(x, y);
  const n = x.length;
  if (n < 2 || x.some(Number.isNaN) || y.some(Number.isNaN)) return NaN;
  const ranksX = rankAverage(x);
  const ranksY = rankAverage(y);
  let sumXY = 0;
  let sumXX = 0;
  let sumYY = 0;
  for (let i = 0; i < n; i++) {
    const dx = 2 * ranksX[i] - (n + 1); // twice the centred rank: an integer
    const dy = 2 * ranksY[i] - (n + 1);
    sumXY += dx * dy;
    sumXX += dx * dx;
    sumYY += dy * dy;
  }
  if (sumXX === 0 || sumYY === 0) return NaN;
  // One square root: identical rankings give exactly 1 (below 2^53 the product is exact).
  const rho = sumXY / Math.sqrt(sumXX * sumYY);
  return Math.min(1, Math.max(-1, rho));
}
