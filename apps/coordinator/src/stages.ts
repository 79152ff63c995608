// What each kind of stage computes (design: data, eval/m<k>, sft,
// iter-t/sample, iter-t/logprobs/m<k>, iter-t/judge, iter-t/consistency,
// iter-t/train), from the run's stored outputs and through the services.
// A stage returns its output; the attempt (attempt.ts) stores it before the
// next stage starts. Generators and judges are reached through ReplicaSets
// in fixed-size shards with at most one shard in flight per replica, and
// every random draw is seeded from the run seed and the stage name (never
// from the sharding), so a recomputed stage gives the same result.
import { createHash } from 'node:crypto';
import type {
  Completion,
  ConsistencyScorerServiceClient,
  GeneratorServiceClient,
  JudgeServiceClient,
  Prompt,
  RunSpec,
  SftExample,
  TrainerServiceClient,
  TrainJobSpec,
  TrainProgress,
} from '@cream/proto';
import { MismatchPolicy, TrainKind } from '@cream/proto';
import type { ModelRegistry } from '@cream/store';
import { checkResponse, summarizeResults, type ChatMessage, type ItemResult, type TaskItem } from '@cream/tasks';
import { loadRunData, type PromptItem, type RunData } from './data';
import { logprobModels, type PlannedStage } from './plan';
import type { ReplicaSet } from './replicas';
import { BroadcastError, isTransportFailure } from './replicas-errors';
import {
  dpoRewardSets,
  groupSamples,
  isScorable,
  meanMargin,
  oracleScoreSet,
  pairsFromScores,
  rubricScoreSet,
  sampleId,
  trainingPairs,
  type LogprobRecord,
  type SampleRecord,
  type TrainingPair,
} from './rewards';
import { compare, ensureGeneratorVersion, generateAll, judgeWithinContext, runTrainJob, scoreAll } from './rpc';
import { deriveSeed, methodName } from './spec';

/** A stage's output: a JSON summary, its numeric metrics, and its item records (stored as JSONL). */
export interface StageOutput<Summary = unknown, Item = unknown> {
  summary: Summary;
  metrics: Record<string, number>;
  items: Item[];
}

/** Shard sizes of the sharded stages (fixed per run: results do not depend on them across attempts). */
export const SHARD_SIZES = Object.freeze({ generatePrompts: 8, evalItems: 8, scoreItems: 32, judgeItems: 8 });

/** What stage executors use. */
export interface StageContext {
  runId: string;
  spec: RunSpec;
  registry: ModelRegistry;
  generators: ReplicaSet<GeneratorServiceClient>;
  judges: ReplicaSet<JudgeServiceClient>;
  scorer: ConsistencyScorerServiceClient;
  trainer: TrainerServiceClient;
  signal: AbortSignal;
  /** Reads a stored stage's output (cached). */
  output<S, I = unknown>(stage: string): Promise<StageOutput<S, I>>;
  /** Reports progress inside the running stage. */
  progress(stage: string, done: number, total: number, unit: string): void;
}

/** The eval stage's summary. */
export interface EvalSummary {
  version: string;
  tasks: { task: string; accuracy: number; numItems: number; numCorrect: number; numUnparsable: number }[];
  meanAccuracy: number;
  numItems: number;
}

/** The train (and sft) stage's summary. */
export interface TrainSummary {
  /** The version M_{k} this stage produced (its base when there was nothing to train on). */
  version: string;
  parent: string;
  skipped: boolean;
  reused: boolean;
  pairs: number;
  steps: number;
  lossFirst: number | null;
  lossLast: number | null;
  jobId: string;
}

/** The sample stage's summary. */
export interface SampleSummary {
  version: string;
  seed: number;
}

/** The judge stage's item. */
export interface JudgeRecord {
  id: string;
  meanScore: number | null;
  numParsed: number;
  numUnparsed: number;
}

