// One attempt at a run: from its first unfinished stage to the end (or to a
// failure, a cancellation or a shutdown). Stored stages are RESTORED (an
// event and their stored state, never recomputed); every other stage runs
// inside a span `stage <name>`, and its output is committed to the run store
// before the next stage starts. At the end the run's state, results.json,
// report.html and trace.jsonl are written, then the run_finished event.
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { GeneratorServiceClient, JudgeServiceClient, GetModelResponse, ModelResult, RunSpec, Stage } from '@cream/proto';
import { ModelResult as ModelResultMessage, Run, Stage as StageMessage, StageProgress, StageState } from '@cream/proto';
import type { Logger } from '@cream/service-kit';
import type { ModelRegistry, RunHandle } from '@cream/store';
import { stageSpan, withSpan } from '@cream/telemetry';
import { buildRunView, EVENT, STATE } from './events';
import { planAttempt, planStages, type PlannedStage } from './plan';
import { ReplicaSet } from './replicas';
import { writeRunOutputs, toReportRun } from './results';
import { generatorClient, judgeClient, scorerClient, trainerClient, unary } from './rpc';
import { resolveEndpoints, type EndpointDefaults } from './spec';
import { executeStage, modelVersion, type ConsistencySummary, type EvalSummary, type StageContext, type StageOutput, type TrainSummary } from './stages';

/** What every attempt needs from the coordinator. */
export interface AttemptDeps {
  registry: ModelRegistry;
  endpoints: EndpointDefaults;
  logger: Logger;
  /** The coordinator's trace file, copied per run into trace.jsonl (none with OTLP export). */
  traceFile?: string;
  /** Flushes finished spans to the trace file. */
  flushSpans?: () => Promise<void>;
}

/** The data.json of a stored stage. */
interface StoredStageData {
  summary: unknown;
  metrics: Record<string, number>;
  startedAt: string;
  finishedAt: string;
}

const ITEMS_FILE = 'items.jsonl';

/** Why an attempt was stopped from outside. */
export type StopReason = 'cancel' | 'shutdown';

/** A running attempt; `done` settles after the run_finished event. */
export class RunAttempt {
  private readonly controller = new AbortController();
  private stopReason: StopReason | undefined;
  private appending: Promise<void> = Promise.resolve();
  private readonly outputs = new Map<string, Promise<StageOutput>>();
  /** Settles when the attempt has ended and every output is written. */
  readonly done: Promise<void>;

  constructor(
    private readonly run: RunHandle,
    private readonly spec: RunSpec,
    private readonly deps: AttemptDeps,
    /** Called after each event is appended (WatchRun wakes up). */
    private readonly onEvent: () => void,
  ) {
    this.done = this.execute().catch((error: unknown) => deps.logger.error('attempt ended abnormally', { run: run.runId, error }));
  }

  /** Stops the attempt: 'cancel' ends the run CANCELLED, 'shutdown' INTERRUPTED (resumed at the next start). */
  stop(reason: StopReason): void {
    if (this.stopReason !== undefined) return;
    this.stopReason = reason;
    this.controller.abort(new Error(reason === 'cancel' ? 'the run was cancelled' : 'the coordinator is shutting down'));
  }

  private append(type: string, payload: unknown, sync = true): Promise<void> {
    this.appending = this.appending
      .then(() => this.run.appendEvent(type, payload, { sync }))
      .then(this.onEvent, (error: unknown) => this.deps.logger.warn('could not append a run event', { run: this.run.runId, type, error }));
    return this.appending;
  }

  private async readOutput(name: string): Promise<StageOutput> {
    const stored = await this.run.readStage<StoredStageData>(name);
    const items: unknown[] = [];
    if (stored.manifest.files.some((file) => file.path === ITEMS_FILE)) for await (const item of stored.readJsonl(ITEMS_FILE)) items.push(item);
    return { summary: stored.data.summary, metrics: stored.data.metrics, items };
  }

