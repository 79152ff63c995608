// The SFT run shared by trainer.test.ts and the resume-sft test program.
import type { LlamaModel } from '../../model';
import { fingerprint } from '../batching';
import type { TrainHyperparameters } from '../hyperparameters';

/** Its data (sftExamples(examples, dataSeed)) and hyperparameters: 9 examples in batches of 3 for 2 epochs, 6 steps. */
export const RESUME_SFT_RUN = {
  examples: 9,
  dataSeed: 40,
  modelSeed: 41,
  hyperparameters: { learningRate: 1e-2, warmupRatio: 0.1, epochs: 2, batchSize: 3 } satisfies Partial<TrainHyperparameters>,
};

/** A fingerprint of every weight's exact values, in the model's order. */
export function weightsFingerprint(model: LlamaModel): string {
  return fingerprint([...model.weights.values()].map((tensor) => [...tensor.dataSync()]));
}
