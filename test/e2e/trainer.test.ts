// The trainer as a user meets it: `cream serve trainer --registry DIR` as a
// real process over a temporary registry holding a random tiny version,
// called by clients built from the .proto files only. An SFT job on 16
// examples lowers its loss and publishes a version the generator then loads;
// a DPO job with per-pair weights (C) lowers its loss and publishes a child
// of the SFT version; a second job while one runs is RESOURCE_EXHAUSTED naming
// the running job, one with wait_if_busy is QUEUED and runs after it, and
// CancelJob (or the client cancelling its call) ends the running job
// CANCELLED with nothing published; a pair whose chosen equals its rejected is INVALID_ARGUMENT
// naming the field and an unknown base is NOT_FOUND, with nothing stored lost;
// after a restart GetJob and ListJobs still know every job.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ModelRegistry } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startService, type ServiceProcess } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions } from '../support/tiny-models';

interface Progress {
  step: number;
  total_steps: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  reward_accuracy: number;
  margin: number;
  mean_consistency: number;
}
interface Job {
  job_id: string;
  kind: string;
  state: string;
  base_version: string;
  reference_version: string;
  published_version: string;
  error: string;
  num_examples: number;
  hyperparameters: Record<string, unknown> | null;
}
interface Response {
  job?: Job;
  progress?: Progress;
  event: 'job' | 'progress';
}
interface TrainOutcome {
  jobs: Job[];
  progress: Progress[];
  error: grpc.ServiceError | null;
}

const proto = creamProto();
const Trainer = serviceClient(proto, 'cream.v1.TrainerService');
const Generator = serviceClient(proto, 'cream.v1.GeneratorService');

let registryDir: string;
let jobsDir: string;
let trainer: ServiceProcess;
let client: grpc.Client;

const text = (value: string) => ({ id: '', text: value });
const words = ['apple', 'river', 'stone', 'cloud', 'green', 'light', 'sound', 'table'];

function sftExamples(n: number) {
  return Array.from({ length: n }, (_, i) => ({ id: `ex-${i}`, prompt: text(`say ${words[i % 8]}`), response: `${words[i % 8]} ${words[(i + 1) % 8]}` }));
}

function pairs(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: `pair-${i}`,
    prompt: text(`say ${words[i % 8]}`),
    chosen: `${words[i % 8]} ${words[(i + 1) % 8]}`,
    rejected: `${words[(i + 3) % 8]} ${words[(i + 5) % 8]} ${words[(i + 6) % 8]}`,
    weight: 0.75 + 0.25 * ((i % 3) / 2),
  }));
}

