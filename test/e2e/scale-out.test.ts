// Scale-out across replicas (issue 7), as a user runs it: `cream serve
// coordinator` with TWO generator processes and TWO judge processes (plus the
// consistency scorer and the trainer) on loopback, a random tiny M0 and small
// data files. One CREAM iteration runs; its sample stage is split in shards
// over both generators, and one generator is SIGKILLed while it works on its
// second shard; the log-prob stages are split over both judges. The run
// succeeds, and the run store's stage files hold every prompt x sample once
// (nothing lost, nothing duplicated) and a log-prob for every response. The
// coordinator's trace file (and the run folder's trace.jsonl) holds each
// stage's span with its shard spans under it, naming both replicas of each
// service, the killed shard's failed attempt and its retry on the other
// generator, and the latency of every stage and shard.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { readSpanRecords, summarizeSpans, type SpanRecord } from '@cream/telemetry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startService, type ServiceProcess } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions, tinyLlamaConfig } from '../support/tiny-models';

// Room for a chat-templated prompt (byte-level tokens) and the sampled response after it.
const hfConfig = { ...tinyLlamaConfig, max_position_embeddings: 384 };
// The coordinator's sample shards hold 8 prompts (SHARD_SIZES in apps/coordinator/src/stages.ts):
// 32 prompts make 4 shards over the 2 generators; 32 x 2 responses make 2 score shards of 32.
const NUM_PROMPTS = 32;
const NUM_SAMPLES = 2;

interface StageView {
  name: string;
  state: string;
  metrics: Record<string, number>;
}
interface RunView {
  run_id: string;
  state: string;
  stages: StageView[];
  run_dir: string;
  error: string;
}
interface SampleRecord {
  id: string;
  promptId: string;
  index: number;
  text: string;
}
interface LogprobRecord {
  id: string;
  numTokens: number;
}

const proto = creamProto();
const Coordinator = serviceClient(proto, 'cream.v1.CoordinatorService');

let home: string;
let dataDir: string;
let generators: ServiceProcess[];
let judges: ServiceProcess[];
let coordinator: ServiceProcess;
let client: grpc.Client;

function writeJsonl(name: string, records: unknown[]): string {
  const path = join(dataDir, name);
  writeFileSync(path, records.map((record) => JSON.stringify(record)).join('\n') + '\n');
  return path;
}

function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

