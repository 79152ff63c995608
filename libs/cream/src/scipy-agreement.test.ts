// Agreement with scipy to 1e-12 on ~300 generated cases (ties on both sides,
// on one side, constant lists, floats): test/fixtures/consistency-scipy.json,
// made by test/fixtures/make-consistency-scipy.py, which documents the format.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kendallTau, promptConsistency, rankOrdinal, spearmanRho, type ConsistencyMethod, type RankingMode } from './index';

interface ScipyCase {
  name: string;
  current: number[];
  previous: number[];
  kendall_ordinal: number | null;
  kendall_average: number | null;
  spearman_ordinal: number | null;
  spearman_average: number | null;
  toporder_ordinal: 0 | 1;
  toporder_average: 0 | 1;
}

const fixturePath = resolve(__dirname, '../../../test/fixtures/consistency-scipy.json');
const { cases } = JSON.parse(readFileSync(fixturePath, 'utf8')) as { cases: ScipyCase[] };
const TOLERANCE = 1e-12;

describe('agreement with scipy (consistency-scipy.json)', () => {
  it('holds enough varied cases to mean something', () => {
    expect(cases.length).toBeGreaterThanOrEqual(250);
    expect(cases.filter((c) => c.kendall_average === null).length).toBeGreaterThan(10); // constant lists
    expect(cases.filter((c) => c.toporder_ordinal !== c.toporder_average).length).toBeGreaterThan(5);
  });

  it('kendallTau and spearmanRho equal scipy on ordinal ranks and on raw scores', () => {
    for (const c of cases) {
      const rc = rankOrdinal(c.current);
      const rp = rankOrdinal(c.previous);
      const checks: [string, number, number | null][] = [
        ['kendall_ordinal', kendallTau(rc, rp), c.kendall_ordinal],
        ['kendall_average', kendallTau(c.current, c.previous), c.kendall_average],
        ['spearman_ordinal', spearmanRho(rc, rp), c.spearman_ordinal],
        ['spearman_average', spearmanRho(c.current, c.previous), c.spearman_average],
      ];
      for (const [what, actual, expected] of checks) {
        if (expected === null) expect(actual, `${c.name} ${what}`).toBeNaN();
        else expect(Math.abs(actual - expected), `${c.name} ${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(TOLERANCE);
      }
    }
  });

  it('promptConsistency gives every expected statistic, or constant-scores where scipy gives NaN', () => {
    const methods: ConsistencyMethod[] = ['kendall', 'spearman', 'toporder'];
    const rankings: RankingMode[] = ['ordinal', 'average'];
    for (const c of cases) {
      for (const method of methods) {
        for (const ranking of rankings) {
          const expected = c[`${method}_${ranking}`];
          const result = promptConsistency(c.current, c.previous, { method, ranking });
          const label = `${c.name} ${method} ${ranking}`;
          if (expected === null) {
            expect(result, label).toMatchObject({ measured: false, reason: 'constant-scores' });
            continue;
          }
          if (!result.measured) throw new Error(`${label}: left out (${result.detail}) but scipy gives ${expected}`);
          expect(Math.abs(result.statistic - expected), label).toBeLessThanOrEqual(TOLERANCE);
          const consistency = method === 'toporder' ? expected : (expected + 1) / 2;
          expect(Math.abs(result.consistency - consistency), label).toBeLessThanOrEqual(TOLERANCE);
        }
      }
    }
  });
});
