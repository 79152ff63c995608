// The SFT and consistency-regularized DPO losses on plain tensors: values
// against hand computations, the DPO special cases (C = 1 is DPO, C = 0 swaps
// the labels, the gradient changes sign at C = 1/2), stability for large
// margins, and finite-difference checks of their gradients.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { dpoLoss, dpoMetrics, sftLoss, tokenLogprobs, type PairLogprobs } from './losses';
import { seededRandom } from './test-fixtures';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

// Summed log-probs of N pairs, as plain numbers.
interface Pairs {
  pc: number[];
  pr: number[];
  rc: number[];
  rr: number[];
}

function randomPairs(n: number, seed: number): Pairs {
  const random = seededRandom(seed);
  const logprobs = () => Array.from({ length: n }, () => -30 * random());
  return { pc: logprobs(), pr: logprobs(), rc: logprobs(), rr: logprobs() };
}

function tensors({ pc, pr, rc, rr }: Pairs): PairLogprobs {
  return {
    policyChosen: tf.tensor1d(pc),
    policyRejected: tf.tensor1d(pr),
    referenceChosen: tf.tensor1d(rc),
    referenceRejected: tf.tensor1d(rr),
  };
}

// The loss as CREAM.md writes it, in float64: mean of C * -log sigmoid(h) + (1 - C) * -log sigmoid(-h).
function handLoss({ pc, pr, rc, rr }: Pairs, c: number[], beta: number): number {
  let total = 0;
  for (let i = 0; i < pc.length; i++) {
    const h = beta * (pc[i] - rc[i] - (pr[i] - rr[i]));
    total += c[i] * -Math.log(sigmoid(h)) + (1 - c[i]) * -Math.log(sigmoid(-h));
  }
  return total / pc.length;
}

function lossValue(pairs: Pairs, c: number[] | number, beta: number, normalizer?: number): number {
  return tf.tidy(() => dpoLoss(tensors(pairs), typeof c === 'number' ? c : tf.tensor1d(c), beta, normalizer).loss.dataSync()[0]);
}

describe('dpoLoss', () => {
  const pairs = randomPairs(6, 1);
  const beta = 0.1;

  it('with C = 1 equals plain DPO, mean of -log sigmoid(h), computed by hand', () => {
    const ones = pairs.pc.map(() => 1);
    expect(lossValue(pairs, 1, beta)).toBeCloseTo(handLoss(pairs, ones, beta), 6);
    expect(lossValue(pairs, ones, beta)).toBeCloseTo(handLoss(pairs, ones, beta), 6);
  });

  it('with C per pair in (0, 1) equals the hand formula', () => {
    const c = [0, 0.1, 0.35, 0.5, 0.8, 1];
    expect(lossValue(pairs, c, beta)).toBeCloseTo(handLoss(pairs, c, beta), 6);
    expect(lossValue(pairs, c, 0.7)).toBeCloseTo(handLoss(pairs, c, 0.7), 5);
  });

  it('with C = 0 equals DPO with chosen and rejected swapped', () => {
    const swapped: Pairs = { pc: pairs.pr, pr: pairs.pc, rc: pairs.rr, rr: pairs.rc };
    expect(lossValue(pairs, 0, beta)).toBeCloseTo(lossValue(swapped, 1, beta), 6);
  });

  it('pushes log p(y+) up for C > 1/2, down for C < 1/2, not at all at C = 1/2, when h = 0', () => {
    // Policy equal to reference: h = 0, d loss / d log p(y+) = beta * (sigmoid(0) - C) / N.
    const equal: Pairs = { pc: [-5, -7], pr: [-6, -2], rc: [-5, -7], rr: [-6, -2] };
    const gradient = (c: number) =>
      tf.tidy(() => {
        const { referenceChosen, referenceRejected, policyRejected } = tensors(equal);
        const grad = tf.grad((pc: tf.Tensor) =>
          dpoLoss({ policyChosen: pc as tf.Tensor1D, policyRejected, referenceChosen, referenceRejected }, c, beta).loss,
        );
        return [...grad(tf.tensor1d(equal.pc)).dataSync()];
      });
    for (const c of [0, 0.2, 0.5, 0.7, 1]) {
      for (const g of gradient(c)) expect(g).toBeCloseTo((beta * (0.5 - c)) / 2, 7);
    }
    expect(gradient(0.8).every((g) => g < 0)).toBe(true);
    expect(gradient(0.2).every((g) => g > 0)).toBe(true);
  });

  it('stays finite for margins far past float32 exp range', () => {
    const far: Pairs = { pc: [0, -5000], pr: [-5000, 0], rc: [0, 0], rr: [0, 0] };
    const value = lossValue(far, [0.75, 0.75], 1);
    // h = +5000: 0.25 * 5000; h = -5000: 0.75 * 5000.
    expect(value).toBeCloseTo((0.25 * 5000 + 0.75 * 5000) / 2, 1);
  });

  it('sums micro-batch losses with the batch size as normalizer to the whole batch mean', () => {
    const c = [0.9, 0.6, 1, 0.3, 0.5, 0.75];
    const part = (lo: number, hi: number): Pairs => ({
      pc: pairs.pc.slice(lo, hi),
      pr: pairs.pr.slice(lo, hi),
      rc: pairs.rc.slice(lo, hi),
      rr: pairs.rr.slice(lo, hi),
    });
    const summed = lossValue(part(0, 2), c.slice(0, 2), beta, 6) + lossValue(part(2, 6), c.slice(2, 6), beta, 6);
    expect(summed).toBeCloseTo(lossValue(pairs, c, beta), 6);
  });

  it('has the gradient that finite differences of its own values give (C in (0, 1))', () => {
    const c = [0.15, 0.5, 0.85, 1, 0, 0.6];
    const loss = (pc: tf.Tensor, pr: tf.Tensor) =>
      dpoLoss(
        {
          policyChosen: pc as tf.Tensor1D,
          policyRejected: pr as tf.Tensor1D,
          referenceChosen: tf.tensor1d(pairs.rc),
          referenceRejected: tf.tensor1d(pairs.rr),
        },
        tf.tensor1d(c),
        0.5,
      ).loss;
    const [gc, gr] = tf.tidy(() => tf.grads(loss)([tf.tensor1d(pairs.pc), tf.tensor1d(pairs.pr)]).map((g) => [...g.dataSync()]));
    const eps = 1e-2;
    for (let i = 0; i < pairs.pc.length; i++) {
      for (const [key, analytic] of [
        ['pc', gc[i]],
        ['pr', gr[i]],
      ] as const) {
        const shifted = (delta: number): Pairs => ({ ...pairs, [key]: pairs[key].map((v, j) => (j === i ? v + delta : v)) });
        const numeric = (handLoss(shifted(eps), c, 0.5) - handLoss(shifted(-eps), c, 0.5)) / (2 * eps); // float64
        const own = (tf.tidy(() => loss(...args(shifted(eps))).dataSync()[0]) - tf.tidy(() => loss(...args(shifted(-eps))).dataSync()[0])) / (2 * eps);
        expect(Math.abs(analytic - numeric)).toBeLessThan(1e-5);
        expect(Math.abs(analytic - own)).toBeLessThan(2e-4);
      }
    }
    function args(p: Pairs): [tf.Tensor, tf.Tensor] {
      return [tf.tensor1d(p.pc), tf.tensor1d(p.pr)];
    }
  });

  it('returns the implicit rewards beta * (policy - reference) it was built from', () => {
    const [chosen, rejected] = tf.tidy(() => {
      const result = dpoLoss(tensors(pairs), 1, beta);
      return [[...result.chosenRewards.dataSync()], [...result.rejectedRewards.dataSync()]];
    });
    chosen.forEach((value, i) => expect(value).toBeCloseTo(beta * (pairs.pc[i] - pairs.rc[i]), 5));
    rejected.forEach((value, i) => expect(value).toBeCloseTo(beta * (pairs.pr[i] - pairs.rr[i]), 5));
  });
});

