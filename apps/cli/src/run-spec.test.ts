// Flag parsing and spec building of `cream run` and `cream compare`: the
// default preset, flags over it or over a --spec file, users' data, and bad
// flags that name themselves.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsistencyMethod, ConsistencyRate, EvalFormat, Method, RankingMode } from '@cream/proto';
import { parseMethods } from './compare';
import { parseRunArgs } from './run';
import { buildRunSpec, defaultPreset, methodName } from './run-spec';

const folder = mkdtempSync(join(tmpdir(), 'cream-run-spec-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(join(folder, name), text);
  return join(folder, name);
};

/** The spec `cream run ARGS` would start, read in `folder`. */
function specOf(...argv: string[]) {
  return buildRunSpec(parseRunArgs(argv, {}).flags, folder);
}

/** The message of the error `fn` throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
  throw new Error('no error thrown');
}

describe('the default preset', () => {
  it('is the design: built-in suite, cream, kendall, dyn, ordinal, 3 iterations, N = 4, T 0.8, top-p 0.95, 96 tokens, evaluate, seed 1', () => {
    const spec = specOf();
    expect(spec).toEqual(defaultPreset());
    expect(spec.data?.builtinSuite).toBe(true);
    expect(spec.baseVersion).toBe('m0');
    expect(spec.method).toBe(Method.METHOD_CREAM);
    expect(spec.consistency).toBe(ConsistencyMethod.CONSISTENCY_METHOD_KENDALL);
    expect(spec.rate).toBe(ConsistencyRate.CONSISTENCY_RATE_DYN);
    expect(spec.ranking).toBe(RankingMode.RANKING_MODE_ORDINAL);
    expect([spec.iterations, spec.numSamples, spec.seed, spec.evaluate]).toEqual([3, 4, 1, true]);
    expect(spec.sampling).toMatchObject({ temperature: 0.8, topP: 0.95, maxNewTokens: 96 });
  });
});

describe('flags over the preset', () => {
  it('sets method, iterations, seed, samples, consistency and rate', () => {
    const spec = specOf('--method', 'srlm-dpo', '--iterations=2', '--seed', '7', '--samples', '6', '--consistency', 'toporder', '--rate', 'avg', '--name', 'x');
    expect(methodName(spec.method)).toBe('srlm-dpo');
    expect([spec.iterations, spec.seed, spec.numSamples, spec.name]).toEqual([2, 7, 6, 'x']);
    expect(spec.consistency).toBe(ConsistencyMethod.CONSISTENCY_METHOD_TOPORDER);
    expect(spec.rate).toBe(ConsistencyRate.CONSISTENCY_RATE_AVG);
  });

  it('takes users\' data with repeated --eval in place of the built-in suite', () => {
    const sft = file('sft.jsonl', '{"messages":[]}\n');
    const prompts = file('prompts.jsonl', '{"id":"a","prompt":"hi"}\n');
    const arc = file('arc.jsonl', '{}\n');
    const gsm = file('gsm.jsonl', '{}\n');
    const spec = specOf('--sft', 'sft.jsonl', '--prompts', prompts, '--eval', `arc=arc:${arc}`, '--eval=math=gsm8k:gsm.jsonl');
    expect(spec.data).toMatchObject({ builtinSuite: false, sftPath: sft, promptsPath: prompts });
    expect(spec.data!.evalSets).toEqual([
      { name: 'arc', format: EvalFormat.EVAL_FORMAT_ARC, path: arc, limit: 0 },
      { name: 'math', format: EvalFormat.EVAL_FORMAT_GSM8K, path: gsm, limit: 0 },
    ]);
    expect(spec.evaluate).toBe(true);
  });

  it('reads a RunSpec from --spec (proto JSON, either field spelling) over the preset, and lets flags override it', () => {
    const path = file('spec.json', JSON.stringify({ name: 'tiny', base_version: 'tiny-v1', method: 'METHOD_ORACLE', iterations: 1, numSamples: 2, sampling: { max_new_tokens: 8 }, sft: { epochs: 1 } }));
    const spec = specOf('--spec', path, '--seed', '3');
    expect([spec.name, spec.baseVersion, methodName(spec.method), spec.iterations, spec.numSamples, spec.seed]).toEqual(['tiny', 'tiny-v1', 'oracle', 1, 2, 3]);
    // Sampling field by field over the preset; the rest of the preset kept.
    expect(spec.sampling).toMatchObject({ maxNewTokens: 8, temperature: 0.8, topP: 0.95 });
    expect(spec.sft?.epochs).toBe(1);
    expect([spec.rate, spec.evaluate, spec.data?.builtinSuite]).toEqual([ConsistencyRate.CONSISTENCY_RATE_DYN, true, true]);
    const own = specOf('--spec', file('own.json', JSON.stringify({ data: { sft_path: '/x.jsonl' }, evaluate: false })));
    expect(own.data).toMatchObject({ builtinSuite: false, sftPath: '/x.jsonl' });
    expect(own.evaluate).toBe(false);
  });
});

describe('bad flags name the flag', () => {
  it.each([
    [['--method', 'dpo'], /--method: "dpo" is not one of cream, srlm, srlm-dpo, oracle/],
    [['--iterations', '0'], /--iterations: 0 is outside 1..100/],
    [['--iterations', 'two'], /--iterations: "two" is not a whole number/],
    [['--samples', '1'], /--samples: 1 is outside 2..64/],
    [['--consistency', 'pearson'], /--consistency: "pearson" is not one of kendall, spearman, toporder/],
    [['--rate', 'max'], /--rate: "max" is not one of avg, dyn/],
    [['--sft', 'missing.jsonl', '--prompts', 'missing.jsonl'], /--sft: .*missing.jsonl does not exist/],
    [['--prompts', 'p.jsonl'], /--sft is required with your own data/],
    [['--sft', 'p.jsonl'], /--prompts is required/],
    [['--sft', 'p.jsonl', '--prompts', 'p.jsonl', '--eval', 'arc.jsonl'], /--eval: "arc.jsonl" is not name=FORMAT:PATH/],
    [['--sft', 'p.jsonl', '--prompts', 'p.jsonl', '--eval', 'a=mmlu:p.jsonl'], /--eval: "mmlu" is not one of arc, gsm8k/],
    [['--sft', 'p.jsonl', '--prompts', 'p.jsonl', '--eval', 'a=arc:p.jsonl', '--eval', 'a=arc:p.jsonl'], /--eval: the name "a" is given twice/],
    [['--spec', 'nothere.json'], /--spec: .*nothere.json does not exist/],
    [['--spec', 'broken.json'], /--spec: .*broken.json is not JSON/],
    [['--spec', 'unknown.json'], /--spec: .*unknown.json: unknown RunSpec field "iteration"/],
    [['--itrations', '2'], /unknown flag --itrations/],
    [['--resume', 'run-1', '--method', 'srlm'], /--resume: a resumed run keeps its spec; --method cannot change it/],
    [['extra'], /unexpected argument "extra"/],
  ])('%j', (argv, message) => {
    file('p.jsonl', '{}\n');
    file('broken.json', '{"name": ');
    file('unknown.json', '{"iteration": 2}');
    const text = errorOf(() => specOf(...argv));
    expect(text).toMatch(/^ConfigError: /);
    expect(text).toMatch(message);
  });

  it('--methods of compare', () => {
    expect(parseMethods('cream, oracle')).toEqual(['cream', 'oracle']);
    expect(errorOf(() => parseMethods('cream,ppo'))).toMatch(/--methods: "ppo" is not one of/);
    expect(errorOf(() => parseMethods('cream,cream'))).toMatch(/--methods: a method is listed twice/);
    expect(errorOf(() => parseMethods(''))).toMatch(/--methods: give at least one method/);
  });
});
