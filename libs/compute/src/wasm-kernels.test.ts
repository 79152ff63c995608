// tfjs matmuls on the wasm backend with cream's kernels: values against the
// float64 reference and the stock kernel, gradients against finite
// differences, and no leaked tensors or wasm allocations.
import { createRequire } from 'node:module';

import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import { initCompute } from './backend';
import { WasmMemoryError } from './errors';
import { loadNativeGemm, nativeAddonPath, NativeGemm } from './native';
import { referenceGemm } from './reference-gemm';
import { randomFloats, relativeError, seededUniform } from './testing-random';
import { PACKED_B_MAX_ROWS, useMatMulKernels, WASM_MEMORY_LIMIT_BYTES, writeSlotsInPlace, type MatMulKernelMode, type WasmBackend } from './wasm-kernels';

// [aShape, bShape, transposeA, transposeB]: batched, broadcast both ways, rank 4.
const cases: Array<[number[], number[], boolean, boolean]> = [
  [[17, 65], [65, 3], false, false],
  [[65, 17], [65, 3], true, false],
  [[17, 65], [3, 65], false, true],
  [[65, 17], [3, 65], true, true],
  [[4, 16, 8], [4, 8, 12], false, false],
  [[4, 8, 16], [4, 12, 8], true, true],
  [[3, 17, 5], [5, 9], false, false],
  [[3, 5, 17], [1, 9, 5], true, true],
  [[1, 17, 5], [3, 5, 9], false, false],
  [[17, 5], [3, 9, 5], false, true],
  [[2, 3, 7, 5], [2, 3, 5, 4], false, false],
  [[2, 3, 5, 7], [5, 4], true, false],
];

function geometry(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean) {
  const m = transposeA ? aShape[aShape.length - 1] : aShape[aShape.length - 2];
  const k = transposeA ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
  const n = transposeB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
  const batchA = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = bShape.slice(0, -2).reduce((x, y) => x * y, 1);
  return { batchA, batchB, m, n, k, transposeA, transposeB };
}

