// TensorFlow.js backend selection for every cream process. In order:
// tfjs-node-gpu, tfjs-node (native TensorFlow; both optional dependencies that
// cannot install on machines without their download host), then the wasm
// backend with cream's native GEMM and fused kernels, then plain wasm (with the matmul fast
// path), then the cpu backend as a last resort. CREAM_BACKEND forces one.
// The choice is logged once and kept for health and benchmarks.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';

import { BackendUnavailableError, ComputeConfigError, ComputeError } from './errors';
import { registerFusedKernels, useNativeTransposeAndAdd } from './fused-kernels';
import { registerGradients } from './gradients';
import { silentLogger, type ComputeLogger } from './logger';
import { loadNativeGemm } from './native';
import { attentionKeepLimit, defaultAttentionKeepBytes, registerFusedGradients, setAttentionKeepLimit } from './ops';
import { guardWasmAllocations, useFastGather, useFastSlice, useMatMulKernels, useSharedIdentity, type WasmBackend } from './wasm-kernels';

/** The variants, in the proto's ComputeInfo.variant vocabulary. */
export type ComputeVariant = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm+native' | 'wasm' | 'cpu';

/** What runs the model math (the proto's ComputeInfo). */
export interface ComputeInfo {
  /** tfjs backend name: "tensorflow", "wasm" or "cpu". */
  backend: string;
  /** Which variant was chosen. */
  variant: ComputeVariant;
  /** Why this variant: what was tried before it and why it was not taken. */
  detail: string;
  /** Threads the heavy kernels use. */
  threads: number;
  /** CPU features the native kernels use ("avx512f", "avx2+fma", "generic"); empty otherwise. */
  simd: string;
}

/** Options of initCompute. */
export interface InitComputeOptions {
  /** A variant to try first (same names as CREAM_BACKEND); the usual order follows. */
  prefer?: string;
  /** Where the one selection line (and a missing-addon warning) goes. */
  logger?: ComputeLogger;
  /** Environment to read CREAM_BACKEND from; process.env by default. */
  env?: Record<string, string | undefined>;
  /** Threads for the native kernels; all cores by default. */
  threads?: number;
  /** The native addon to load; the node-gyp build output by default. */
  nativeAddonPath?: string;
  /**
   * setAttentionKeepLimit's bytes (the largest attention probabilities a
   * training pass keeps for its gradient; 16 MiB by default).
   * CREAM_ATTENTION_KEEP_MIB, when set, overrides it.
   */
  attentionKeepBytes?: number;
}

/** The environment variable that forces a backend. */
export const backendVariable = 'CREAM_BACKEND';
/** The environment variable that sets attentionKeepLimit, in MiB. */
export const attentionKeepVariable = 'CREAM_ATTENTION_KEEP_MIB';

// The attention keep limit in bytes from the environment (MiB), the option, or the default.
function attentionKeepBytesOf(options: InitComputeOptions, env: Record<string, string | undefined>): number {
  const raw = env[attentionKeepVariable];
  if (raw !== undefined && raw.trim() !== '') {
    const mib = Number(raw);
    if (!(mib >= 0)) {
      throw new ComputeConfigError(`${attentionKeepVariable}='${raw}' must be a number of MiB >= 0 (0: never keep attention probabilities)`, attentionKeepVariable, raw);
    }
    return mib * 1024 * 1024;
  }
  const bytes = options.attentionKeepBytes ?? defaultAttentionKeepBytes;
  if (!(bytes >= 0)) throw new ComputeConfigError(`attentionKeepBytes must be a number >= 0, got ${bytes}`, 'attentionKeepBytes', String(bytes));
  return bytes;
}

