// Spec validation: every rejected field is named, and defaults are resolved once.
import { ConsistencyMethod, ConsistencyRate, DataSpec, EvalFormat, Method, RankingMode, RubricSpec, RubricStyle, RunSpec } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { describe, expect, it } from 'vitest';
import { deriveSeed, resolveEndpoints, resolveSpec, splitEndpoints } from './spec';

const valid = (): RunSpec =>
  RunSpec.fromPartial({
    baseVersion: 'm0',
    method: Method.METHOD_CREAM,
    iterations: 2,
    data: { sftPath: '/d/sft.jsonl', promptsPath: '/d/prompts.jsonl', evalSets: [{ name: 'arc', path: '/d/arc.jsonl', format: EvalFormat.EVAL_FORMAT_ARC }] },
    evaluate: true,
    seed: 7,
  });

function rejection(change: (spec: RunSpec) => void): InvalidArgumentError {
  const spec = valid();
  change(spec);
  try {
    resolveSpec(spec);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('the spec was accepted');
}

describe('resolveSpec', () => {
  it('resolves the documented defaults', () => {
    const spec = resolveSpec(valid());
    expect(spec.numSamples).toBe(5);
    expect(spec.consistency).toBe(ConsistencyMethod.CONSISTENCY_METHOD_KENDALL);
    expect(spec.rate).toBe(ConsistencyRate.CONSISTENCY_RATE_AVG);
    expect(spec.ranking).toBe(RankingMode.RANKING_MODE_ORDINAL);
    expect(spec.sampling).toMatchObject({ temperature: 0.8, topP: 0.95, maxNewTokens: 256, seed: 0 });
    expect(spec.rubric?.numJudgments).toBe(3);
    expect(spec.rubric?.style).toBe(RubricStyle.RUBRIC_STYLE_FULL);
    expect(spec.name).toBe('cream seed 7');
    // Resolving twice changes nothing: what is stored is what resumes.
    expect(RunSpec.toJSON(resolveSpec(RunSpec.fromJSON(RunSpec.toJSON(spec))))).toEqual(RunSpec.toJSON(spec));
  });

  it('keeps given values', () => {
    const spec = valid();
    spec.numSamples = 3;
    spec.rate = ConsistencyRate.CONSISTENCY_RATE_DYN;
    spec.sampling = { temperature: 0, topP: 1, topK: 0, maxNewTokens: 12, stop: [], seed: 99 };
    const resolved = resolveSpec(spec);
    expect(resolved.numSamples).toBe(3);
    expect(resolved.rate).toBe(ConsistencyRate.CONSISTENCY_RATE_DYN);
    expect(resolved.sampling).toMatchObject({ temperature: 0, topP: 1, maxNewTokens: 12, seed: 0 });
  });

  it('resolves the rubric style: compact on the built-in suite, full on users\' data, a given style kept', () => {
    const builtin = valid();
    builtin.data = DataSpec.fromPartial({ builtinSuite: true });
    expect(resolveSpec(builtin).rubric?.style).toBe(RubricStyle.RUBRIC_STYLE_COMPACT);
    builtin.rubric = RubricSpec.fromPartial({ style: RubricStyle.RUBRIC_STYLE_FULL });
    expect(resolveSpec(builtin).rubric?.style).toBe(RubricStyle.RUBRIC_STYLE_FULL);
    const files = valid();
    files.rubric = RubricSpec.fromPartial({ style: RubricStyle.RUBRIC_STYLE_COMPACT });
    expect(resolveSpec(files).rubric?.style).toBe(RubricStyle.RUBRIC_STYLE_COMPACT);
  });

  it.each([
    ['unspecified method', (s: RunSpec) => (s.method = Method.METHOD_UNSPECIFIED), 'spec.method', /not set/],
    ['unknown method', (s: RunSpec) => (s.method = 42 as Method), 'spec.method', /42 is not a method/],
    ['zero iterations', (s: RunSpec) => (s.iterations = 0), 'spec.iterations', /0 iterations; 1 to 100/],
    ['too many iterations', (s: RunSpec) => (s.iterations = 101), 'spec.iterations', /101 iterations/],
    ['one sample', (s: RunSpec) => (s.numSamples = 1), 'spec.num_samples', /2 to 64/],
    ['65 samples', (s: RunSpec) => (s.numSamples = 65), 'spec.num_samples', /2 to 64/],
    ['no base version', (s: RunSpec) => (s.baseVersion = ''), 'spec.base_version', /required/],
    ['no sft file', (s: RunSpec) => (s.data!.sftPath = ''), 'spec.data.sft_path', /required/],
    ['no prompt file', (s: RunSpec) => (s.data!.promptsPath = ''), 'spec.data.prompts_path', /required/],
    ['no eval set while evaluating', (s: RunSpec) => (s.data!.evalSets = []), 'spec.data.eval_sets', /evaluate is on/],
    ['eval set without format', (s: RunSpec) => (s.data!.evalSets[0].format = EvalFormat.EVAL_FORMAT_UNSPECIFIED), 'spec.data.eval_sets[0].format', /EVAL_FORMAT_ARC/],
    ['eval set without path', (s: RunSpec) => (s.data!.evalSets[0].path = ''), 'spec.data.eval_sets[0].path', /required/],
    ['eval set names twice', (s: RunSpec) => s.data!.evalSets.push({ ...s.data!.evalSets[0] }), 'spec.data.eval_sets[1].name', /twice/],
    ['builtin and files', (s: RunSpec) => (s.data!.builtinSuite = true), 'spec.data.sft_path', /not both/],
    ['oracle without keys', (s: RunSpec) => (s.method = Method.METHOD_ORACLE), 'spec.method', /answer keys/],
    ['unknown consistency', (s: RunSpec) => (s.consistency = 9 as ConsistencyMethod), 'spec.consistency', /not a known value/],
    ['top_p 0', (s: RunSpec) => (s.sampling = { topP: 0, topK: 0, maxNewTokens: 0, stop: [], seed: 0 }), 'spec.sampling.top_p', /outside/],
    ['17 judgments', (s: RunSpec) => (s.rubric = RubricSpec.fromPartial({ numJudgments: 17 })), 'spec.rubric.num_judgments', /1 to 16/],
    ['unknown rubric style', (s: RunSpec) => (s.rubric = RubricSpec.fromPartial({ style: 7 as RubricStyle })), 'spec.rubric.style', /not a known value/],
  ])('rejects %s naming the field', (_, change, field, message) => {
    const error = rejection(change);
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.message).toMatch(message);
  });
});

