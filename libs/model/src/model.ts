// The Llama-family decoder: token embedding, nLayers pre-norm decoder layers,
// a final RMSNorm and lm_head (or the tied embedding). One forward pass maps
// token ids [B, T] to logits [B, T, V]; with a KvCache it reads the past keys
// and values and appends this pass's, so prefill and each decode step are the
// same call. Every forward runs inside tf.tidy.

import { type AttentionMask, causalBias, fusedKernelsActive, prefillLayer } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { type ModelConfig, validateModelConfig } from './config';
import { ContextLengthError, InvalidOptionError, TokenIdError } from './errors';
import { KvCache, type KvCacheWrite } from './kv-cache';
import { type LayerWeights, MASKED, RotaryEmbedding, decoderLayerNormed, linear, rmsNorm } from './layers';
import { EMBEDDING_WEIGHT, FINAL_NORM_WEIGHT, LM_HEAD_WEIGHT, layerWeightNames, validateWeights } from './weights';

/** A batch of rows of integers, as nested arrays or an int32 tensor [B, T]. */
export type IntegerRows = tf.Tensor2D | readonly (readonly number[])[];

/** Options of one forward pass. */
export interface ForwardOptions {
  /**
   * Rotary position of each input token [B, T]. Default: its cache slot, i.e.
   * cache length + t (t without a cache). Left-padded batches pass their own.
   */
  positions?: IntegerRows;
  /**
   * [B, S]: 1 where a key may be attended, 0 for padding; combined with the
   * causal mask. S is T without a cache, the cache capacity after this pass's
   * write with one (cache.capacityAfter(T)).
   */
  attentionMask?: IntegerRows;
  /**
   * [B, T]: the segment of each token, for several sequences packed in one
   * row (a pass without a cache). Each run of equal ids in a row is one
   * segment: a token attends only the earlier tokens of its run, and its
   * default position is its distance from the run's first token, so each
   * segment gets the outputs of its own unpadded pass. Any integers name
   * segments (padding may be a run of its own).
   */
  segments?: IntegerRows;
  /** The cache to read past keys and values from and append this pass's to. */
  cache?: KvCache;
  /**
   * Real tokens per row when rows are right-padded (default T): the cache
   * advances by these, and padding gets no position check.
   */
  inputLengths?: readonly number[];
}

/** A Llama-family causal language model over weights keyed by Hugging Face tensor name. */
export class LlamaModel {
  readonly config: ModelConfig;
  readonly weights: ReadonlyMap<string, tf.Tensor>;
  private readonly embedding: tf.Tensor; // [V, D]
  private readonly finalNorm: tf.Tensor; // [D]
  private readonly lmHead: tf.Tensor; // [V, D]
  private readonly layers: LayerWeights[];
  private readonly rotary: RotaryEmbedding;

  /**
   * Checks the weights against the config (ModelWeightsError) and keeps
   * references to them; the weights stay the caller's to dispose.
   */
  constructor(config: ModelConfig, weights: ReadonlyMap<string, tf.Tensor>) {
    validateModelConfig(config);
    validateWeights(config, weights, { ignoreUnexpected: true });
    this.config = config;
    this.weights = weights;
    const get = (name: string) => weights.get(name) as tf.Tensor;
    const optional = (name: string, present: boolean) => (present ? get(name) : undefined);
    this.embedding = get(EMBEDDING_WEIGHT);
    this.finalNorm = get(FINAL_NORM_WEIGHT);
    this.lmHead = config.tieWordEmbeddings ? this.embedding : get(LM_HEAD_WEIGHT);
    this.layers = Array.from({ length: config.nLayers }, (_, i) => {
      const n = layerWeightNames(i);
      return {
        inputNorm: get(n.inputNorm),
        wq: get(n.wq),
        wk: get(n.wk),
        wv: get(n.wv),
        wo: get(n.wo),
        bq: optional(n.bq, config.attentionBias),
        bk: optional(n.bk, config.attentionBias),
        bv: optional(n.bv, config.attentionBias),
        bo: optional(n.bo, config.attentionOutputBias),
        qNorm: optional(n.qNorm, config.qkNorm),
        kNorm: optional(n.kNorm, config.qkNorm),
        postAttentionNorm: get(n.postAttentionNorm),
        w1: get(n.w1),
        w2: get(n.w2),
        w3: get(n.w3),
      };
    });
    this.rotary = new RotaryEmbedding(config);
  }

