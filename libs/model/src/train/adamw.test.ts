// AdamW against a hand computation of torch.optim.AdamW (bias correction,
// decoupled decay on matrices only), its state keyed by weight name, and
// global-norm clipping as torch's clip_grad_norm_.
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { AdamW, decayMatricesOnly } from './adamw';
import { clipByGlobalNorm, clipFactor, globalNorm } from './clip';

let created: tf.Variable[] = [];
function variable(values: number[], shape: number[]): tf.Variable {
  const v = tf.variable(tf.tensor(values, shape), true, `adamw-test-${created.length}-${Math.random()}`);
  created.push(v);
  return v;
}
afterEach(() => {
  tf.dispose(created);
  created = [];
});

// torch.optim.AdamW for one parameter, in float64, written out; one learning rate per step.
function referenceAdamW(
  p0: number[],
  steps: { g: number[]; lr: number }[],
  { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = {},
): number[] {
  const m = p0.map(() => 0);
  const v = p0.map(() => 0);
  const p = [...p0];
  steps.forEach(({ g, lr }, index) => {
    const t = index + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * weightDecay;
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** t) + eps;
      p[i] -= (lr / (1 - beta1 ** t)) * (m[i] / denom);
    }
  });
  return p;
}

function expectClose(got: ArrayLike<number>, want: number[], tolerance = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(want[i])));
}

describe('AdamW', () => {
  it('one step: p * (1 - lr * wd) - lr * g / (|g| + eps) with bias correction, no decay on 1-D weights', () => {
    const matrix = variable([1, -2, 0.5, 3], [2, 2]);
    const bias = variable([0.25, -0.75], [2]);
    const weights = new Map([
      ['layer.weight', matrix],
      ['layer.bias', bias],
    ]);
    const g = [0.3, -0.1, 2, -4];
    const gb = [0.5, -0.02];
    const optimizer = new AdamW({ weightDecay: 0.1 });
    const gradients = new Map([
      ['layer.weight', tf.tensor(g, [2, 2])],
      ['layer.bias', tf.tensor(gb, [2])],
    ]);
    optimizer.update(weights, gradients, 0.1);
    tf.dispose([...gradients.values()]);
    // After one step m / (1 - beta1) = g and sqrt(v / (1 - beta2)) = |g|, so the step is lr * g / (|g| + eps).
    expectClose(matrix.dataSync(), [1, -2, 0.5, 3].map((p, i) => p * (1 - 0.1 * 0.1) - (0.1 * g[i]) / (Math.abs(g[i]) + 1e-8)));
    expectClose(bias.dataSync(), [0.25, -0.75].map((p, i) => p - (0.1 * gb[i]) / (Math.abs(gb[i]) + 1e-8)));
    optimizer.dispose();
  });

  it('several steps with changing gradients and rates equal torch.optim.AdamW written out', () => {
    const p0 = [0.4, -1.2, 2.5, 0.01, -0.3, 0.9];
    const steps = [
      { g: [0.1, -0.2, 0.3, 1e-4, -2, 0.5], lr: 0.01 },
      { g: [-0.3, 0.1, 0.2, -1e-3, 1, 0.4], lr: 0.02 },
      { g: [0.05, 0.05, -0.6, 0, 0.3, -0.1], lr: 0.005 },
      { g: [0.9, -0.4, 0.2, 0.1, 0.7, -0.2], lr: 0.001 },
    ];
    for (const options of [{}, { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.05 }]) {
      const w = variable(p0, [2, 3]);
      const optimizer = new AdamW({ ...options, epsilon: (options as { eps?: number }).eps });
      for (const { g, lr } of steps) {
        const gradient = tf.tensor(g, [2, 3]);
        optimizer.update(new Map([['w', w]]), new Map([['w', gradient]]), lr);
        gradient.dispose();
      }
      expectClose(w.dataSync(), referenceAdamW(p0, steps, options));
      optimizer.dispose();
    }
  });

  it('keys its state by weight name: reordered weights and new variables continue identically', async () => {
    // Same shapes, different moments: a state keyed by position would swap them.
    const a0 = [1, 2, 3, 4];
    const b0 = [-1, 0.5, 0.25, 2];
    const ga = [0.1, -0.2, 0.3, -0.4];
    const gb = [-3, 2, -1, 0.5];
    const first = new AdamW();
    const weights = new Map([
      ['a', variable(a0, [2, 2])],
      ['b', variable(b0, [2, 2])],
    ]);
    const step = (optimizer: AdamW, map: Map<string, tf.Variable>) => {
      const gradients = new Map([
        ['a', tf.tensor(ga, [2, 2])],
        ['b', tf.tensor(gb, [2, 2])],
      ]);
      optimizer.update(map, gradients, 0.01);
      tf.dispose([...gradients.values()]);
    };
    step(first, weights);
    const state = await first.exportState();

    // Another optimizer and other variables (same values), listed b before a.
    const reordered = new Map([
      ['b', variable([...(weights.get('b') as tf.Variable).dataSync()], [2, 2])],
      ['a', variable([...(weights.get('a') as tf.Variable).dataSync()], [2, 2])],
    ]);
    const second = new AdamW();
    second.loadState(new Map([...state].reverse()), reordered);
    step(first, weights);
    step(second, reordered);
    expect([...(reordered.get('a') as tf.Variable).dataSync()]).toEqual([...(weights.get('a') as tf.Variable).dataSync()]);
    expect([...(reordered.get('b') as tf.Variable).dataSync()]).toEqual([...(weights.get('b') as tf.Variable).dataSync()]);
    expect(second.names().sort()).toEqual(['a', 'b']);
    first.dispose();
    second.dispose();
  });

  it('refuses a state entry for an unknown weight or of the wrong shape', async () => {
    const optimizer = new AdamW();
    const w = variable([1, 2], [2]);
    const gradient = tf.tensor([1, 1]);
    optimizer.update(new Map([['w', w]]), new Map([['w', gradient]]), 0.1);
    gradient.dispose();
    const state = await optimizer.exportState();
    expect(() => new AdamW().loadState(state, new Map([['other', w]]))).toThrow(/not a weight/);
    expect(() => new AdamW().loadState(state, new Map([['w', variable([1, 2, 3], [3])]]))).toThrow(/shape/);
    optimizer.dispose();
  });

  it('keeps two moment tensors per weight and leaks nothing per update', () => {
    const weights = new Map([
      ['w', variable([1, 2, 3, 4], [2, 2])],
      ['n', variable([1, 1], [2])],
    ]);
    const optimizer = new AdamW();
    const gradients = new Map([
      ['w', tf.tensor([1, 2, 3, 4], [2, 2])],
      ['n', tf.tensor([0.5, -0.5])],
    ]);
    const before = tf.memory().numTensors;
    optimizer.update(weights, gradients, 0.1);
    expect(tf.memory().numTensors).toBe(before + 4);
    optimizer.update(weights, gradients, 0.1);
    expect(tf.memory().numTensors).toBe(before + 4);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...gradients.values()]);
  });

  it('decays 2-D matrices only by default', () => {
    const matrix = variable([1, 2], [1, 2]);
    const vector = variable([1, 2], [2]);
    expect(decayMatricesOnly('model.layers.0.mlp.up_proj.weight', matrix)).toBe(true);
    expect(decayMatricesOnly('model.norm.weight', vector)).toBe(false);
  });
});

