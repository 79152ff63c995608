// The trainer's program: its options, the compute backend and the registry set
// up at start, and Train, CancelJob, GetJob and ListJobs registered with the
// library errors mapped to status codes. It holds no model between jobs, so it
// is SERVING once compute and the registry are ready.
import { join } from 'node:path';
import { computeStatus, initCompute, WasmMemoryError } from '@cream/compute';
import { ContextLengthError, InvalidOptionError, TokenIdError } from '@cream/model';
import { TrainerServiceService } from '@cream/proto';
import { GrpcStatus, mapErrorClass, option, type ServiceProgram, serveUntilStopped, type ServiceTelemetry } from '@cream/service-kit';
import { creamHome, defaultRegistryRoot, InvalidInputError, ManifestMismatchError, ModelRegistry, VersionExistsError, VersionNotFoundError } from '@cream/store';
import { withSpan } from '@cream/telemetry';
import { JobStore } from './job-store';
import { Trainer } from './jobs';

/** Default port of the trainer. */
export const defaultPort = 50054;

/** The trainer's own options. */
export function trainerOptions(env: Record<string, string | undefined>) {
  return {
    registry: option.string({
      flag: 'registry',
      env: 'CREAM_REGISTRY',
      description: 'model registry folder (default <CREAM_HOME or ./.cream>/registry)',
      default: defaultRegistryRoot(env),
      nonEmpty: true,
    }),
    jobs: option.string({
      flag: 'jobs',
      env: 'CREAM_TRAINER_JOBS',
      description: 'folder of the job records, kept across restarts (default <CREAM_HOME or ./.cream>/trainer-jobs)',
      default: join(creamHome(env), 'trainer-jobs'),
      nonEmpty: true,
    }),
  };
}

/** The service program runService runs. */
export function trainerProgram(env: Record<string, string | undefined>): ServiceProgram<ReturnType<typeof trainerOptions>> {
  return {
    name: 'trainer',
    summary:
      'Runs one training job at a time on a registry version: SFT, or DPO with the consistency-regularized loss (C per pair or one C, ' +
      'the frozen reference\'s log-probs computed once); streams progress per optimizer step and publishes the result as a new version.',
    defaultPort,
    options: trainerOptions(env),
    setup(server, config, logger) {
      server.mapErrors(
        // The wasm backend's 4 GiB could not hold a tensor of this request: less at once fits.
        mapErrorClass(WasmMemoryError, GrpcStatus.RESOURCE_EXHAUSTED),
        mapErrorClass(VersionNotFoundError, GrpcStatus.NOT_FOUND),
        mapErrorClass(ManifestMismatchError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(VersionExistsError, GrpcStatus.ALREADY_EXISTS),
        mapErrorClass(InvalidInputError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(ContextLengthError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(TokenIdError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(InvalidOptionError, GrpcStatus.INVALID_ARGUMENT),
      );
      const prepared = (async () => {
        await initCompute({ env, logger });
        const registry = await ModelRegistry.open(config.registry);
        logger.info('model registry', { root: registry.root });
        return registry;
      })();
      const trainer = new Trainer(prepared, computeStatus, logger, new JobStore(config.jobs));
      server.add('cream.v1.TrainerService', TrainerServiceService, {
        train: (requests, ctx) => withSpan('trainer.Train', {}, () => trainer.train(requests, ctx)),
        cancelJob: (request) => ({ job: trainer.cancel(request.jobId) }),
        getJob: (request) => ({ job: trainer.get(request.jobId) }),
        listJobs: (request) => trainer.list(request.limit),
      });
      return { ready: prepared.then(() => undefined) };
    },
  };
}

/** Runs the trainer until SIGTERM, then flushes telemetry; resolves with the exit code. */
export async function serve(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  telemetry: ServiceTelemetry,
): Promise<number> {
  return serveUntilStopped(trainerProgram(env), argv, env, telemetry);
}
