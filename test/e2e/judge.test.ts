// The judge as a user meets it: `cream serve judge --registry DIR` as a real
// process over a temporary registry of random tiny versions, called by clients
// built from the .proto files only. Its log-probabilities equal those of
// LanguageModel computed in this process on the same checkpoint (and of
// `cream score`, when the CLI has it), whatever the order or batching of the
// items; two versions stay resident and a third evicts the least recently
// used under a small budget; rubric judgments come k per item with parsed and
// unparsed counts that match the rubric parser; an unknown version is
// NOT_FOUND, a tampered one FAILED_PRECONDITION, bad input INVALID_ARGUMENT
// naming the field, and the service keeps serving through all of it.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initCompute, silentLogger } from '@cream/compute';
import { parseRubricScore } from '@cream/cream';
import { LanguageModel, type PromptInput } from '@cream/model';
import type { VersionRecord } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creamBin, killAll, startService, type ServiceProcess } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions, tinyLlamaConfig } from '../support/tiny-models';

// The tiny Llama with room for the rubric prompt (about 1200 byte-level tokens) and the judgments after it.
const hfConfig = { ...tinyLlamaConfig, max_position_embeddings: 1536 };

interface ScoreResult {
  id: string;
  logprob_sum: number;
  logprob_mean: number;
  num_tokens: number;
  model_version: string;
}
interface JudgeResult {
  id: string;
  judgments: Array<{ text: string; score?: number | null }>;
  mean_score?: number | null;
  num_parsed: number;
  num_unparsed: number;
  model_version: string;
}
interface LoadedModel {
  info: { version: string; architecture: string; num_parameters: number; vocab_size: number; context_length: number; manifest_sha256: string; parent_version: string };
  loaded_at: { seconds: number; nanos: number } | null;
  weight_bytes: number;
}
interface ListModelsResult {
  models: LoadedModel[];
  budget_bytes: number;
  compute: { backend: string; variant: string; detail: string; threads: number; simd: string };
}

let registryDir: string;
const versions = new Map<string, VersionRecord>();
let weightBytes = 0;
let budget = 0;
let judge: ServiceProcess;
let client: grpc.Client;
let m1: LanguageModel;

/** Calls a server-streaming method and collects its messages. */
function stream<T>(method: string, request: unknown, deadlineMs = 60_000): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    const call = (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<T>>)[method](
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
    );
    const messages: T[] = [];
    call.on('data', (message: T) => messages.push(message));
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

/** The error a call fails with. */
async function failure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const outcome = await call.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`the call succeeded: ${JSON.stringify(outcome.value).slice(0, 200)}`);
  return outcome.error as grpc.ServiceError;
}

function expectClose(actual: number, expected: number, what: string): void {
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));
}

// Items of every form: raw text, a conversation, token ids; of several lengths.
const textItems = [
  { id: 'raw-short', prompt: { text: 'Q: 1 + 1?' }, response: '2' },
  { id: 'raw-long', prompt: { text: 'Question: which of these is a mammal? (A) trout (B) whale (C) shark. Think step by step.' }, response: 'A whale breathes air and feeds its young milk.\nAnswer: B' },
  { id: 'chat-one', prompt: { messages: [{ role: 'user', content: 'Name a colour.' }] }, response: 'Blue.' },
  {
    id: 'chat-turns',
    prompt: {
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'What is 2 + 3?' },
        { role: 'assistant', content: '5' },
        { role: 'user', content: 'And times 4?' },
      ],
    },
    response: '20, since (2 + 3) * 4 = 20.',
  },
] satisfies Array<{ id: string; prompt: PromptInput; response: string }>;
const tokenItems = Array.from({ length: 12 }, (_, i) => ({
  id: `ids-${i}`,
  promptIds: Array.from({ length: 1 + ((i * 7) % 23) }, (_, j) => (i * 31 + j * 17) % 320),
  responseIds: Array.from({ length: 1 + ((i * 5) % 11) }, (_, j) => (i * 13 + j * 29 + 3) % 320),
}));

