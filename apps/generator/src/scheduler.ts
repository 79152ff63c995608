// The generator's batch scheduler: concurrent Generate calls share
// generateText batches under a budget of sequences and tokens.
//
// Policy:
// - Every call becomes a job: its sequences (prompts x samples), the model
//   version it holds and its sampling parameters. Jobs wait in one queue.
// - A batch starts from the job at the head of the queue and takes, in queue
//   order, the pending sequences of every job with the same model and the same
//   sampling parameters (temperature, top_p, top_k, max_new_tokens, stop),
//   until it holds `maxBatchSequences` sequences or the next one would take it
//   over `maxBatchTokens` (a sequence costs its prompt tokens plus the tokens it
//   may generate: the KV cache it can fill). The request seed does not split
//   batches: every sequence's random stream is named by its own sequence seed
//   (seeds.ts), so a sample is the same in any batch.
// - One batch runs at a time (the model math is CPU or GPU bound; two batches
//   would only interleave). Between batches the scheduler yields to the event
//   loop, so cancellations, new calls and stream writes get in. Jobs that gave
//   sequences to a batch and still have more go to the back of the queue, so a
//   huge call cannot starve the others.
// - Cancellation (the caller cancels, or its deadline passes): the job's
//   queued sequences are dropped at once. If its sequences are in the running
//   batch and cancelled calls hold at least half of that batch's unfinished
//   sequences, the batch is aborted at the next decoding step and the
//   unfinished sequences of the other calls go back to the head of their
//   queue (they rerun to identical results, streams being batch independent);
//   otherwise the batch finishes and the cancelled sequences' results are
//   dropped.
// Completions are delivered as each sequence finishes (generateText's
// onFinished), not when its batch ends.
import type { PromptInput, TextGenerationOptions, TextGenerationRequest, TextGenerationResult } from '@cream/model';
import { BATCH_SEED } from './seeds';

/** What the scheduler needs of a model (LanguageModel has it). */
export interface BatchModel {
  generateText(requests: readonly TextGenerationRequest[], options: TextGenerationOptions): Promise<TextGenerationResult[]>;
}

/** Sampling parameters a batch shares (the seed is per sequence, in its key). */
export interface BatchSampling {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  stop: readonly string[];
}

/** One sequence to generate. */
export interface SequenceRequest<T> {
  /** Names its random stream (with the batch seed, BATCH_SEED). */
  key: string;
  /** What the model continues. */
  prompt: PromptInput;
  /** Tokens it may hold in the KV cache: prompt plus generated, at most the context. */
  cost: number;
  /** The caller's handle on it (e.g. prompt and sample index), given back with its result. */
  tag: T;
}

/** Budget of one batch. */
export interface SchedulerLimits {
  /** Most sequences in one generateText call. */
  maxBatchSequences: number;
  /** Most tokens (sum of the sequences' costs) in one call; a single larger sequence still runs alone. */
  maxBatchTokens: number;
}

/** What a job is told about each batch it takes part in. */
export interface BatchInfo {
  /** Batch number, from 1. */
  batch: number;
  /** Sequences in the batch, all calls together. */
  sequences: number;
  /** This call's sequences in it. */
  ownSequences: number;
  /** Token cost of the batch. */
  tokens: number;
  /** Calls sharing it. */
  calls: number;
}

/** A job as submitted. */
export interface JobRequest<T> {
  /** The model (one loaded version); only jobs on the same object share a batch. */
  model: BatchModel;
  sampling: BatchSampling;
  sequences: SequenceRequest<T>[];
  /** Aborting it cancels the job. */
  signal?: AbortSignal;
  /** Called as each batch holding some of this job's sequences starts. */
  onBatch?: (info: BatchInfo) => void;
}

/** One finished sequence. */
export interface Finished<T> {
  tag: T;
  result: TextGenerationResult;
}

/** Where the scheduler reports batches (service-kit's logger fits). */
export interface SchedulerLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
}

/** A submitted job: its completions as they finish, and control over it. */
export interface GenerationRun<T> extends AsyncIterable<Finished<T>> {
  /** Stops the job (no-op once it has ended); its iteration rejects with `reason`. */
  cancel(reason?: unknown): void;
  /** Resolves once no batch computes any of its sequences (then its model may be freed). */
  readonly settled: Promise<void>;
}

/** A queue of completions for one consumer, ending with done or an error. */
class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;

  push(item: T): void {
    if (this.ended) return;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.waiter?.resolve({ value: undefined, done: true });
    this.waiter = undefined;
  }

  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = { error };
    this.items.length = 0;
    this.waiter?.reject(error);
    this.waiter = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
        if (this.failure) return Promise.reject(this.failure.error);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
    };
  }
}

