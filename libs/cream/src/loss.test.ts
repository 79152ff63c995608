// The consistency-regularized DPO loss: the formula, its stability for large
// margins, the DPO special case and its derivative.
import { describe, expect, it } from 'vitest';
import {
  consistencyRegularizedDpoLoss,
  consistencyRegularizedDpoLossGradient,
  dpoMargin,
  sigmoid,
  softplus,
} from './index';

/** The loss as the paper writes it, fine for moderate h only. */
function naiveLoss(h: number, c: number): number {
  const s = (x: number) => 1 / (1 + Math.exp(-x));
  return c * -Math.log(s(h)) + (1 - c) * -Math.log(s(-h));
}

describe('consistencyRegularizedDpoLoss', () => {
  it('matches the naive formula for moderate margins', () => {
    for (const h of [-8, -3.5, -1, -0.1, 0, 0.25, 1, 2.75, 8]) {
      for (const c of [0, 0.2, 0.5, 0.9, 1]) {
        const expected = naiveLoss(h, c);
        expect(Math.abs(consistencyRegularizedDpoLoss(h, c) - expected)).toBeLessThanOrEqual(1e-12 * Math.max(1, expected));
      }
    }
  });

  it('is log 2 at h = 0 whatever the consistency (sigmoid(0) = 1/2)', () => {
    for (const c of [0, 0.3, 1]) expect(consistencyRegularizedDpoLoss(0, c)).toBeCloseTo(Math.LN2, 15);
  });

  it('stays finite and exact for h = +-1000, where the naive form breaks', () => {
    expect(naiveLoss(1000, 0)).toBe(Infinity);
    expect(naiveLoss(-1000, 1)).toBe(Infinity);
    // loss ~ (1 - c) * h for large positive h, c * |h| for large negative h
    expect(consistencyRegularizedDpoLoss(1000, 1)).toBe(0);
    expect(consistencyRegularizedDpoLoss(1000, 0.3)).toBeCloseTo(700, 9);
    expect(consistencyRegularizedDpoLoss(-1000, 1)).toBe(1000);
    expect(consistencyRegularizedDpoLoss(-1000, 0.25)).toBeCloseTo(250, 9);
    expect(consistencyRegularizedDpoLoss(1e4, 0)).toBe(1e4);
    expect(Number.isFinite(consistencyRegularizedDpoLoss(-1e4, 0.5))).toBe(true);
  });

  it('is plain DPO, -log sigmoid(h), at c = 1', () => {
    for (const h of [-20, -2, 0, 0.5, 3, 30]) {
      expect(consistencyRegularizedDpoLoss(h, 1)).toBeCloseTo(-Math.log(sigmoid(h)), 12);
    }
    // and DPO with the labels swapped at c = 0
    expect(consistencyRegularizedDpoLoss(2, 0)).toBeCloseTo(consistencyRegularizedDpoLoss(-2, 1), 15);
  });

  it('has derivative sigmoid(h) - c, checked by central differences', () => {
    const step = 1e-5;
    for (const h of [-6, -1.3, 0, 0.7, 4]) {
      for (const c of [0, 0.35, 0.5, 1]) {
        const numeric =
          (consistencyRegularizedDpoLoss(h + step, c) - consistencyRegularizedDpoLoss(h - step, c)) / (2 * step);
        expect(Math.abs(numeric - consistencyRegularizedDpoLossGradient(h, c))).toBeLessThan(1e-8);
      }
    }
    // zero gradient where sigmoid(h) = c: at h = 0 for c = 0.5 (why 0.5 is the no-evidence weight)
    expect(consistencyRegularizedDpoLossGradient(0, 0.5)).toBe(0);
  });
});

describe('dpoMargin', () => {
  it('is beta times the difference of the policy-over-reference log ratios', () => {
    // chosen gains 2 (-10 vs -12), rejected loses 1 (-20 vs -19): 0.1 * (2 - (-1)) = 0.3
    expect(dpoMargin(-10, -12, -20, -19, 0.1)).toBeCloseTo(0.3, 15);
    // policy = reference: margin 0, where training starts
    expect(dpoMargin(-5, -5, -7, -7, 0.1)).toBe(0);
  });
});

describe('softplus and sigmoid', () => {
  it('are exact at the extremes and agree with the naive forms in the middle', () => {
    expect(softplus(800)).toBe(800);
    expect(softplus(-800)).toBe(0);
    expect(softplus(0)).toBeCloseTo(Math.LN2, 15);
    expect(softplus(1.5)).toBeCloseTo(Math.log(1 + Math.exp(1.5)), 15);
    expect(sigmoid(-800)).toBe(0);
    expect(sigmoid(800)).toBe(1);
    expect(sigmoid(-2)).toBeCloseTo(1 / (1 + Math.exp(2)), 15);
    expect(sigmoid(2) + sigmoid(-2)).toBeCloseTo(1, 15);
  });
});