// CREAM_BACKEND values and the variant each names.
const variantByName: Record<string, ComputeVariant> = {
  'tfjs-node-gpu': 'tfjs-node-gpu',
  'tfjs-node': 'tfjs-node',
  'wasm-native': 'wasm+native',
  'wasm+native': 'wasm+native',
  wasm: 'wasm',
  cpu: 'cpu',
};
const variantNames = ['tfjs-node-gpu', 'tfjs-node', 'wasm-native', 'wasm', 'cpu'];
const defaultOrder: ComputeVariant[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm+native', 'wasm', 'cpu'];

const load = createRequire(__filename);
let current: ComputeInfo | undefined;
let pending: Promise<unknown> = Promise.resolve();

// Every tfjs package must resolve the one tfjs-core this library imports;
// a nested second copy has its own Tensor class and kernel registrations.
function assertSingleTfjsCore(packageName: string): void {
  const ours = load.resolve('@tensorflow/tfjs-core');
  const packageDir = dirname(load.resolve(`${packageName}/package.json`));
  const theirs = createRequire(join(packageDir, 'package.json')).resolve('@tensorflow/tfjs-core');
  if (theirs !== ours) {
    throw new ComputeError(
      `${packageName} loads a second @tensorflow/tfjs-core (${theirs}, ours is ${ours}); ` +
        'pin every @tensorflow package to the same version so npm installs one copy',
    );
  }
}

function parseVariant(name: string, variable: string): ComputeVariant {
  const variant = variantByName[name.trim()];
  if (!variant) {
    throw new ComputeConfigError(
      `${variable}='${name}' is not a backend; use one of ${variantNames.join(', ')}`,
      variable,
      name,
    );
  }
  return variant;
}

function wasmDistDir(): string {
  // The .wasm binaries ship in the package's dist folder; pointing the
  // backend there keeps it off the network.
  return join(dirname(load.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
}

let wasmPathsSet = false;
function prepareWasm(): void {
  assertSingleTfjsCore('@tensorflow/tfjs-backend-wasm');
  if (!wasmPathsSet) {
    setWasmPaths(wasmDistDir());
    wasmPathsSet = true;
  }
}

async function switchTo(backendName: string): Promise<void> {
  const ok = await tf.setBackend(backendName);
  if (!ok || tf.getBackend() !== backendName) throw new Error(`tf.setBackend('${backendName}') failed`);
  await tf.ready();
  if (backendName === 'wasm') guardWasmAllocations(tf.backend() as unknown as WasmBackend);
}

// A small product and gradient on the chosen backend, so a broken kernel or
// missing gradients fail at start-up rather than in the first training step.
function selfCheck(): void {
  const close = (got: Float32Array | Int32Array | Uint8Array, want: number[], what: string) => {
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= 1e-4)) {
        throw new ComputeError(`self-check failed: ${what} gave [${Array.from(got)}], expected [${want}]`);
      }
    }
  };
  tf.tidy(() => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]); // [2, 3]
    const w = tf.tensor2d([[1, 0], [0, 1], [1, 1]]); // [3, 2]
    close(tf.matMul(x, w).dataSync(), [4, 5, 10, 11], 'matMul');
    close(tf.matMul(w, x, true, true).dataSync(), [4, 10, 5, 11], 'matMul(transposeA, transposeB)');
    let gradient: tf.Tensor;
    try {
      gradient = tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(v, w)))(x); // ones[2,2] . w^T
    } catch (error) {
      throw new ComputeError(`gradients are not registered on this backend: ${(error as Error).message}`, {
        cause: error,
      });
    }
    close(gradient.dataSync(), [1, 1, 2, 1, 1, 2], 'grad of sum(matMul)');
  });
}

// Runs `work` with tfjs's console warnings off (its IS_TEST flag gates them).
function withTfjsWarningsMuted(work: () => void): void {
  const environment = tf.env();
  const before = environment.getBool('IS_TEST');
  environment.set('IS_TEST', true);
  try {
    work();
  } finally {
    environment.set('IS_TEST', before);
  }
}

type Attempt = { ok: true; info: Omit<ComputeInfo, 'detail' | 'variant'> } | { ok: false; reason: string };

