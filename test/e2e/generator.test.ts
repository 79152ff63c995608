// The generator as a user meets it: `cream serve generator --registry DIR
// --model v1` as a real process over a temporary registry of random tiny
// versions, called by clients built from the .proto files only. It answers
// NOT_SERVING until a first version serves; Generate streams prompts x samples
// completions, the same seed gives the same samples whatever shares the call
// or the batch; a hot swap to v2 while calls stream fails none of them and
// every completion carries the version that produced it (v1 for calls started
// before the swap, v2 after, each equal to that version's own output); a call
// pinned to a version no longer served is FAILED_PRECONDITION; a version with
// a flipped byte is refused (FAILED_PRECONDITION naming the file) while v2
// keeps serving; an unknown version is NOT_FOUND; bad input is
// INVALID_ARGUMENT naming the field; concurrent calls share batches and a
// cancelled call stops its remaining work; SIGTERM exits 0 with the spans
// written.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { VersionRecord } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startService, workspaceRoot, type ServiceProcess } from '../support/processes';
import { loadProto, serviceClient, unary } from '../support/proto-client';
import { publishTinyVersions } from '../support/tiny-models';

interface Completion {
  prompt_id: string;
  sample_index: number;
  text: string;
  token_ids: number[];
  finish_reason: string;
  logprob_sum: number;
  num_prompt_tokens: number;
  model_version: string;
  sequence_seed: number;
}
interface GetModelResponse {
  serving: {
    info: { version: string; architecture: string; num_parameters: number; vocab_size: number; context_length: number; manifest_sha256: string; parent_version: string };
    loaded_at: { seconds: number } | null;
    weight_bytes: number;
  } | null;
  loading_version: string;
  last_load_error: string;
  draining_versions: string[];
  compute: { backend: string; variant: string; detail: string; threads: number; simd: string };
}

// Generator and health clients from the .proto files alone.
const protos = loadProto(['cream/v1/generator.proto', 'grpc/health/v1/health.proto'], [join(workspaceRoot, 'proto')]);
const Generator = serviceClient(protos, 'cream.v1.GeneratorService');
const Health = serviceClient(protos, 'grpc.health.v1.Health');

const MAX_NEW_TOKENS_LIMIT = 512;
let registryDir: string;
let versions: Map<string, VersionRecord>;
let numParameters = 0;
let generator: ServiceProcess;
let empty: ServiceProcess;
let client: grpc.Client;

function text(id: string, value: string) {
  return { id, text: value };
}

