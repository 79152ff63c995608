// The training loops: supervised fine-tuning (M0 -> M1) and CREAM's
// consistency-regularized DPO (M_t -> M_{t+1}, CREAM.md step 7) on a
// LlamaModel whose weights are trainable tf.Variables.
//
// One optimizer step takes batchSize examples (pairs) of the epoch's seeded
// shuffle and runs them as gradientAccumulation micro-batches, each packed
// into as few rows as fit (packBatch: attention within each sequence); each
// micro-batch's loss is divided by the step's total (response tokens for SFT,
// pairs for DPO), so the summed gradients equal those of the whole batch in
// one pass. Then: global-norm clipping, the scheduled learning rate, AdamW.
// The frozen reference's log-probs are computed once, before training
// (computeReferenceLogprobs), and travel in the snapshot so a resumed run
// needs no reference model. Between steps the run checks its AbortSignal and
// may write a snapshot (state.ts) from which it resumes exactly.

import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from '../errors';
import type { LlamaModel } from '../model';
import { AdamW } from './adamw';
import {
  chunk,
  fingerprint,
  packBatch,
  padBatch,
  pairSequences,
  shuffledOrder,
  truncateSequence,
  validateSequence,
  type DpoPair,
  type SftExample,
  type TokenSequence,
} from './batching';
import { clipFactor } from './clip';
import { NonFiniteLossError, TrainingCancelledError, TrainingStateError } from './errors';
import { resolveHyperparameters, type TrainHyperparameters, type TrainKind } from './hyperparameters';
import { registerTrainingGradients } from './gather-gradient';
import { batchResponseLogprobs, batchResponseTokenLogprobs } from './logprobs';
import { dpoLoss, dpoMetrics, sftLoss, type DpoMetrics } from './losses';
import { createSchedule, learningRateAt } from './schedule';
import { latestSnapshot, loadTrainingState, saveTrainingState, type ReferenceLogprobs, type TrainingState } from './state';

/** Progress of one optimizer step (the proto's TrainProgress); the DPO metrics are 0 for SFT. */
export interface TrainProgress extends DpoMetrics {
  /** Optimizer step, 1-based. */
  readonly step: number;
  /** Optimizer steps of the run. */
  readonly totalSteps: number;
  /** Epoch of this step, 0-based. */
  readonly epoch: number;
  /** Mean loss over the step's examples (SFT: over its response tokens). */
  readonly loss: number;
  /** Learning rate the step used. */
  readonly learningRate: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Training time so far, including time before a resume. */
  readonly elapsedSeconds: number;
  /** Non-padding tokens through the model per second, over this step. */
  readonly tokensPerSecond: number;
}

/** Where and when a run writes its training-state snapshots. */
export interface CheckpointOptions {
  /** The run's checkpoint directory (latest.json and step-N/ snapshots). */
  readonly directory: string;
  /** Write a snapshot after every this many steps; 0 (default): only when cancelled. */
  readonly everySteps?: number;
  /** Snapshots kept. Default 1. */
  readonly keep?: number;
  /** Continue from the directory's latest snapshot when it has one. Default true. */
  readonly resume?: boolean;
}

/** Hooks and controls of a run. */
export interface TrainOptions {
  /** Called after every optimizer step (awaited). */
  readonly onStep?: (progress: TrainProgress) => void | Promise<void>;
  /** Stops the run between steps with TrainingCancelledError (after a snapshot, with `checkpoint`). */
  readonly signal?: AbortSignal;
  /** Snapshots for save and resume. */
  readonly checkpoint?: CheckpointOptions;
  /** Token id of the right padding; never attended, never in a loss. Default 0. */
  readonly padTokenId?: number;
  /**
   * Each micro-batch's sequences packed into as few rows as fit (packBatch),
   * instead of one right-padded row each (padBatch): fewer padding positions
   * computed, the same losses and gradients up to float rounding. Default true.
   */
  readonly packing?: boolean;
}

