// Feeding whole sequences through the decoder with a KV cache, in chunks of
// positions: the attention scores of a chunk are [B, nHeads, chunk, S], not
// [B, nHeads, T, T], so long prompts fit in memory. Each sequence sits in cache
// slots 0.. whatever the batch, so a chunk computes the same numbers as a single
// pass would. Shared by generation (prefill) and scoring.

import * as tf from '@tensorflow/tfjs-core';
import { ContextLengthError, InvalidOptionError, TokenIdError } from './errors';
import type { KvCache } from './kv-cache';
import type { LlamaModel } from './model';

/** A position of one sequence whose hidden state is wanted. */
export interface Pick {
  readonly row: number;
  readonly position: number;
}

/**
 * Feeds `sequences` (row b into cache row b; the cache empty) in chunks of at
 * most `chunkSize` positions. For each chunk, `head` gets the final hidden
 * states [n, D] of the positions `wanted(row, start, end)` lists (positions in
 * [start, end) of that row), inside the chunk's tf.tidy; its result is read back
 * and given to `collect` with the picks, in order.
 */
export async function feedSequences(
  model: LlamaModel,
  cache: KvCache,
  sequences: readonly (readonly number[])[],
  chunkSize: number,
  wanted: (row: number, start: number, end: number) => Iterable<number>,
  head: (hidden: tf.Tensor2D, picks: readonly Pick[]) => tf.Tensor,
  collect: (values: Float32Array, picks: readonly Pick[]) => void,
  signal?: AbortSignal,
): Promise<void> {
  const B = sequences.length;
  const longest = Math.max(...sequences.map((s) => s.length));
  for (let start = 0; start < longest; start += chunkSize) {
    // A turn for the event loop per chunk (health checks, cancellations): reading
    // a tensor back resolves as a microtask, which alone never yields.
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    signal?.throwIfAborted();
    const width = Math.min(chunkSize, longest - start);
    const ids = new Int32Array(B * width); // right padding with id 0, any valid id would do
    const inputLengths = sequences.map((sequence, b) => {
      const real = Math.max(0, Math.min(width, sequence.length - start));
      for (let t = 0; t < real; t++) ids[b * width + t] = sequence[start + t];
      return real;
    });
    const picks: Pick[] = [];
    for (let row = 0; row < B; row++) {
      for (const position of wanted(row, start, start + width)) picks.push({ row, position });
    }
    const result = tf.tidy((): tf.Tensor | void => {
      const hidden = model.hiddenStates(tf.tensor2d(ids, [B, width], 'int32'), { cache, inputLengths }); // [B, width, D]
      if (picks.length === 0) return;
      const D = hidden.shape[2];
      const flatIndex = tf.tensor1d(picks.map((p) => p.row * width + p.position - start), 'int32'); // [n]
      const rows = tf.gather(tf.reshape(hidden, [B * width, D]), flatIndex) as tf.Tensor2D; // [n, D]
      return head(rows, picks);
    });
    if (result) {
      try {
        collect((await result.data()) as Float32Array, picks);
      } finally {
        result.dispose();
      }
    }
  }
}

/**
 * Throws a typed error unless every id of `sequence` is a token of the model
 * (TokenIdError) and the sequence fits its context (ContextLengthError).
 * `index` is the item's place in the caller's batch; `label` names it.
 */
export function checkSequence(model: LlamaModel, sequence: readonly number[], index: number, label: string): void {
  const { vocabSize, maxPositionEmbeddings } = model.config;
  for (const id of sequence) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new TokenIdError(`${label} ${index}: token id ${id} is outside the vocabulary [0, ${vocabSize})`, id, vocabSize, index);
    }
  }
  if (sequence.length > maxPositionEmbeddings) {
    throw new ContextLengthError(
      `${label} ${index}: ${sequence.length} tokens exceed the model's context of ${maxPositionEmbeddings}`,
      sequence.length,
      maxPositionEmbeddings,
      index,
    );
  }
}

/** Throws InvalidOptionError unless `value` is a positive integer (or Infinity when allowed). */
export function checkPositiveInteger(value: number, option: string, allowInfinity = false): void {
  if (!((Number.isInteger(value) && value > 0) || (allowInfinity && value === Infinity))) {
    throw new InvalidOptionError(`${option} must be a positive integer, got ${value}`, option);
  }
}
