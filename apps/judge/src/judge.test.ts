// The judge's logic on real random checkpoints in a temporary registry, in
// this process (test/e2e/judge.test.ts drives the rest over gRPC, rubric
// judgments included: their ~1200-token prompt is slow on the CPU backend):
// a cancelled scoring call stops between windows and releases its version,
// UnloadModel frees a resident version and is NOT_FOUND otherwise, a
// tampered version is refused before it is loaded, and the request's rubric
// style is honoured (the shipped M0 judges with the compact rubric and refuses
// the full one, which does not fit its 256-token context).
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCompute, silentLogger } from '@cream/compute';
import { parseRubricScore } from '@cream/cream';
import { initCheckpoint } from '@cream/model';
import { RubricStyle, type JudgeWithRubricRequest, type JudgeWithRubricResponse, type ScoreLogProbsResponse } from '@cream/proto';
import { createLogger, InvalidArgumentError, NotFoundError } from '@cream/service-kit';
import { ManifestMismatchError, ModelRegistry } from '@cream/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { Judge, type JudgeOptions } from './judge';

const hfConfig = {
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
const logger = createLogger({ level: 'error' });
const options: JudgeOptions = { budgetBytes: 1024 ** 3, scoreBatchSize: 1, judgeBatchSequences: 16, maxNewTokensLimit: 1024 };
let registry: ModelRegistry;

async function publish(version: string, seed: number): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'cream-judge-unit-')), 'model');
  await initCheckpoint(dir, hfConfig, { seed });
  return (await registry.publish({ version, recipe: { method: 'init', seed }, fromDirectory: dir })).path;
}

beforeAll(async () => {
  await initCompute({ env: { CREAM_BACKEND: process.env.CREAM_BACKEND ?? 'cpu' }, logger: silentLogger });
  registry = await ModelRegistry.open(join(mkdtempSync(join(tmpdir(), 'cream-judge-registry-')), 'registry'));
  await publish('m1', 1);
  await registry.publish({ version: 'shipped-m0', recipe: { method: 'import' }, fromDirectory: join(__dirname, '..', '..', '..', 'models', 'm0') });
  const bad = await publish('bad', 2);
  // A flipped byte in the weights: the manifest no longer matches.
  const file = join(bad, 'model.safetensors');
  chmodSync(file, 0o644);
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] ^= 0x01;
  writeFileSync(file, bytes);
});

describe('Judge', () => {
  it('stops scoring between windows when the call is cancelled', async () => {
    const judge = new Judge(registry, options, logger);
    // scoreBatchSize 1: windows of 8 items; the call is cancelled at the first result.
    const items = Array.from({ length: 20 }, (_, i) => ({ id: `i${i}`, input: { $case: 'tokens' as const, value: { promptIds: [1, 2, 3], responseIds: [4 + i, 5] } } }));
    const controller = new AbortController();
    const written: ScoreLogProbsResponse[] = [];
    const call = judge.scoreLogProbs({ modelVersion: 'm1', items }, async (message) => {
      written.push(message);
      controller.abort(new Error('cancelled by the caller'));
    }, controller.signal);
    await expect(call).rejects.toThrow('cancelled by the caller');
    expect(written.length).toBe(8);
    expect(written.map((w) => w.id)).toEqual(items.slice(0, 8).map((i) => i.id));
    // The lease was released: the version can be unloaded at once.
    expect((await judge.unloadModel({ version: 'm1' })).freedBytes).toBeGreaterThan(0);
  });

  it('refuses a tampered version and answers NOT_FOUND for unknown and non-resident versions', async () => {
    const judge = new Judge(registry, options, logger);
    await expect(judge.loadModel({ version: 'bad' })).rejects.toBeInstanceOf(ManifestMismatchError);
    expect(judge.listModels().models).toEqual([]);
    await expect(judge.loadModel({ version: 'nope' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(judge.unloadModel({ version: 'm1' })).rejects.toBeInstanceOf(NotFoundError);
    const loaded = await judge.loadModel({ version: 'm1' });
    expect(loaded.model?.info).toMatchObject({ version: 'm1', architecture: 'LlamaForCausalLM', vocabSize: 320, contextLength: 64, parentVersion: '' });
    expect((await judge.unloadModel({ version: 'm1' })).freedBytes).toBe(loaded.model?.weightBytes);
  });

  it('judges with the rubric style of the request: compact fits the shipped M0, the full text is refused naming its length', async () => {
    const judge = new Judge(registry, options, logger);
    const question = 'Which tool is used to cut paper?\n(A) a spoon\n(B) scissors\n(C) a cup\n(D) a pillow\nThink step by step, then end with "Answer: X".';
    const request = (style: RubricStyle): JudgeWithRubricRequest => ({
      modelVersion: 'shipped-m0',
      items: [{ id: 'a', item: { prompt: { id: 'a', content: { $case: 'text', value: question } }, response: 'Scissors cut paper.\nAnswer: B' } }],
      numJudgments: 2,
      sampling: { temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 24, stop: [], seed: 7 },
      style,
    });
    const written: JudgeWithRubricResponse[] = [];
    await judge.judgeWithRubric(request(RubricStyle.RUBRIC_STYLE_COMPACT), async (message) => void written.push(message), new AbortController().signal);
    expect(written).toHaveLength(1);
    expect(written[0].judgments).toHaveLength(2);
    for (const judgment of written[0].judgments) expect(judgment.score).toBe(parseRubricScore(judgment.text));
    expect(written[0].numParsed + written[0].numUnparsed).toBe(2);
    for (const style of [RubricStyle.RUBRIC_STYLE_UNSPECIFIED, RubricStyle.RUBRIC_STYLE_FULL]) {
      const call = judge.judgeWithRubric(request(style), async () => undefined, new AbortController().signal);
      await expect(call).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(judge.judgeWithRubric(request(style), async () => undefined, new AbortController().signal)).rejects.toThrow(/the full rubric prompt .* has \d+ tokens; the model's context length is 256/);
    }
  });
});
