// Matmul kernels for the tfjs wasm backend, registered with tf.registerKernel
// in place of the backend's own BatchMatMul and _FusedMatMul:
// - 'native': the N-API GEMM computes straight on the wasm heap. Inputs are
//   read at their heap offsets (backend.dataIdMap), the output is allocated by
//   the backend and written in place; nothing is copied.
// - 'fast-path': no addon. The stock kernels only reach XNNPACK for
//   untransposed, unbatched products and otherwise run a naive loop, so
//   transposes are materialized (wasm Transpose), a batch against one shared B
//   becomes one tall product, and other batches loop over XNNPACK calls
//   (BatchMatMul; _FusedMatMul only for a shared B).
// - 'stock': the backend's own kernels, for comparison.
// Gradients are registered on the kernel name in tfjs-core, so tf.grad through
// matMul keeps working whichever kernel runs.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import { ComputeError, WasmMemoryError } from './errors';
import { packedPanelsSize, type NativeGemm } from './native';
import type { GemmActivation } from './reference-gemm';

/** Which matmul kernels the wasm backend runs. */
export type MatMulKernelMode = 'native' | 'fast-path' | 'stock';

/** The parts of tfjs-backend-wasm's BackendWasm that these kernels (and fused-kernels.ts) touch. */
export interface WasmBackend {
  wasm: { HEAPF32: Float32Array; HEAPU8?: Uint8Array; _malloc?: (bytes: number) => number; _free?: (address: number) => void };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number; refCount?: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const backendName = 'wasm';
let stockBatchMatMul: tf.KernelConfig | undefined;
let stockFusedMatMul: tf.KernelConfig | undefined;
let installed: MatMulKernelMode = 'stock';

function stockKernels(): { batchMatMul: tf.KernelConfig; fusedMatMul: tf.KernelConfig } {
  // Captured once: later lookups would return our own replacements.
  stockBatchMatMul ??= tf.getKernel(tf.BatchMatMul, backendName);
  stockFusedMatMul ??= tf.getKernel(tf._FusedMatMul, backendName);
  if (!stockBatchMatMul || !stockFusedMatMul) {
    throw new ComputeError('tfjs-backend-wasm did not register BatchMatMul/_FusedMatMul; is it the expected 4.22.0?');
  }
  return { batchMatMul: stockBatchMatMul, fusedMatMul: stockFusedMatMul };
}

function callKernel(config: tf.KernelConfig, args: KernelArgs): tf.TensorInfo {
  return config.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

function runKernel(name: string, args: KernelArgs): tf.TensorInfo {
  const config = tf.getKernel(name, backendName);
  if (!config) throw new ComputeError(`the wasm backend has no ${name} kernel`);
  return callKernel(config, args);
}

/** Batch and matrix sizes of a BatchMatMul, or undefined when the batch broadcast is not 1-vs-n. */
interface MatMulGeometry {
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
  outShape: number[];
}

function geometry(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): MatMulGeometry | undefined {
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  if (aRank < 2 || bRank < 2) return undefined;
  const k = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const kB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  if (k !== kB) return undefined; // the stock kernel reports the mismatch
  const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return undefined;
  }
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  const batch = tf.util.sizeFromShape(outer);
  // The GEMM broadcasts a whole batch of 1; a partial broadcast such as
  // [2, 1] x [1, 3] goes to the stock kernel.
  if ((batchA !== 1 && batchA !== batch) || (batchB !== 1 && batchB !== batch)) return undefined;
  if (batchA === batch && batchB === batch && batch > 1 && !tf.util.arraysEqual(outerA, outerB)) return undefined;
  return { batchA, batchB, m, n, k, outShape: [...outer, m, n] };
}

/** A float32 BatchMatMul's operands and geometry, or undefined for the stock kernel to handle. */
interface MatMulCall {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  g: MatMulGeometry;
}

function matMulCall(args: KernelArgs): MatMulCall | undefined {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const transposeA = Boolean(args.attrs.transposeA);
  const transposeB = Boolean(args.attrs.transposeB);
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const g = geometry(a, b, transposeA, transposeB);
  return g ? { a, b, transposeA, transposeB, g } : undefined;
}

/** A tensor's offset in the wasm heap in floats, or undefined when it has none (or it is misaligned). */
export function heapOffset(backend: WasmBackend, tensor: tf.TensorInfo): number | undefined {
  const offset = backend.dataIdMap.get(tensor.dataId)?.memoryOffset;
  if (offset === undefined || offset === null || offset % 4 !== 0) return undefined;
  return offset / 4;
}

/** The most the wasm backend's memory can grow to (wasm32; tfjs-backend-wasm's build): 4 GiB less one page. */
export const WASM_MEMORY_LIMIT_BYTES = 4294901760;

/**
 * The largest single allocation the wasm backend's malloc gets right: its
 * heap grows by a signed 32-bit increment, and a request of 2 GiB or more
 * came back as an address past the end of the memory.
 */
export const WASM_ALLOCATION_LIMIT_BYTES = 2 ** 31 - 65536;

const guarded = new WeakSet<object>();

/**
 * Makes the wasm backend's tensor allocations fail loudly. tfjs-backend-wasm
 * takes tensor memory from the module's malloc and does not check the result:
 * when the memory cannot grow any further (wasm32: 4 GiB), malloc returns 0,
 * the tensor is placed at address 0 and the next kernel writes over the
 * module's own data (seen as "memory access out of bounds" or "Aborted()"
 * later, while training a 135M-parameter model); a request of 2 GiB or more
 * can come back past the memory's end. Guarded, such an allocation throws a
 * WasmMemoryError before anything is written, and the backend keeps working.
 * Once per backend instance.
 */
export function guardWasmAllocations(backend: WasmBackend): void {
  const wasm = backend.wasm;
  const { _malloc: first, _free: free } = wasm;
  if (guarded.has(wasm) || first === undefined || free === undefined) return;
  // Emscripten binds its exports lazily: the first call of Module._malloc
  // replaces Module._malloc with the raw export. One call first, so that
  // replacement happens now and not over the guard below.
  free(first(16));
  const malloc = wasm._malloc as (bytes: number) => number;
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  wasm._malloc = (bytes: number): number => {
    // Unsigned: malloc answers as a signed 32-bit int, negative above 2 GiB.
    const address = bytes > WASM_ALLOCATION_LIMIT_BYTES ? 0 : malloc(bytes) >>> 0;
    const heap = wasm.HEAPU8?.length ?? wasm.HEAPF32.length * 4;
    if (bytes > 0 && (address === 0 || address + bytes > heap)) {
      if (address !== 0) free(address);
      const what =
        bytes > WASM_ALLOCATION_LIMIT_BYTES
          ? `a tensor of ${mib(bytes)} is more than it allocates at once (${mib(WASM_ALLOCATION_LIMIT_BYTES)})`
          : `${mib(bytes)} more for a tensor did not fit (memory at ${mib(heap)} of wasm32's ${mib(WASM_MEMORY_LIMIT_BYTES)})`;
      throw new WasmMemoryError(
        `the wasm backend's memory is full: ${what}. Work on fewer tokens at once (a smaller batch, or gradientAccumulation to split one), ` +
          'or use a backend without this limit (CREAM_BACKEND=cpu, or tfjs-node where it installs)',
        bytes,
        heap,
        WASM_MEMORY_LIMIT_BYTES,
      );
    }
    return address;
  };
  guarded.add(wasm);
}

/** Whether `tensor` lives in the wasm heap as the only tensor on its memory (its data's reference count is 1). */
export function heldAlone(backend: WasmBackend, tensor: tf.TensorInfo): boolean {
  return backend.dataIdMap.get(tensor.dataId)?.refCount === 1 && heapOffset(backend, tensor) !== undefined;
}

// The backend's own kernels, captured before cream first replaces them.
const stockByName = new Map<string, tf.KernelConfig>();

/** The wasm backend's own kernel `name`, as tfjs-backend-wasm registered it. */
export function stockKernel(name: string): tf.KernelConfig {
  let stock = stockByName.get(name);
  if (stock === undefined) {
    stock = tf.getKernel(name, backendName);
    if (!stock) throw new ComputeError(`tfjs-backend-wasm did not register ${name}; is it the expected 4.22.0?`);
    stockByName.set(name, stock);
  }
  return stock;
}

/** Registers `kernelFunc` as the wasm backend's `name` (the stock kernel's setup kept); idempotent. */
export function replaceKernel(name: string, kernelFunc: tf.KernelFunc): void {
  const stock = stockKernel(name);
  tf.unregisterKernel(name, backendName);
  tf.registerKernel({ ...stock, kernelFunc });
}

const fusableActivations: Record<string, GemmActivation | undefined> = {
  linear: 'linear',
  relu: 'relu',
  relu6: 'relu6',
  sigmoid: 'sigmoid',
  leakyrelu: 'leakyrelu',
  elu: 'elu',
};

/**
 * Products with at most this many rows against a transposed, unbatched B
 * (x . W^T of a Linear layer while decoding, M = the batch) read B from a
 * copy packed in 16-wide column panels, made on B's first such use and kept
 * while B's data lives (a tensor's data never changes; a Variable's update
 * gives it new data). Packing on the first use, not later, keeps every call
 * on the same kernel, so results do not depend on what ran before. Larger
 * products pack B themselves.
 */
export const PACKED_B_MAX_ROWS = 32;

// Keyed by the data's id object: dropped with the data, so a disposed
// weight's packed copy goes with it and a reused heap offset never matches.
const packedWeights = new WeakMap<object, Float32Array>();

/**
 * The copy of W [n, k] (a float32 tensor in the wasm heap at float offset
 * `offset`) packed in 16-wide column panels for NativeGemm.gemmPacked, made
 * on the first request for this data and kept while the data lives.
 */
export function packedWeight(native: NativeGemm, backend: WasmBackend, w: tf.TensorInfo, offset: number, n: number, k: number): Float32Array {
  let packed = packedWeights.get(w.dataId as object);
  if (packed === undefined || packed.length !== packedPanelsSize(n, k)) {
    packed = native.packPanels(backend.wasm.HEAPF32, offset, n, k);
    packedWeights.set(w.dataId as object, packed);
  }
  return packed;
}

function makeNativeKernels(native: NativeGemm, stock: { batchMatMul: tf.KernelConfig; fusedMatMul: tf.KernelConfig }) {
  function run(
    args: KernelArgs,
    fallback: tf.KernelConfig,
    epilogue: { bias?: tf.TensorInfo; activation: GemmActivation; leakyAlpha: number },
  ): tf.TensorInfo {
    const { backend } = args;
    const call = matMulCall(args);
    if (!call) return callKernel(fallback, args);
    const { a, b, transposeA, transposeB, g } = call;
    const aOffset = heapOffset(backend, a);
    const bOffset = heapOffset(backend, b);
    const biasOffset = epilogue.bias ? heapOffset(backend, epilogue.bias) : 0;
    if (aOffset === undefined || bOffset === undefined || biasOffset === undefined) return callKernel(fallback, args);

    const out = backend.makeOutput(g.outShape, 'float32');
    if (tf.util.sizeFromShape(g.outShape) === 0) return out;
    const outOffset = heapOffset(backend, out);
    if (outOffset === undefined) {
      backend.disposeData(out.dataId);
      return callKernel(fallback, args);
    }
    // Read the view after makeOutput: an allocation may grow the wasm memory,
    // which replaces HEAPF32.
    const heap = backend.wasm.HEAPF32;
    if (transposeB && !transposeA && g.batchB === 1 && !epilogue.bias && epilogue.activation === 'linear' && g.batchA * g.m <= PACKED_B_MAX_ROWS && g.k > 0) {
      native.gemmPacked(heap, aOffset, packedWeight(native, backend, b, bOffset, g.n, g.k), heap, outOffset, g.batchA * g.m, g.n, g.k);
      return out;
    }
    native.gemm(
      {
        a: heap,
        aOffset,
        b: heap,
        bOffset,
        c: heap,
        cOffset: outOffset,
        bias: epilogue.bias ? heap : undefined,
        biasOffset,
        biasLength: epilogue.bias ? tf.util.sizeFromShape(epilogue.bias.shape) : 0,
      },
      { batchA: g.batchA, batchB: g.batchB, m: g.m, n: g.n, k: g.k, transposeA, transposeB },
      { activation: epilogue.activation, leakyAlpha: epilogue.leakyAlpha },
    );
    return out;
  }

  const batchMatMul: tf.KernelFunc = (params) =>
    run(params as unknown as KernelArgs, stock.batchMatMul, { activation: 'linear', leakyAlpha: 0 });

  const fusedMatMul: tf.KernelFunc = (params) => {
    const args = params as unknown as KernelArgs;
    const { bias, preluActivationWeights } = args.inputs;
    const activation = fusableActivations[String(args.attrs.activation ?? 'linear')];
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const n = args.attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    const biasSize = bias ? tf.util.sizeFromShape(bias.shape) : 0;
    // Native epilogue: a scalar bias or one value per output column; anything
    // else (prelu, a bias over rows) stays with the stock kernel.
    const biasFits = !bias || (bias.dtype === 'float32' && (biasSize === 1 || (biasSize === n && bias.shape[bias.shape.length - 1] === n)));
    if (!activation || preluActivationWeights || !biasFits || a.shape.length < 2) {
      return callKernel(stock.fusedMatMul, args);
    }
    return run(args, stock.fusedMatMul, {
      bias,
      activation,
      leakyAlpha: Number(args.attrs.leakyreluAlpha ?? 0.2),
    });
  };
  return { batchMatMul, fusedMatMul };
}

// A [rows * cols] copy of batch item `index` of a [batch, rows, cols] tensor.
function copyBatchItem(backend: WasmBackend, source: tf.TensorInfo, index: number, rows: number, cols: number): tf.TensorInfo {
  const item = backend.makeOutput([1, rows, cols], 'float32');
  const heap = backend.wasm.HEAPF32;
  const from = (heapOffset(backend, source) as number) + index * rows * cols;
  heap.copyWithin(heapOffset(backend, item) as number, from, from + rows * cols);
  return item;
}

// The fast path for BatchMatMul, or for _FusedMatMul (`fused`), whose extra
// inputs (bias, prelu weights) and attributes pass through to the stock
// kernel; a fused product is only rewritten when B is shared by the batch.
function makeFastPathKernel(stock: tf.KernelConfig, fused: boolean): tf.KernelFunc {
  return (params) => {
    const args = params as unknown as KernelArgs;
    const { backend } = args;
    const call = matMulCall(args);
    if (call && call.g.k === 0 && !fused) {
      // An empty sum: zeros (the stock kernel returns uninitialized memory).
      const out = backend.makeOutput(call.g.outShape, 'float32');
      const offset = heapOffset(backend, out) as number;
      backend.wasm.HEAPF32.fill(0, offset, offset + tf.util.sizeFromShape(call.g.outShape));
      return out;
    }
    // Already on the XNNPACK path, or a case the stock kernel must judge.
    if (!call || (!call.transposeA && !call.transposeB && call.g.batchA === 1 && call.g.batchB === 1)) {
      return callKernel(stock, args);
    }
    const { a, b, transposeA, transposeB, g } = call;
    if (tf.util.sizeFromShape(g.outShape) === 0 || g.k === 0 || (fused && g.batchB !== 1)) {
      return callKernel(stock, args);
    }
    const { batchA, batchB, m, n, k } = g;
    const temporaries: tf.TensorInfo[] = [];
    const keep = <T extends tf.TensorInfo>(t: T): T => {
      temporaries.push(t);
      return t;
    };
    const reshape = (x: tf.TensorInfo, shape: number[]) => keep(runKernel(tf.Reshape, { inputs: { x }, backend, attrs: { shape } }));
    const transpose = (x: tf.TensorInfo) => keep(runKernel(tf.Transpose, { inputs: { x }, backend, attrs: { perm: [0, 2, 1] } }));
    const plain = (x: tf.TensorInfo, y: tf.TensorInfo) =>
      callKernel(stock, {
        inputs: { ...args.inputs, a: x, b: y },
        backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    try {
      // op(A) as [batchA, M, K] and op(B) as [batchB, K, N], materialized.
      let a3 = reshape(a, transposeA ? [batchA, k, m] : [batchA, m, k]);
      if (transposeA) a3 = transpose(a3);
      let b3 = reshape(b, transposeB ? [batchB, n, k] : [batchB, k, n]);
      if (transposeB) b3 = transpose(b3);
      if (batchB === 1) {
        // Every A row meets the same B: one [batchA * M, K] x [K, N] product.
        const product = keep(plain(reshape(a3, [1, batchA * m, k]), b3));
        return runKernel(tf.Reshape, { inputs: { x: product }, backend, attrs: { shape: g.outShape } });
      }
      const out = backend.makeOutput(g.outShape, 'float32');
      for (let i = 0; i < batchB; i++) {
        const aItem = batchA === 1 ? a3 : keep(copyBatchItem(backend, a3, i, m, k));
        const bItem = keep(copyBatchItem(backend, b3, i, k, n));
        const product = keep(plain(aItem, bItem));
        const heap = backend.wasm.HEAPF32;
        const from = heapOffset(backend, product) as number;
        heap.copyWithin((heapOffset(backend, out) as number) + i * m * n, from, from + m * n);
        // Free per item, so a long batch does not hold every product at once.
        for (const t of temporaries.splice(temporaries.length - (batchA === 1 ? 2 : 3))) backend.disposeData(t.dataId);
      }
      return out;
    } finally {
      for (const t of temporaries) backend.disposeData(t.dataId);
    }
  };
}

/**
 * Registers the wasm backend's BatchMatMul and _FusedMatMul for `mode`
 * ('native' needs the loaded addon). Call before or after the backend is
 * initialized: the stock kernels' setup functions are kept.
 */
export function useMatMulKernels(mode: MatMulKernelMode, native?: NativeGemm): void {
  const stock = stockKernels();
  if (mode === 'native' && !native) throw new ComputeError("matmul kernel mode 'native' needs the native addon");
  let batchMatMul = stock.batchMatMul;
  let fusedMatMul = stock.fusedMatMul;
  if (mode === 'native' && native) {
    const kernels = makeNativeKernels(native, stock);
    batchMatMul = { ...stock.batchMatMul, kernelFunc: kernels.batchMatMul };
    fusedMatMul = { ...stock.fusedMatMul, kernelFunc: kernels.fusedMatMul };
  } else if (mode === 'fast-path') {
    batchMatMul = { ...stock.batchMatMul, kernelFunc: makeFastPathKernel(stock.batchMatMul, false) };
    fusedMatMul = { ...stock.fusedMatMul, kernelFunc: makeFastPathKernel(stock.fusedMatMul, true) };
  }
  tf.unregisterKernel(tf.BatchMatMul, backendName);
  tf.registerKernel(batchMatMul);
  tf.unregisterKernel(tf._FusedMatMul, backendName);
  tf.registerKernel(fusedMatMul);
  installed = mode;
}

/** The matmul kernels the wasm backend runs now. */
export function matMulKernelMode(): MatMulKernelMode {
  return installed;
}

interface SharingBackend {
  incRef(dataId: tf.DataId): void;
}

/**
 * Registers the wasm backend's Identity, and Cast to the same dtype, as a
 * second reference to the input's memory (what its Reshape and the cpu
 * backend's Identity do) instead of a copy. tfjs tensors never change their
 * memory, and the engine clones (Identity) every tensor it saves for a
 * gradient, so the stock copies cost a pass over each saved activation and
 * weight per training step. Strings and real casts keep the stock kernels. Idempotent.
 */
export function useSharedIdentity(): void {
  const stock = { identity: stockKernel(tf.Identity), cast: stockKernel(tf.Cast) };
  // Strings live outside the heap.
  const share = (params: Parameters<tf.KernelFunc>[0], original: tf.KernelConfig, sameDtype: boolean) => {
    const x = params.inputs.x as tf.TensorInfo;
    if (!sameDtype || x.dtype === 'string') return original.kernelFunc(params);
    (params.backend as unknown as SharingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  replaceKernel(tf.Identity, (params) => share(params, stock.identity, true));
  replaceKernel(tf.Cast, (params) => share(params, stock.cast, (params.inputs.x as tf.TensorInfo).dtype === params.attrs?.dtype));
}

/**
 * Registers the wasm backend's GatherV2 (float32 or int32, no batch
 * dimensions, slices of at least 8 values: an embedding lookup, rows of the
 * rotary tables) as one memmove of each gathered slice inside the heap; the
 * stock kernel takes about 25 ns per value (55 ms for 2048 rows of 256).
 * Other gathers keep the stock kernel. Idempotent.
 */
export function useFastGather(): void {
  const stock = stockKernel(tf.GatherV2);
  const gather: tf.KernelFunc = (params) => {
    const args = params as unknown as KernelArgs;
    const x = args.inputs.x as tf.TensorInfo;
    const indices = args.inputs.indices as tf.TensorInfo;
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
    const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
    const xOffset = heapOffset(args.backend, x);
    const count = tf.util.sizeFromShape(indices.shape);
    if (Number(args.attrs.batchDims ?? 0) !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || indices.dtype !== 'int32' ||
      inner < 8 || xOffset === undefined || count === 0 || outer === 0) {
      return stock.kernelFunc(params);
    }
    const axisSize = x.shape[axis];
    const out = args.backend.makeOutput([...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], x.dtype);
    const heap = args.backend.wasm.HEAPF32; // after makeOutput, which may grow the memory
    const outOffset = heapOffset(args.backend, out) as number;
    const indexOffset = heapOffset(args.backend, indices) as number;
    const index = new Int32Array(heap.buffer, indexOffset * 4, count);
    for (let i = 0; i < count; i++) {
      if (!(index[i] >= 0 && index[i] < axisSize)) {
        args.backend.disposeData(out.dataId);
        throw new ComputeError(`GatherV2: the index value ${index[i]} is not in [0, ${axisSize - 1}]`);
      }
    }
    for (let o = 0; o < outer; o++) {
      const from = xOffset + o * axisSize * inner;
      const to = outOffset + o * count * inner;
      for (let i = 0; i < count; i++) heap.copyWithin(to + i * inner, from + index[i] * inner, from + (index[i] + 1) * inner);
    }
    return out;
  };
  replaceKernel(tf.GatherV2, gather);
}

/**
 * Registers the wasm backend's Slice (float32 or int32) as memmoves inside
 * the heap, one per contiguous run of the output. The stock kernel first
 * copies the whole input out of the heap (readSync: a typed-array slice,
 * about 3 ms per call whatever the slice's size), which made taking blocks of
 * rows (the scorer's logits, tf.split) cost more than the products between
 * them. Strings keep the stock kernel. SplitV, made of the stock Slice, is
 * replaced by these slices. Idempotent.
 */
export function useFastSlice(): void {
  const stock = stockKernel(tf.Slice);
  const slice: tf.KernelFunc = (params) => {
    const args = params as unknown as KernelArgs;
    const x = args.inputs.x as tf.TensorInfo;
    const xOffset = heapOffset(args.backend, x);
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || xOffset === undefined || x.shape.length === 0) return stock.kernelFunc(params);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
    const out = args.backend.makeOutput(size, x.dtype);
    const count = tf.util.sizeFromShape(size);
    if (count === 0) return out;
    const heap = args.backend.wasm.HEAPF32; // after makeOutput, which may grow the memory
    const outOffset = heapOffset(args.backend, out) as number;
    const rank = x.shape.length;
    const strides = tf.util.computeStrides(x.shape); // rank - 1 entries
    const stride = (d: number) => (d === rank - 1 ? 1 : strides[d]);
    // The output is runs of `run` values that are contiguous in the input:
    // the trailing dimensions taken whole, and the first one that is not.
    let inner = rank - 1;
    while (inner > 0 && begin[inner] === 0 && size[inner] === x.shape[inner]) inner--;
    const run = size[inner] * (inner === rank - 1 ? 1 : strides[inner]);
    let start = 0;
    for (let d = 0; d < rank; d++) start += begin[d] * stride(d);
    // Odometer over the dimensions before `inner`.
    const index = new Array<number>(inner).fill(0);
    for (let to = outOffset; to < outOffset + count; to += run) {
      let from = xOffset + start;
      for (let d = 0; d < inner; d++) from += index[d] * stride(d);
      heap.copyWithin(to, from, from + run);
      for (let d = inner - 1; d >= 0; d--) {
        if (++index[d] < size[d]) break;
        index[d] = 0;
      }
    }
    return out;
  };
  replaceKernel(tf.Slice, slice);
  // SplitV (tf.split, the gradient of tf.concat) is slices along one axis; the
  // stock kernel calls the stock Slice directly, so it is replaced too.
  const split: tf.KernelFunc = (params) => {
    const args = params as unknown as KernelArgs;
    const x = args.inputs.x as tf.TensorInfo;
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs.numOrSizeSplits as number | number[], axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((piece) => {
      const out = slice({ ...params, attrs: { begin: [...begin], size: x.shape.map((extent, d) => (d === axis ? piece : extent)) } }) as tf.TensorInfo;
      begin[axis] += piece;
      return out;
    });
  };
  replaceKernel(tf.SplitV, split);
}

/**
 * Writes `rows` [B, H, T, Dh] into slots starts[b] .. starts[b] + T - 1 of
 * `target` [B, H, S, Dh] IN PLACE, for a KV cache that owns `target` alone.
 * Only on the wasm backend, when both live in its heap as float32 and no
 * other tensor shares target's memory (its data's reference count is 1);
 * returns false, writing nothing, otherwise (the caller then makes a new
 * tensor, e.g. with tf.tensorScatterUpdate). tfjs tensors are otherwise
 * immutable: use it only on a tensor nothing else can observe.
 */
export function writeSlotsInPlace(target: tf.Tensor4D, rows: tf.Tensor4D, starts: readonly number[]): boolean {
  if (tf.getBackend() !== backendName || target.dtype !== 'float32' || rows.dtype !== 'float32') return false;
  const [B, H, S, Dh] = target.shape;
  const [rb, rh, T, rd] = rows.shape;
  if (rb !== B || rh !== H || rd !== Dh || starts.length !== B) {
    throw new ComputeError(`writeSlotsInPlace: rows [${rows.shape}] do not fit target [${target.shape}] with ${starts.length} starts`);
  }
  for (const start of starts) {
    if (!(Number.isInteger(start) && start >= 0 && start + T <= S)) {
      throw new ComputeError(`writeSlotsInPlace: slots ${start}..${start + T - 1} are outside [0, ${S})`);
    }
  }
  const backend = tf.engine().backend as unknown as WasmBackend;
  const targetOffset = heapOffset(backend, target);
  const rowsOffset = heapOffset(backend, rows);
  if (!heldAlone(backend, target) || targetOffset === undefined || rowsOffset === undefined) return false;
  const heap = backend.wasm.HEAPF32;
  const block = T * Dh;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const from = rowsOffset + (b * H + h) * block;
      heap.copyWithin(targetOffset + ((b * H + h) * S + starts[b]) * Dh, from, from + block);
    }
  }
  return true;
}

/** Whether `t` lives in the wasm heap as the only tensor on its memory (so writing it in place is invisible to others). */
export function soleOwner(t: tf.Tensor): boolean {
  if (tf.getBackend() !== backendName) return false;
  return heldAlone(tf.engine().backend as unknown as WasmBackend, t);
}