/** The consistency stage's summary. */
export interface ConsistencySummary {
  /** C: the mean c_i over the prompts that have one (measured for every method). */
  consistencyRate: number;
  rate: { mean: number; min: number; max: number; std: number; count: number };
  prompts: { promptId: string; statistic: number; consistency: number; numResponses: number }[];
  leftOut: { promptId: string; reason: number; detail: string }[];
  /** Prompts that gave no pair under the method's scores. */
  noPairPromptIds: string[];
  /** What the pairs were built from. */
  pairSource: 'dpo-rewards' | 'rubric' | 'oracle';
  /** The pairs that train the next model, with their weights. */
  pairs: TrainingPair[];
  droppedIdentical: number;
  rewardMargin: number;
}

function chatPrompt(id: string, messages: readonly ChatMessage[]): Prompt {
  return { id, content: { $case: 'chat', value: { messages: messages.map((m) => ({ role: m.role, content: m.content })) } } };
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** M_k's registry version: the base for k = 0, else what the stage that produced it stored. */
export async function modelVersion(ctx: StageContext, k: number): Promise<string> {
  if (k === 0) return ctx.spec.baseVersion;
  const producer = k === 1 ? 'sft' : `iter-${k - 1}/train`;
  return (await ctx.output<TrainSummary>(producer)).summary.version;
}

/** The version name the trainer publishes for M_k of this run. */
export function outputVersionName(runId: string, k: number): string {
  return `${runId}-m${k}`;
}

async function runData(ctx: StageContext): Promise<RunData> {
  return (await ctx.output<RunData>('data')).summary;
}

async function dataStage(ctx: StageContext): Promise<StageOutput<RunData>> {
  const data = await loadRunData(ctx.spec.data!, ctx.spec.iterations);
  const prompts = data.iterations.reduce((sum, subset) => sum + subset.length, 0);
  const evalItems = data.evalSets.reduce((sum, set) => sum + set.items.length, 0);
  return { summary: data, items: [], metrics: { sft_examples: data.sft.length, prompts, eval_items: evalItems } };
}

async function evalStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<EvalSummary, ItemResult>> {
  const version = await modelVersion(ctx, stage.model!);
  const items: TaskItem[] = (await runData(ctx)).evalSets.flatMap((set) => set.items);
  const sampling = ctx.spec.sampling!;
  let done = 0;
  const shards = chunk(items, SHARD_SIZES.evalItems);
  await swapEveryGenerator(ctx, version);
  const results = await ctx.generators.map(
    shards,
    async (client, shard) => {
      const completions = await generateAll(
        client,
        {
          prompts: shard.map((item) => chatPrompt(item.id, [{ role: 'user', content: item.prompt }])),
          numSamples: 1,
          // Greedy decoding, the paper's evaluation protocol.
          sampling: { temperature: 0, topP: 1, topK: 0, maxNewTokens: sampling.maxNewTokens, stop: sampling.stop, seed: 0 },
          modelVersion: version,
        },
        ctx.signal,
      );
      const byId = new Map(completions.map((c) => [c.promptId, c.text]));
      return shard.map((item): ItemResult => {
        const response = byId.get(item.id);
        if (response === undefined) throw new Error(`the generator returned no completion for eval item "${item.id}"`);
        return { id: item.id, task: item.task, response, ...checkResponse(item, response) };
      });
    },
    {
      stage: stage.name,
      prepare: (client) => ensureGeneratorVersion(client, version, ctx.signal),
      onShardDone: (_, result) => ctx.progress(stage.name, (done += result.length), items.length, 'items'),
    },
  );
  const report = summarizeResults(results.flat());
  const metrics: Record<string, number> = { mean_accuracy: report.meanAccuracy, items: report.numItems };
  for (const task of report.tasks) metrics[`accuracy/${task.task}`] = task.accuracy;
  return { summary: { version, tasks: report.tasks, meanAccuracy: report.meanAccuracy, numItems: report.numItems }, metrics, items: report.items };
}

/**
 * Swaps every generator replica to `version` and waits for each to confirm,
 * before the stage hands out any work. A replica that cannot be reached at all
 * (a transport failure: it is down, or gone from DNS) is left out of the stage
 * rather than failing it, since the shard queue's `prepare` swaps and confirms
 * it before it gets work if it comes back; a replica that answers and refuses
 * the swap, or no confirmed replica at all, fails the stage.
 */
async function swapEveryGenerator(ctx: StageContext, version: string): Promise<void> {
  try {
    await ctx.generators.broadcast((client) => ensureGeneratorVersion(client, version, ctx.signal));
  } catch (error) {
    if (!(error instanceof BroadcastError)) throw error;
    const unreachableOnly = [...error.failures.values()].every(isTransportFailure);
    if (!unreachableOnly || error.failures.size >= error.numReplicas) throw error;
  }
}

function sha256Json(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value), 'utf8').digest('hex');
}

