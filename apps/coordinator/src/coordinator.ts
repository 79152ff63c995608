// The CoordinatorService calls over the run store: StartRun validates the
// spec (structure, registry, data files, endpoints) before creating the run,
// then starts an attempt; WatchRun replays the run's events and follows the
// live ones until the run ends; GetRun and ListRuns read run.json and the
// events; CancelRun stops an attempt (finished stages stay stored);
// ResumeRun starts a new attempt. At start, runs a killed coordinator left
// RUNNING become INTERRUPTED, and are resumed when asked.
import type { Logger } from '@cream/service-kit';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type StreamContext } from '@cream/service-kit';
import {
  RunSpec,
  RunState,
  type CancelRunRequest,
  type CancelRunResponse,
  type GetRunRequest,
  type GetRunResponse,
  type ListRunsRequest,
  type ListRunsResponse,
  type ResumeRunRequest,
  type ResumeRunResponse,
  type Run,
  type StartRunRequest,
  type StartRunResponse,
  type WatchRunRequest,
  type WatchRunResponse,
} from '@cream/proto';
import { isRunNotFoundError, type ModelRegistry, type RunHandle, type RunStore } from '@cream/store';
import { RunAttempt, type AttemptDeps } from './attempt';
import { loadRunData } from './data';
import { buildRunView, EVENT, runStateOf, STATE, toWatchResponse } from './events';
import { probe } from './rpc';
import { resolveEndpoints, resolveSpec } from './spec';

/** What the coordinator is built from. */
export interface CoordinatorOptions extends AttemptDeps {
  store: RunStore;
  /** Deadline of the endpoint health probes at StartRun. */
  probeDeadlineMs: number;
}

/** How often WatchRun re-reads the events when no attempt of this process wakes it. */
const WATCH_POLL_MS = 1000;

/** Runs experiments and answers the CoordinatorService calls. */
export class Coordinator {
  private readonly active = new Map<string, RunAttempt>();
  private readonly resuming = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly store: RunStore;
  private readonly registry: ModelRegistry;
  private readonly logger: Logger;

  constructor(private readonly options: CoordinatorOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.logger = options.logger;
  }

  /** Checks what needs the registry, the files and the network; INVALID_ARGUMENT names the field. */
  async checkResources(spec: RunSpec): Promise<void> {
    if (!(await this.registry.has(spec.baseVersion))) {
      throw new InvalidArgumentError(`spec.base_version: version "${spec.baseVersion}" is not in the registry at ${this.registry.root}`, 'spec.base_version');
    }
    await loadRunData(spec.data!, spec.iterations);
    const endpoints = resolveEndpoints(spec.endpoints, this.options.endpoints);
    const given = spec.endpoints;
    const checks: { field: string; address: string; configured: boolean }[] = [
      ...endpoints.generators.map((address, i) => ({ field: `spec.endpoints.generators[${i}]`, address, configured: !given?.generators.length })),
      ...endpoints.judges.map((address, i) => ({ field: `spec.endpoints.judges[${i}]`, address, configured: !given?.judges.length })),
      { field: 'spec.endpoints.consistency_scorer', address: endpoints.consistencyScorer, configured: !given?.consistencyScorer },
      { field: 'spec.endpoints.trainer', address: endpoints.trainer, configured: !given?.trainer },
    ];
    await Promise.all(
      checks.map(async ({ field, address, configured }) => {
        try {
          await probe(address, this.options.probeDeadlineMs);
        } catch (error) {
          const source = configured ? " (the coordinator's configured endpoint)" : '';
          throw new InvalidArgumentError(`${field}: ${address}${source} is unreachable: ${(error as Error).message}`, field);
        }
      }),
    );
  }

  /** StartRun: validation before any work, then the run and its first attempt. */
  async startRun(request: StartRunRequest): Promise<StartRunResponse> {
    const spec = resolveSpec(request.spec);
    await this.checkResources(spec);
    const run = await this.store.createRun(RunSpec.toJSON(spec), { state: STATE.running });
    this.logger.info('run started', { run: run.runId, method: spec.method, iterations: spec.iterations });
    this.launch(run, spec);
    return { run: await this.view(run.runId) };
  }

  private launch(run: RunHandle, spec: RunSpec): void {
    const attempt = new RunAttempt(run, spec, this.options, () => this.notify(run.runId));
    this.active.set(run.runId, attempt);
    void attempt.done.finally(() => {
      if (this.active.get(run.runId) === attempt) this.active.delete(run.runId);
      this.notify(run.runId);
    });
  }

  private notify(runId: string): void {
    for (const wake of this.waiters.get(runId) ?? []) wake();
  }

  private async open(runId: string): Promise<RunHandle> {
    if (runId === '') throw new InvalidArgumentError('run_id: required', 'run_id');
    try {
      return await this.store.openRun(runId);
    } catch (error) {
      if (isRunNotFoundError(error)) throw new NotFoundError(`no run "${runId}"`, 'run', { cause: error });
      throw error;
    }
  }

  /** The run as GetRun shows it. */
  async view(runId: string): Promise<Run> {
    const run = await this.open(runId);
    const [record, { events }] = await Promise.all([run.info(), run.readEvents()]);
    return buildRunView(record, events, run.directory, this.active.has(runId));
  }

