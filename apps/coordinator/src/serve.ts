// The coordinator's program: options (endpoints of the other services, the
// registry, the run store), the six CoordinatorService calls, and the
// mapping of the store's errors to status codes. Health: NOT_SERVING until
// the registry and the run store are open and the runs a killed coordinator
// left RUNNING are marked INTERRUPTED (and resumed, by default), then SERVING.
// SIGTERM stops every attempt as INTERRUPTED, so the next start resumes it.
import { dirname } from 'node:path';
import { CoordinatorServiceService } from '@cream/proto';
import {
  GrpcStatus,
  mapErrorClass,
  option,
  UnavailableError,
  serveUntilStopped,
  type ServiceProgram,
  type ServiceTelemetry,
} from '@cream/service-kit';
import { creamHome, defaultRegistryRoot, InvalidInputError, ModelRegistry, RunCorruptError, RunNotFoundError, RunStore, StageCorruptError } from '@cream/store';
import { Coordinator } from './coordinator';
import { splitEndpoints } from './spec';

/** Default port of the coordinator. */
export const defaultPort = 50055;

/** The coordinator's own options; defaults follow CREAM_HOME. */
export function coordinatorOptions(env: Record<string, string | undefined>) {
  return {
    generators: option.string({ flag: 'generators', env: 'CREAM_GENERATOR_ENDPOINTS', description: 'generator replicas, comma-separated host:port or dns:///name:port (runs whose spec names none)', default: '127.0.0.1:50051', nonEmpty: true }),
    judges: option.string({ flag: 'judges', env: 'CREAM_JUDGE_ENDPOINTS', description: 'judge replicas, comma-separated host:port or dns:///name:port', default: '127.0.0.1:50052', nonEmpty: true }),
    consistencyScorer: option.string({ flag: 'consistency-scorer', env: 'CREAM_CONSISTENCY_SCORER_ENDPOINT', description: 'the consistency scorer, host:port', default: '127.0.0.1:50053', nonEmpty: true }),
    trainer: option.string({ flag: 'trainer', env: 'CREAM_TRAINER_ENDPOINT', description: 'the trainer, host:port', default: '127.0.0.1:50054', nonEmpty: true }),
    registry: option.string({ flag: 'registry', env: 'CREAM_REGISTRY', description: 'model registry folder (default <CREAM_HOME or ./.cream>/registry)', default: defaultRegistryRoot(env), nonEmpty: true }),
    runs: option.string({
      flag: 'runs',
      env: 'CREAM_RUNS',
      description: 'folder of the run folders (default <CREAM_HOME or ./.cream>/runs); its parent is the run store root',
      default: `${creamHome(env)}/runs`,
      nonEmpty: true,
    }),
    resumeInterrupted: option.bool({ flag: 'resume-interrupted', env: 'CREAM_RESUME_INTERRUPTED', description: 'at start, resume the runs a stopped coordinator left unfinished', default: true }),
    probeDeadlineMs: option.int({ flag: 'probe-deadline-ms', env: 'CREAM_PROBE_DEADLINE_MS', description: 'deadline of the endpoint health checks of StartRun', default: 3000, min: 100, max: 60_000 }),
  };
}

/** The run store root of a runs folder: RunStore keeps runs in `<root>/runs`. */
export function runStoreRoot(runs: string): string {
  return dirname(runs.replace(/\/+$/, ''));
}

/** The telemetry handle main passes: flush and the trace file when the SDK runs with the JSONL exporter. */
type CoordinatorTelemetry = ServiceTelemetry & { flush?: () => Promise<void>; traceFile?: string; exporterKind?: string };

/** The service program runService runs, for this environment. */
export function coordinatorProgram(
  env: Record<string, string | undefined>,
  telemetry: CoordinatorTelemetry = { warnings: [], shutdown: async () => {} },
  started: { coordinator?: Coordinator } = {},
): ServiceProgram<ReturnType<typeof coordinatorOptions>> {
  return {
    name: 'coordinator',
    summary:
      'Runs whole CREAM experiments (SFT M0 -> M1, then each iteration: sample, log-probs, consistency, pairs, DPO, evaluation) across the ' +
      'generator, judge, consistency scorer and trainer, storing every stage in the run store before the next starts; a stopped run ' +
      'resumes from its first unfinished stage. SERVING once the registry and the run store are open.',
    defaultPort,
    options: coordinatorOptions(env),
    setup(server, config, logger) {
      server.mapErrors(
        mapErrorClass(RunNotFoundError, GrpcStatus.NOT_FOUND),
        mapErrorClass(InvalidInputError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(RunCorruptError, GrpcStatus.DATA_LOSS),
        mapErrorClass(StageCorruptError, GrpcStatus.DATA_LOSS),
      );
      const ready = (async () => {
        if (config.runs.replace(/\/+$/, '').split('/').pop() !== 'runs') {
          throw new Error(`--runs ${config.runs}: the folder must be named "runs" (the run store keeps runs in <root>/runs)`);
        }
        const registry = await ModelRegistry.open(config.registry);
        const store = await RunStore.open(runStoreRoot(config.runs));
        const created = new Coordinator({
          store,
          registry,
          logger,
          probeDeadlineMs: config.probeDeadlineMs,
          endpoints: {
            generators: splitEndpoints(config.generators),
            judges: splitEndpoints(config.judges),
            consistencyScorer: config.consistencyScorer,
            trainer: config.trainer,
          },
          ...(telemetry.exporterKind !== 'otlp' && telemetry.traceFile ? { traceFile: telemetry.traceFile } : {}),
          ...(telemetry.flush ? { flushSpans: telemetry.flush } : {}),
        });
        logger.info('run store open', { runs: store.runsDirectory, registry: registry.root });
        const recovered = await created.recoverInterrupted(config.resumeInterrupted);
        if (recovered.length > 0) logger.info('interrupted runs found', { runs: recovered, resumed: config.resumeInterrupted });
        started.coordinator = created;
        const stop = () => void created.shutdown();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      })();
      const service = (): Coordinator => {
        if (!started.coordinator) throw new UnavailableError('the coordinator is starting (registry and run store not open yet); retry');
        return started.coordinator;
      };
      server.add('cream.v1.CoordinatorService', CoordinatorServiceService, {
        startRun: (request) => service().startRun(request),
        watchRun: (request, ctx) => service().watchRun(request, ctx),
        getRun: (request) => service().getRun(request),
        listRuns: (request) => service().listRuns(request),
        cancelRun: (request) => service().cancelRun(request),
        resumeRun: (request) => service().resumeRun(request),
      });
      return { ready };
    },
  };
}

/**
 * Runs the coordinator until SIGTERM; the attempts then stop INTERRUPTED and
 * write their state and outputs before telemetry is flushed and the process
 * exits. Resolves with the exit code.
 */
export async function serve(argv: readonly string[], env: Record<string, string | undefined>, telemetry: CoordinatorTelemetry): Promise<number> {
  const started: { coordinator?: Coordinator } = {};
  const shutdown = async () => {
    await started.coordinator?.shutdown();
    await telemetry.shutdown();
  };
  return serveUntilStopped(coordinatorProgram(env, telemetry, started), argv, env, { warnings: telemetry.warnings, shutdown });
}
