// The versions a generator holds: loads a registry version (checksums
// verified first, so a tampered version is never served) into the hot-swap
// slot, and describes what is loaded for GetModel and LoadModel. The slot
// (service-kit's ModelSlot) does the background load, the atomic switch and
// the freeing of old weights once the last call on them has ended.
import { computeStatus } from '@cream/compute';
import {
  CheckpointError,
  LanguageModel,
  ModelConfigError,
  ModelWeightsError,
  SafetensorsError,
  TokenizerError,
  UnsupportedDtypeError,
} from '@cream/model';
import type { GetModelResponse, LoadedModel, ModelInfo } from '@cream/proto';
import { FailedPreconditionError, ModelSlot, type Logger, type SlotModel } from '@cream/service-kit';
import type { ModelRegistry, VersionRecord } from '@cream/store';
import { withSpan } from '@cream/telemetry';

/** Errors that mean a version's files cannot be served by this engine. */
const unloadable = [CheckpointError, SafetensorsError, UnsupportedDtypeError, TokenizerError, ModelConfigError, ModelWeightsError];

/** One loaded version: the model, and the registry record it came from. */
export class ServedModel implements SlotModel {
  constructor(
    /** Registry version name. */
    readonly version: string,
    /** Its registry record (manifest, manifest sha256, path). */
    readonly record: VersionRecord,
    /** The model and tokenizer. */
    readonly model: LanguageModel,
  ) {}

  /** ModelInfo of the proto: from config.json and the manifest. */
  info(): ModelInfo {
    const architectures = this.model.hfConfig.architectures;
    const architecture = Array.isArray(architectures) && typeof architectures[0] === 'string' ? architectures[0] : this.model.config.architecture;
    return {
      version: this.version,
      architecture,
      numParameters: this.model.numParameters,
      vocabSize: this.model.config.vocabSize,
      contextLength: this.model.config.maxPositionEmbeddings,
      manifestSha256: this.record.manifestSha256,
      parentVersion: this.record.manifest.parent ?? '',
    };
  }

  /** Frees the weights (the slot calls it after the last lease). */
  dispose(): void {
    this.model.dispose();
  }
}

/** The registry, the slot, and the load path between them. */
export class ModelHost {
  /** The hot-swap slot new calls lease their version from. */
  readonly slot: ModelSlot<ServedModel>;
  private loads = 0;

  /** `registry` resolves once compute and the registry are ready (loads wait for it). */
  constructor(
    private readonly registry: Promise<ModelRegistry>,
    private readonly logger: Logger,
  ) {
    this.slot = new ModelSlot<ServedModel>((version) => this.loadVersion(version));
  }

  /** Resolves a name or "latest" to a version name (VersionNotFoundError when there is none). */
  async resolve(nameOrLatest: string): Promise<string> {
    return (await this.registry).resolve(nameOrLatest);
  }

  /**
   * Makes `nameOrLatest` serve. Unknown versions fail at once (NOT_FOUND);
   * with `wait` the call resolves once the version serves and rejects with
   * the load's error (a manifest mismatch is FAILED_PRECONDITION), otherwise
   * it resolves as soon as loading has started and a failure is only
   * recorded (GetModel's last_load_error). The serving version keeps serving
   * meanwhile, and after a failure.
   */
  async load(nameOrLatest: string, wait: boolean): Promise<string> {
    const version = await this.resolve(nameOrLatest);
    const swap = this.slot.swap(version);
    if (wait) {
      await swap;
    } else {
      swap.catch((error: unknown) => this.logger.warn('background load failed; the serving version keeps serving', { version, error: (error as Error).message }));
    }
    return version;
  }

  /** What is loaded, loading, draining and failed, and the compute backend. */
  state(): GetModelResponse {
    const state = this.slot.state();
    let serving: LoadedModel | undefined;
    if (state.serving) {
      const lease = this.slot.acquire();
      try {
        serving = { info: lease.model.info(), loadedAt: state.serving.loadedAt, weightBytes: lease.model.model.weightBytes };
      } finally {
        lease.release();
      }
    }
    return {
      serving,
      loadingVersion: state.loading?.version ?? '',
      loadingSince: state.loading?.since,
      lastLoadError: state.lastLoadError,
      drainingVersions: state.draining,
      compute: computeStatus(),
    };
  }

  // The slot's loader: verify every checksum, then read the checkpoint under a scope of its own
  // (tfjs variable names are global, and two versions live side by side during a swap).
  private loadVersion(version: string): Promise<ServedModel> {
    return withSpan('generator.load', { 'cream.model_version': version }, async () => {
      const started = Date.now();
      const registry = await this.registry;
      const record = await registry.open(version, { verify: true });
      let model: LanguageModel;
      try {
        model = await LanguageModel.load(record.path, { scope: `generator-${++this.loads}-${version}` });
      } catch (error) {
        if (unloadable.some((type) => error instanceof type)) {
          throw new FailedPreconditionError(`model version "${version}" cannot be loaded: ${(error as Error).message}`, { cause: error });
        }
        throw error;
      }
      const served = new ServedModel(version, record, model);
      this.logger.info('model loaded', {
        version,
        manifestSha256: record.manifestSha256,
        parameters: model.numParameters,
        weightBytes: model.weightBytes,
        ms: Date.now() - started,
      });
      return served;
    });
  }
}
