// A/B of two builds of the addon on a chain of products in which each reads
// the previous one's output (the data flow of a layer's forward pass:
// [2048,256] -> 768 -> 256 -> 1536 -> 256 columns), calls interleaved, with
// scripts/cross-core-read.cc's probe run between rounds so that each round is
// labelled with how fast one core then read what the other had written.
// Run from the repository root, with the probe built first (its header says how):
//   A=/tmp/old.node B=libs/compute/build/Release/cream_compute.node \
//     PROBE=/tmp/cross-core-read npx tsx libs/compute/scripts/chain-ab.ts [rounds]
// Prints each round, then the median time ratio B/A over the rounds whose
// probe read under 20 GB/s and over the others.
import { execFileSync } from 'node:child_process';

import { loadNativeGemm, type NativeGemm } from '../src/index';

function load(path: string | undefined, name: string): NativeGemm {
  if (!path) throw new Error(`set ${name} to the path of an addon build`);
  const result = loadNativeGemm(path);
  if (!result.ok) throw new Error(`${name}: ${result.reason}`);
  result.native.configure({ threads: 2 });
  return result.native;
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1];

function main(): void {
  const builds = { a: load(process.env.A, 'A'), b: load(process.env.B, 'B') };
  const probe = process.env.PROBE ?? '/tmp/cross-core-read';
  const rounds = Number(process.argv[2] ?? 30);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`rounds must be an integer >= 1, got ${process.argv[2]}`);
  const m = 2048;
  const widths = [256, 768, 256, 1536, 256];
  const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
  const weights = widths.slice(1).map((n, i) => random(n * widths[i]));
  const activations = widths.map((d) => random(m * d));
  const chain = (native: NativeGemm): number => {
    const start = performance.now();
    for (let i = 0; i + 1 < widths.length; i++) {
      const shape = { batchA: 1, batchB: 1, m, n: widths[i + 1], k: widths[i], transposeA: false, transposeB: true };
      native.gemm({ a: activations[i], b: weights[i], c: activations[i + 1] }, shape);
    }
    const ms = performance.now() - start;
    // The next chain starts from this one's output, scaled to stay finite.
    const last = activations[widths.length - 1];
    for (let j = 0; j < activations[0].length; j++) activations[0][j] = last[j] * 0.05;
    return ms;
  };
  const results: Array<{ probe: number; ratio: number }> = [];
  for (let round = 0; round < rounds; round++) {
    const text = execFileSync(probe, ['1']).toString();
    const read = Number(/written by CPU 1 ([0-9.]+)/.exec(text)?.[1] ?? NaN);
    const times = { a: [] as number[], b: [] as number[] };
    for (let i = 0; i < 6; i++) {
      times.a.push(chain(builds.a));
      times.b.push(chain(builds.b));
    }
    const [a, b] = [median(times.a), median(times.b)];
    results.push({ probe: read, ratio: b / a });
    console.log(`probe ${read.toFixed(1)} GB/s  A ${a.toFixed(2)} ms  B ${b.toFixed(2)} ms  B/A ${(b / a).toFixed(3)}`);
  }
  for (const [label, slow] of [['probe under 20 GB/s', true], ['probe at 20 GB/s or more', false]] as const) {
    const ratios = results.filter((r) => r.probe < 20 === slow).map((r) => r.ratio);
    if (ratios.length === 0) continue;
    console.log(`${label}: ${ratios.length} rounds, B/A median ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`);
  }
}

main();
