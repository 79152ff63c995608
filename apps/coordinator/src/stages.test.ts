// A train stage whose version an earlier attempt published before the stage
// was stored: reused when the registry's manifest records the same parent and
// recipe, refused (naming what differs) otherwise. The trainer is not called
// on these paths; the registry is a real one in a temporary folder.
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Method, RunSpec, TrainKind } from '@cream/proto';
import { ModelRegistry } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunData } from './data';
import type { PlannedStage } from './plan';
import { resolveSpec } from './spec';
import { executeStage, sftExamples, trainRecipe, type StageContext, type StageOutput } from './stages';

let root: string;
let registry: ModelRegistry;
const spec: RunSpec = resolveSpec(RunSpec.fromPartial({ baseVersion: 'm0', method: Method.METHOD_CREAM, iterations: 1, data: { sftPath: '/s.jsonl', promptsPath: '/p.jsonl' }, sft: { epochs: 2 } }));
const data: RunData = {
  source: 'files',
  sft: [
    { id: 'sft-0', messages: [{ role: 'user', content: 'q0' }], response: 'a0' },
    { id: 'sft-1', messages: [{ role: 'user', content: 'q1' }], response: 'a1' },
  ],
  iterations: [[]],
  evalSets: [],
};
const sft: PlannedStage = { name: 'sft', kind: 'sft', iteration: 0, model: 1 };

function context(runId: string, runData: RunData = data): StageContext {
  const unused = {} as never; // the services: not reached when the version is already published
  return {
    runId,
    spec,
    registry,
    generators: unused,
    judges: unused,
    scorer: unused,
    trainer: unused,
    signal: new AbortController().signal,
    output: async <S, I>(name: string) => {
      if (name !== 'data') throw new Error(`unexpected stage ${name}`);
      return { summary: runData, metrics: {}, items: [] } as unknown as StageOutput<S, I>;
    },
    progress: () => undefined,
  };
}

async function publish(version: string, parent: string, recipe: Record<string, string>): Promise<void> {
  await registry.publish({ version, parent, recipe: { ...recipe, method: recipe.method, metrics: { steps: 4, final_loss: 1.5 }, jobId: `${version}-job` }, write: (dir) => writeFile(join(dir, 'config.json'), '{}') });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'cream-coordinator-stages-'));
  registry = await ModelRegistry.open(root);
  await registry.publish({ version: 'm0', recipe: { method: 'import' }, write: (dir) => writeFile(join(dir, 'config.json'), '{}') });
  await registry.publish({ version: 'other', recipe: { method: 'import' }, write: (dir) => writeFile(join(dir, 'config.json'), '{}') });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a train stage finding its version published', () => {
  it('reuses it when parent and recipe match', async () => {
    const ctx = context('run-a');
    await publish('run-a-m1', 'm0', trainRecipe(ctx, sft, TrainKind.TRAIN_KIND_SFT, 'm0', { sft: sftExamples(data) }, 1));
    const output = await executeStage(ctx, sft);
    expect(output.summary).toMatchObject({ version: 'run-a-m1', parent: 'm0', reused: true, steps: 4, lossLast: 1.5, jobId: 'run-a-m1-job' });
    expect(output.metrics).toEqual({ steps: 4, loss_last: 1.5, examples: 2 });
  });

  it('refuses one with another parent', async () => {
    const ctx = context('run-b');
    await publish('run-b-m1', 'other', trainRecipe(ctx, sft, TrainKind.TRAIN_KIND_SFT, 'm0', { sft: sftExamples(data) }, 1));
    await expect(executeStage(ctx, sft)).rejects.toThrow(/version run-b-m1 is already in the registry but was not made by this stage \(parent other, expected m0\)/);
  });

  it('refuses one made from other data', async () => {
    const ctx = context('run-c');
    const otherData = { ...data, sft: data.sft.slice(1) };
    await publish('run-c-m1', 'm0', trainRecipe(ctx, sft, TrainKind.TRAIN_KIND_SFT, 'm0', { sft: sftExamples(otherData) }, 1));
    await expect(executeStage(ctx, sft)).rejects.toThrow(/recipe inputSha256 is [0-9a-f]{64}, expected [0-9a-f]{64}/);
  });
});
