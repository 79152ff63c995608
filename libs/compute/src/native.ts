// Loads the native GEMM addon built by node-gyp at install time
// (build/Release/cream_compute.node) and wraps it with typed, checked calls.
// A missing or unloadable addon is normal on machines without a compiler: the
// loader reports why, and callers fall back to the wasm or pure-JS paths.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { GemmShapeError } from './errors';
import { checkGemmShape, referenceGemm, type GemmActivation, type GemmEpilogue, type GemmShape } from './reference-gemm';

/** Kernels the addon holds; which ones run is chosen by CPUID. */
export type NativeIsa = 'avx512f' | 'avx2+fma' | 'generic';

/** What the addon reports about itself. */
export interface NativeInfo {
  /** The kernel in use. */
  isa: NativeIsa;
  /** Kernels this CPU can run, best first. */
  supported: NativeIsa[];
  /** Threads of its pool (the calling thread included). */
  threads: number;
}

/** The raw addon interface (see native/addon.cc). Offsets count floats, not bytes. */
interface RawAddon {
  gemm(
    a: Float32Array,
    aOffset: number,
    b: Float32Array,
    bOffset: number,
    c: Float32Array,
    cOffset: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    bias: Float32Array | null,
    biasOffset: number,
    biasLength: number,
    activation: number,
    leakyAlpha: number,
  ): void;
  fused(op: number, heap: Float32Array, ...numbers: number[]): void;
  sumSquaresList(heap: Float32Array, offsets: number[], sizes: number[]): number;
  packPanels(w: Float32Array, wOffset: number, n: number, k: number, out: Float32Array): void;
  gemmPacked(a: Float32Array, aOffset: number, packed: Float32Array, c: Float32Array, cOffset: number, m: number, n: number, k: number): void;
  decodeLayer(heap: Float32Array, offsets: number[], weights: Float32Array[], slots: Int32Array, sizes: number[], eps: number, extras?: number[]): void;
  info(): NativeInfo;
  configure(options: { isa?: NativeIsa; threads?: number }): void;
  peakGflops(seconds: number): number;
}

/** Operands of one native GEMM call: arrays plus float offsets into them. */
export interface NativeGemmOperands {
  a: Float32Array;
  aOffset?: number;
  b: Float32Array;
  bOffset?: number;
  c: Float32Array;
  cOffset?: number;
  bias?: Float32Array;
  biasOffset?: number;
  /** Values of bias to use: 1 (scalar) or n (one per column). */
  biasLength?: number;
}

const activationCodes: Record<GemmActivation, number> = {
  linear: 0,
  relu: 1,
  relu6: 2,
  sigmoid: 3,
  leakyrelu: 4,
  elu: 5,
};

/** Floats of W [n, k] packed by NativeGemm.packPanels: n rounded up to whole 16-wide panels, times k. */
export function packedPanelsSize(n: number, k: number): number {
  return Math.ceil(n / 16) * 16 * k;
}

/** Wall time spent inside an addon's compute calls, since it was loaded. */
export interface NativeCallTime {
  /** Milliseconds, summed over calls. */
  ms: number;
  calls: number;
}

/** The loaded native GEMM addon. */
export class NativeGemm {
  private readonly spent: NativeCallTime = { ms: 0, calls: 0 };

  constructor(private readonly addon: RawAddon) {}

  /**
   * Wall time inside this addon's compute calls (gemm, fused kernels, packing,
   * decode layers) since it was loaded: what a caller's elapsed time minus
   * this leaves to the JS engine, tfjs and the stock wasm kernels.
   */
  callTime(): NativeCallTime {
    return { ...this.spent };
  }

  // Runs one addon call, adding its wall time to `spent`.
  private timed<T>(call: () => T): T {
    const started = performance.now();
    try {
      return call();
    } finally {
      this.spent.ms += performance.now() - started;
      this.spent.calls++;
    }
  }

  /**
   * One fused kernel (native/fused.h) on `heap`: `numbers` are its operands'
   * float offsets into `heap` and its sizes, in the order addon.cc lists for
   * `op`. The addon checks every extent. Used by the wasm kernels of fused-kernels.ts.
   */
  fused(op: number, heap: Float32Array, numbers: readonly number[]): void {
    this.timed(() => this.addon.fused(op, heap, ...numbers));
  }

  /** sum(x^2) over the spans of `heap` at offsets[i] (floats) of sizes[i] floats, as one vector, in one pass of the pool. */
  sumSquaresList(heap: Float32Array, offsets: number[], sizes: number[]): number {
    return this.timed(() => this.addon.sumSquaresList(heap, offsets, sizes));
  }

  /**
   * W [n, k] at w[wOffset..] packed in 16-wide column panels (native/gemm.h)
   * for gemmPacked: a new array of packedPanelsSize(n, k) floats.
   */
  packPanels(w: Float32Array, wOffset: number, n: number, k: number): Float32Array {
    const out = new Float32Array(packedPanelsSize(n, k));
    this.timed(() => this.addon.packPanels(w, wOffset, n, k, out));
    return out;
  }

  /** C [m, n] = A [m, k] . W^T, W packed by packPanels; A and C at offsets into their arrays. */
  gemmPacked(a: Float32Array, aOffset: number, packed: Float32Array, c: Float32Array, cOffset: number, m: number, n: number, k: number): void {
    this.timed(() => this.addon.gemmPacked(a, aOffset, packed, c, cOffset, m, n, k));
  }

