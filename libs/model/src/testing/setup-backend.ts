// vitest setup: the backend through @cream/compute (which also registers the
// gradients tfjs-core's CommonJS build lacks). The CPU backend unless
// CREAM_BACKEND says otherwise: its kernels are deterministic, so batch
// invariance is checked bit for bit there.
import { initCompute, silentLogger } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll } from 'vitest';

tf.env().set('IS_TEST', true); // no "install tfjs-node" banner
beforeAll(async () => {
  await initCompute({ env: { CREAM_BACKEND: process.env.CREAM_BACKEND ?? 'cpu' }, logger: silentLogger });
});
