// Philox4x32-10 against Random123's known-answer vectors, and the streams built on it.
import { describe, expect, it } from 'vitest';
import { philox4x32, randomStream, randomUniform } from './index';
import { fillNormal } from './random';

describe('philox4x32', () => {
  it.each([
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
  ] as const)('matches Random123 kat_vectors for counter %j', (counter, key, expected) => {
    expect(philox4x32(counter, key)).toEqual(expected);
  });
});

describe('randomStream', () => {
  it('gives a pure function of (seed, key, index), uniform in [0, 1)', () => {
    const stream = randomStream(42, 'prompt-7/3');
    const draws = Array.from({ length: 2000 }, (_, i) => randomUniform(stream, i));
    expect(draws).toEqual(Array.from({ length: 2000 }, (_, i) => randomUniform(randomStream(42, 'prompt-7/3'), i)));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03); // 5 sigma for n = 2000
  });

  it('separates seeds and keys, and names number n and string "n" alike', () => {
    const first = (seed: number, key: string | number) => randomUniform(randomStream(seed, key), 0);
    const values = new Set([first(0, 'a'), first(0, 'b'), first(1, 'a'), first(2 ** 40, 'a'), first(0, 1)]);
    expect(values.size).toBe(5);
    expect(first(3, 7)).toBe(first(3, '7'));
  });

  it('rejects a seed that is not a safe non-negative integer', () => {
    expect(() => randomStream(-1, 0)).toThrow(RangeError);
    expect(() => randomStream(1.5, 0)).toThrow(RangeError);
  });
});

describe('fillNormal', () => {
  it('draws normal(0, std) samples', () => {
    const values = new Float32Array(20001);
    fillNormal(values, randomStream(1, 'normal'), 2);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(Math.sqrt(variance) - 2)).toBeLessThan(0.05);
  });
});
