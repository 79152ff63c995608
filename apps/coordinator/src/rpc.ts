// The coordinator's calls to the other services with the generated clients
// of @cream/proto: streams collected into arrays, unary calls as promises,
// the trainer's bidirectional stream, and a health probe with a short
// deadline. Every call takes the attempt's AbortSignal and cancels itself
// when it fires.
import { credentials, Metadata, status, type ClientOptions, type ClientReadableStream, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  ConsistencyScorerServiceClient,
  GeneratorServiceClient,
  HealthClient,
  JudgeServiceClient,
  TrainerServiceClient,
  type CompareRequest,
  type CompareResponse,
  type Completion,
  type GenerateRequest,
  type GetModelResponse,
  type Job,
  type JudgeWithRubricRequest,
  type JudgeWithRubricResponse,
  type ScoreLogProbsRequest,
  type ScoreLogProbsResponse,
  type TrainData,
  type TrainJobSpec,
  type TrainProgress,
} from '@cream/proto';

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Channel options of every client: large messages (whole shards, whole datasets). */
export const CHANNEL_OPTIONS: Partial<ClientOptions> = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
};

/** A generator client for one address. */
export function generatorClient(address: string): GeneratorServiceClient {
  return new GeneratorServiceClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
}
/** A judge client for one address. */
export function judgeClient(address: string): JudgeServiceClient {
  return new JudgeServiceClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
}
/** A consistency scorer client. */
export function scorerClient(address: string): ConsistencyScorerServiceClient {
  return new ConsistencyScorerServiceClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
}
/** A trainer client. */
export function trainerClient(address: string): TrainerServiceClient {
  return new TrainerServiceClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
}

/** Collects a server stream's messages; cancels the call when the signal fires. */
function collect<Res, Out>(call: ClientReadableStream<Res>, pick: (message: Res) => Out | undefined, signal: AbortSignal): Promise<Out[]> {
  return new Promise((resolve, reject) => {
    const out: Out[] = [];
    const onAbort = () => call.cancel();
    if (signal.aborted) call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    call.on('data', (message: Res) => {
      const value = pick(message);
      if (value !== undefined) out.push(value);
    });
    call.on('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(signal.aborted ? (signal.reason as Error) : error);
    });
    call.on('end', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(out);
    });
  });
}

/** A unary call as a promise; cancels the call when the signal fires. */
export function unary<Res>(start: (callback: (error: ServiceError | null, response: Res) => void) => ClientUnaryCall, signal: AbortSignal): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = start((error, response) => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(signal.aborted ? (signal.reason as Error) : error);
      else resolve(response);
    });
    const onAbort = () => call.cancel();
    if (signal.aborted) call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Every completion of a Generate call. */
export function generateAll(client: GeneratorServiceClient, request: GenerateRequest, signal: AbortSignal): Promise<Completion[]> {
  return collect(client.generate(request), (message) => message.completion, signal);
}

/** Every result of a ScoreLogProbs call, in request order. */
export function scoreAll(client: JudgeServiceClient, request: ScoreLogProbsRequest, signal: AbortSignal): Promise<ScoreLogProbsResponse[]> {
  return collect(client.scoreLogProbs(request), (message) => message, signal);
}

/** Every result of a JudgeWithRubric call, in request order. */
export function judgeAll(client: JudgeServiceClient, request: JudgeWithRubricRequest, signal: AbortSignal): Promise<JudgeWithRubricResponse[]> {
  return collect(client.judgeWithRubric(request), (message) => message, signal);
}

/** JudgeWithRubric's answers, and the items the judge could not fit in its context. */
export interface JudgedShard {
  /** One answer per judged item, in request order. */
  judged: JudgeWithRubricResponse[];
  /** Ids of items whose rubric prompt alone fills the judge model's context: left unscored. */
  tooLong: string[];
}

/**
 * JudgeWithRubric over a shard, leaving out the items the judge refuses
 * because their rubric prompt does not fit its model's context. The judge
 * names such an item in the `cream-field` trailer (`items[i].item`) of an
 * INVALID_ARGUMENT; the item is dropped and the call repeated for the rest, so
 * one long response costs the baseline one unscored response, not the run.
 * Any other error is thrown as it is.
 */
