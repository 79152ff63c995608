// The judge's handler logic: model versions from the registry, several resident
// at once in a ModelCache under a byte budget (least recently used idle one
// evicted), and the four calls on them. ScoreLogProbs computes
// log p_M(y | x) summed over the response tokens, prompt masked (CREAM.md,
// step 2), with the same tokenization as every other cream component
// (LanguageModel.promptIds/responseIds). JudgeWithRubric asks the model to
// judge with the Self-Rewarding LM rubric (CREAM.md, "Baselines") k times per
// response, each judgment drawn from its own random stream named by
// (seed, item id, judgment index), so a judgment is the same whatever batch it
// ran in. Work stops between forward batches when the call is cancelled.
import { aggregateJudgments, rubricPrompt } from '@cream/cream';
import { computeStatus } from '@cream/compute';
import { LanguageModel, type PromptInput } from '@cream/model';
import type {
  JudgeServiceLoadModelRequest,
  JudgeServiceLoadModelResponse,
  JudgeWithRubricRequest,
  JudgeWithRubricResponse,
  ListModelsResponse,
  LoadedModel,
  ScoreLogProbsRequest,
  ScoreLogProbsResponse,
  UnloadModelRequest,
  UnloadModelResponse,
} from '@cream/proto';
import { InvalidArgumentError, ModelCache, NotFoundError, type Lease, type Logger, type SizedModel } from '@cream/service-kit';
import { InvalidInputError, LATEST, VersionNotFoundError, type ModelRegistry, type VersionRecord } from '@cream/store';
import { withSpan } from '@cream/telemetry';
import { checkJudgeRequest, checkScoreRequest, checkTokenizedItem, checkTopK, requireVersion, type ModelLimits } from './validate';

/** How the judge batches its work. */
export interface JudgeOptions {
  /** Budget for the weights of all resident versions, bytes. */
  budgetBytes: number;
  /** Items per scoring forward batch. */
  scoreBatchSize: number;
  /** Judgment sequences generated together in one batch. */
  judgeBatchSequences: number;
  /** The largest max_new_tokens a caller may ask for. */
  maxNewTokensLimit: number;
}

/** A resident version: the loaded model and its registry record. */
export class ResidentVersion implements SizedModel {
  constructor(
    readonly model: LanguageModel,
    readonly record: VersionRecord,
  ) {}

  /** Bytes of weights held. */
  get bytes(): number {
    return this.model.weightBytes;
  }

  /** The sizes the token checks need. */
  get limits(): ModelLimits {
    return { vocabSize: this.model.config.vocabSize, contextLength: this.model.config.maxPositionEmbeddings };
  }

  /** Frees the weights. */
  dispose(): void {
    this.model.dispose();
  }
}

// Items scored per streamed window, in forward batches of scoreBatchSize:
// the window is sorted longest first inside scoreIds (less padding) and its
// results written in request order before the next window starts.
const WINDOW_BATCHES = 8;

// tfjs variable names are global to the process: every load gets its own
// scope, also when a version is loaded again or by another Judge.
let loads = 0;