/** Runs one Train call: the spec, then each chunk as a data message, then half-close. */
function train(spec: Record<string, unknown>, chunks: Array<Record<string, unknown>>, onMessage?: (r: Response, call: grpc.ClientDuplexStream<unknown, Response>) => void): Promise<TrainOutcome> {
  return new Promise((resolve) => {
    const outcome: TrainOutcome = { jobs: [], progress: [], error: null };
    const call = (client as unknown as { Train(): grpc.ClientDuplexStream<unknown, Response> }).Train();
    call.on('data', (r: Response) => {
      if (r.job) outcome.jobs.push(r.job);
      if (r.progress) outcome.progress.push(r.progress);
      onMessage?.(r, call);
    });
    call.on('error', (error: grpc.ServiceError) => {
      outcome.error = error;
      resolve(outcome);
    });
    call.on('end', () => resolve(outcome));
    call.write({ spec });
    for (const data of chunks) call.write({ data });
    call.end();
  });
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

beforeAll(async () => {
  registryDir = mkdtempSync(join(tmpdir(), 'cream-trainer-registry-'));
  await publishTinyVersions(registryDir, [{ version: 'm0', seed: 11 }]);
  jobsDir = mkdtempSync(join(tmpdir(), 'cream-trainer-jobs-'));
  trainer = await startService('trainer', ['--registry', registryDir, '--jobs', jobsDir]);
  client = new Trainer(trainer.address, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  client?.close();
  await killAll();
});

describe('cream serve trainer', () => {
  it('SFT on 16 examples lowers the loss and publishes a version the generator loads', async () => {
    const spec = { job_id: 'sft-1', kind: 'TRAIN_KIND_SFT', base_version: 'm0', output_version: 'm1', seed: 3, hyperparameters: { learning_rate: 0.01, epochs: 4, batch_size: 8, warmup_ratio: 0 }, recipe: { iteration: '1' } };
    const started = Date.now();
    const outcome = await train(spec, [{ sft_examples: sftExamples(8) }, { sft_examples: sftExamples(16).slice(8) }]);
    const seconds = (Date.now() - started) / 1000;
    expect(outcome.error).toBeNull();
    expect(outcome.jobs.map((j) => j.state)).toEqual(['JOB_STATE_RECEIVING', 'JOB_STATE_RUNNING', 'JOB_STATE_PUBLISHING', 'JOB_STATE_SUCCEEDED']);
    const final = outcome.jobs.at(-1)!;
    expect(final).toMatchObject({ job_id: 'sft-1', kind: 'TRAIN_KIND_SFT', base_version: 'm0', published_version: 'm1', num_examples: 16 });
    expect(final.hyperparameters).toMatchObject({ learning_rate: 0.01, epochs: 4, batch_size: 8, beta: 0.1, weight_decay: 0.01 });
    expect(outcome.progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(outcome.progress.every((p) => p.total_steps === 8 && Number.isFinite(p.loss) && p.grad_norm > 0)).toBe(true);
    const losses = outcome.progress.map((p) => p.loss);
    expect(mean(losses.slice(-2))).toBeLessThan(mean(losses.slice(0, 2)) * 0.9);
    console.log(`SFT: 8 steps in ${seconds.toFixed(1)} s, loss ${losses[0].toFixed(3)} -> ${losses.at(-1)!.toFixed(3)}`);

    // The registry holds it, with its parent and recipe.
    const registry = await ModelRegistry.open(registryDir);
    const manifest = await registry.get('m1');
    expect(manifest).toMatchObject({ parent: 'm0', recipe: { method: 'sft', iteration: '1', hyperparameters: { learningRate: 0.01, epochs: 4 } } });
    expect(manifest.recipe.dataSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.recipe.metrics).toMatchObject({ final_loss: losses.at(-1) });

    // GetJob and ListJobs see it.
    const got = await unary<{ job: Job }>(client, 'GetJob', { job_id: 'sft-1' });
    expect(got.job.state).toBe('JOB_STATE_SUCCEEDED');
    const listed = await unary<{ jobs: Job[]; running_job_id: string; compute: { variant: string } }>(client, 'ListJobs', {});
    expect(listed.jobs[0].job_id).toBe('sft-1');
    expect(listed.running_job_id).toBe('');
    expect(listed.compute.variant).not.toBe('none');

    // The generator loads the published version.
    const generator = await startService('generator', ['--registry', registryDir, '--model=']);
    const gen = new Generator(generator.address, grpc.credentials.createInsecure());
    try {
      const loaded = await unary<{ state: { serving: { info: { version: string; parent_version: string } } } }>(gen, 'LoadModel', { version: 'm1', wait: true }, 60_000);
      expect(loaded.state.serving.info).toMatchObject({ version: 'm1', parent_version: 'm0' });
    } finally {
      gen.close();
    }
  }, 90_000);

  it('DPO with per-pair C lowers its loss and publishes a child of its base', async () => {
    const spec = { job_id: 'dpo-1', kind: 'TRAIN_KIND_DPO', base_version: 'm1', output_version: 'm2', hyperparameters: { learning_rate: 0.01, epochs: 4, batch_size: 4, warmup_ratio: 0 } };
    const started = Date.now();
    const outcome = await train(spec, [{ preference_pairs: pairs(8) }]);
    const seconds = (Date.now() - started) / 1000;
    expect(outcome.error).toBeNull();
    expect(outcome.jobs.map((j) => j.state)).toEqual(['JOB_STATE_RECEIVING', 'JOB_STATE_PREPARING', 'JOB_STATE_RUNNING', 'JOB_STATE_PUBLISHING', 'JOB_STATE_SUCCEEDED']);
    expect(outcome.jobs.at(-1)).toMatchObject({ reference_version: 'm1', published_version: 'm2', num_examples: 8 });
    const losses = outcome.progress.map((p) => p.loss);
    expect(losses).toHaveLength(8);
    // The policy starts as the reference: the first step's loss is ln 2 whatever C.
    expect(losses[0]).toBeCloseTo(Math.LN2, 3);
    expect(mean(losses.slice(-2))).toBeLessThan(losses[0] * 0.9);
    expect(outcome.progress.at(-1)!.margin).toBeGreaterThan(0);
    const meanC = mean(pairs(8).map((p) => p.weight));
    expect(mean(outcome.progress.map((p) => p.mean_consistency))).toBeCloseTo(meanC, 5);
    console.log(`DPO: 8 steps in ${seconds.toFixed(1)} s, loss ${losses[0].toFixed(3)} -> ${losses.at(-1)!.toFixed(3)}`);
    const manifest = await (await ModelRegistry.open(registryDir)).get('m2');
    expect(manifest).toMatchObject({ parent: 'm1', recipe: { method: 'cream-dpo', referenceVersion: 'm1', hyperparameters: { beta: 0.1 } } });
  }, 90_000);

  it('refuses a second job while one runs, naming it, queues one that asks to wait; CancelJob ends the first with nothing published', async () => {
    let secondResult: Promise<TrainOutcome> | undefined;
    let queuedResult: Promise<TrainOutcome> | undefined;
    const first = train(
      { job_id: 'long-1', kind: 'TRAIN_KIND_SFT', base_version: 'm0', output_version: 'never', hyperparameters: { learning_rate: 0.001, epochs: 1000, batch_size: 4 } },
      [{ sft_examples: sftExamples(4) }],
      (r) => {
        if (r.progress?.step === 1 && !secondResult) {
          secondResult = train({ job_id: 'second', kind: 'TRAIN_KIND_SFT', base_version: 'm0' }, [{ sft_examples: sftExamples(2) }]);
          // Then one that asks to wait: QUEUED, and it runs once the first is cancelled.
          void secondResult.then(() => {
            queuedResult = train(
              { job_id: 'queued-1', kind: 'TRAIN_KIND_SFT', base_version: 'm0', output_version: 'm0-queued', wait_if_busy: true, hyperparameters: { epochs: 1, batch_size: 2 } },
              [{ sft_examples: sftExamples(2) }],
              (q) => {
                if (q.job?.state === 'JOB_STATE_QUEUED') void unary(client, 'CancelJob', { job_id: 'long-1' });
              },
            );
          });
        }
      },
    );
    const outcome = await first;
    const second = await secondResult!;
    await expect.poll(() => queuedResult, { timeout: 10_000 }).toBeDefined();
    const queued = await queuedResult!;
    expect(queued.error).toBeNull();
    expect(queued.jobs.map((j) => j.state)).toEqual(['JOB_STATE_QUEUED', 'JOB_STATE_RECEIVING', 'JOB_STATE_RUNNING', 'JOB_STATE_PUBLISHING', 'JOB_STATE_SUCCEEDED']);
    expect(second.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(second.error?.details).toContain('long-1');
    expect(outcome.error).toBeNull();
    expect(outcome.jobs.at(-1)).toMatchObject({ job_id: 'long-1', state: 'JOB_STATE_CANCELLED', published_version: '' });
    const registry = await ModelRegistry.open(registryDir);
    expect(await registry.has('never')).toBe(false);
    expect((await unary<{ job: Job }>(client, 'GetJob', { job_id: 'long-1' })).job.state).toBe('JOB_STATE_CANCELLED');
    const missing = (await unary(client, 'CancelJob', { job_id: 'nope' }).catch((e) => e)) as grpc.ServiceError;
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
  }, 60_000);

  it('a client that cancels its call cancels the job, with nothing published', async () => {
    const outcome = await train(
      { job_id: 'dropped-1', kind: 'TRAIN_KIND_SFT', base_version: 'm0', output_version: 'dropped', hyperparameters: { epochs: 1000, batch_size: 4 } },
      [{ sft_examples: sftExamples(4) }],
      (r, call) => {
        if (r.progress?.step === 2) call.cancel();
      },
    );
    expect(outcome.error?.code).toBe(grpc.status.CANCELLED);
    await expect.poll(async () => (await unary<{ job: Job }>(client, 'GetJob', { job_id: 'dropped-1' })).job.state, { timeout: 10_000 }).toBe('JOB_STATE_CANCELLED');
    expect(await (await ModelRegistry.open(registryDir)).has('dropped')).toBe(false);
    const listed = await unary<{ jobs: Job[]; running_job_id: string }>(client, 'ListJobs', { limit: 2 });
    expect(listed.jobs.map((j) => j.job_id)).toEqual(['dropped-1', 'queued-1']);
    expect(listed.running_job_id).toBe('');
  }, 60_000);

  it('refuses a pair whose chosen equals its rejected, naming the field, and an unknown base; nothing stored is lost', async () => {
    const registry = await ModelRegistry.open(registryDir);
    const before = (await registry.list()).map((r) => r.version).sort();
    const bad = pairs(4);
    bad[2] = { ...bad[2], rejected: bad[2].chosen };
    const same = await train({ job_id: 'bad-1', kind: 'TRAIN_KIND_DPO', base_version: 'm0', output_version: 'bad' }, [{ preference_pairs: pairs(4).map((p) => ({ ...p, id: `a-${p.id}` })) }, { preference_pairs: bad }]);
    expect(same.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(same.error?.details).toContain('preference_pairs[2].rejected');
    expect(same.error?.details).toContain('data message 1');
    expect((await unary<{ job: Job }>(client, 'GetJob', { job_id: 'bad-1' })).job.state).toBe('JOB_STATE_FAILED');

    const unknown = await train({ kind: 'TRAIN_KIND_SFT', base_version: 'no-such-version' }, [{ sft_examples: sftExamples(2) }]);
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);
    const noSpec = await train({}, []);
    expect(noSpec.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const empty = await train({ kind: 'TRAIN_KIND_SFT', base_version: 'm0' }, []);
    expect(empty.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(empty.error?.details).toContain('empty');

    expect((await registry.list()).map((r) => r.version).sort()).toEqual(before);
    for (const version of before) await registry.verify(version);
  }, 60_000);

  it('knows its jobs after a restart', async () => {
    client.close();
    trainer.child.kill('SIGTERM');
    expect(await trainer.exited).toBe(0);
    // Every phase of a job was a span.
    const spans = readFileSync(trainer.traceFile, 'utf8');
    for (const name of ['trainer.receive', 'trainer.reference_logprobs', 'trainer.train', 'trainer.publish']) expect(spans).toContain(`"${name}"`);
    trainer = await startService('trainer', ['--registry', registryDir, '--jobs', jobsDir]);
    client = new Trainer(trainer.address, grpc.credentials.createInsecure());
    const got = await unary<{ job: Job }>(client, 'GetJob', { job_id: 'sft-1' });
    expect(got.job).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', published_version: 'm1', num_examples: 16 });
    expect((await unary<{ job: Job }>(client, 'GetJob', { job_id: 'long-1' })).job.state).toBe('JOB_STATE_CANCELLED');
    const listed = await unary<{ jobs: Job[] }>(client, 'ListJobs', {});
    const ids = listed.jobs.map((j) => j.job_id);
    expect(ids).toEqual(expect.arrayContaining(['sft-1', 'dpo-1', 'long-1', 'queued-1', 'dropped-1', 'bad-1']));
    // Newest first: the empty-dataset job (a server-assigned id) came last.
    expect(listed.jobs[0]).toMatchObject({ state: 'JOB_STATE_FAILED' });
    expect(ids.indexOf('dropped-1')).toBeLessThan(ids.indexOf('sft-1'));
  }, 60_000);
});