async function tryVariant(variant: ComputeVariant, threads: number, addonPath: string | undefined): Promise<Attempt> {
  try {
    switch (variant) {
      case 'tfjs-node-gpu':
      case 'tfjs-node': {
        const packageName = `@tensorflow/${variant}`;
        try {
          load.resolve(packageName);
        } catch {
          return { ok: false, reason: `${packageName} is not installed` };
        }
        assertSingleTfjsCore(packageName);
        // Loading it registers the 'tensorflow' backend (and fails here when
        // its libtensorflow binary was never downloaded).
        load(packageName);
        await switchTo('tensorflow');
        selfCheck();
        return { ok: true, info: { backend: 'tensorflow', threads: availableParallelism(), simd: '' } };
      }
      case 'wasm+native': {
        const loaded = loadNativeGemm(addonPath);
        if (!loaded.ok) return { ok: false, reason: loaded.reason };
        loaded.native.configure({ threads });
        prepareWasm();
        useMatMulKernels('native', loaded.native);
        registerFusedKernels(loaded.native);
        useNativeTransposeAndAdd(loaded.native);
        useSharedIdentity();
        useFastGather();
        useFastSlice();
        await switchTo('wasm');
        selfCheck();
        const native = loaded.native.info();
        return { ok: true, info: { backend: 'wasm', threads: native.threads, simd: native.isa } };
      }
      case 'wasm': {
        prepareWasm();
        useMatMulKernels('fast-path');
        useSharedIdentity();
        useFastGather();
        useFastSlice();
        await switchTo('wasm');
        selfCheck();
        // tfjs-backend-wasm answers WASM_HAS_MULTITHREAD_SUPPORT=false under
        // Node, so its single-threaded SIMD build runs.
        return { ok: true, info: { backend: 'wasm', threads: 1, simd: '' } };
      }
      case 'cpu': {
        assertSingleTfjsCore('@tensorflow/tfjs-backend-cpu');
        await switchTo('cpu');
        // The cpu backend prints a banner on its first tensor in Node; cream's
        // stderr carries JSON log lines only, so that one is held back.
        withTfjsWarningsMuted(selfCheck);
        return { ok: true, info: { backend: 'cpu', threads: 1, simd: '' } };
      }
    }
  } catch (error) {
    return { ok: false, reason: (error as Error).message.split('\n')[0] };
  }
}

async function select(options: InitComputeOptions): Promise<ComputeInfo> {
  const logger = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const threads = options.threads ?? availableParallelism();
  const forcedName = env[backendVariable];
  const forced = forcedName !== undefined && forcedName !== '' ? parseVariant(forcedName, backendVariable) : undefined;
  const preferred = options.prefer !== undefined ? parseVariant(options.prefer, 'prefer') : undefined;
  setAttentionKeepLimit(attentionKeepBytesOf(options, env));

  assertSingleTfjsCore('@tensorflow/tfjs');
  registerGradients();
  registerFusedGradients();
  const order = forced ? [forced] : [...new Set([...(preferred ? [preferred] : []), ...defaultOrder])];
  const skipped: string[] = [];
  for (const variant of order) {
    const attempt = await tryVariant(variant, threads, options.nativeAddonPath);
    if (!attempt.ok) {
      if (forced) {
        throw new BackendUnavailableError(
          `${backendVariable}=${forcedName} cannot be honoured: ${attempt.reason}`,
          variant,
          { variable: backendVariable },
        );
      }
      skipped.push(`${variant}: ${attempt.reason}`);
      if (variant === 'wasm+native') {
        logger.warn('native GEMM kernels unavailable; matmuls run on the wasm backend alone', { reason: attempt.reason });
      }
      continue;
    }
    const detail = forced
      ? `forced by ${backendVariable}=${forcedName}`
      : skipped.length === 0
        ? preferred === variant
          ? 'preferred by the caller'
          : 'first choice'
        : `not taken: ${skipped.join('; ')}`;
    const info: ComputeInfo = { ...attempt.info, variant, detail };
    // With the attention keep limit: what a training pass holds between its passes.
    const keep = attentionKeepLimit();
    logger.info('compute backend chosen', { ...info, attentionKeepBytes: Number.isFinite(keep) ? keep : 'unlimited' });
    return info;
  }
  throw new BackendUnavailableError(`no TensorFlow.js backend could start: ${skipped.join('; ')}`, 'cpu');
}

/**
 * Chooses and initializes the TensorFlow.js backend (see the file comment for
 * the order), registers gradients and, for wasm, cream's matmul kernels. Call
 * once at start-up, before any tensor is made; later calls choose again.
 */
export function initCompute(options: InitComputeOptions = {}): Promise<ComputeInfo> {
  // Calls are serialized: backend switching is global state.
  const run = pending.then(() => select(options));
  pending = run.catch(() => undefined);
  return run.then((info) => {
    current = info;
    return info;
  });
}

/** The backend chosen by the last successful initCompute, or undefined before it. */
export function computeInfo(): ComputeInfo | undefined {
  return current;
}

/**
 * What a service reports as its backend (the proto's ComputeInfo): a copy of
 * computeInfo(), or variant "none" before initCompute has chosen one.
 */
export function computeStatus(): Omit<ComputeInfo, 'variant'> & { variant: ComputeVariant | 'none' } {
  if (!current) return { backend: '', variant: 'none', detail: 'the compute backend is not initialized yet', threads: 0, simd: '' };
  return { backend: current.backend, variant: current.variant, detail: current.detail, threads: current.threads, simd: current.simd };
}
