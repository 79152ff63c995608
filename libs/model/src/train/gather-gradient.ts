// A GatherV2 gradient that scatter-adds with ScatterNd. tfjs's own scatters
// the upstream gradient with UnsortedSegmentSum, which the cpu backend runs as
// one masked pass over the whole gradient per segment (vocabSize passes for
// the embedding lookup of a decoder, 1.7 s per step on a 512-token
// vocabulary) and the wasm backend has no kernel for at all (training fails
// with "Kernel 'UnsortedSegmentSum' not registered for backend 'wasm'").
// ScatterNd sums duplicate indices, as a gather's gradient must, in one pass
// linear in the gradient's size, on every backend.
//
// Registered by the trainer at the start of a run (after @cream/compute has
// loaded tfjs's gradients, which it would otherwise replace). It belongs with
// the BatchMatMul fix in @cream/compute's gradients.ts.

import * as tf from '@tensorflow/tfjs-core';

// The gradient of x for gather(x, indices, axis) with no batch dimensions:
// x [O..., A, I...], indices [M...], dy [O..., M..., I...].
function scatterAlongAxis(dy: tf.Tensor, indices: tf.Tensor, xShape: number[], axis: number): tf.Tensor {
  const outer = xShape.slice(0, axis);
  const inner = xShape.slice(axis + 1);
  const axisSize = xShape[axis];
  const count = indices.size;
  const outerSize = outer.reduce((a, b) => a * b, 1);
  const innerSize = inner.reduce((a, b) => a * b, 1);
  // dy as [M, O, I], M first, so each index owns one slice.
  const grouped = tf.transpose(tf.reshape(dy, [outerSize, count, innerSize]), [1, 0, 2]); // [M, O, I]
  const summed = tf.scatterND(
    tf.reshape(indices, [count, 1]), // [M, 1]
    tf.reshape(grouped, [count, outerSize * innerSize]), // [M, O*I]
    [axisSize, outerSize * innerSize],
  ); // [A, O*I]
  const back = tf.transpose(tf.reshape(summed, [axisSize, outerSize, innerSize]), [1, 0, 2]); // [O, A, I]
  return tf.reshape(back, xShape); // [O..., A, I...]
}

// With batchDims = axis = k: x [B..., A, I...], indices [B..., M...], dy [B..., M..., I...];
// batch b's indices address its own slab, so they become b * A + index in a [B*A, I] table.
function scatterPerBatch(dy: tf.Tensor, indices: tf.Tensor, xShape: number[], batchDims: number): tf.Tensor {
  const batchSize = xShape.slice(0, batchDims).reduce((a, b) => a * b, 1);
  const axisSize = xShape[batchDims];
  const perBatch = indices.size / batchSize;
  const innerSize = xShape.slice(batchDims + 1).reduce((a, b) => a * b, 1);
  const offsets = tf.mul(tf.range(0, batchSize, 1, 'int32'), tf.scalar(axisSize, 'int32')); // [B]
  const flatIndices = tf.add(tf.reshape(indices, [batchSize, perBatch]), tf.reshape(offsets, [batchSize, 1])); // [B, M]
  const summed = tf.scatterND(
    tf.reshape(flatIndices, [batchSize * perBatch, 1]), // [B*M, 1]
    tf.reshape(dy, [batchSize * perBatch, innerSize]), // [B*M, I]
    [batchSize * axisSize, innerSize],
  ); // [B*A, I]
  return tf.reshape(summed, xShape); // [B..., A, I...]
}

/** The GatherV2 gradient: scatter-add of dy into x's shape (batchDims 0, or equal to the axis). */
export const gatherGradient: tf.GradConfig = {
  kernelName: tf.GatherV2,
  inputsToSave: ['x', 'indices'],
  gradFunc: (dy, saved, attrs) => {
    const [x, indices] = saved;
    const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
    const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0];
    if (batchDims !== 0 && batchDims !== parsedAxis) {
      throw new Error(`gather gradient: batchDims ${batchDims} with axis ${parsedAxis} is not supported`);
    }
    const upstream = dy as tf.Tensor;
    return {
      x: () =>
        batchDims === 0 ? scatterAlongAxis(upstream, indices, x.shape, parsedAxis) : scatterPerBatch(upstream, indices, x.shape, batchDims),
      indices: () => tf.zerosLike(indices), // integer input: no gradient flows to it
    };
  },
};

/** Registers gatherGradient in place of tfjs's (idempotent; call after the backend and tfjs gradients are set up). */
export function registerTrainingGradients(): void {
  tf.registerGradient(gatherGradient);
}