  /** Logits [B, T, V] of the next token after each input token. */
  forward(inputIds: IntegerRows, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.hiddenStates(inputIds, options)) as tf.Tensor3D);
  }

  /** The final-norm hidden states [B, T, D], before lm_head (to take logits of a few rows only). */
  hiddenStates(inputIds: IntegerRows, options: ForwardOptions = {}): tf.Tensor3D {
    const { config } = this;
    const ids = readRows(inputIds, 'inputIds');
    const [B, T] = [ids.rows, ids.columns];
    for (let i = 0; i < ids.values.length; i++) {
      const id = ids.values[i];
      if (!(Number.isInteger(id) && id >= 0 && id < config.vocabSize)) {
        const [b, t] = [Math.floor(i / T), i % T];
        throw new TokenIdError(
          `token id ${id} at row ${b}, position ${t} is outside the vocabulary [0, ${config.vocabSize})`,
          id,
          config.vocabSize,
          b,
        );
      }
    }
    const { cache } = options;
    if (cache !== undefined && (cache.batchSize !== B || cache.nLayers !== config.nLayers)) {
      throw new InvalidOptionError(
        `cache holds ${cache.batchSize} sequences of ${cache.nLayers} layers, the input ${B} rows for ${config.nLayers} layers`,
        'cache',
      );
    }
    const past = cache?.lengths ?? new Array<number>(B).fill(0);
    const inputLengths = options.inputLengths ?? new Array<number>(B).fill(T);
    if (inputLengths.length !== B || inputLengths.some((n) => !(Number.isInteger(n) && n >= 0 && n <= T))) {
      throw new InvalidOptionError(`inputLengths must hold ${B} integers in [0, ${T}]`, 'inputLengths');
    }
    const segments = options.segments === undefined ? undefined : readRows(options.segments, 'segments');
    if (segments !== undefined) {
      if (cache !== undefined) throw new InvalidOptionError('segments apply to a pass without a cache', 'segments');
      if (segments.rows !== B || segments.columns !== T) {
        throw new InvalidOptionError(`segments must be [${B}, ${T}], got [${segments.rows}, ${segments.columns}]`, 'segments');
      }
      for (let i = 0; i < segments.values.length; i++) {
        if (!Number.isInteger(segments.values[i])) throw new InvalidOptionError(`segment ${segments.values[i]} is not an integer`, 'segments');
      }
    }
    const starts = segments && segmentStarts(segments.values, B, T);
    const positions = this.positionsOf(past, inputLengths, T, options.positions ?? (starts && startPositions(starts, B, T)));
    const keyCount = cache === undefined ? T : cache.capacityAfter(T);
    const mask = options.attentionMask === undefined ? undefined : readRows(options.attentionMask, 'attentionMask');
    if (mask !== undefined && (mask.rows !== B || mask.columns !== keyCount)) {
      throw new InvalidOptionError(`attentionMask must be [${B}, ${keyCount}], got [${mask.rows}, ${mask.columns}]`, 'attentionMask');
    }

    if (cache !== undefined && options.positions === undefined && mask === undefined) {
      const hidden = this.fusedLayers(ids.values, cache, past, T, inputLengths);
      if (hidden !== null) return hidden;
    }

    return tf.tidy(() => {
      const write = cache?.beginWrite(T, inputLengths);
      try {
        const maskBias = attentionMask(past, T, keyCount, mask, starts); // [B, 1, 1, T, S], past, or past and starts
        const angles = this.rotary.angles(tf.tensor2d(positions.values, [B, T], 'int32'), positions.max); // [B, 1, T, headDim/2]
        let x = tf.gather(this.embedding, tf.tensor2d(Int32Array.from(ids.values), [B, T], 'int32')) as tf.Tensor3D; // [B, T, D]
        // Each layer also norms its output for the next one (the last: the final norm).
        let normed: tf.Tensor3D | undefined;
        for (const [i, layer] of this.layers.entries()) {
          // A tidy per layer frees its activations as it goes (a gradient tape keeps
          // copies of what backward needs), so memory holds one layer's, not all.
          const [input, inputNormed] = [x, normed];
          const nextNorm = i + 1 < this.layers.length ? this.layers[i + 1].inputNorm : this.finalNorm;
          [x, normed] = tf.tidy(() => decoderLayerNormed(input, inputNormed, layer, config, angles, maskBias, write?.layer(i), nextNorm)); // [B, T, D]
          input.dispose();
          inputNormed?.dispose();
        }
        const hidden = normed ?? (rmsNorm(x, this.finalNorm, config.rmsNormEps) as tf.Tensor3D); // [B, T, D]
        write?.commit();
        return hidden;
      } catch (error) {
        write?.abort();
        throw error;
      }
    });
  }

  /**
   * T tokens per row at each row's next slots (a decoding step, a prefill or
   * a chunk of scoring) as one native kernel per layer (prefillLayer; its
   * one-token form is the decoding kernel), the cache written in place or
   * made by the kernel when empty: the final-norm hidden states [B, T, D], or
   * null where that kernel does not apply (another backend, a gradient tape,
   * a cache tensor sharing its memory, positions past the context), leaving
   * the cache untouched.
   */
  private fusedLayers(ids: ArrayLike<number>, cache: KvCache, past: readonly number[], T: number, inputLengths: readonly number[]): tf.Tensor3D | null {
    const { config } = this;
    const taping = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
    if (!fusedKernelsActive() || taping) return null;
    const B = past.length;
    const last = Math.max(...past) + T; // one past the last slot written, also a position
    if (last > config.maxPositionEmbeddings) return null; // padding positions would be clamped: the separate ops do that
    // The write and the tensors reserved for it; the write's own index tensor
    // (for layer(), unused here) goes with this tidy.
    let write: KvCacheWrite | undefined;
    let reserved: ([tf.Tensor4D, tf.Tensor4D] | null)[] = [];
    tf.tidy(() => {
      write = cache.beginWrite(T, inputLengths);
      if (!write.fresh) reserved = this.layers.map((_, i) => (write as KvCacheWrite).reserve(i));
    });
    const pass = write as KvCacheWrite;
    if (reserved.some((r) => r === null)) {
      pass.abort();
      return null;
    }
    try {
      const hidden = tf.tidy(() => {
        const tables = this.rotary.tables(last);
        let x = tf.gather(this.embedding, tf.tensor1d(Int32Array.from(ids), 'int32')) as tf.Tensor2D; // [B*T, D]
        const options = { nHeads: config.nHeads, nKvHeads: config.nKvHeads, eps: config.rmsNormEps, tokens: T };
        const cacheOf = (r: [tf.Tensor4D, tf.Tensor4D] | null | undefined) => (r ? { keys: r[0], values: r[1] } : null); // none: fresh
        for (const [i, layer] of this.layers.entries()) {
          const { out, keys, values } = prefillLayer(x, layer, tables, cacheOf(reserved[i]), past, options); // [B*T, D]
          if (keys !== undefined && values !== undefined) pass.layer(i)(keys, values); // the new cache's tensors
          x = out;
        }
        return tf.reshape(rmsNorm(x, this.finalNorm, config.rmsNormEps), [B, T, config.hiddenSize]) as tf.Tensor3D; // [B, T, D]
      });
      pass.commit();
      return hidden;
    } catch (error) {
      pass.abort();
      throw error;
    }
  }

  /** lm_head: logits [..., V] of hidden states [..., D]. */
  logits(hidden: tf.Tensor): tf.Tensor {
    return tf.tidy(() => linear(hidden, this.lmHead)); // [..., V]
  }

  /** An empty KV cache for `batchSize` sequences of this model. */
  createCache(batchSize: number): KvCache {
    if (!(Number.isInteger(batchSize) && batchSize > 0)) {
      throw new InvalidOptionError(`batchSize must be a positive integer, got ${batchSize}`, 'batchSize');
    }
    return new KvCache(this.config.nLayers, batchSize);
  }

  /** Frees the model's cached rotary tables (not the weights, which the caller owns). */
  dispose(): void {
    this.rotary.dispose();
  }

  // Positions of the inputs, checked against the context: real tokens must sit
  // below maxPositionEmbeddings; default positions of padding are clamped there.
  private positionsOf(
    past: readonly number[],
    inputLengths: readonly number[],
    T: number,
    given: IntegerRows | undefined,
  ): { values: Int32Array; max: number } {
    const limit = this.config.maxPositionEmbeddings;
    const B = past.length;
    const values = new Int32Array(B * T);
    if (given !== undefined) {
      const rows = readRows(given, 'positions');
      if (rows.rows !== B || rows.columns !== T) {
        throw new InvalidOptionError(`positions must be [${B}, ${T}], got [${rows.rows}, ${rows.columns}]`, 'positions');
      }
      for (let i = 0; i < values.length; i++) {
        const p = rows.values[i];
        if (!(Number.isInteger(p) && p >= 0)) throw new InvalidOptionError(`position ${p} is not a non-negative integer`, 'positions');
        if (p >= limit) {
          throw new ContextLengthError(`position ${p} is past the model's context of ${limit}`, p + 1, limit, Math.floor(i / T));
        }
        values[i] = p;
      }
    } else {
      for (let b = 0; b < B; b++) {
        if (past[b] + inputLengths[b] > limit) {
          throw new ContextLengthError(
            `row ${b} needs ${past[b] + inputLengths[b]} positions, the model's context is ${limit}`,
            past[b] + inputLengths[b],
            limit,
            b,
          );
        }
        for (let t = 0; t < T; t++) values[b * T + t] = Math.min(past[b] + t, limit - 1);
      }
    }
    return { values, max: values.reduce((a, b) => Math.max(a, b), 0) };
  }
}

