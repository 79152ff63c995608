// Backend selection: the default order on this machine, CREAM_BACKEND
// overrides and their errors, the logged choice, and gradients on each backend.
import { createRequire } from 'node:module';

import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { computeInfo, initCompute } from './backend';
import { BackendUnavailableError, ComputeConfigError } from './errors';
import type { ComputeLogFields, ComputeLogger } from './logger';
import { loadNativeGemm } from './native';
import { attentionKeepLimit } from './ops';
import { matMulKernelMode } from './wasm-kernels';

function recordingLogger(): ComputeLogger & { lines: Array<{ level: string; msg: string; fields?: ComputeLogFields }> } {
  const lines: Array<{ level: string; msg: string; fields?: ComputeLogFields }> = [];
  return {
    lines,
    info: (msg, fields) => lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields }),
  };
}

function gradientWorks(): boolean {
  return tf.tidy(() => {
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(v, v)))(x);
    // d/dX sum(X X) = 1 X^T + X^T 1 = [[7, 11], [9, 13]] for this X.
    return Array.from(g.dataSync()).join(',') === '7,11,9,13';
  });
}

describe('initCompute', () => {
  it('picks wasm with the native kernels here and says why not tfjs-node', async () => {
    const logger = recordingLogger();
    const info = await initCompute({ env: {}, logger });
    if (!loadNativeGemm().ok) throw new Error('the native addon should be built on this machine');
    expect(info.variant).toBe('wasm+native');
    expect(info.backend).toBe('wasm');
    expect(['avx512f', 'avx2+fma', 'generic']).toContain(info.simd);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.detail).toMatch(/tfjs-node-gpu: .*; tfjs-node: /);
    expect(tf.getBackend()).toBe('wasm');
    expect(matMulKernelMode()).toBe('native');
    expect(computeInfo()).toEqual(info);
    // One line says what was chosen, with the reasons.
    const chosen = logger.lines.filter((line) => line.msg === 'compute backend chosen');
    expect(chosen).toHaveLength(1);
    expect(chosen[0].fields).toMatchObject({ variant: 'wasm+native', backend: 'wasm', attentionKeepBytes: 16 * 1024 * 1024 });
    expect(gradientWorks()).toBe(true);
  });

  it('CREAM_BACKEND=wasm gives plain wasm with the matmul fast path', async () => {
    const info = await initCompute({ env: { CREAM_BACKEND: 'wasm' } });
    expect(info).toMatchObject({ backend: 'wasm', variant: 'wasm', threads: 1, simd: '' });
    expect(info.detail).toContain('CREAM_BACKEND=wasm');
    expect(matMulKernelMode()).toBe('fast-path');
    expect(computeInfo()?.variant).toBe('wasm');
    expect(gradientWorks()).toBe(true);
  });

  it('CREAM_BACKEND=wasm-native and cpu are honoured', async () => {
    expect((await initCompute({ env: { CREAM_BACKEND: 'wasm-native' } })).variant).toBe('wasm+native');
    expect(gradientWorks()).toBe(true);
    const cpu = await initCompute({ env: { CREAM_BACKEND: 'cpu' } });
    expect(cpu).toMatchObject({ backend: 'cpu', variant: 'cpu' });
    expect(tf.getBackend()).toBe('cpu');
    expect(gradientWorks()).toBe(true);
  });

  it('an unknown CREAM_BACKEND is an error naming the variable', async () => {
    const attempt = initCompute({ env: { CREAM_BACKEND: 'tpu' } });
    await expect(attempt).rejects.toThrow(ComputeConfigError);
    await expect(attempt).rejects.toThrow(/CREAM_BACKEND='tpu'/);
    await expect(attempt).rejects.toMatchObject({ variable: 'CREAM_BACKEND', value: 'tpu' });
  });

  it('the attention keep limit comes from CREAM_ATTENTION_KEEP_MIB, else the option, else 16 MiB; a bad value is an error naming it', async () => {
    await initCompute({ env: { CREAM_BACKEND: 'cpu' } });
    expect(attentionKeepLimit()).toBe(16 * 1024 * 1024);
    await initCompute({ env: { CREAM_BACKEND: 'cpu' }, attentionKeepBytes: 1000 });
    expect(attentionKeepLimit()).toBe(1000);
    await initCompute({ env: { CREAM_BACKEND: 'cpu', CREAM_ATTENTION_KEEP_MIB: '2.5' }, attentionKeepBytes: 1000 });
    expect(attentionKeepLimit()).toBe(2.5 * 1024 * 1024);
    await initCompute({ env: { CREAM_BACKEND: 'cpu', CREAM_ATTENTION_KEEP_MIB: '0' } });
    expect(attentionKeepLimit()).toBe(0);
    // The one line that says what was chosen says the limit too (JSON logs: no Infinity).
    const logger = recordingLogger();
    await initCompute({ env: { CREAM_BACKEND: 'cpu', CREAM_ATTENTION_KEEP_MIB: 'Infinity' }, logger });
    expect(attentionKeepLimit()).toBe(Infinity);
    expect(logger.lines.find((line) => line.msg === 'compute backend chosen')?.fields).toMatchObject({ attentionKeepBytes: 'unlimited' });
    for (const raw of ['-1', 'lots']) {
      const attempt = initCompute({ env: { CREAM_BACKEND: 'cpu', CREAM_ATTENTION_KEEP_MIB: raw } });
      await expect(attempt).rejects.toThrow(new RegExp(`CREAM_ATTENTION_KEEP_MIB='${raw}' must be a number of MiB >= 0`));
      await expect(attempt).rejects.toMatchObject({ variable: 'CREAM_ATTENTION_KEEP_MIB', value: raw });
    }
    await expect(initCompute({ env: { CREAM_BACKEND: 'cpu' }, attentionKeepBytes: -5 })).rejects.toThrow(/attentionKeepBytes must be a number >= 0, got -5/);
    await initCompute({ env: { CREAM_BACKEND: 'cpu' } });
    expect(attentionKeepLimit()).toBe(16 * 1024 * 1024);
  });

  it('a CREAM_BACKEND that cannot be honoured is an error naming the variable', async () => {
    // tfjs-node cannot install here: its install script downloads libtensorflow.
    const attempt = initCompute({ env: { CREAM_BACKEND: 'tfjs-node' } });
    await expect(attempt).rejects.toThrow(BackendUnavailableError);
    await expect(attempt).rejects.toThrow(/CREAM_BACKEND=tfjs-node cannot be honoured/);
    await expect(attempt).rejects.toMatchObject({ variable: 'CREAM_BACKEND', variant: 'tfjs-node' });
  });

  it('without the native addon: a warning, then wasm with the fast path', async () => {
    const logger = recordingLogger();
    const info = await initCompute({ env: {}, logger, nativeAddonPath: '/nonexistent/cream_compute.node' });
    expect(info.variant).toBe('wasm');
    expect(info.detail).toMatch(/wasm\+native: native addon not built/);
    expect(matMulKernelMode()).toBe('fast-path');
    const warnings = logger.lines.filter((line) => line.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0].fields?.reason)).toContain('/nonexistent/cream_compute.node');
    expect(logger.lines.filter((line) => line.level === 'info')).toHaveLength(1);
    // And CREAM_BACKEND=wasm-native then cannot be honoured.
    await expect(
      initCompute({ env: { CREAM_BACKEND: 'wasm-native' }, nativeAddonPath: '/nonexistent/cream_compute.node' }),
    ).rejects.toMatchObject({ name: 'BackendUnavailableError', variable: 'CREAM_BACKEND' });
    expect(gradientWorks()).toBe(true);
  });

  it('leaves exactly one tfjs-core: the union package and the backends share its engine and classes', async () => {
    await initCompute({ env: {} });
    const union = createRequire(__filename)('@tensorflow/tfjs') as typeof tf;
    expect(union.engine()).toBe(tf.engine());
    expect(union.matMul).toBe(tf.matMul);
    const made = union.tensor([1, 2]);
    expect(made).toBeInstanceOf(tf.Tensor);
    made.dispose();
  });

  it('prefer tries a variant first and checks its name', async () => {
    const info = await initCompute({ env: {}, prefer: 'wasm' });
    expect(info.variant).toBe('wasm');
    expect(info.detail).toBe('preferred by the caller');
    await expect(initCompute({ env: {}, prefer: 'gpu' })).rejects.toMatchObject({ variable: 'prefer' });
  });
});
