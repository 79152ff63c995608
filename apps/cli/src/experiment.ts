// What `cream run` and `cream compare` share: the base model in the registry,
// every service as its own process on loopback around one CREAM_HOME (one
// registry, one run store, one trace file), the coordinator client, following
// a run to its end, and reading its results.json.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { CoordinatorServiceClient, ServingStatus, type Run, type WatchRunResponse } from '@cream/proto';
import type { ReportRun } from '@cream/report';
import { creamHome, defaultRegistryRoot, ModelRegistry } from '@cream/store';
import { ConfigError, option } from '@cream/service-kit';
import { logTail, serviceAddress, startServices, stopServices, waitHealthy, type StartedService } from './local-services';
import { serviceMainPath, services, type ServiceEntry } from './services';

/** The shipped base model, imported as version `m0` when the registry lacks it. */
export const SHIPPED_M0 = resolve(__dirname, '..', '..', '..', 'models', 'm0');

/** Options of the local services, shared by `cream run` and `cream compare`. */
export const serviceOptions = {
  portOffset: option.int({ flag: 'port-offset', env: 'CREAM_PORT_OFFSET', description: 'added to every default port (50051..50055)', default: 0, min: -50000, max: 15000 }),
  timeoutSeconds: option.number({ flag: 'timeout-seconds', description: 'how long to wait for every service to answer health checks', default: 180, min: 1, max: 3600 }),
};

/** Run states as names (results.json spells them so). */
export const RUN_STATES: Record<number, string> = { 0: 'UNSPECIFIED', 1: 'RUNNING', 2: 'SUCCEEDED', 3: 'FAILED', 4: 'CANCELLED', 5: 'INTERRUPTED' };

/**
 * Makes sure the base version is in the registry: `m0` is imported from the
 * shipped models/m0 when missing; any other version must already be there.
 */
export async function ensureBaseModel(env: Record<string, string | undefined>, version: string, log: (line: string) => void): Promise<void> {
  const registry = await ModelRegistry.open(defaultRegistryRoot(env));
  if (await registry.has(version)) return;
  if (version !== 'm0') {
    throw new ConfigError(`--base: version "${version}" is not in the registry ${registry.root} (import it with \`cream models import DIR --version ${version}\`)`, '--base');
  }
  if (!existsSync(join(SHIPPED_M0, 'config.json'))) throw new ConfigError(`--base: the registry ${registry.root} has no m0 and the shipped base model ${SHIPPED_M0} is missing`, '--base');
  const record = await registry.importDirectory(SHIPPED_M0, { version: 'm0', recipe: { method: 'import', source: SHIPPED_M0 } });
  log(`imported the shipped base model ${SHIPPED_M0} as version ${record.version} into ${registry.root}`);
}

/** Every service running for an experiment, and the coordinator client. */
export interface LocalStack {
  /** The processes. */
  started: StartedService[];
  /** The coordinator client. */
  coordinator: CoordinatorServiceClient;
  /** CREAM_HOME of every service. */
  home: string;
  /** Where the services log. */
  logDir: string;
  /** Stops every service (SIGTERM, the coordinator first so it records its run as interrupted). */
  stop(): Promise<void>;
}

/**
 * Starts the five services on loopback (ports 50051..50055 + offset), all
 * sharing CREAM_HOME, the coordinator pointed at the other four; waits until
 * each answers health and the coordinator is SERVING.
 */
