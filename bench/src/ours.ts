// Our side of a case, through @cream/model's public calls on the compute
// backend already chosen: the training step is trainSft's own loop (forward,
// backward, clipping, AdamW), scoring is scoreResponses, generation and
// prefill are generate (greedy, KV cache). Each group runs `warmup` untimed
// times, then `repeats` timed times; afterwards one untimed pass of each
// group under tf.profile gives the peak of live tensor bytes.
import { attentionKeepLimit, defaultAttentionKeepBytes, nativeCallTime, type ComputeInfo } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import {
  createModelConfig,
  createWeights,
  fromHostTensors,
  generate,
  initWeights,
  LlamaModel,
  loadCheckpoint,
  randomStream,
  randomUniform,
  scoreResponses,
  trainSft,
  type ModelWeights,
  type SftExample,
} from '@cream/model';
import type { AgreementInput, AgreementResult } from './baseline';
import type { BenchCase, MetricGroup } from './cases';
import { generateMetric, samplesOf, type ImplementationResult, type MetricSamples } from './results';

/**
 * "tfjs wasm+native (avx512f, 2 threads)": the variant, its CPU features and
 * threads, and the attention keep limit when it is not the default one.
 */
export function describeCompute(info: ComputeInfo, keepBytes = attentionKeepLimit()): string {
  const details = [info.simd, `${info.threads} thread${info.threads === 1 ? '' : 's'}`].filter((d) => d !== '');
  if (keepBytes !== defaultAttentionKeepBytes) details.push(`attention probabilities kept up to ${keepBytes / (1024 * 1024)} MiB`);
  return `tfjs ${info.variant} (${details.join(', ')})`;
}

/** Random token ids of one row, the `key`-th row of the case's stream. */
function tokenRow(benchCase: BenchCase, key: string, length: number): number[] {
  const stream = randomStream(benchCase.seed, key);
  return Array.from({ length }, (_, i) => Math.floor(randomUniform(stream, i) * benchCase.shape.vocabSize));
}

async function loadWeights(benchCase: BenchCase): Promise<{ model: LlamaModel; weights: ModelWeights }> {
  if (benchCase.checkpoint === null) {
    const config = createModelConfig({ ...benchCase.shape, eosTokenIds: [] });
    const weights = initWeights(config, benchCase.seed);
    return { model: new LlamaModel(config, weights), weights };
  }
  const checkpoint = await loadCheckpoint(benchCase.checkpoint);
  const tensors = fromHostTensors(checkpoint.tensors);
  try {
    // The checkpoint's own config (its biases, norms, scaling), without EOS so greedy runs never stop early.
    const ownConfig = createModelConfig({ ...checkpoint.config, eosTokenIds: [] });
    const weights = createWeights(ownConfig, tensors);
    return { model: new LlamaModel(ownConfig, weights), weights };
  } finally {
    for (const tensor of tensors.values()) tensor.dispose();
  }
}

/** Times `run` after `warmup` untimed calls: one sample (ms) per timed call. */
async function timeRuns(warmup: number, repeats: number, run: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return times;
}

// Training examples of `seq` tokens: one prompt token and seq - 1 response tokens,
// so the model reads seq tokens and the loss covers seq - 1 next tokens per row.
function trainingExamples(benchCase: BenchCase, steps: number, group: 'train' | 'long'): SftExample[] {
  const { batch, seq } = benchCase.workload[group];
  return Array.from({ length: batch * steps }, (_, i) => {
    const row = tokenRow(benchCase, `${group}/${i}`, seq);
    return { promptIds: row.slice(0, 1), responseIds: row.slice(1) };
  });
}

// The varied-length rows as examples (random tokens): one batch, every step's.
function variedExamples(benchCase: BenchCase): SftExample[] {
  return benchCase.workload.varied.rows.map(({ prompt, response }, i) => {
    const row = tokenRow(benchCase, `varied/${i}`, prompt + response);
    return { promptIds: row.slice(0, prompt), responseIds: row.slice(prompt) };
  });
}

/**
 * Per step of one trainSft run over `examples` in batches of `batch` for
 * `epochs` epochs: its wall time (ms), the part of it spent inside native
 * addon calls (zero without the addon), and its loss and gradient norm.
 * `packing` as TrainOptions' (default: packed).
 */
async function trainStepTimes(
  model: LlamaModel,
  examples: SftExample[],
  batch: number,
  epochs: number,
  packing = true,
): Promise<{ times: number[]; native: number[]; progress: Array<{ loss: number; gradNorm: number }> }> {
  const stamps: number[] = [performance.now()];
  const nativeStamps: number[] = [nativeCallTime().ms];
  const progress: Array<{ loss: number; gradNorm: number }> = [];
  await trainSft(
    model,
    examples,
    // A constant rate (a schedule costs nothing), PyTorch's AdamW defaults.
    { batchSize: batch, epochs, learningRate: 1e-4, schedule: 'constant', warmupRatio: 0 },
    {
      packing,
      onStep: ({ loss, gradNorm }) => {
        stamps.push(performance.now());
        nativeStamps.push(nativeCallTime().ms);
        progress.push({ loss, gradNorm });
      },
    },
  );
  const perStep = (values: number[]) => values.slice(1).map((value, i) => value - values[i]);
  return { times: perStep(stamps), native: perStep(nativeStamps), progress };
}

