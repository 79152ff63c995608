// Measures fp32 matmul throughput (GFLOP/s) on this machine for the tfjs wasm
// backend's stock kernel, the wasm fast path (no addon), cream's native kernel
// through tfjs, and the native GEMM called directly on Float32Arrays. Run from
// the repository root:
//   npx tsx libs/compute/scripts/measure-gemm.ts
// Medians over repeated runs after warm-up; prints one table. Other processes
// on the machine lower every figure: compare columns of one run.
import { cpus, loadavg } from 'node:os';

import * as tf from '@tensorflow/tfjs-core';

import { initCompute, loadNativeGemm, useMatMulKernels, type GemmShape, type MatMulKernelMode } from '../src/index';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const cases: Case[] = [
  { name: '512x512x512', a: [512, 512], b: [512, 512], transposeA: false, transposeB: false },
  { name: '[16,128,64]x[16,64,128]', a: [16, 128, 64], b: [16, 64, 128], transposeA: false, transposeB: false },
  { name: '[16,128,64]x[16,128,64]^T', a: [16, 128, 64], b: [16, 128, 64], transposeA: false, transposeB: true },
  { name: '[16,64,128]^Tx[16,64,128]', a: [16, 64, 128], b: [16, 64, 128], transposeA: true, transposeB: false },
];

// The reference training step's products (libs/model/scripts/measure-step.ts,
// d 256, SwiGLU 768, 16 x 128 tokens), by the transposes they run with:
// forward x.W, backward dY.W^T and X^T.dY, attention per head.
const trainingCases: Case[] = [
  { name: '[2048,256]x[256,256]', a: [2048, 256], b: [256, 256], transposeA: false, transposeB: false },
  { name: '[2048,256]x[256,768]', a: [2048, 256], b: [256, 768], transposeA: false, transposeB: false },
  { name: '[2048,768]x[768,256]', a: [2048, 768], b: [768, 256], transposeA: false, transposeB: false },
  { name: '[2048,256]x[768,256]^T', a: [2048, 256], b: [768, 256], transposeA: false, transposeB: true },
  { name: '[2048,768]x[256,768]^T', a: [2048, 768], b: [256, 768], transposeA: false, transposeB: true },
  { name: '[2048,256]^Tx[2048,256]', a: [2048, 256], b: [2048, 256], transposeA: true, transposeB: false },
  { name: '[2048,768]^Tx[2048,256]', a: [2048, 768], b: [2048, 256], transposeA: true, transposeB: false },
  { name: '[64,128,128]x[64,128,64]', a: [64, 128, 128], b: [64, 128, 64], transposeA: false, transposeB: false },
  { name: '[64,128,64]x[64,128,64]^T', a: [64, 128, 64], b: [64, 128, 64], transposeA: false, transposeB: true },
  { name: '[64,128,128]^Tx[64,128,64]', a: [64, 128, 128], b: [64, 128, 64], transposeA: true, transposeB: false },
];

function shapeOf(c: Case): GemmShape {
  return {
    batchA: c.a.length > 2 ? c.a[0] : 1,
    batchB: c.b.length > 2 ? c.b[0] : 1,
    m: c.transposeA ? c.a[c.a.length - 1] : c.a[c.a.length - 2],
    n: c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1],
    k: c.transposeA ? c.a[c.a.length - 2] : c.a[c.a.length - 1],
    transposeA: c.transposeA,
    transposeB: c.transposeB,
  };
}

// Fastest process CPU seconds per call (other processes inflate wall time on
// a loaded machine, and CPU time less so): warm up, then 30 calls.
function cpuSecondsPerCall(run: () => void): number {
  for (let i = 0; i < 3; i++) run();
  let best = Infinity;
  for (let i = 0; i < 30; i++) {
    const before = process.cpuUsage();
    run();
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / 1e6);
  }
  return best;
}