function wireItem(id: string): Record<string, unknown> {
  const text = textItems.find((item) => item.id === id);
  if (text) {
    const prompt = 'text' in text.prompt ? { text: text.prompt.text } : { chat: { messages: text.prompt.messages } };
    return { id, text: { prompt, response: text.response } };
  }
  const tokens = tokenItems.find((item) => item.id === id)!;
  return { id, tokens: { prompt_ids: tokens.promptIds, response_ids: tokens.responseIds } };
}
const allIds = [...textItems.map((i) => i.id), ...tokenItems.map((i) => i.id)];

beforeAll(async () => {
  registryDir = join(mkdtempSync(join(tmpdir(), 'cream-judge-e2e-')), 'registry');
  // The tampered version first, so that "latest" is m3.
  const published = await publishTinyVersions(
    registryDir,
    ['bad', 'm1', 'm2', 'm3'].map((version, seed) => ({ version, seed })),
    hfConfig,
  );
  for (const [version, record] of published.records) versions.set(version, record);
  weightBytes = published.numParameters * 4;
  const weights = join(versions.get('bad')!.path, 'model.safetensors');
  chmodSync(weights, 0o644);
  const bytes = readFileSync(weights);
  bytes[bytes.length - 5] ^= 0x10;
  writeFileSync(weights, bytes);
  // Room for two versions, not three.
  budget = Math.floor(weightBytes * 2.5);
  judge = await startService('judge', ['--registry', registryDir, '--memory-budget-bytes', String(budget), '--judge-batch-sequences', '4']);
  const Judge = serviceClient(creamProto(), 'cream.v1.JudgeService');
  client = new Judge(judge.address, grpc.credentials.createInsecure());
  // The same default backend as the service (publishing ran on the CPU backend).
  await initCompute({ env: {}, logger: silentLogger });
  m1 = await LanguageModel.load(versions.get('m1')!.path, { scope: 'e2e-judge-m1' });
  await judge.waitForLine((line) => line.msg === 'serving');
});

afterAll(async () => {
  client?.close();
  m1?.dispose();
  await killAll();
});

