// Scale-out across replicas (issue 7): two generator processes and two judge
// processes on loopback, driven the way the coordinator drives them, through
// its ReplicaSet (apps/coordinator/src/replicas.ts). A model swap is
// broadcast to both generators and confirmed; the sample stage is split in
// shards over both generators, and one generator is SIGKILLed in the middle
// of one of its shards; the log-prob stage is split over both judges. Every
// shard's result is appended to the run store stage as it is accepted, so the
// stored stage files show that no prompt was lost and none duplicated, and
// the samples equal those the surviving generator gives for all prompts in
// one call (per-prompt seeds: sharding does not change results). The test's
// trace file holds each stage's span with its shard spans under it, naming
// both replicas of each service, with the latency of every stage and shard.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RunStore } from '@cream/store';
import { readSpanRecords, stageSpan, startTelemetry, summarizeSpans, type SpanRecord, type TelemetryHandle } from '@cream/telemetry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The coordinator's replica set, driven directly (see the header).
// eslint-disable-next-line @nx/enforce-module-boundaries -- the e2e drives the coordinator's ReplicaSet against real processes until the coordinator app runs whole runs
import { ReplicaSet } from '../../apps/coordinator/src/replicas';
import { killAll, startService, type ServiceProcess } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions } from '../support/tiny-models';

interface Completion {
  prompt_id: string;
  sample_index: number;
  text: string;
  token_ids: number[];
  model_version: string;
  sequence_seed: number;
}
interface Score {
  id: string;
  logprob_sum: number;
  logprob_mean: number;
  num_tokens: number;
  model_version: string;
}
interface Prompt {
  id: string;
  text: string;
}

const NUM_PROMPTS = 16;
const PROMPTS_PER_SHARD = 2;
const NUM_SAMPLES = 2;
const ITEMS_PER_SCORE_SHARD = 6;
const sampling = { temperature: 0.8, top_p: 0.95, max_new_tokens: 24, seed: 7 };
const prompts: Prompt[] = Array.from({ length: NUM_PROMPTS }, (_, i) => ({ id: `q${String(i).padStart(2, '0')}`, text: `Question ${i}: what is ${i} + ${i + 1}?` }));

const protos = creamProto();
const Generator = serviceClient(protos, 'cream.v1.GeneratorService');
const Judge = serviceClient(protos, 'cream.v1.JudgeService');

let telemetry: TelemetryHandle;
let traceFile: string;
let registryDir: string;
let store: RunStore;
let generators: ServiceProcess[];
let judges: ServiceProcess[];

/** Streams a server-streaming call's messages; rejects with its ServiceError. */
function collect<T>(client: grpc.Client, method: string, request: unknown, onMessage: (message: T) => void = () => {}): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<T>>)[method](request, new grpc.Metadata(), {
      deadline: Date.now() + 60_000,
    });
    const out: T[] = [];
    call.on('data', (message: T) => {
      out.push(message);
      onMessage(message);
    });
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

function generateRequest(shard: Prompt[]) {
  return { prompts: shard.map((prompt) => ({ id: prompt.id, text: prompt.text })), num_samples: NUM_SAMPLES, sampling, model_version: 'v1' };
}

function replicaSet(service: string, processes: ServiceProcess[], Client: grpc.ServiceClientConstructor): ReplicaSet<grpc.Client> {
  return new ReplicaSet<grpc.Client>({
    service,
    targets: processes.map((process) => process.address),
    connect: (address) => new Client(address, grpc.credentials.createInsecure()),
    close: (client) => client.close(),
  });
}

const key = (completion: Completion) => `${completion.prompt_id}/${completion.sample_index}`;

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), 'cream-scale-out-'));
  traceFile = join(root, 'spans.jsonl');
  telemetry = startTelemetry({ serviceName: 'cream-coordinator', env: {}, traceFile });
  registryDir = join(root, 'registry');
  await publishTinyVersions(registryDir, [{ version: 'v1', seed: 11 }]);
  store = await RunStore.open(join(root, 'store'));
  // One sequence per batch: a shard's completions stream one by one, so a
  // replica killed after its first completion is killed mid-shard.
  const generatorArgs = ['--registry', registryDir, '--model=', '--max-batch-sequences', '1'];
  [generators, judges] = await Promise.all([
    Promise.all([startService('generator', generatorArgs), startService('generator', generatorArgs)]),
    Promise.all([startService('judge', ['--registry', registryDir]), startService('judge', ['--registry', registryDir])]),
  ]);
});