// The attention mask of one pass, built once for every layer: 0 where query t
// of row b (at slot past[b] + t) may attend key slot s, i.e. s <= past[b] + t,
// the mask allows s and (packed segments, S = T) s >= starts[b * T + t];
// MASKED elsewhere. Without a mask, the causal one: each row's past (and
// starts) itself on the fused kernels, which apply it as they run (no
// tensor), else causalBias. Built in JS: a broadcast comparison is a slow
// path on the wasm backend.
function attentionMask(
  past: readonly number[],
  T: number,
  S: number,
  mask: { values: ArrayLike<number> } | undefined,
  starts: Int32Array | undefined,
): AttentionMask {
  if (mask === undefined) {
    if (!fusedKernelsActive()) return causalBias(past, T, S, starts);
    return starts === undefined ? past : { past, starts };
  }
  const B = past.length;
  const bias = new Float32Array(B * T * S);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * S;
      const first = starts === undefined ? 0 : starts[b * T + t];
      bias.fill(MASKED, row, row + first);
      bias.fill(MASKED, row + past[b] + t + 1, row + S);
      for (let s = first; s <= past[b] + t; s++) {
        if (mask.values[b * S + s] === 0) bias[row + s] = MASKED;
      }
    }
  }
  return tf.tensor(bias, [B, 1, 1, T, S]); // [B, 1, 1, T, S]
}

