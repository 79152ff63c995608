// The trainer's jobs: the Train stream's life (spec, one job at a time or
// queued, data received and validated, reference log-probs once, SFT or
// consistency-regularized DPO, publish), CancelJob, GetJob and ListJobs over
// the records kept in memory. A cancelled or failed job publishes nothing.
import { createHash } from 'node:crypto';
import {
  computeReferenceLogprobs,
  isTrainingCancelledError,
  LanguageModel,
  resolveHyperparameters,
  saveCheckpoint,
  toHostTensors,
  trainDpo,
  trainSft,
  validateHyperparameters,
  type DpoPair,
  type SftExample,
  type TrainHyperparameters as LibHyperparameters,
  type TrainProgress as LibProgress,
} from '@cream/model';
import {
  JobState,
  Schedule,
  TrainKind,
  type Job,
  type ListJobsResponse,
  type TrainHyperparameters,
  type TrainProgress,
  type TrainRequest,
  type TrainResponse,
  type ComputeInfo,
} from '@cream/proto';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError, type Logger, type StreamContext } from '@cream/service-kit';
import { VersionExistsError, type ModelRegistry } from '@cream/store';
import { withSpan } from '@cream/telemetry';
import type { JobStore } from './job-store';
import { validateChunk, validateSpec, type JobPlan, type PlannedItem } from './validate';

const MAX_RECORDS = 1000;

interface JobRecord {
  job: Job;
  abort: AbortController;
}

function toProtoHyperparameters(h: LibHyperparameters): TrainHyperparameters {
  const schedule = h.schedule === 'constant' ? Schedule.SCHEDULE_CONSTANT : h.schedule === 'linear' ? Schedule.SCHEDULE_LINEAR : Schedule.SCHEDULE_COSINE;
  return {
    learningRate: h.learningRate,
    epochs: h.epochs,
    batchSize: h.batchSize,
    gradientAccumulation: h.gradientAccumulation,
    warmupRatio: h.warmupRatio,
    weightDecay: h.weightDecay,
    maxGradNorm: h.maxGradNorm,
    beta: h.beta,
    schedule,
    maxSequenceLength: h.maxSequenceLength ?? undefined,
    adamBeta1: h.adamBeta1,
    adamBeta2: h.adamBeta2,
    adamEpsilon: h.adamEpsilon,
  };
}

function toProtoProgress(p: LibProgress): TrainProgress {
  return {
    step: p.step,
    totalSteps: p.totalSteps,
    epoch: p.epoch,
    loss: p.loss,
    learningRate: p.learningRate,
    gradNorm: p.gradNorm,
    rewardAccuracy: p.rewardAccuracy,
    chosenReward: p.chosenReward,
    rejectedReward: p.rejectedReward,
    margin: p.margin,
    meanConsistency: p.meanConsistency,
    elapsedSeconds: p.elapsedSeconds,
    tokensPerSecond: p.tokensPerSecond,
  };
}

/** sha256 of the job's data as received (canonical JSON of the validated items, in order). */
export function dataSha256(items: readonly PlannedItem[]): string {
  const hash = createHash('sha256');
  for (const item of items) hash.update(JSON.stringify(item) + '\n');
  return hash.digest('hex');
}

/** Jobs of one trainer process. */
export class Trainer {
  private readonly records = new Map<string, JobRecord>();
  private running: string | null = null;
  /** Resolves when the job holding the slot ends; a queued job awaits it. */
  private slot: Promise<void> = Promise.resolve();
  /** The job that last claimed the slot, until it ends (running or queued): what a busy refusal names when none runs yet. */
  private lastClaimed: string | null = null;
  private scopes = 0;

  constructor(
    private readonly registry: Promise<ModelRegistry>,
    private readonly compute: () => ComputeInfo,
    private readonly logger: Logger,
    private readonly store: JobStore | null = null,
  ) {
    for (const job of store?.loadAll() ?? []) this.records.set(job.jobId, { job, abort: new AbortController() });
  }

  private persist(job: Job): void {
    try {
      this.store?.save(job);
    } catch (error) {
      this.logger.warn('could not write the job record', { job: job.jobId, error: (error as Error).message });
    }
  }