  /** GetRun. */
  async getRun(request: GetRunRequest): Promise<GetRunResponse> {
    return { run: await this.view(request.runId) };
  }

  /** ListRuns: newest first, without stages and results. */
  async listRuns(request: ListRunsRequest): Promise<ListRunsResponse> {
    const page = await this.store.listRuns({ pageSize: request.pageSize, pageToken: request.pageToken });
    return {
      runs: page.runs.map((record) => ({
        runId: record.runId,
        spec: RunSpec.fromJSON(record.spec),
        state: runStateOf(record.state),
        stages: [],
        results: [],
        createdAt: new Date(record.createdAt),
        runDir: `${this.store.runsDirectory}/${record.runId}`,
        error: record.error ?? '',
      })),
      nextPageToken: page.nextPageToken,
    };
  }

  /** WatchRun: the stored events, then live ones, ending with run_finished (the run's final view). */
  async watchRun(request: WatchRunRequest, ctx: StreamContext<WatchRunResponse>): Promise<void> {
    const run = await this.open(request.runId);
    let cursor = { offset: 0, index: 0 };
    let wake: () => void = () => undefined;
    const waiters = this.waiters.get(run.runId) ?? new Set<() => void>();
    this.waiters.set(run.runId, waiters);
    const waiter = () => wake();
    waiters.add(waiter);
    try {
      let finishedAt: Date | undefined;
      while (!ctx.signal.aborted) {
        const active = this.active.has(run.runId);
        const read = await run.readEvents(cursor);
        cursor = read.cursor;
        for (const event of read.events) {
          // A run_finished followed by more events belongs to an earlier attempt; the last one is sent at the end.
          if (event.type === EVENT.runFinished) {
            finishedAt = new Date(event.time);
            continue;
          }
          finishedAt = undefined;
          const message = toWatchResponse(event);
          if (message) await ctx.write(message);
        }
        if (!active) {
          const record = await run.info();
          const { events } = await run.readEvents();
          await ctx.write({ time: finishedAt ?? new Date(), event: { $case: 'runFinished', value: buildRunView(record, events, run.directory, false) } });
          return;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, WATCH_POLL_MS);
          const done = () => {
            clearTimeout(timer);
            ctx.signal.removeEventListener('abort', done);
            resolve();
          };
          wake = done;
          ctx.signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      waiters.delete(waiter);
      if (waiters.size === 0) this.waiters.delete(run.runId);
    }
  }

  /** CancelRun: stops the running attempt (finished stages stay stored); an interrupted run becomes CANCELLED. */
  async cancelRun(request: CancelRunRequest): Promise<CancelRunResponse> {
    const run = await this.open(request.runId);
    const attempt = this.active.get(run.runId);
    if (attempt !== undefined) {
      attempt.stop('cancel');
      await attempt.done;
      return { run: await this.view(run.runId) };
    }
    const record = await run.info();
    if (record.state === STATE.interrupted) await run.updateRunState(STATE.cancelled);
    else if (record.state !== STATE.cancelled) throw new FailedPreconditionError(`run ${run.runId} is not running (it is ${record.state})`);
    return { run: await this.view(run.runId) };
  }

  /** ResumeRun: a new attempt from the first unfinished stage; FAILED_PRECONDITION when running or succeeded. */
  async resumeRun(request: ResumeRunRequest): Promise<ResumeRunResponse> {
    const run = await this.open(request.runId);
    // Claimed synchronously, so two concurrent calls cannot both start an attempt.
    if (this.active.has(run.runId) || this.resuming.has(run.runId)) throw new FailedPreconditionError(`run ${run.runId} is running`);
    this.resuming.add(run.runId);
    try {
      const record = await run.info();
      if (runStateOf(record.state) === RunState.RUN_STATE_SUCCEEDED) throw new FailedPreconditionError(`run ${run.runId} has already succeeded`);
      this.logger.info('run resumed', { run: run.runId, from: record.state });
      await run.updateRunState(STATE.running, { error: null });
      this.launch(run, RunSpec.fromJSON(record.spec));
    } finally {
      this.resuming.delete(run.runId);
    }
    return { run: await this.view(run.runId) };
  }

  /**
   * At start: every run left RUNNING (by a coordinator that was killed)
   * becomes INTERRUPTED; when `resume` is set, those and the runs a stopped
   * coordinator marked INTERRUPTED are resumed. Returns the ids found.
   */
  async recoverInterrupted(resume: boolean): Promise<string[]> {
    const found: string[] = [];
    let pageToken = '';
    do {
      const page = await this.store.listRuns({ pageSize: 1000, pageToken });
      for (const record of page.runs) {
        if ((record.state === STATE.running || record.state === STATE.interrupted) && !this.active.has(record.runId)) found.push(record.runId);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    for (const runId of found) {
      const run = await this.store.openRun(runId);
      if ((await run.info()).state === STATE.running) await run.updateRunState(STATE.interrupted);
      this.logger.warn('run interrupted by a stopped coordinator', { run: runId, resume });
      if (resume) await this.resumeRun({ runId });
    }
    return found;
  }

  /** Stops every attempt as INTERRUPTED (resumed by the next coordinator) and waits for them to write their state. */
  async shutdown(): Promise<void> {
    const attempts = [...this.active.values()];
    for (const attempt of attempts) attempt.stop('shutdown');
    await Promise.all(attempts.map((attempt) => attempt.done));
  }
}