/** The judge: registry, resident versions and the calls on them. */
export class Judge {
  /** Resident versions. */
  readonly cache: ModelCache<ResidentVersion>;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly options: JudgeOptions,
    private readonly logger: Logger,
  ) {
    this.cache = new ModelCache((version) => this.loadVersion(version), options.budgetBytes);
  }

  /**
   * The registry's name for `nameOrLatest`: VersionNotFoundError (NOT_FOUND)
   * when there is none, INVALID_ARGUMENT naming `field` for a malformed name.
   */
  async resolve(nameOrLatest: string, field: string): Promise<string> {
    requireVersion(nameOrLatest, field);
    try {
      return await this.registry.resolve(nameOrLatest);
    } catch (error) {
      if (error instanceof InvalidInputError) throw new InvalidArgumentError(`${field}: ${error.message}`, field, { cause: error, limit: error.limit });
      if (error instanceof VersionNotFoundError) throw new NotFoundError(`${field}: ${error.message}`, nameOrLatest, { cause: error });
      throw error;
    }
  }

  /** Leases a version, loading it (verified against its manifest) when it is not resident. */
  async acquire(nameOrLatest: string, field: string): Promise<{ lease: Lease<ResidentVersion>; evicted: string[] }> {
    const version = await this.resolve(nameOrLatest, field);
    const acquired = await this.cache.acquire(version);
    if (acquired.evicted.length > 0) this.logger.info('versions evicted', { version, evicted: acquired.evicted, budgetBytes: this.options.budgetBytes });
    return acquired;
  }

  /** ScoreLogProbs: writes each item's sum and mean response log-prob, in request order. */
  async scoreLogProbs(request: ScoreLogProbsRequest, write: (message: ScoreLogProbsResponse) => Promise<void>, signal: AbortSignal): Promise<void> {
    const { version, items } = checkScoreRequest(request);
    const { lease } = await this.acquire(version, 'model_version');
    try {
      const resident = lease.model;
      const model = resident.model;
      // Tokenize and check every item before the first forward pass, so a bad item fails the call before any result.
      const tokenized = items.map((item, i) => {
        const pair =
          item.kind === 'text'
            ? { promptIds: model.promptIds(item.prompt), responseIds: model.responseIds(item.response) }
            : { promptIds: item.promptIds, responseIds: item.responseIds };
        checkTokenizedItem(pair.promptIds, pair.responseIds, resident.limits, `items[${i}].${item.kind}`, item.kind === 'tokens');
        return pair;
      });
      const window = this.options.scoreBatchSize * WINDOW_BATCHES;
      for (let start = 0; start < tokenized.length; start += window) {
        signal.throwIfAborted();
        const scores = await model.scoreIds(tokenized.slice(start, start + window), { batchSize: this.options.scoreBatchSize, signal });
        for (const [offset, score] of scores.entries()) {
          await write({
            id: items[start + offset].id,
            logprobSum: score.logprobSum,
            logprobMean: score.logprobMean,
            numTokens: score.numTokens,
            modelVersion: lease.version,
          });
        }
      }
    } finally {
      lease.release();
    }
  }

  /** JudgeWithRubric: k rubric judgments per item, parsed, written in request order. */
  async judgeWithRubric(request: JudgeWithRubricRequest, write: (message: JudgeWithRubricResponse) => Promise<void>, signal: AbortSignal): Promise<void> {
    const { version, items, numJudgments, sampling, style } = checkJudgeRequest(request, this.options.maxNewTokensLimit);
    const { lease } = await this.acquire(version, 'model_version');
    try {
      const resident = lease.model;
      const model = resident.model;
      checkTopK(sampling.topK, resident.limits.vocabSize);
      // The rubric is the judge's user turn, rendered with the model's chat template.
      const prompts = items.map((item, i): PromptInput => {
        const prompt: PromptInput = { messages: [{ role: 'user', content: rubricPrompt(item.question, item.response, style) }] };
        const length = model.promptIds(prompt).length;
        if (length >= resident.limits.contextLength) {
          throw new InvalidArgumentError(
            `items[${i}].item: the ${style} rubric prompt with this question and response has ${length} tokens; the model's context length is ${resident.limits.contextLength}, leaving no room to judge`,
            `items[${i}].item`,
            { limit: resident.limits.contextLength },
          );
        }
        return prompt;
      });
      // Whole items per batch, at most judgeBatchSequences sequences (at least one item).
      const perBatch = Math.max(1, Math.floor(this.options.judgeBatchSequences / numJudgments));
      for (let start = 0; start < items.length; start += perBatch) {
        signal.throwIfAborted();
        const batch = items.slice(start, start + perBatch);
        const requests = batch.flatMap((item, b) =>
          Array.from({ length: numJudgments }, (_, j) => ({ key: `${item.id}/${j}`, prompt: prompts[start + b] })),
        );
        const results = await model.generateText(requests, { ...sampling, signal });
        for (const [b, item] of batch.entries()) {
          const texts = results.slice(b * numJudgments, (b + 1) * numJudgments).map((r) => r.text);
          const aggregate = aggregateJudgments(texts);
          await write({
            id: item.id,
            judgments: texts.map((text, j) => ({ text, score: aggregate.scores[j] })),
            meanScore: aggregate.mean,
            numParsed: aggregate.numParsed,
            numUnparsed: aggregate.numUnparsed,
            modelVersion: lease.version,
          });
        }
      }
    } finally {
      lease.release();
    }
  }

  /** LoadModel: makes a version resident, evicting least recently used idle ones if needed. */
  async loadModel(request: JudgeServiceLoadModelRequest): Promise<JudgeServiceLoadModelResponse> {
    const { lease, evicted } = await this.acquire(request.version, 'version');
    try {
      const listed = this.cache.list().find((entry) => entry.version === lease.version);
      return { model: loadedModel(lease.model, listed?.loadedAt ?? new Date()), evictedVersions: evicted };
    } finally {
      lease.release();
    }
  }

  /** UnloadModel: frees a resident version (once the calls holding it finish). NOT_FOUND when it is not resident. */
  async unloadModel(request: UnloadModelRequest): Promise<UnloadModelResponse> {
    requireVersion(request.version, 'version');
    const resident = this.cache.list().map((entry) => entry.version);
    // "latest" means the version it resolves to now.
    const version = request.version === LATEST ? await this.resolve(LATEST, 'version') : request.version;
    const freed = this.cache.unload(version);
    if (freed === undefined) {
      throw new NotFoundError(`version "${request.version}" is not resident (resident: ${resident.length > 0 ? resident.join(', ') : 'none'})`, version);
    }
    this.logger.info('version unloaded', { version, freedBytes: freed });
    return { freedBytes: freed };
  }

  /** ListModels: resident versions most recently used first, the budget and the compute backend. */
  listModels(): ListModelsResponse {
    return {
      models: this.cache.list().map((entry) => loadedModel(entry.model, entry.loadedAt)),
      budgetBytes: this.options.budgetBytes,
      compute: computeStatus(),
    };
  }

  private async loadVersion(version: string): Promise<ResidentVersion> {
    return withSpan('judge.load_model', { 'cream.model_version': version }, async () => {
      const started = performance.now();
      // Every file checked against the manifest first: a tampered version is never loaded.
      const record = await this.registry.open(version, { verify: true });
      const scope = `judge-${++loads}-${version}`;
      const model = await LanguageModel.load(record.path, { scope });
      const resident = new ResidentVersion(model, record);
      this.logger.info('version loaded', { version, weightBytes: resident.bytes, ms: Math.round(performance.now() - started) });
      return resident;
    });
  }
}

/** The proto LoadedModel of a resident version. */
export function loadedModel(resident: ResidentVersion, loadedAt: Date): LoadedModel {
  const { model, record } = resident;
  const architectures = model.hfConfig.architectures;
  return {
    info: {
      version: record.version,
      architecture: Array.isArray(architectures) && typeof architectures[0] === 'string' ? architectures[0] : model.config.architecture,
      numParameters: model.numParameters,
      vocabSize: model.config.vocabSize,
      contextLength: model.config.maxPositionEmbeddings,
      manifestSha256: record.manifestSha256,
      parentVersion: record.manifest.parent ?? '',
    },
    loadedAt,
    weightBytes: resident.bytes,
  };
}