function flops(c: Case): number {
  const m = c.transposeA ? c.a[c.a.length - 1] : c.a[c.a.length - 2];
  const k = c.transposeA ? c.a[c.a.length - 2] : c.a[c.a.length - 1];
  const n = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const batch = c.a.length > 2 ? c.a[0] : 1;
  return 2 * batch * m * n * k;
}

// Median seconds per call: warm up, then repeat for about half a second.
function timeIt(run: () => void): number {
  for (let i = 0; i < 3; i++) run();
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < 5 || (performance.now() - started < 500 && samples.length < 200)) {
    const t0 = performance.now();
    run();
    samples.push((performance.now() - t0) / 1000);
  }
  samples.sort((x, y) => x - y);
  return samples[Math.floor(samples.length / 2)];
}

async function main(): Promise<void> {
  const info = await initCompute({ env: { CREAM_BACKEND: 'wasm-native' } });
  const native = loadNativeGemm();
  const nativeInfo = native.ok ? native.native.info() : undefined;
  console.log(
    `backend ${info.backend} (${info.variant}); native kernel ${nativeInfo ? `${nativeInfo.isa}, ${nativeInfo.threads} threads` : 'absent'}; ` +
      `wasm: single-threaded SIMD build`,
  );
  // Other processes share these cores; the load says how much of them this run had.
  console.log(`${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}; load average ${loadavg()[0].toFixed(2)}`);
  const rows: string[][] = [['case', 'wasm stock', 'wasm fast path', 'wasm + native', 'native direct']];
  for (const c of cases) {
    const a = tf.randomUniform(c.a, -1, 1);
    const b = tf.randomUniform(c.b, -1, 1);
    const row = [c.name];
    for (const mode of ['stock', 'fast-path', 'native'] as MatMulKernelMode[]) {
      if (mode === 'native' && !native.ok) {
        row.push('n/a');
        continue;
      }
      useMatMulKernels(mode, native.ok ? native.native : undefined);
      const seconds = timeIt(() => tf.dispose(tf.matMul(a, b, c.transposeA, c.transposeB)));
      row.push((flops(c) / seconds / 1e9).toFixed(1));
    }
    if (native.ok) {
      const shape = shapeOf(c);
      const aValues = a.dataSync() as Float32Array;
      const bValues = b.dataSync() as Float32Array;
      const out = new Float32Array(Math.max(shape.batchA, shape.batchB) * shape.m * shape.n);
      const seconds = timeIt(() => native.native.gemm({ a: aValues, b: bValues, c: out }, shape));
      row.push((flops(c) / seconds / 1e9).toFixed(1));
    } else {
      row.push('n/a');
    }
    rows.push(row);
    tf.dispose([a, b]);
  }
  useMatMulKernels('native', native.ok ? native.native : undefined);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  console.log('GFLOP/s, medians. The fast path equals stock for the first case: it is already on XNNPACK.');
  if (native.ok) {
    // The training step's products on one thread of the native GEMM.
    const threads = native.native.info().threads;
    native.native.configure({ threads: 1 });
    console.log('\ntraining-step products, native direct, one thread: GFLOP/s by process CPU time (best of 30)');
    for (const c of trainingCases) {
      const shape = shapeOf(c);
      const a = new Float32Array(c.a.reduce((x, y) => x * y)).map(() => Math.random() - 0.5);
      const b = new Float32Array(c.b.reduce((x, y) => x * y)).map(() => Math.random() - 0.5);
      const out = new Float32Array(Math.max(shape.batchA, shape.batchB) * shape.m * shape.n);
      const seconds = cpuSecondsPerCall(() => native.native.gemm({ a, b, c: out }, shape));
      console.log(`${c.name.padEnd(28)} ${(seconds * 1e3).toFixed(3).padStart(7)} ms  ${(flops(c) / seconds / 1e9).toFixed(1).padStart(6)}`);
    }
    native.native.configure({ threads });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
