// Ranks against hand-worked examples of scipy.stats.rankdata.
import { describe, expect, it } from 'vitest';
import { rankAverage, rankOrdinal } from './index';

describe('rankOrdinal', () => {
  it('gives 1-based ranks with ties broken by index, the earlier index lower', () => {
    // sorted: 1 (index 1), 2 (index 3), 3 (index 0), 3 (index 2) -> ranks 1, 2, 3, 4
    expect(rankOrdinal([3, 1, 3, 2])).toEqual([3, 1, 4, 2]);
  });
  it('ranks a constant list by position', () => {
    expect(rankOrdinal([5, 5, 5])).toEqual([1, 2, 3]);
  });
  it('treats -0 and 0 as equal, and orders infinities', () => {
    expect(rankOrdinal([0, -0, -Infinity, Infinity, Infinity])).toEqual([2, 3, 1, 4, 5]);
  });
  it('is all NaN when any score is NaN, as scipy propagates', () => {
    expect(rankOrdinal([1, NaN, 2])).toEqual([NaN, NaN, NaN]);
  });
  it('handles the empty list', () => {
    expect(rankOrdinal([])).toEqual([]);
  });
});

describe('rankAverage', () => {
  it('gives tied scores the mean of the ranks they span', () => {
    // the two 3s span ranks 3 and 4 -> 3.5 each
    expect(rankAverage([3, 1, 3, 2])).toEqual([3.5, 1, 3.5, 2]);
    // sorted 0, 7, 7, 7, 9: the three 7s span ranks 2..4 -> 3 each
    expect(rankAverage([7, 9, 7, 0, 7])).toEqual([3, 5, 3, 1, 3]);
  });
  it('gives a constant list (n+1)/2 everywhere', () => {
    expect(rankAverage([5, 5, 5, 5])).toEqual([2.5, 2.5, 2.5, 2.5]);
  });
  it('equals the ordinal ranks when there are no ties', () => {
    const scores = [0.3, -1.2, 4.5, 0.31, 2];
    expect(rankAverage(scores)).toEqual(rankOrdinal(scores));
  });
  it('groups equal infinities', () => {
    expect(rankAverage([Infinity, 0, Infinity])).toEqual([2.5, 1, 2.5]);
  });
  it('is all NaN when any score is NaN', () => {
    expect(rankAverage([NaN, 1])).toEqual([NaN, NaN]);
  });
});