afterAll(async () => {
  await telemetry?.shutdown();
  await killAll();
});

describe('scale-out over two generators and two judges', () => {
  it('splits sampling and scoring over both replicas, and a generator killed mid-stage loses and duplicates nothing', async () => {
    const run = await store.createRun({ name: 'scale-out', generators: generators.map((g) => g.address), judges: judges.map((j) => j.address) }, { state: 'RUNNING' });
    const generatorSet = replicaSet('generator', generators, Generator);
    const judgeSet = replicaSet('judge', judges, Judge);
    const [victim, survivor] = generators;
    let victimShards = 0;
    let killedMidShard = false;

    // The swap reaches both generators, and both confirm v1 serves.
    const swapped = await generatorSet.broadcast((client) => unary<{ state: { serving: { info: { version: string } } } }>(client, 'LoadModel', { version: 'v1', wait: true }));
    expect([...swapped.keys()]).toEqual(generators.map((g) => g.address));
    expect([...swapped.values()].map((response) => response.state.serving.info.version)).toEqual(['v1', 'v1']);

    // Sample stage: shards of prompts over both generators; each accepted shard is appended to the stage's JSONL.
    const shards = Array.from({ length: NUM_PROMPTS / PROMPTS_PER_SHARD }, (_, i) => prompts.slice(i * PROMPTS_PER_SHARD, (i + 1) * PROMPTS_PER_SHARD));
    await stageSpan('iter-1/sample', { 'cream.run_id': run.runId, 'cream.iteration': 1 }, async () => {
      const writer = await run.beginStage('iter-1/sample');
      const jsonl = await writer.openJsonl('completions.jsonl');
      let appended = Promise.resolve();
      await generatorSet.map(
        shards,
        (client, shard, info) => {
          const killHere = info.address === victim.address && ++victimShards === 2;
          return collect<{ completion: Completion }>(client, 'Generate', generateRequest(shard), () => {
            if (killHere && !killedMidShard) {
              killedMidShard = true;
              victim.child.kill('SIGKILL');
            }
          });
        },
        {
          stage: 'iter-1/sample',
          onShardDone: (_index, messages) => {
            appended = appended.then(() => jsonl.writeAll(messages.map((message) => message.completion)));
          },
        },
      );
      await appended;
      await jsonl.close();
      await writer.commit({ prompts: NUM_PROMPTS, samples: NUM_SAMPLES });
    });
    expect(killedMidShard).toBe(true);
    expect(await victim.exited).toBe('SIGKILL');

    // The stored stage: every prompt x sample exactly once, all from v1.
    const sampleStage = await run.readStage('iter-1/sample');
    const stored: Completion[] = [];
    for await (const completion of sampleStage.readJsonl<Completion>('completions.jsonl')) stored.push(completion);
    const keys = stored.map(key);
    expect(new Set(keys).size).toBe(keys.length);
    expect([...keys].sort()).toEqual(prompts.flatMap((prompt) => Array.from({ length: NUM_SAMPLES }, (_, s) => `${prompt.id}/${s}`)).sort());
    expect(stored.every((completion) => completion.model_version === 'v1')).toBe(true);
    // Sharding and the retry changed nothing: the survivor samples the same for all prompts in one call.
    const survivorClient = new Generator(survivor.address, grpc.credentials.createInsecure());
    const reference = new Map((await collect<{ completion: Completion }>(survivorClient, 'Generate', generateRequest(prompts))).map((message) => [key(message.completion), message.completion]));
    survivorClient.close();
    for (const completion of stored) {
      expect({ text: completion.text, tokens: completion.token_ids, seed: completion.sequence_seed }, key(completion)).toEqual({
        text: reference.get(key(completion))!.text,
        tokens: reference.get(key(completion))!.token_ids,
        seed: reference.get(key(completion))!.sequence_seed,
      });
    }

    // Log-prob stage: the responses in shards over both judges, each preparing v1 once.
    const items = stored.filter((completion) => completion.text.length > 0).map((completion) => ({ id: key(completion), text: { prompt: { text: prompts.find((p) => p.id === completion.prompt_id)!.text }, response: completion.text } }));
    expect(items.length).toBeGreaterThanOrEqual(ITEMS_PER_SCORE_SHARD * 2);
    const itemShards = Array.from({ length: Math.ceil(items.length / ITEMS_PER_SCORE_SHARD) }, (_, i) => items.slice(i * ITEMS_PER_SCORE_SHARD, (i + 1) * ITEMS_PER_SCORE_SHARD));
    const prepared: string[] = [];
    await stageSpan('iter-1/logprobs/m1', { 'cream.run_id': run.runId, 'cream.iteration': 1 }, async () => {
      const scores = await judgeSet.map(itemShards, (client, shard) => collect<Score>(client, 'ScoreLogProbs', { model_version: 'v1', items: shard }), {
        stage: 'iter-1/logprobs/m1',
        prepare: async (client, address) => {
          prepared.push(address);
          await unary(client, 'LoadModel', { version: 'v1' });
        },
      });
      await run.writeStage('iter-1/logprobs/m1', { items: items.length }, { jsonl: { 'scores.jsonl': scores.flat() } });
    });
    expect([...prepared].sort()).toEqual(judges.map((j) => j.address).sort());
    const scored: Score[] = [];
    for await (const score of (await run.readStage('iter-1/logprobs/m1')).readJsonl<Score>('scores.jsonl')) scored.push(score);
    expect(scored.map((score) => score.id)).toEqual(items.map((item) => item.id));
    expect(scored.every((score) => score.model_version === 'v1' && score.num_tokens > 0 && Number.isFinite(score.logprob_sum))).toBe(true);
    generatorSet.close();
    judgeSet.close();

    // The trace: each stage's shard spans are its children and name both replicas.
    await telemetry.flush();
    const records = readSpanRecords(traceFile);
    const stageOf = (name: string) => records.find((record) => record.name === `stage ${name}` && record.attributes['cream.run_id'] === run.runId)!;
    const shardsOf = (stage: SpanRecord) => records.filter((record) => record.parentSpanId === stage.spanId && record.name.startsWith('shard '));
    const sample = stageOf('iter-1/sample');
    const logprobs = stageOf('iter-1/logprobs/m1');
    const sampleShards = shardsOf(sample);
    const scoreShards = shardsOf(logprobs);
    expect(new Set(sampleShards.map((span) => span.attributes['cream.replica']))).toEqual(new Set(generators.map((g) => g.address)));
    expect(new Set(scoreShards.map((span) => span.attributes['cream.replica']))).toEqual(new Set(judges.map((j) => j.address)));
    // The killed shard: one failed attempt on the victim, then one success on the survivor.
    const failed = sampleShards.filter((span) => span.status.code === 'ERROR');
    expect(failed.map((span) => span.attributes['cream.replica'])).toEqual([victim.address]);
    const retried = sampleShards.filter((span) => span.attributes['cream.shard.index'] === failed[0].attributes['cream.shard.index'] && span.status.code !== 'ERROR');
    expect(retried.map((span) => [span.attributes['cream.replica'], span.attributes['cream.shard.attempt']])).toEqual([[survivor.address, 2]]);
    expect(sampleShards.filter((span) => span.status.code !== 'ERROR')).toHaveLength(shards.length);
    expect(scoreShards).toHaveLength(itemShards.length);
    expect(sampleShards.every((span) => span.attributes['cream.shard.items'] === PROMPTS_PER_SHARD)).toBe(true);

    // Per-stage and per-shard latency, as `cream trace` prints it.
    const rows = summarizeSpans(traceFile, { traceId: sample.traceId });
    const row = (name: string) => rows.find((candidate) => candidate.name === name)!;
    expect(row('stage iter-1/sample')).toMatchObject({ count: 1 });
    expect(row('shard generator')).toMatchObject({ count: shards.length + 1 });
    expect(row('shard generator').maxMs).toBeGreaterThan(0);
    expect(row('stage iter-1/sample').totalMs).toBeGreaterThanOrEqual(row('shard generator').maxMs);
    expect(summarizeSpans(traceFile, { traceId: logprobs.traceId }).find((candidate) => candidate.name === 'shard judge')).toMatchObject({ count: itemShards.length });
  });
});