  private output<S, I>(name: string): Promise<StageOutput<S, I>> {
    let pending = this.outputs.get(name);
    if (pending === undefined) {
      pending = this.readOutput(name);
      this.outputs.set(name, pending);
    }
    return pending as Promise<StageOutput<S, I>>;
  }

  private async execute(): Promise<void> {
    const { events } = await this.run.readEvents();
    const attempt = events.filter((event) => event.type === EVENT.attemptStarted).length + 1;
    await this.run.updateRunState(STATE.running, { error: null });
    await this.append(EVENT.attemptStarted, { attempt });
    let state: string = STATE.succeeded;
    let error: string | null = null;
    let backend = 'unknown';
    // A root span per attempt: not a child of the StartRun or ResumeRun call that began it.
    await context.with(ROOT_CONTEXT, () => withSpan('run', { 'cream.run_id': this.run.runId, 'cream.attempt': attempt }, async () => {
      try {
        backend = await this.runStages((found) => (backend = found));
      } catch (failure) {
        const message = failure instanceof Error ? failure.message : String(failure);
        if (this.stopReason === 'cancel') state = STATE.cancelled;
        else if (this.stopReason === 'shutdown') state = STATE.interrupted;
        else {
          state = STATE.failed;
          error = message;
        }
        this.deps.logger.warn('run attempt stopped', { run: this.run.runId, state, error: message });
      }
    }));
    await this.run.updateRunState(state, { error });
    await this.finish(backend);
  }

  /** Runs or restores every stage; returns the model services' compute backend. */
  private async runStages(onBackend: (backend: string) => void): Promise<string> {
    const signal = this.controller.signal;
    const endpoints = resolveEndpoints(this.spec.endpoints, this.deps.endpoints);
    const generators = new ReplicaSet<GeneratorServiceClient>({ service: 'generator', targets: endpoints.generators, connect: generatorClient, close: (c) => c.close() });
    const judges = new ReplicaSet<JudgeServiceClient>({ service: 'judge', targets: endpoints.judges, connect: judgeClient, close: (c) => c.close() });
    const scorer = scorerClient(endpoints.consistencyScorer);
    const trainer = trainerClient(endpoints.trainer);
    let backend = 'unknown';
    try {
      const states = await generators.broadcast((client) => unary<GetModelResponse>((callback) => client.getModel({}, callback), signal)).catch(() => new Map<string, GetModelResponse>());
      backend = [...states.values()][0]?.compute?.variant || 'unknown';
      onBackend(backend);
      const ctx: StageContext = {
        runId: this.run.runId,
        spec: this.spec,
        registry: this.deps.registry,
        generators,
        judges,
        scorer,
        trainer,
        signal,
        output: (name) => this.output(name),
        progress: (stage, done, total, unit) => void this.append(EVENT.progress, StageProgress.toJSON({ stage, done, total, unit }), false),
      };
      const stored = new Set((await this.run.listStages()).map((manifest) => manifest.stage));
      for (const { stage, action } of planAttempt(planStages(this.spec), stored)) {
        if (signal.aborted) throw signal.reason;
        if (action === 'restore') await this.restoreStage(stage);
        else await this.runStage(ctx, stage);
        await this.emitResults(ctx, stage);
      }
      return backend;
    } finally {
      generators.close();
      judges.close();
      scorer.close();
      trainer.close();
    }
  }

  private stageMessage(stage: PlannedStage, state: StageState, fields: Partial<Stage>): Stage {
    return { name: stage.name, iteration: stage.iteration, state, startedAt: undefined, finishedAt: undefined, metrics: {}, error: '', ...fields };
  }

  private async restoreStage(stage: PlannedStage): Promise<void> {
    const stored = await this.run.readStage<StoredStageData>(stage.name);
    const data = stored.data;
    await this.append(
      EVENT.stageFinished,
      StageMessage.toJSON(this.stageMessage(stage, StageState.STAGE_STATE_RESTORED, { startedAt: new Date(data.startedAt), finishedAt: new Date(data.finishedAt), metrics: data.metrics })),
    );
  }

