// `cream pretrain` through the real binary on a micro model (a loadable
// checkpoint whose tokenizer round-trips the corpus and whose loss falls, a
// clean stop at --max-seconds, bad options named), and the shipped base model
// models/m0: small, plain git files, loadable, with its chat template, and a
// pretrain.json that agrees with its config.json and weights.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initCompute, silentLogger } from '@cream/compute';
import { LanguageModel, loadCheckpoint } from '@cream/model';
import { buildSuite, BUILTIN_SUITE_SEED, evaluate } from '@cream/tasks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cliRoot = join(__dirname, '..');
const creamBin = join(cliRoot, 'bin', 'cream.js');
const tinyConfig = join(cliRoot, 'configs', 'tiny-llama.json');
const m0Dir = join(cliRoot, '..', '..', 'models', 'm0');
const root = mkdtempSync(join(tmpdir(), 'cream-pretrain-test-'));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

const execFileAsync = promisify(execFile);

/** Runs the real binary; resolves with its exit status and output, whatever the status. */
async function cream(args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [creamBin, ...args], { timeout: 150_000, killSignal: 'SIGKILL' });
    return { status: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    return { status: typeof failed.code === 'number' ? failed.code : null, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Asserts the exit status (a failure prints one line, no stack) and hands the run back. */
function exited(run: Run, status: number): Run {
  expect(run.status, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(status);
  if (status !== 0) expect(run.stderr).not.toMatch(/\n\s+at /);
  return run;
}

// What pretrain.json holds that the tests read.
interface PretrainRecord {
  command: string;
  seed: number;
  backend: string;
  model: { parameters: number; vocabSize: number; hiddenSize: number; intermediateSize: number; layers: number; heads: number; kvHeads: number; contextLength: number };
  tokenizer: { vocabSize: number; merges: number };
  data: { suiteSeed: number; examples: number; perTask: number };
  training: { steps: number; plannedSteps: number; stoppedEarly: boolean; tokensSeen: number; firstLoss: number; finalLoss: number; epochMeanLoss: number[]; seconds: number };
  evaluation?: { items: number; meanAccuracy: number; tasks: { task: string; accuracy: number; numItems: number; numCorrect: number }[] };
  wallSeconds: number;
  date: string;
}

const readRecord = (dir: string) => JSON.parse(readFileSync(join(dir, 'pretrain.json'), 'utf8')) as PretrainRecord;

/** Checks pretrain.json against config.json and the weights of the checkpoint in `dir`. */
async function expectConsistent(dir: string): Promise<PretrainRecord> {
  const record = readRecord(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  expect(record.model).toMatchObject({
    vocabSize: config.vocab_size,
    hiddenSize: config.hidden_size,
    intermediateSize: config.intermediate_size,
    layers: config.num_hidden_layers,
    heads: config.num_attention_heads,
    kvHeads: config.num_key_value_heads,
    contextLength: config.max_position_embeddings,
  });
  expect(record.tokenizer.vocabSize).toBe(config.vocab_size);
  const checkpoint = await loadCheckpoint(dir);
  let parameters = 0;
  for (const tensor of checkpoint.tensors.values()) parameters += tensor.data.length;
  expect(record.model.parameters).toBe(parameters);
  expect(record.data.suiteSeed).toBe(BUILTIN_SUITE_SEED);
  expect(record.command.startsWith('cream pretrain ')).toBe(true);
  expect(Number.isNaN(Date.parse(record.date))).toBe(false);
  return record;
}

beforeAll(async () => {
  await initCompute({ env: process.env, logger: silentLogger });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('cream pretrain on a micro model', () => {
  const out = join(root, 'micro');
  const perTask = 12;
  let run: Run;

  beforeAll(async () => {
    run = await cream([
      'pretrain', '--out', out, '--config', tinyConfig, '--vocab-size', '300', '--pretrain-per-task', String(perTask),
      '--epochs', '3', '--batch-size', '8', '--lr', '1e-2', '--eval-per-task', '1', '--max-new-tokens', '8',
    ]);
  }, 160_000);

  it('writes a loadable Hugging Face directory with a chat template and its record', async () => {
    exited(run, 0);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'pretrain.json', 'tokenizer.json', 'tokenizer_config.json']);
    const record = await expectConsistent(out);
    expect(record.model.vocabSize).toBe(300);
    expect(record.data.examples).toBe(4 * perTask);
    expect(record.training.plannedSteps).toBe(3 * Math.ceil((4 * perTask) / 8));
    expect(record.training.steps).toBe(record.training.plannedSteps);
    expect(record.training.stoppedEarly).toBe(false);
    expect(record.evaluation?.tasks.map((t) => t.task)).toEqual(['science', 'objects', 'social', 'arithmetic']);
    expect(run.stderr).toMatch(/^step 1\/18 /m);
    expect(run.stdout).toMatch(/tokens seen/);
    expect(run.stdout).toContain(record.backend);

    const lm = await LanguageModel.load(out, { scope: 'micro' });
    try {
      expect(lm.tokenizer.chatTemplates.get('default')).toContain('<|im_start|>');
      const [result] = await lm.generateText([{ key: 'k', prompt: { messages: [{ role: 'user', content: 'Which of these is a gas?' }] } }], {
        maxNewTokens: 4, temperature: 0, topP: 1, topK: 0, seed: 0,
      });
      expect(result.numPromptTokens).toBeGreaterThan(5);
    } finally {
      lm.dispose();
    }
  });

  it('learns a tokenizer that round-trips every text of the corpus', async () => {
    exited(run, 0);
    const { tokenizer } = await loadCheckpoint(out);
    const suite = buildSuite({ seed: BUILTIN_SUITE_SEED, sizes: { pretrainPerTask: perTask } });
    const record = readRecord(out);
    expect(record.tokenizer.merges).toBeGreaterThan(0);
    for (const example of suite.pretrain) {
      for (const { content } of example.messages) {
        const ids = tokenizer.encode(content, { addSpecialTokens: false });
        expect(ids.length).toBeLessThan(content.length); // merges were learned from this text
        expect(tokenizer.decode(ids)).toBe(content);
      }
    }
  });

  it('lowers the loss epoch after epoch', () => {
    exited(run, 0);
    const { training } = readRecord(out);
    expect(training.epochMeanLoss).toHaveLength(3);
    expect(training.epochMeanLoss[1]).toBeLessThan(training.epochMeanLoss[0]);
    expect(training.epochMeanLoss[2]).toBeLessThan(training.epochMeanLoss[1]);
    expect(training.finalLoss).toBeLessThan(training.firstLoss - 0.5);
    expect(training.tokensSeen).toBeGreaterThan(0);
  });
});

describe('cream pretrain stops and fails cleanly', () => {
  it('stops after the step that crosses --max-seconds and saves what it has', async () => {
    const out = join(root, 'budget');
    const run = exited(
      await cream(['pretrain', '--out', out, '--config', tinyConfig, '--pretrain-per-task', '4', '--epochs', '5', '--batch-size', '4', '--max-seconds', '0.001', '--eval-per-task', '0']),
      0,
    );
    expect(run.stderr).toMatch(/stopped after step 1: --max-seconds 0.001 reached/);
    const record = await expectConsistent(out);
    expect(record.training).toMatchObject({ steps: 1, plannedSteps: 20, stoppedEarly: true });
    expect(record.evaluation).toBeUndefined();
  }, 150_000);

  it('names the option, the file or the directory at fault', async () => {
    const taken = join(root, 'taken');
    mkdirSync(taken);
    writeFileSync(join(taken, 'keep.txt'), 'x');
    const out = join(root, 'never');
    const runs = await Promise.all([
      cream(['pretrain', '--out', out, '--epochs', '0']),
      cream(['pretrain', '--out', out, '--lr', 'fast']),
      cream(['pretrain', '--epochs', '1']),
      cream(['pretrain', '--out', out, '--vocab-size', '100']),
      cream(['pretrain', '--out', out, '--config', join(root, 'missing.json')]),
      cream(['pretrain', '--out', taken, '--config', tinyConfig]),
    ]);
    expect(exited(runs[0], 2).stderr).toMatch(/--epochs: 0 is outside 1\.\./);
    expect(exited(runs[1], 2).stderr).toMatch(/--lr: "fast" is not a finite number/);
    expect(exited(runs[2], 2).stderr).toMatch(/--out is required/);
    expect(exited(runs[3], 2).stderr).toMatch(/--vocab-size: 100 is outside 259\.\./);
    expect(exited(runs[4], 1).stderr).toMatch(/missing\.json: no such file/);
    expect(exited(runs[5], 1).stderr).toMatch(/already exists and is not empty; --force replaces it/);
    expect(readdirSync(root)).not.toContain('never');
  }, 150_000);
});

describe('the shipped base model models/m0', () => {
  it('is at most 20 MB of plain files (no LFS pointers)', () => {
    const files = readdirSync(m0Dir);
    expect(files.sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'pretrain.json', 'tokenizer.json', 'tokenizer_config.json']);
    const total = files.reduce((sum, f) => sum + statSync(join(m0Dir, f)).size, 0);
    expect(total).toBeLessThanOrEqual(20 * 1024 * 1024);
    expect(readFileSync(join(m0Dir, 'model.safetensors')).subarray(0, 64).toString('latin1')).not.toMatch(/git-lfs/);
  });

  it('has a pretrain.json consistent with its config.json, weights and evaluation', async () => {
    const record = await expectConsistent(m0Dir);
    expect(record.command).toMatch(/--out models\/m0/);
    expect(record.training.steps).toBeGreaterThan(0);
    expect(record.training.finalLoss).toBeLessThan(record.training.firstLoss);
    const evaluation = record.evaluation!;
    expect(evaluation.tasks.map((t) => t.task)).toEqual(['science', 'objects', 'social', 'arithmetic']);
    for (const t of evaluation.tasks) expect(t.accuracy).toBeCloseTo(t.numCorrect / t.numItems, 10);
    expect(evaluation.items).toBe(evaluation.tasks.reduce((sum, t) => sum + t.numItems, 0));
  });

  it('loads with LanguageModel, has its chat template, and answers test prompts in the Answer format', async () => {
    const lm = await LanguageModel.load(m0Dir, { scope: 'm0' });
    try {
      expect(lm.tokenizer.chatTemplates.get('default')).toContain('<|im_start|>');
      expect(lm.numParameters).toBe(readRecord(m0Dir).model.parameters);
      const suite = buildSuite({ seed: BUILTIN_SUITE_SEED, sizes: { pretrainPerTask: 0 } });
      const items = suite.tasks.flatMap((task) => suite.test[task].slice(0, 4));
      const report = await evaluate(items, async (prompts) => {
        const results = await lm.generateText(
          prompts.map((prompt, i) => ({ key: String(i), prompt: { messages: [{ role: 'user', content: prompt }] } })),
          { maxNewTokens: 96, temperature: 0, topP: 1, topK: 0, seed: 0 },
        );
        return results.map((r) => r.text);
      }, { batchSize: items.length });
      const parsed = report.items.filter((item) => item.parsed !== null);
      expect(parsed.length).toBeGreaterThanOrEqual(items.length / 2);
    } finally {
      lm.dispose();
    }
  }, 120_000);
});
