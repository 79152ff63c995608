// The key/value cache of batched decoding. Each sequence keeps its own tokens in
// slots 0..length-1 of every layer's [B, nKvHeads, S, headDim] tensors, and its
// rotary position equals its slot: sequences of different lengths decode side by
// side without left padding, and a sequence's attention sums run over the same
// slots whatever else is in the batch (so results do not depend on the batch).
// A write puts each new token into its sequence's next slot: in place on the
// wasm backend (writeSlotsInPlace; the cache is the tensors' only owner), else
// by tf.tensorScatterUpdate (one copy of the cache, not a concat and a
// gather); capacity grows in blocks of CAPACITY_BLOCK slots. Slots at or past a
// sequence's length hold zeros or stale values that the causal mask hides and
// the next write overwrites.

import { soleOwner, writeSlotsInPlace } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from './errors';
import type { KeyValueStore } from './layers';

// Slots added at a time when the cache grows: decode steps between growths are a
// single scatter, and attention spans at most this many unused (masked) slots.
const CAPACITY_BLOCK = 64;

/** One forward pass's writes into a KvCache; made by KvCache.beginWrite. */
export interface KvCacheWrite {
  /** Slots per sequence once written: the key count S of this pass's attention. */
  readonly capacity: number;
  /** The cache holds nothing yet: this pass's keys and values, as layer() gets them, become it. */
  readonly fresh: boolean;
  /** The store for layer `layer`: appends its keys and values, returns the attended ones. */
  layer(layer: number): KeyValueStore;
  /**
   * For a kernel that writes this pass's keys and values itself: layer
   * `layer`'s tensors [B, nKvHeads, capacity, headDim] (grown when needed),
   * which become the cache's on commit; null when the cache is empty or a
   * tensor shares its memory (then use layer()).
   */
  reserve(layer: number): [tf.Tensor4D, tf.Tensor4D] | null;
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

  /** The capacity after writing `newTokens` tokens per sequence. */
  capacityAfter(newTokens: number): number {
    const needed = Math.max(...this.sequenceLengths.map((length) => length + newTokens));
    if (this.keys[0] === null) return needed; // the first write's keys become the cache as they are
    return needed <= this.capacity ? this.capacity : Math.ceil(needed / CAPACITY_BLOCK) * CAPACITY_BLOCK;
  }

  /**
   * Starts writing `newTokens` tokens per sequence at slots lengths[b].., of which
   * the first inputLengths[b] are real (the rest right padding, written but left
   * past the length); on commit each length grows by its inputLengths[b]. Call
   * inside the forward pass's tf.tidy.
   */
  beginWrite(newTokens: number, inputLengths: readonly number[]): KvCacheWrite {
    this.assertLive();
    const past = this.sequenceLengths;
    const oldCapacity = this.capacity;
    const capacity = this.capacityAfter(newTokens);
    const first = this.keys[0] === null;
    // (sequence, head, slot) of each new row of keys [B*nKvHeads*T, headDim]; made
    // here, in the forward pass's tidy, as every layer's write uses it.
    let slots: tf.Tensor2D | null = null;
    const slotsFor = (heads: number): tf.Tensor2D => {
      if (slots === null) throw new Error('KvCacheWrite: slots were not prepared');
      if (slots.shape[0] !== past.length * heads * newTokens) throw new Error('KvCacheWrite: heads changed between layers');
      return slots;
    };
    if (!first) {
      const heads = (this.keys[0] as tf.Tensor4D).shape[1];
      const index = new Int32Array(past.length * heads * newTokens * 3);
      let i = 0;
      for (let b = 0; b < past.length; b++) {
        for (let h = 0; h < heads; h++) {
          for (let t = 0; t < newTokens; t++, i += 3) [index[i], index[i + 1], index[i + 2]] = [b, h, past[b] + t];
        }
      }
      slots = tf.tensor2d(index, [past.length * heads * newTokens, 3], 'int32'); // [B*nKvHeads*T, 3]
    }
    const append = (old: tf.Tensor4D | null, fresh: tf.Tensor4D): tf.Tensor4D => {
      if (old === null) return fresh; // [B, nKvHeads, T, headDim]: every length was 0
      const [B, heads, , headDim] = old.shape;
      // Same capacity: written in place when the backend can (old is returned).
      if (capacity === oldCapacity && writeSlotsInPlace(old, fresh, past)) return old;
      const grown = capacity > oldCapacity ? tf.pad(old, [[0, 0], [0, 0], [0, capacity - oldCapacity], [0, 0]]) : old; // [B, nKvHeads, S, headDim]
      const rows = tf.reshape(fresh, [B * heads * newTokens, headDim]); // [B*nKvHeads*T, headDim]
      return tf.tensorScatterUpdate(grown, slotsFor(heads), rows) as tf.Tensor4D; // [B, nKvHeads, S, headDim]
    };
    const newKeys: (tf.Tensor4D | null)[] = new Array(this.nLayers).fill(null);
    const newValues: (tf.Tensor4D | null)[] = new Array(this.nLayers).fill(null);
    let done = false;
    // Pending tensors that are not the cache's own (an in-place write returns the cache's).
    const current = new Set<tf.Tensor | null>([...this.keys, ...this.values]);
    const dropPending = () => {
      for (const tensor of [...newKeys, ...newValues]) if (!current.has(tensor)) tensor?.dispose();
    };
    return {
      capacity,
      fresh: first,
      layer: (layer) => (k, v) => {
        if (done) throw new Error('KvCacheWrite used after commit or abort');
        // Kept: the new cache outlives the tidy of this forward pass.
        const keys = tf.keep(append(this.keys[layer], k)); // [B, nKvHeads, S, headDim]
        const values = tf.keep(append(this.values[layer], v)); // [B, nKvHeads, S, headDim]
        if (!current.has(newKeys[layer])) newKeys[layer]?.dispose();
        if (!current.has(newValues[layer])) newValues[layer]?.dispose();
        newKeys[layer] = keys;
        newValues[layer] = values;
        return [keys, values];
      },
      reserve: (layer) => {
        if (done) throw new Error('KvCacheWrite used after commit or abort');
        const [oldKeys, oldValues] = [this.keys[layer], this.values[layer]];
        if (oldKeys === null || oldValues === null) return null;
        if (capacity === oldCapacity && !(soleOwner(oldKeys) && soleOwner(oldValues))) return null;
        const grow = (old: tf.Tensor4D) =>
          capacity > oldCapacity ? (tf.keep(tf.pad(old, [[0, 0], [0, 0], [0, capacity - oldCapacity], [0, 0]])) as tf.Tensor4D) : old; // [B, nKvHeads, S, headDim]
        const keys = grow(oldKeys);
        const values = grow(oldValues);
        if (!current.has(newKeys[layer])) newKeys[layer]?.dispose();
        if (!current.has(newValues[layer])) newValues[layer]?.dispose();
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
        const kept = new Set<tf.Tensor | null>([...newKeys, ...newValues]);
        for (const tensor of current) if (!kept.has(tensor)) tensor?.dispose();
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