describe('clipByGlobalNorm', () => {
  it('returns the norm of all gradients as one vector and scales by max / (norm + 1e-6) above it', () => {
    const gradients = new Map([
      ['a', tf.tensor([3, 0], [2])],
      ['b', tf.tensor([[0, 4]], [1, 2])],
    ]);
    expect(globalNorm(gradients.values())).toBeCloseTo(5, 6);
    const before = tf.memory().numTensors;
    const clipped = clipByGlobalNorm(gradients, 1);
    expect(clipped.norm).toBeCloseTo(5, 6);
    const scale = 1 / (5 + 1e-6);
    expectClose((clipped.gradients.get('a') as tf.Tensor).dataSync(), [3 * scale, 0]);
    expectClose((clipped.gradients.get('b') as tf.Tensor).dataSync(), [0, 4 * scale]);
    tf.dispose([...clipped.gradients.values()]);
    // Below the limit: unchanged values (new tensors).
    const kept = clipByGlobalNorm(gradients, 10);
    expect([...(kept.gradients.get('a') as tf.Tensor).dataSync()]).toEqual([3, 0]);
    tf.dispose([...kept.gradients.values()]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...gradients.values()]);
  });
});

describe('clipFactor with AdamW.update', () => {
  it('gives the factor and norm of clipByGlobalNorm, and an update with the factor equals one on the clipped gradients, bit for bit', () => {
    const make = () => new Map([
      ['w', tf.variable(tf.tensor([[0.5, -1], [2, 0.25]]))],
      ['b', tf.variable(tf.tensor([0.1, -0.2]))],
    ]);
    const gradients = new Map([
      ['w', tf.tensor([[3, -1], [2, 5]])],
      ['b', tf.tensor([4, -7])],
    ]);
    const { scale, norm } = clipFactor(gradients, 1);
    const clipped = clipByGlobalNorm(gradients, 1);
    expect(norm).toBe(clipped.norm);
    expect(scale).toBe(1 / (norm + 1e-6));
    const [viaFactor, viaTensors] = [make(), make()];
    const [first, second] = [new AdamW(), new AdamW()];
    for (let step = 0; step < 2; step++) {
      first.update(viaFactor, gradients, 1e-2, scale);
      second.update(viaTensors, clipped.gradients, 1e-2);
    }
    for (const name of ['w', 'b']) {
      expect([...(viaFactor.get(name) as tf.Variable).dataSync()]).toEqual([...(viaTensors.get(name) as tf.Variable).dataSync()]);
    }
    expect(() => first.update(viaFactor, gradients, 1e-2, Number.NaN)).toThrow(/gradientScale must be a finite number >= 0/);
    expect(() => clipFactor(gradients, 0)).toThrow(/maxGradNorm must be > 0/);
    first.dispose();
    second.dispose();
    tf.dispose([...viaFactor.values(), ...viaTensors.values(), ...gradients.values(), ...clipped.gradients.values()]);
  });
});