type JobState = 'active' | 'done' | 'failed' | 'cancelled';

class Job<T> {
  readonly output = new Channel<Finished<T>>();
  state: JobState = 'active';
  /** Sequences not handed to a batch yet; `next` is the first. */
  pending: SequenceRequest<T>[];
  next = 0;
  /** Sequences without a result yet (pending or running). */
  unfinished: number;
  /** Its sequences in the running batch. */
  running = 0;
  private settle!: () => void;
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    readonly id: number,
    readonly request: JobRequest<T>,
    readonly samplingKey: string,
  ) {
    this.pending = request.sequences;
    this.unfinished = request.sequences.length;
  }

  get hasPending(): boolean {
    return this.next < this.pending.length;
  }

  get isActive(): boolean {
    return this.state === 'active';
  }

  end(state: Exclude<JobState, 'active'>, error?: unknown): void {
    if (!this.isActive) return;
    this.state = state;
    this.pending = [];
    this.next = 0;
    if (state === 'done') this.output.close();
    else this.output.fail(error);
    this.checkSettled();
  }

  checkSettled(): void {
    if (!this.isActive && this.running === 0) this.settle();
  }
}

interface BatchEntry<T> {
  job: Job<T>;
  sequence: SequenceRequest<T>;
  finished: boolean;
}

interface RunningBatch {
  entries: BatchEntry<unknown>[];
  controller: AbortController;
}

