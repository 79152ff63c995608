// The varied-length rows of the training workload: fixed, within bounds, and in the context check.
import { describe, expect, it } from 'vitest';
import { baseCase, longestSequence, longWorkload, microCase, referenceCase, variedRows } from './cases';

describe('variedRows', () => {
  it('draws the same lengths every time, within [min, max], the first 30% (at least 1) of each the prompt', () => {
    const rows = variedRows(64, 64, 240);
    expect(variedRows(64, 64, 240)).toEqual(rows);
    const lengths = rows.map((row) => row.prompt + row.response);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(64);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(240);
    expect(new Set(lengths).size).toBeGreaterThan(32); // varied, not one length
    for (const { prompt, response } of rows) expect(prompt).toBe(Math.max(1, Math.floor(0.3 * (prompt + response))));
    expect(variedRows(8, 2, 3).every((row) => row.prompt === 1 && row.response >= 1)).toBe(true);
  });

  it('counts in the longest sequence a case feeds', () => {
    const workload = microCase({ warmup: 0, repeats: 1, only: ['varied'] }).workload;
    const longest = Math.max(...workload.varied.rows.map((row) => row.prompt + row.response));
    expect(longestSequence({ ...workload, train: { batch: 1, seq: 2 }, long: { batch: 1, seq: 2 }, score: { items: 1, prompt: 1, response: 1 }, generate: { batches: [1], prompt: 1, newTokens: 1 }, prefill: { batch: 1, prompt: 1 } })).toBe(longest);
  });
});

describe('longWorkload', () => {
  it('takes sequences of the context, up to 1024, 2048 tokens a step', () => {
    expect(longWorkload(2048)).toEqual({ batch: 2, seq: 1024 });
    expect(longWorkload(256)).toEqual({ batch: 8, seq: 256 });
    expect(longWorkload(4096)).toEqual({ batch: 2, seq: 1024 });
    expect(longWorkload(3000)).toEqual({ batch: 2, seq: 1024 });
    const options = { warmup: 0, repeats: 1, only: ['long' as const] };
    expect(referenceCase(options).workload.long).toEqual({ batch: 2, seq: 1024 });
    // The base model's context (256 for models/m0 and its fallback shape) bounds its long sequences.
    const base = baseCase('/nonexistent', options);
    expect(base.workload.long.seq).toBe(Math.min(1024, base.shape.maxPositionEmbeddings));
    expect(longestSequence(base.workload)).toBeLessThanOrEqual(base.shape.maxPositionEmbeddings);
  });
});
