// The run table and the HTML report on a realistic results.json: numbers in
// the right cells, one SVG per plot with one mark per value, escaping, and no
// external resource.
import { describe, expect, it } from 'vitest';
import { sampleRun } from './fixtures';
import { consistencyByIteration, formatRunTable, renderRunReport } from './run-report';

function svgs(html: string): string[] {
  return html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
}

describe('formatRunTable', () => {
  const table = formatRunTable(sampleRun());
  const lines = table.split('\n');

  it('has one row per model with accuracy per task and mean in %, consistency, margin and pairs', () => {
    const header = lines.find((l) => l.startsWith('model'))!;
    expect(header.split(/\s+/)).toEqual(['model', 'version', 'arc-easy', 'obqa', 'gsm8k', 'mean', 'consistency', 'margin', 'pairs']);
    expect(lines.find((l) => l.startsWith('M0 '))!.split(/\s+/)).toEqual(['M0', 'm0', '30.0', '35.0', '25.0', '30.0', '-', '-', '-']);
    expect(lines.find((l) => l.startsWith('M3 '))!.split(/\s+/)).toEqual(['M3', 'run-20261128-a1b2c3-m3', '50.0', '55.0', '45.0', '50.0', '0.710', '0.350', '48']);
  });

  it('lists time per stage with a total, and a failed stage with its error', () => {
    expect(lines.find((l) => l.startsWith('sft '))).toMatch(/sft\s+DONE\s+1 min 01 s\s+steps=40 loss_first=2.1000 loss_last=1.2000/);
    expect(lines.find((l) => l.startsWith('total'))).toMatch(/total\s+8 min 21 s/);
    const failed = sampleRun({ state: 'FAILED' });
    failed.stages[6] = { ...failed.stages[6], state: 'FAILED', error: 'trainer unavailable' };
    expect(formatRunTable(failed)).toMatch(/iter-1\/train\s+FAILED\s+1 min 10 s\s+error: trainer unavailable/);
  });

  it('says which run, method, seed, state and backend', () => {
    expect(lines[0]).toBe('run run-20261128-a1b2c3 "default <cream> & "friends"": method cream, seed 1, SUCCEEDED, backend wasm+native');
  });
});

describe('consistencyByIteration', () => {
  it('reads the consistency stages, falling back to the models an iteration produced', () => {
    expect(consistencyByIteration(sampleRun())).toEqual([
      { iteration: 1, rate: 0.62 },
      { iteration: 2, rate: 0.71 },
    ]);
    const run = sampleRun();
    run.stages = run.stages.filter((s) => !s.name.endsWith('/consistency'));
    run.results[3].consistencyRate = 0.7;
    expect(consistencyByIteration(run)).toEqual([
      { iteration: 1, rate: 0.62 },
      { iteration: 2, rate: 0.7 },
    ]);
  });
});

describe('renderRunReport', () => {
  const html = renderRunReport(sampleRun());

  it('draws three plots: 4 models x (3 tasks + mean) bars, 2 consistency points, one bar per timed stage', () => {
    const plots = svgs(html);
    expect(plots).toHaveLength(3);
    expect(plots[0].match(/<rect class="bar"/g)).toHaveLength(16);
    expect(plots[1].match(/<circle class="point"/g)).toHaveLength(2);
    expect(plots[1].match(/<polyline class="line"/g)).toHaveLength(1);
    expect(plots[2].match(/<rect class="bar"/g)).toHaveLength(12);
  });

  it('scales bars to their value: 50% is half the plot height of 100%', () => {
    const heights = [...svgs(html)[0].matchAll(/<rect class="bar" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"/g)].map((m) => Number(m[1]));
    // M0 arc-easy 30%, M3 arc-easy 50%: the plot area is 236 px high.
    expect(heights[0]).toBeCloseTo(0.3 * 236, 3);
    expect(heights[12]).toBeCloseTo(0.5 * 236, 3);
  });

  it('holds the results table, the backend and the spec, with names escaped', () => {
    expect(html).toContain('<td class="num">55.0</td>');
    expect(html).toContain('backend <b>wasm+native</b>');
    expect(html).toContain('&quot;numSamples&quot;: 4');
    expect(html).toContain('default &lt;cream&gt; &amp; &quot;friends&quot;');
    expect(html).not.toContain('<cream>');
  });

  it('is self-contained: no script, no external stylesheet, font or image', () => {
    expect(html).not.toMatch(/<script|<link|@import|url\(|src=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  });

  it('renders a run that has no result yet with empty plots instead of failing', () => {
    const empty = renderRunReport(sampleRun({ state: 'RUNNING', results: [], stages: [] }));
    expect(svgs(empty)).toHaveLength(3);
    expect(empty).toContain('no data yet');
    expect(empty).not.toContain('class="bar"');
  });
});