describe('endpoints and seeds', () => {
  const defaults = { generators: ['127.0.0.1:50051'], judges: ['127.0.0.1:50052'], consistencyScorer: '127.0.0.1:50053', trainer: '127.0.0.1:50054' };

  it('takes each endpoint from the spec when given, else from the configuration', () => {
    expect(resolveEndpoints(undefined, defaults)).toEqual(defaults);
    expect(resolveEndpoints({ generators: ['a:1', 'b:1'], judges: [], consistencyScorer: '', trainer: 't:1' }, defaults)).toEqual({ ...defaults, generators: ['a:1', 'b:1'], trainer: 't:1' });
    expect(() => resolveEndpoints(undefined, { ...defaults, judges: [] })).toThrow(/spec.endpoints.judges/);
    expect(splitEndpoints(' a:1, ,dns:///gen:2 ')).toEqual(['a:1', 'dns:///gen:2']);
  });

  it('derives stable, distinct seeds per stage', () => {
    expect(deriveSeed(1, 'iter-1/sample')).toBe(deriveSeed(1, 'iter-1/sample'));
    expect(deriveSeed(1, 'iter-1/sample')).not.toBe(deriveSeed(1, 'iter-2/sample'));
    expect(deriveSeed(1, 'iter-1/sample')).not.toBe(deriveSeed(2, 'iter-1/sample'));
    expect(Number.isSafeInteger(deriveSeed(2 ** 52, 'sft'))).toBe(true);
  });
});
