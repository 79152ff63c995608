// The run spec: structural validation with INVALID_ARGUMENT naming the field
// (`spec.iterations`, `spec.data.eval_sets[0].format`, ...), and the defaults
// resolved once at StartRun and stored with the run, so that a resumed run
// uses exactly the spec it started with. Checks that need files, the registry
// or the network live in resources.ts.
import { createHash } from 'node:crypto';
import {
  ConsistencyMethod,
  ConsistencyRate,
  EvalFormat,
  Method,
  RankingMode,
  RubricStyle,
  RunSpec,
  type Endpoints,
  type SamplingParams,
} from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

/** Limits of the RunSpec contract (coordinator.proto). */
export const SPEC_LIMITS = Object.freeze({
  nameBytes: 128,
  minIterations: 1,
  maxIterations: 100,
  minSamples: 2,
  maxSamples: 64,
  defaultSamples: 5,
  maxEvalSets: 32,
  evalSetNameBytes: 64,
  defaultJudgments: 3,
  maxJudgments: 16,
  maxStop: 8,
  defaultMaxNewTokens: 256,
});

/** The method names of the report (ReportRun.method) by proto value. */
export const METHOD_NAMES: ReadonlyMap<Method, 'cream' | 'srlm' | 'srlm-dpo' | 'oracle'> = new Map([
  [Method.METHOD_CREAM, 'cream'],
  [Method.METHOD_SRLM, 'srlm'],
  [Method.METHOD_SRLM_DPO, 'srlm-dpo'],
  [Method.METHOD_ORACLE, 'oracle'],
]);

/** The method's short name ('cream', 'srlm', 'srlm-dpo', 'oracle'). */
export function methodName(method: Method): 'cream' | 'srlm' | 'srlm-dpo' | 'oracle' {
  const name = METHOD_NAMES.get(method);
  if (name === undefined) throw new InvalidArgumentError(`spec.method: ${String(method)} is not a method; use cream, srlm, srlm-dpo or oracle`, 'spec.method');
  return name;
}

function isKnown<E extends Record<string, string | number>>(enumeration: E, value: number): boolean {
  return value >= 0 && Object.values(enumeration).includes(value);
}

function fail(field: string, message: string): never {
  throw new InvalidArgumentError(`${field}: ${message}`, field);
}

function checkEnum<E extends Record<string, string | number>>(enumeration: E, value: number, field: string, fallback: number): number {
  if (!isKnown(enumeration, value)) fail(field, `${String(value)} is not a known value`);
  return value === 0 ? fallback : value;
}

function checkSampling(sampling: SamplingParams | undefined, field: string, defaults: { temperature: number; topP: number }): SamplingParams {
  const resolved: SamplingParams = {
    temperature: sampling?.temperature ?? defaults.temperature,
    topP: sampling?.topP ?? defaults.topP,
    topK: sampling?.topK ?? 0,
    maxNewTokens: sampling?.maxNewTokens || SPEC_LIMITS.defaultMaxNewTokens,
    stop: [...(sampling?.stop ?? [])],
    // Sampling seeds derive from the run seed (deriveSeed), never from here.
    seed: 0,
  };
  const temperature = resolved.temperature as number;
  const topP = resolved.topP as number;
  if (!(temperature >= 0 && temperature <= 10)) fail(`${field}.temperature`, `${temperature} is outside [0, 10]`);
  if (!(topP > 0 && topP <= 1)) fail(`${field}.top_p`, `${topP} is outside (0, 1]`);
  if (resolved.stop.length > SPEC_LIMITS.maxStop) fail(`${field}.stop`, `${resolved.stop.length} stop strings; at most ${SPEC_LIMITS.maxStop}`);
  return resolved;
}

/**
 * Checks a spec's structure and returns it with every default resolved
 * (consistency KENDALL, rate AVG, ranking ORDINAL, N = 5, temperature 0.8,
 * top-p 0.95, 256 new tokens, 3 rubric judgments, the compact rubric on the
 * built-in suite and the full one otherwise). Throws
 * InvalidArgumentError naming the first bad field.
 */