export async function judgeWithinContext(client: JudgeServiceClient, request: JudgeWithRubricRequest, signal: AbortSignal): Promise<JudgedShard> {
  let items = request.items;
  const tooLong: string[] = [];
  while (items.length > 0) {
    try {
      return { judged: await judgeAll(client, { ...request, items }, signal), tooLong };
    } catch (error) {
      const index = contextOverflowIndex(error);
      if (index === undefined || index >= items.length) throw error;
      tooLong.push(items[index].id);
      items = items.filter((_, i) => i !== index);
    }
  }
  return { judged: [], tooLong };
}

/** The item index of the judge's "rubric prompt longer than the context" refusal, else undefined. */
export function contextOverflowIndex(error: unknown): number | undefined {
  const e = error as Partial<ServiceError> | undefined;
  if (e?.code !== status.INVALID_ARGUMENT || !/context length/.test(String(e.details ?? e.message))) return undefined;
  const field = e.metadata?.get('cream-field')[0];
  const match = typeof field === 'string' ? /^items\[(\d+)\]\.item$/.exec(field) : null;
  return match ? Number(match[1]) : undefined;
}

/** The consistency scorer's Compare. */
export function compare(client: ConsistencyScorerServiceClient, request: CompareRequest, signal: AbortSignal): Promise<CompareResponse> {
  return unary<CompareResponse>((callback) => client.compare(request, callback), signal);
}

/** Makes a generator serve `version` (a hot swap, waited for) unless it already does. */
export async function ensureGeneratorVersion(client: GeneratorServiceClient, version: string, signal: AbortSignal): Promise<void> {
  const state = await unary<GetModelResponse>((callback) => client.getModel({}, callback), signal);
  if (state.serving?.info?.version === version) return;
  const loaded = await unary<{ state?: GetModelResponse }>((callback) => client.loadModel({ version, wait: true }, callback), signal);
  const serving = loaded.state?.serving?.info?.version;
  if (serving !== version) throw new Error(`the generator did not confirm version ${version} (it serves ${serving ?? 'nothing'})`);
}

/** The outcome of a Train job. */
export interface TrainOutcome {
  job: Job;
  progress: TrainProgress[];
}

/**
 * Runs one trainer job: the spec, the data in chunks, half-close; collects
 * the progress and returns the final job state. A job that ends other than
 * SUCCEEDED is an error naming its state and error.
 */
export function runTrainJob(
  client: TrainerServiceClient,
  spec: TrainJobSpec,
  chunks: readonly TrainData[],
  signal: AbortSignal,
  onProgress: (progress: TrainProgress) => void,
): Promise<TrainOutcome> {
  return new Promise((resolve, reject) => {
    const call = client.train();
    const progress: TrainProgress[] = [];
    let job: Job | undefined;
    const onAbort = () => call.cancel();
    if (signal.aborted) call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    call.on('data', (message: { event?: { $case: 'job'; value: Job } | { $case: 'progress'; value: TrainProgress } }) => {
      if (message.event?.$case === 'job') job = message.event.value;
      else if (message.event?.$case === 'progress') {
        progress.push(message.event.value);
        onProgress(message.event.value);
      }
    });
    call.on('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(signal.aborted ? (signal.reason as Error) : error);
    });
    call.on('end', () => {
      signal.removeEventListener('abort', onAbort);
      if (job === undefined) reject(new Error('the trainer ended the job stream without a job state'));
      else if (job.publishedVersion === '' || job.error !== '') {
        reject(new Error(`trainer job ${job.jobId} ended without publishing (state ${job.state}${job.error ? `: ${job.error}` : ''})`));
      } else resolve({ job, progress });
    });
    call.write({ item: { $case: 'spec', value: spec } });
    for (const data of chunks) call.write({ item: { $case: 'data', value: data } });
    call.end();
  });
}

/** Probes `address` with grpc.health.v1 Check; resolves when it answers (SERVING or not), rejects when unreachable. */
export function probe(address: string, deadlineMs: number): Promise<void> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + deadlineMs }, (error) => {
      client.close();
      // Any status from the health service means a server answered.
      if (error && (error.code === 14 || error.code === 4)) reject(error);
      else resolve();
    });
  });
}
