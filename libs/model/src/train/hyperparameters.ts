// Training hyperparameters (the proto's TrainHyperparameters), the paper's
// defaults for each kind of training (CREAM.md: SFT 5 epochs at lr 5e-6, DPO
// 1 epoch at lr 1e-6 with beta 0.1; both cosine with warmup ratio 0.1, weight
// decay 0.01, clipping at 1.0, 16 examples per step), and their validation.

import { InvalidOptionError } from '../errors';
import type { ScheduleKind } from './schedule';

/** Supervised fine-tuning or consistency-regularized DPO. */
export type TrainKind = 'sft' | 'dpo';

/** Every hyperparameter of a run, resolved. */
export interface TrainHyperparameters {
  /** Peak learning rate, in (0, 1]. */
  readonly learningRate: number;
  /** Passes over the data. */
  readonly epochs: number;
  /** Examples (SFT) or pairs (DPO) per optimizer step, counting accumulation. */
  readonly batchSize: number;
  /** Micro-batches per step; batchSize / gradientAccumulation rows (pairs) go through one forward pass. */
  readonly gradientAccumulation: number;
  /** Fraction of the steps spent warming up, in [0, 1). */
  readonly warmupRatio: number;
  /** Decoupled AdamW weight decay. */
  readonly weightDecay: number;
  /** Clip the global gradient norm to this (Infinity: never). */
  readonly maxGradNorm: number;
  /** DPO beta (unused by SFT). */
  readonly beta: number;
  /** Decay after warmup. */
  readonly schedule: ScheduleKind;
  /** Longest prompt + response; longer ones lose the response's tail. null: the model's context. */
  readonly maxSequenceLength: number | null;
  /** AdamW beta1. */
  readonly adamBeta1: number;
  /** AdamW beta2. */
  readonly adamBeta2: number;
  /** AdamW epsilon. */
  readonly adamEpsilon: number;
  /** Seed of the data shuffle (an integer in [0, 2^53)). */
  readonly seed: number;
}

const COMMON_DEFAULTS = {
  batchSize: 16, // the paper's
  gradientAccumulation: 1, // the proto's default: the whole batch in one pass
  warmupRatio: 0.1, // the paper's
  weightDecay: 0.01, // the paper's
  maxGradNorm: 1.0, // the paper's
  beta: 0.1, // the paper's DPO beta
  schedule: 'cosine', // the paper's
  maxSequenceLength: null, // the model's context
  adamBeta1: 0.9, // PyTorch's and the HF Trainer's
  adamBeta2: 0.999, // PyTorch's and the HF Trainer's
  adamEpsilon: 1e-8, // PyTorch's and the HF Trainer's
  seed: 42, // the HF Trainer's
} as const;

/** The paper's SFT run (M0 -> M1): 5 epochs at lr 5e-6. */
export const SFT_DEFAULTS: TrainHyperparameters = Object.freeze({ ...COMMON_DEFAULTS, learningRate: 5e-6, epochs: 5 });

/** The paper's DPO run (M_t -> M_{t+1}): 1 epoch at lr 1e-6, beta 0.1. */
export const DPO_DEFAULTS: TrainHyperparameters = Object.freeze({ ...COMMON_DEFAULTS, learningRate: 1e-6, epochs: 1 });

/**
 * The kind's defaults overridden by `overrides` (undefined fields keep the
 * default), validated: InvalidOptionError names the offending field.
 */
export function resolveHyperparameters(kind: TrainKind, overrides: Partial<TrainHyperparameters> = {}): TrainHyperparameters {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  const resolved: TrainHyperparameters = { ...(kind === 'sft' ? SFT_DEFAULTS : DPO_DEFAULTS), ...defined };
  validateHyperparameters(resolved);
  return Object.freeze(resolved);
}

/** Throws InvalidOptionError (with the field) for a value out of its range. */
export function validateHyperparameters(h: TrainHyperparameters): void {
  const fail = (field: string, rule: string, value: unknown): never => {
    throw new InvalidOptionError(`${field} must be ${rule}, got ${String(value)}`, field);
  };
  if (!(h.learningRate > 0 && h.learningRate <= 1)) fail('learningRate', 'in (0, 1]', h.learningRate);
  for (const field of ['epochs', 'batchSize', 'gradientAccumulation'] as const) {
    if (!(Number.isInteger(h[field]) && h[field] >= 1)) fail(field, 'a positive integer', h[field]);
  }
  if (h.batchSize % h.gradientAccumulation !== 0) {
    fail('gradientAccumulation', `a divisor of batchSize (${h.batchSize})`, h.gradientAccumulation);
  }
  if (!(h.warmupRatio >= 0 && h.warmupRatio < 1)) fail('warmupRatio', 'in [0, 1)', h.warmupRatio);
  if (!(h.weightDecay >= 0 && Number.isFinite(h.weightDecay))) fail('weightDecay', 'a finite number >= 0', h.weightDecay);
  if (!(h.maxGradNorm > 0)) fail('maxGradNorm', '> 0', h.maxGradNorm);
  if (!(h.beta > 0 && Number.isFinite(h.beta))) fail('beta', 'a finite number > 0', h.beta);
  if (h.schedule !== 'cosine' && h.schedule !== 'linear' && h.schedule !== 'constant') {
    fail('schedule', "'cosine', 'linear' or 'constant'", h.schedule);
  }
  if (h.maxSequenceLength !== null && !(Number.isInteger(h.maxSequenceLength) && h.maxSequenceLength >= 2)) {
    fail('maxSequenceLength', 'an integer >= 2 or null', h.maxSequenceLength);
  }
  for (const field of ['adamBeta1', 'adamBeta2'] as const) {
    if (!(h[field] >= 0 && h[field] < 1)) fail(field, 'in [0, 1)', h[field]);
  }
  if (!(h.adamEpsilon > 0 && Number.isFinite(h.adamEpsilon))) fail('adamEpsilon', 'a finite number > 0', h.adamEpsilon);
  if (!(Number.isSafeInteger(h.seed) && h.seed >= 0)) fail('seed', 'an integer in [0, 2^53)', h.seed);
}
