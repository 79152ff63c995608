// FLOPs of a training step, counted from the shape: the matrix products only
// (2 FLOPs per multiply-add), the embedding lookup and elementwise work not
// counted, the causal mask not exploited (both implementations compute the
// full T x T scores). Backward costs two products per forward product (the
// input's gradient and the weight's), so a step is 3 x the forward pass.
import type { BenchShape } from './cases';

/** The formula of trainingStepFlops, as printed beside the figure. */
export const TRAINING_FLOPS_FORMULA =
  '3 x B x [L x (2T.d.(q + 2kv) + 2T.q.d + 4T^2.q + 6T.d.f) + 2(T-1).d.V], ' +
  'q = heads x head_dim, kv = kv_heads x head_dim, f = SwiGLU width, lm_head on the T-1 positions with a next token';

/**
 * FLOPs of one forward pass over `batch` rows of `seq` tokens, with lm_head on
 * the `seq - 1` positions that predict a next token. Per layer and row:
 * q, k, v projections 2T.d.(q + 2kv); output projection 2T.q.d; scores
 * Q.K^T and their weighted sum of V 2T^2.q each; SwiGLU's three products 6T.d.f.
 */
export function forwardFlops(shape: BenchShape, batch: number, seq: number): number {
  const d = shape.hiddenSize;
  const q = shape.nHeads * shape.headDim;
  const kv = shape.nKvHeads * shape.headDim;
  const f = shape.intermediateSize;
  const T = seq;
  const perLayer = 2 * T * d * (q + 2 * kv) + 2 * T * q * d + 4 * T * T * q + 6 * T * d * f;
  const lmHead = 2 * (T - 1) * d * shape.vocabSize;
  return batch * (shape.nLayers * perLayer + lmHead);
}

/** FLOPs of one training step (forward and backward; AdamW's elementwise update not counted). */
export function trainingStepFlops(shape: BenchShape, batch: number, seq: number): number {
  return 3 * forwardFlops(shape, batch, seq);
}

/** Achieved GFLOP/s of a step of `flops` that took `ms` milliseconds. */
export function gflopsPerSecond(flops: number, ms: number): number {
  return flops / (ms / 1000) / 1e9;
}