/**
 * Our AgreementResult on a case (the baseline's `--check`): the logits of the
 * rows, then `steps` of the case's training step on them (the train group's
 * own trainSft call, every row one example of one prompt token), then the
 * weights, so a test can show that both sides compute the same model and step.
 */
export async function checkOurs(benchCase: BenchCase, input: AgreementInput): Promise<AgreementResult> {
  const { model, weights } = await loadWeights(benchCase);
  try {
    const rows = input.rows.map((row) => [...row]);
    const logits = model.forward(rows);
    const flat = Array.from(await logits.data());
    logits.dispose();
    const examples = rows.map((row) => ({ promptIds: row.slice(0, 1), responseIds: row.slice(1) }));
    const { progress } = input.steps > 0 ? await trainStepTimes(model, examples, examples.length, input.steps) : { progress: [] };
    const after: Record<string, number[]> = {};
    for (const [name, weight] of model.weights) after[name] = Array.from(await weight.data());
    return { logits: flat, steps: progress, weights: after };
  } finally {
    for (const weight of weights.values()) weight.dispose();
  }
}

/** The work of each group, once. */
function groupRuns(model: LlamaModel, benchCase: BenchCase): Record<Exclude<MetricGroup, 'train' | 'varied' | 'long'>, Array<{ metric: string; tokens: number; run: () => Promise<unknown> }>> {
  const { score, generate: gen, prefill } = benchCase.workload;
  const scoreItems = Array.from({ length: score.items }, (_, i) => {
    const row = tokenRow(benchCase, `score/${i}`, score.prompt + score.response);
    return { promptIds: row.slice(0, score.prompt), responseIds: row.slice(score.prompt) };
  });
  const greedy = (requests: Array<{ promptIds: number[]; key: number }>, maxNewTokens: number) => () =>
    generate(model, requests, { maxNewTokens, temperature: 0, eosTokenIds: [] });
  const prompts = (batch: number, length: number, what: string) =>
    Array.from({ length: batch }, (_, i) => ({ promptIds: tokenRow(benchCase, `${what}/${batch}/${i}`, length), key: i }));
  return {
    score: [{ metric: 'score_tokens_per_s', tokens: score.items * (score.prompt + score.response), run: () => scoreResponses(model, scoreItems, { batchSize: score.items }) }],
    generate: gen.batches.map((batch) => ({
      metric: generateMetric(batch),
      tokens: batch * gen.newTokens,
      run: greedy(prompts(batch, gen.prompt, 'generate'), gen.newTokens),
    })),
    prefill: [{ metric: 'prefill_ms', tokens: 0, run: greedy(prompts(prefill.batch, prefill.prompt, 'prefill'), 1) }],
  };
}

/** Measures every group of `benchCase` the case asks for; `backend` names the compute backend. */
export async function measureOurs(benchCase: BenchCase, backend: string, threads: number): Promise<ImplementationResult> {
  const { model, weights } = await loadWeights(benchCase);
  const metrics: Record<string, MetricSamples> = {};
  const profiled: Array<() => Promise<unknown>> = [];
  try {
    const runs = groupRuns(model, benchCase);
    for (const group of benchCase.only) {
      const steps = benchCase.warmup + benchCase.repeats;
      if (group === 'varied') {
        // The one batch as `steps` epochs of one step: the same rows every step, as PyTorch's.
        const examples = variedExamples(benchCase);
        const timesOf = async (packing: boolean) => (await trainStepTimes(model, examples, examples.length, steps, packing)).times.slice(benchCase.warmup);
        metrics.train_varied_step_ms = samplesOf(await timesOf(true));
        metrics.train_varied_padded_step_ms = samplesOf(await timesOf(false));
        profiled.push(() => trainStepTimes(model, examples, examples.length, 1));
        continue;
      }
      if (group === 'train' || group === 'long') {
        const { batch } = benchCase.workload[group];
        const { times, native } = await trainStepTimes(model, trainingExamples(benchCase, steps, group), batch, 1);
        metrics[group === 'train' ? 'train_step_ms' : 'train_long_step_ms'] = samplesOf(times.slice(benchCase.warmup));
        // What the native kernels leave of the fixed-length step: the tfjs engine
        // (tape, dispatch, disposal), our JS around the kernels and the stock wasm kernels.
        if (group === 'train' && native.some((ms) => ms > 0)) metrics.train_outside_native_ms = samplesOf(times.map((ms, i) => ms - native[i]).slice(benchCase.warmup));
        profiled.push(() => trainStepTimes(model, trainingExamples(benchCase, 1, group), batch, 1));
        continue;
      }
      for (const { metric, tokens, run } of runs[group]) {
        const times = await timeRuns(benchCase.warmup, benchCase.repeats, run);
        metrics[metric] = samplesOf(group === 'prefill' ? times : times.map((ms) => tokens / (ms / 1000)));
        profiled.push(run);
      }
    }
    let peakBytes = tf.memory().numBytes;
    for (const run of profiled) {
      const profile = await tf.profile(async () => {
        await run();
        return [];
      });
      peakBytes = Math.max(peakBytes, profile.peakBytes);
    }
    metrics.peak_tensor_bytes = samplesOf([peakBytes]);
    // maxRSS is in kibibytes: the process's peak resident set, as the baseline's ru_maxrss.
    metrics.peak_rss_bytes = samplesOf([process.resourceUsage().maxRSS * 1024]);
  } finally {
    for (const weight of weights.values()) weight.dispose();
  }
  return { implementation: 'ours', backend, threads, metrics };
}
