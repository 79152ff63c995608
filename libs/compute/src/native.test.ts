// The native GEMM against the float64 reference: every kernel this CPU runs,
// odd sizes, all transpose combinations, batch broadcast both ways, the fused
// epilogue, and argument checking.
import { describe, expect, it } from 'vitest';

import { GemmShapeError } from './errors';
import { gemm, loadNativeGemm, nativeCallTime, type NativeGemm } from './native';
import { referenceGemm, type GemmActivation, type GemmShape } from './reference-gemm';
import { randomFloats, relativeError, seededUniform } from './testing-random';

function nativeOrFail(): NativeGemm {
  const loaded = loadNativeGemm();
  // npm ci builds the addon on this machine kind; a missing addon is a failure here.
  if (!loaded.ok) throw new Error(loaded.reason);
  return loaded.native;
}

// [batchA, batchB, m, n, k]: sizes 1, 3, 17, 65, 257, K past one 256-deep block.
const shapes: Array<[number, number, number, number, number]> = [
  [1, 1, 1, 1, 1],
  [1, 1, 3, 17, 65],
  [2, 1, 17, 65, 3],
  [1, 3, 65, 3, 17],
  [3, 3, 17, 257, 65],
  [1, 1, 257, 65, 17],
  [2, 2, 65, 1, 257],
  [1, 1, 65, 257, 300],
  [4, 1, 3, 65, 1],
  // Far deeper than wide (a weight gradient): split by depth across threads,
  // a transposed A read in place in whole panels (149 = 24 x 6 + 5 rows: the
  // last panel packed), depth past several KC blocks.
  [1, 1, 149, 37, 1100],
  // The same wider than tall: C^T = B^T . A by depth, then transposed into C.
  [1, 1, 37, 149, 1100],
  // Few rows: B is read in place, with a packed partial last panel.
  [1, 1, 5, 100, 300],
  [3, 1, 7, 64, 33],
  // Few rows against a transposed B: dot products of rows, in blocks of 64 B
  // rows; at most 3 rows against an untransposed B: rows of B scaled and summed.
  [1, 3, 5, 70, 40],
  [2, 2, 1, 130, 64],
  [3, 3, 3, 67, 130],
  // A^T . B far deeper than wide (weight gradients): split by depth across threads, partials summed.
  [1, 1, 20, 30, 1100],
  [1, 1, 13, 70, 2300],
];

