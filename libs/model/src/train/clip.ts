// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: the L2
// norm of all gradients taken as one vector; when it exceeds maxNorm every
// gradient is scaled by maxNorm / (norm + 1e-6).

import { sumOfSquaresAll } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from '../errors';

/** The L2 norm of all `gradients` together, as one vector (one native pass on wasm+native, else a single read back). */
export function globalNorm(gradients: Iterable<tf.Tensor>): number {
  return Math.sqrt(sumOfSquaresAll([...gradients]));
}

/**
 * The factor torch.nn.utils.clip_grad_norm_ scales every gradient by, min(1,
 * maxNorm / (norm + 1e-6)), and the global norm it comes from, without new
 * gradient tensors: AdamW.update applies the factor as it reads each gradient.
 */
export function clipFactor(gradients: ReadonlyMap<string, tf.Tensor>, maxNorm: number): { scale: number; norm: number } {
  if (!(maxNorm > 0)) throw new InvalidOptionError(`maxGradNorm must be > 0, got ${maxNorm}`, 'maxGradNorm');
  const norm = globalNorm(gradients.values());
  return { scale: Math.min(1, maxNorm / (norm + 1e-6)), norm };
}

/** Gradients after clipping, and the global norm they had before. */
export interface ClippedGradients {
  /** New tensors (the caller disposes them); the inputs are left as they were. */
  readonly gradients: Map<string, tf.Tensor>;
  /** Global norm before clipping. */
  readonly norm: number;
}

/**
 * Scales `gradients` so their global norm is at most `maxNorm` (Infinity turns
 * clipping off). Returns new tensors whether or not they were scaled.
 */
export function clipByGlobalNorm(gradients: ReadonlyMap<string, tf.Tensor>, maxNorm: number): ClippedGradients {
  // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1.
  const { scale, norm } = clipFactor(gradients, maxNorm);
  const clipped = new Map<string, tf.Tensor>();
  for (const [name, gradient] of gradients) {
    clipped.set(name, scale < 1 ? tf.mul(gradient, scale) : tf.clone(gradient));
  }
  return { gradients: clipped, norm };
}