/** WatchRun until the stream ends; the last message is run_finished. */
function watch(runId: string): Promise<Array<{ event: string; run_finished?: RunView }>> {
  return new Promise((resolve, reject) => {
    const messages: Array<{ event: string; run_finished?: RunView }> = [];
    const call = (client as unknown as { WatchRun(request: unknown): grpc.ClientReadableStream<{ event: string }> }).WatchRun({ run_id: runId });
    call.on('data', (message: { event: string; run_finished?: RunView }) => messages.push(message));
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

/** The stage folder of a stored stage (the run store writes "/" in stage names as "+"). */
function stageFile(run: RunView, stage: string, file: string): string {
  return join(run.run_dir, 'stages', stage.replace(/\//g, '+'), file);
}

const isGenerateCall = (line: Record<string, unknown>) => line.msg === 'call started' && String(line.method).endsWith('/Generate');

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'cream-scale-out-home-'));
  dataDir = mkdtempSync(join(tmpdir(), 'cream-scale-out-data-'));
  const registryDir = join(home, 'registry');
  const words = ['red', 'blue', 'green', 'gold', 'gray', 'pink', 'teal', 'navy'];
  writeJsonl(
    'sft.jsonl',
    words.map((word, i) => ({ messages: [{ role: 'user', content: `Name color ${i}.` }, { role: 'assistant', content: `It is ${word}.` }] })),
  );
  writeJsonl(
    'prompts.jsonl',
    Array.from({ length: NUM_PROMPTS }, (_, i) => ({ id: `p${String(i).padStart(2, '0')}`, prompt: `Which color rhymes with ${words[i % 8]} number ${i}?` })),
  );
  await publishTinyVersions(registryDir, [{ version: 'm0', seed: 23 }], hfConfig);
  const env = { CREAM_HOME: home };
  // Four sequences per batch: a shard of 8 prompts x 2 samples takes several batches, so the kill lands mid-shard.
  const generatorArgs = ['--registry', registryDir, '--max-batch-sequences', '4'];
  // Two processes at a time: seven starting at once on two busy cores can take over a minute each.
  generators = await Promise.all([startService('generator', generatorArgs, env), startService('generator', generatorArgs, env)]);
  judges = await Promise.all([startService('judge', ['--registry', registryDir], env), startService('judge', ['--registry', registryDir], env)]);
  const [scorer, trainer] = await Promise.all([startService('consistency-scorer', [], env), startService('trainer', ['--registry', registryDir, '--jobs', join(home, 'jobs')], env)]);
  coordinator = await startService(
    'coordinator',
    [
      '--registry',
      registryDir,
      '--runs',
      join(home, 'runs'),
      '--generators',
      generators.map((g) => g.address).join(','),
      '--judges',
      judges.map((j) => j.address).join(','),
      '--consistency-scorer',
      scorer.address,
      '--trainer',
      trainer.address,
    ],
    env,
  );
  await coordinator.waitForLine((line) => line.msg === 'serving', 60_000);
  client = new Coordinator(coordinator.address, grpc.credentials.createInsecure());
}, 240_000);

afterAll(async () => {
  client?.close();
  await killAll();
});

describe('a run over two generators and two judges', () => {
  it('splits sampling and scoring over both replicas, and a generator killed mid-stage loses and duplicates no prompt', async () => {
    // The victim is whichever generator starts a second shard first (the first to
    // finish one takes the third of the four): which one depends on timing.
    let [victim, survivor] = generators;
    const spec = {
      name: 'scale-out',
      base_version: 'm0',
      method: 'METHOD_CREAM',
      rate: 'CONSISTENCY_RATE_DYN',
      iterations: 1,
      num_samples: NUM_SAMPLES,
      data: { sft_path: join(dataDir, 'sft.jsonl'), prompts_path: join(dataDir, 'prompts.jsonl') },
      sampling: { temperature: 1, top_p: 1, max_new_tokens: 16 },
      sft: { learning_rate: 0.01, epochs: 1, batch_size: 4, warmup_ratio: 0 },
      dpo: { learning_rate: 0.001, epochs: 1, batch_size: 4, warmup_ratio: 0 },
      seed: 5,
      evaluate: false,
    };
    // With evaluation off, the sample stage makes the first Generate calls; SIGKILL
    // a generator as its second shard starts (it finished one, the other keeps going).
    let killedAt = '';
    const killer = setInterval(() => {
      if (killedAt !== '') return;
      const index = generators.findIndex((generator) => generator.lines.filter(isGenerateCall).length >= 2);
      if (index < 0) return;
      [victim, survivor] = [generators[index], generators[1 - index]];
      killedAt = new Date().toISOString();
      victim.child.kill('SIGKILL');
    }, 2);
    let run: RunView;
    try {
      const started = (await unary<{ run: RunView }>(client, 'StartRun', { spec }, 60_000)).run;
      const messages = await watch(started.run_id);
      run = messages[messages.length - 1].run_finished!;
    } finally {
      clearInterval(killer);
    }
    expect(killedAt, 'no generator started a second shard').not.toBe('');
    expect(await victim.exited).toBe('SIGKILL');
    expect(run.state, run.error).toBe('RUN_STATE_SUCCEEDED');
    expect(run.stages.map((stage) => stage.name)).toEqual(['data', 'sft', 'iter-1/sample', 'iter-1/logprobs/m1', 'iter-1/logprobs/m0', 'iter-1/consistency', 'iter-1/train']);
    expect(run.stages.every((stage) => stage.state === 'STAGE_STATE_DONE')).toBe(true);
    // The swap to M1 reached both generators, confirmed, before either got a Generate call.
    const firstCall = (lines: Array<Record<string, unknown>>, method: string) =>
      String(lines.find((line) => line.msg === 'call started' && String(line.method).endsWith(`/${method}`))?.time ?? '');
    const firstGenerate = [victim, survivor].map((g) => firstCall(g.lines, 'Generate')).sort()[0];
    for (const generator of [victim, survivor]) {
      const swapped = firstCall(generator.lines, 'LoadModel');
      expect(swapped, `${generator.address} was never swapped`).not.toBe('');
      expect(swapped < firstGenerate, `${generator.address} swapped at ${swapped}, after the first Generate at ${firstGenerate}`).toBe(true);
    }

    // The stored sample stage: every prompt x sample exactly once.
    const samples = readJsonl<SampleRecord>(stageFile(run, 'iter-1/sample', 'items.jsonl'));
    const keys = samples.map((sample) => `${sample.promptId}/${sample.index}`);
    expect(new Set(keys).size).toBe(keys.length);
    const expectedKeys = Array.from({ length: NUM_PROMPTS }, (_, i) => Array.from({ length: NUM_SAMPLES }, (_, s) => `p${String(i).padStart(2, '0')}/${s}`)).flat();
    expect([...keys].sort()).toEqual(expectedKeys.sort());
    expect(run.stages.find((stage) => stage.name === 'iter-1/sample')!.metrics.completions).toBe(NUM_PROMPTS * NUM_SAMPLES);
    // Both log-prob stages scored every non-empty response once.
    const scorable = samples.filter((sample) => sample.text.length > 0).map((sample) => sample.id);
    expect(scorable.length).toBeGreaterThan(32);
    for (const stage of ['iter-1/logprobs/m1', 'iter-1/logprobs/m0']) {
      const scored = readJsonl<LogprobRecord>(stageFile(run, stage, 'items.jsonl'));
      expect(scored.map((record) => record.id), stage).toEqual(scorable);
      expect(scored.every((record) => record.numTokens > 0)).toBe(true);
    }

    // The trace: shard spans under their stage span, naming both replicas of each service.
    const traceFile = join(run.run_dir, 'trace.jsonl');
    const records = readSpanRecords(traceFile);
    expect(readSpanRecords(coordinator.traceFile).filter((record) => record.name.startsWith('shard ')).length).toBe(records.filter((record) => record.name.startsWith('shard ')).length);
    const stageSpan = (name: string) => records.find((record) => record.name === `stage ${name}` && record.attributes['cream.run_id'] === run.run_id)!;
    const shardsUnder = (stage: SpanRecord) => records.filter((record) => record.parentSpanId === stage.spanId && record.name.startsWith('shard '));
    const sample = stageSpan('iter-1/sample');
    const sampleShards = shardsUnder(sample);
    expect(sampleShards.every((span) => span.name === 'shard generator' && span.traceId === sample.traceId)).toBe(true);
    expect(new Set(sampleShards.map((span) => span.attributes['cream.replica']))).toEqual(new Set(generators.map((g) => g.address)));
    const ok = sampleShards.filter((span) => span.status.code !== 'ERROR');
    expect(ok).toHaveLength(NUM_PROMPTS / 8);
    expect(ok.filter((span) => span.attributes['cream.replica'] === victim.address).length).toBeGreaterThanOrEqual(1);
    // The killed shard: one failed attempt on the victim, retried once on the survivor.
    const failed = sampleShards.filter((span) => span.status.code === 'ERROR');
    expect(failed.map((span) => [span.attributes['cream.replica'], span.attributes['cream.shard.attempt']])).toEqual([[victim.address, 1]]);
    const retried = ok.filter((span) => span.attributes['cream.shard.index'] === failed[0].attributes['cream.shard.index']);
    expect(retried.map((span) => [span.attributes['cream.replica'], span.attributes['cream.shard.attempt']])).toEqual([[survivor.address, 2]]);
    for (const stage of ['iter-1/logprobs/m1', 'iter-1/logprobs/m0']) {
      const shards = shardsUnder(stageSpan(stage));
      expect(shards.every((span) => span.name === 'shard judge' && span.status.code !== 'ERROR'), stage).toBe(true);
      expect(new Set(shards.map((span) => span.attributes['cream.replica'])), stage).toEqual(new Set(judges.map((j) => j.address)));
      expect(shards.map((span) => span.attributes['cream.shard.items']).sort()).toEqual([32, scorable.length - 32].sort());
    }

    // Iteration latency per stage and per shard, as `cream trace --trace-id` prints it.
    const rows = summarizeSpans(traceFile, { traceId: sample.traceId });
    const row = (name: string) => rows.find((candidate) => candidate.name === name && candidate.kind === 'INTERNAL');
    for (const stage of ['iter-1/sample', 'iter-1/logprobs/m1', 'iter-1/logprobs/m0', 'iter-1/consistency', 'iter-1/train']) {
      expect(row(`stage ${stage}`), stage).toMatchObject({ count: 1 });
    }
    expect(row('shard generator')).toMatchObject({ count: NUM_PROMPTS / 8 + 1 });
    expect(row('shard judge')).toMatchObject({ count: 4 });
    expect(row('stage iter-1/sample')!.totalMs).toBeGreaterThanOrEqual(row('shard generator')!.maxMs);
  });
});