/** Calls Generate and collects the streamed completions. */
function generate(request: unknown, target: grpc.Client = client, deadlineMs = 60_000): Promise<Completion[]> {
  return new Promise<Completion[]>((resolve, reject) => {
    const call = (target as unknown as { Generate(r: unknown, m: grpc.Metadata, o: grpc.CallOptions): grpc.ClientReadableStream<{ completion: Completion }> }).Generate(
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
    );
    const out: Completion[] = [];
    call.on('data', (message) => out.push(message.completion));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

const byKey = (completions: Completion[]) => new Map(completions.map((c) => [`${c.prompt_id}/${c.sample_index}`, c]));

async function healthStatus(address: string): Promise<string> {
  const health = new Health(address, grpc.credentials.createInsecure());
  try {
    return (await unary<{ status: string }>(health, 'Check', { service: 'cream.v1.GeneratorService' })).status;
  } finally {
    health.close();
  }
}

async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > until) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  // Three random tiny versions (different seeds), each the parent of the next.
  registryDir = mkdtempSync(join(tmpdir(), 'cream-generator-registry-'));
  const published = await publishTinyVersions(registryDir, [
    { version: 'v1', seed: 1 },
    { version: 'v2', seed: 2, parent: 'v1' },
    { version: 'v3', seed: 3, parent: 'v2' },
  ]);
  versions = published.records;
  numParameters = published.numParameters;
  // v3 is tampered with after publishing: one byte of its weights flipped.
  const weights = join(versions.get('v3')!.path, 'model.safetensors');
  chmodSync(weights, 0o644);
  const bytes = readFileSync(weights);
  bytes[bytes.length - 100] ^= 0x01;
  writeFileSync(weights, bytes);

  // The generator under test, and one started with nothing to load.
  [generator, empty] = await Promise.all([
    startService('generator', ['--registry', registryDir, '--model', 'v1', '--max-new-tokens', String(MAX_NEW_TOKENS_LIMIT), '--max-batch-sequences', '16']),
    startService('generator', ['--registry', registryDir, '--model=']),
  ]);
  client = new Generator(generator.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await killAll();
});

describe('cream serve generator', () => {
  it('is NOT_SERVING until a first version serves, and says what it serves', async () => {
    // A generator started with nothing to load stays NOT_SERVING and refuses Generate with UNAVAILABLE.
    const emptyClient = new Generator(empty.address, grpc.credentials.createInsecure());
    await empty.waitForLine((l) => l.msg === 'model registry');
    expect(await healthStatus(empty.address)).toBe('NOT_SERVING');
    const idle = await unary<GetModelResponse>(emptyClient, 'GetModel', {});
    expect(idle.serving).toBeNull();
    expect(idle.compute.variant).not.toBe('none');
    const unavailable = (await generate({ prompts: [text('a', 'x')] }, emptyClient).catch((e) => e)) as grpc.ServiceError;
    expect(unavailable.code).toBe(grpc.status.UNAVAILABLE);
    // LoadModel without waiting returns while the version loads; health turns SERVING when it serves.
    const started = await unary<{ state: GetModelResponse }>(emptyClient, 'LoadModel', { version: 'v1', wait: false });
    expect(started.state.loading_version === 'v1' || started.state.serving?.info.version === 'v1').toBe(true);
    expect(await eventually(() => healthStatus(empty.address), (s) => s === 'SERVING')).toBe('SERVING');
    emptyClient.close();
    empty.child.kill('SIGTERM');
    expect(await empty.exited).toBe(0);

    // The main generator, started with --model v1.
    expect(await eventually(() => healthStatus(generator.address), (s) => s === 'SERVING')).toBe('SERVING');
    expect(generator.lines.findIndex((l) => l.msg === 'listening')).toBeLessThan(generator.lines.findIndex((l) => l.msg === 'serving'));
    const state = await unary<GetModelResponse>(client, 'GetModel', {});
    expect(state.serving!.info).toEqual({
      version: 'v1',
      architecture: 'LlamaForCausalLM',
      num_parameters: numParameters,
      vocab_size: 320,
      context_length: 128,
      manifest_sha256: versions.get('v1')!.manifestSha256,
      parent_version: '',
    });
    expect(state.serving!.weight_bytes).toBe(numParameters * 4);
    expect(state.serving!.loaded_at!.seconds).toBeGreaterThan(0);
    expect(state.compute.backend).not.toBe('');
    expect(state).toMatchObject({ loading_version: '', last_load_error: '', draining_versions: [] });
  });

  it('streams num_samples completions for every prompt, and the same seed gives the same samples whatever shares the call', async () => {
    const sampling = { max_new_tokens: 12, seed: 7, temperature: 1, top_p: 1 };
    const prompts = [text('a', 'The sky is'), { id: 'b', chat: { messages: [{ role: 'user', content: 'Hello!' }] } }, text('c', 'Once upon a time')];
    const completions = await generate({ prompts, num_samples: 4, sampling });
    expect(completions).toHaveLength(12);
    expect([...byKey(completions).keys()].sort()).toEqual(['a/0', 'a/1', 'a/2', 'a/3', 'b/0', 'b/1', 'b/2', 'b/3', 'c/0', 'c/1', 'c/2', 'c/3']);
    for (const c of completions) {
      expect(c.model_version).toBe('v1');
      expect(c.token_ids.length).toBeGreaterThan(0);
      expect(c.token_ids.length).toBeLessThanOrEqual(12);
      expect(c.finish_reason).toMatch(/^FINISH_REASON_(LENGTH|EOS)$/);
      expect(c.num_prompt_tokens).toBeGreaterThan(0);
      expect(c.sequence_seed).toBeGreaterThan(0);
    }
    expect(new Set(completions.map((c) => c.sequence_seed)).size).toBe(12);
    // The same request again: the same samples.
    const again = byKey(await generate({ prompts, num_samples: 4, sampling }));
    for (const c of completions) expect(again.get(`${c.prompt_id}/${c.sample_index}`)!.token_ids).toEqual(c.token_ids);
    // Prompt c alone, and beside other prompts: its samples do not change.
    const alone = byKey(await generate({ prompts: [prompts[2]], num_samples: 4, sampling }));
    const crowded = byKey(await generate({ prompts: [text('z', 'Entirely different words'), prompts[2], text('y', '?')], num_samples: 4, sampling }));
    for (let i = 0; i < 4; i++) {
      const original = byKey(completions).get(`c/${i}`)!;
      expect(alone.get(`c/${i}`)!.token_ids).toEqual(original.token_ids);
      expect(crowded.get(`c/${i}`)!.token_ids).toEqual(original.token_ids);
      expect(crowded.get(`c/${i}`)!.sequence_seed).toBe(original.sequence_seed);
    }
    // Another seed: other samples.
    const reseeded = byKey(await generate({ prompts: [prompts[2]], num_samples: 4, sampling: { ...sampling, seed: 8 } }));
    expect(reseeded.get('c/0')!.token_ids).not.toEqual(alone.get('c/0')!.token_ids);
  });

  it('hot-swaps to v2 while calls stream: none fails, each completion is tagged with the version that produced it', async () => {
    const request = { prompts: [text('s', 'Hot swap')], num_samples: 2, sampling: { max_new_tokens: 24, seed: 3, temperature: 1, top_p: 1 } };
    const referenceV1 = byKey(await generate(request));
    interface CallRecord {
      started: number;
      ended: number;
      completions: Completion[];
      error?: unknown;
    }
    const calls: CallRecord[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const record: CallRecord = { started: Date.now(), ended: 0, completions: [] };
        calls.push(record);
        try {
          record.completions = await generate(request);
        } catch (error) {
          record.error = error;
        }
        record.ended = Date.now();
      }
    };
    const workers = [worker(), worker(), worker()];
    await eventually(async () => calls.filter((c) => c.ended > 0).length, (n) => n >= 3);
    const loadIssued = Date.now();
    const loaded = await unary<{ state: GetModelResponse }>(client, 'LoadModel', { version: 'v2', wait: true });
    const loadDone = Date.now();
    expect(loaded.state.serving!.info).toMatchObject({ version: 'v2', parent_version: 'v1', manifest_sha256: versions.get('v2')!.manifestSha256 });
    await eventually(async () => calls.filter((c) => c.started > loadDone && c.ended > 0).length, (n) => n >= 3);
    stop = true;
    await Promise.all(workers);

    const referenceV2 = byKey(await generate(request));
    expect(referenceV2.get('s/0')!.token_ids).not.toEqual(referenceV1.get('s/0')!.token_ids);
    expect(calls.filter((c) => c.error !== undefined).map((c) => String(c.error))).toEqual([]);
    for (const call of calls) {
      expect(call.completions).toHaveLength(2);
      const tags = new Set(call.completions.map((c) => c.model_version));
      expect(tags.size).toBe(1);
      const version = [...tags][0];
      if (call.started < loadIssued) expect(version).toBe('v1');
      if (call.started > loadDone) expect(version).toBe('v2');
      // Each completion is exactly what its tagged version produces.
      const reference = version === 'v1' ? referenceV1 : referenceV2;
      for (const c of call.completions) expect(c.token_ids).toEqual(reference.get(`${c.prompt_id}/${c.sample_index}`)!.token_ids);
    }
    // Calls were in flight when LoadModel came, and finished (on v1).
    expect(calls.some((c) => c.started < loadIssued && c.ended > loadIssued)).toBe(true);
    // The old weights are freed once the last call on them has ended.
    const after = await eventually(() => unary<GetModelResponse>(client, 'GetModel', {}), (s) => s.draining_versions.length === 0);
    expect(after.serving!.info.version).toBe('v2');
    expect(after.draining_versions).toEqual([]);
  });

  it('refuses a call pinned to a version it does not serve, and runs one pinned to the version it does', async () => {
    const pinned = (await generate({ prompts: [text('a', 'x')], sampling: { max_new_tokens: 2 }, model_version: 'v1' }).catch((e) => e)) as grpc.ServiceError;
    expect(pinned.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(pinned.details).toMatch(/v1.*not loaded.*v2/);
    const ok = await generate({ prompts: [text('a', 'x')], sampling: { max_new_tokens: 2 }, model_version: 'v2' });
    expect(ok.map((c) => c.model_version)).toEqual(['v2']);
  });

  it('refuses a version whose weights do not match its manifest, naming the file, and keeps serving v2', async () => {
    const refused = (await unary(client, 'LoadModel', { version: 'v3', wait: true }).catch((e) => e)) as grpc.ServiceError;
    expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).toMatch(/v3.*model\.safetensors/);
    const state = await unary<GetModelResponse>(client, 'GetModel', {});
    expect(state.serving!.info.version).toBe('v2');
    expect(state.last_load_error).toMatch(/v3.*model\.safetensors/);
    expect(state.loading_version).toBe('');
    expect((await generate({ prompts: [text('a', 'still here')], sampling: { max_new_tokens: 3 } })).map((c) => c.model_version)).toEqual(['v2']);
    expect(await healthStatus(generator.address)).toBe('SERVING');
  });

  it('answers NOT_FOUND for an unknown version', async () => {
    for (const version of ['v9', 'no-such-version']) {
      const error = (await unary(client, 'LoadModel', { version, wait: true }).catch((e) => e)) as grpc.ServiceError;
      expect(error.code).toBe(grpc.status.NOT_FOUND);
      expect(error.details).toContain(version);
    }
    expect((await unary<GetModelResponse>(client, 'GetModel', {})).serving!.info.version).toBe('v2');
  });

  const valid = text('p', 'hello');
  const badInputs: Array<[string, 'Generate' | 'LoadModel', Record<string, unknown>, string]> = [
    ['no prompts', 'Generate', { prompts: [] }, 'prompts'],
    ['an empty prompt text', 'Generate', { prompts: [text('a', 'x'), text('b', 'y'), text('c', '')] }, 'prompts[2].text'],
    ['an empty conversation', 'Generate', { prompts: [{ id: 'a', chat: { messages: [] } }] }, 'prompts[0].chat.messages'],
    ['a prompt without content', 'Generate', { prompts: [{ id: 'a' }] }, 'prompts[0].text'],
    ['a repeated prompt id', 'Generate', { prompts: [valid, valid] }, 'prompts[1].id'],
    ['num_samples over 64', 'Generate', { prompts: [valid], num_samples: 65 }, 'num_samples'],
    ['max_new_tokens over the server limit', 'Generate', { prompts: [valid], sampling: { max_new_tokens: MAX_NEW_TOKENS_LIMIT + 1 } }, 'sampling.max_new_tokens'],
    ['a negative temperature', 'Generate', { prompts: [valid], sampling: { temperature: -0.5 } }, 'sampling.temperature'],
    ['top_p 0', 'Generate', { prompts: [valid], sampling: { top_p: 0 } }, 'sampling.top_p'],
    ['top_p over 1', 'Generate', { prompts: [valid], sampling: { top_p: 1.5 } }, 'sampling.top_p'],
    ['top_k over the vocabulary', 'Generate', { prompts: [valid], sampling: { top_k: 321 } }, 'sampling.top_k'],
    ['a stop string over 64 bytes', 'Generate', { prompts: [valid], sampling: { stop: ['x'.repeat(65)] } }, 'sampling.stop[0]'],
    ['a prompt over the context length', 'Generate', { prompts: [valid, text('long', 'word '.repeat(200))] }, 'prompts[1].text'],
    ['an unknown chat role', 'Generate', { prompts: [{ id: 'a', chat: { messages: [{ role: 'wizard', content: 'hi' }] } }] }, 'prompts[0].chat.messages[0].role'],
    ['a malformed pinned version', 'Generate', { prompts: [valid], model_version: '../v1' }, 'model_version'],
    ['an empty version', 'LoadModel', { version: '' }, 'version'],
    ['a malformed version', 'LoadModel', { version: '../../etc' }, 'version'],
  ];

  it.each(badInputs)('rejects %s with INVALID_ARGUMENT naming the field, and keeps serving', async (_name, method, request, field) => {
    const error = (await (method === 'Generate' ? generate(request) : unary(client, method, request)).catch((e) => e)) as grpc.ServiceError;
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain(field);
    expect(error.metadata.get('cream-field')).toEqual([field]);
    expect(await generate({ prompts: [valid], sampling: { max_new_tokens: 2 } })).toHaveLength(1);
  });

  it('batches concurrent calls together, and a cancelled call stops its remaining work', async () => {
    const long = {
      prompts: ['A long story', 'Another one', 'And a third', 'A fourth', 'A fifth', 'The last'].map((t, i) => text(`long-${i}`, t)),
      num_samples: 64,
      sampling: { max_new_tokens: 24, seed: 1, temperature: 0.7 },
    };
    const pair = { num_samples: 2, sampling: { max_new_tokens: 8, seed: 2, temperature: 1 } };
    const firstLine = generator.lines.length;
    // The long call runs in batches of 16 (--max-batch-sequences 16); two short calls arriving meanwhile share one batch.
    const longCall = (client as unknown as { Generate(r: unknown): grpc.ClientReadableStream<{ completion: Completion }> }).Generate(long);
    const received: Completion[] = [];
    const firstCompletion = new Promise<void>((resolve) => longCall.on('data', (m) => (received.push(m.completion), resolve())));
    const longEnded = new Promise<grpc.ServiceError | undefined>((resolve) => {
      longCall.on('error', (e) => resolve(e as grpc.ServiceError));
      longCall.on('end', () => resolve(undefined));
    });
    await firstCompletion;
    // The two short calls share a batch when both reach the server before the first of them starts: between one
    // and two long batches. On a loaded machine the second can miss that window, so a few pairs are tried in turn;
    // a scheduler that never merged calls fails every one.
    let shared = 0;
    for (let attempt = 0; attempt < 4 && shared === 0; attempt++) {
      const before = generator.lines.length;
      const [a, b] = await Promise.all([generate({ ...pair, prompts: [text('a', 'first')] }), generate({ ...pair, prompts: [text('b', 'second')] })]);
      expect(a.map((c) => c.prompt_id)).toEqual(['a', 'a']);
      expect(b.map((c) => c.prompt_id)).toEqual(['b', 'b']);
      const batches = generator.lines.slice(before).filter((l) => l.msg === 'batch started' && l.sequences !== 16);
      shared = batches.filter((l) => l.calls === 2 && l.sequences === 4).length;
      // Either one batch held both calls, or each ran alone: never a short call split or merged with the long one.
      expect(shared === 1 || batches.filter((l) => l.calls === 1 && l.sequences === 2).length === 2, JSON.stringify(batches)).toBe(true);
    }
    expect(shared).toBe(1);

    // Cancel the long call: what it has not started is dropped.
    longCall.cancel();
    expect((await longEnded)?.code).toBe(grpc.status.CANCELLED);
    const cancelled = await generator.waitForLine((l) => l.msg === 'generation cancelled' && generator.lines.indexOf(l) >= firstLine, 10_000);
    expect(Number(cancelled.droppedSequences)).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(384);
    const longBatches = generator.lines.slice(firstLine).filter((l) => l.msg === 'batch started' && l.sequences === 16);
    expect(longBatches.length).toBeLessThan(24);
    // The service goes on serving.
    expect(await generate({ prompts: [valid], sampling: { max_new_tokens: 2 } })).toHaveLength(1);
  });

  it('exits 0 on SIGTERM with a span for every call and for the phases inside', async () => {
    generator.child.kill('SIGTERM');
    expect(await generator.exited).toBe(0);
    const spans = readFileSync(generator.traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const names = new Set(spans.map((s) => s.name));
    for (const name of [
      'grpc.cream.v1.GeneratorService/Generate',
      'grpc.cream.v1.GeneratorService/LoadModel',
      'grpc.cream.v1.GeneratorService/GetModel',
      'generator.prepare',
      'generator.sample',
      'generator.load',
    ]) {
      expect(names, name).toContain(name);
    }
    expect(spans).toContainEqual(expect.objectContaining({ name: 'generator.load', status: expect.objectContaining({ code: 'ERROR' }) }));
  });
});