  get(jobId: string): Job {
    const record = this.records.get(jobId);
    if (!record) throw new NotFoundError(`no job "${jobId}"`, 'job_id');
    return record.job;
  }

  cancel(jobId: string): Job {
    const record = this.records.get(jobId);
    if (!record) throw new NotFoundError(`no job "${jobId}"`, 'job_id');
    if (!isFinal(record.job.state)) record.abort.abort(new Error('cancelled by CancelJob'));
    return record.job;
  }

  list(limit: number): ListJobsResponse {
    if (limit > 1000) throw new InvalidArgumentError(`limit ${limit} is over 1000`, 'limit', { limit: 1000 });
    const jobs = [...this.records.values()].map((r) => r.job).reverse().slice(0, limit === 0 ? 100 : limit);
    return { jobs, runningJobId: this.running ?? '', compute: this.compute() };
  }

  /** The Train stream: see trainer.proto. */
  async train(requests: AsyncIterable<TrainRequest>, ctx: StreamContext<TrainResponse>): Promise<void> {
    // service-kit hands over an iterator that leaves the call open after the
    // client half-closes, so progress can still be written.
    const iterator = requests[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (first.done || first.value.item?.$case !== 'spec') {
      throw new InvalidArgumentError('the first Train message must carry the spec', 'spec');
    }
    const plan = validateSpec(first.value.item.value);
    const registry = await this.registry;
    const base = await registry.resolve(plan.baseVersion); // VersionNotFoundError -> NOT_FOUND
    const reference = plan.kind === 'dpo' ? await registry.resolve(plan.referenceVersion) : '';
    if (await registry.has(plan.outputVersion)) throw new VersionExistsError(plan.outputVersion);
    if (this.records.has(plan.jobId)) throw new InvalidArgumentError(`spec.job_id "${plan.jobId}" is already used`, 'spec.job_id');
    // From here to claiming the slot nothing awaits: two calls cannot both find the trainer idle.
    const holder = this.running ?? this.lastClaimed;
    if (holder !== null && !plan.waitIfBusy) {
      throw new ResourceExhaustedError(`job "${holder}" is running; one job runs at a time (set wait_if_busy to queue)`);
    }

    const abort = new AbortController();
    const onClientGone = () => abort.abort(new Error('the client cancelled the call'));
    ctx.signal.addEventListener('abort', onClientGone);
    const job: Job = {
      jobId: plan.jobId,
      kind: plan.kind === 'sft' ? TrainKind.TRAIN_KIND_SFT : TrainKind.TRAIN_KIND_DPO,
      state: JobState.JOB_STATE_QUEUED,
      baseVersion: base,
      referenceVersion: reference,
      publishedVersion: '',
      error: '',
      numExamples: 0,
      numTruncated: 0,
      lastProgress: undefined,
      createdAt: new Date(),
      finishedAt: undefined,
      hyperparameters: undefined,
    };
    this.records.set(plan.jobId, { job, abort });
    this.trimRecords();
    const send = async (message: TrainResponse) => {
      if (ctx.signal.aborted) return;
      await ctx.write(message).catch(() => undefined);
    };
    const setState = async (state: JobState) => {
      job.state = state;
      this.persist(job);
      await send({ event: { $case: 'job', value: { ...job } } });
    };

    // One job at a time: take the slot (waiting behind the running and queued jobs when asked to).
    let release!: () => void;
    const previous = this.slot;
    this.slot = new Promise<void>((resolve) => (release = resolve));
    this.lastClaimed = plan.jobId;
    try {
      if (holder !== null) {
        await setState(JobState.JOB_STATE_QUEUED);
        // A queued job can be cancelled while it waits.
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(abort.signal.reason);
          abort.signal.addEventListener('abort', onAbort, { once: true });
          void previous.then(() => {
            abort.signal.removeEventListener('abort', onAbort);
            resolve();
          });
        });
      }
      if (abort.signal.aborted) throw abort.signal.reason;
      this.running = plan.jobId;
      await this.run(plan, base, reference, job, abort.signal, iterator, setState, send);
    } catch (error) {
      job.finishedAt = new Date();
      if (abort.signal.aborted || isTrainingCancelledError(error)) {
        job.state = JobState.JOB_STATE_CANCELLED;
        job.error = '';
        this.persist(job);
        this.logger.info('job cancelled', { job: plan.jobId });
        await send({ event: { $case: 'job', value: { ...job } } });
        return;
      }
      job.state = JobState.JOB_STATE_FAILED;
      job.error = (error as Error).message;
      this.persist(job);
      this.logger.warn('job failed', { job: plan.jobId, error: job.error });
      throw error;
    } finally {
      ctx.signal.removeEventListener('abort', onClientGone);
      if (this.running === plan.jobId) this.running = null;
      if (this.lastClaimed === plan.jobId) this.lastClaimed = null;
      // The next job starts only after every job before it ended, even if this one left the queue early.
      void previous.then(release);
    }
  }

  private async run(
    plan: JobPlan,
    base: string,
    reference: string,
    job: Job,
    signal: AbortSignal,
    iterator: AsyncIterator<TrainRequest>,
    setState: (state: JobState) => Promise<void>,
    send: (message: TrainResponse) => Promise<void>,
  ): Promise<void> {
    const hyperparameters = resolveHyperparameters(plan.kind, plan.overrides);
    try {
      validateHyperparameters(hyperparameters);
    } catch (error) {
      throw new InvalidArgumentError(`hyperparameters: ${(error as Error).message}`, 'spec.hyperparameters');
    }
    job.hyperparameters = toProtoHyperparameters(hyperparameters);

    // Receive and validate every data message.
    await setState(JobState.JOB_STATE_RECEIVING);
    const items = await withSpan('trainer.receive', { 'cream.job_id': plan.jobId }, async (span) => {
      const received: PlannedItem[] = [];
      const seen = new Set<string>();
      for (let chunk = 0; ; chunk++) {
        const next = await iterator.next();
        if (next.done) break;
        if (signal.aborted) throw signal.reason;
        const item = next.value.item;
        if (item?.$case !== 'data') throw new InvalidArgumentError(`message ${chunk + 1} is not data; only the first message carries the spec`, 'data');
        received.push(...validateChunk(item.value, plan.kind, chunk, seen));
        job.numExamples = received.length;
      }
      span.setAttribute('cream.num_examples', received.length);
      return received;
    });
    if (items.length === 0) {
      throw new InvalidArgumentError(`the dataset is empty; send ${plan.kind === 'sft' ? 'sft_examples' : 'preference_pairs'} after the spec`, plan.kind === 'sft' ? 'sft_examples' : 'preference_pairs');
    }
    const sha = dataSha256(items);
    this.logger.debug('job data received', { job: plan.jobId, examples: items.length, sha256: sha });

    const registry = await this.registry;
    const baseRecord = await registry.open(base, { verify: true });
    const lm = await LanguageModel.load(baseRecord.path, { scope: `trainer-${++this.scopes}-policy`, trainable: true });
    this.logger.debug('base loaded', { job: plan.jobId, version: base });
    try {
      const padTokenId = lm.tokenizer.padTokenId ?? 0;
      let result;
      if (plan.kind === 'sft') {
        const examples: SftExample[] = items.map((item) => {
          if (item.kind !== 'sft') throw new Error('unreachable');
          return { id: item.id, promptIds: lm.promptIds(item.prompt), responseIds: lm.responseIds(item.response) };
        });
        await setState(JobState.JOB_STATE_RUNNING);
        result = await withSpan('trainer.train', { 'cream.job_id': plan.jobId, 'cream.kind': 'sft' }, () =>
          trainSft(lm.model, examples, hyperparameters, {
            signal,
            padTokenId,
            onStep: async (progress) => {
              job.lastProgress = toProtoProgress(progress);
              await send({ event: { $case: 'progress', value: job.lastProgress } });
            },
          }),
        );
      } else {
        const pairs: DpoPair[] = items.map((item) => {
          if (item.kind !== 'dpo') throw new Error('unreachable');
          return {
            id: item.id,
            promptIds: lm.promptIds(item.prompt),
            chosenIds: lm.responseIds(item.chosen),
            rejectedIds: lm.responseIds(item.rejected),
            consistency: item.weight ?? plan.consistencyRate,
          };
        });
        await setState(JobState.JOB_STATE_PREPARING);
        // The frozen reference's log-probs, once. When it is the base (the paper's M_t), the policy before training is it.
        const referenceLogprobs = await withSpan('trainer.reference_logprobs', { 'cream.job_id': plan.jobId, 'cream.reference': reference }, async () => {
          const options = { maxSequenceLength: hyperparameters.maxSequenceLength, padTokenId, signal };
          if (reference === base) return computeReferenceLogprobs(lm.model, pairs, options);
          const refRecord = await registry.open(reference, { verify: true });
          const ref = await LanguageModel.load(refRecord.path, { scope: `trainer-${++this.scopes}-reference` });
          try {
            return await computeReferenceLogprobs(ref.model, pairs, options);
          } finally {
            ref.dispose();
          }
        });
        await setState(JobState.JOB_STATE_RUNNING);
        result = await withSpan('trainer.train', { 'cream.job_id': plan.jobId, 'cream.kind': 'dpo' }, () =>
          trainDpo(lm.model, referenceLogprobs, pairs, hyperparameters, {
            signal,
            padTokenId,
            onStep: async (progress) => {
              job.lastProgress = toProtoProgress(progress);
              await send({ event: { $case: 'progress', value: job.lastProgress } });
            },
          }),
        );
      }
      job.numTruncated = result.numTruncated;
      if (signal.aborted) throw signal.reason;

      await setState(JobState.JOB_STATE_PUBLISHING);
      const last = result.lastProgress;
      const metrics: Record<string, unknown> = last
        ? { final_loss: last.loss, steps: result.totalSteps, elapsed_seconds: result.elapsedSeconds, num_examples: items.length, num_truncated: result.numTruncated }
        : {};
      if (last && plan.kind === 'dpo') {
        Object.assign(metrics, { reward_accuracy: last.rewardAccuracy, chosen_reward: last.chosenReward, rejected_reward: last.rejectedReward, margin: last.margin, mean_consistency: last.meanConsistency });
      }
      const tensors = await toHostTensors(lm.weights);
      await withSpan('trainer.publish', { 'cream.job_id': plan.jobId, 'cream.version': plan.outputVersion }, () =>
        registry.publish({
          version: plan.outputVersion,
          parent: base,
          recipe: {
            ...plan.recipe,
            method: plan.recipe.method ?? (plan.kind === 'sft' ? 'sft' : 'cream-dpo'),
            dataSha256: sha,
            hyperparameters: { ...hyperparameters, maxSequenceLength: hyperparameters.maxSequenceLength },
            metrics,
            jobId: plan.jobId,
            kind: plan.kind,
            referenceVersion: reference || null,
            consistencyRate: plan.kind === 'dpo' ? plan.consistencyRate : null,
          },
          write: async (dir) => {
            await saveCheckpoint(dir, { hfConfig: lm.hfConfig, tensors, tokenizer: lm.tokenizer, generationConfig: lm.generationConfig });
          },
        }),
      );
      job.publishedVersion = plan.outputVersion;
      job.finishedAt = new Date();
      this.logger.info('job succeeded', { job: plan.jobId, version: plan.outputVersion, steps: result.totalSteps, loss: last?.loss });
      await setState(JobState.JOB_STATE_SUCCEEDED);
    } finally {
      lm.dispose();
    }
  }

  private trimRecords(): void {
    for (const [id, record] of this.records) {
      if (this.records.size <= MAX_RECORDS) break;
      if (isFinal(record.job.state)) this.records.delete(id);
    }
  }
}

function isFinal(state: JobState): boolean {
  return state === JobState.JOB_STATE_SUCCEEDED || state === JobState.JOB_STATE_FAILED || state === JobState.JOB_STATE_CANCELLED;
}
