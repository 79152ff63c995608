// The SRLM baseline on the shipped base model: `cream serve coordinator` with
// the generator, judge, consistency scorer and trainer as real processes over
// loopback, models/m0 (256-token context) as M0, and the built-in suite cut
// small (2 seed items, 4 prompts, N = 2, 1 judgment of 16 tokens, no
// evaluation). The spec leaves the rubric style unset: the coordinator stores
// it resolved to COMPACT, SFT trains M1 on the seed items AND their judging
// (EFT) examples, the judge stage judges every response with the compact
// rubric (the full one would be refused: it does not fit M0's context), and
// the run goes on to iter-1/train and succeeds.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ModelRegistry } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startModelServices, startService, workspaceRoot } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';

interface RunView {
  run_id: string;
  state: string;
  stages: { name: string; state: string; metrics: Record<string, number>; error: string }[];
  run_dir: string;
  error: string;
}

const Coordinator = serviceClient(creamProto(), 'cream.v1.CoordinatorService');
let home: string;
let client: grpc.Client;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'cream-srlm-compact-'));
  const registryDir = join(home, 'registry');
  const registry = await ModelRegistry.open(registryDir);
  await registry.publish({ version: 'm0', recipe: { method: 'import' }, fromDirectory: join(workspaceRoot, 'models', 'm0') });
  const env = { CREAM_HOME: home };
  const [generator, judge, scorer, trainer] = await startModelServices(registryDir, home, env);
  const coordinator = await startService(
    'coordinator',
    ['--registry', registryDir, '--runs', join(home, 'runs'), '--generators', generator.address, '--judges', judge.address, '--consistency-scorer', scorer.address, '--trainer', trainer.address],
    env,
  );
  await coordinator.waitForLine((line) => line.msg === 'serving', 60_000);
  client = new Coordinator(coordinator.address, grpc.credentials.createInsecure());
}, 180_000);

afterAll(async () => {
  client?.close();
  await killAll();
  if (home) rmSync(home, { recursive: true, force: true });
});

/** WatchRun until the stream ends; the last message's run. */
function watchToEnd(runId: string): Promise<RunView> {
  return new Promise((resolve, reject) => {
    let last: RunView | undefined;
    const call = (client as unknown as { WatchRun(request: unknown): grpc.ClientReadableStream<{ run_finished?: RunView }> }).WatchRun({ run_id: runId });
    call.on('data', (message: { run_finished?: RunView }) => (last = message.run_finished ?? last));
    call.on('error', reject);
    call.on('end', () => (last ? resolve(last) : reject(new Error('WatchRun ended without run_finished'))));
  });
}

const readJsonl = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('srlm on the built-in suite and the shipped M0', () => {
  it('resolves the compact rubric, trains M1 on seed and EFT examples, judges every response and reaches iter-1/train', async () => {
    const spec = {
      name: 'srlm-compact',
      base_version: 'm0',
      method: 'METHOD_SRLM',
      iterations: 1,
      num_samples: 2,
      data: { builtin_suite: true, max_sft_examples: 2, prompts_per_iteration: 4 },
      sampling: { temperature: 1, top_p: 1, max_new_tokens: 24 },
      rubric: { num_judgments: 1, sampling: { temperature: 0.8, top_p: 0.95, max_new_tokens: 16 } },
      sft: { learning_rate: 0.001, epochs: 1, batch_size: 4, warmup_ratio: 0 },
      dpo: { learning_rate: 0.0001, epochs: 1, batch_size: 2, warmup_ratio: 0 },
      seed: 5,
      evaluate: false,
    };
    const started = (await unary<{ run: RunView }>(client, 'StartRun', { spec }, 60_000)).run;
    const run = await watchToEnd(started.run_id);
    expect(run.error).toBe('');
    expect(run.state).toBe('RUN_STATE_SUCCEEDED');

    const stored = JSON.parse(readFileSync(join(run.run_dir, 'run.json'), 'utf8')) as { spec: { rubric?: { style?: unknown } } };
    expect(JSON.stringify(stored.spec.rubric)).toMatch(/COMPACT|"style":2/);

    // SFT: 2 seed items and their 3 judging examples each.
    const data = (JSON.parse(readFileSync(join(run.run_dir, 'stages', 'data', 'data.json'), 'utf8')) as { summary: { sft: { id: string; response: string }[] } }).summary;
    expect(data.sft.map((example) => example.id.split('/')[0])).toEqual(['seed', 'seed', 'eft', 'eft', 'eft', 'eft', 'eft', 'eft']);
    expect(data.sft.filter((example) => example.id.startsWith('eft/')).map((example) => example.response.split('\n').at(-1))).toEqual(
      Array.from({ length: 2 }, () => ['Score: 5', 'Score: 3', 'Score: 1']).flat(),
    );

    // Every response judged once (none refused for its length), the counts adding up.
    const judge = run.stages.find((stage) => stage.name === 'iter-1/judge')!;
    expect(judge.state).toBe('STAGE_STATE_DONE');
    const judged = readJsonl(join(run.run_dir, 'stages', 'iter-1+judge', 'items.jsonl'));
    const samples = readJsonl(join(run.run_dir, 'stages', 'iter-1+sample', 'items.jsonl'));
    expect(judged.length).toBe(samples.filter((sample) => sample.text !== '').length);
    expect(judge.metrics.judgments_parsed + judge.metrics.judgments_unparsed).toBe(judged.length);
    expect(judge.metrics.items_unscored).toBe(judged.filter((item) => item.meanScore === null).length);
    const train = run.stages.find((stage) => stage.name === 'iter-1/train')!;
    expect(train.state).toBe('STAGE_STATE_DONE');
  }, 600_000);
});
