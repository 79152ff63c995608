// The run folder's outputs, written at the end of every attempt (success,
// failure or cancellation) with what is known: results.json (a ReportRun of
// @cream/report), report.html (renderRunReport) and trace.jsonl (this run's
// spans, copied from the coordinator's trace file: every span of a trace
// that holds a span with cream.run_id = the run).
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RunSpec, RunState, StageState, runStateToJSON, stageStateToJSON, type Run } from '@cream/proto';
import { renderRunReport, type ReportRun } from '@cream/report';
import { readSpanRecords } from '@cream/telemetry';
import { methodName } from './spec';

const PREFIX_RUN_STATE = 'RUN_STATE_';
const PREFIX_STAGE_STATE = 'STAGE_STATE_';

/** The ReportRun (results.json) of a run view. */
export function toReportRun(run: Run, backend: string, finishedAt: Date | undefined): ReportRun {
  const spec = run.spec!;
  return {
    runId: run.runId,
    name: spec.name,
    method: methodName(spec.method),
    seed: spec.seed,
    state: runStateToJSON(run.state).replace(PREFIX_RUN_STATE, ''),
    createdAt: (run.createdAt ?? new Date(0)).toISOString(),
    ...(finishedAt === undefined || run.state === RunState.RUN_STATE_RUNNING ? {} : { finishedAt: finishedAt.toISOString() }),
    backend,
    spec: RunSpec.toJSON(spec) as Record<string, unknown>,
    stages: run.stages.map((stage) => {
      const durationMs = stage.startedAt && stage.finishedAt ? stage.finishedAt.getTime() - stage.startedAt.getTime() : undefined;
      return {
        name: stage.name,
        iteration: stage.iteration,
        state: stageStateToJSON(stage.state).replace(PREFIX_STAGE_STATE, ''),
        ...(stage.startedAt ? { startedAt: stage.startedAt.toISOString() } : {}),
        ...(stage.finishedAt ? { finishedAt: stage.finishedAt.toISOString() } : {}),
        ...(durationMs === undefined || stage.state === StageState.STAGE_STATE_RUNNING ? {} : { durationMs }),
        metrics: { ...stage.metrics },
        ...(stage.error ? { error: stage.error } : {}),
      };
    }),
    results: run.results.map((result) => ({
      model: result.model,
      version: result.version,
      accuracy: result.accuracy.map((entry) => ({ task: entry.task, accuracy: entry.accuracy, numItems: entry.numItems })),
      meanAccuracy: result.meanAccuracy,
      ...(result.consistencyRate === undefined ? {} : { consistencyRate: result.consistencyRate }),
      ...(result.rewardMargin === undefined ? {} : { rewardMargin: result.rewardMargin }),
      pairsUsed: result.pairsUsed,
    })),
  };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, text);
  await rename(temp, path);
}

/** The spans of `runId` in a trace file: every span of a trace holding a span with cream.run_id = runId. */
export function runSpans(traceFile: string, runId: string): string {
  if (!existsSync(traceFile)) return '';
  const spans = readSpanRecords(traceFile);
  const traces = new Set(spans.filter((span) => span.attributes['cream.run_id'] === runId).map((span) => span.traceId));
  return spans
    .filter((span) => traces.has(span.traceId))
    .map((span) => `${JSON.stringify(span)}\n`)
    .join('');
}

/** Writes results.json, report.html and (when there is a trace file) trace.jsonl into the run folder. */
export async function writeRunOutputs(runDir: string, report: ReportRun, traceFile: string | undefined): Promise<void> {
  await writeAtomically(join(runDir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeAtomically(join(runDir, 'report.html'), renderRunReport(report));
  if (traceFile !== undefined) await writeAtomically(join(runDir, 'trace.jsonl'), runSpans(traceFile, report.runId));
}
