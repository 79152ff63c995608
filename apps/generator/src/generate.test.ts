// Tests of the Generate handler on a real tiny model (random weights, CPU
// backend) behind a ModelSlot and the batch scheduler: completions tagged with
// version and sequence seed, samples independent of what shares their batch,
// the model-dependent checks naming their field, and pinned versions.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCompute, silentLogger } from '@cream/compute';
import { initCheckpoint, LanguageModel } from '@cream/model';
import { FinishReason, type Completion, type GenerateRequest, type GenerateResponse, type Prompt, type SamplingParams } from '@cream/proto';
import { GrpcStatus, InvalidArgumentError, ModelSlot, ServiceError, type StreamContext } from '@cream/service-kit';
import type { VersionRecord } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, type GenerateDeps } from './generate';
import { ServedModel } from './models';
import { BatchScheduler } from './scheduler';
import { sequenceSeed } from './seeds';

const tinyLlama = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 320,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
};

let directory: string;
let slot: ModelSlot<ServedModel>;
let deps: GenerateDeps;

beforeAll(async () => {
  await initCompute({ env: { CREAM_BACKEND: 'cpu' }, logger: silentLogger });
  directory = mkdtempSync(join(tmpdir(), 'cream-generator-test-'));
  await initCheckpoint(join(directory, 'm1'), tinyLlama, { seed: 1 });
  let loads = 0;
  slot = new ModelSlot(async (version) => {
    const model = await LanguageModel.load(join(directory, 'm1'), { scope: `test-${++loads}` });
    const record = { version, path: join(directory, 'm1'), manifestSha256: 'f'.repeat(64), manifest: { parent: null } } as unknown as VersionRecord;
    return new ServedModel(version, record, model);
  });
  await slot.swap('m1');
  deps = { slot, scheduler: new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 100_000 }), maxNewTokensLimit: 1024 };
});

afterAll(() => {
  slot?.disposeAll();
  if (directory) rmSync(directory, { recursive: true, force: true });
});

function context(signal = new AbortController().signal): StreamContext<GenerateResponse> & { written: Completion[] } {
  const written: Completion[] = [];
  return {
    method: '/cream.v1.GeneratorService/Generate',
    metadata: undefined as never,
    signal,
    deadline: undefined,
    peer: 'test',
    written,
    write: async (message) => {
      written.push(message.completion!);
    },
  };
}

function text(id: string, value: string): Prompt {
  return { id, content: { $case: 'text', value } };
}

/** A request with unset fields left out. */
interface RequestInput {
  prompts: Prompt[];
  numSamples?: number;
  sampling?: Partial<SamplingParams>;
  modelVersion?: string;
}

function toRequest(input: RequestInput): GenerateRequest {
  const sampling = input.sampling && { topK: 0, maxNewTokens: 0, stop: [], seed: 0, ...input.sampling };
  return { prompts: input.prompts, numSamples: input.numSamples ?? 0, sampling, modelVersion: input.modelVersion ?? '' };
}

async function run(request: RequestInput): Promise<Completion[]> {
  const ctx = context();
  await generate(toRequest(request), ctx, deps);
  return ctx.written;
}

const byKey = (completions: Completion[]) => new Map(completions.map((c) => [`${c.promptId}/${c.sampleIndex}`, c]));