/** What a finished run did. */
export interface TrainResult {
  /** Optimizer steps of the run (all done). */
  readonly totalSteps: number;
  /** The step this call resumed after (0 for a fresh run). */
  readonly resumedFromStep: number;
  /** Examples or pairs. */
  readonly numExamples: number;
  /** Examples (SFT) or responses (DPO) cut to maxSequenceLength. */
  readonly numTruncated: number;
  /** The last step's progress (null when no step ran in this call). */
  readonly lastProgress: TrainProgress | null;
  /** Training time, including time before a resume. */
  readonly elapsedSeconds: number;
  /** The hyperparameters, every default resolved. */
  readonly hyperparameters: TrainHyperparameters;
}

/** Options of computeReferenceLogprobs. */
export interface ReferenceLogprobsOptions {
  /** Must equal the training run's; null or absent: the model's context. */
  readonly maxSequenceLength?: number | null;
  /** Pairs per forward pass (two rows each). Default 4. */
  readonly batchSize?: number;
  /** Token id of the right padding. Default 0. */
  readonly padTokenId?: number;
  /** As TrainOptions.packing. Default true. */
  readonly packing?: boolean;
  /** Stops between batches with TrainingCancelledError. */
  readonly signal?: AbortSignal;
}

/**
 * The frozen reference's summed response log-probs of every pair's chosen and
 * rejected response, in inference mode (no gradient tape), computed once
 * before DPO training. Pairs are truncated as training truncates them. Since
 * CREAM's reference is the model training starts from (M_t), this may be the
 * policy model itself, called before trainDpo: no second copy of the weights.
 */
export async function computeReferenceLogprobs(
  referenceModel: LlamaModel,
  pairs: readonly DpoPair[],
  options: ReferenceLogprobsOptions = {},
): Promise<ReferenceLogprobs> {
  const batchSize = options.batchSize ?? 4;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new InvalidOptionError(`batchSize must be a positive integer, got ${batchSize}`, 'batchSize');
  }
  const prepared = preparePairs(referenceModel, pairs, options.maxSequenceLength ?? null);
  const chosen = new Float32Array(pairs.length);
  const rejected = new Float32Array(pairs.length);
  for (let start = 0; start < pairs.length; start += batchSize) {
    if (options.signal?.aborted) {
      throw new TrainingCancelledError('cancelled while computing reference log-probs', 0, null, { cause: options.signal.reason });
    }
    const micro = prepared.pairs.slice(start, start + batchSize);
    const batch = batcher(options.packing)(pairSequences(micro), options.padTokenId ?? 0);
    const sums = tf.tidy(() => batchResponseLogprobs(referenceModel, batch)); // [2n]
    try {
      const values = await sums.data<'float32'>();
      chosen.set(values.subarray(0, micro.length), start);
      rejected.set(values.subarray(micro.length), start);
    } finally {
      sums.dispose();
    }
  }
  return { chosen, rejected, dataFingerprint: prepared.tokenFingerprint };
}

/** packBatch unless `packing` is false (then padBatch). */
function batcher(packing: boolean | undefined): typeof padBatch {
  return packing ?? true ? packBatch : padBatch;
}

/**
 * Supervised fine-tuning on response tokens (prompt and padding masked):
 * trains `model`'s variables in place. Unset hyperparameters take the paper's
 * SFT values (SFT_DEFAULTS).
 */
