// Test fixtures of @cream/model, reached as `@cream/model/testing` and kept out
// of the main index: an independent float64 reference of the Hugging Face
// Llama/Qwen2/Qwen3 math, small random configs of several shapes, and the bridge
// from tfjs weights to the reference's Float64Arrays.

import * as tf from '@tensorflow/tfjs-core';
import { type ModelConfig, createModelConfig } from '../config';
import { LlamaModel } from '../model';
import { type InitWeightsOptions, type ModelWeights, disposeWeights, initWeights } from '../weights';
import { pseudoRandom } from './gradient-check';
import type { ReferenceWeights } from './reference-llama';

/** The float64 reference implementation and its building blocks. */
export * from './reference-llama';
/** config.json files of published checkpoints. */
export * from './hf-config-examples';
/** Central differences and error measures for gradient checks. */
export * from './gradient-check';

/** Small configs covering the options: GQA, q/k/v biases, q/k norms, tied embeddings, rope scaling, odd sizes. */
export const TEST_CONFIGS: Readonly<Record<string, ModelConfig>> = {
  /** Llama, plain multi-head attention, separate lm_head. */
  llama: createModelConfig({ vocabSize: 61, hiddenSize: 16, nLayers: 2, nHeads: 4, intermediateSize: 40, maxPositionEmbeddings: 64, eosTokenIds: [2] }),
  /** Llama with grouped-query attention (3 query heads per kv head), tied embeddings, a small rope base. */
  llamaGqaTied: createModelConfig({
    vocabSize: 50, hiddenSize: 24, nLayers: 2, nHeads: 6, nKvHeads: 2, intermediateSize: 36,
    tieWordEmbeddings: true, ropeTheta: 500, maxPositionEmbeddings: 64,
  }),
  /** Qwen2: q/k/v biases, GQA. */
  qwen2: createModelConfig({
    architecture: 'qwen2', vocabSize: 57, hiddenSize: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, intermediateSize: 44,
    ropeTheta: 1e6, rmsNormEps: 1e-5, maxPositionEmbeddings: 64,
  }),
  /** Qwen3: per-head q/k RMSNorm, headDim != hiddenSize / nHeads, one kv head, tied. */
  qwen3: createModelConfig({
    architecture: 'qwen3', vocabSize: 43, hiddenSize: 20, nLayers: 2, nHeads: 4, nKvHeads: 1, headDim: 8,
    intermediateSize: 28, tieWordEmbeddings: true, maxPositionEmbeddings: 64,
  }),
  /** Odd sizes, three layers, Llama 3.1 rope scaling that bites within the test lengths, Llama's o_proj bias. */
  llama3Odd: createModelConfig({
    vocabSize: 37, hiddenSize: 15, nLayers: 3, nHeads: 3, nKvHeads: 1, headDim: 6, intermediateSize: 19,
    attentionBias: true, ropeTheta: 50,
    ropeScaling: { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
    maxPositionEmbeddings: 48,
  }),
};

/** The weights as the reference's Float64Arrays (reads every tensor). */
export function toReferenceWeights(weights: ReadonlyMap<string, tf.Tensor>): ReferenceWeights {
  return new Map([...weights].map(([name, tensor]) => [name, Float64Array.from(tensor.dataSync())]));
}

/** A random model with its reference weights; dispose() frees the model and its weights. */
export interface TestModel {
  readonly config: ModelConfig;
  readonly weights: ModelWeights;
  readonly model: LlamaModel;
  readonly reference: ReferenceWeights;
  dispose(): void;
}

/**
 * Random weights for `config` scaled so logits are peaked (std 0.3) and biases
 * and norm weights differ from HF's zeros and ones (so a test sees them).
 */
export function createTestModel(
  config: ModelConfig,
  seed = 1,
  options: InitWeightsOptions = { std: 0.3, biasStd: 0.2, normStd: 0.2 },
): TestModel {
  const weights = initWeights(config, seed, options);
  const model = new LlamaModel(config, weights);
  return {
    config,
    weights,
    model,
    reference: toReferenceWeights(weights),
    dispose: () => {
      model.dispose();
      disposeWeights(weights);
    },
  };
}

/** Deterministic token ids in [1, vocabSize): row `seed` of the test streams. */
export function testTokens(config: ModelConfig, length: number, seed: number): number[] {
  return Array.from(pseudoRandom(length, seed), (v) => 1 + Math.floor(((v + 1) / 2) * (config.vocabSize - 1)));
}

/** Largest |a - b| over all entries, relative to the largest |b|. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}
