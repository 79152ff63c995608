// The training loops on a tiny decoder: gradient accumulation equals one big
// batch, SFT and DPO lower their losses, a step leaks no tensors, the
// reference log-probs make the first DPO step plain log 2, cancellation,
// and (train N steps) == (train k, snapshot, new objects or a new process,
// resume, train N - k).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { computeInfo } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '../errors';
import type { LlamaModel } from '../model';
import { packBatch, padBatch, pairSequences } from './batching';
import { isNonFiniteLossError, isTrainingCancelledError, isTrainingStateError } from './errors';
import { DPO_DEFAULTS, SFT_DEFAULTS, resolveHyperparameters, type TrainHyperparameters } from './hyperparameters';
import { batchResponseTokenLogprobs } from './logprobs';
import { sftLoss } from './losses';
import { loadTrainingState } from './state';
import { computeReferenceLogprobs, trainDpo, trainSft, type TrainOptions, type TrainProgress } from './trainer';
import { TINY_CONFIG, dpoPairs, seededRandom, sftExamples, testModel } from './test-fixtures';
import { RESUME_SFT_RUN, weightsFingerprint } from './test-programs/resume-sft-run';

// Steps of a tiny model take milliseconds, but these machines are shared: room for a slow moment.
const SLOW = 30_000;

const run = promisify(execFile);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'cream-train-test-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function weightValues(model: LlamaModel): Map<string, number[]> {
  return new Map([...model.weights].map(([name, tensor]) => [name, [...tensor.dataSync()]]));
}

function maxDifference(a: Map<string, number[]>, b: Map<string, number[]>): number {
  let worst = 0;
  for (const [name, values] of a) {
    const other = b.get(name) as number[];
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - other[i]));
  }
  return worst;
}

// Mean response-token NLL of examples under the model (no gradient).
function sftEvalLoss(model: LlamaModel, examples: ReturnType<typeof sftExamples>): number {
  return tf.tidy(() => {
    return sftLoss(batchResponseTokenLogprobs(model, padBatch(examples))).dataSync()[0];
  });
}

async function collect(
  run: (options: TrainOptions) => Promise<unknown>,
  options: TrainOptions = {},
): Promise<TrainProgress[]> {
  const progress: TrainProgress[] = [];
  await run({ ...options, onStep: async (p) => {
    progress.push(p);
    await options.onStep?.(p);
  } });
  return progress;
}

const fast: Partial<TrainHyperparameters> = { learningRate: 1e-2, warmupRatio: 0.1 };

describe('hyperparameters', () => {
  it('default to the paper: SFT 5 epochs at 5e-6, DPO 1 epoch at 1e-6 and beta 0.1, cosine, warmup 0.1, decay 0.01, clip 1, batch 16', () => {
    expect(SFT_DEFAULTS).toMatchObject({ epochs: 5, learningRate: 5e-6, schedule: 'cosine', warmupRatio: 0.1, weightDecay: 0.01, maxGradNorm: 1, batchSize: 16 });
    expect(DPO_DEFAULTS).toMatchObject({ epochs: 1, learningRate: 1e-6, beta: 0.1, schedule: 'cosine', warmupRatio: 0.1, weightDecay: 0.01, maxGradNorm: 1, batchSize: 16 });
    expect(resolveHyperparameters('dpo', { beta: 0.5, epochs: undefined })).toMatchObject({ beta: 0.5, epochs: 1 });
  }, SLOW);

  it('name the offending field', () => {
    for (const [overrides, field] of [
      [{ batchSize: 16, gradientAccumulation: 3 }, 'gradientAccumulation'],
      [{ learningRate: 0 }, 'learningRate'],
      [{ warmupRatio: 1 }, 'warmupRatio'],
      [{ beta: -1 }, 'beta'],
      [{ schedule: 'step' as never }, 'schedule'],
    ] as const) {
      let error: unknown;
      try {
        resolveHyperparameters('dpo', overrides);
      } catch (caught) {
        error = caught;
      }
      expect(isInvalidOptionError(error) && error.option).toBe(field);
    }
  }, SLOW);
});

