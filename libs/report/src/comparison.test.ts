// Aggregation over seeds (hand-checked means and sample stds), the markdown
// tables and the comparison report's plot.
import { describe, expect, it } from 'vitest';
import { aggregateComparison, formatComparisonMarkdown, renderComparisonReport, statistic } from './comparison';
import { sampleRun } from './fixtures';
import type { ReportRun } from './types';

/** Three seeds of cream (shifts 0, +0.02, +0.04) and two of oracle. */
function runs(): ReportRun[] {
  const cream = [0, 0.02, 0.04].map((shift, i) => sampleRun({ runId: `cream-${i + 1}`, seed: i + 1 }, shift));
  cream[1].stages = cream[1].stages.map((s) => (s.name === 'iter-1/consistency' ? { ...s, metrics: { ...s.metrics, consistency_rate: 0.66 } } : s));
  cream[2].stages = cream[2].stages.map((s) => (s.name === 'iter-1/consistency' ? { ...s, metrics: { ...s.metrics, consistency_rate: 0.7 } } : s));
  const oracle = [0, 0.1].map((shift, i) => sampleRun({ runId: `oracle-${i + 1}`, method: 'oracle', seed: i + 1 }, shift));
  return [...cream, ...oracle];
}

describe('statistic', () => {
  it('is the mean and the Bessel-corrected std', () => {
    // mean 5; squared deviations 9+1+1+9 = 20; 20/3 -> sqrt 2.5820
    const s = statistic([2, 4, 6, 8]);
    expect(s.mean).toBe(5);
    expect(s.std).toBeCloseTo(Math.sqrt(20 / 3), 12);
    expect(s.n).toBe(4);
    expect(statistic([0.3])).toEqual({ mean: 0.3, n: 1 });
    expect(() => statistic([])).toThrow(RangeError);
  });
});

describe('aggregateComparison', () => {
  const comparison = aggregateComparison(runs());

  it('groups by method and model over seeds', () => {
    expect(comparison.methods).toEqual(['cream', 'oracle']);
    expect(comparison.models).toEqual(['M0', 'M1', 'M2', 'M3']);
    expect(comparison.tasks).toEqual(['arc-easy', 'obqa', 'gsm8k']);
    expect(comparison.seeds).toEqual([1, 2, 3]);
    expect(comparison.rows).toHaveLength(8);
  });

  it('computes mean and sample std of accuracy per task and of the mean', () => {
    const m2 = comparison.rows.find((r) => r.method === 'cream' && r.model === 'M2')!;
    // arc-easy 0.45, 0.47, 0.49: mean 0.47, std 0.02
    expect(m2.tasks['arc-easy'].mean).toBeCloseTo(0.47, 12);
    expect(m2.tasks['arc-easy'].std).toBeCloseTo(0.02, 12);
    expect(m2.mean.mean).toBeCloseTo(0.47, 12);
    const oracle = comparison.rows.find((r) => r.method === 'oracle' && r.model === 'M3')!;
    // gsm8k 0.45, 0.55: mean 0.5, std 0.1/sqrt(2)
    expect(oracle.tasks.gsm8k.mean).toBeCloseTo(0.5, 12);
    expect(oracle.tasks.gsm8k.std).toBeCloseTo(0.1 / Math.SQRT2, 12);
  });

  it('computes consistency per iteration over seeds', () => {
    const first = comparison.consistency.find((c) => c.method === 'cream' && c.iteration === 1)!;
    // 0.62, 0.66, 0.70: mean 0.66, std 0.04
    expect(first.rate.mean).toBeCloseTo(0.66, 12);
    expect(first.rate.std).toBeCloseTo(0.04, 12);
    expect(comparison.consistency.find((c) => c.method === 'oracle' && c.iteration === 2)!.rate).toEqual({ mean: 0.71, std: 0, n: 2 });
  });

  it('takes what a failed run has', () => {
    const failed = sampleRun({ runId: 'srlm-1', method: 'srlm', state: 'FAILED' });
    failed.results = failed.results.slice(0, 2);
    const c = aggregateComparison([...runs(), failed]);
    expect(c.rows.filter((r) => r.method === 'srlm').map((r) => r.model)).toEqual(['M0', 'M1']);
    expect(c.runs.at(-1)).toEqual({ runId: 'srlm-1', method: 'srlm', seed: 1, state: 'FAILED' });
  });
});

describe('formatComparisonMarkdown', () => {
  it('prints "mean ± std" in % per method and model, and consistency per iteration', () => {
    const md = formatComparisonMarkdown(aggregateComparison(runs()));
    const lines = md.split('\n');
    expect(lines).toContain('| method | model | arc-easy | obqa | gsm8k | mean |');
    expect(lines).toContain('|---|---|---:|---:|---:|---:|');
    expect(lines).toContain('| cream | M2 | 47.0 ± 2.0 | 52.0 ± 2.0 | 42.0 ± 2.0 | 47.0 ± 2.0 |');
    expect(lines).toContain('| oracle | M3 | 55.0 ± 7.1 | 60.0 ± 7.1 | 50.0 ± 7.1 | 55.0 ± 7.1 |');
    expect(lines).toContain('| method | iter 1 | iter 2 |');
    expect(lines).toContain('| cream | 0.660 ± 0.040 | 0.710 ± 0.000 |');
    expect(md).toContain('mean ± sample std over 3 seeds (1, 2, 3)');
  });

  it('prints bare means for one seed and escapes pipes in names', () => {
    const run = sampleRun();
    for (const result of run.results) result.accuracy[0].task = 'a|b';
    const md = formatComparisonMarkdown(aggregateComparison([run]));
    expect(md).toContain('| method | model | a\\|b | obqa | gsm8k | mean |');
    expect(md).toContain('| cream | M0 | 30.0 | 35.0 | 25.0 | 30.0 |');
    expect(md).not.toContain('±');
  });
});

describe('renderComparisonReport', () => {
  it('plots accuracy per iteration per method: one point per method and model, error bars for K > 1', () => {
    const html = renderComparisonReport(aggregateComparison(runs()));
    const plots = html.match(/<svg[\s\S]*?<\/svg>/g)!;
    expect(plots).toHaveLength(2);
    expect(plots[0]).toContain('Accuracy per iteration per method');
    expect(plots[0].match(/<circle class="point"/g)).toHaveLength(8);
    expect(plots[0].match(/<polyline class="line"/g)).toHaveLength(2);
    expect(plots[0].match(/<line class="error"/g)).toHaveLength(8);
    expect(plots[1].match(/<circle class="point"/g)).toHaveLength(4);
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i);
  });
});