  /**
   * One decoder layer for t tokens per sequence, on `heap` (DecodeLayer in
   * native/fused.h for t = 1, PrefillLayer for more). offsets: x, out,
   * inputNorm, postNorm, cosTable, sinTable, keys, values; weights: wq, wk,
   * wv, wo, w1, w3, w2 as packPanels copies, then for t > 1 the same seven
   * plain [out, in]; slots: each row's first cache slot (= rotary position);
   * sizes: b, d, hq, hkv, dh, inter, s, table positions and t (default 1).
   * The addon checks every extent.
   */
  decodeLayer(heap: Float32Array, offsets: number[], weights: Float32Array[], slots: Int32Array, sizes: number[], eps: number, extras?: number[]): void {
    this.timed(() => (extras === undefined ? this.addon.decodeLayer(heap, offsets, weights, slots, sizes, eps) : this.addon.decodeLayer(heap, offsets, weights, slots, sizes, eps, extras)));
  }

  /** Kernel, supported kernels and thread count. */
  info(): NativeInfo {
    return this.addon.info();
  }

  /**
   * The FP32 GFLOP/s this machine delivers to the kernel in use on all the
   * pool's threads: register-only FMA chains (separate multiplies and adds for
   * the portable kernel), best of three passes of about `seconds` each. The
   * ceiling a product's GFLOP/s can be compared with; a measurement, so it
   * moves with the machine's load.
   */
  peakGflops(seconds = 0.1): number {
    return this.addon.peakGflops(seconds);
  }

  /** Picks a kernel (one this CPU supports) and/or the thread count. */
  configure(options: { isa?: NativeIsa; threads?: number }): void {
    this.addon.configure(options);
  }

  /**
   * C = op(A) * op(B) (+ bias, activation) straight on the given arrays (for
   * the wasm kernel, views of the wasm heap). The addon checks every extent.
   */
  gemm(operands: NativeGemmOperands, shape: GemmShape, epilogue: Omit<GemmEpilogue, 'bias'> = {}): void {
    checkGemmShape(shape);
    this.timed(() => this.addon.gemm(
      operands.a,
      operands.aOffset ?? 0,
      operands.b,
      operands.bOffset ?? 0,
      operands.c,
      operands.cOffset ?? 0,
      shape.batchA,
      shape.batchB,
      shape.m,
      shape.n,
      shape.k,
      shape.transposeA ?? false,
      shape.transposeB ?? false,
      operands.bias ?? null,
      operands.biasOffset ?? 0,
      operands.biasLength ?? operands.bias?.length ?? 0,
      activationCodes[epilogue.activation ?? 'linear'],
      epilogue.leakyAlpha ?? 0.2,
    ));
  }
}

/** Outcome of loading the addon: the addon, or why there is none. */
export type NativeLoadResult = { ok: true; native: NativeGemm; path: string } | { ok: false; reason: string };

/** Where node-gyp puts the addon, and where a failed install build leaves its note. */
export const nativeAddonPath = join(__dirname, '..', 'build', 'Release', 'cream_compute.node');
const buildFailureNote = join(__dirname, '..', 'build', 'native-build-failed.txt');

const loaded = new Map<string, NativeLoadResult>();

/**
 * Loads the addon once per path and process (per worker thread); never
 * throws. `path` defaults to the node-gyp build output.
 */
export function loadNativeGemm(path: string = nativeAddonPath): NativeLoadResult {
  const known = loaded.get(path);
  if (known) return known;
  let result: NativeLoadResult;
  if (!existsSync(path)) {
    const note = path === nativeAddonPath && existsSync(buildFailureNote) ? readFileSync(buildFailureNote, 'utf8').trim() : '';
    result = {
      ok: false,
      reason:
        `native addon not built (${path} is missing)` +
        (note ? `: ${note}` : '; run `npm ci`, or `npm run install -w @cream/compute` from the repository root'),
    };
  } else {
    try {
      const load = createRequire(__filename);
      result = { ok: true, native: new NativeGemm(load(path) as RawAddon), path };
    } catch (error) {
      result = { ok: false, reason: `native addon did not load: ${(error as Error).message}` };
    }
  }
  loaded.set(path, result);
  return result;
}

/** Wall time inside the compute calls of every addon this process (worker thread) loaded: zero when none loaded. */
export function nativeCallTime(): NativeCallTime {
  const total: NativeCallTime = { ms: 0, calls: 0 };
  for (const result of loaded.values()) {
    if (!result.ok) continue;
    const { ms, calls } = result.native.callTime();
    total.ms += ms;
    total.calls += calls;
  }
  return total;
}

/**
 * C = op(A) * op(B) (+ bias, activation) on plain Float32Arrays: the native
 * kernel when the addon loads, else the pure-JS reference. C is
 * [max(batchA, batchB), M, N].
 */
export function gemm(a: Float32Array, b: Float32Array, shape: GemmShape, epilogue: GemmEpilogue = {}): Float32Array {
  const batch = checkGemmShape(shape);
  if (a.length !== shape.batchA * shape.m * shape.k) {
    throw new GemmShapeError(`a holds ${a.length} values, expected ${shape.batchA * shape.m * shape.k}`, 'a');
  }
  if (b.length !== shape.batchB * shape.k * shape.n) {
    throw new GemmShapeError(`b holds ${b.length} values, expected ${shape.batchB * shape.k * shape.n}`, 'b');
  }
  if (epilogue.bias && epilogue.bias.length !== 1 && epilogue.bias.length !== shape.n) {
    throw new GemmShapeError(`bias holds ${epilogue.bias.length} values, needs 1 or ${shape.n}`, 'bias');
  }
  const loaded = loadNativeGemm();
  if (!loaded.ok) return Float32Array.from(referenceGemm(a, b, shape, epilogue));
  const c = new Float32Array(batch * shape.m * shape.n);
  loaded.native.gemm({ a, b, c, bias: epilogue.bias }, shape, epilogue);
  return c;
}
