// Fixtures of the training tests: tiny decoders with trainable weights and
// small seeded datasets. (The backend, with tfjs's gradients, comes from the
// package's vitest setup: cpu unless CREAM_BACKEND says otherwise.)

import { createModelConfig, type ModelConfig } from '../config';
import { LlamaModel } from '../model';
import { randomStream, randomUniform } from '../random';
import { disposeWeights, initWeights, type InitWeightsOptions } from '../weights';
import type { DpoPair, SftExample } from './batching';

/** A one-layer decoder small enough for many steps per second. */
export const TINY_CONFIG: ModelConfig = createModelConfig({
  vocabSize: 19,
  hiddenSize: 8,
  nLayers: 1,
  nHeads: 2,
  intermediateSize: 12,
  maxPositionEmbeddings: 24,
});

/** A model over fresh trainable variables, and a dispose of both. */
export interface TestModel {
  readonly model: LlamaModel;
  dispose(): void;
}

let scopes = 0;

/** A decoder with deterministic random weights (a unique variable scope, so several live at once). */
export function testModel(config: ModelConfig, seed: number, options: InitWeightsOptions = {}): TestModel {
  const weights = initWeights(config, seed, { std: 0.2, normStd: 0.1, biasStd: 0.1, scope: `train-test-${scopes++}`, ...options });
  const model = new LlamaModel(config, weights);
  return {
    model,
    dispose: () => {
      model.dispose();
      disposeWeights(weights);
    },
  };
}

/** Seeded uniforms in [0, 1) for test data: the model's Philox stream (seed, "train-test"). */
export function seededRandom(seed: number): () => number {
  const stream = randomStream(seed, 'train-test');
  let index = 0;
  return () => randomUniform(stream, index++);
}

function randomIds(random: () => number, length: number, vocabSize: number): number[] {
  return Array.from({ length }, () => 1 + Math.floor(random() * (vocabSize - 1)));
}

/** SFT examples of varied lengths whose responses follow a learnable rule (token + 1 mod V). */
export function sftExamples(count: number, seed: number, vocabSize = TINY_CONFIG.vocabSize): SftExample[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const promptIds = randomIds(random, 1 + Math.floor(random() * 4), vocabSize);
    const responseIds: number[] = [];
    let last = promptIds[promptIds.length - 1];
    for (let j = 0, n = 1 + Math.floor(random() * 5); j < n; j++) {
      last = 1 + (last % (vocabSize - 1));
      responseIds.push(last);
    }
    return { id: `sft-${i}`, promptIds, responseIds };
  });
}

/** Preference pairs of varied lengths, C per pair drawn from `consistency` (or fixed). */
export function dpoPairs(count: number, seed: number, consistency: number | (() => number) = 1, vocabSize = TINY_CONFIG.vocabSize): DpoPair[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const chosenIds = randomIds(random, 1 + Math.floor(random() * 5), vocabSize);
    let rejectedIds = randomIds(random, 1 + Math.floor(random() * 5), vocabSize);
    if (rejectedIds.join() === chosenIds.join()) rejectedIds = [...rejectedIds, 1];
    return {
      id: `pair-${i}`,
      promptIds: randomIds(random, 1 + Math.floor(random() * 4), vocabSize),
      chosenIds,
      rejectedIds,
      consistency: typeof consistency === 'number' ? consistency : consistency(),
    };
  });
}
