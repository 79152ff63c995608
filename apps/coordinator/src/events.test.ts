// The run view rebuilt from run.json and the events of every attempt.
import { Method, ModelResult, RunSpec, RunState, Stage, StageState } from '@cream/proto';
import type { RunEvent, RunRecord } from '@cream/store';
import { describe, expect, it } from 'vitest';
import { buildRunView, EVENT, toWatchResponse } from './events';

const spec = RunSpec.toJSON(RunSpec.fromPartial({ baseVersion: 'm0', method: Method.METHOD_CREAM, iterations: 1, evaluate: false }));
const record: RunRecord = { runId: 'run-1', spec, state: 'RUNNING', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:01.000Z', error: null };
let index = 0;
const event = (type: string, payload: unknown): RunEvent => ({ index: index++, time: '2026-01-01T00:00:02.000Z', type, payload });
const stage = (name: string, state: StageState, metrics: Record<string, number> = {}) =>
  Stage.toJSON({ name, iteration: 0, state, startedAt: new Date('2026-01-01T00:00:02Z'), finishedAt: undefined, metrics, error: '' });

describe('buildRunView', () => {
  const events = [
    event(EVENT.attemptStarted, { attempt: 1 }),
    event(EVENT.stageStarted, stage('data', StageState.STAGE_STATE_RUNNING)),
    event(EVENT.stageFinished, stage('data', StageState.STAGE_STATE_DONE, { prompts: 8 })),
    event(EVENT.result, ModelResult.toJSON({ model: 'M0', version: 'm0', accuracy: [], meanAccuracy: 0, pairsUsed: 0 })),
    event(EVENT.stageStarted, stage('sft', StageState.STAGE_STATE_RUNNING)),
  ];

  it('gives every planned stage the state of its latest event, PENDING without one', () => {
    const view = buildRunView(record, events, '/runs/run-1', true);
    expect(view.state).toBe(RunState.RUN_STATE_RUNNING);
    expect(view.stages.map((s) => [s.name, s.state])).toEqual([
      ['data', StageState.STAGE_STATE_DONE],
      ['sft', StageState.STAGE_STATE_RUNNING],
      ['iter-1/sample', StageState.STAGE_STATE_PENDING],
      ['iter-1/logprobs/m1', StageState.STAGE_STATE_PENDING],
      ['iter-1/logprobs/m0', StageState.STAGE_STATE_PENDING],
      ['iter-1/consistency', StageState.STAGE_STATE_PENDING],
      ['iter-1/train', StageState.STAGE_STATE_PENDING],
    ]);
    expect(view.stages[0].metrics).toEqual({ prompts: 8 });
    expect(view.results.map((r) => r.model)).toEqual(['M0']);
  });

  it('reads a stage left RUNNING by a stopped coordinator as FAILED, and a new attempt starts it over', () => {
    const stopped = buildRunView({ ...record, state: 'INTERRUPTED' }, events, '/runs/run-1', false);
    expect(stopped.state).toBe(RunState.RUN_STATE_INTERRUPTED);
    expect(stopped.stages[1]).toMatchObject({ state: StageState.STAGE_STATE_FAILED, error: expect.stringMatching(/stopped/) });
    const resumed = buildRunView(record, [...events, event(EVENT.attemptStarted, { attempt: 2 }), event(EVENT.stageFinished, stage('data', StageState.STAGE_STATE_RESTORED))], '/runs/run-1', true);
    expect(resumed.stages.slice(0, 2).map((s) => s.state)).toEqual([StageState.STAGE_STATE_RESTORED, StageState.STAGE_STATE_PENDING]);
  });

  it('replays stored events as WatchRun messages, leaving bookkeeping out', () => {
    expect(toWatchResponse(events[0])).toBeUndefined();
    expect(toWatchResponse(events[2])?.event).toMatchObject({ $case: 'stageFinished', value: { name: 'data', state: StageState.STAGE_STATE_DONE } });
  });
});