describe('cream serve judge', () => {
  it('is SERVING with no version resident, and lists its budget and compute backend', async () => {
    const Health = serviceClient(creamProto(), 'grpc.health.v1.Health');
    const health = new Health(judge.address, grpc.credentials.createInsecure());
    expect(await unary(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    expect(await unary(health, 'Check', { service: 'cream.v1.JudgeService' })).toEqual({ status: 'SERVING' });
    health.close();
    const listed = await unary<ListModelsResult>(client, 'ListModels', {});
    expect(listed.models).toEqual([]);
    expect(listed.budget_bytes).toBe(budget);
    expect(listed.compute.variant).toMatch(/^(tfjs-node-gpu|tfjs-node|wasm\+native|wasm|cpu)$/);
    expect(listed.compute.threads).toBeGreaterThan(0);
  });

  it('scores text, chat and token-id items as LanguageModel does in this process, in request order', async () => {
    const results = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: allIds.map(wireItem) });
    expect(results.map((r) => r.id)).toEqual(allIds);
    const expected = [
      ...(await m1.scoreText(textItems.map((item) => ({ prompt: item.prompt, response: item.response })))),
      ...(await m1.scoreIds(tokenItems)),
    ];
    results.forEach((result, i) => {
      expect(result.model_version).toBe('m1');
      expect(result.num_tokens, result.id).toBe(expected[i].numTokens);
      expectClose(result.logprob_sum, expected[i].logprobSum, `${result.id} sum`);
      expectClose(result.logprob_mean, expected[i].logprobMean, `${result.id} mean`);
      expect(result.logprob_sum).toBeLessThan(0);
    });
  });

  it('gives the same scores whatever the order and batching of the items, and "latest" is the last published', async () => {
    const inOrder = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: allIds.map(wireItem) });
    const reversed = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: [...allIds].reverse().map(wireItem) });
    const oneByOne = (await Promise.all(allIds.map((id) => stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: [wireItem(id)] })))).flat();
    // Same items, same token counts and the same log-probs up to float32 rounding: on
    // wasm+native the fused kernels and the GEMM block their loops by the batch's
    // shape, so a sum may differ in its last bits with the batch (bit-exact only on cpu).
    const byId = (results: ScoreResult[]) => new Map(results.map((r) => [r.id, r]));
    for (const other of [reversed, oneByOne]) {
      const got = byId(other);
      expect([...got.keys()].sort()).toEqual([...byId(inOrder).keys()].sort());
      for (const expected of inOrder) {
        const result = got.get(expected.id)!;
        expect(result.num_tokens, expected.id).toBe(expected.num_tokens);
        expect(result.model_version).toBe(expected.model_version);
        expectClose(result.logprob_sum, expected.logprob_sum, `${expected.id} sum in another batch`);
        expectClose(result.logprob_mean, expected.logprob_mean, `${expected.id} mean in another batch`);
      }
    }
    const latest = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'latest', items: [wireItem('raw-short')] });
    expect(latest[0].model_version).toBe('m3');
    expect(latest[0].logprob_sum).not.toBe(inOrder[0].logprob_sum);
  });

  const hasScoreCommand = spawnSync(process.execPath, [creamBin, 'score', '--help'], { encoding: 'utf8', timeout: 60_000 }).status === 0;
  it.skipIf(!hasScoreCommand)('scores as `cream score` does on the same version', async () => {
    const input = join(mkdtempSync(join(tmpdir(), 'cream-judge-score-')), 'items.jsonl');
    const lines = allIds.map((id) => {
      const text = textItems.find((item) => item.id === id);
      if (!text) {
        const tokens = tokenItems.find((item) => item.id === id)!;
        return { prompt_ids: tokens.promptIds, response_ids: tokens.responseIds };
      }
      return 'text' in text.prompt ? { prompt: text.prompt.text, response: text.response } : { messages: text.prompt.messages, response: text.response };
    });
    writeFileSync(input, lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
    // --raw: a string prompt is raw text, as the judge's Prompt.text is.
    const run = spawnSync(process.execPath, [creamBin, 'score', '--model', versions.get('m1')!.path, '--input', input, '--raw'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const cli = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { logprob_sum: number; logprob_mean: number; num_tokens: number });
    const served = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: allIds.map(wireItem) });
    expect(cli).toHaveLength(served.length);
    served.forEach((result, i) => {
      expect(result.num_tokens, result.id).toBe(cli[i].num_tokens);
      expectClose(result.logprob_sum, cli[i].logprob_sum, `${result.id} vs cream score`);
    });
  });

  it('keeps two versions resident and evicts the least recently used for a third', async () => {
    await unary(client, 'LoadModel', { version: 'm2' });
    let listed = await unary<ListModelsResult>(client, 'ListModels', {});
    expect(listed.models.map((m) => m.info.version)).toEqual(['m2', 'm1']);
    // Using m1 makes m2 the least recently used.
    await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: [wireItem('ids-0')] });
    const loaded = await unary<{ model: LoadedModel; evicted_versions: string[] }>(client, 'LoadModel', { version: 'latest' });
    expect(loaded.evicted_versions).toEqual(['m2']);
    expect(loaded.model.info).toEqual({
      version: 'm3',
      architecture: 'LlamaForCausalLM',
      num_parameters: weightBytes / 4,
      vocab_size: 320,
      context_length: 1536,
      manifest_sha256: versions.get('m3')!.manifestSha256,
      parent_version: '',
    });
    expect(loaded.model.weight_bytes).toBe(weightBytes);
    expect(loaded.model.loaded_at!.seconds).toBeGreaterThan(Date.now() / 1000 - 600);
    listed = await unary<ListModelsResult>(client, 'ListModels', {});
    expect(listed.models.map((m) => m.info.version)).toEqual(['m3', 'm1']);
    expect(judge.lines).toContainEqual(expect.objectContaining({ msg: 'versions evicted', version: 'm3', evicted: ['m2'] }));
    // An evicted version loads again on demand.
    const again = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm2', items: [wireItem('ids-1')] });
    expect(again[0].model_version).toBe('m2');
    listed = await unary<ListModelsResult>(client, 'ListModels', {});
    expect(listed.models.map((m) => m.info.version)).toEqual(['m2', 'm3']);
    expect((await failure(unary(client, 'UnloadModel', { version: 'm1' }))).code).toBe(grpc.status.NOT_FOUND);
    expect(await unary(client, 'UnloadModel', { version: 'm3' })).toEqual({ freed_bytes: weightBytes });
    listed = await unary<ListModelsResult>(client, 'ListModels', {});
    expect(listed.models.map((m) => m.info.version)).toEqual(['m2']);
  });

  it('judges with the rubric: k judgments per item, counts that match the parser, the same whatever the batch', async () => {
    const items = [
      { id: 'q-a', item: { prompt: { text: 'What is 2 + 3?' }, response: '5' } },
      { id: 'q-b', item: { prompt: { chat: { messages: [{ role: 'user', content: 'Name a colour.' }] } }, response: 'Blue.' } },
    ];
    const sampling = { temperature: 1, max_new_tokens: 10, seed: 5 };
    // --judge-batch-sequences 4: both items' judgments in one batch here, q-b alone below.
    const together = await stream<JudgeResult>('JudgeWithRubric', { model_version: 'm1', items, num_judgments: 2, sampling });
    const alone = await stream<JudgeResult>('JudgeWithRubric', { model_version: 'm1', items: [items[1]], num_judgments: 2, sampling });
    expect(together.map((r) => r.id)).toEqual(['q-a', 'q-b']);
    expect(alone[0]).toEqual(together[1]);
    for (const result of together) {
      expect(result.model_version).toBe('m1');
      expect(result.judgments).toHaveLength(2);
      const parsed = result.judgments.map((j) => parseRubricScore(j.text));
      expect(result.judgments.map((j) => j.score ?? undefined)).toEqual(parsed);
      const scores = parsed.filter((s): s is number => s !== undefined);
      expect(result.num_parsed).toBe(scores.length);
      expect(result.num_unparsed).toBe(2 - scores.length);
      if (scores.length === 0) expect(result.mean_score ?? undefined).toBeUndefined();
      else expect(result.mean_score).toBeCloseTo(scores.reduce((a, b) => a + b, 0) / scores.length, 12);
    }
    // The two judgments of an item are two draws, not one repeated.
    expect(together[0].judgments[0].text).not.toBe(together[0].judgments[1].text);
  });

  it('answers NOT_FOUND for an unknown version and FAILED_PRECONDITION for a tampered one, and keeps serving', async () => {
    const before = (await unary<ListModelsResult>(client, 'ListModels', {})).models.map((m) => m.info.version);
    const unknown = await failure(stream('ScoreLogProbs', { model_version: 'nope', items: [wireItem('ids-0')] }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toContain('nope');
    expect((await failure(unary(client, 'LoadModel', { version: 'nope' }))).code).toBe(grpc.status.NOT_FOUND);
    // One call at a time: a second call started before the first settles could
    // reject while nothing handles it yet (an unhandled rejection ends the test run).
    for (const call of [() => unary(client, 'LoadModel', { version: 'bad' }), () => stream('ScoreLogProbs', { model_version: 'bad', items: [wireItem('ids-0')] })]) {
      const tampered = await failure(call());
      expect(tampered.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(tampered.details).toMatch(/"bad" does not match its manifest: model\.safetensors is modified/);
    }
    expect((await unary<ListModelsResult>(client, 'ListModels', {})).models.map((m) => m.info.version)).toEqual(before);
    const still = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: [wireItem('raw-short')] });
    expect(still[0].model_version).toBe('m1');
  });

  const score = (items: unknown[], model_version = 'm1') => ({ model_version, items });
  const rubric = (extra: Record<string, unknown>) => ({
    model_version: 'm1',
    items: [{ id: 'q', item: { prompt: { text: 'Why?' }, response: 'Because.' } }],
    ...extra,
  });
  const badInputs: Array<[string, string, unknown, string]> = [
    ['no version', 'ScoreLogProbs', score([wireItem('ids-0')], ''), 'model_version'],
    ['a malformed version name', 'ScoreLogProbs', score([wireItem('ids-0')], '../m1'), 'model_version'],
    ['no items', 'ScoreLogProbs', score([]), 'items'],
    ['a repeated id', 'ScoreLogProbs', score([wireItem('ids-0'), wireItem('ids-0')]), 'items[1].id'],
    ['an item with neither text nor tokens', 'ScoreLogProbs', score([{ id: 'x' }]), 'items[0].input'],
    ['an empty response', 'ScoreLogProbs', score([{ id: 'x', text: { prompt: { text: 'Q' }, response: '' } }]), 'items[0].text.response'],
    ['an empty prompt', 'ScoreLogProbs', score([{ id: 'x', text: { prompt: { text: '' }, response: 'R' } }]), 'items[0].text.prompt.text'],
    ['a token id outside the vocabulary', 'ScoreLogProbs', score([{ id: 'x', tokens: { prompt_ids: [1], response_ids: [2, 320] } }]), 'items[0].tokens.response_ids[1]'],
    ['a negative token id', 'ScoreLogProbs', score([{ id: 'x', tokens: { prompt_ids: [-1], response_ids: [2] } }]), 'items[0].tokens.prompt_ids[0]'],
    ['an item over the context', 'ScoreLogProbs', score([wireItem('ids-0'), { id: 'x', tokens: { prompt_ids: new Array(1536).fill(7), response_ids: [2] } }]), 'items[1].tokens'],
    ['k over 16', 'JudgeWithRubric', rubric({ num_judgments: 17 }), 'num_judgments'],
    ['a negative temperature', 'JudgeWithRubric', rubric({ sampling: { temperature: -0.5 } }), 'sampling.temperature'],
    ['top-p outside (0, 1]', 'JudgeWithRubric', rubric({ sampling: { top_p: 1.5 } }), 'sampling.top_p'],
    ['max tokens over the limit', 'JudgeWithRubric', rubric({ sampling: { max_new_tokens: 5000 } }), 'sampling.max_new_tokens'],
    ['top-k over the vocabulary', 'JudgeWithRubric', rubric({ sampling: { top_k: 1000 } }), 'sampling.top_k'],
    ['an empty question', 'JudgeWithRubric', rubric({ items: [{ id: 'q', item: { prompt: { text: '' }, response: 'R' } }] }), 'items[0].item.prompt.text'],
  ];

  it.each(badInputs)('refuses %s with INVALID_ARGUMENT naming the field, and keeps serving', async (_name, method, request, field) => {
    const error = await failure(stream(method, request));
    expect(error.code, error.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain(field);
    expect(error.metadata.get('cream-field')).toEqual([field]);
    const ok = await stream<ScoreResult>('ScoreLogProbs', { model_version: 'm1', items: [wireItem('ids-2')] });
    expect(ok[0].id).toBe('ids-2');
  });

  it('exits 0 on SIGTERM with a span for every call and for each version load', async () => {
    judge.child.kill('SIGTERM');
    expect(await judge.exited).toBe(0);
    const spans = readFileSync(judge.traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const names = new Set(spans.map((s) => s.name));
    for (const method of ['ScoreLogProbs', 'JudgeWithRubric', 'LoadModel', 'UnloadModel', 'ListModels']) {
      expect(names, method).toContain(`grpc.cream.v1.JudgeService/${method}`);
    }
    expect(spans).toContainEqual(expect.objectContaining({ name: 'judge.load_model', service: 'cream-judge', attributes: expect.objectContaining({ 'cream.model_version': 'm3' }) }));
  });
});
