// The run message of the coordinator as a ReportRun (used when results.json
// was not written): states by name, stage durations from the timestamps,
// optional consistency fields kept absent for M0 and M1.
import { describe, expect, it } from 'vitest';
import { Method, RunSpec, RunState, StageState, type Run } from '@cream/proto';
import { formatRunTable } from '@cream/report';
import { reportFromRun } from './experiment';

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, seconds));

const run: Run = {
  runId: 'run-1',
  spec: RunSpec.fromPartial({ name: 'n', method: Method.METHOD_SRLM, seed: 4 }),
  state: RunState.RUN_STATE_FAILED,
  createdAt: at(0),
  runDir: '/nowhere',
  error: 'trainer gone',
  stages: [
    { name: 'sft', iteration: 0, state: StageState.STAGE_STATE_RESTORED, startedAt: at(1), finishedAt: at(31), metrics: { steps: 8 }, error: '' },
    { name: 'iter-1/train', iteration: 1, state: StageState.STAGE_STATE_FAILED, startedAt: at(40), finishedAt: undefined, metrics: {}, error: 'trainer gone' },
  ],
  results: [
    { model: 'M0', version: 'm0', accuracy: [{ task: 'arc', accuracy: 0.25, numItems: 8 }], meanAccuracy: 0.25, pairsUsed: 0 },
    { model: 'M2', version: 'run-1-m2', accuracy: [{ task: 'arc', accuracy: 0.5, numItems: 8 }], meanAccuracy: 0.5, consistencyRate: 0.75, rewardMargin: 0.2, pairsUsed: 6 },
  ],
};

describe('reportFromRun', () => {
  it('turns the coordinator run message into results.json form', () => {
    const report = reportFromRun(run, 'srlm');
    expect(report).toMatchObject({ runId: 'run-1', name: 'n', method: 'srlm', seed: 4, state: 'FAILED', createdAt: '2026-11-28T12:00:00.000Z' });
    expect(report.stages).toEqual([
      { name: 'sft', iteration: 0, state: 'RESTORED', startedAt: '2026-11-28T12:00:01.000Z', finishedAt: '2026-11-28T12:00:31.000Z', durationMs: 30_000, metrics: { steps: 8 }, error: undefined },
      { name: 'iter-1/train', iteration: 1, state: 'FAILED', startedAt: '2026-11-28T12:00:40.000Z', finishedAt: undefined, durationMs: undefined, metrics: {}, error: 'trainer gone' },
    ]);
    expect(report.results[0].consistencyRate).toBeUndefined();
    expect(report.results[1]).toMatchObject({ consistencyRate: 0.75, rewardMargin: 0.2, pairsUsed: 6 });
    const table = formatRunTable(report);
    expect(table).toMatch(/^M2\s+run-1-m2\s+50\.0\s+50\.0\s+0\.750\s+0\.200\s+6$/m);
    expect(table).toMatch(/^iter-1\/train\s+FAILED\s+-\s+error: trainer gone$/m);
  });
});
