// promptConsistency on hand-worked cases: each method, each ranking, the ties
// where the two rankings differ, and the cases left out.
import { describe, expect, it } from 'vitest';
import { promptConsistency } from './index';

describe('promptConsistency: kendall and spearman', () => {
  it('maps the statistic to c = (statistic + 1) / 2', () => {
    // tau([1,2,3], [1,3,2]) = 1/3 -> c = 2/3
    const kendall = promptConsistency([1, 2, 3], [1, 3, 2], { method: 'kendall' });
    expect(kendall).toMatchObject({ measured: true });
    if (!kendall.measured) throw new Error('unreachable');
    expect(kendall.statistic).toBeCloseTo(1 / 3, 15);
    expect(kendall.consistency).toBeCloseTo(2 / 3, 15);
    // rho = 0.8 -> c = 0.9
    const spearman = promptConsistency([1, 2, 3, 4], [1, 3, 2, 4], { method: 'spearman' });
    if (!spearman.measured) throw new Error('expected a value');
    expect(spearman.statistic).toBeCloseTo(0.8, 15);
    expect(spearman.consistency).toBeCloseTo(0.9, 15);
  });
  it('full agreement is c = 1 and full reversal c = 0', () => {
    expect(promptConsistency([1, 2, 3], [10, 20, 30], { method: 'kendall' })).toEqual({
      measured: true,
      statistic: 1,
      consistency: 1,
    });
    expect(promptConsistency([1, 2, 3], [3, 2, 1], { method: 'spearman', ranking: 'average' })).toEqual({
      measured: true,
      statistic: -1,
      consistency: 0,
    });
  });
  it('ordinal (the default) breaks ties by index; average is tie-aware', () => {
    // current [3, 3, 1] has ordinal ranks [2, 3, 1], as has previous [2, 3, 1]: tau = 1
    expect(promptConsistency([3, 3, 1], [2, 3, 1], { method: 'kendall' })).toEqual({
      measured: true,
      statistic: 1,
      consistency: 1,
    });
    // tie-aware: pair (0,1) tied in current; (0,2), (1,2) concordant -> 2 / sqrt(2 * 3)
    const average = promptConsistency([3, 3, 1], [2, 3, 1], { method: 'kendall', ranking: 'average' });
    if (!average.measured) throw new Error('expected a value');
    expect(average.statistic).toBeCloseTo(2 / Math.sqrt(6), 15);
    expect(average.consistency).toBeCloseTo((2 / Math.sqrt(6) + 1) / 2, 15);
  });
  it('a constant list: ranked by position under ordinal, left out under average', () => {
    // ordinal ranks of [4, 4, 4] are [1, 2, 3], those of [1, 2, 3] too
    expect(promptConsistency([4, 4, 4], [1, 2, 3], { method: 'kendall', ranking: 'ordinal' })).toMatchObject({
      measured: true,
      statistic: 1,
    });
    const leftOut = promptConsistency([4, 4, 4], [1, 2, 3], { method: 'spearman', ranking: 'average' });
    expect(leftOut).toMatchObject({ measured: false, reason: 'constant-scores' });
    if (leftOut.measured) throw new Error('expected left out');
    expect(leftOut.detail).toContain('all 3 current scores equal 4');
    const both = promptConsistency([1, 1], [0.5, 0.5], { method: 'kendall', ranking: 'average' });
    if (both.measured) throw new Error('expected left out');
    expect(both.detail).toContain('all 2 current scores equal 1 and all 2 previous scores equal 0.5');
  });
});

describe('promptConsistency: toporder', () => {
  it('compares the best and the worst response, not the first and the last (the authors\' bug)', () => {
    // ranks [2,4,3,1] vs [2,3,4,1]: first and last responses keep their ranks (the
    // authors' code would say 1) but the best is response 1 vs response 2 -> 0
    expect(promptConsistency([2, 5, 4, 1], [2, 4, 5, 1], { method: 'toporder' })).toEqual({
      measured: true,
      statistic: 0,
      consistency: 0,
    });
    // ranks [2,3,4,1] vs [3,2,4,1]: the first response's rank changes (the authors'
    // code would say 0) but best (2) and worst (3) agree -> 1
    expect(promptConsistency([2, 3, 5, 1], [3, 2, 5, 1], { method: 'toporder' })).toEqual({
      measured: true,
      statistic: 1,
      consistency: 1,
    });
  });
  it('needs both ends: the same best but a different worst is 0', () => {
    expect(promptConsistency([3, 1, 2], [3, 2, 1], { method: 'toporder' })).toMatchObject({ consistency: 0 });
  });
  it('ordinal: among tied top scores the last index is ranked best, among tied bottom ones the first worst', () => {
    // [3, 3, 1] ranks [2, 3, 1]: best response 1; [2, 3, 1] ranks [2, 3, 1]: best 1; worst 2 in both -> 1
    expect(promptConsistency([3, 3, 1], [2, 3, 1], { method: 'toporder' })).toMatchObject({ consistency: 1 });
    // [3, 3, 1] best response 1; [3, 2, 1] best response 0 -> 0
    expect(promptConsistency([3, 3, 1], [3, 2, 1], { method: 'toporder' })).toMatchObject({ consistency: 0 });
    // [1, 1, 3] ranks [1, 2, 3]: worst response 0, as in [1, 2, 3] -> 1
    expect(promptConsistency([1, 1, 3], [1, 2, 3], { method: 'toporder' })).toMatchObject({ consistency: 1 });
  });
  it('average: the sets of indices at the maximum and at the minimum must be equal', () => {
    // max sets {0, 1} vs {1} differ -> 0
    expect(promptConsistency([3, 3, 1], [2, 3, 1], { method: 'toporder', ranking: 'average' })).toMatchObject({
      consistency: 0,
    });
    // max {0, 1} and min {2} in both -> 1
    expect(promptConsistency([3, 3, 1], [7, 7, 0], { method: 'toporder', ranking: 'average' })).toMatchObject({
      consistency: 1,
    });
    // two constant lists: every index is both max and min in both -> 1; one constant -> 0
    expect(promptConsistency([2, 2], [5, 5], { method: 'toporder', ranking: 'average' })).toMatchObject({
      consistency: 1,
    });
    expect(promptConsistency([2, 2], [5, 6], { method: 'toporder', ranking: 'average' })).toMatchObject({
      consistency: 0,
    });
  });
});

describe('promptConsistency: what it refuses', () => {
  it('leaves out fewer than two responses, for every method', () => {
    for (const method of ['kendall', 'spearman', 'toporder'] as const) {
      expect(promptConsistency([1], [2], { method })).toEqual({
        measured: false,
        reason: 'too-few-responses',
        detail: '1 response; comparing rankings needs at least 2',
      });
    }
  });
  it('throws on lists of different lengths and on NaN (callers check these first)', () => {
    expect(() => promptConsistency([1, 2], [1, 2, 3], { method: 'kendall' })).toThrow(RangeError);
    expect(() => promptConsistency([1, NaN], [1, 2], { method: 'toporder' })).toThrow(RangeError);
  });
});