function samplingKeyOf(sampling: BatchSampling): string {
  return JSON.stringify([sampling.temperature, sampling.topP, sampling.topK, sampling.maxNewTokens, sampling.stop]);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Merges concurrent jobs into generateText batches under a sequence and token budget. */
export class BatchScheduler {
  private readonly queue: Job<unknown>[] = [];
  private running: RunningBatch | undefined;
  private pumping = false;
  private nextJobId = 1;
  private batches = 0;

  constructor(
    private readonly limits: SchedulerLimits,
    private readonly logger?: SchedulerLogger,
  ) {
    if (!(Number.isInteger(limits.maxBatchSequences) && limits.maxBatchSequences >= 1)) throw new RangeError('maxBatchSequences must be an integer >= 1');
    if (!(Number.isInteger(limits.maxBatchTokens) && limits.maxBatchTokens >= 1)) throw new RangeError('maxBatchTokens must be an integer >= 1');
  }

  /** Jobs waiting or running. */
  get queuedJobs(): number {
    return this.queue.length;
  }

  /** Queues a job; its completions stream from the returned run as they finish. */
  submit<T>(request: JobRequest<T>): GenerationRun<T> {
    const job = new Job<T>(this.nextJobId++, request, samplingKeyOf(request.sampling));
    const run: GenerationRun<T> = {
      [Symbol.asyncIterator]: () => job.output[Symbol.asyncIterator](),
      cancel: (reason) => this.cancel(job as Job<unknown>, reason ?? new Error('generation cancelled')),
      settled: job.settled,
    };
    if (request.sequences.length === 0) {
      job.end('done');
      return run;
    }
    const signal = request.signal;
    if (signal) {
      if (signal.aborted) {
        job.end('cancelled', signal.reason);
        return run;
      }
      const onAbort = () => this.cancel(job as Job<unknown>, signal.reason ?? new Error('generation cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      void job.settled.then(() => signal.removeEventListener('abort', onAbort));
    }
    this.queue.push(job as Job<unknown>);
    void this.pump();
    return run;
  }

  private cancel(job: Job<unknown>, reason: unknown): void {
    if (!job.isActive) return;
    const dropped = job.pending.length - job.next;
    this.removeFromQueue(job);
    job.end('cancelled', reason);
    const batch = this.running;
    if (!batch || job.running === 0) {
      this.logger?.debug('generation cancelled', { job: job.id, droppedSequences: dropped });
      return;
    }
    let cancelled = 0;
    let open = 0;
    for (const entry of batch.entries) {
      if (entry.finished) continue;
      open++;
      if (!entry.job.isActive) cancelled++;
    }
    const abort = cancelled * 2 >= open;
    this.logger?.debug('generation cancelled', { job: job.id, droppedSequences: dropped, runningSequences: job.running, abortBatch: abort });
    if (abort) batch.controller.abort(reason);
  }

  private removeFromQueue(job: Job<unknown>): void {
    const index = this.queue.indexOf(job);
    if (index !== -1) this.queue.splice(index, 1);
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        // Lets cancellations, new calls and stream writes in between batches.
        await yieldToEventLoop();
        const entries = this.nextBatch();
        if (!entries) break;
        await this.runBatch(entries);
      }
    } finally {
      this.pumping = false;
    }
  }

  private nextBatch(): BatchEntry<unknown>[] | undefined {
    const head = this.queue.find((job) => job.hasPending);
    if (!head) return undefined;
    const { maxBatchSequences, maxBatchTokens } = this.limits;
    const entries: BatchEntry<unknown>[] = [];
    const contributors: Job<unknown>[] = [];
    let tokens = 0;
    let full = false;
    for (const job of this.queue) {
      if (full) break;
      if (job.request.model !== head.request.model || job.samplingKey !== head.samplingKey || !job.hasPending) continue;
      const before = entries.length;
      while (job.hasPending) {
        const sequence = job.pending[job.next];
        if (entries.length >= maxBatchSequences || (entries.length > 0 && tokens + sequence.cost > maxBatchTokens)) {
          full = true;
          break;
        }
        job.next++;
        entries.push({ job, sequence, finished: false });
        tokens += sequence.cost;
      }
      if (entries.length > before) contributors.push(job);
    }
    // Round robin: a job that gave sequences goes behind the others; one with nothing left leaves the queue.
    for (const job of contributors) {
      this.removeFromQueue(job);
      if (job.hasPending) this.queue.push(job);
    }
    return entries;
  }

  private async runBatch(entries: BatchEntry<unknown>[]): Promise<void> {
    const batchNumber = ++this.batches;
    const controller = new AbortController();
    const batch: RunningBatch = { entries, controller };
    this.running = batch;
    const jobs = [...new Set(entries.map((e) => e.job))];
    const tokens = entries.reduce((sum, e) => sum + e.sequence.cost, 0);
    for (const job of jobs) {
      const own = entries.filter((e) => e.job === job).length;
      job.running += own;
      job.request.onBatch?.({ batch: batchNumber, sequences: entries.length, ownSequences: own, tokens, calls: jobs.length });
    }
    const { model, sampling } = jobs[0].request;
    const deliver = (entry: BatchEntry<unknown>, result: TextGenerationResult) => {
      if (entry.finished) return;
      entry.finished = true;
      const job = entry.job;
      if (!job.isActive) return;
      job.unfinished--;
      job.output.push({ tag: entry.sequence.tag, result });
      if (job.unfinished === 0) job.end('done');
    };
    const started = Date.now();
    this.logger?.debug('batch started', { batch: batchNumber, sequences: entries.length, tokens, calls: jobs.length });
    try {
      const results = await model.generateText(
        entries.map((e) => ({ key: e.sequence.key, prompt: e.sequence.prompt })),
        {
          maxNewTokens: sampling.maxNewTokens,
          temperature: sampling.temperature,
          topP: sampling.topP,
          topK: sampling.topK,
          seed: BATCH_SEED,
          stop: sampling.stop,
          signal: controller.signal,
          onFinished: (index, result) => deliver(entries[index], result),
        },
      );
      results.forEach((result, i) => deliver(entries[i], result));
      this.logger?.debug('batch finished', { batch: batchNumber, sequences: entries.length, ms: Date.now() - started });
    } catch (error) {
      if (controller.signal.aborted) {
        // Preempted for a cancelled call: the others' unfinished sequences go back to the head of the queue.
        const requeued = new Map<Job<unknown>, SequenceRequest<unknown>[]>();
        for (const entry of entries) {
          if (entry.finished || !entry.job.isActive) continue;
          const list = requeued.get(entry.job) ?? [];
          list.push(entry.sequence);
          requeued.set(entry.job, list);
        }
        for (const [job, sequences] of [...requeued].reverse()) {
          job.pending = [...sequences, ...job.pending.slice(job.next)];
          job.next = 0;
          this.removeFromQueue(job);
          this.queue.unshift(job);
        }
        this.logger?.debug('batch aborted', {
          batch: batchNumber,
          sequences: entries.length,
          finished: entries.filter((e) => e.finished).length,
          requeued: [...requeued.values()].reduce((sum, list) => sum + list.length, 0),
          ms: Date.now() - started,
        });
      } else {
        for (const job of jobs) {
          this.removeFromQueue(job);
          job.end('failed', error);
        }
      }
    } finally {
      this.running = undefined;
      for (const entry of entries) entry.job.running--;
      for (const job of jobs) job.checkSettled();
    }
  }
}