  private async runStage(ctx: StageContext, stage: PlannedStage): Promise<void> {
    const startedAt = new Date();
    await this.append(EVENT.stageStarted, StageMessage.toJSON(this.stageMessage(stage, StageState.STAGE_STATE_RUNNING, { startedAt })));
    let output: StageOutput;
    try {
      output = await stageSpan(stage.name, { 'cream.run_id': this.run.runId, 'cream.iteration': stage.iteration }, () => executeStage(ctx, stage));
      const finishedAt = new Date();
      const data: StoredStageData = { summary: output.summary, metrics: output.metrics, startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString() };
      await this.run.writeStage(stage.name, data, output.items.length > 0 ? { jsonl: { [ITEMS_FILE]: output.items } } : {});
      this.outputs.set(stage.name, Promise.resolve(output));
      await this.append(EVENT.stageFinished, StageMessage.toJSON(this.stageMessage(stage, StageState.STAGE_STATE_DONE, { startedAt, finishedAt, metrics: output.metrics })));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await this.append(EVENT.stageFinished, StageMessage.toJSON(this.stageMessage(stage, StageState.STAGE_STATE_FAILED, { startedAt, finishedAt: new Date(), error: message })));
      throw error;
    }
  }

  /** After the stage that completes model M_k's row (its evaluation, or its training when not evaluating), emits M_k's result. */
  private async emitResults(ctx: StageContext, stage: PlannedStage): Promise<void> {
    let k: number | undefined;
    if (this.spec.evaluate) {
      if (stage.kind === 'eval') k = stage.model;
    } else if (stage.kind === 'data') k = 0;
    else if (stage.kind === 'sft' || stage.kind === 'train') k = stage.model;
    if (k === undefined) return;
    await this.append(EVENT.result, ModelResultMessage.toJSON(await modelResult(ctx, k, this.spec.evaluate)));
  }

  private async finish(backend: string): Promise<void> {
    await this.appending;
    const record = await this.run.info();
    const { events } = await this.run.readEvents();
    const view = buildRunView(record, events, this.run.directory, false);
    try {
      await this.deps.flushSpans?.();
      await writeRunOutputs(this.run.directory, toReportRun(view, backend, new Date(record.updatedAt)), this.deps.traceFile);
    } catch (error) {
      this.deps.logger.error('could not write the run outputs', { run: this.run.runId, error });
    }
    await this.append(EVENT.runFinished, Run.toJSON(view));
  }
}

/** The result row of M_k from the stored stages: accuracy, and for k >= 2 the consistency, margin and pairs of iteration k - 1. */
export async function modelResult(ctx: Pick<StageContext, 'output' | 'spec'>, k: number, evaluate: boolean): Promise<ModelResult> {
  const version = await modelVersion(ctx as StageContext, k);
  const result: ModelResult = { model: `M${k}`, version, accuracy: [], meanAccuracy: 0, pairsUsed: 0 };
  if (evaluate) {
    const evaluation = (await ctx.output<EvalSummary>(`eval/m${k}`)).summary;
    result.accuracy = evaluation.tasks.map((task) => ({ task: task.task, accuracy: task.accuracy, numItems: task.numItems }));
    result.meanAccuracy = evaluation.meanAccuracy;
  }
  if (k >= 2) {
    const consistency = (await ctx.output<ConsistencySummary>(`iter-${k - 1}/consistency`)).summary;
    const train = (await ctx.output<TrainSummary>(`iter-${k - 1}/train`)).summary;
    result.consistencyRate = consistency.consistencyRate;
    result.rewardMargin = consistency.rewardMargin;
    result.pairsUsed = train.pairs;
  }
  return result;
}