describe('trainSft', () => {
  it('lowers the loss of a tiny model on its data', async () => {
    const { model, dispose } = testModel(TINY_CONFIG, 1);
    const examples = sftExamples(16, 2);
    const before = sftEvalLoss(model, examples);
    const progress = await collect((options) => trainSft(model, examples, { ...fast, epochs: 8, batchSize: 4 }, options));
    const after = sftEvalLoss(model, examples);
    expect(progress).toHaveLength(32);
    expect(after).toBeLessThan(before * 0.7);
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    expect(progress.every((p) => p.totalSteps === 32 && p.tokensPerSecond > 0 && p.gradNorm > 0)).toBe(true);
    expect(progress.map((p) => p.epoch)).toEqual(Array.from({ length: 32 }, (_, i) => Math.floor(i / 4)));
    expect(progress[0].learningRate).toBe(0); // transformers: update 0 of a warmed-up run has lr 0
    expect(progress[4].learningRate).toBeCloseTo(1e-2 * 0.5 * (1 + Math.cos((Math.PI * 0) / 28)), 12);
    dispose();
  }, SLOW);

  it('with k micro-batches per step equals one pass over the whole batch', async () => {
    const examples = sftExamples(10, 3); // 10 examples, batches of 4: 4, 4, then 2
    const hyper = { ...fast, epochs: 2, batchSize: 4, adamEpsilon: 1 }; // eps 1: updates proportional to gradients
    const runs: { progress: TrainProgress[]; weights: Map<string, number[]> }[] = [];
    for (const gradientAccumulation of [1, 2, 4]) {
      const { model, dispose } = testModel(TINY_CONFIG, 5);
      const progress = await collect((options) => trainSft(model, examples, { ...hyper, gradientAccumulation }, options));
      runs.push({ progress, weights: weightValues(model) });
      dispose();
    }
    for (const run of runs.slice(1)) {
      expect(maxDifference(run.weights, runs[0].weights)).toBeLessThan(1e-7);
      run.progress.forEach((p, i) => {
        expect(p.loss).toBeCloseTo(runs[0].progress[i].loss, 6);
        expect(p.gradNorm).toBeCloseTo(runs[0].progress[i].gradNorm, 6);
      });
    }
  }, SLOW);

  it('on packed rows (the default) equals one right-padded row per example', async () => {
    const examples = sftExamples(12, 21); // 2 to 9 tokens: batches of 6 pack into fewer rows
    expect(packBatch(examples.slice(0, 6)).rows).toBeLessThan(6);
    const hyper = { ...fast, epochs: 2, batchSize: 6, adamEpsilon: 1 };
    const runs: { progress: TrainProgress[]; weights: Map<string, number[]> }[] = [];
    for (const packing of [true, false]) {
      const { model, dispose } = testModel(TINY_CONFIG, 22);
      runs.push({ progress: await collect((options) => trainSft(model, examples, hyper, options), { packing }), weights: weightValues(model) });
      dispose();
    }
    expect(maxDifference(runs[1].weights, runs[0].weights)).toBeLessThan(1e-6);
    runs[1].progress.forEach((p, i) => {
      expect(p.loss).toBeCloseTo(runs[0].progress[i].loss, 6);
      expect(p.gradNorm).toBeCloseTo(runs[0].progress[i].gradNorm, 6);
    });
  }, SLOW);

  it('leaks no tensor across a training step', async () => {
    const { model, dispose } = testModel(TINY_CONFIG, 7);
    tf.dispose(model.forward([[1, 2]])); // grows the model's rotary tables once
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await trainSft(model, sftExamples(6, 8), { ...fast, epochs: 2, batchSize: 2, gradientAccumulation: 2 }, {
      onStep: () => {
        counts.push(tf.memory().numTensors);
      },
    });
    // During the run: the optimizer's two moments per weight, constant from step to step.
    expect(counts.every((count) => count === before + 2 * model.weights.size)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    dispose();
  }, SLOW);

  it('counts examples cut to maxSequenceLength', async () => {
    const { model, dispose } = testModel(TINY_CONFIG, 9);
    const examples = [
      { promptIds: [1, 2], responseIds: [3, 4, 5, 6] },
      { promptIds: [1], responseIds: [2] },
    ];
    const result = await trainSft(model, examples, { ...fast, epochs: 1, batchSize: 2, maxSequenceLength: 4 });
    expect(result.numTruncated).toBe(1);
    dispose();
  }, SLOW);

  it('refuses to apply a step whose loss is not finite, and says which', async () => {
    const { model, dispose } = testModel(TINY_CONFIG, 12);
    const norm = model.weights.get('model.norm.weight') as tf.Variable;
    norm.assign(tf.fill(norm.shape, NaN));
    const embedding = [...(model.weights.get('model.embed_tokens.weight') as tf.Tensor).dataSync()];
    let error: unknown;
    try {
      await trainSft(model, sftExamples(4, 13), { ...fast, batchSize: 2 });
    } catch (caught) {
      error = caught;
    }
    expect(isNonFiniteLossError(error) && [error.step, Number.isNaN(error.loss)]).toEqual([1, true]);
    expect([...(model.weights.get('model.embed_tokens.weight') as tf.Tensor).dataSync()]).toEqual(embedding);
    dispose();
  }, SLOW);

  it('stops between steps when its signal aborts', async () => {
    const { model, dispose } = testModel(TINY_CONFIG, 10);
    const controller = new AbortController();
    tf.dispose(model.forward([[1, 2]]));
    const before = tf.memory().numTensors;
    let error: unknown;
    try {
      await trainSft(model, sftExamples(8, 11), { ...fast, batchSize: 2 }, {
        signal: controller.signal,
        onStep: (p) => {
          if (p.step === 3) controller.abort();
        },
      });
    } catch (caught) {
      error = caught;
    }
    expect(isTrainingCancelledError(error) && [error.step, error.checkpoint]).toEqual([3, null]);
    expect(tf.memory().numTensors).toBe(before);
    dispose();
  }, SLOW);
});

describe('trainDpo', () => {
  it('starts at loss log 2 with the policy as its own reference, then lowers it and separates the rewards', async () => {
    const policy = testModel(TINY_CONFIG, 12);
    const pairs = dpoPairs(16, 13, 1);
    // CREAM's reference is the starting model: its log-probs, taken before training, are all DPO needs of it.
    const logprobs = await computeReferenceLogprobs(policy.model, pairs, { batchSize: 3 });
    const progress = await collect((options) => trainDpo(policy.model, logprobs, pairs, { ...fast, beta: 0.5, epochs: 6, batchSize: 4 }, options));
    expect(progress[0].loss).toBeCloseTo(Math.LN2, 6);
    expect(Math.abs(progress[0].chosenReward)).toBeLessThan(1e-6);
    expect(progress[0].rewardAccuracy).toBe(0);
    const last = progress.slice(-4);
    const mean = (key: keyof TrainProgress) => last.reduce((sum, p) => sum + p[key], 0) / last.length;
    expect(mean('loss')).toBeLessThan(0.5);
    expect(mean('rewardAccuracy')).toBeGreaterThan(0.9);
    expect(mean('margin')).toBeGreaterThan(0.5);
    expect(last.every((p) => p.meanConsistency === 1)).toBe(true);
    policy.dispose();
  }, SLOW);

  it('with C < 1 stops short of the C = 1 margin: the loss never falls below the entropy of C', async () => {
    const c = 0.8;
    const floor = -c * Math.log(c) - (1 - c) * Math.log(1 - c); // min over h of C softplus(-h) + (1 - C) softplus(h)
    const reference = testModel(TINY_CONFIG, 14, { trainable: false });
    const pairs = dpoPairs(8, 15, c);
    const logprobs = await computeReferenceLogprobs(reference.model, pairs);
    const policy = testModel(TINY_CONFIG, 14);
    const progress = await collect((options) => trainDpo(policy.model, logprobs, pairs, { ...fast, beta: 0.5, epochs: 8, batchSize: 4 }, options));
    expect(progress.every((p) => p.loss >= floor - 1e-6)).toBe(true);
    expect(progress.at(-1)?.loss).toBeLessThan(Math.LN2);
    policy.dispose();
    reference.dispose();
  }, SLOW);

  it('with k micro-batches per step equals one pass over the whole batch, C per pair', async () => {
    const random = seededRandom(16);
    const pairs = dpoPairs(6, 17, () => random());
    const reference = testModel(TINY_CONFIG, 18, { trainable: false });
    const logprobs = await computeReferenceLogprobs(reference.model, pairs);
    const runs: { progress: TrainProgress[]; weights: Map<string, number[]> }[] = [];
    for (const gradientAccumulation of [1, 3]) {
      const { model, dispose } = testModel(TINY_CONFIG, 19);
      const progress = await collect((options) =>
        trainDpo(model, logprobs, pairs, { ...fast, epochs: 2, batchSize: 3, gradientAccumulation, adamEpsilon: 1 }, options),
      );
      runs.push({ progress, weights: weightValues(model) });
      dispose();
    }
    expect(maxDifference(runs[1].weights, runs[0].weights)).toBeLessThan(1e-7);
    runs[1].progress.forEach((p, i) => {
      for (const key of ['loss', 'gradNorm', 'chosenReward', 'rejectedReward', 'meanConsistency'] as const) {
        expect(p[key]).toBeCloseTo(runs[0].progress[i][key], 6);
      }
    });
    reference.dispose();
  }, SLOW);

  it('on packed rows (the default) equals one right-padded row per response, reference log-probs included', async () => {
    const random = seededRandom(23);
    const pairs = dpoPairs(8, 24, () => random());
    expect(packBatch(pairSequences(pairs.slice(0, 4))).rows).toBeLessThan(8);
    const reference = testModel(TINY_CONFIG, 25, { trainable: false });
    const runs: { logprobs: Awaited<ReturnType<typeof computeReferenceLogprobs>>; progress: TrainProgress[]; weights: Map<string, number[]> }[] = [];
    for (const packing of [true, false]) {
      const logprobs = await computeReferenceLogprobs(reference.model, pairs, { packing });
      const { model, dispose } = testModel(TINY_CONFIG, 26);
      const progress = await collect((options) => trainDpo(model, logprobs, pairs, { ...fast, epochs: 2, batchSize: 4, adamEpsilon: 1 }, options), { packing });
      runs.push({ logprobs, progress, weights: weightValues(model) });
      dispose();
    }
    for (const side of ['chosen', 'rejected'] as const) {
      runs[1].logprobs[side].forEach((value, i) => expect(value).toBeCloseTo(runs[0].logprobs[side][i], 5));
    }
    expect(maxDifference(runs[1].weights, runs[0].weights)).toBeLessThan(1e-6);
    runs[1].progress.forEach((p, i) => {
      for (const key of ['loss', 'gradNorm', 'chosenReward', 'rejectedReward'] as const) expect(p[key]).toBeCloseTo(runs[0].progress[i][key], 6);
    });
    reference.dispose();
  }, SLOW);

  it('leaks no tensor across reference scoring or a training step', async () => {
    const policy = testModel(TINY_CONFIG, 20);
    const reference = testModel(TINY_CONFIG, 21, { trainable: false });
    for (const { model } of [policy, reference]) tf.dispose(model.forward([[1, 2]]));
    const before = tf.memory().numTensors;
    const pairs = dpoPairs(4, 22, 0.7);
    const logprobs = await computeReferenceLogprobs(reference.model, pairs);
    expect(tf.memory().numTensors).toBe(before);
    const counts: number[] = [];
    await trainDpo(policy.model, logprobs, pairs, { ...fast, epochs: 2, batchSize: 2, gradientAccumulation: 2 }, {
      onStep: () => {
        counts.push(tf.memory().numTensors);
      },
    });
    expect(counts.every((count) => count === before + 2 * policy.model.weights.size)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    policy.dispose();
    reference.dispose();
  }, SLOW);

  it('refuses reference log-probs of other pairs, and runs without any only when resuming', async () => {
    const policy = testModel(TINY_CONFIG, 23);
    const pairs = dpoPairs(4, 24);
    const otherLogprobs = await computeReferenceLogprobs(policy.model, dpoPairs(4, 25));
    for (const reference of [otherLogprobs, null]) {
      let error: unknown;
      try {
        await trainDpo(policy.model, reference, pairs, fast);
      } catch (caught) {
        error = caught;
      }
      expect(isInvalidOptionError(error) && error.option).toBe('reference');
    }
    policy.dispose();
  }, SLOW);
});

describe('save and resume', () => {
  it('DPO: (train N steps) equals (train k, cancel with a snapshot, new objects, resume, train N - k), bit for bit', async () => {
    const random = seededRandom(30);
    const pairs = dpoPairs(10, 31, () => 0.5 + 0.5 * random());
    const reference = testModel(TINY_CONFIG, 32, { trainable: false });
    const logprobs = await computeReferenceLogprobs(reference.model, pairs);
    reference.dispose();
    // 10 pairs in batches of 4 (4, 4, 2) for 2 epochs: 6 steps, stopping inside epoch 1.
    const hyper = { ...fast, epochs: 2, batchSize: 4, gradientAccumulation: 2, seed: 7 };

    const straight = testModel(TINY_CONFIG, 33);
    const wanted = await collect((options) => trainDpo(straight.model, logprobs, pairs, hyper, options));
    const wantedWeights = weightValues(straight.model);
    straight.dispose();

    const directory = path.join(scratch, 'dpo');
    const first = testModel(TINY_CONFIG, 33);
    const controller = new AbortController();
    let error: unknown;
    try {
      await trainDpo(first.model, logprobs, pairs, hyper, {
        signal: controller.signal,
        checkpoint: { directory },
        onStep: (p) => {
          if (p.step === 4) controller.abort();
        },
      });
    } catch (caught) {
      error = caught;
    }
    first.dispose();
    expect(isTrainingCancelledError(error) && error.checkpoint).toBe(path.join(directory, 'step-00000004'));
    const state = await loadTrainingState(directory);
    expect([state.step, state.epoch, state.positionInEpoch, state.rng.stream]).toEqual([4, 1, 4, 'train-shuffle/1']);

    // Other initial weights, no reference log-probs: everything comes from the snapshot.
    const second = testModel(TINY_CONFIG, 99);
    const resumed = await collect((options) => trainDpo(second.model, null, pairs, hyper, { ...options, checkpoint: { directory } }));
    expect(resumed.map((p) => p.step)).toEqual([5, 6]);
    expect(maxDifference(weightValues(second.model), wantedWeights)).toBe(0);
    resumed.forEach((p, i) => {
      const want = wanted[4 + i];
      expect([p.loss, p.gradNorm, p.learningRate, p.margin, p.epoch]).toEqual([want.loss, want.gradNorm, want.learningRate, want.margin, want.epoch]);
    });
    second.dispose();
  }, SLOW);

  it('SFT: resumes in a new process from the last periodic snapshot after a crash, bit for bit', async () => {
    const { examples: count, dataSeed, modelSeed, hyperparameters: hyper } = RESUME_SFT_RUN; // 6 steps
    const examples = sftExamples(count, dataSeed);
    const straight = testModel(TINY_CONFIG, modelSeed);
    await trainSft(straight.model, examples, hyper);
    const wanted = weightsFingerprint(straight.model);
    straight.dispose();

    const directory = path.join(scratch, 'sft');
    const first = testModel(TINY_CONFIG, modelSeed);
    await expect(
      trainSft(first.model, examples, hyper, {
        checkpoint: { directory, everySteps: 2, keep: 2 },
        onStep: (p) => {
          if (p.step === 5) throw new Error('simulated crash');
        },
      }),
    ).rejects.toThrow('simulated crash');
    first.dispose();
    expect((await loadTrainingState(directory)).step).toBe(4);

    // The resume runs in another process (test-programs/resume-sft.ts) from the files alone, on this backend.
    const { stdout } = await run(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'test-programs', 'resume-sft.ts'), directory], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: { ...process.env, CREAM_BACKEND: computeInfo()?.variant ?? 'cpu' },
    });
    expect(JSON.parse(stdout)).toEqual({ resumedFromStep: 4, weights: wanted });
  }, SLOW);

  it('refuses a snapshot of other data or hyperparameters, naming the field', async () => {
    const examples = sftExamples(4, 50);
    const directory = path.join(scratch, 'mismatch');
    const { model, dispose } = testModel(TINY_CONFIG, 51);
    const controller = new AbortController();
    const options = { signal: controller.signal, checkpoint: { directory }, onStep: () => controller.abort() };
    await expect(trainSft(model, examples, { ...fast, batchSize: 2 }, options)).rejects.toThrow(/cancelled after step 1/);
    for (const [data, hyper, field] of [
      [sftExamples(4, 52), { ...fast, batchSize: 2 }, 'dataFingerprint'],
      [examples, { ...fast, batchSize: 2, learningRate: 2e-2 }, 'hyperparameters.learningRate'],
    ] as const) {
      let error: unknown;
      try {
        await trainSft(model, data, hyper, { checkpoint: { directory } });
      } catch (caught) {
        error = caught;
      }
      expect(isTrainingStateError(error) && error.field).toBe(field);
    }
    // resume: false starts over (and overwrites the snapshots as it goes).
    const result = await trainSft(model, examples, { ...fast, learningRate: 2e-2 }, { checkpoint: { directory, resume: false } });
    expect(result.resumedFromStep).toBe(0);
    dispose();
  }, SLOW);
});