export async function trainSft(
  model: LlamaModel,
  examples: readonly SftExample[],
  hyperparameters: Partial<TrainHyperparameters> = {},
  options: TrainOptions = {},
): Promise<TrainResult> {
  const hyper = resolveHyperparameters('sft', hyperparameters);
  if (examples.length === 0) throw new InvalidOptionError('no training examples', 'examples');
  const maxLength = resolveMaxLength(model, hyper);
  let numTruncated = 0;
  const sequences = examples.map((example, i) => {
    validateSequence(example, model.config.vocabSize, i);
    const { sequence, truncated } = truncateSequence(example, maxLength, i);
    if (truncated) numTruncated++;
    return sequence;
  });
  const padTokenId = options.padTokenId ?? 0;
  const makeBatch = batcher(options.packing);
  const objective: Objective = {
    normalizer: (items) => items.reduce((sum, i) => sum + sequences[i].responseIds.length, 0),
    microBatch: (items) => {
      const batch = makeBatch(items.map((i) => sequences[i]), padTokenId);
      return {
        tokens: batch.tokens,
        loss: (normalizer) => sftLoss(batchResponseTokenLogprobs(model, batch), normalizer),
        collect: () => undefined,
      };
    },
    stepMetrics: () => dpoMetrics([], [], []),
  };
  return runTraining({
    kind: 'sft',
    model,
    hyper,
    numExamples: examples.length,
    numTruncated,
    dataFingerprint: fingerprint(sequences.flatMap((s) => [s.promptIds, s.responseIds])),
    referenceLogprobs: null,
    objective,
    options,
  });
}

/**
 * Consistency-regularized DPO: trains `model`'s variables in place against
 * `reference` (from computeReferenceLogprobs on the same pairs; null only
 * when resuming from a snapshot, which holds them). Each pair's C weighs its
 * label (CREAM.md step 7); C = 1 everywhere is plain DPO. Unset
 * hyperparameters take the paper's DPO values (DPO_DEFAULTS).
 */
export async function trainDpo(
  model: LlamaModel,
  reference: ReferenceLogprobs | null,
  pairs: readonly DpoPair[],
  hyperparameters: Partial<TrainHyperparameters> = {},
  options: TrainOptions = {},
): Promise<TrainResult> {
  const hyper = resolveHyperparameters('dpo', hyperparameters);
  const prepared = preparePairs(model, pairs, hyper.maxSequenceLength);
  if (reference !== null) checkReference(reference, prepared.pairs.length, prepared.tokenFingerprint);
  const padTokenId = options.padTokenId ?? 0;
  const makeBatch = batcher(options.packing);
  let stepChosen: number[] = [];
  let stepRejected: number[] = [];
  let stepConsistency: number[] = [];
  const objective: Objective = {
    normalizer: (items) => items.length,
    microBatch: (items, referenceLogprobs) => {
      const micro = items.map((i) => prepared.pairs[i]);
      const batch = makeBatch(pairSequences(micro), padTokenId);
      const { chosen, rejected } = referenceLogprobs as ReferenceLogprobs; // runTraining checks it is there
      return {
        tokens: batch.tokens,
        loss: (normalizer, keep) => {
          const n = micro.length;
          const sums = batchResponseLogprobs(model, batch); // [2n]: chosen rows, then rejected rows
          const [policyChosen, policyRejected] = tf.split(sums, [n, n]) as [tf.Tensor1D, tf.Tensor1D]; // [n] each
          const result = dpoLoss(
            {
              policyChosen,
              policyRejected,
              referenceChosen: tf.tensor1d(items.map((i) => chosen[i]), 'float32'), // [n]
              referenceRejected: tf.tensor1d(items.map((i) => rejected[i]), 'float32'), // [n]
            },
            tf.tensor1d(micro.map((pair) => pair.consistency), 'float32'), // [n]
            hyper.beta,
            normalizer,
          );
          keep(result.chosenRewards);
          keep(result.rejectedRewards);
          return result.loss;
        },
        collect: ([chosenRewards, rejectedRewards]) => {
          stepChosen.push(...chosenRewards.dataSync());
          stepRejected.push(...rejectedRewards.dataSync());
          stepConsistency.push(...micro.map((pair) => pair.consistency));
        },
      };
    },
    stepMetrics: () => {
      const metrics = dpoMetrics(stepChosen, stepRejected, stepConsistency);
      [stepChosen, stepRejected, stepConsistency] = [[], [], []];
      return metrics;
    },
  };
  return runTraining({
    kind: 'dpo',
    model,
    hyper,
    numExamples: pairs.length,
    numTruncated: prepared.numTruncated,
    dataFingerprint: prepared.dataFingerprint,
    referenceLogprobs: reference,
    objective,
    options,
  });
}

