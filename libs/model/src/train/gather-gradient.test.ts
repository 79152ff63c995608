// The ScatterNd-based GatherV2 gradient against the gradient written out with
// loops: repeated indices add up, any axis, and batchDims equal to the axis.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatherGradient, registerTrainingGradients } from './gather-gradient';
import { seededRandom } from './test-fixtures';

beforeAll(async () => {
  registerTrainingGradients();
});

// d/dx sum(gather(x, indices, axis, batchDims) * weights), by loops over the
// output: out[b, o, m, i] = x[b, o, indices[b, m], i] with the shapes flattened.
function expectedGradient(
  shape: { batch: number; outer: number; axis: number; inner: number; perBatch: number },
  indices: number[],
  weights: number[],
): number[] {
  const { batch, outer, axis, inner, perBatch } = shape;
  const gradient = new Array<number>(batch * outer * axis * inner).fill(0);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      for (let m = 0; m < perBatch; m++) {
        for (let i = 0; i < inner; i++) {
          const out = ((b * outer + o) * perBatch + m) * inner + i;
          const index = indices[b * perBatch + m];
          gradient[((b * outer + o) * axis + index) * inner + i] += weights[out];
        }
      }
    }
  }
  return gradient;
}

function check(xShape: number[], indexShape: number[], axis: number, batchDims: number, indexRange: number): void {
  const random = seededRandom(xShape.length * 10 + axis);
  const indices = Array.from({ length: indexShape.reduce((a, b) => a * b, 1) }, () => Math.floor(random() * indexRange));
  const got = tf.tidy(() => {
    const x = tf.tensor(Array.from({ length: xShape.reduce((a, b) => a * b, 1) }, () => random()), xShape);
    const index = tf.tensor(indices, indexShape, 'int32');
    const outShape = tf.gather(x, index, axis, batchDims).shape;
    const weights = tf.tensor(Array.from({ length: outShape.reduce((a, b) => a * b, 1) }, () => random() - 0.5), outShape);
    const gradient = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.gather(v, index, axis, batchDims), weights)))(x);
    return { gradient: [...gradient.dataSync()], weights: [...weights.dataSync()] };
  });
  const batch = xShape.slice(0, batchDims).reduce((a, b) => a * b, 1);
  const shape = {
    batch,
    outer: xShape.slice(batchDims, axis).reduce((a, b) => a * b, 1),
    axis: xShape[axis],
    inner: xShape.slice(axis + 1).reduce((a, b) => a * b, 1),
    perBatch: indices.length / batch,
  };
  const want = expectedGradient(shape, indices, got.weights);
  got.gradient.forEach((value, i) => expect(value).toBeCloseTo(want[i], 5));
}

describe('gatherGradient', () => {
  it('is the registered GatherV2 gradient', () => {
    expect(tf.getGradient(tf.GatherV2)).toBe(gatherGradient);
  });

  it('adds the gradient of repeated rows (an embedding lookup)', () => {
    check([5, 3], [2, 4], 0, 0, 5); // 8 lookups into 5 rows: repeats certain
  });

  it('works along an inner axis', () => {
    check([2, 4, 3], [5], 1, 0, 4);
    check([3, 6], [2, 2], 1, 0, 6);
  });

  it('works with batchDims equal to the axis (one index row per batch row)', () => {
    check([4, 7], [4, 3], 1, 1, 7);
    check([2, 3, 5, 2], [2, 3, 4], 2, 2, 5);
  });

  it('leaves no tensor behind', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const index = tf.tensor1d([2, 0, 2], 'int32');
    const before = tf.memory().numTensors;
    const gradient = tf.grad((v: tf.Tensor) => tf.sum(tf.gather(v, index)))(x);
    expect([...gradient.dataSync()]).toEqual([1, 1, 0, 0, 2, 2]);
    gradient.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, index]);
  });
});
