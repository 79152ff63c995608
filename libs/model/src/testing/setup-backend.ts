// vitest setup: the backend through @cream/compute (which also registers the
// gradients tfjs-core's CommonJS build lacks). The CPU backend unless
// CREAM_BACKEND says otherwise: its kernels are deterministic, so batch
// invariance is checked bit for bit there.
import { initCompute, silentLogger } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll } from 'vitest';

const backend = process.env.CREAM_BACKEND ?? 'cpu';
// On CPU, IS_TEST drops the "install tfjs-node" banner and makes tfjs check every
// kernel for leaked buffers. Not on wasm: there that check misfires on the copy
// customGrad ops (tf.logSoftmax) save for their gradient.
if (backend === 'cpu') tf.env().set('IS_TEST', true);
beforeAll(async () => {
  await initCompute({ env: { CREAM_BACKEND: backend }, logger: silentLogger });
});