function backendDataIds(): number {
  return (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();
}

const native = loadNativeGemm();
const modes: MatMulKernelMode[] = ['native', 'fast-path'];

describe('wasm matmul kernels', () => {
  beforeAll(async () => {
    if (!native.ok) throw new Error(native.reason);
    await initCompute({ env: { CREAM_BACKEND: 'wasm-native' } });
  });

  function use(mode: MatMulKernelMode): void {
    useMatMulKernels(mode, native.ok ? native.native : undefined);
  }

  for (const mode of modes) {
    it(`${mode}: tf.matMul equals the float64 reference and the stock kernel`, () => {
      const random = seededUniform(5);
      for (const [aShape, bShape, transposeA, transposeB] of cases) {
        const shape = geometry(aShape, bShape, transposeA, transposeB);
        const aValues = randomFloats(tf.util.sizeFromShape(aShape), random);
        const bValues = randomFloats(tf.util.sizeFromShape(bShape), random);
        const a = tf.tensor(aValues, aShape);
        const b = tf.tensor(bValues, bShape);
        use('stock');
        const stock = tf.matMul(a, b, transposeA, transposeB);
        use(mode);
        const ours = tf.matMul(a, b, transposeA, transposeB);
        const label = `${mode} ${aShape} x ${bShape} ${transposeA} ${transposeB}`;
        expect(ours.shape, label).toEqual(stock.shape);
        expect(relativeError(ours.dataSync(), referenceGemm(aValues, bValues, shape)), label).toBeLessThan(1e-5);
        // The stock kernel reads batch 0 of A for every item when only B is
        // batched (its naive loop takes A's batch size); compare where it is right.
        if (shape.batchA === Math.max(shape.batchA, shape.batchB)) {
          expect(relativeError(ours.dataSync(), stock.dataSync()), label).toBeLessThan(1e-5);
        }
        tf.dispose([a, b, stock, ours]);
      }
      use('native');
    });
  }

  it('refuses a tensor the wasm memory cannot hold with a WasmMemoryError, writing nothing, and keeps working', () => {
    const before = tf.memory().numTensors;
    const dataIds = backendDataIds();
    const kept = tf.tensor1d([1, 2, 3]);
    const backend = tf.backend() as unknown as WasmBackend;
    // 3 GiB taken (never written, so never resident), then a 1.5 GiB tensor:
    // together more than the memory can grow to (the stock backend would
    // place the tensor at address 0).
    const bytes = 1.5 * 2 ** 30;
    const taken = [backend.wasm._malloc?.(bytes) ?? 0, backend.wasm._malloc?.(bytes) ?? 0];
    expect(Math.min(...taken)).toBeGreaterThan(0);
    let error: unknown;
    try {
      backend.makeOutput([bytes / 4], 'float32');
    } catch (caught) {
      error = caught;
    } finally {
      for (const address of taken) backend.wasm._free?.(address);
    }
    expect(error).toBeInstanceOf(WasmMemoryError);
    const memoryError = error as WasmMemoryError;
    expect(memoryError.requestedBytes).toBe(bytes);
    expect(memoryError.limitBytes).toBe(WASM_MEMORY_LIMIT_BYTES);
    expect(memoryError.heapBytes).toBeLessThanOrEqual(WASM_MEMORY_LIMIT_BYTES);
    expect(memoryError.message).toMatch(/^the wasm backend's memory is full: 1536 MiB more for a tensor did not fit \(memory at \d+ MiB of wasm32's 4096 MiB\)\. Work on fewer tokens at once/);
    // 2 GiB or more at once is refused without asking malloc (it answered past the memory's end).
    expect(() => backend.makeOutput([2 ** 29], 'float32')).toThrow(
      /^the wasm backend's memory is full: a tensor of 2048 MiB is more than it allocates at once \(2048 MiB\)\. Work on fewer tokens/,
    );
    // Nothing was placed over the module's data: what lived reads back, new tensors work.
    expect(Array.from(kept.dataSync())).toEqual([1, 2, 3]);
    const sum = tf.tidy(() => tf.add(kept, tf.ones([3])));
    expect(Array.from(sum.dataSync())).toEqual([2, 3, 4]);
    tf.dispose([kept, sum]);
    expect(tf.memory().numTensors).toBe(before);
    expect(backendDataIds()).toBe(dataIds);
  });

  it('native: runs the addon on the wasm heap itself, for batched and transposed products', () => {
    // A NativeGemm over the real addon that records what each call received.
    const raw = createRequire(__filename)(nativeAddonPath) as {
      gemm: (...args: unknown[]) => void;
      info: () => unknown;
      configure: (options: unknown) => void;
    };
    const calls: unknown[][] = [];
    const recording = new NativeGemm({
      info: () => raw.info(),
      configure: (options: unknown) => raw.configure(options),
      gemm: (...args: unknown[]) => {
        calls.push(args);
        raw.gemm(...args);
      },
    } as unknown as ConstructorParameters<typeof NativeGemm>[0]);
    useMatMulKernels('native', recording);
    try {
      const heap = () => (tf.engine().backend as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32;
      tf.tidy(() => {
        const a = tf.ones([4, 8, 16]);
        const b = tf.ones([4, 12, 8]);
        const y = tf.matMul(a, b, true, true); // [4, 16, 12]
        expect(Array.from(y.dataSync().slice(0, 2))).toEqual([8, 8]);
      });
      expect(calls).toHaveLength(1);
      const [aArray, , bArray, , cArray, , batchA, batchB, m, n, k, transposeA, transposeB] = calls[0];
      // In place: all three operands are the wasm memory's own Float32Array view.
      expect(aArray).toBe(heap());
      expect(bArray).toBe(heap());
      expect(cArray).toBe(heap());
      expect([batchA, batchB, m, n, k, transposeA, transposeB]).toEqual([4, 4, 16, 12, 8, true, true]);
    } finally {
      use('native');
    }
  });

  for (const mode of modes) {
    it(`${mode}: empty operands give empty or zero products`, () => {
      use(mode);
      tf.tidy(() => {
        expect(tf.matMul(tf.zeros([0, 3]), tf.ones([3, 4])).shape).toEqual([0, 4]);
        expect(tf.matMul(tf.zeros([3, 0, 2]), tf.ones([3, 2, 5])).shape).toEqual([3, 0, 5]);
        // K = 0: every output is an empty sum.
        const empty = tf.matMul(tf.ones([2, 0]), tf.ones([0, 3]));
        expect(Array.from(empty.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      });
      use('native');
    });
  }

  for (const mode of modes) {
    it(`${mode}: fused matMul with bias and activation equals the unfused ops`, () => {
      use(mode);
      fusedMatchesUnfused(false);
      fusedMatchesUnfused(true);
      use('native');
    });
  }

  function fusedMatchesUnfused(transposed: boolean): void {
    const random = seededUniform(9);
    const a = tf.tensor(randomFloats(2 * 6 * 5, random), transposed ? [2, 5, 6] : [2, 6, 5]);
    const b = tf.tensor(randomFloats(5 * 7, random), transposed ? [7, 5] : [5, 7]);
    const bias = tf.tensor(randomFloats(7, random), [7]);
    for (const activation of ['linear', 'relu', 'relu6', 'sigmoid', 'elu', 'leakyrelu'] as const) {
      const fused = tf.fused.matMul({ a, b, transposeA: transposed, transposeB: transposed, bias, activation, leakyreluAlpha: 0.1 });
      const plain = tf.tidy(() => {
        const x = tf.add(tf.matMul(a, b, transposed, transposed), bias);
        switch (activation) {
          case 'relu':
            return tf.relu(x);
          case 'relu6':
            return tf.relu6(x);
          case 'sigmoid':
            return tf.sigmoid(x);
          case 'elu':
            return tf.elu(x);
          case 'leakyrelu':
            return tf.leakyRelu(x, 0.1);
          default:
            return x;
        }
      });
      expect(relativeError(fused.dataSync(), plain.dataSync()), `${activation} transposed=${transposed}`).toBeLessThan(1e-5);
      tf.dispose([fused, plain]);
    }
    tf.dispose([a, b, bias]);
  }

  for (const mode of modes) {
    it(`${mode}: tf.grad through matMul equals finite differences`, () => {
      use(mode);
      const random = seededUniform(13);
      // Broadcast by rank and by a batch of 1 on either side: the gradient
      // registered in gradients.ts sums the broadcast dims back.
      for (const [aShape, bShape, transposeA, transposeB] of [cases[3], cases[5], cases[6], cases[7], cases[8], cases[9], cases[11]]) {
        const x = tf.tensor(randomFloats(tf.util.sizeFromShape(aShape), random), aShape);
        const w = tf.tensor(randomFloats(tf.util.sizeFromShape(bShape), random), bShape);
        // A smooth scalar loss of both operands.
        const loss = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.sin(tf.matMul(p, q, transposeA, transposeB)));
        const [gx, gw] = tf.grads(loss)([x, w]);
        for (const [which, tensor, gradient] of [['x', x, gx], ['w', w, gw]] as const) {
          const values = tensor.dataSync().slice();
          const analytic = gradient.dataSync();
          const eps = 1e-2;
          // A handful of coordinates per operand keeps the test quick.
          for (const index of [0, Math.floor(values.length / 2), values.length - 1]) {
            const at = (delta: number) =>
              tf.tidy(() => {
                const shifted = values.slice();
                shifted[index] += delta;
                const moved = tf.tensor(shifted, tensor.shape);
                return which === 'x' ? loss(moved, w).dataSync()[0] : loss(x, moved).dataSync()[0];
              });
            const numeric = (at(eps) - at(-eps)) / (2 * eps);
            expect(Math.abs(numeric - analytic[index]), `${mode} d/d${which}[${index}] ${aShape} ${bShape}`).toBeLessThan(
              2e-2 * Math.max(1, Math.abs(numeric)),
            );
          }
        }
        tf.dispose([x, w, gx, gw]);
      }
      use('native');
    });
  }

  for (const mode of modes) {
    it(`${mode}: leaks no tensors and no wasm allocations`, () => {
      use(mode);
      const random = seededUniform(17);
      const tensorsBefore = tf.memory().numTensors;
      const dataBefore = backendDataIds();
      for (const [transposeA, transposeB] of [[false, false], [true, true], [true, false], [false, true]]) {
        tf.tidy(() => {
          const a = tf.tensor(randomFloats(3 * 5 * 17, random), transposeA ? [3, 17, 5] : [3, 5, 17]);
          const b = tf.tensor(randomFloats(3 * 17 * 9, random), transposeB ? [3, 9, 17] : [3, 17, 9]);
          const w = tf.tensor(randomFloats(17 * 9, random), transposeB ? [9, 17] : [17, 9]);
          const loss = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.matMul(p, q, transposeA, transposeB));
          tf.grads(loss)([a, b]);
          tf.grads(loss)([a, w]);
          return tf.sum(tf.matMul(a, b, transposeA, transposeB));
        }).dispose();
      }
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      expect(backendDataIds()).toBe(dataBefore);
      use('native');
    });
  }

  it('Identity and same-dtype Cast share the input memory; real casts and gradients still work', () => {
    const x = tf.tensor2d([[1.5, -2], [3, 4]]);
    const before = backendDataIds();
    const clone = tf.clone(x);
    const same = tf.cast(x, 'float32');
    expect(backendDataIds()).toBe(before); // no new wasm allocation
    expect(Array.from(clone.dataSync())).toEqual([1.5, -2, 3, 4]);
    x.dispose(); // the others keep the shared memory alive
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3, 4]);
    const ints = tf.cast(clone, 'int32');
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.dataSync())).toEqual([1, -2, 3, 4]);
    // The engine clones what a gradient saves: tf.grad still sees the right values.
    const gradient = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(v, v)))(same);
    expect(Array.from(gradient.dataSync())).toEqual([3, -4, 6, 8]);
    tf.dispose([clone, same, ints, gradient]);
    expect(backendDataIds()).toBe(before - 1);
  });

  it('GatherV2 by slice copies equals an index-by-index gather, on any axis, and rejects bad indices', () => {
    const random = seededUniform(31);
    const [A, B, C] = [3, 11, 9];
    const values = randomFloats(A * B * C, random);
    const x = tf.tensor3d(values, [A, B, C]);
    const indices = [[4, 0], [10, 4], [7, 7]];
    const byAxis1 = tf.gather(x, tf.tensor2d(indices, [3, 2], 'int32'), 1); // [A, 3, 2, C]
    expect(byAxis1.shape).toEqual([A, 3, 2, C]);
    const want: number[] = [];
    for (let a = 0; a < A; a++) {
      for (const index of indices.flat()) for (let c = 0; c < C; c++) want.push(values[(a * B + index) * C + c]);
    }
    expect(Array.from(byAxis1.dataSync())).toEqual(Array.from(Float32Array.from(want)));
    const ints = tf.tensor2d(Array.from({ length: 4 * 8 }, (_, i) => i - 5), [4, 8], 'int32');
    const rows = tf.gather(ints, tf.tensor1d([3, 1, 3], 'int32'));
    expect(rows.dtype).toBe('int32');
    expect(Array.from(rows.dataSync())).toEqual([...[19, 20, 21, 22, 23, 24, 25, 26], ...[3, 4, 5, 6, 7, 8, 9, 10], ...[19, 20, 21, 22, 23, 24, 25, 26]]);
    const bad = tf.tensor1d([0, 11], 'int32');
    const before = backendDataIds();
    expect(() => tf.gather(x, bad, 1)).toThrow(/index value 11 is not in \[0, 10\]/);
    expect(backendDataIds()).toBe(before); // no output left behind
    tf.dispose([x, byAxis1, ints, rows, bad]);
  });

  it('Slice by heap copies equals an element-by-element slice, on every rank and axis pattern', () => {
    const random = seededUniform(37);
    const shape = [3, 4, 5, 6];
    const values = randomFloats(3 * 4 * 5 * 6, random);
    const x = tf.tensor4d(values, shape as [number, number, number, number]);
    const at = (i: number[]) => values[((i[0] * 4 + i[1]) * 5 + i[2]) * 6 + i[3]];
    const slices: Array<[number[], number[]]> = [
      [[0, 0, 0, 0], [3, 4, 5, 6]], // whole
      [[1, 0, 0, 0], [2, 4, 5, 6]], // leading rows: one run
      [[0, 1, 0, 0], [3, 2, 5, 6]], // a run per outer index
      [[0, 0, 2, 1], [3, 4, 2, 4]], // innermost partial: many short runs
      [[2, 3, 4, 5], [1, 1, 1, 1]], // one value
      [[0, 0, 0, 0], [3, 4, 5, 0]], // empty
    ];
    for (const [begin, size] of slices) {
      const got = tf.slice(x, begin, size);
      const want: number[] = [];
      for (let a = 0; a < size[0]; a++)
        for (let b = 0; b < size[1]; b++)
          for (let c = 0; c < size[2]; c++)
            for (let d = 0; d < size[3]; d++) want.push(at([begin[0] + a, begin[1] + b, begin[2] + c, begin[3] + d]));
      expect(got.shape).toEqual(size);
      expect(Array.from(got.dataSync())).toEqual(Array.from(Float32Array.from(want)));
      got.dispose();
    }
    const ints = tf.tensor2d(Array.from({ length: 20 }, (_, i) => i - 7), [4, 5], 'int32');
    const cut = tf.slice(ints, [1, 2], [2, -1]);
    expect(cut.dtype).toBe('int32');
    expect(Array.from(cut.dataSync())).toEqual([0, 1, 2, 5, 6, 7]);
    const [left, right] = tf.split(ints, [2, 3], 1); // SplitV, made of these slices
    expect(Array.from(left.dataSync())).toEqual([-7, -6, -2, -1, 3, 4, 8, 9]);
    expect(Array.from(right.dataSync())).toEqual([-5, -4, -3, 0, 1, 2, 5, 6, 7, 10, 11, 12]);
    // Even pieces of every axis of x against tf.slice; the gradient of tf.concat is a split.
    for (const axis of [0, 1, 2, 3]) {
      const pieces = tf.split(x, [3, 2, 5, 3][axis], axis);
      const width = shape[axis] / pieces.length;
      pieces.forEach((piece, i) => {
        const begin = [0, 0, 0, 0].map((_, d) => (d === axis ? i * width : 0));
        const size = shape.map((extent, d) => (d === axis ? width : extent));
        expect(Array.from(piece.dataSync()), `axis ${axis} piece ${i}`).toEqual(Array.from(tf.slice(x, begin, size).dataSync()));
      });
      tf.dispose(pieces);
    }
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.concat([a, b], 0), tf.reshape(tf.range(0, 10), [5, 2]))))([tf.ones([2, 2]), tf.ones([3, 2])]);
    expect(Array.from(grads[1].dataSync())).toEqual([4, 5, 6, 7, 8, 9]);
    tf.dispose(grads);
    const scalar = tf.slice(tf.tensor1d([4, 5, 6]), [1], [1]);
    expect(Array.from(scalar.dataSync())).toEqual([5]);
    tf.dispose([x, ints, cut, left, right, scalar]);
  });

  it('native: few-row products against a reused transposed B read a packed copy, with the same values', () => {
    use('native');
    const random = seededUniform(41);
    // [rows of A (or [batch, rows]), n, k]: n not a multiple of the 16-wide panels, k odd, one row to the limit.
    const shapes: Array<[number[], number, number]> = [
      [[1], 5, 3],
      [[3], 17, 9],
      [[8], 33, 64],
      [[9], 250, 37],
      [[2, 3], 40, 21],
      [[PACKED_B_MAX_ROWS], 70, 130],
    ];
    for (const [rows, n, k] of shapes) {
      const w = tf.tensor2d(randomFloats(n * k, random), [n, k]);
      const m = rows.reduce((x, y) => x * y, 1);
      const label = `[${rows}, ${k}] x [${n}, ${k}]^T`;
      // Three calls with fresh A: the first packs B, the others reuse the copy.
      for (let call = 0; call < 3; call++) {
        const aValues = randomFloats(m * k, random);
        const a = tf.tensor(aValues, [...rows, k]);
        const y = tf.matMul(a, w, false, true);
        expect(y.shape, label).toEqual([...rows, n]);
        const want = referenceGemm(aValues, w.dataSync() as Float32Array, { batchA: 1, batchB: 1, m, n, k, transposeA: false, transposeB: true });
        expect(relativeError(y.dataSync(), want), `${label} call ${call}`).toBeLessThan(1e-5);
        tf.dispose([a, y]);
      }
      w.dispose();
    }
    // A new weight at the same heap offset never reads the old one's packed copy.
    for (let round = 0; round < 3; round++) {
      const wValues = randomFloats(20 * 16, random);
      const w = tf.tensor2d(wValues, [20, 16]);
      const aValues = randomFloats(2 * 16, random);
      const a = tf.tensor2d(aValues, [2, 16]);
      for (let call = 0; call < 2; call++) {
        const y = tf.matMul(a, w, false, true);
        const want = referenceGemm(aValues, wValues, { batchA: 1, batchB: 1, m: 2, n: 20, k: 16, transposeA: false, transposeB: true });
        expect(relativeError(y.dataSync(), want), `round ${round}`).toBeLessThan(1e-5);
        y.dispose();
      }
      tf.dispose([a, w]);
    }
  });

  it('writeSlotsInPlace writes rows into a sole-owner tensor, and refuses shared memory', () => {
    const cache = tf.tidy(() => tf.add(tf.zeros([2, 2, 4, 3]), 0) as tf.Tensor4D); // [B, H, S, Dh], its own memory
    const rows = tf.tensor4d(Array.from({ length: 2 * 2 * 1 * 3 }, (_, i) => i + 1), [2, 2, 1, 3]);
    expect(writeSlotsInPlace(cache, rows, [1, 3])).toBe(true);
    const got = cache.arraySync();
    expect(got[0][0][1]).toEqual([1, 2, 3]);
    expect(got[0][1][1]).toEqual([4, 5, 6]);
    expect(got[1][0][3]).toEqual([7, 8, 9]);
    expect(got[1][1][3]).toEqual([10, 11, 12]);
    expect(got[0][0][0]).toEqual([0, 0, 0]);
    expect(got[1][0][1]).toEqual([0, 0, 0]);
    expect(() => writeSlotsInPlace(cache, rows, [0, 4])).toThrow(/slots 4\.\.4 are outside \[0, 4\)/);
    const view = tf.clone(cache); // shares the memory (Identity)
    expect(writeSlotsInPlace(cache, rows, [0, 0])).toBe(false);
    expect(view.arraySync()[0][0][0]).toEqual([0, 0, 0]); // untouched
    tf.dispose([cache, rows, view]);
  });

  it('Transpose keeping the last axis and same-shape Add run natively, equal to index-by-index results, gradients included', () => {
    const random = seededUniform(43);
    const shape = [3, 5, 4, 9];
    const values = randomFloats(3 * 5 * 4 * 9, random);
    const x = tf.tensor4d(values, shape as [number, number, number, number]);
    const strides = [5 * 4 * 9, 4 * 9, 9, 1];
    for (const perm of [[0, 2, 1, 3], [2, 0, 1, 3], [1, 2, 0, 3], [0, 1, 2, 3], [0, 1, 3, 2]]) {
      const y = tf.transpose(x, perm);
      const outShape = perm.map((p) => shape[p]);
      const want: number[] = [];
      const index = [0, 0, 0, 0];
      for (index[0] = 0; index[0] < outShape[0]; index[0]++)
        for (index[1] = 0; index[1] < outShape[1]; index[1]++)
          for (index[2] = 0; index[2] < outShape[2]; index[2]++)
            for (index[3] = 0; index[3] < outShape[3]; index[3]++) want.push(values[index.reduce((at, i, d) => at + i * strides[perm[d]], 0)]);
      expect(y.shape).toEqual(outShape);
      expect(Array.from(y.dataSync()), `perm ${perm}`).toEqual(Array.from(Float32Array.from(want)));
      y.dispose();
    }
    // Moving only axes of size 1 shares the memory, like a reshape.
    const column = tf.tensor3d(values.slice(0, 2 * 9), [1, 2, 9]);
    const dataBefore = backendDataIds();
    const swapped = tf.transpose(column, [1, 0, 2]);
    expect(backendDataIds()).toBe(dataBefore);
    expect(swapped.shape).toEqual([2, 1, 9]);
    expect(Array.from(swapped.dataSync())).toEqual(Array.from(column.dataSync()));
    tf.dispose([column, swapped]);
    const ints = tf.tensor3d(Array.from({ length: 2 * 3 * 8 }, (_, i) => i), [2, 3, 8], 'int32');
    const moved = tf.transpose(ints, [1, 0, 2]);
    expect(moved.dtype).toBe('int32');
    expect(Array.from(moved.dataSync()).slice(0, 16)).toEqual([...Array.from({ length: 8 }, (_, i) => i), ...Array.from({ length: 8 }, (_, i) => 24 + i)]);
    // Add: native from 1,024 values (split across the pool from 32,768).
    for (const n of [1500, 70001]) {
      const [first, second] = [randomFloats(n, random), randomFloats(n, random)];
      const sum = tf.tidy(() => tf.add(tf.tensor1d(first), tf.tensor1d(second)));
      expect(Array.from(sum.dataSync()), `add ${n}`).toEqual(Array.from(Float32Array.from(first.map((v, i) => v + second[i]))));
      sum.dispose();
    }
    // Gradients through both still come from tfjs-core.
    const probe = tf.tensor4d(randomFloats(values.length, random), [3, 4, 5, 9]);
    const gradient = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.transpose(tf.add(v, v), [0, 2, 1, 3]), probe)))(x);
    const back = tf.transpose(probe, [0, 2, 1, 3]).dataSync();
    expect(relativeError(gradient.dataSync(), Float32Array.from(back, (v) => 2 * v))).toBeLessThan(1e-6);
    tf.dispose([x, ints, moved, probe, gradient]);
  });

  it('ScatterNd adding rows along the first axis runs natively: repeated indices add up, in index order, on 1 and 2 threads; an index outside the rows throws', () => {
    const random = seededUniform(47);
    const native = loadNativeGemm();
    if (!native.ok) throw new Error(native.reason);
    const threads = native.native.info().threads;
    // Rows of 3 x 5 values, 9 and 5000 updates into 7 and 600 rows (the larger split across the pool).
    for (const [m, rows] of [[9, 7], [5000, 600]]) {
      const indices = Array.from({ length: m }, (_, i) => (i * 13 + (i % 4)) % rows);
      const updates = randomFloats(m * 15, random);
      const want = new Float32Array(rows * 15);
      indices.forEach((row, i) => {
        for (let j = 0; j < 15; j++) want[row * 15 + j] += updates[i * 15 + j];
      });
      const sums = [1, 2].map((t) => {
        native.native.configure({ threads: t });
        return tf.tidy(() => tf.scatterND(tf.tensor2d(indices, [m, 1], 'int32'), tf.tensor3d(updates, [m, 3, 5]), [rows, 3, 5]).dataSync());
      });
      native.native.configure({ threads });
      expect(Array.from(sums[0]), `${m} into ${rows}`).toEqual(Array.from(want));
      expect(Array.from(sums[1])).toEqual(Array.from(sums[0]));
    }
    expect(() => tf.tidy(() => tf.scatterND(tf.tensor2d([0, 7], [2, 1], 'int32'), tf.ones([2, 4]), [7, 4]))).toThrow(/index 7 at row 1 is outside \[0, 7\)/);
  });
});
