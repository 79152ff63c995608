// The generator's program: its options, the compute backend and the registry
// set up at start, the version named by --model loaded in the background
// (NOT_SERVING until a first version serves), and Generate, LoadModel and
// GetModel registered with the library errors mapped to status codes here.
import { initCompute, WasmMemoryError } from '@cream/compute';
import { ContextLengthError, InvalidOptionError, TokenIdError } from '@cream/model';
import { GeneratorServiceService } from '@cream/proto';
import { GrpcStatus, mapErrorClass, option, type ServiceProgram, serveUntilStopped, type ServiceTelemetry } from '@cream/service-kit';
import { defaultRegistryRoot, InvalidInputError, ManifestMismatchError, ModelRegistry, VersionNotFoundError } from '@cream/store';
import { generate } from './generate';
import { ModelHost } from './models';
import { BatchScheduler } from './scheduler';
import { DEFAULT_MAX_NEW_TOKENS_LIMIT, validateLoadVersion } from './validate';

/** Default port of the generator. */
export const defaultPort = 50051;

/** The generator's own options. */
export function generatorOptions(env: Record<string, string | undefined>) {
  return {
    registry: option.string({
      flag: 'registry',
      env: 'CREAM_REGISTRY',
      description: 'model registry folder (default <CREAM_HOME or ./.cream>/registry)',
      default: defaultRegistryRoot(env),
      nonEmpty: true,
    }),
    model: option.string({
      flag: 'model',
      env: 'CREAM_MODEL',
      description: 'version to load at start: a name, "latest" (skipped while the registry is empty), or empty (--model=) to wait for LoadModel',
      default: 'latest',
    }),
    maxNewTokens: option.int({
      flag: 'max-new-tokens',
      env: 'CREAM_GENERATOR_MAX_NEW_TOKENS',
      description: 'largest sampling.max_new_tokens a call may ask for',
      default: DEFAULT_MAX_NEW_TOKENS_LIMIT,
      min: 1,
      max: 1 << 20,
    }),
    maxBatchSequences: option.int({
      flag: 'max-batch-sequences',
      env: 'CREAM_GENERATOR_MAX_BATCH_SEQUENCES',
      description: 'most sequences decoded together in one batch (across concurrent calls)',
      default: 64,
      min: 1,
      max: 65536,
    }),
    maxBatchTokens: option.int({
      flag: 'max-batch-tokens',
      env: 'CREAM_GENERATOR_MAX_BATCH_TOKENS',
      description: 'token budget of one batch: the sum over its sequences of prompt plus max new tokens (bounds the KV cache)',
      default: 16384,
      min: 1,
      max: 1 << 30,
    }),
  };
}

/** The service program runService runs. */
export function generatorProgram(env: Record<string, string | undefined>): ServiceProgram<ReturnType<typeof generatorOptions>> {
  return {
    name: 'generator',
    summary:
      'Samples completions (prompts x samples, streamed as they finish) from the model version it serves, batching concurrent calls ' +
      'under a token budget; LoadModel hot-swaps to another registry version (checksums verified) while calls in flight finish on theirs.',
    defaultPort,
    options: generatorOptions(env),
    setup(server, config, logger) {
      server.mapErrors(
        // The wasm backend's 4 GiB could not hold a tensor of this request: less at once fits.
        mapErrorClass(WasmMemoryError, GrpcStatus.RESOURCE_EXHAUSTED),
        mapErrorClass(VersionNotFoundError, GrpcStatus.NOT_FOUND),
        mapErrorClass(ManifestMismatchError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(InvalidInputError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(ContextLengthError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(TokenIdError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(InvalidOptionError, GrpcStatus.INVALID_ARGUMENT),
      );
      // The backend is chosen once, before any model loads; the registry opens beside it.
      const prepared = (async () => {
        await initCompute({ env, logger }); // logs its choice
        const registry = await ModelRegistry.open(config.registry);
        logger.info('model registry', { root: registry.root });
        return registry;
      })();
      const host = new ModelHost(prepared, logger);
      const scheduler = new BatchScheduler({ maxBatchSequences: config.maxBatchSequences, maxBatchTokens: config.maxBatchTokens }, logger);
      host.slot.onChange((state) => logger.debug('model slot', { ...state }));

      server.add('cream.v1.GeneratorService', GeneratorServiceService, {
        generate: (request, ctx) => generate(request, ctx, { slot: host.slot, scheduler, maxNewTokensLimit: config.maxNewTokens }),
        loadModel: async (request) => {
          await host.load(validateLoadVersion(request.version), request.wait);
          return { state: host.state() };
        },
        getModel: () => host.state(),
      });

      // SERVING once a first version serves, from --model or from a LoadModel call.
      const firstServing = new Promise<void>((resolveServing) => {
        const stop = host.slot.onChange((state) => {
          if (state.serving) {
            stop();
            resolveServing();
          }
        });
      });
      const ready = (async () => {
        await prepared;
        if (config.model !== '') {
          try {
            const version = await host.load(config.model, true);
            logger.info('serving model', { version });
          } catch (error) {
            if (error instanceof VersionNotFoundError && config.model === 'latest') {
              logger.warn('the registry holds no version yet; NOT_SERVING until LoadModel', { registry: config.registry });
            } else {
              logger.error('could not load the start-up model; NOT_SERVING until LoadModel', { model: config.model, error: (error as Error).message });
            }
          }
        }
        await firstServing;
      })();
      return { ready };
    },
  };
}

/** Runs the generator until SIGTERM, then flushes telemetry; resolves with the exit code. */
export async function serve(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  telemetry: ServiceTelemetry,
): Promise<number> {
  return serveUntilStopped(generatorProgram(env), argv, env, telemetry);
}