// ---------------------------------------------------------------------------
// The loop shared by both kinds

// One micro-batch of a step.
interface MicroBatch {
  /** Non-padding tokens it runs through the model. */
  readonly tokens: number;
  /** Its loss divided by the step's normalizer, for tf.variableGrads; `keep` hands metric tensors to collect. */
  loss(normalizer: number, keep: (tensor: tf.Tensor) => void): tf.Scalar;
  /** Reads the kept tensors after the backward pass (the loop disposes them). */
  collect(kept: tf.Tensor[]): void;
}

// What differs between SFT and DPO.
interface Objective {
  /** A step's total (response tokens or pairs) its micro-batch losses are divided by. */
  normalizer(items: readonly number[]): number;
  /** The micro-batch of these item indices (DPO reads the reference log-probs of its pairs). */
  microBatch(items: readonly number[], referenceLogprobs: ReferenceLogprobs | null): MicroBatch;
  /** The DPO metrics of the step just finished (zeros for SFT), resetting them. */
  stepMetrics(): DpoMetrics;
}

interface Run {
  readonly kind: TrainKind;
  readonly model: LlamaModel;
  readonly hyper: TrainHyperparameters;
  readonly numExamples: number;
  readonly numTruncated: number;
  readonly dataFingerprint: string;
  readonly referenceLogprobs: ReferenceLogprobs | null;
  readonly objective: Objective;
  readonly options: TrainOptions;
}

