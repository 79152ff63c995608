// Progress of a run: bars redrawn in place on a terminal, plain lines
// (start, every tenth, end) otherwise.
import { describe, expect, it } from 'vitest';
import type { Stage, WatchRunResponse } from '@cream/proto';
import { ProgressView } from './progress';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { out: { isTTY, columns: 200, write: (text: string) => chunks.push(text) }, chunks };
}

const at = (ms: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, 0) + ms);
const stage = (state: number, extra: Partial<Stage> = {}): Stage => ({
  name: 'iter-1/sample', iteration: 1, state, startedAt: at(0), finishedAt: undefined, metrics: {}, error: '', ...extra,
});
const started = (): WatchRunResponse => ({ time: at(0), event: { $case: 'stageStarted', value: stage(2) } });
const progress = (done: number): WatchRunResponse => ({ time: at(0), event: { $case: 'progress', value: { stage: 'iter-1/sample', done, total: 40, unit: 'completions' } } });
const finished = (extra: Partial<Stage>): WatchRunResponse => ({ time: at(0), event: { $case: 'stageFinished', value: stage(3, { finishedAt: at(12_500), ...extra }) } });

describe('ProgressView', () => {
  it('draws one line per stage on a terminal, with done/total and elapsed, kept when the stage ends', () => {
    const { out, chunks } = sink(true);
    let now = at(0).getTime();
    const view = new ProgressView(out, () => now);
    view.onEvent(started());
    now += 2_000;
    view.onEvent(progress(10));
    expect(chunks.at(-1)).toBe(`\r\x1b[2K${'iter-1/sample'.padEnd(20)} [######..................] 10/40 completions  2.0 s`);
    now += 1_000;
    view.tick();
    expect(chunks.at(-1)).toContain('10/40 completions  3.0 s');
    view.onEvent(finished({ metrics: { completions: 40, tokens: 1234 } }));
    expect(chunks.at(-1)).toBe(`\r\x1b[2K${'iter-1/sample'.padEnd(20)} DONE in 12.5 s  completions=40 tokens=1234\n`);
    expect(chunks.join('')).not.toMatch(/\n.*\n.*\n/);
  });

  it('writes plain lines when not a terminal: start, each tenth of the way, the end with its error', () => {
    const { out, chunks } = sink(false);
    const view = new ProgressView(out, () => at(1_000).getTime(), '[cream seed 1] ');
    view.onEvent(started());
    for (let done = 1; done <= 40; done++) view.onEvent(progress(done));
    view.onEvent(finished({ state: 4, error: 'trainer unavailable' }));
    expect(chunks[0]).toBe('[cream seed 1] iter-1/sample: started\n');
    expect(chunks.filter((c) => c.includes('/40 completions'))).toHaveLength(11);
    expect(chunks.at(-1)).toBe(`[cream seed 1] ${'iter-1/sample'.padEnd(20)} FAILED in 12.5 s  error: trainer unavailable\n`);
    expect(chunks.join('')).not.toContain('\r');
  });

  it('leaves out the history WatchRun replays for a resumed run (events before `since`)', () => {
    const { out, chunks } = sink(false);
    const view = new ProgressView(out, () => at(60_000).getTime(), '', at(30_000).getTime());
    view.onEvent(finished({}));
    expect(chunks).toEqual([]);
    view.onEvent({ time: at(31_000), event: { $case: 'stageFinished', value: stage(5, { finishedAt: at(12_500) }) } });
    expect(chunks).toEqual([`${'iter-1/sample'.padEnd(20)} RESTORED in 12.5 s\n`]);
  });
});
