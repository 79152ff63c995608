// Both sides of `cream bench` compute the same model and the same training
// step: the PyTorch baseline (llama_bench.py --check, PyTorch's own autograd
// and AdamW) and ours (checkOurs: the bench's trainSft call on the compute
// backend chosen) load one checkpoint and agree on the logits, each step's
// loss and gradient norm, and every weight after three steps, for each
// architecture the baseline builds. Runs when python can import torch.
import { initCompute, type ComputeInfo } from '@cream/compute';
import { initCheckpoint, loadCheckpoint, modelConfigFromHf, randomStream, randomUniform } from '@cream/model';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PYTHONS, findTorch, runBaselineCheck, type AgreementInput, type AgreementResult } from './baseline';
import { microCase, shapeOf, type BenchCase } from './cases';
import { checkOurs } from './ours';

const torch = findTorch(DEFAULT_PYTHONS, process.env);
const configs = join(__dirname, '..', '..', 'apps', 'cli', 'configs');
const fromFile = (name: string) => JSON.parse(readFileSync(join(configs, name), 'utf8')) as Record<string, unknown>;

// Every option the baseline implements, each in at least one checkpoint.
const ARCHITECTURES: Array<[string, Record<string, unknown>]> = [
  ['llama, grouped-query attention', fromFile('tiny-llama.json')],
  ['smollm, tied embeddings', fromFile('tiny-smollm.json')],
  ['qwen2, q/k/v biases', fromFile('tiny-qwen2.json')],
  [
    'qwen3, q/k norms, all four attention biases, a head width other than d_model / heads',
    { ...fromFile('tiny-qwen2.json'), architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 24, attention_bias: true, tie_word_embeddings: true },
  ],
  // Head width 16, theta 500000: wavelengths 6.3, 32.5, 168, ... fall on each
  // side of [64 / 4, 64 / 1] and inside it, so all three of llama3's cases count.
  [
    'llama with llama3 rotary scaling',
    {
      ...fromFile('tiny-llama.json'),
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    },
  ],
  ['llama with linear rotary scaling', { ...fromFile('tiny-llama.json'), rope_scaling: { type: 'linear', factor: 4 } }],
];

function rowsOf(vocab: number, batch: number, length: number, seed: number): number[][] {
  const stream = randomStream(seed, 'agreement');
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, t) => Math.floor(randomUniform(stream, b * length + t) * vocab)));
}

const maxAbsDiff = (a: readonly number[], b: readonly number[]) => a.reduce((max, x, i) => Math.max(max, Math.abs(x - b[i])), 0);
const maxAbs = (a: readonly number[]) => a.reduce((max, x) => Math.max(max, Math.abs(x)), 0);

describe.runIf(torch.probe.ok)('the PyTorch baseline and ours compute the same model and training step', () => {
  let info: ComputeInfo;
  const dirs: string[] = [];
  beforeAll(async () => {
    info = await initCompute();
  });
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it.each(ARCHITECTURES)('%s', async (_name, hfConfig) => {
    const dir = mkdtempSync(join(tmpdir(), 'cream-agreement-'));
    dirs.push(dir);
    await initCheckpoint(dir, hfConfig, { seed: 5 });
    const config = modelConfigFromHf(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const benchCase: BenchCase = { ...microCase({ warmup: 0, repeats: 1, only: ['train'] }), name: 'agreement', shape: shapeOf(config), checkpoint: dir };
    // Three rows of 40 tokens.
    const input: AgreementInput = { rows: rowsOf(config.vocabSize, 3, 40, 11), steps: 3 };
    const ours: AgreementResult = await checkOurs(benchCase, input);
    const theirs = await runBaselineCheck(torch.python, benchCase, input, process.env);

    expect(ours.logits).toHaveLength(3 * 40 * config.vocabSize);
    expect(theirs.logits).toHaveLength(ours.logits.length);
    const scale = maxAbs(theirs.logits);
    expect(scale).toBeGreaterThan(0.05); // not a degenerate all-zero model
    // Measured: at most 4e-7 apart, logits up to 1.4.
    expect(maxAbsDiff(ours.logits, theirs.logits), `logits on ${info.variant}`).toBeLessThan(1e-5);

    expect(ours.steps).toHaveLength(3);
    for (const [i, step] of ours.steps.entries()) {
      expect(Math.abs(step.loss - theirs.steps[i].loss), `loss of step ${i + 1}`).toBeLessThan(1e-5);
      expect(Math.abs(step.gradNorm - theirs.steps[i].gradNorm) / theirs.steps[i].gradNorm, `gradient norm of step ${i + 1}`).toBeLessThan(1e-5);
    }
    // The losses fall: the steps trained on the rows.
    expect(theirs.steps[2].loss).toBeLessThan(theirs.steps[0].loss);

    expect(Object.keys(ours.weights).sort()).toEqual(Object.keys(theirs.weights).sort());
    // Each weight agrees to within a thirtieth of what the steps moved it (AdamW
    // moves a weight about lr = 1e-4 a step): the same moments, bias correction
    // and clipping. Measured: at most 3e-6 apart, where a gradient near zero
    // makes Adam's step sensitive to its rounding. (Weight decay moves a weight
    // by lr * 0.01 * |w|, about 2e-8 a step here: below what this can tell.)
    const before = (await loadCheckpoint(dir)).tensors;
    for (const [name, values] of Object.entries(theirs.weights)) {
      expect(ours.weights[name], name).toHaveLength(values.length);
      expect(maxAbsDiff(Array.from(before.get(name)!.data), values), `how far ${name} moved`).toBeGreaterThan(1e-4);
      expect(maxAbsDiff(ours.weights[name], values), name).toBeLessThan(1e-5);
    }
  });
});