export async function startStack(env: Record<string, string | undefined>, portOffset: number, timeoutSeconds: number): Promise<LocalStack> {
  const missing = services.filter((s) => serviceMainPath(s) === undefined).map((s) => s.name);
  if (missing.length > 0) throw new Error(`this build lacks the ${missing.join(', ')} service (package not installed)`);
  const home = creamHome(env);
  const logDir = join(home, 'logs');
  const host = '127.0.0.1';
  const address = (name: string) => serviceAddress(services.find((s) => s.name === name)!, { host, portOffset });
  const coordinatorEnv: Record<string, string> = {
    CREAM_GENERATOR_ENDPOINTS: address('generator'),
    CREAM_JUDGE_ENDPOINTS: address('judge'),
    CREAM_CONSISTENCY_SCORER_ENDPOINT: address('consistency-scorer'),
    CREAM_TRAINER_ENDPOINT: address('trainer'),
    // This command resumes runs itself (--resume); an auto-resumed old run would compete for the services.
    CREAM_RESUME_INTERRUPTED: 'false',
  };
  const started = startServices(services, {
    host,
    portOffset,
    logDir,
    env: { ...env, CREAM_HOME: home },
    envOf: (entry: ServiceEntry) => (entry.name === 'coordinator' ? coordinatorEnv : {}),
  });
  const stop = async () => {
    const coordinator = started.filter((s) => s.entry.name === 'coordinator');
    await stopServices(coordinator);
    await stopServices(started);
  };
  try {
    const answerBy = Date.now() + timeoutSeconds * 1000;
    // Model services stay NOT_SERVING until the coordinator loads a model; the coordinator must be SERVING.
    const statuses = await Promise.all(started.map((s) => waitHealthy(s, answerBy, s.entry.name === 'coordinator' ? answerBy : Date.now())));
    const index = started.findIndex((s) => s.entry.name === 'coordinator');
    if (statuses[index] !== ServingStatus.SERVING) {
      throw new Error(`the coordinator at ${started[index].address} is not SERVING; its log (${started[index].logPath}) ends:\n${logTail(started[index])}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const coordinator = new CoordinatorServiceClient(address('coordinator'), credentials.createInsecure());
  return {
    started,
    coordinator,
    home,
    logDir,
    stop: async () => {
      coordinator.close();
      await stop();
    },
  };
}

/** A unary gRPC call as a promise: `unary<R>((done) => client.method(request, done))`. */
export function unary<Response>(invoke: (done: (error: ServiceError | null, response: Response) => void) => unknown): Promise<Response> {
  return new Promise((resolvePromise, reject) => invoke((error, response) => (error ? reject(error) : resolvePromise(response))));
}

/** Follows WatchRun until the run ends; resolves with the final run. A dropped stream rejects. */
export function followRun(client: CoordinatorServiceClient, runId: string, onEvent: (event: WatchRunResponse) => void): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const stream = client.watchRun({ runId });
    let finished: Run | undefined;
    stream.on('data', (event: WatchRunResponse) => {
      onEvent(event);
      if (event.event?.$case === 'runFinished') finished = event.event.value;
    });
    stream.on('error', (error: ServiceError) => {
      if (finished) resolvePromise(finished);
      else reject(error);
    });
    stream.on('end', () => {
      if (finished) resolvePromise(finished);
      else reject(new Error(`the coordinator ended the watch of run ${runId} before the run finished`));
    });
  });
}

function iso(date: Date | undefined): string | undefined {
  return date ? date.toISOString() : undefined;
}

/** The run as a ReportRun, from the coordinator's message (when results.json is not there). */
export function reportFromRun(run: Run, methodName: string): ReportRun {
  const stageState: Record<number, string> = { 1: 'PENDING', 2: 'RUNNING', 3: 'DONE', 4: 'FAILED', 5: 'RESTORED' };
  return {
    runId: run.runId,
    name: run.spec?.name ?? '',
    method: methodName as ReportRun['method'],
    seed: Number(run.spec?.seed ?? 0),
    state: RUN_STATES[run.state] ?? String(run.state),
    createdAt: iso(run.createdAt) ?? '',
    backend: 'unknown',
    spec: {},
    stages: run.stages.map((s) => ({
      name: s.name,
      iteration: s.iteration,
      state: stageState[s.state] ?? String(s.state),
      startedAt: iso(s.startedAt),
      finishedAt: iso(s.finishedAt),
      durationMs: s.startedAt && s.finishedAt ? s.finishedAt.getTime() - s.startedAt.getTime() : undefined,
      metrics: s.metrics,
      error: s.error || undefined,
    })),
    results: run.results.map((r) => ({
      model: r.model,
      version: r.version,
      accuracy: r.accuracy.map((a) => ({ task: a.task, accuracy: a.accuracy, numItems: a.numItems })),
      meanAccuracy: r.meanAccuracy,
      consistencyRate: r.consistencyRate,
      rewardMargin: r.rewardMargin,
      pairsUsed: r.pairsUsed,
    })),
  };
}

/** The files of a run folder. */
export function runFiles(run: Run): { results: string; report: string; trace: string } {
  return { results: join(run.runDir, 'results.json'), report: join(run.runDir, 'report.html'), trace: join(run.runDir, 'trace.jsonl') };
}

/** The run's results.json, or (when the coordinator wrote none) the same built from the run message. */
export function readReport(run: Run, methodName: string): { report: ReportRun; fromFile: boolean } {
  const { results } = runFiles(run);
  if (run.runDir && existsSync(results)) return { report: JSON.parse(readFileSync(results, 'utf8')) as ReportRun, fromFile: true };
  return { report: reportFromRun(run, methodName), fromFile: false };
}