/** What a train stage trains on: SFT examples, or preference pairs with their prompts. */
export interface TrainInput {
  sft?: SftExample[];
  pairs?: (TrainingPair & { prompt: Prompt })[];
}

/**
 * The recipe a train stage records in the version it publishes, and checks on
 * a version of that name it finds already published: the method, the run, the
 * stage, and the sha256 of everything the job is made of.
 */
export function trainRecipe(ctx: Pick<StageContext, 'runId' | 'spec'>, stage: PlannedStage, kind: TrainKind, base: string, data: TrainInput, consistencyRate: number): Record<string, string> {
  return {
    method: kind === TrainKind.TRAIN_KIND_SFT ? 'sft' : methodName(ctx.spec.method),
    runId: ctx.runId,
    stage: stage.name,
    iteration: String(stage.iteration),
    inputSha256: sha256Json({ base, data, consistencyRate, hyperparameters: kind === TrainKind.TRAIN_KIND_SFT ? ctx.spec.sft : ctx.spec.dpo }),
  };
}

/**
 * Runs a trainer job that publishes M_k, or reuses M_k when an earlier attempt
 * published it before its stage was stored (same parent, same recipe);
 * a version of that name made otherwise fails the stage.
 */
async function trainJob(ctx: StageContext, stage: PlannedStage, kind: TrainKind, base: string, data: TrainInput, consistencyRate: number): Promise<StageOutput<TrainSummary>> {
  const output = outputVersionName(ctx.runId, stage.model!);
  const count = (data.sft ?? data.pairs ?? []).length;
  const countKey = kind === TrainKind.TRAIN_KIND_SFT ? 'examples' : 'pairs';
  const recipe = trainRecipe(ctx, stage, kind, base, data, consistencyRate);
  if (await ctx.registry.has(output)) {
    const manifest = await ctx.registry.get(output);
    const mismatch = Object.entries(recipe).find(([key, value]) => manifest.recipe[key] !== value);
    if (manifest.parent !== base || mismatch !== undefined) {
      throw new Error(
        `version ${output} is already in the registry but was not made by this stage (parent ${manifest.parent ?? 'none'}, expected ${base}` +
          `${mismatch ? `; recipe ${mismatch[0]} is ${String(manifest.recipe[mismatch[0]])}, expected ${mismatch[1]}` : ''}); remove it or start a new run`,
      );
    }
    const metrics = manifest.recipe.metrics as { steps?: number; final_loss?: number };
    const summary: TrainSummary = {
      version: output,
      parent: base,
      skipped: false,
      reused: true,
      pairs: count,
      steps: metrics.steps ?? 0,
      lossFirst: null,
      lossLast: metrics.final_loss ?? null,
      jobId: String(manifest.recipe.jobId ?? ''),
    };
    return { summary, items: [], metrics: { steps: summary.steps, ...(summary.lossLast === null ? {} : { loss_last: summary.lossLast }), [countKey]: count } };
  }
  // A job id of its own per attempt: the trainer keeps the ids of jobs a killed attempt left behind.
  const jobId = `${output}-${Date.now().toString(36)}`;
  const spec: TrainJobSpec = {
    jobId,
    kind,
    baseVersion: base,
    referenceVersion: kind === TrainKind.TRAIN_KIND_DPO ? base : '',
    outputVersion: output,
    hyperparameters: kind === TrainKind.TRAIN_KIND_SFT ? ctx.spec.sft : ctx.spec.dpo,
    consistencyRate: kind === TrainKind.TRAIN_KIND_DPO ? consistencyRate : undefined,
    waitIfBusy: true,
    seed: deriveSeed(ctx.spec.seed, stage.name),
    recipe,
  };
  const chunks = data.sft
    ? chunk(data.sft, 1024).map((sftExamples) => ({ sftExamples, preferencePairs: [] }))
    : chunk(data.pairs ?? [], 1024).map((pairs) => ({
        sftExamples: [],
        preferencePairs: pairs.map((pair) => ({ id: pair.id, prompt: pair.prompt, chosen: pair.chosen, rejected: pair.rejected, weight: pair.weight })),
      }));
  const { job, progress } = await runTrainJob(ctx.trainer, spec, chunks, ctx.signal, (step: TrainProgress) => ctx.progress(stage.name, step.step, step.totalSteps, 'steps'));
  const first = progress[0];
  const last = progress[progress.length - 1];
  const summary: TrainSummary = {
    version: job.publishedVersion,
    parent: base,
    skipped: false,
    reused: false,
    pairs: count,
    steps: last?.totalSteps ?? 0,
    lossFirst: first?.loss ?? null,
    lossLast: last?.loss ?? null,
    jobId,
  };
  const metrics: Record<string, number> = { steps: summary.steps, [countKey]: count };
  if (first) metrics.loss_first = first.loss;
  if (last) metrics.loss_last = last.loss;
  return { summary, items: [], metrics };
}

