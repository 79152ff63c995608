// Right padding and its loss mask, truncation, the seeded shuffle, fingerprints.
import { describe, expect, it } from 'vitest';
import { isContextLengthError } from '../errors';
import { fingerprint, packBatch, padBatch, pairSequences, shuffledOrder, truncateSequence } from './batching';

describe('padBatch', () => {
  it('pads on the right and lists the positions that predict response tokens', () => {
    const batch = padBatch(
      [
        { promptIds: [5, 6], responseIds: [7, 8, 9] },
        { promptIds: [3], responseIds: [4] },
      ],
      0,
    );
    expect(batch.length).toBe(5);
    expect([...batch.inputIds]).toEqual([5, 6, 7, 8, 9, 3, 4, 0, 0, 0]);
    // position t predicts inputIds[t + 1]: row 0 predicts 7 8 9 at 1 2 3, row 1 predicts 4 at 0 (flat 5)
    expect([...batch.predictingPositions]).toEqual([1, 2, 3, 5]);
    expect([...batch.targets]).toEqual([7, 8, 9, 4]);
    expect(batch.responseTokens).toEqual([3, 1]);
    expect(batch.tokens).toBe(7);
  });

  it('puts every chosen row before every rejected row', () => {
    const rows = pairSequences([
      { promptIds: [1], chosenIds: [2], rejectedIds: [3], consistency: 1 },
      { promptIds: [4], chosenIds: [5], rejectedIds: [6], consistency: 1 },
    ]);
    expect(rows.map((row) => row.responseIds[0])).toEqual([2, 5, 3, 6]);
  });
});

describe('packBatch', () => {
  const sequences = [
    { promptIds: [1, 2], responseIds: [3] }, // 3 tokens
    { promptIds: [4], responseIds: [5, 6, 7, 8, 9] }, // 6: the longest, the row length
    { promptIds: [10], responseIds: [11, 12] }, // 3
    { promptIds: [13, 14], responseIds: [15, 16] }, // 4
  ];

  it('packs longest first into the first row with room, rows as long as the longest sequence', () => {
    const batch = packBatch(sequences, 0);
    expect([batch.rows, batch.length]).toEqual([3, 6]);
    // row 0: sequence 1; row 1: sequence 3 (4) then nothing of 3 fits; row 2: sequences 0 and 2 (3 + 3)
    expect([...batch.inputIds]).toEqual([4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 0, 0, 1, 2, 3, 10, 11, 12]);
    expect([...(batch.segments as Int32Array)]).toEqual([1, 1, 1, 1, 1, 1, 3, 3, 3, 3, -1, -1, 0, 0, 0, 2, 2, 2]);
    expect(batch.tokens).toBe(16);
  });

  it('lists predicting positions and targets sequence by sequence in the given order, as padBatch does', () => {
    const packed = packBatch(sequences, 0);
    const padded = padBatch(sequences, 0);
    expect([...packed.targets]).toEqual([...padded.targets]);
    expect(packed.responseTokens).toEqual(padded.responseTokens);
    // each position holds the token before its target, in both layouts
    const before = (batch: typeof packed) => [...batch.predictingPositions].map((p) => batch.inputIds[p]);
    expect(before(packed)).toEqual(before(padded));
    expect([...packed.predictingPositions]).toEqual([13, 0, 1, 2, 3, 4, 15, 16, 7, 8]);
  });

  it('keeps one sequence per row, without segments, when none fit together, and rejects an empty batch', () => {
    const batch = packBatch([{ promptIds: [1], responseIds: [2, 3] }, { promptIds: [4], responseIds: [5, 6] }], 7);
    expect([batch.rows, batch.length, [...batch.inputIds]]).toEqual([2, 3, [1, 2, 3, 4, 5, 6]]);
    expect(batch.segments).toBeUndefined(); // a right-padded batch: the plain causal mask
    expect(() => packBatch([])).toThrow(/at least one sequence/);
  });
});

describe('truncateSequence', () => {
  it('cuts the response tail to the maximum length and says so', () => {
    const sequence = { promptIds: [1, 2, 3], responseIds: [4, 5, 6, 7] };
    expect(truncateSequence(sequence, 7)).toEqual({ sequence, truncated: false });
    expect(truncateSequence(sequence, 5)).toEqual({ sequence: { promptIds: [1, 2, 3], responseIds: [4, 5] }, truncated: true });
  });

  it('throws ContextLengthError when the prompt leaves no room for a response token', () => {
    let error: unknown;
    try {
      truncateSequence({ promptIds: [1, 2, 3], responseIds: [4] }, 3, 7);
    } catch (caught) {
      error = caught;
    }
    expect(isContextLengthError(error) && [error.length, error.limit, error.index]).toEqual([4, 3, 7]);
  });
});

describe('shuffledOrder', () => {
  it('is a permutation fixed by (n, seed, epoch) and differs between epochs and seeds', () => {
    const order = shuffledOrder(50, 42, 0);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(shuffledOrder(50, 42, 0)).toEqual(order);
    expect(shuffledOrder(50, 42, 1)).not.toEqual(order);
    expect(shuffledOrder(50, 43, 0)).not.toEqual(order);
  });
});

describe('fingerprint', () => {
  it('changes with any id, with how ids split into lists, and with float weights', () => {
    const base = fingerprint([[1, 2], [3]]);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint([[1, 2], [3]])).toBe(base);
    expect(fingerprint([[1, 2], [4]])).not.toBe(base);
    expect(fingerprint([[1], [2, 3]])).not.toBe(base);
    expect(fingerprint([[0.8]])).not.toBe(fingerprint([[0.80000001]]));
  });
});
