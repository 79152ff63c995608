// Learning-rate schedules, as Hugging Face transformers defines them
// (optimization.py: get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_constant_schedule_with_warmup): a multiplier of the peak rate that rises
// linearly from 0 over the warmup steps, then decays. `step` is the 0-based
// index of the optimizer update, exactly as transformers' LambdaLR sees it
// (the scheduler steps after the optimizer), so update 0 of a warmed-up run
// uses a learning rate of 0, as it does under the HF Trainer and TRL.

import { InvalidOptionError } from '../errors';

/** The shape of the decay after warmup (the proto's Schedule). */
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

/** A schedule resolved for one run. */
export interface LearningRateSchedule {
  /** Decay after warmup. */
  readonly kind: ScheduleKind;
  /** The rate at the end of warmup. */
  readonly peakLearningRate: number;
  /** Optimizer updates of the whole run. */
  readonly totalSteps: number;
  /** Updates spent warming up linearly from 0. */
  readonly warmupSteps: number;
}

/**
 * Warmup steps of a run from a ratio: ceil(totalSteps * ratio), as
 * transformers' TrainingArguments.get_warmup_steps.
 */
export function warmupStepsFromRatio(totalSteps: number, warmupRatio: number): number {
  if (!(warmupRatio >= 0 && warmupRatio < 1)) {
    throw new InvalidOptionError(`warmupRatio must be in [0, 1), got ${warmupRatio}`, 'warmupRatio');
  }
  return Math.ceil(totalSteps * warmupRatio);
}

/** A schedule over `totalSteps` updates with warmup from a ratio of them. */
export function createSchedule(
  kind: ScheduleKind,
  peakLearningRate: number,
  totalSteps: number,
  warmupRatio: number,
): LearningRateSchedule {
  if (!(Number.isFinite(peakLearningRate) && peakLearningRate >= 0)) {
    throw new InvalidOptionError(`learningRate must be a finite number >= 0, got ${peakLearningRate}`, 'learningRate');
  }
  if (!(Number.isInteger(totalSteps) && totalSteps >= 0)) {
    throw new InvalidOptionError(`totalSteps must be an integer >= 0, got ${totalSteps}`, 'totalSteps');
  }
  if (kind !== 'cosine' && kind !== 'linear' && kind !== 'constant') {
    throw new InvalidOptionError(`unknown schedule '${String(kind)}'`, 'schedule');
  }
  return { kind, peakLearningRate, totalSteps, warmupSteps: warmupStepsFromRatio(totalSteps, warmupRatio) };
}

/** The multiplier of the peak rate at 0-based update `step` (transformers' lr_lambda). */
export function scheduleMultiplier(schedule: LearningRateSchedule, step: number): number {
  const { kind, totalSteps, warmupSteps } = schedule;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  switch (kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': {
      // num_cycles = 0.5: half a cosine period, from 1 down to 0 at the last step.
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
  }
}

/** The learning rate of 0-based update `step`. */
export function learningRateAt(schedule: LearningRateSchedule, step: number): number {
  return schedule.peakLearningRate * scheduleMultiplier(schedule, step);
}
