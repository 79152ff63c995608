// Gradient registration. tfjs-core's CommonJS entry (what Node loads)
// registers no gradients: they ship only as ESM files that Node cannot load
// from that package. The @tensorflow/tfjs union package's CommonJS bundle
// registers them all into tfjs-core's global registry, on the same tfjs-core
// instance (backend.ts checks that), so it is loaded once for that effect.
// Its BatchMatMul gradient ignores batch broadcasting ([B, T, d] x [d, e]
// gives a [B, d, e] "gradient" for a [d, e] weight, and tf.grad throws), so a
// broadcast-aware one replaces it.
import { createRequire } from 'node:module';

import * as tf from '@tensorflow/tfjs-core';

const load = createRequire(__filename);

// Sums a broadcast gradient back down to the input's shape.
function sumToShape(gradient: tf.Tensor, shape: number[]): tf.Tensor {
  if (tf.util.arraysEqual(gradient.shape, shape)) return gradient;
  const axes = tf.backend_util.getReductionAxes(shape, gradient.shape);
  const summed = axes.length > 0 ? tf.sum(gradient, axes) : gradient;
  return tf.reshape(summed, shape);
}

const batchMatMulGradient: tf.GradConfig = {
  kernelName: tf.BatchMatMul,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved;
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const upstream = dy as tf.Tensor;
    // dA = dY . op(B)^T and dB = op(A)^T . dY, arranged to match each
    // operand's stored layout; both come out with the broadcast batch dims.
    let gradA: () => tf.Tensor;
    let gradB: () => tf.Tensor;
    if (!transposeA && !transposeB) {
      gradA = () => tf.matMul(upstream, b, false, true);
      gradB = () => tf.matMul(a, upstream, true, false);
    } else if (!transposeA && transposeB) {
      gradA = () => tf.matMul(upstream, b, false, false);
      gradB = () => tf.matMul(upstream, a, true, false);
    } else if (transposeA && !transposeB) {
      gradA = () => tf.matMul(b, upstream, false, true);
      gradB = () => tf.matMul(a, upstream, false, false);
    } else {
      gradA = () => tf.matMul(b, upstream, true, true);
      gradB = () => tf.matMul(upstream, a, true, true);
    }
    return {
      a: () => sumToShape(gradA(), a.shape),
      b: () => sumToShape(gradB(), b.shape),
    };
  },
};

let registered = false;

/** Registers every tfjs gradient, plus the broadcast-aware BatchMatMul one; idempotent. */
export function registerGradients(): void {
  if (registered) return;
  load('@tensorflow/tfjs');
  tf.registerGradient(batchMatMulGradient);
  registered = true;
}