// Each token's segment start [B * T]: the first slot of its row's run of equal segment ids.
function segmentStarts(segments: ArrayLike<number>, B: number, T: number): Int32Array {
  const starts = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 1; t < T; t++) {
      const i = b * T + t;
      starts[i] = segments[i] === segments[i - 1] ? starts[i - 1] : t;
    }
  }
  return starts;
}

// The default positions of packed segments [B][T]: each token's distance from its segment's start.
function startPositions(starts: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => t - starts[b * T + t]));
}

// A rectangular batch of numbers from nested arrays or a 2-D tensor.
function readRows(input: IntegerRows, option: string): { values: ArrayLike<number>; rows: number; columns: number } {
  if (input instanceof tf.Tensor) {
    if (input.rank !== 2) throw new InvalidOptionError(`${option} must be 2-D, got shape [${input.shape}]`, option);
    return { values: input.dataSync(), rows: input.shape[0], columns: input.shape[1] };
  }
  const rows = input.length;
  const columns = rows === 0 ? 0 : input[0].length;
  if (rows === 0 || columns === 0) throw new InvalidOptionError(`${option} is empty`, option);
  const values = new Array<number>(rows * columns);
  for (const [b, row] of input.entries()) {
    if (row.length !== columns) throw new InvalidOptionError(`${option} rows differ in length (${columns} and ${row.length})`, option);
    for (let t = 0; t < columns; t++) values[b * columns + t] = row[t];
  }
  return { values, rows, columns };
}