describe('dpoMetrics', () => {
  it('gives TRL rewards/accuracies, chosen, rejected, margins, and the mean C', () => {
    const metrics = dpoMetrics([0.2, -0.1, 0.3, 0], [0.1, 0.1, -0.3, 0], [1, 0.5, 0.25, 0.25]);
    expect(metrics.rewardAccuracy).toBe(0.5); // strict >: the tie does not count
    expect(metrics.chosenReward).toBeCloseTo(0.1, 12);
    expect(metrics.rejectedReward).toBeCloseTo(-0.025, 12);
    expect(metrics.margin).toBeCloseTo(0.125, 12);
    expect(metrics.meanConsistency).toBe(0.5);
  });
});

describe('sftLoss', () => {
  // Logits of 3 response positions over a vocabulary of 5, and the tokens they predict.
  const random = seededRandom(7);
  const logitValues = Array.from({ length: 3 * 5 }, () => 4 * random() - 2);
  const targets = [1, 4, 1];
  const loss = (logits: tf.Tensor, normalizer?: number) =>
    sftLoss(tokenLogprobs(logits as tf.Tensor2D, tf.tensor1d(targets, 'int32')), normalizer);

  function handLogSoftmax(row: number[]): number[] {
    const max = Math.max(...row);
    const logZ = max + Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0));
    return row.map((x) => x - logZ);
  }
  const row = (n: number) => logitValues.slice(n * 5, (n + 1) * 5);

  it('picks the log-probs of the targets as logSoftmax gives them', () => {
    const got = tf.tidy(() => [...tokenLogprobs(tf.tensor2d(logitValues, [3, 5]), tf.tensor1d(targets, 'int32')).dataSync()]);
    got.forEach((value, n) => expect(value).toBeCloseTo(handLogSoftmax(row(n))[targets[n]], 5));
  });

  it('is the mean cross-entropy of the tokens, or their sum over a given normalizer', () => {
    const total = -targets.reduce((sum, id, n) => sum + handLogSoftmax(row(n))[id], 0);
    expect(tf.tidy(() => loss(tf.tensor2d(logitValues, [3, 5])).dataSync()[0])).toBeCloseTo(total / 3, 5);
    expect(tf.tidy(() => loss(tf.tensor2d(logitValues, [3, 5]), 10).dataSync()[0])).toBeCloseTo(total / 10, 5);
  });

  it('has the gradient that finite differences of its own values give', () => {
    const analytic = tf.tidy(() => [...tf.grad((logits: tf.Tensor) => loss(logits))(tf.tensor2d(logitValues, [3, 5])).dataSync()]);
    const eps = 1e-2;
    const at = (delta: number, i: number) =>
      tf.tidy(() => loss(tf.tensor2d(logitValues.map((v, j) => (j === i ? v + delta : v)), [3, 5])).dataSync()[0]);
    for (let i = 0; i < logitValues.length; i++) {
      const numeric = (at(eps, i) - at(-eps, i)) / (2 * eps);
      expect(Math.abs(analytic[i] - numeric)).toBeLessThan(2e-4);
      // d/dlogit = (softmax - onehot) / N
      const n = Math.floor(i / 5);
      const softmax = Math.exp(handLogSoftmax(row(n))[i % 5]);
      expect(analytic[i]).toBeCloseTo((softmax - (targets[n] === i % 5 ? 1 : 0)) / 3, 6);
    }
  });
});