/** The trainer's SFT examples of the run's data. */
export function sftExamples(data: RunData): SftExample[] {
  return data.sft.map((example) => ({ id: example.id, prompt: chatPrompt(example.id, example.messages), response: example.response }));
}

async function sftStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<TrainSummary>> {
  return trainJob(ctx, stage, TrainKind.TRAIN_KIND_SFT, await modelVersion(ctx, 0), { sft: sftExamples(await runData(ctx)) }, 1);
}

async function iterationPrompts(ctx: StageContext, t: number): Promise<PromptItem[]> {
  return (await runData(ctx)).iterations[t - 1];
}

async function sampleStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<SampleSummary, SampleRecord>> {
  const t = stage.iteration;
  const version = await modelVersion(ctx, t);
  const prompts = await iterationPrompts(ctx, t);
  const seed = deriveSeed(ctx.spec.seed, stage.name);
  const numSamples = ctx.spec.numSamples;
  const total = prompts.length * numSamples;
  let done = 0;
  await swapEveryGenerator(ctx, version);
  const results = await ctx.generators.map(
    chunk(prompts, SHARD_SIZES.generatePrompts),
    async (client, shard) =>
      generateAll(
        client,
        // The generator seeds each sequence from (seed, prompt id, sample index): the shard does not matter.
        { prompts: shard.map((prompt) => chatPrompt(prompt.id, prompt.messages)), numSamples, sampling: { ...ctx.spec.sampling!, seed }, modelVersion: version },
        ctx.signal,
      ),
    {
      stage: stage.name,
      prepare: (client) => ensureGeneratorVersion(client, version, ctx.signal),
      onShardDone: (_, result) => ctx.progress(stage.name, (done += result.length), total, 'completions'),
    },
  );
  const byId = new Map<string, Completion>();
  for (const completion of results.flat()) byId.set(sampleId(completion.promptId, completion.sampleIndex), completion);
  const items: SampleRecord[] = [];
  for (const prompt of prompts) {
    for (let i = 0; i < numSamples; i++) {
      const completion = byId.get(sampleId(prompt.id, i));
      if (completion === undefined) throw new Error(`the generators returned no sample ${i} for prompt "${prompt.id}"`);
      items.push({
        id: sampleId(prompt.id, i),
        promptId: prompt.id,
        index: i,
        text: completion.text,
        numTokens: completion.tokenIds.length,
        finishReason: String(completion.finishReason),
        logprobSum: completion.logprobSum,
        sequenceSeed: completion.sequenceSeed,
      });
    }
  }
  const tokens = items.reduce((sum, item) => sum + item.numTokens, 0);
  return { summary: { version, seed }, items, metrics: { completions: items.length, tokens } };
}

async function samplesOf(ctx: StageContext, t: number): Promise<SampleRecord[]> {
  return (await ctx.output<SampleSummary, SampleRecord>(`iter-${t}/sample`)).items;
}

/**
 * Runs `call` over iteration t's scorable responses on the judges, in shards
 * of `size`, each response given with its prompt; results in response order.
 * An empty response is left out (the judge refuses it): it is a missing score downstream.
 */
