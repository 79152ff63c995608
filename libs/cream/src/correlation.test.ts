// Kendall and Spearman on hand-worked cases; scipy agreement is in scipy-agreement.test.ts.
import { describe, expect, it } from 'vitest';
import { kendallTau, spearmanRho } from './index';

describe('kendallTau', () => {
  it('is (concordant - discordant) / pairs without ties', () => {
    // pairs (0,1) and (0,2) concordant, (1,2) discordant: (2 - 1) / 3
    expect(kendallTau([1, 2, 3], [1, 3, 2])).toBeCloseTo(1 / 3, 15);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    expect(kendallTau([0.1, 0.7, 0.3], [10, 70, 30])).toBe(1);
  });
  it('is tau-b with ties: the denominator drops tied pairs of each side', () => {
    // x = [1, 1, 2]: pair (0,1) tied in x; (0,2), (1,2) concordant.
    // S = 2, untied in x = 2, untied in y = 3 -> 2 / sqrt(2) / sqrt(3) = sqrt(2/3)
    expect(kendallTau([1, 1, 2], [1, 2, 3])).toBeCloseTo(Math.sqrt(2 / 3), 15);
    // a pair tied on both sides counts in neither: x = [1, 1, 2, 3], y = [5, 5, 6, 4]
    // (0,1) tied both; (0,2) +,+ ; (0,3) +,- ; (1,2) +,+ ; (1,3) +,- ; (2,3) +,-
    // S = 2 - 3 = -1, untied 5 and 5 -> -1/5
    expect(kendallTau([1, 1, 2, 3], [5, 5, 6, 4])).toBeCloseTo(-0.2, 15);
  });
  it('is NaN when undefined: a constant input, fewer than 2 values, a NaN', () => {
    expect(kendallTau([2, 2, 2], [1, 2, 3])).toBeNaN();
    expect(kendallTau([1, 2, 3], [0, 0, 0])).toBeNaN();
    expect(kendallTau([1], [1])).toBeNaN();
    expect(kendallTau([], [])).toBeNaN();
    expect(kendallTau([1, NaN], [1, 2])).toBeNaN();
  });
  it('rejects lists of different lengths', () => {
    expect(() => kendallTau([1, 2], [1, 2, 3])).toThrow(RangeError);
  });
  it('stays exact at the largest size the contract allows (1024)', () => {
    const x = Array.from({ length: 1024 }, (_, i) => i);
    expect(kendallTau(x, x)).toBe(1);
    expect(kendallTau(x, x.map((v) => -v))).toBe(-1);
    // swapping two neighbours makes 1 discordant pair of n(n-1)/2
    const y = [...x];
    [y[10], y[11]] = [y[11], y[10]];
    const pairs = (1024 * 1023) / 2;
    expect(kendallTau(x, y)).toBeCloseTo((pairs - 2) / pairs, 15);
  });
});

describe('spearmanRho', () => {
  it('is the Pearson correlation of the ranks', () => {
    // one adjacent swap in 4: 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8
    expect(spearmanRho([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 15);
    // ranks only: a monotone transform changes nothing
    expect(spearmanRho([1, 2, 3, 4], [1, 30, 20, 400])).toBeCloseTo(0.8, 15);
    expect(spearmanRho([3, 2, 1], [1, 2, 3])).toBe(-1);
  });
  it('uses average ranks for ties', () => {
    // ranks x = [1.5, 1.5, 3], y = [1, 2, 3]; centred x = [-0.5, -0.5, 1], y = [-1, 0, 1]
    // cov = 0.5 + 0 + 1 = 1.5, var x = 1.5, var y = 2 -> 1.5 / sqrt(3) = sqrt(3)/2
    expect(spearmanRho([1, 1, 2], [1, 2, 3])).toBeCloseTo(Math.sqrt(3) / 2, 15);
  });
  it('is NaN when undefined', () => {
    expect(spearmanRho([4, 4], [1, 2])).toBeNaN();
    expect(spearmanRho([1], [2])).toBeNaN();
    expect(spearmanRho([1, 2], [NaN, 2])).toBeNaN();
  });
  it('rejects lists of different lengths', () => {
    expect(() => spearmanRho([1], [1, 2])).toThrow(RangeError);
  });
});
