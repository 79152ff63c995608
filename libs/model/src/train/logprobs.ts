// Response log-probabilities of right-padded or packed batches under a decoder, as
// differentiable tensors for the training losses: the hidden states of the
// whole batch in one forward pass (no cache), then lm_head and the
// log-softmax at the positions that predict response tokens only, so prompt
// and padding positions cost no [V]-wide logits. Call inside tf.tidy or a
// gradient function. (The gather of those rows differentiates through
// gather-gradient.ts, registered by the trainer.)

import * as tf from '@tensorflow/tfjs-core';
import type { LlamaModel } from '../model';
import type { PaddedBatch } from './batching';
import { tokenLogprobs } from './losses';

/** log p of each response token of the batch given what precedes it, row by row: [N]. */
export function batchResponseTokenLogprobs(model: LlamaModel, batch: PaddedBatch): tf.Tensor1D {
  const ids = tf.tensor2d(batch.inputIds, [batch.rows, batch.length], 'int32');
  const segments = batch.segments === undefined ? undefined : tf.tensor2d(batch.segments, [batch.rows, batch.length], 'int32');
  const hidden = model.hiddenStates(ids, { segments }); // [B, T, D]
  const flat = tf.reshape(hidden, [batch.rows * batch.length, -1]); // [B*T, D]
  const predicting = tf.gather(flat, tf.tensor1d(batch.predictingPositions, 'int32')) as tf.Tensor2D; // [N, D]
  const logits = model.logits(predicting) as tf.Tensor2D; // [N, V]
  return tokenLogprobs(logits, tf.tensor1d(batch.targets, 'int32')); // [N]
}

/** log p(response | prompt) per sequence (per row unless packed), summed over its response tokens: [sequences]. */
export function batchResponseLogprobs(model: LlamaModel, batch: PaddedBatch): tf.Tensor1D {
  const perToken = batchResponseTokenLogprobs(model, batch); // [N]
  // A 0/1 [sequences, N] ownership matrix sums each sequence's tokens in one differentiable
  // product (UnsortedSegmentSum has no wasm kernel).
  const sequences = batch.responseTokens.length;
  const owners = new Float32Array(sequences * perToken.shape[0]);
  let n = 0;
  batch.responseTokens.forEach((count, b) => {
    for (let j = 0; j < count; j++) owners[b * perToken.shape[0] + n++] = 1;
  });
  const ownership = tf.tensor2d(owners, [sequences, perToken.shape[0]]); // [sequences, N]
  return tf.reshape(tf.matMul(ownership, tf.reshape(perToken, [-1, 1])), [sequences]) as tf.Tensor1D; // [sequences]
}