async function overResponses<R>(
  ctx: StageContext,
  stage: PlannedStage,
  size: number,
  call: (client: JudgeServiceClient, items: { id: string; prompt: Prompt; response: string }[]) => Promise<R[]>,
): Promise<{ results: R[]; count: number }> {
  const prompts = new Map((await iterationPrompts(ctx, stage.iteration)).map((prompt) => [prompt.id, prompt]));
  const samples = (await samplesOf(ctx, stage.iteration)).filter(isScorable);
  const items = samples.map((sample) => ({ id: sample.id, prompt: chatPrompt(sample.id, prompts.get(sample.promptId)!.messages), response: sample.text }));
  let done = 0;
  const results = await ctx.judges.map(chunk(items, size), call, {
    stage: stage.name,
    onShardDone: (_, result) => ctx.progress(stage.name, (done += result.length), items.length, 'items'),
  });
  const flat = results.flat();
  if (flat.length !== items.length) throw new Error(`the judges answered for ${flat.length} of ${items.length} responses`);
  return { results: flat, count: items.length };
}

async function logprobStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<{ version: string }, LogprobRecord>> {
  const version = await modelVersion(ctx, stage.model!);
  const { results } = await overResponses(ctx, stage, SHARD_SIZES.scoreItems, (client, shard) =>
    scoreAll(client, { modelVersion: version, items: shard.map(({ id, prompt, response }) => ({ id, input: { $case: 'text', value: { prompt, response } } })) }, ctx.signal),
  );
  const items: LogprobRecord[] = results.map((r) => ({ id: r.id, sum: r.logprobSum, mean: r.logprobMean, numTokens: r.numTokens }));
  return { summary: { version }, items, metrics: { items: items.length } };
}

async function judgeStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<{ version: string }, JudgeRecord>> {
  const version = await modelVersion(ctx, stage.iteration);
  const rubric = ctx.spec.rubric!;
  const seed = deriveSeed(ctx.spec.seed, stage.name);
  const tooLong = new Set<string>();
  const { results } = await overResponses(ctx, stage, SHARD_SIZES.judgeItems, async (client, shard) => {
    const request = { modelVersion: version, items: shard.map(({ id, prompt, response }) => ({ id, item: { prompt, response } })), numJudgments: rubric.numJudgments, sampling: { ...rubric.sampling!, seed }, style: rubric.style };
    const { judged, tooLong: left } = await judgeWithinContext(client, request, ctx.signal);
    for (const id of left) tooLong.add(id);
    // One record per item, in shard order: an item the judge could not fit is unscored.
    const byId = new Map(judged.map((r) => [r.id, r]));
    return shard.map(({ id }) => byId.get(id) ?? { id, judgments: [], meanScore: undefined, numParsed: 0, numUnparsed: 0, modelVersion: version });
  });
  const items: JudgeRecord[] = results.map((r) => ({ id: r.id, meanScore: r.meanScore ?? null, numParsed: r.numParsed, numUnparsed: r.numUnparsed }));
  const parsed = items.reduce((sum, item) => sum + item.numParsed, 0);
  const unparsed = items.reduce((sum, item) => sum + item.numUnparsed, 0);
  // How informative the judge is: responses left without a score, and the mean of the others (a judge that saturates shows it here).
  const scores = items.flatMap((item) => (item.meanScore === null ? [] : [item.meanScore]));
  const metrics: Record<string, number> = { items: items.length, judgments_parsed: parsed, judgments_unparsed: unparsed, items_unscored: items.length - scores.length, items_too_long: tooLong.size };
  if (scores.length > 0) metrics.mean_score = scores.reduce((a, b) => a + b, 0) / scores.length;
  return { summary: { version }, items, metrics };
}

