// Measures generation and scoring throughput (tokens/s) of a random model on
// this machine. Run from the repo root:
//   CREAM_BACKEND=cpu|wasm-native npx tsx libs/model/scripts/measure-throughput.ts [small|smollm-135m]
// "small" is a 6M-parameter Llama (D 256, 4 layers, vocab 4096); "smollm-135m"
// has SmolLM-135M's shapes. Prints one line per case with the backend named.
import { initCompute } from '@cream/compute';
import * as tf from '@tensorflow/tfjs-core';

import { LlamaModel, createModelConfig, disposeWeights, generate, initWeights, modelConfigFromHf, scoreResponses } from '../src/index';
import { SMOLLM_135M } from '../src/testing';

const presets = {
  small: () =>
    createModelConfig({ vocabSize: 4096, hiddenSize: 256, nLayers: 4, nHeads: 8, nKvHeads: 4, intermediateSize: 688, tieWordEmbeddings: true }),
  'smollm-135m': () => modelConfigFromHf(SMOLLM_135M),
};

async function main(): Promise<void> {
  const preset = (process.argv[2] ?? 'small') as keyof typeof presets;
  if (!(preset in presets)) throw new Error(`usage: measure-throughput.ts [${Object.keys(presets).join('|')}]`);
  const info = await initCompute();
  const config = presets[preset]();
  const weights = initWeights(config, 1);
  const model = new LlamaModel(config, weights);
  const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % config.vocabSize);
  const line = (what: string, tokens: number, seconds: number) =>
    console.log(`${info.variant} ${preset} ${what}: ${tokens} tokens in ${seconds.toFixed(2)} s = ${(tokens / seconds).toFixed(1)} tokens/s`);

  await generate(model, [{ promptIds: ids(8, 0), key: 0 }], { maxNewTokens: 2 }); // warm-up
  for (const batch of [1, 8]) {
    const requests = Array.from({ length: batch }, (_, i) => ({ promptIds: ids(16 + 4 * i, i), key: i }));
    const started = performance.now();
    const results = await generate(model, requests, { maxNewTokens: 32, temperature: 0.8, topP: 0.95, eosTokenIds: [] });
    const generated = results.reduce((sum, r) => sum + r.tokenIds.length, 0);
    line(`generate batch ${batch} (prompts 16-${16 + 4 * (batch - 1)}, 32 new)`, generated, (performance.now() - started) / 1000);
  }
  const items = Array.from({ length: 16 }, (_, i) => ({ promptIds: ids(64, i), responseIds: ids(64, 100 + i) }));
  const started = performance.now();
  await scoreResponses(model, items, { batchSize: 8 });
  line('score 16 x (64 prompt + 64 response), batch 8', 16 * 128, (performance.now() - started) / 1000);
  model.dispose();
  disposeWeights(weights);
  console.log(`tensors left: ${tf.memory().numTensors}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
