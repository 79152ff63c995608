// The reward definitions of CREAM steps 2 and 3.
import { describe, expect, it } from 'vitest';
import { dpoImplicitReward, lengthNormalizedLogLikelihood } from './index';

describe('dpoImplicitReward', () => {
  it('is the current minus the previous summed log-probability, with no beta', () => {
    // the current model makes the response more likely (-10 vs -12): reward +2
    expect(dpoImplicitReward(-10, -12)).toBe(2);
    expect(dpoImplicitReward(-15.5, -12)).toBe(-3.5);
  });
});

describe('lengthNormalizedLogLikelihood', () => {
  it('is the mean log-probability per response token', () => {
    expect(lengthNormalizedLogLikelihood(-12, 4)).toBe(-3);
    // the point of normalizing: a long and a short response of equal per-token quality score equally
    expect(lengthNormalizedLogLikelihood(-40, 20)).toBe(lengthNormalizedLogLikelihood(-4, 2));
  });
  it('refuses an empty or fractional token count', () => {
    expect(() => lengthNormalizedLogLikelihood(-1, 0)).toThrow(RangeError);
    expect(() => lengthNormalizedLogLikelihood(-1, 2.5)).toThrow(RangeError);
  });
});
