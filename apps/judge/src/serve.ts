// The judge's program: options, the compute backend and the registry at
// start, the five JudgeService calls, and the mapping of the model and store
// libraries' errors to status codes.
//
// Health: the judge has no single model to wait for, since every call names
// its version and loads it on demand. It is NOT_SERVING until the compute
// backend is initialized and the registry is open (and, with --model, until
// that version is loaded and verified), then SERVING. A call that arrives
// before that gets UNAVAILABLE.
import { initCompute, WasmMemoryError } from '@cream/compute';
import {
  CheckpointError,
  ContextLengthError,
  ModelConfigError,
  ModelWeightsError,
  SafetensorsError,
  TokenIdError,
  TokenizerError,
  UnsupportedDtypeError,
} from '@cream/model';
import { JudgeServiceService } from '@cream/proto';
import { GrpcStatus, mapErrorClass, option, UnavailableError, type ServiceProgram, serveUntilStopped, type ServiceTelemetry } from '@cream/service-kit';
import { defaultRegistryRoot, ManifestMismatchError, ModelRegistry, VersionNotFoundError } from '@cream/store';
import { Judge } from './judge';
import { SAMPLING } from './validate';

/** Default port of the judge. */
export const defaultPort = 50052;

/** The judge's own options; the registry's default follows CREAM_HOME. */
export function judgeOptions(env: Record<string, string | undefined>) {
  return {
    registry: option.string({
      flag: 'registry',
      env: 'CREAM_REGISTRY',
      description: 'model registry folder (default <CREAM_HOME or ./.cream>/registry)',
      default: defaultRegistryRoot(env),
      nonEmpty: true,
    }),
    memoryBudgetBytes: option.int({
      flag: 'memory-budget-bytes',
      env: 'CREAM_JUDGE_MEMORY_BUDGET_BYTES',
      description: 'bytes of weights all resident versions may hold; the least recently used idle version is evicted to make room',
      default: 4 * 1024 ** 3,
      min: 1,
    }),
    model: option.string({
      flag: 'model',
      env: 'CREAM_JUDGE_MODEL',
      description: 'a version (or "latest") to load before SERVING; empty loads versions only on demand',
      default: '',
    }),
    scoreBatchSize: option.int({ flag: 'score-batch-size', env: 'CREAM_JUDGE_SCORE_BATCH_SIZE', description: 'items per scoring forward batch', default: 8, min: 1, max: 1024 }),
    judgeBatchSequences: option.int({
      flag: 'judge-batch-sequences',
      env: 'CREAM_JUDGE_BATCH_SEQUENCES',
      description: 'rubric judgments generated together (whole items, at least one)',
      default: 16,
      min: 1,
      max: 4096,
    }),
    maxNewTokensLimit: option.int({
      flag: 'max-new-tokens-limit',
      env: 'CREAM_JUDGE_MAX_NEW_TOKENS_LIMIT',
      description: 'the largest sampling.max_new_tokens a JudgeWithRubric call may ask for',
      default: SAMPLING.defaultMaxNewTokensLimit,
      min: 1,
      max: 1_000_000,
    }),
  };
}

/** The service program runService runs, for this environment. */
export function judgeProgram(env: Record<string, string | undefined>): ServiceProgram<ReturnType<typeof judgeOptions>> {
  return {
    name: 'judge',
    summary:
      'Scores responses by their log-probability under named model versions (sum and mean over response tokens, prompt masked) ' +
      'and judges them with the Self-Rewarding LM additive 5-point rubric. Versions load from the registry on demand (verified ' +
      'against their manifest), several resident within a memory budget, the least recently used evicted. SERVING once the ' +
      'compute backend and the registry are ready (and the --model version, if given, is loaded).',
    defaultPort,
    options: judgeOptions(env),
    setup(server, config, logger) {
      server.mapErrors(
        // The wasm backend's 4 GiB could not hold a tensor of this request: less at once fits.
        mapErrorClass(WasmMemoryError, GrpcStatus.RESOURCE_EXHAUSTED),
        mapErrorClass(VersionNotFoundError, GrpcStatus.NOT_FOUND),
        // A version whose files do not match its manifest, or that cannot be read as a model, is refused.
        mapErrorClass(ManifestMismatchError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(CheckpointError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(SafetensorsError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(UnsupportedDtypeError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(TokenizerError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(ModelConfigError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(ModelWeightsError, GrpcStatus.FAILED_PRECONDITION),
        mapErrorClass(ContextLengthError, GrpcStatus.INVALID_ARGUMENT),
        mapErrorClass(TokenIdError, GrpcStatus.INVALID_ARGUMENT),
      );
      let judge: Judge | undefined;
      const ready = (async () => {
        await initCompute({ env, logger });
        const registry = await ModelRegistry.open(config.registry);
        logger.info('registry open', { registry: registry.root, memoryBudgetBytes: config.memoryBudgetBytes });
        const created = new Judge(
          registry,
          {
            budgetBytes: config.memoryBudgetBytes,
            scoreBatchSize: config.scoreBatchSize,
            judgeBatchSequences: config.judgeBatchSequences,
            maxNewTokensLimit: config.maxNewTokensLimit,
          },
          logger,
        );
        if (config.model) await created.loadModel({ version: config.model });
        judge = created;
      })();
      const started = (): Judge => {
        if (!judge) throw new UnavailableError('the judge is starting (compute backend, registry or --model not ready yet); retry');
        return judge;
      };
      server.add('cream.v1.JudgeService', JudgeServiceService, {
        scoreLogProbs: (request, ctx) => started().scoreLogProbs(request, ctx.write, ctx.signal),
        judgeWithRubric: (request, ctx) => started().judgeWithRubric(request, ctx.write, ctx.signal),
        loadModel: (request) => started().loadModel(request),
        unloadModel: (request) => started().unloadModel(request),
        listModels: () => started().listModels(),
      });
      return { ready };
    },
  };
}

/** Runs the judge until SIGTERM, then flushes telemetry; resolves with the exit code. */
export async function serve(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  telemetry: ServiceTelemetry,
): Promise<number> {
  return serveUntilStopped(judgeProgram(env), argv, env, telemetry);
}
