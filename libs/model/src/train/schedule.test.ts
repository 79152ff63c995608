// Learning-rate schedules against transformers' lr_lambda formulas, evaluated
// by hand at known steps of a 10-step run with 2 warmup steps.
import { describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '../errors';
import { createSchedule, learningRateAt, scheduleMultiplier, warmupStepsFromRatio } from './schedule';

describe('schedules', () => {
  // 10 steps, warmup ratio 0.15 -> ceil(1.5) = 2 warmup steps, peak 1e-3.
  const peak = 1e-3;

  it('take warmup steps as ceil(total * ratio), as TrainingArguments.get_warmup_steps', () => {
    expect(warmupStepsFromRatio(10, 0.15)).toBe(2);
    expect(warmupStepsFromRatio(10, 0.1)).toBe(1);
    expect(warmupStepsFromRatio(7, 0.1)).toBe(1);
    expect(warmupStepsFromRatio(100, 0)).toBe(0);
    expect(() => warmupStepsFromRatio(10, 1)).toThrow(/warmupRatio/);
  });

  it('cosine: 0, 1/2 in warmup, then 0.5 * (1 + cos(pi * progress)), 0 at the end', () => {
    const schedule = createSchedule('cosine', peak, 10, 0.15);
    expect(schedule.warmupSteps).toBe(2);
    // warmup: step / 2
    expect(learningRateAt(schedule, 0)).toBe(0);
    expect(learningRateAt(schedule, 1)).toBeCloseTo(peak * 0.5, 18);
    // after warmup: progress = (step - 2) / 8
    expect(learningRateAt(schedule, 2)).toBeCloseTo(peak, 18);
    expect(learningRateAt(schedule, 4)).toBeCloseTo(peak * 0.5 * (1 + Math.cos(Math.PI * 0.25)), 18); // 0.853553...
    expect(scheduleMultiplier(schedule, 4)).toBeCloseTo(0.8535533905932737, 15);
    expect(scheduleMultiplier(schedule, 6)).toBeCloseTo(0.5, 15);
    expect(scheduleMultiplier(schedule, 9)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 7 / 8)), 15); // 0.0380602...
    expect(scheduleMultiplier(schedule, 10)).toBeCloseTo(0, 15);
  });

  it('linear: warmup, then (total - step) / (total - warmup)', () => {
    const schedule = createSchedule('linear', peak, 10, 0.15);
    expect(scheduleMultiplier(schedule, 1)).toBe(0.5);
    expect(scheduleMultiplier(schedule, 2)).toBe(1);
    expect(scheduleMultiplier(schedule, 6)).toBe(0.5);
    expect(scheduleMultiplier(schedule, 9)).toBe(1 / 8);
    expect(scheduleMultiplier(schedule, 12)).toBe(0);
  });

  it('constant: warmup, then 1', () => {
    const schedule = createSchedule('constant', peak, 10, 0.15);
    expect([0, 1, 2, 5, 9].map((step) => scheduleMultiplier(schedule, step))).toEqual([0, 0.5, 1, 1, 1]);
  });

  it('without warmup the first step has the peak rate', () => {
    expect(learningRateAt(createSchedule('cosine', peak, 4, 0), 0)).toBe(peak);
    // a one-step run: max(1, total - warmup) keeps the division finite
    expect(scheduleMultiplier(createSchedule('cosine', peak, 1, 0), 0)).toBe(1);
  });

  it('rejects an unknown kind or a bad rate with InvalidOptionError', () => {
    let error: unknown;
    try {
      createSchedule('exponential' as never, peak, 10, 0.1);
    } catch (caught) {
      error = caught;
    }
    expect(isInvalidOptionError(error) && error.option).toBe('schedule');
    expect(() => createSchedule('cosine', -1, 10, 0.1)).toThrow(/learningRate/);
  });
});
