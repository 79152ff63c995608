// The key/value cache of batched decoding. Each sequence keeps its own tokens in
// slots 0..length-1 of every layer's [B, nKvHeads, S, headDim] tensors, and its
// rotary position equals its slot: sequences of different lengths decode side by
// side without left padding, and a sequence's attention sums run over the same
// slots whatever else is in the batch (so results do not depend on the batch).
// Slots at or past a sequence's length hold stale values that the causal mask
// hides and the next write overwrites.

import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from './errors';
import type { KeyValueStore } from './layers';

/** One forward pass's writes into a KvCache; made by KvCache.beginWrite. */
export interface KvCacheWrite {
  /** The store for layer `layer`: appends its keys and values, returns the attended ones. */
  layer(layer: number): KeyValueStore;
  /** Makes the writes the cache's contents and advances the lengths. */
  commit(): void;
  /** Drops the writes (after an error), leaving the cache as it was. */
  abort(): void;
}

/** Per-layer keys and values of a batch of sequences, with a length per sequence. */
export class KvCache {
  readonly nLayers: number;
  private keys: (tf.Tensor4D | null)[]; // per layer [B, nKvHeads, S, headDim]
  private values: (tf.Tensor4D | null)[]; // per layer [B, nKvHeads, S, headDim]
  private sequenceLengths: number[];
  private disposed = false;

  constructor(nLayers: number, batchSize: number) {
    this.nLayers = nLayers;
    this.keys = new Array(nLayers).fill(null);
    this.values = new Array(nLayers).fill(null);
    this.sequenceLengths = new Array(batchSize).fill(0);
  }

  /** Number of sequences. */
  get batchSize(): number {
    return this.sequenceLengths.length;
  }

  /** Tokens held per sequence (its next token goes to this slot and position). */
  get lengths(): readonly number[] {
    return this.sequenceLengths;
  }

  /** Slots per sequence in the tensors (at least the longest length). */
  get capacity(): number {
    return this.keys[0]?.shape[2] ?? 0;
  }

  /**
   * Starts writing `newTokens` tokens per sequence at slots lengths[b].., of which
   * the first inputLengths[b] are real (the rest right padding); on commit each
   * length grows by its inputLengths[b]. Call inside the forward pass's tf.tidy.
   */
  beginWrite(newTokens: number, inputLengths: readonly number[]): KvCacheWrite {
    this.assertLive();
    const B = this.batchSize;
    const past = this.sequenceLengths;
    const oldCapacity = this.capacity;
    const capacity = Math.max(...past.map((length) => length + newTokens));
    // Appending is a plain concat when every sequence fills the old slots exactly;
    // otherwise each sequence's slot s reads old slot s below its length and new
    // token s - length from there on: one gather over [old; new] flattened to rows
    // of headDim (tfjs-backend-wasm 4.22's gather with batchDims is wrong).
    const contiguous = past.every((length) => length === oldCapacity);
    let rows: tf.Tensor1D | null = null;
    const rowsFor = (heads: number): tf.Tensor1D => {
      if (rows !== null) return rows;
      const sourceSlots = oldCapacity + newTokens;
      const index = new Int32Array(B * heads * capacity);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < heads; h++) {
          for (let s = 0; s < capacity; s++) {
            const fresh = s - past[b];
            const slot = fresh < 0 ? s : fresh < newTokens ? oldCapacity + fresh : 0;
            index[(b * heads + h) * capacity + s] = (b * heads + h) * sourceSlots + slot;
          }
        }
      }
      rows = tf.tensor1d(index, 'int32'); // [B*nKvHeads*S]
      return rows;
    };
    const newKeys: (tf.Tensor4D | null)[] = new Array(this.nLayers).fill(null);
    const newValues: (tf.Tensor4D | null)[] = new Array(this.nLayers).fill(null);
    const append = (old: tf.Tensor4D | null, fresh: tf.Tensor4D): tf.Tensor4D => {
      if (old === null) return fresh;
      const both = tf.concat([old, fresh], 2) as tf.Tensor4D; // [B, nKvHeads, oldS + T, headDim]
      if (contiguous) return both;
      const [, heads, , headDim] = both.shape;
      const flat = tf.reshape(both, [-1, headDim]); // [B*nKvHeads*(oldS + T), headDim]
      return tf.reshape(tf.gather(flat, rowsFor(heads)), [B, heads, capacity, headDim]) as tf.Tensor4D; // [B, nKvHeads, S, headDim]
    };
    let done = false;
    const dropPending = () => {
      for (const tensor of [...newKeys, ...newValues]) tensor?.dispose();
    };
    return {
      layer: (layer) => (k, v) => {
        if (done) throw new Error('KvCacheWrite used after commit or abort');
        // Kept: the new cache outlives the tidy of this forward pass.
        const keys = tf.keep(append(this.keys[layer], k)); // [B, nKvHeads, S, headDim]
        const values = tf.keep(append(this.values[layer], v)); // [B, nKvHeads, S, headDim]
        newKeys[layer]?.dispose();
        newValues[layer]?.dispose();
        newKeys[layer] = keys;
        newValues[layer] = values;
        return [keys, values];
      },
      commit: () => {
        if (done) return;
        done = true;
        if (newKeys.some((t) => t === null)) {
          dropPending();
          throw new Error('KvCacheWrite committed before every layer wrote');
        }
        this.disposeTensors();
        this.keys = newKeys;
        this.values = newValues;
        this.sequenceLengths = past.map((length, b) => length + inputLengths[b]);
      },
      abort: () => {
        if (done) return;
        done = true;
        dropPending();
      },
    };
  }

  /**
   * Keeps only the sequences `rows` (indices into the current batch, repeats
   * allowed), in that order: drops finished sequences, or fans one prompt out.
   */
  select(rows: readonly number[]): void {
    this.assertLive();
    for (const row of rows) {
      if (!(Number.isInteger(row) && row >= 0 && row < this.batchSize)) {
        throw new InvalidOptionError(`row ${row} is not in [0, ${this.batchSize})`, 'rows');
      }
    }
    if (this.keys[0] !== null) {
      const index = tf.tensor1d(rows as number[], 'int32'); // [B']
      try {
        const gather = (tensors: (tf.Tensor4D | null)[]) =>
          tensors.map((tensor) => {
            const selected = tf.gather(tensor as tf.Tensor4D, index, 0) as tf.Tensor4D; // [B', nKvHeads, S, headDim]
            tensor?.dispose();
            return selected;
          });
        this.keys = gather(this.keys);
        this.values = gather(this.values);
      } finally {
        index.dispose();
      }
    }
    this.sequenceLengths = rows.map((row) => this.sequenceLengths[row]);
  }

  /** Frees the tensors; the cache cannot be used after. */
  dispose(): void {
    this.disposeTensors();
    this.keys = new Array(this.nLayers).fill(null);
    this.values = new Array(this.nLayers).fill(null);
    this.disposed = true;
  }

  private disposeTensors(): void {
    for (const tensor of [...this.keys, ...this.values]) tensor?.dispose();
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('KvCache used after dispose');
  }
}
