// A run's events (events.jsonl in the run store) and the run view built from
// them: the payload of each event is the proto message of WatchRunResponse
// in its canonical JSON, so WatchRun replays them as they were, and GetRun
// rebuilds stage states and results from run.json plus the events of every
// attempt (later events win), whether or not the run is active.
import { ModelResult, Run, RunSpec, RunState, Stage, StageProgress, StageState, type WatchRunResponse } from '@cream/proto';
import type { RunEvent, RunRecord } from '@cream/store';
import { planStages } from './plan';

/** Event types of events.jsonl. */
export const EVENT = Object.freeze({
  attemptStarted: 'attempt_started',
  stageStarted: 'stage_started',
  progress: 'progress',
  stageFinished: 'stage_finished',
  result: 'result',
  runFinished: 'run_finished',
});

/** Run states as run.json stores them (RunState names without the prefix). */
export const STATE = Object.freeze({
  running: 'RUNNING',
  succeeded: 'SUCCEEDED',
  failed: 'FAILED',
  cancelled: 'CANCELLED',
  interrupted: 'INTERRUPTED',
});

const STATES = new Map<string, RunState>([
  [STATE.running, RunState.RUN_STATE_RUNNING],
  [STATE.succeeded, RunState.RUN_STATE_SUCCEEDED],
  [STATE.failed, RunState.RUN_STATE_FAILED],
  [STATE.cancelled, RunState.RUN_STATE_CANCELLED],
  [STATE.interrupted, RunState.RUN_STATE_INTERRUPTED],
]);

/** The proto RunState of a stored state name. */
export function runStateOf(state: string): RunState {
  return STATES.get(state) ?? RunState.RUN_STATE_UNSPECIFIED;
}

/** A stored event as a WatchRun message; undefined for bookkeeping events that WatchRun does not show. */
export function toWatchResponse(event: RunEvent): WatchRunResponse | undefined {
  const time = new Date(event.time);
  switch (event.type) {
    case EVENT.stageStarted:
      return { time, event: { $case: 'stageStarted', value: Stage.fromJSON(event.payload) } };
    case EVENT.stageFinished:
      return { time, event: { $case: 'stageFinished', value: Stage.fromJSON(event.payload) } };
    case EVENT.progress:
      return { time, event: { $case: 'progress', value: StageProgress.fromJSON(event.payload) } };
    case EVENT.result:
      return { time, event: { $case: 'result', value: ModelResult.fromJSON(event.payload) } };
    case EVENT.runFinished:
      return { time, event: { $case: 'runFinished', value: Run.fromJSON(event.payload) } };
    default:
      return undefined;
  }
}

/**
 * The run view: the spec from run.json, every planned stage with the state
 * its latest events give it (PENDING when none), the latest result of each
 * model, the state and error of run.json. When the run is not active in this
 * process, a stage left RUNNING by a stopped attempt reads FAILED.
 */
export function buildRunView(record: RunRecord, events: readonly RunEvent[], runDir: string, active: boolean): Run {
  const spec = RunSpec.fromJSON(record.spec);
  const stages = new Map<string, Stage>(
    planStages(spec).map((stage) => [stage.name, { name: stage.name, iteration: stage.iteration, state: StageState.STAGE_STATE_PENDING, startedAt: undefined, finishedAt: undefined, metrics: {}, error: '' }]),
  );
  const results = new Map<string, ModelResult>();
  for (const event of events) {
    if (event.type === EVENT.attemptStarted) {
      // A new attempt: stages the earlier one left unfinished start over.
      for (const [name, stage] of stages) {
        if (stage.state === StageState.STAGE_STATE_RUNNING || stage.state === StageState.STAGE_STATE_FAILED) stages.set(name, { ...stage, state: StageState.STAGE_STATE_PENDING });
      }
    } else if (event.type === EVENT.stageStarted || event.type === EVENT.stageFinished) {
      const stage = Stage.fromJSON(event.payload);
      stages.set(stage.name, stage);
    } else if (event.type === EVENT.result) {
      const result = ModelResult.fromJSON(event.payload);
      results.set(result.model, result);
    }
  }
  if (!active) {
    for (const [name, stage] of stages) {
      if (stage.state === StageState.STAGE_STATE_RUNNING) {
        stages.set(name, { ...stage, state: StageState.STAGE_STATE_FAILED, error: 'the coordinator stopped before this stage finished' });
      }
    }
  }
  const modelIndex = (model: string) => Number(model.replace(/^M/, ''));
  return {
    runId: record.runId,
    spec,
    state: runStateOf(record.state),
    stages: [...stages.values()],
    results: [...results.values()].sort((a, b) => modelIndex(a.model) - modelIndex(b.model)),
    createdAt: new Date(record.createdAt),
    runDir,
    error: record.error ?? '',
  };
}
