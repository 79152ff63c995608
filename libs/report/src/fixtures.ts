// A realistic results.json for tests (and the browser check): a CREAM run of
// two iterations on three tasks, every stage timed, one name needing escapes.
import type { ReportRun } from './types';

function accuracies(values: [number, number, number]): ReportRun['results'][number]['accuracy'] {
  return [
    { task: 'arc-easy', accuracy: values[0], numItems: 40 },
    { task: 'obqa', accuracy: values[1], numItems: 40 },
    { task: 'gsm8k', accuracy: values[2], numItems: 20 },
  ];
}

/** A run with seed `seed` whose accuracies are shifted by `shift` (to build comparisons). */
export function sampleRun(overrides: Partial<ReportRun> = {}, shift = 0): ReportRun {
  const acc = (a: number, b: number, c: number) => accuracies([a + shift, b + shift, c + shift]);
  const mean = (a: number, b: number, c: number) => (a + b + c + 3 * shift) / 3;
  return {
    runId: 'run-20261128-a1b2c3',
    name: 'default <cream> & "friends"',
    method: 'cream',
    seed: 1,
    state: 'SUCCEEDED',
    createdAt: '2026-11-28T12:00:00.000Z',
    finishedAt: '2026-11-28T12:14:00.000Z',
    backend: 'wasm+native',
    spec: { method: 'METHOD_CREAM', iterations: 2, numSamples: 4, data: { builtinSuite: true } },
    stages: [
      { name: 'data', iteration: 0, state: 'DONE', durationMs: 120, metrics: {} },
      { name: 'eval/m0', iteration: 0, state: 'DONE', durationMs: 30_500, metrics: { mean_accuracy: 0.3, items: 100 } },
      { name: 'sft', iteration: 0, state: 'DONE', durationMs: 61_000, metrics: { steps: 40, loss_first: 2.1, loss_last: 1.2 } },
      { name: 'eval/m1', iteration: 0, state: 'DONE', durationMs: 29_000, metrics: { mean_accuracy: 0.4 } },
      { name: 'iter-1/sample', iteration: 1, state: 'DONE', durationMs: 95_000, metrics: { completions: 256, tokens: 18_000 } },
      { name: 'iter-1/consistency', iteration: 1, state: 'DONE', durationMs: 800, metrics: { consistency_rate: 0.62, pairs: 50, reward_margin: 0.41 } },
      { name: 'iter-1/train', iteration: 1, state: 'DONE', durationMs: 70_000, metrics: { steps: 25, pairs: 50 } },
      { name: 'eval/m2', iteration: 1, state: 'DONE', durationMs: 28_000, metrics: { mean_accuracy: 0.45 } },
      { name: 'iter-2/sample', iteration: 2, state: 'RESTORED', durationMs: 90_000, metrics: { completions: 256 } },
      { name: 'iter-2/consistency', iteration: 2, state: 'DONE', durationMs: 750, metrics: { consistency_rate: 0.71, pairs: 48, reward_margin: 0.35 } },
      { name: 'iter-2/train', iteration: 2, state: 'DONE', durationMs: 68_000, metrics: { steps: 24 } },
      { name: 'eval/m3', iteration: 2, state: 'DONE', durationMs: 27_500, metrics: { mean_accuracy: 0.5 } },
    ],
    results: [
      { model: 'M0', version: 'm0', accuracy: acc(0.3, 0.35, 0.25), meanAccuracy: mean(0.3, 0.35, 0.25), pairsUsed: 0 },
      { model: 'M1', version: 'run-20261128-a1b2c3-m1', accuracy: acc(0.4, 0.45, 0.35), meanAccuracy: mean(0.4, 0.45, 0.35), pairsUsed: 0 },
      { model: 'M2', version: 'run-20261128-a1b2c3-m2', accuracy: acc(0.45, 0.5, 0.4), meanAccuracy: mean(0.45, 0.5, 0.4), consistencyRate: 0.62, rewardMargin: 0.41, pairsUsed: 50 },
      { model: 'M3', version: 'run-20261128-a1b2c3-m3', accuracy: acc(0.5, 0.55, 0.45), meanAccuracy: mean(0.5, 0.55, 0.45), consistencyRate: 0.71, rewardMargin: 0.35, pairsUsed: 48 },
    ],
    ...overrides,
  };
}