async function consistencyStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<ConsistencySummary>> {
  const t = stage.iteration;
  const prompts = await iterationPrompts(ctx, t);
  const groups = groupSamples(prompts, await samplesOf(ctx, t), ctx.spec.numSamples);
  const logprobs = new Map<number, Map<string, LogprobRecord>>();
  for (const k of logprobModels(t)) {
    const { items } = await ctx.output<unknown, LogprobRecord>(`iter-${t}/logprobs/m${k}`);
    logprobs.set(k, new Map(items.map((item) => [item.id, item])));
  }
  const { current, previous } = dpoRewardSets(t, groups, logprobs);
  const response = await compare(
    ctx.scorer,
    { current, previous, method: ctx.spec.consistency, ranking: ctx.spec.ranking, rate: ctx.spec.rate, mismatchPolicy: MismatchPolicy.MISMATCH_POLICY_LEAVE_OUT },
    ctx.signal,
  );
  const method = methodName(ctx.spec.method);
  let built: { pairs: { promptId: string; chosenIndex: number; rejectedIndex: number; chosenScore: number; rejectedScore: number; weight: number; weightIsOwn: boolean }[]; noPairPromptIds: string[] };
  let pairSource: ConsistencySummary['pairSource'];
  if (method === 'srlm') {
    const { items } = await ctx.output<unknown, { id: string; meanScore: number | null }>(`iter-${t}/judge`);
    built = pairsFromScores(rubricScoreSet(groups, new Map(items.map((item) => [item.id, item.meanScore]))));
    pairSource = 'rubric';
  } else if (method === 'oracle') {
    built = pairsFromScores(oracleScoreSet(groups, prompts));
    pairSource = 'oracle';
  } else {
    built = { pairs: response.pairs, noPairPromptIds: response.noPairPromptIds };
    pairSource = 'dpo-rewards';
  }
  // Only CREAM trains with the consistency weights; the baselines use C = 1.
  const { pairs, droppedIdentical } = trainingPairs(built.pairs, groups, method === 'cream');
  const rate = response.rate ?? { mean: 0, min: 0, max: 0, std: 0, count: 0 };
  const rewardMargin = meanMargin(pairs);
  const summary: ConsistencySummary = {
    consistencyRate: rate.mean,
    rate,
    prompts: response.prompts,
    leftOut: response.leftOut.map((entry) => ({ promptId: entry.promptId, reason: entry.reason, detail: entry.detail })),
    noPairPromptIds: built.noPairPromptIds,
    pairSource,
    pairs,
    droppedIdentical,
    rewardMargin,
  };
  return {
    summary,
    items: [],
    metrics: {
      consistency_rate: rate.mean,
      prompts: prompts.length,
      prompts_left_out: response.leftOut.length,
      pairs: pairs.length,
      ties: built.noPairPromptIds.length,
      reward_margin: rewardMargin,
    },
  };
}

async function trainStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput<TrainSummary>> {
  const t = stage.iteration;
  const base = await modelVersion(ctx, t);
  const consistency = (await ctx.output<ConsistencySummary>(`iter-${t}/consistency`)).summary;
  if (consistency.pairs.length === 0) {
    // Nothing to learn from: M_{t+1} is M_t (reported, not hidden).
    const summary: TrainSummary = { version: base, parent: base, skipped: true, reused: false, pairs: 0, steps: 0, lossFirst: null, lossLast: null, jobId: '' };
    return { summary, items: [], metrics: { steps: 0, pairs: 0, skipped: 1 } };
  }
  const prompts = new Map((await iterationPrompts(ctx, t)).map((prompt) => [prompt.id, prompt]));
  const pairs = consistency.pairs.map((pair) => ({ ...pair, prompt: chatPrompt(pair.id, prompts.get(pair.promptId)!.messages) }));
  const rate = methodName(ctx.spec.method) === 'cream' ? consistency.consistencyRate : 1;
  return trainJob(ctx, stage, TrainKind.TRAIN_KIND_DPO, base, { pairs }, rate);
}

/** Runs one stage and returns its output (not yet stored). */
export function executeStage(ctx: StageContext, stage: PlannedStage): Promise<StageOutput> {
  switch (stage.kind) {
    case 'data':
      return dataStage(ctx);
    case 'eval':
      return evalStage(ctx, stage);
    case 'sft':
      return sftStage(ctx, stage);
    case 'sample':
      return sampleStage(ctx, stage);
    case 'logprobs':
      return logprobStage(ctx, stage);
    case 'judge':
      return judgeStage(ctx, stage);
    case 'consistency':
      return consistencyStage(ctx, stage);
    case 'train':
      return trainStage(ctx, stage);
  }
}