async function runTraining(run: Run): Promise<TrainResult> {
  const { kind, model, hyper, numExamples, objective, options } = run;
  registerTrainingGradients();
  const weights = trainableWeights(model);
  const variables = [...weights.values()];
  const nameOfVariable = new Map([...weights].map(([name, variable]) => [variable.name, name]));
  const stepsPerEpoch = Math.ceil(numExamples / hyper.batchSize);
  const totalSteps = stepsPerEpoch * hyper.epochs;
  const microBatchSize = hyper.batchSize / hyper.gradientAccumulation;
  const schedule = createSchedule(hyper.schedule, hyper.learningRate, totalSteps, hyper.warmupRatio);
  const optimizer = new AdamW({
    beta1: hyper.adamBeta1,
    beta2: hyper.adamBeta2,
    epsilon: hyper.adamEpsilon,
    weightDecay: hyper.weightDecay,
  });
  const checkpoint = options.checkpoint;
  const everySteps = checkpoint?.everySteps ?? 0;
  if (!(Number.isInteger(everySteps) && everySteps >= 0)) {
    throw new InvalidOptionError(`checkpoint.everySteps must be an integer >= 0, got ${everySteps}`, 'checkpoint.everySteps');
  }

  try {
    let firstStep = 0;
    let elapsedBefore = 0;
    let referenceLogprobs = run.referenceLogprobs;
    const resumeFrom = checkpoint !== undefined && (checkpoint.resume ?? true) ? await latestSnapshot(checkpoint.directory) : null;
    if (checkpoint !== undefined && resumeFrom !== null) {
      const state = await loadTrainingState(checkpoint.directory);
      checkResumable(state, run, totalSteps, checkpoint.directory);
      restoreWeights(weights, state, checkpoint.directory);
      optimizer.loadState(state.optimizer, weights);
      firstStep = state.step;
      elapsedBefore = state.elapsedSeconds;
      referenceLogprobs ??= state.referenceLogprobs;
    }
    if (kind === 'dpo' && referenceLogprobs === null) {
      throw new InvalidOptionError('DPO needs reference log-probs (computeReferenceLogprobs) unless it resumes from a snapshot', 'reference');
    }

    const started = performance.now();
    const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
    const snapshot = async (completed: number): Promise<string> =>
      saveTrainingState(
        (checkpoint as CheckpointOptions).directory,
        await captureState(run, optimizer, referenceLogprobs, completed, totalSteps, stepsPerEpoch, elapsed()),
        checkpoint?.keep ?? 1,
      );
    // The latest snapshot of this run and its step (the one resumed from, at first).
    let savedSnapshot = resumeFrom;
    let savedStep = firstStep;
    let lastProgress: TrainProgress | null = null;
    let order: number[] = [];
    let orderEpoch = -1;

    for (let step = firstStep; step < totalSteps; step++) {
      if (options.signal?.aborted) {
        const written = checkpoint === undefined ? null : savedStep === step ? savedSnapshot : await snapshot(step);
        throw new TrainingCancelledError(`training cancelled after step ${step} of ${totalSteps}`, step, written, {
          cause: options.signal.reason,
        });
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      if (epoch !== orderEpoch) {
        order = shuffledOrder(numExamples, hyper.seed, epoch);
        orderEpoch = epoch;
      }
      const start = (step % stepsPerEpoch) * hyper.batchSize;
      const items = order.slice(start, start + hyper.batchSize);
      const stepStarted = performance.now();
      const learningRate = learningRateAt(schedule, step);
      const { summed, loss, tokens } = accumulateGradients(objective, items, microBatchSize, referenceLogprobs, variables, nameOfVariable);
      let gradNorm: number;
      try {
        // Clipping by global norm: AdamW applies the factor as it reads each gradient.
        const clip = clipFactor(summed, hyper.maxGradNorm);
        gradNorm = clip.norm;
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          throw new NonFiniteLossError(
            `step ${step + 1}: loss ${loss}, gradient norm ${gradNorm}; the weights were not updated`,
            step + 1,
            loss,
            gradNorm,
          );
        }
        optimizer.update(weights, summed, learningRate, clip.scale);
      } finally {
        tf.dispose([...summed.values()]);
      }
      const stepSeconds = (performance.now() - stepStarted) / 1000;
      lastProgress = {
        step: step + 1,
        totalSteps,
        epoch,
        loss,
        learningRate,
        gradNorm,
        ...objective.stepMetrics(),
        elapsedSeconds: elapsed(),
        tokensPerSecond: stepSeconds > 0 ? tokens / stepSeconds : 0,
      };
      if (checkpoint !== undefined && everySteps > 0 && (step + 1) % everySteps === 0 && step + 1 < totalSteps) {
        savedSnapshot = await snapshot(step + 1);
        savedStep = step + 1;
      }
      await options.onStep?.(lastProgress);
      await new Promise<void>((resolve) => setImmediate(resolve)); // lets an abort land between steps
    }
    return {
      totalSteps,
      resumedFromStep: firstStep,
      numExamples,
      numTruncated: run.numTruncated,
      lastProgress,
      elapsedSeconds: elapsed(),
      hyperparameters: hyper,
    };
  } finally {
    optimizer.dispose();
  }
}

// The gradients of one optimizer step: each micro-batch's, summed by weight
// name (the caller disposes them), with the step's loss and token count.
// Whatever fails, every other tensor made here is freed.
function accumulateGradients(
  objective: Objective,
  items: readonly number[],
  microBatchSize: number,
  referenceLogprobs: ReferenceLogprobs | null,
  variables: tf.Variable[],
  nameOfVariable: ReadonlyMap<string, string>,
): { summed: Map<string, tf.Tensor>; loss: number; tokens: number } {
  const normalizer = objective.normalizer(items);
  const summed = new Map<string, tf.Tensor>();
  let loss = 0;
  let tokens = 0;
  try {
    for (const microItems of chunk(items, microBatchSize)) {
      const micro = objective.microBatch(microItems, referenceLogprobs);
      const kept: tf.Tensor[] = [];
      try {
        const { value, grads } = tf.variableGrads(() => micro.loss(normalizer, (tensor) => kept.push(tf.keep(tensor))), variables);
        try {
          loss += value.dataSync()[0];
        } finally {
          value.dispose();
          addGradients(summed, grads, nameOfVariable);
        }
        micro.collect(kept);
      } finally {
        tf.dispose(kept);
      }
      tokens += micro.tokens;
    }
    return { summed, loss, tokens };
  } catch (error) {
    tf.dispose([...summed.values()]);
    throw error;
  }
}

