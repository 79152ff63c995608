// Log-probability of responses given prompts: the sum over response tokens of
// log p(token | prompt, earlier response tokens), prompt tokens masked, with
// tf.logSoftmax and a gather (never log(softmax)). scoreResponses batches items
// of similar length, feeds them in chunks with a KV cache and sums in float64
// in token order, so a score is the same whatever the padding, batch or chunk.
// responseLogProbs is the differentiable form for training losses.

import { logSoftmaxGather } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from './errors';
import type { LlamaModel } from './model';
import { checkPositiveInteger, checkSequence, feedSequences } from './prefill';

/** A response to score after its prompt. */
export interface ScoreItem {
  /** Prompt token ids, at least one (the first response token is conditioned on it). */
  readonly promptIds: readonly number[];
  /** Response token ids; may be empty. */
  readonly responseIds: readonly number[];
}

/** The log-probability of one response. */
export interface ResponseScore {
  /** Sum over response tokens of log p(token | context). */
  readonly logprobSum: number;
  /** logprobSum / numTokens; NaN for an empty response. */
  readonly logprobMean: number;
  /** Response tokens scored. */
  readonly numTokens: number;
}

/** Batching of scoreResponses. */
export interface ScoreOptions {
  /** Items per forward batch. Default 8. */
  readonly batchSize?: number;
  /** Positions fed per pass (bounds attention and logits memory). Default 256. */
  readonly chunkSize?: number;
  /** Aborts between passes, rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
}

// Logits held at once, in values: lm_head runs on blocks of
// max(64, LOGIT_BLOCK_VALUES / V) rows, so a small vocabulary takes every row
// in one product and a large one bounds the [rows, V] logits (64 MiB). Each
// block's product packs all of lm_head again: with a 49,152-token vocabulary
// (SmolLM), 8 MiB blocks of 64 rows spent 770 ms of a 4.7 s scoring pass on
// 16 products, 64 MiB blocks of 341 rows 540 ms on 4.
const LOGIT_BLOCK_VALUES = 1 << 24;

/**
 * Scores each item; results in item order. Throws TokenIdError,
 * ContextLengthError (prompt plus response longer than the context) or
 * InvalidOptionError (empty prompt, bad option) naming the item.
 */
export async function scoreResponses(
  model: LlamaModel,
  items: readonly ScoreItem[],
  options: ScoreOptions = {},
): Promise<ResponseScore[]> {
  const batchSize = options.batchSize ?? 8;
  const chunkSize = options.chunkSize ?? 256;
  checkPositiveInteger(batchSize, 'batchSize');
  checkPositiveInteger(chunkSize, 'chunkSize', true);
  items.forEach((item, i) => checkItem(model, item, i));

  const tokenLogprobs = items.map((item) => new Float64Array(item.responseIds.length));
  // The model reads the prompt and all but the last response token.
  const fed = items.map((item) => [...item.promptIds, ...item.responseIds.slice(0, -1)]);
  // Longest first, so a batch holds items of similar length (less padding).
  const order = items.map((_, i) => i).filter((i) => items[i].responseIds.length > 0);
  order.sort((a, b) => fed[b].length - fed[a].length || a - b);

  for (let first = 0; first < order.length; first += batchSize) {
    if (first > 0) await new Promise<void>((resolve) => setImmediate(resolve)); // a turn for the event loop per batch
    const batch = order.slice(first, first + batchSize);
    const sequences = batch.map((i) => fed[i]);
    const cache = model.createCache(batch.length);
    try {
      await feedSequences(
        model,
        cache,
        sequences,
        chunkSize,
        function* (row, start, end) {
          // Position p predicts token p + 1: response tokens come from P - 1 .. L - 2.
          const promptLength = items[batch[row]].promptIds.length;
          for (let p = Math.max(start, promptLength - 1); p < Math.min(end, sequences[row].length); p++) yield p;
        },
        (hidden, picks) => {
          const targets = picks.map(({ row, position }) => {
            const item = items[batch[row]];
            return item.responseIds[position + 1 - item.promptIds.length];
          });
          return targetLogProbs(model, hidden, targets); // [n]
        },
        (values, picks) =>
          picks.forEach(({ row, position }, j) => {
            tokenLogprobs[batch[row]][position + 1 - items[batch[row]].promptIds.length] = values[j];
          }),
        options.signal,
      );
    } finally {
      cache.dispose();
    }
  }

  return tokenLogprobs.map((logprobs) => {
    let sum = 0;
    for (const value of logprobs) sum += value;
    return { logprobSum: sum, logprobMean: logprobs.length === 0 ? NaN : sum / logprobs.length, numTokens: logprobs.length };
  });
}

/**
 * The summed response log-probability of each item [items] as one
 * differentiable tensor (one forward pass over the right-padded batch, no
 * cache): the building block of SFT and DPO losses. Same checks as scoreResponses.
 */
export function responseLogProbs(model: LlamaModel, items: readonly ScoreItem[]): tf.Tensor1D {
  if (items.length === 0) throw new InvalidOptionError('no items to score', 'items');
  items.forEach((item, i) => checkItem(model, item, i));
  const fed = items.map((item) => [...item.promptIds, ...item.responseIds.slice(0, -1)]);
  const T = Math.max(...fed.map((sequence) => sequence.length));
  const ids = fed.map((sequence) => [...sequence, ...new Array<number>(T - sequence.length).fill(0)]);
  const rows: number[] = [];
  const targets: number[] = [];
  // owner[i][n] = 1 when picked row n belongs to item i: summing by a matmul is
  // differentiable on every backend (wasm has no UnsortedSegmentSum kernel).
  const owner: number[][] = items.map(() => []);
  items.forEach((item, i) => {
    item.responseIds.forEach((token, j) => {
      owner.forEach((row, k) => row.push(k === i ? 1 : 0));
      rows.push(i * T + item.promptIds.length - 1 + j);
      targets.push(token);
    });
  });
  return tf.tidy(() => {
    const hidden = model.hiddenStates(ids); // [B, T, D]
    if (rows.length === 0) return tf.zeros([items.length]) as tf.Tensor1D; // [items]
    const D = hidden.shape[2];
    const picked = tf.gather(tf.reshape(hidden, [-1, D]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D; // [N, D]
    const logprobs = targetLogProbs(model, picked, targets); // [N]
    const sums = tf.matMul(tf.tensor2d(owner, [items.length, rows.length]), tf.reshape(logprobs, [-1, 1])); // [items, 1]
    return tf.reshape(sums, [items.length]) as tf.Tensor1D; // [items]
  });
}

/**
 * log p(target) of each row of hidden states [n, D]: lm_head, then log-softmax
 * and the target's pick in one op, `rowsPerBlock` rows at a time (by default
 * max(64, LOGIT_BLOCK_VALUES / V)). Exported for the tests.
 */
export function targetLogProbs(
  model: LlamaModel,
  hidden: tf.Tensor2D,
  targets: readonly number[],
  rowsPerBlock = Math.max(64, Math.floor(LOGIT_BLOCK_VALUES / model.config.vocabSize)),
): tf.Tensor1D {
  const [n] = hidden.shape;
  const blocks: tf.Tensor1D[] = [];
  for (let start = 0; start < n; start += rowsPerBlock) {
    const size = Math.min(rowsPerBlock, n - start);
    blocks.push(
      tf.tidy(() => {
        const rows = size === n ? hidden : tf.slice(hidden, [start, 0], [size, -1]); // [rows, D]
        const logits = model.logits(rows) as tf.Tensor2D; // [rows, V]
        return logSoftmaxGather(logits, tf.tensor1d(targets.slice(start, start + size), 'int32')); // [rows]
      }),
    );
  }
  return (blocks.length === 1 ? blocks[0] : tf.concat(blocks)) as tf.Tensor1D; // [n]
}

function checkItem(model: LlamaModel, item: ScoreItem, index: number): void {
  if (item.promptIds.length === 0) throw new InvalidOptionError(`item ${index} has an empty prompt`, 'promptIds');
  checkSequence(model, [...item.promptIds, ...item.responseIds], index, 'item');
}
