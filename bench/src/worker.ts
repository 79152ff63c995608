// A child process that measures our side of one case: run.ts forks it (under
// tsx) per case, so each case starts from a fresh tfjs engine and has its own
// peak resident memory. It receives the case over IPC, chooses the compute
// backend as every cream process does (CREAM_BACKEND overrides), and answers
// with the result or the error.
import { initCompute } from '@cream/compute';
import type { BenchCase } from './cases';
import { describeCompute, measureOurs } from './ours';
import type { WorkerReply } from './worker-protocol';

process.once('message', (message: { benchCase: BenchCase }) => {
  const reply = (value: WorkerReply) => process.send?.(value, () => process.exit(0));
  initCompute({ env: process.env })
    .then((info) => measureOurs(message.benchCase, describeCompute(info), info.threads))
    .then(
      (result) => reply({ ok: true, result }),
      (error: unknown) => reply({ ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
    );
});