describe('native gemm', () => {
  const native = nativeOrFail();
  const isas = native.info().supported;

  it('reports its kernel and threads', () => {
    const info = native.info();
    expect(info.supported).toContain('generic');
    expect(info.supported).toContain(info.isa);
    expect(info.threads).toBeGreaterThanOrEqual(1);
  });

  it('measures the FP32 peak of each kernel, and rejects a bad duration', () => {
    const before = native.info();
    try {
      const peaks = new Map<string, number>();
      for (const isa of isas) {
        native.configure({ isa });
        peaks.set(isa, native.peakGflops(0.02));
      }
      for (const [isa, peak] of peaks) {
        // At least one FLOP per cycle per thread at 100 MHz, at most 64 per cycle at 10 GHz.
        expect(peak, isa).toBeGreaterThan(0.1 * before.threads);
        expect(peak, isa).toBeLessThan(640 * before.threads);
      }
      expect(() => native.peakGflops(0)).toThrow(/seconds must be a number in \(0, 10\]/);
      expect(() => native.peakGflops(11)).toThrow(/seconds must be a number in \(0, 10\]/);
    } finally {
      native.configure({ isa: before.isa });
    }
  });

  for (const isa of isas) {
    it(`gemmPacked on packPanels' copy matches the float64 reference with the ${isa} kernel`, () => {
      const before = native.info();
      native.configure({ isa });
      try {
        const random = seededUniform(13);
        for (const [m, n, k] of [[1, 5, 1], [3, 16, 7], [8, 33, 64], [9, 70, 19], [20, 200, 130]]) {
          const a = randomFloats(m * k, random);
          const w = randomFloats(n * k, random);
          const padded = new Float32Array(3 + n * k);
          padded.set(w, 3); // at an offset
          const packed = native.packPanels(padded, 3, n, k);
          expect(packed.length).toBe(Math.ceil(n / 16) * 16 * k);
          const c = new Float32Array(2 + m * n).fill(Number.NaN);
          native.gemmPacked(a, 0, packed, c, 2, m, n, k);
          const want = referenceGemm(a, w, { batchA: 1, batchB: 1, m, n, k, transposeA: false, transposeB: true });
          expect(relativeError(c.subarray(2), want), `${isa} [${m}, ${k}] x [${n}, ${k}]^T`).toBeLessThan(1e-5);
        }
        expect(() => native.packPanels(new Float32Array(10), 0, 4, 3)).toThrow(/w needs 12 floats at offset 0/);
        expect(() => native.gemmPacked(new Float32Array(6), 0, new Float32Array(16 * 3), new Float32Array(8), 0, 2, 5, 3)).toThrow(/c needs 10 floats/);
        expect(() => native.gemmPacked(new Float32Array(6), 0, new Float32Array(15 * 3), new Float32Array(10), 0, 2, 5, 3)).toThrow(/packed needs 48 floats/);
      } finally {
        native.configure({ isa: before.isa });
      }
    });
  }

  for (const isa of isas) {
    it(`matches the float64 reference with the ${isa} kernel`, () => {
      const before = native.info();
      native.configure({ isa });
      try {
        const random = seededUniform(7);
        for (const [batchA, batchB, m, n, k] of shapes) {
          for (const transposeA of [false, true]) {
            for (const transposeB of [false, true]) {
              const shape: GemmShape = { batchA, batchB, m, n, k, transposeA, transposeB };
              const a = randomFloats(batchA * m * k, random);
              const b = randomFloats(batchB * k * n, random);
              const batch = Math.max(batchA, batchB);
              // Offsets inside larger arrays, as on the wasm heap; the guard
              // values around C must survive.
              const c = new Float32Array(batch * m * n + 8).fill(12345);
              native.gemm({ a, b, c, cOffset: 3 }, shape);
              const want = referenceGemm(a, b, shape);
              const error = relativeError(c.subarray(3, 3 + want.length), want);
              expect(error, JSON.stringify(shape)).toBeLessThan(1e-5);
              expect(c[0]).toBe(12345);
              expect(c[c.length - 1]).toBe(12345);
            }
          }
        }
      } finally {
        native.configure({ isa: before.isa });
      }
    });
  }

  it('gives the same result on one thread and on the pool', () => {
    const random = seededUniform(11);
    const shape: GemmShape = { batchA: 3, batchB: 3, m: 130, n: 70, k: 90, transposeB: true };
    const a = randomFloats(3 * 130 * 90, random);
    const b = randomFloats(3 * 70 * 90, random);
    const threads = native.info().threads;
    const pooled = gemm(a, b, shape);
    native.configure({ threads: 1 });
    try {
      const single = gemm(a, b, shape);
      expect(relativeError(single, pooled)).toBeLessThan(1e-6);
    } finally {
      native.configure({ threads });
    }
  });

  it('keeps blocks of C in cache through the depth on one thread (all of B packed first)', () => {
    // More rows than one 144-row block and more depth than one 256-deep
    // block, none a multiple of a tile: the order that packs B whole.
    const random = seededUniform(13);
    const threads = native.info().threads;
    native.configure({ threads: 1 });
    try {
      for (const [batchA, m, n, k] of [
        [1, 301, 45, 517],
        [2, 150, 77, 259],
      ]) {
        for (const transposeA of [false, true]) {
          for (const transposeB of [false, true]) {
            const shape: GemmShape = { batchA, batchB: 1, m, n, k, transposeA, transposeB };
            const a = randomFloats(batchA * m * k, random);
            const b = randomFloats(k * n, random);
            const bias = randomFloats(n, random);
            const got = gemm(a, b, shape, { bias, activation: 'relu' });
            const want = referenceGemm(a, b, shape, { bias, activation: 'relu' });
            expect(relativeError(got, want), JSON.stringify(shape)).toBeLessThan(1e-5);
          }
        }
      }
    } finally {
      native.configure({ threads });
    }
  });

  it('splits a wider-than-tall product by columns across threads when its depth spans several KC blocks', () => {
    // Regression: more rows than one 144-row block and more depth than one
    // 256-deep block made the pooled product pack all of B first in blocks
    // laid out from column 0, while the column tasks read them from their
    // own first column: wrong results on 2 threads, right on 1.
    const random = seededUniform(17);
    const before = native.info();
    native.configure({ threads: 2 });
    try {
      for (const isa of isas) {
        native.configure({ isa });
        for (const [m, n, k] of [
          [257, 300, 257],
          [150, 520, 600],
        ]) {
          for (const transposeA of [false, true]) {
            for (const transposeB of [false, true]) {
              const shape: GemmShape = { batchA: 1, batchB: 1, m, n, k, transposeA, transposeB };
              const a = randomFloats(m * k, random);
              const b = randomFloats(k * n, random);
              const got = gemm(a, b, shape);
              const want = referenceGemm(a, b, shape);
              expect(relativeError(got, want), `${isa} ${JSON.stringify(shape)}`).toBeLessThan(1e-5);
            }
          }
        }
      }
    } finally {
      native.configure({ isa: before.isa, threads: before.threads });
    }
  });

  it('rebuilds its pool and runs at once without hanging', () => {
    // Regression: a worker that started after the first Run() or the pool's
    // destructor slept through it, and the call never returned.
    const threads = native.info().threads;
    const ones = new Float32Array(96 * 96).fill(1);
    const out = new Float32Array(96 * 96);
    try {
      for (let i = 0; i < 300; i++) {
        native.configure({ threads: 1 });
        native.configure({ threads: 2 });
        native.gemm({ a: ones, b: ones, c: out }, { batchA: 1, batchB: 1, m: 96, n: 96, k: 96 });
      }
    } finally {
      native.configure({ threads });
    }
    expect(out[0]).toBe(96);
  });

  const activations: GemmActivation[] = ['linear', 'relu', 'relu6', 'sigmoid', 'leakyrelu', 'elu'];
  for (const activation of activations) {
    it(`applies bias and ${activation} in the epilogue`, () => {
      const random = seededUniform(3);
      // Packed, few rows against a transposed B (dot products), one row (axpy).
      const shapes: GemmShape[] = [
        { batchA: 2, batchB: 1, m: 17, n: 33, k: 9 },
        { batchA: 2, batchB: 2, m: 5, n: 33, k: 9, transposeB: true },
        { batchA: 2, batchB: 2, m: 1, n: 33, k: 9 },
      ];
      for (const shape of shapes) {
        const a = randomFloats(shape.batchA * shape.m * shape.k, random).map((v) => v * 4);
        const b = randomFloats(shape.batchB * shape.k * shape.n, random);
        for (const bias of [randomFloats(33, random), Float32Array.of(0.5)]) {
          const got = gemm(a, b, shape, { bias, activation, leakyAlpha: 0.1 });
          const want = referenceGemm(a, b, shape, { bias, activation, leakyAlpha: 0.1 });
          expect(relativeError(got, want), JSON.stringify(shape)).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('counts the wall time of its compute calls, failed ones included, and the process total sums the addons', () => {
    const before = native.callTime();
    const total = nativeCallTime();
    const [m, n, k] = [96, 96, 96];
    const a = randomFloats(m * k, seededUniform(11));
    const b = randomFloats(k * n, seededUniform(12));
    const started = performance.now();
    native.gemm({ a, b, c: new Float32Array(m * n) }, { batchA: 1, batchB: 1, m, n, k });
    expect(native.sumSquaresList(a, [0], [m * k])).toBeGreaterThan(0);
    expect(() => native.sumSquaresList(a, [0], [m * k + 1])).toThrow(/needs/);
    const elapsed = performance.now() - started;
    const after = native.callTime();
    expect(after.calls - before.calls).toBe(3);
    expect(after.ms - before.ms).toBeGreaterThan(0);
    expect(after.ms - before.ms).toBeLessThanOrEqual(elapsed);
    // Only this addon is loaded here: the process total moved by as much.
    const nowTotal = nativeCallTime();
    expect(nowTotal.calls - total.calls).toBe(3);
    expect(nowTotal.ms - total.ms).toBeCloseTo(after.ms - before.ms, 6);
    // The shape check happens before the addon is called: no call counted.
    expect(() => native.gemm({ a, b, c: new Float32Array(1) }, { batchA: 1, batchB: 1, m: 0.5, n, k })).toThrow();
    expect(native.callTime().calls).toBe(after.calls);
  });

  it('computes zeros when K is 0', () => {
    const got = gemm(new Float32Array(0), new Float32Array(0), { batchA: 1, batchB: 1, m: 2, n: 3, k: 0 });
    expect(Array.from(got)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('takes a decoder layer\'s optional biases and q/k norms by offset, and refuses a bad list of them', () => {
    // One row, d 8, 2 query heads and 1 kv head of 4, SwiGLU 8, a 4-slot cache.
    const [b, d, hq, hkv, dh, inter, s, positions] = [1, 8, 2, 1, 4, 8, 4, 4];
    const layout = { x: d, out: d, inputNorm: d, postNorm: d, cos: positions * 2, sin: positions * 2, keys: hkv * s * dh, values: hkv * s * dh, bq: hq * dh, bk: hkv * dh, bv: hkv * dh, bo: d, qNorm: dh, kNorm: dh };
    const at: Record<string, number> = {};
    let end = 0;
    for (const [name, length] of Object.entries(layout)) {
      at[name] = end;
      end += length;
    }
    const heap = new Float32Array(end).map((_, i) => Math.sin(i) * 0.5);
    const offsets = ['x', 'out', 'inputNorm', 'postNorm', 'cos', 'sin', 'keys', 'values'].map((name) => at[name]);
    const shapes: Array<[number, number]> = [[hq * dh, d], [hkv * dh, d], [hkv * dh, d], [d, hq * dh], [inter, d], [inter, d], [d, inter]];
    const weights = shapes.map(([n, k]) => native.packPanels(new Float32Array(n * k).map((_, i) => Math.cos(i) * 0.1), 0, n, k));
    const run = (extras?: number[]) => {
      const copy = heap.slice();
      if (extras === undefined) native.decodeLayer(copy, offsets, weights, new Int32Array([2]), [b, d, hq, hkv, dh, inter, s, positions], 1e-6);
      else native.decodeLayer(copy, offsets, weights, new Int32Array([2]), [b, d, hq, hkv, dh, inter, s, positions], 1e-6, extras);
      return copy.slice(at.out, at.out + d);
    };
    const plain = run();
    expect(plain.some((value) => value !== 0)).toBe(true);
    expect(run([-1, -1, -1, -1, -1, -1])).toEqual(plain); // none given: the plain layer
    const all = ['bq', 'bk', 'bv', 'bo', 'qNorm', 'kNorm'].map((name) => at[name]);
    const extras = run(all);
    expect(extras.every(Number.isFinite)).toBe(true);
    expect(extras).not.toEqual(plain);
    // Each one counts: dropping any changes the layer's output.
    for (let i = 0; i < 4; i++) expect(run(all.map((offset, j) => (j === i ? -1 : offset))), `without extra ${i}`).not.toEqual(extras);
    expect(run([...all.slice(0, 4), -1, -1])).not.toEqual(extras);
    expect(() => run(all.slice(0, 5))).toThrow(/decodeLayer extras must be an array of 6 offsets \(bq, bk, bv, bo, qNorm, kNorm; -1 for none\)/);
    expect(() => run([...all.slice(0, 5), -1])).toThrow(/decodeLayer takes qNorm and kNorm both or neither/);
    expect(() => run([end - 2, ...all.slice(1)])).toThrow(/bq needs 8 floats at offset/);
    expect(() => run([-2, ...all.slice(1)])).toThrow(/bq must be a non-negative integer/);
  });

  it('refuses operands that do not fit, before touching memory', () => {
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    const c = new Float32Array(3); // needs 4
    expect(() => native.gemm({ a, b, c }, { batchA: 1, batchB: 1, m: 2, n: 2, k: 3 })).toThrow(/c needs 4 floats/);
    expect(() => native.gemm({ a, aOffset: 1, b, c: new Float32Array(4) }, { batchA: 1, batchB: 1, m: 2, n: 2, k: 3 })).toThrow(
      /a needs 6 floats at offset 1/,
    );
    expect(() => gemm(a, b, { batchA: 2, batchB: 3, m: 1, n: 1, k: 1 })).toThrow(GemmShapeError);
    expect(() => gemm(a, b, { batchA: 1, batchB: 1, m: 2, n: 2, k: 2 })).toThrow(GemmShapeError);
    expect(() => native.configure({ isa: 'sse9' as never })).toThrow(/unknown isa/);
    const heap = new Float32Array(10).fill(2);
    expect(native.sumSquaresList(heap, [0, 8], [3, 2])).toBe(20);
    expect(() => native.sumSquaresList(heap, [0, 8], [3, 3])).toThrow(/span\[1\] needs 3 floats at offset 8/);
    expect(() => native.sumSquaresList(heap, [0], [3, 2])).toThrow(/got 1 offsets and 2 sizes/);
    expect(() => native.sumSquaresList(heap, [-1], [3])).toThrow(/offsets\[0\] must be a non-negative integer/);
    const addon = (native as unknown as { addon: Record<string, (...args: unknown[]) => unknown> }).addon;
    expect(() => addon.sumSquaresList(heap, [0])).toThrow(/sumSquaresList expects 3 arguments/);
    expect(() => addon.gemmPacked(heap)).toThrow(/gemmPacked expects 8 arguments/);
  });
});
