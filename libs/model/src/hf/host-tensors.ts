// The bridge between tfjs tensors (ModelWeights) and the host tensors that
// checkpoints read and write, so a loaded checkpoint becomes variables and
// trained variables become a checkpoint.
import * as tf from '@tensorflow/tfjs-core';
import { ModelWeightsError } from '../errors';
import type { HostTensor, TensorMap } from './safetensors';

/**
 * Copies float32 tfjs tensors (e.g. ModelWeights) to host memory, preserving
 * the map's order and every bit of every value. Reads with `data()`, so any
 * backend works; the copies are the caller's. Throws ModelWeightsError for a
 * tensor that is not float32.
 */
export async function toHostTensors(tensors: ReadonlyMap<string, tf.Tensor>): Promise<TensorMap> {
  const out: TensorMap = new Map();
  for (const [name, tensor] of tensors) {
    if (tensor.dtype !== 'float32') throw new ModelWeightsError(`tensor ${name} is ${tensor.dtype}, not float32`, name);
    // Copy: a backend may hand back its own buffer.
    out.set(name, { shape: [...tensor.shape], data: new Float32Array((await tensor.data()) as Float32Array) });
  }
  return out;
}

/**
 * float32 tfjs tensors from host tensors (e.g. a loaded checkpoint, for
 * createWeights). A backend may keep the host arrays as its storage, so do not
 * modify them afterwards; the tensors are the caller's to dispose.
 */
export function fromHostTensors(tensors: ReadonlyMap<string, HostTensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [name, { shape, data }] of tensors) out.set(name, tf.tensor(data, shape, 'float32'));
  } catch (error) {
    for (const tensor of out.values()) tensor.dispose();
    throw error;
  }
  return out;
}
