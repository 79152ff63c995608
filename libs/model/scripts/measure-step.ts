// Times the reference-shape training step (vocab 512, d 256, 4 layers, 4
// heads, SwiGLU 768, batch 16 x 128: forward, backward, AdamW) and greedy
// decoding (batch 8, 64-token prompt, 64 new tokens) on the chosen backend,
// with the fused kernels and with the composed tfjs ops they replace (the
// same run), and a per-kernel profile of one fused step with --profile.
// Medians after warm-up; run with
// `npx tsx libs/model/scripts/measure-step.ts [--profile] [--threads N]`. Other
// processes slow every figure: the process CPU time per step is printed
// beside the wall time, with the load average.
import { loadavg } from 'node:os';

import { computeInfo, initCompute, useFusedKernels } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';

import { createModelConfig, generate, initWeights, LlamaModel } from '../src';
import { AdamW } from '../src/train/adamw';
import { registerTrainingGradients } from '../src/train/gather-gradient';
import { sftLoss, tokenLogprobs } from '../src/train/losses';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main(): Promise<void> {
  const threadsAt = process.argv.indexOf('--threads');
  await initCompute(threadsAt > 0 ? { threads: Number(process.argv[threadsAt + 1]) } : {});
  registerTrainingGradients();
  const config = createModelConfig({ vocabSize: 512, hiddenSize: 256, nLayers: 4, nHeads: 4, intermediateSize: 768, maxPositionEmbeddings: 256 });
  const weights = initWeights(config, 1);
  const model = new LlamaModel(config, weights);
  const variables = [...weights.values()] as tf.Variable[];
  const optimizer = new AdamW();
  const [B, T] = [16, 128];
  const ids = new Int32Array(B * T).map((_, i) => (i * 7919) % config.vocabSize);
  const targets = new Int32Array(B * T).map((_, i) => (i * 104729 + 3) % config.vocabSize);

  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const hidden = model.hiddenStates(tf.tensor2d(ids, [B, T], 'int32')); // [B, T, D]
      const logits = model.logits(tf.reshape(hidden, [B * T, -1])) as tf.Tensor2D; // [B*T, V]
      return sftLoss(tokenLogprobs(logits, tf.tensor1d(targets, 'int32')));
    }, variables);
    const gradients = new Map(Object.entries(grads));
    optimizer.update(weights as Map<string, tf.Variable>, gradients, 1e-4);
    value.dataSync();
    tf.dispose([value, ...gradients.values()]);
  };

  if (process.argv.includes('--profile')) {
    step();
    const profile = await tf.profile(step);
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const kernel of profile.kernels) {
      // Products by shape, the rest by kernel.
      const key = kernel.name === 'BatchMatMul' ? `BatchMatMul ${kernel.inputShapes.map((s) => `[${s}]`).join('x')}` : kernel.name;
      const entry = byKernel.get(key) ?? { ms: 0, calls: 0 };
      entry.ms += Number(kernel.kernelTimeMs) || 0;
      entry.calls++;
      byKernel.set(key, entry);
    }
    const rows = [...byKernel].sort((a, b) => b[1].ms - a[1].ms);
    for (const [name, { ms, calls }] of rows.slice(0, 30)) console.log(`${name.padEnd(48)} ${ms.toFixed(1).padStart(8)} ms ${String(calls).padStart(5)} calls`);
  }

  const measure = async (fused: boolean) => {
    useFusedKernels(fused);
    step();
    const stepTimes: number[] = [];
    const cpuTimes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const start = performance.now();
      const cpu = process.cpuUsage();
      step();
      const used = process.cpuUsage(cpu);
      stepTimes.push(performance.now() - start);
      cpuTimes.push((used.user + used.system) / 1000);
    }
    const requests = Array.from({ length: 8 }, (_, r) => ({ promptIds: Array.from({ length: 64 }, (_, t) => (r * 31 + t * 17) % config.vocabSize), key: r }));
    const decodeRates: number[] = [];
    const decodeCpuRates: number[] = [];
    for (let i = 0; i < 4; i++) {
      const start = performance.now();
      const cpu = process.cpuUsage();
      const results = await generate(model, requests, { maxNewTokens: 64, temperature: 0, eosTokenIds: [] });
      const used = process.cpuUsage(cpu);
      const tokens = results.reduce((sum, r) => sum + r.tokenIds.length, 0);
      if (i >= 1) {
        decodeRates.push(tokens / ((performance.now() - start) / 1000));
        decodeCpuRates.push(tokens / ((used.user + used.system) / 1e6));
      }
    }
    return { fused, stepMs: Number(median(stepTimes).toFixed(1)), stepCpuMs: Number(median(cpuTimes).toFixed(1)), decodeTokensPerSecond: Math.round(median(decodeRates)), decodeTokensPerCpuSecond: Math.round(median(decodeCpuRates)) };
  };
  const composed = await measure(false);
  const fused = await measure(true);
  console.log(
    JSON.stringify({
      backend: computeInfo()?.variant,
      composed,
      fused,
      stepSpeedup: Number((composed.stepMs / fused.stepMs).toFixed(2)),
      decodeSpeedup: Number((fused.decodeTokensPerSecond / composed.decodeTokensPerSecond).toFixed(2)),
      numTensors: tf.memory().numTensors,
      loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
    }),
  );
}

void main();
