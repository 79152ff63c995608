// The varied-length rows of the training workload: fixed, within bounds, and in
// the context check; the case of a checkpoint the user names.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseCase, BenchCaseError, longestSequence, longWorkload, microCase, modelCase, referenceCase, variedRows } from './cases';

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

describe('modelCase', () => {
  const tinyLlama = JSON.parse(readFileSync(join(__dirname, '..', '..', 'apps', 'cli', 'configs', 'tiny-llama.json'), 'utf8')) as Record<string, unknown>;
  const checkpoint = (config: Record<string, unknown>) => {
    const dir = mkdtempSync(join(tmpdir(), 'cream-model-case-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'model.safetensors'), ''); // only looked for here; the sides load it
    return dir;
  };
  const options = { warmup: 1, repeats: 2, only: ['train' as const] };

  it('takes the checkpoint config shape, its directory as checkpoint and name, the long sequences of its context', () => {
    const dir = checkpoint({ ...tinyLlama, max_position_embeddings: 512 });
    const benchCase = modelCase(dir, options);
    expect(benchCase.name).toBe(basename(dir));
    expect(benchCase.checkpoint).toBe(dir);
    expect(benchCase.shape).toMatchObject({ architecture: 'llama', vocabSize: 320, hiddenSize: 64, nKvHeads: 2, maxPositionEmbeddings: 512, attentionBias: false, qkNorm: false, ropeScaling: null });
    expect(benchCase.workload.long).toEqual({ batch: 4, seq: 512 });
    expect(benchCase.workload.train).toEqual(referenceCase(options).workload.train);
    expect({ warmup: benchCase.warmup, repeats: benchCase.repeats, only: benchCase.only }).toEqual(options);
    // --quick: the micro workload on the checkpoint.
    expect(modelCase(dir, { ...options, quick: true }).workload).toEqual(microCase(options).workload);
  });

  it('refuses a directory without config.json or weights, a bad config, and a context shorter than the workload', () => {
    const empty = mkdtempSync(join(tmpdir(), 'cream-model-case-'));
    expect(() => modelCase(empty, options)).toThrow(new BenchCaseError(`${empty} has no config.json: name a checkpoint directory (config.json and safetensors)`));
    writeFileSync(join(empty, 'config.json'), JSON.stringify(tinyLlama));
    expect(() => modelCase(empty, options)).toThrow(`${empty} has no model.safetensors (or model.safetensors.index.json)`);
    expect(() => modelCase(checkpoint({ ...tinyLlama, hidden_size: -1 }), options)).toThrow(BenchCaseError);
    // 128-token training rows and longer varied ones do not fit a 100-token context; the micro workload does.
    const short = checkpoint({ ...tinyLlama, max_position_embeddings: 100 });
    expect(() => modelCase(short, options)).toThrow(/its context \(100\) is shorter than the benchmark's \d+-token sequences \(--quick runs the micro workload, up to 64 tokens\)$/);
    expect(modelCase(short, { ...options, quick: true }).shape.maxPositionEmbeddings).toBe(100);
  });
});
