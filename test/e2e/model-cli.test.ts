// The model commands as a user runs them, through the real `cream` binary:
// init-model writes loadable, seed-deterministic checkpoints of the example
// configs; generate is deterministic when greedy and reproducible when seeded;
// score reads text and token-id JSONL and agrees with LanguageModel in-process;
// and every expected failure is one clear line with a non-zero exit.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCompute, silentLogger } from '@cream/compute';
import { LanguageModel, type ChatMessage } from '@cream/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creamBin, workspaceRoot } from '../support/processes';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

// Asynchronous, so independent commands run side by side.
function cream(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [creamBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A run that must succeed; its output on failure. */
function ok(run: Run): Run {
  expect(run.status, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(0);
  return run;
}

/** The one error line of a failed run (no stack trace). */
function failure(run: Run, code: number): string {
  expect(run.status, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(code);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  return run.stderr;
}

const configsDir = join(workspaceRoot, 'apps', 'cli', 'configs');
const examples = ['tiny-llama', 'tiny-qwen2', 'tiny-smollm'] as const;
const root = mkdtempSync(join(tmpdir(), 'cream-model-cli-'));
const modelDir = (name: string) => join(root, name);
const initRuns = new Map<string, Run>();
let llama: LanguageModel;

const writeJsonl = (name: string, rows: unknown[]) => {
  const file = join(root, name);
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};
const jsonLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  const runs = await Promise.all(examples.map((name) => cream(['init-model', '--config', join(configsDir, `${name}.json`), '--out', modelDir(name)])));
  examples.forEach((name, i) => initRuns.set(name, runs[i]));
  // The same default backend as the CLI, so greedy decoding agrees token for token.
  await initCompute({ env: {}, logger: silentLogger });
  llama = await LanguageModel.load(modelDir('tiny-llama'));
});

afterAll(() => llama?.dispose());

describe('cream init-model', () => {
  it('writes a loadable checkpoint for each example config and says what it wrote', async () => {
    const expected = {
      'tiny-llama': { architecture: 'llama', attentionBias: false, tieWordEmbeddings: false, nKvHeads: 2 },
      'tiny-qwen2': { architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: false, nKvHeads: 2 },
      'tiny-smollm': { architecture: 'llama', attentionBias: false, tieWordEmbeddings: true, nKvHeads: 4 },
    };
    for (const name of examples) {
      const run = ok(initRuns.get(name)!);
      expect(run.stderr).toMatch(/^backend: \S+ \(/m);
      expect(run.stdout).toContain(`wrote ${modelDir(name)}`);
      expect(run.stdout).toContain(`architecture  ${expected[name].architecture}`);
      for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
        expect(run.stdout).toContain(file);
        expect(existsSync(join(modelDir(name), file))).toBe(true);
      }
      const model = name === 'tiny-llama' ? llama : await LanguageModel.load(modelDir(name), { scope: name });
      try {
        expect(model.config).toMatchObject({ ...expected[name], vocabSize: 320, nLayers: 2 });
        expect(run.stdout).toContain(model.numParameters.toLocaleString('en-US'));
        expect(model.tokenizer.chatTemplate()).toBeDefined();
      } finally {
        if (model !== llama) model.dispose();
      }
    }
    expect(ok(initRuns.get('tiny-smollm')!).stdout).toContain('tied embeddings');
    expect(ok(initRuns.get('tiny-qwen2')!).stdout).toContain('q/k/v biases');
  });

  it('is deterministic: the same seed writes the same bytes, another seed other weights', async () => {
    const config = join(configsDir, 'tiny-llama.json');
    const [again, other] = await Promise.all([
      cream(['init-model', '--config', config, '--out', join(root, 'llama-again'), '--seed', '0']),
      cream(['init-model', '--config', config, '--out', join(root, 'llama-seed-1'), '--seed', '1']),
    ]);
    ok(again);
    ok(other);
    const weights = (dir: string) => readFileSync(join(dir, 'model.safetensors'));
    expect(weights(join(root, 'llama-again')).equals(weights(modelDir('tiny-llama')))).toBe(true);
    expect(weights(join(root, 'llama-seed-1')).equals(weights(modelDir('tiny-llama')))).toBe(false);
    expect(readFileSync(join(root, 'llama-seed-1', 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(modelDir('tiny-llama'), 'tokenizer.json'), 'utf8'));
  });
});

describe('cream generate', () => {
  it('is deterministic at temperature 0, reproducible when seeded, and respects --max-new-tokens', async () => {
    const model = modelDir('tiny-llama');
    const prompt = 'Name three colors.';
    const base = ['generate', '--model', model, '--prompt', prompt, '--max-new-tokens', '12', '--json'];
    const sampled = ['--temperature', '1', '--top-p', '0.9', '--top-k', '40'];
    const runs = await Promise.all([
      cream([...base, '--temperature', '0']),
      cream([...base, ...sampled, '--seed', '7']),
      cream([...base, ...sampled, '--seed', '8']),
      cream(['generate', '--model', model, '--prompt', prompt, '--max-new-tokens', '12', '--temperature', '0', '--raw']),
    ]);
    const [greedy, seeded, otherSeed] = runs.slice(0, 3).map((run) => JSON.parse(ok(run).stdout) as Record<string, unknown>);
    for (const result of [greedy, seeded, otherSeed]) {
      expect(Object.keys(result).sort()).toEqual(['finish_reason', 'logprob_sum', 'num_prompt_tokens', 'text', 'token_ids']);
      expect(typeof result.text).toBe('string');
      expect(result.finish_reason).toMatch(/^(length|eos)$/);
      expect(Number.isFinite(result.logprob_sum)).toBe(true);
      const ids = result.token_ids as number[];
      expect(ids.length).toBeLessThanOrEqual(12);
      if (result.finish_reason === 'length') expect(ids).toHaveLength(12);
    }
    expect(otherSeed.token_ids).not.toEqual(seeded.token_ids);
    expect(runs[0].stderr).toMatch(/^backend: \S+ \(/m);
    expect(runs[0].stderr).toContain('chat template');

    // Another process (this one) computes the same tokens: greedy decoding is
    // deterministic and a seed names one sample. The default prompt is a user
    // chat turn; --raw tokenizes it as is. One request per call, as the CLI
    // runs it, so even the float rounding matches; its random stream key is "cli".
    const chatPrompt = { messages: [{ role: 'user', content: prompt }] };
    const greedyOptions = { maxNewTokens: 12, temperature: 0, topP: 1, topK: 0, seed: 0 };
    const [chat] = await llama.generateText([{ key: 'cli', prompt: chatPrompt }], greedyOptions);
    const [raw] = await llama.generateText([{ key: 'cli', prompt: { text: prompt } }], greedyOptions);
    expect(greedy.token_ids).toEqual(chat.tokenIds);
    expect(greedy.text).toBe(chat.text);
    expect(greedy.num_prompt_tokens).toBe(chat.numPromptTokens);
    const [sample] = await llama.generateText([{ key: 'cli', prompt: chatPrompt }], { maxNewTokens: 12, temperature: 1, topP: 0.9, topK: 40, seed: 7 });
    expect(seeded.token_ids).toEqual(sample.tokenIds);
    expect(seeded.logprob_sum as number).toBeCloseTo(sample.logprobSum, 3);
    expect(ok(runs[3]).stdout).toBe(raw.text + '\n');
    expect(runs[3].stderr).toContain('raw prompt');
  });
});

describe('cream score', () => {
  it('scores text and token-id lines in input order, the same for the same ids, as LanguageModel does', async () => {
    type Item = { prompt: string; response: string } | { messages: ChatMessage[]; response: string };
    const items: Item[] = [
      { prompt: 'What is two plus two?', response: 'Four.' },
      { prompt: 'Say hello.', response: 'Hello there, nice to meet you!' },
      { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Capital of France?' }], response: 'Paris' },
    ];
    const asPrompt = (item: Item) =>
      'messages' in item ? { messages: item.messages } : { messages: [{ role: 'user', content: item.prompt }] };
    const idRows = items.map((item) => ({ prompt_ids: llama.promptIds(asPrompt(item)), response_ids: llama.responseIds(item.response) }));
    const textFile = writeJsonl('text.jsonl', items);
    const idsFile = writeJsonl('ids.jsonl', idRows);
    const outFile = join(root, 'scores', 'text-scores.jsonl');
    const [textRun, idsRun] = await Promise.all([
      cream(['score', '--model', modelDir('tiny-llama'), '--input', textFile, '--output', outFile, '--batch-size', '2']),
      cream(['score', '--model', modelDir('tiny-llama'), '--input', idsFile, '--batch-size', '2']),
    ]);
    ok(textRun);
    expect(textRun.stdout).toBe('');
    expect(textRun.stderr).toContain('scored 3 items');
    const fromText = jsonLines(readFileSync(outFile, 'utf8'));
    const fromIds = jsonLines(ok(idsRun).stdout);
    expect(fromText).toHaveLength(3);
    expect(fromIds).toEqual(fromText);
    const inProcess = await llama.scoreText(items.map((item) => ({ prompt: asPrompt(item), response: item.response })));
    fromText.forEach((line, i) => {
      expect(Object.keys(line).sort()).toEqual(['logprob_mean', 'logprob_sum', 'num_tokens']);
      expect(line.num_tokens).toBe(idRows[i].response_ids.length); // input order
      expect(line.num_tokens).toBe(inProcess[i].numTokens);
      expect(line.logprob_sum as number).toBeCloseTo(inProcess[i].logprobSum, 3);
      expect(line.logprob_mean as number).toBeCloseTo(inProcess[i].logprobMean, 4);
      expect(line.logprob_sum as number).toBeLessThan(0);
    });
  });
});

describe('model command errors', () => {
  it('prints help for each command', async () => {
    const runs = await Promise.all(['init-model', 'generate', 'score'].map((command) => cream([command, '--help'])));
    expect(ok(runs[0]).stdout).toContain('--config');
    expect(ok(runs[1]).stdout).toContain('--max-new-tokens');
    expect(ok(runs[1]).stdout).toContain('--raw');
    expect(ok(runs[2]).stdout).toContain('response_ids');
  });

  it('fails with one clear line on bad configs, checkpoints, JSONL lines, prompts and flags', async () => {
    const bad = join(root, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'malformed.json'), '{"architectures": ["LlamaForCausalLM"], ');
    writeFileSync(join(bad, 'gpt2.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], vocab_size: 320 }));
    const broken = join(bad, 'broken-model');
    cpSync(modelDir('tiny-llama'), broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), '{ not json');
    const badLines = writeJsonl('bad-lines.jsonl', [{ prompt: 'a', response: 'b' }, { prompt: 'a' }]);
    const tooLong = writeJsonl('too-long.jsonl', [{ prompt_ids: new Array(300).fill(5), response_ids: [6] }]);
    const badOut = join(bad, 'never-written.jsonl');
    const model = modelDir('tiny-llama');
    const [missingConfig, malformedConfig, unsupported, exists, emptyModel, brokenModel, badLine, longScore, longPrompt, badFlag] = await Promise.all([
      cream(['init-model', '--config', join(bad, 'nope.json'), '--out', join(bad, 'm1')]),
      cream(['init-model', '--config', join(bad, 'malformed.json'), '--out', join(bad, 'm2')]),
      cream(['init-model', '--config', join(bad, 'gpt2.json'), '--out', join(bad, 'm3')]),
      cream(['init-model', '--config', join(configsDir, 'tiny-llama.json'), '--out', model]),
      cream(['generate', '--model', bad, '--prompt', 'hi']),
      cream(['generate', '--model', broken, '--prompt', 'hi']),
      cream(['score', '--model', model, '--input', badLines, '--output', badOut]),
      cream(['score', '--model', model, '--input', tooLong]),
      cream(['generate', '--model', model, '--prompt', 'word '.repeat(300)]),
      cream(['generate', '--model', model, '--prompt', 'hi', '--top-p', '2']),
    ]);
    expect(failure(missingConfig, 1)).toContain(`${join(bad, 'nope.json')}: no such file`);
    expect(failure(malformedConfig, 1)).toContain(`${join(bad, 'malformed.json')}: not valid JSON`);
    expect(failure(unsupported, 1)).toMatch(/gpt2\.json: unsupported architecture \["GPT2LMHeadModel"\]; supported: LlamaForCausalLM/);
    expect(failure(exists, 1)).toContain('already exists and is not empty; --force replaces it');
    expect(failure(emptyModel, 1)).toContain(`${join(bad, 'config.json')} does not exist`);
    expect(failure(brokenModel, 1)).toMatch(/config\.json is not valid JSON/);
    expect(failure(badLine, 1)).toContain(`${badLines}:2: "response" must be a string`);
    expect(existsSync(badOut)).toBe(false);
    expect(failure(longScore, 1)).toContain(`${tooLong}:1: prompt and response have 301 tokens; the model's context length is 256`);
    expect(failure(longPrompt, 1)).toMatch(/--prompt has \d+ tokens with the chat template; the model's context length is 256/);
    expect(failure(badFlag, 2)).toContain('--top-p');
  });
});