// summed[name] += gradient for each (variable name -> gradient); consumes `gradients`.
function addGradients(summed: Map<string, tf.Tensor>, gradients: tf.NamedTensorMap, nameOfVariable: ReadonlyMap<string, string>): void {
  for (const [variableName, gradient] of Object.entries(gradients)) {
    const name = nameOfVariable.get(variableName) as string;
    const previous = summed.get(name);
    if (previous === undefined) {
      summed.set(name, gradient);
    } else {
      summed.set(name, tf.add(previous, gradient));
      previous.dispose();
      gradient.dispose();
    }
  }
}

// The model's trainable variables by weight name.
function trainableWeights(model: LlamaModel): Map<string, tf.Variable> {
  const weights = new Map<string, tf.Variable>();
  for (const [name, tensor] of model.weights) {
    if (tensor instanceof tf.Variable && tensor.trainable) weights.set(name, tensor);
  }
  if (weights.size === 0) {
    throw new InvalidOptionError('the model has no trainable weights: build it from createWeights/initWeights with trainable true', 'model');
  }
  return weights;
}

function resolveMaxLength(model: LlamaModel, hyper: Pick<TrainHyperparameters, 'maxSequenceLength'>): number {
  const context = model.config.maxPositionEmbeddings;
  const maxLength = hyper.maxSequenceLength ?? context;
  if (maxLength > context) {
    throw new InvalidOptionError(`maxSequenceLength ${maxLength} exceeds the model's context of ${context}`, 'maxSequenceLength');
  }
  return maxLength;
}

// Pairs validated and truncated, with the fingerprints of their token ids
// (what reference log-probs depend on) and of the whole data (ids and C).
function preparePairs(
  model: LlamaModel,
  pairs: readonly DpoPair[],
  maxSequenceLength: number | null,
): { pairs: DpoPair[]; numTruncated: number; tokenFingerprint: string; dataFingerprint: string } {
  if (pairs.length === 0) throw new InvalidOptionError('no preference pairs', 'pairs');
  const maxLength = resolveMaxLength(model, { maxSequenceLength });
  let numTruncated = 0;
  const truncate = (sequence: TokenSequence, i: number, what: string): readonly number[] => {
    validateSequence(sequence, model.config.vocabSize, i, what);
    const result = truncateSequence(sequence, maxLength, i);
    if (result.truncated) numTruncated++;
    return result.sequence.responseIds;
  };
  const prepared = pairs.map((pair, i) => {
    if (!(pair.consistency >= 0 && pair.consistency <= 1)) {
      throw new InvalidOptionError(`pair ${i} has consistency ${pair.consistency}, outside [0, 1]`, 'consistency');
    }
    if (pair.chosenIds.length === pair.rejectedIds.length && pair.chosenIds.every((id, j) => id === pair.rejectedIds[j])) {
      throw new InvalidOptionError(`pair ${i} has the same chosen and rejected response`, 'rejectedIds');
    }
    return {
      ...pair,
      chosenIds: truncate({ promptIds: pair.promptIds, responseIds: pair.chosenIds }, i, 'pair (chosen)'),
      rejectedIds: truncate({ promptIds: pair.promptIds, responseIds: pair.rejectedIds }, i, 'pair (rejected)'),
    };
  });
  const tokenLists = prepared.flatMap((pair) => [pair.promptIds, pair.chosenIds, pair.rejectedIds]);
  return {
    pairs: prepared,
    numTruncated,
    tokenFingerprint: fingerprint(tokenLists),
    dataFingerprint: fingerprint([...tokenLists, prepared.map((pair) => pair.consistency)]),
  };
}

