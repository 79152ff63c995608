// The two training losses on tensors: supervised fine-tuning (cross-entropy of
// the response tokens, prompt and padding masked) and CREAM's
// consistency-regularized DPO loss (CREAM.md step 7):
//   h    = beta * [(log p(y+) - log p_ref(y+)) - (log p(y-) - log p_ref(y-))]
//   loss = C * (-log sigmoid(h)) + (1 - C) * (-log sigmoid(-h))
// computed as C * softplus(-h) + (1 - C) * softplus(h), finite for any h.
// With C = 1 it is plain DPO (Rafailov et al. 2023). Both take an optional
// normalizer so that the micro-batches of one optimizer step add up to the
// loss of the whole step (gradient accumulation equals one big batch).
// Call them inside tf.tidy (or a gradient function, which tidies).

import { logSoftmaxGather } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Log-probability of each target under its row of logits:
 * out[n] = logSoftmax(logits[n])[targets[n]], by @cream/compute's
 * logSoftmaxGather (one fused kernel on wasm+native, whose gradient is
 * softmax minus the one-hot target; a one-hot product of tf ops elsewhere).
 */
export function tokenLogprobs(
  logits: tf.Tensor2D, // [N, V]
  targets: tf.Tensor1D, // [N] int32
): tf.Tensor1D {
  return logSoftmaxGather(logits, targets); // [N]
}

/**
 * SFT loss: -sum(log p of response tokens) / normalizer, where normalizer
 * defaults to the number of response tokens given (the mean token
 * cross-entropy). Give the step's total token count when these tokens are one
 * micro-batch of several.
 */
export function sftLoss(
  responseTokenLogprobs: tf.Tensor1D, // [N]
  normalizer?: number,
): tf.Scalar {
  return tf.div(tf.neg(tf.sum(responseTokenLogprobs)), normalizer ?? responseTokenLogprobs.shape[0]) as tf.Scalar; // []
}

/** Summed response log-probs of a batch of pairs under the policy and the frozen reference. */
export interface PairLogprobs {
  readonly policyChosen: tf.Tensor1D; // [N]
  readonly policyRejected: tf.Tensor1D; // [N]
  readonly referenceChosen: tf.Tensor1D; // [N]
  readonly referenceRejected: tf.Tensor1D; // [N]
}

/** The DPO loss and the implicit rewards it was built from. */
export interface DpoLossResult {
  /** sum over pairs of the pair losses / normalizer (the batch mean by default). */
  readonly loss: tf.Scalar;
  /** beta * (log p(y+) - log p_ref(y+)) per pair. */
  readonly chosenRewards: tf.Tensor1D; // [N]
  /** beta * (log p(y-) - log p_ref(y-)) per pair. */
  readonly rejectedRewards: tf.Tensor1D; // [N]
}

/**
 * CREAM's consistency-regularized DPO loss. `consistency` is C per pair (dyn)
 * or one number for all (avg), in [0, 1]; `normalizer` defaults to the number
 * of pairs (the mean over the batch).
 */
export function dpoLoss(
  logprobs: PairLogprobs,
  consistency: tf.Tensor1D | number,
  beta: number,
  normalizer?: number,
): DpoLossResult {
  const chosenRewards = tf.mul(tf.sub(logprobs.policyChosen, logprobs.referenceChosen), beta) as tf.Tensor1D; // [N]
  const rejectedRewards = tf.mul(tf.sub(logprobs.policyRejected, logprobs.referenceRejected), beta) as tf.Tensor1D; // [N]
  const h = tf.sub(chosenRewards, rejectedRewards); // [N]
  // C * (-log sigmoid(h)) + (1 - C) * (-log sigmoid(-h)), with -log sigmoid(x) = softplus(-x)
  const c = typeof consistency === 'number' ? tf.scalar(consistency) : consistency; // [N] or []
  const pairLosses = tf.add(tf.mul(c, tf.softplus(tf.neg(h))), tf.mul(tf.sub(1, c), tf.softplus(h))); // [N]
  const loss = tf.div(tf.sum(pairLosses), normalizer ?? h.shape[0]) as tf.Scalar; // []
  return { loss, chosenRewards, rejectedRewards };
}

/** What TRL's DPO trainer logs, plus CREAM's mean C, over a set of pairs. */
export interface DpoMetrics {
  /** Fraction of pairs whose chosen reward is above the rejected one (rewards/accuracies). */
  readonly rewardAccuracy: number;
  /** Mean beta * (log p(y+) - log p_ref(y+)) (rewards/chosen). */
  readonly chosenReward: number;
  /** Mean beta * (log p(y-) - log p_ref(y-)) (rewards/rejected). */
  readonly rejectedReward: number;
  /** Mean chosen minus rejected reward (rewards/margins). */
  readonly margin: number;
  /** Mean C of the pairs. */
  readonly meanConsistency: number;
}

/** The metrics of pairs from their rewards and C, accumulated in float64. */
export function dpoMetrics(
  chosenRewards: ArrayLike<number>,
  rejectedRewards: ArrayLike<number>,
  consistency: ArrayLike<number>,
): DpoMetrics {
  const n = chosenRewards.length;
  if (n === 0) return { rewardAccuracy: 0, chosenReward: 0, rejectedReward: 0, margin: 0, meanConsistency: 0 };
  let correct = 0;
  let chosen = 0;
  let rejected = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    if (chosenRewards[i] > rejectedRewards[i]) correct++;
    chosen += chosenRewards[i];
    rejected += rejectedRewards[i];
    c += consistency[i];
  }
  return {
    rewardAccuracy: correct / n,
    chosenReward: chosen / n,
    rejectedReward: rejected / n,
    margin: (chosen - rejected) / n,
    meanConsistency: c / n,
  };
}