export function resolveSpec(input: RunSpec | undefined): RunSpec {
  if (input === undefined) fail('spec', 'a run spec is required');
  const spec = RunSpec.fromPartial(input);
  if (Buffer.byteLength(spec.name) > SPEC_LIMITS.nameBytes) fail('spec.name', `${Buffer.byteLength(spec.name)} bytes; at most ${SPEC_LIMITS.nameBytes}`);
  if (spec.method === Method.METHOD_UNSPECIFIED || !METHOD_NAMES.has(spec.method)) {
    fail('spec.method', `${spec.method === Method.METHOD_UNSPECIFIED ? 'not set' : `${String(spec.method)} is not a method`}; use METHOD_CREAM, METHOD_SRLM, METHOD_SRLM_DPO or METHOD_ORACLE`);
  }
  if (spec.baseVersion === '') fail('spec.base_version', 'the registry version of the base model M0 is required');
  if (!Number.isInteger(spec.iterations) || spec.iterations < SPEC_LIMITS.minIterations || spec.iterations > SPEC_LIMITS.maxIterations) {
    fail('spec.iterations', `${spec.iterations} iterations; ${SPEC_LIMITS.minIterations} to ${SPEC_LIMITS.maxIterations}`);
  }
  const numSamples = spec.numSamples || SPEC_LIMITS.defaultSamples;
  if (numSamples < SPEC_LIMITS.minSamples || numSamples > SPEC_LIMITS.maxSamples) {
    fail('spec.num_samples', `${numSamples} samples per prompt; ${SPEC_LIMITS.minSamples} to ${SPEC_LIMITS.maxSamples}, or 0 for ${SPEC_LIMITS.defaultSamples}`);
  }
  if (!Number.isSafeInteger(spec.seed) || spec.seed < 0) fail('spec.seed', `${spec.seed} is not a non-negative integer below 2^53`);

  const data = spec.data;
  if (data === undefined) fail('spec.data', 'the data is required: builtin_suite, or sft_path, prompts_path and eval_sets');
  if (data.builtinSuite) {
    if (data.sftPath !== '') fail('spec.data.sft_path', 'give either builtin_suite or your own files, not both');
    if (data.promptsPath !== '') fail('spec.data.prompts_path', 'give either builtin_suite or your own files, not both');
  } else {
    if (data.sftPath === '') fail('spec.data.sft_path', 'an SFT set (chat-messages JSONL) is required unless builtin_suite is set');
    if (data.promptsPath === '') fail('spec.data.prompts_path', 'a prompt list (JSONL) is required unless builtin_suite is set');
    if (spec.evaluate && data.evalSets.length === 0) fail('spec.data.eval_sets', 'evaluate is on but no evaluation set is given');
    if (spec.method === Method.METHOD_ORACLE) fail('spec.method', 'oracle needs the answer keys of the prompts, which only the built-in suite has');
  }
  if (data.evalSets.length > SPEC_LIMITS.maxEvalSets) fail('spec.data.eval_sets', `${data.evalSets.length} sets; at most ${SPEC_LIMITS.maxEvalSets}`);
  const names = new Set<string>();
  data.evalSets.forEach((set, i) => {
    const field = `spec.data.eval_sets[${i}]`;
    const bytes = Buffer.byteLength(set.name);
    if (bytes < 1 || bytes > SPEC_LIMITS.evalSetNameBytes) fail(`${field}.name`, `${bytes} bytes; 1 to ${SPEC_LIMITS.evalSetNameBytes}`);
    if (names.has(set.name)) fail(`${field}.name`, `"${set.name}" is used twice`);
    names.add(set.name);
    if (set.path === '') fail(`${field}.path`, 'the JSONL path is required');
    if (set.format === EvalFormat.EVAL_FORMAT_UNSPECIFIED || !isKnown(EvalFormat, set.format)) {
      fail(`${field}.format`, 'set EVAL_FORMAT_ARC or EVAL_FORMAT_GSM8K');
    }
  });

  const rubric = spec.rubric;
  const numJudgments = rubric?.numJudgments || SPEC_LIMITS.defaultJudgments;
  if (numJudgments > SPEC_LIMITS.maxJudgments) fail('spec.rubric.num_judgments', `${numJudgments}; 1 to ${SPEC_LIMITS.maxJudgments}, or 0 for ${SPEC_LIMITS.defaultJudgments}`);
  // The built-in suite's base model has a 256-token context, which the paper's rubric (about 1K tokens) overflows.
  const style = checkEnum(RubricStyle, rubric?.style ?? RubricStyle.RUBRIC_STYLE_UNSPECIFIED, 'spec.rubric.style', data.builtinSuite ? RubricStyle.RUBRIC_STYLE_COMPACT : RubricStyle.RUBRIC_STYLE_FULL);

  return RunSpec.fromPartial({
    ...spec,
    name: spec.name || `${methodName(spec.method)} seed ${spec.seed}`,
    consistency: checkEnum(ConsistencyMethod, spec.consistency, 'spec.consistency', ConsistencyMethod.CONSISTENCY_METHOD_KENDALL),
    rate: checkEnum(ConsistencyRate, spec.rate, 'spec.rate', ConsistencyRate.CONSISTENCY_RATE_AVG),
    ranking: checkEnum(RankingMode, spec.ranking, 'spec.ranking', RankingMode.RANKING_MODE_ORDINAL),
    numSamples,
    sampling: checkSampling(spec.sampling, 'spec.sampling', { temperature: 0.8, topP: 0.95 }),
    rubric: { numJudgments, sampling: checkSampling(rubric?.sampling, 'spec.rubric.sampling', { temperature: 0.8, topP: 0.95 }), style },
    sft: spec.sft ?? {},
    dpo: spec.dpo ?? {},
    endpoints: spec.endpoints ?? { generators: [], judges: [], consistencyScorer: '', trainer: '' },
  });
}

/** The coordinator's own endpoints, used by runs whose spec names none. */
export interface EndpointDefaults {
  generators: string[];
  judges: string[];
  consistencyScorer: string;
  trainer: string;
}

/**
 * The endpoints a run uses: each field of the spec's endpoints when set, else
 * the coordinator's configuration. Resolved at every attempt (not stored), so
 * a run resumed by a coordinator with other services uses those.
 */
export function resolveEndpoints(given: Endpoints | undefined, defaults: EndpointDefaults): EndpointDefaults {
  const endpoints = {
    generators: given?.generators.length ? [...given.generators] : [...defaults.generators],
    judges: given?.judges.length ? [...given.judges] : [...defaults.judges],
    consistencyScorer: given?.consistencyScorer || defaults.consistencyScorer,
    trainer: given?.trainer || defaults.trainer,
  };
  if (endpoints.generators.length === 0) fail('spec.endpoints.generators', 'no generator endpoint (none in the spec, none configured)');
  if (endpoints.judges.length === 0) fail('spec.endpoints.judges', 'no judge endpoint (none in the spec, none configured)');
  return endpoints;
}

/**
 * A 48-bit seed derived from the run seed and a label (a stage name, or a
 * stage name and a purpose): stable across attempts and processes, and
 * independent of how work is sharded.
 */
export function deriveSeed(runSeed: number, label: string): number {
  return createHash('sha256').update(`${runSeed}/${label}`, 'utf8').digest().readUIntBE(0, 6);
}

/** Splits a comma-separated endpoint list (flags and environment variables). */
export function splitEndpoints(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}