function checkReference(reference: ReferenceLogprobs, numPairs: number, tokenFingerprint: string): void {
  if (reference.chosen.length !== numPairs || reference.rejected.length !== numPairs) {
    throw new InvalidOptionError(
      `reference log-probs hold ${reference.chosen.length} pairs, the data ${numPairs}`,
      'reference',
    );
  }
  if (reference.dataFingerprint !== tokenFingerprint) {
    throw new InvalidOptionError(
      'reference log-probs were computed on other token ids (other pairs, order or maxSequenceLength)',
      'reference',
    );
  }
}

// A snapshot fits this run: same kind, data, hyperparameters and step count.
function checkResumable(state: TrainingState, run: Run, totalSteps: number, directory: string): void {
  const mismatch = (field: string, detail: string): never => {
    throw new TrainingStateError(`cannot resume: the snapshot's ${field} ${detail}`, directory, field);
  };
  if (state.kind !== run.kind) mismatch('kind', `is ${state.kind}, this run ${run.kind}`);
  if (state.numExamples !== run.numExamples || state.dataFingerprint !== run.dataFingerprint) {
    mismatch('dataFingerprint', 'differs: the training data changed');
  }
  for (const [field, value] of Object.entries(run.hyper)) {
    const saved = (state.hyperparameters as unknown as Record<string, unknown>)[field];
    if (saved !== value) mismatch(`hyperparameters.${field}`, `is ${String(saved)}, this run ${String(value)}`);
  }
  if (state.totalSteps !== totalSteps || state.step > totalSteps) mismatch('totalSteps', `is ${state.totalSteps}, this run ${totalSteps}`);
  if (run.referenceLogprobs !== null && state.referenceLogprobs !== null) {
    if (state.referenceLogprobs.dataFingerprint !== run.referenceLogprobs.dataFingerprint) {
      mismatch('referenceLogprobs', 'were computed on other pairs');
    }
  }
}

function restoreWeights(weights: ReadonlyMap<string, tf.Variable>, state: TrainingState, directory: string): void {
  for (const [name, variable] of weights) {
    const saved = state.weights.get(name);
    if (saved === undefined || !tf.util.arraysEqual(saved.shape, variable.shape)) {
      throw new TrainingStateError(`the snapshot's weights lack ${name} [${variable.shape}]`, directory, name);
    }
  }
  for (const [name, variable] of weights) {
    const saved = state.weights.get(name) as { shape: number[]; data: Float32Array };
    tf.tidy(() => variable.assign(tf.tensor(saved.data, saved.shape, 'float32')));
  }
}

async function captureState(
  run: Run,
  optimizer: AdamW,
  referenceLogprobs: ReferenceLogprobs | null,
  completed: number,
  totalSteps: number,
  stepsPerEpoch: number,
  elapsedSeconds: number,
): Promise<TrainingState> {
  const epoch = Math.floor(completed / stepsPerEpoch);
  const hostWeights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, tensor] of run.model.weights) {
    hostWeights.set(name, { shape: [...tensor.shape], data: Float32Array.from(await tensor.data<'float32'>()) });
  }
  return {
    kind: run.kind,
    step: completed,
    totalSteps,
    epoch,
    positionInEpoch: (completed % stepsPerEpoch) * run.hyper.batchSize,
    rng: { algorithm: 'philox4x32-10', seed: run.hyper.seed, stream: `train-shuffle/${epoch}` },
    hyperparameters: run.hyper,
    dataFingerprint: run.dataFingerprint,
    numExamples: run.numExamples,
    elapsedSeconds,
    weights: hostWeights,
    optimizer: await optimizer.exportState(),
    referenceLogprobs,
  };
}
