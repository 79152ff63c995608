// Test program: resumes the SFT run of trainer.test.ts ('SFT: resumes ... in
// a new process') from the snapshot directory given as its argument, on the
// backend CREAM_BACKEND names (the test passes its own; cpu when unset), with
// fresh random weights that the snapshot must replace, and prints one JSON
// line: the step it resumed from and a fingerprint of the final weights' bits.
import { initCompute, silentLogger } from '@cream/compute';
import { TINY_CONFIG, sftExamples, testModel } from '../test-fixtures';
import { trainSft } from '../trainer';
import { RESUME_SFT_RUN, weightsFingerprint } from './resume-sft-run';

async function main(directory: string): Promise<void> {
  await initCompute({ env: { CREAM_BACKEND: process.env.CREAM_BACKEND || 'cpu' }, logger: silentLogger });
  const { model, dispose } = testModel(TINY_CONFIG, 1234);
  try {
    const result = await trainSft(model, sftExamples(RESUME_SFT_RUN.examples, RESUME_SFT_RUN.dataSeed), RESUME_SFT_RUN.hyperparameters, {
      checkpoint: { directory },
    });
    process.stdout.write(JSON.stringify({ resumedFromStep: result.resumedFromStep, weights: weightsFingerprint(model) }) + '\n');
  } finally {
    dispose();
  }
}

main(process.argv[2]).catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