describe('generate', () => {
  it('streams num_samples completions per prompt, tagged with the version and the sequence seed', async () => {
    const completions = await run({
      prompts: [text('a', 'The sky is'), { id: 'b', content: { $case: 'chat', value: { messages: [{ role: 'user', content: 'Hi' }] } } }],
      numSamples: 3,
      sampling: { maxNewTokens: 6, seed: 5 },
    });
    expect(completions).toHaveLength(6);
    for (const c of completions) {
      expect(c.modelVersion).toBe('m1');
      expect(c.sequenceSeed).toBe(sequenceSeed(5, c.promptId, c.sampleIndex));
      expect(c.tokenIds.length).toBeGreaterThan(0);
      expect(c.tokenIds.length).toBeLessThanOrEqual(6);
      expect([FinishReason.FINISH_REASON_LENGTH, FinishReason.FINISH_REASON_EOS, FinishReason.FINISH_REASON_STOP]).toContain(c.finishReason);
      expect(c.logprobSum).toBeLessThan(0);
      expect(c.numPromptTokens).toBeGreaterThan(0);
    }
    expect([...byKey(completions).keys()].sort()).toEqual(['a/0', 'a/1', 'a/2', 'b/0', 'b/1', 'b/2']);
  });

  it('gives a prompt the same samples alone, with other prompts, and beside a concurrent call with another seed', async () => {
    const sampling = { maxNewTokens: 8, seed: 11, temperature: 1, topP: 1 };
    const alone = byKey(await run({ prompts: [text('q', 'Once upon a time')], numSamples: 2, sampling }));
    const [together, other] = await Promise.all([
      run({ prompts: [text('z', 'Something else entirely'), text('q', 'Once upon a time'), text('y', 'x')], numSamples: 2, sampling }),
      run({ prompts: [text('q', 'Once upon a time')], numSamples: 2, sampling: { ...sampling, seed: 12 } }),
    ]);
    const merged = byKey(together);
    for (const key of ['q/0', 'q/1']) {
      expect(merged.get(key)!.tokenIds).toEqual(alone.get(key)!.tokenIds);
      expect(merged.get(key)!.text).toBe(alone.get(key)!.text);
      expect(merged.get(key)!.logprobSum).toBeCloseTo(alone.get(key)!.logprobSum, 4);
    }
    // Another request seed gives other samples of the same prompt.
    expect(byKey(other).get('q/0')!.tokenIds).not.toEqual(alone.get('q/0')!.tokenIds);
  });

  it('is greedy at temperature 0: every sample of a prompt is the same', async () => {
    const completions = await run({ prompts: [text('g', 'Greedy')], numSamples: 3, sampling: { temperature: 0, maxNewTokens: 5 } });
    expect(new Set(completions.map((c) => c.tokenIds.join(',')))).toHaveProperty('size', 1);
  });

  it('rejects top_k over the vocabulary and a prompt over the context length, naming the field', async () => {
    const field = (request: RequestInput) =>
      run(request).then(
        () => 'no error',
        (error: InvalidArgumentError) => (error instanceof InvalidArgumentError ? error.field : String(error)),
      );
    expect(await field({ prompts: [text('a', 'x')], sampling: { topK: 321 } })).toBe('sampling.top_k');
    expect(await field({ prompts: [text('a', 'x'), text('b', 'word '.repeat(80))] })).toBe('prompts[1].text');
    expect((await run({ prompts: [text('a', 'x')], sampling: { topK: 320, maxNewTokens: 2 } })).length).toBe(1);
  });

  it('runs a call pinned to the serving version, and refuses one pinned to another', async () => {
    expect((await run({ prompts: [text('a', 'x')], sampling: { maxNewTokens: 2 }, modelVersion: 'm1' }))[0].modelVersion).toBe('m1');
    const error = await run({ prompts: [text('a', 'x')], modelVersion: 'm0' }).catch((e: ServiceError) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(GrpcStatus.FAILED_PRECONDITION);
  });

  it('stops when the caller cancels, with CANCELLED, and releases its lease', async () => {
    const controller = new AbortController();
    const ctx = context(controller.signal);
    const write = ctx.write;
    ctx.write = async (message) => {
      await write(message);
      controller.abort(new Error('cancelled by the caller'));
    };
    const error = await generate(
      toRequest({ prompts: [text('a', 'x')], numSamples: 64, sampling: { maxNewTokens: 40 } }),
      ctx,
      { ...deps, scheduler: new BatchScheduler({ maxBatchSequences: 8, maxBatchTokens: 100_000 }) },
    ).catch((e: ServiceError) => e);
    expect((error as ServiceError).code).toBe(GrpcStatus.CANCELLED);
    expect(ctx.written.length).toBeLessThan(64);
    // Once its batch has stopped, the call no longer holds m1: a swap frees it at once.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await slot.swap('m1-again');
    expect(slot.state()).toMatchObject({ serving: { version: 'm1-again' }, draining: [] });
  });
});
