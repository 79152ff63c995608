// Tests of the per-sequence seed derivation: its documented formula, its range,
// and that it separates seeds, prompts and samples.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sequenceSeed, streamKey } from './seeds';

describe('sequenceSeed', () => {
  it('is the first 53 bits of sha256("seed/promptId/sampleIndex"), as documented', () => {
    const digest = createHash('sha256').update('42/prompt-7/3').digest();
    const expected = Number(digest.readBigUInt64BE(0) >> 11n);
    expect(sequenceSeed(42, 'prompt-7', 3)).toBe(expected);
    // A pinned value: changing the derivation changes every sample ever generated.
    expect(sequenceSeed(0, 'p', 0)).toBe(Number(createHash('sha256').update('0/p/0').digest().readBigUInt64BE(0) >> 11n));
  });

  it('is a safe integer in [0, 2^53) for extreme inputs', () => {
    for (const [seed, id, sample] of [
      [0, 'a', 0],
      [Number.MAX_SAFE_INTEGER, 'x'.repeat(256), 63],
      [1, 'é漢字🙂', 5],
    ] as const) {
      const value = sequenceSeed(seed, id, sample);
      expect(Number.isSafeInteger(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
    }
  });

  it('depends on the seed, the prompt id and the sample index, and is stable', () => {
    const base = sequenceSeed(1, 'q', 0);
    expect(sequenceSeed(1, 'q', 0)).toBe(base);
    expect(sequenceSeed(2, 'q', 0)).not.toBe(base);
    expect(sequenceSeed(1, 'r', 0)).not.toBe(base);
    expect(sequenceSeed(1, 'q', 1)).not.toBe(base);
    // Ids holding "/" or digits cannot alias another (id, sample) pair.
    expect(sequenceSeed(1, 'a/1', 0)).not.toBe(sequenceSeed(1, 'a', 10));
    expect(sequenceSeed(1, '1/a', 0)).not.toBe(sequenceSeed(11, 'a', 0));
    const all = new Set<number>();
    for (let sample = 0; sample < 64; sample++) for (let p = 0; p < 50; p++) all.add(sequenceSeed(0, `p${p}`, sample));
    expect(all.size).toBe(64 * 50);
  });

  it('names the stream by its decimal value', () => {
    expect(streamKey(12345)).toBe('12345');
  });
});
