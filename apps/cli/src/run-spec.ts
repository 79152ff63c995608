// The run spec of `cream run` and `cream compare`: the `default` preset (see
// the coordinator design) plus the flags on top, or a whole RunSpec from a
// proto-JSON file. Pure apart from reading --spec and checking that the data
// files exist; every bad flag names itself.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConsistencyMethod, ConsistencyRate, EvalFormat, Method, RankingMode, RunSpec, type EvalSetSpec } from '@cream/proto';
import { ConfigError, option } from '@cream/service-kit';

/** Method names on the command line and their enum values. */
export const METHODS = { cream: Method.METHOD_CREAM, srlm: Method.METHOD_SRLM, 'srlm-dpo': Method.METHOD_SRLM_DPO, oracle: Method.METHOD_ORACLE } as const;
/** Consistency measures on the command line. */
export const CONSISTENCY = {
  kendall: ConsistencyMethod.CONSISTENCY_METHOD_KENDALL,
  spearman: ConsistencyMethod.CONSISTENCY_METHOD_SPEARMAN,
  toporder: ConsistencyMethod.CONSISTENCY_METHOD_TOPORDER,
} as const;
/** Consistency rates on the command line. */
export const RATES = { avg: ConsistencyRate.CONSISTENCY_RATE_AVG, dyn: ConsistencyRate.CONSISTENCY_RATE_DYN } as const;
/** Evaluation file formats on the command line (`--eval name=FORMAT:PATH`). */
export const EVAL_FORMATS = { arc: EvalFormat.EVAL_FORMAT_ARC, gsm8k: EvalFormat.EVAL_FORMAT_GSM8K } as const;

/** A method name on the command line. */
export type MethodName = keyof typeof METHODS;

/** The method's command-line name from its enum value. */
export function methodName(method: Method): MethodName {
  const found = (Object.keys(METHODS) as MethodName[]).find((name) => METHODS[name] === method);
  if (!found) throw new ConfigError(`method ${method} has no name`, 'method');
  return found;
}

/**
 * The `default` preset: the built-in suite, CREAM with Kendall and the dynamic
 * rate on ordinal ranks, 3 iterations of N = 4 samples at temperature 0.8 and
 * top-p 0.95, up to 96 new tokens, greedy evaluation of every model, seed 1.
 * Training hyperparameters are scaled for the shipped 1.4M-parameter M0 (the
 * paper's 5e-6 / 1e-6 are for 7B models and barely move a model this small):
 * SFT 3 epochs at 1e-3, DPO 2 epochs at 2e-4 with beta 0.1, batch 16, cosine
 * with 10% warm-up; a --spec file overrides them field by field.
 */
export function defaultPreset(): RunSpec {
  return RunSpec.fromPartial({
    name: 'default',
    baseVersion: 'm0',
    data: { builtinSuite: true },
    method: Method.METHOD_CREAM,
    consistency: ConsistencyMethod.CONSISTENCY_METHOD_KENDALL,
    rate: ConsistencyRate.CONSISTENCY_RATE_DYN,
    ranking: RankingMode.RANKING_MODE_ORDINAL,
    iterations: 3,
    numSamples: 4,
    sampling: { temperature: 0.8, topP: 0.95, maxNewTokens: 96 },
    sft: { learningRate: 1e-3, epochs: 3, batchSize: 16, warmupRatio: 0.1 },
    dpo: { learningRate: 2e-4, epochs: 2, batchSize: 16, warmupRatio: 0.1, beta: 0.1 },
    seed: 1,
    evaluate: true,
  });
}

/**
 * Flags that shape the spec. Empty text means "not given" (the preset or the
 * --spec file decides), so that a flag given explicitly always wins.
 */
export const specOptions = {
  spec: option.string({ flag: 'spec', description: 'a RunSpec in proto JSON laid over the default preset; flags below override it', default: '' }),
  name: option.string({ flag: 'name', description: 'display name of the run', default: '' }),
  base: option.string({ flag: 'base', description: 'registry version of the base model M0 (default m0, imported from models/m0 when missing)', default: '' }),
  method: option.string({ flag: 'method', description: `method: ${Object.keys(METHODS).join('|')} (default cream)`, default: '' }),
  iterations: option.string({ flag: 'iterations', description: 'CREAM iterations after SFT, 1..100 (default 3)', default: '' }),
  seed: option.string({ flag: 'seed', description: 'master seed of the run (default 1)', default: '' }),
  samples: option.string({ flag: 'samples', description: 'responses sampled per prompt N, 2..64 (default 4)', default: '' }),
  consistency: option.string({ flag: 'consistency', description: `consistency measure: ${Object.keys(CONSISTENCY).join('|')} (default kendall)`, default: '' }),
  rate: option.string({ flag: 'rate', description: 'consistency rate: avg|dyn (default dyn)', default: '' }),
  sft: option.string({ flag: 'sft', description: 'your SFT seed set (chat-messages JSONL) instead of the built-in suite', default: '' }),
  prompts: option.string({ flag: 'prompts', description: 'your unlabeled prompts (JSONL of {"id","prompt"} or {"id","messages"})', default: '' }),
  eval: option.string({ flag: 'eval', description: 'an evaluation set name=arc|gsm8k:PATH (repeat the flag for several)', default: '' }),
};

/** The values of specOptions, with --eval possibly repeated. */
export type SpecFlags = { [K in Exclude<keyof typeof specOptions, 'eval'>]: string } & { eval: string[] };

/**
 * Takes every `--eval X` / `--eval=X` out of argv (readConfig keeps one value
 * per flag; --eval may be repeated). Returns the other arguments and the values.
 */
export function extractRepeated(argv: readonly string[], flag: string): { rest: string[]; values: string[] } {
  const rest: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === `--${flag}`) {
      if (i + 1 >= argv.length) throw new ConfigError(`flag --${flag} needs a value`, `--${flag}`);
      values.push(argv[++i]);
    } else if (arg.startsWith(`--${flag}=`)) values.push(arg.slice(flag.length + 3));
    else rest.push(arg);
  }
  return { rest, values };
}

function integer(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`--${flag}: "${raw}" is not a whole number`, `--${flag}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`--${flag}: ${value} is outside ${min}..${max}`, `--${flag}`);
  return value;
}

function pick<T>(flag: string, raw: string, table: Record<string, T>): T {
  if (!Object.hasOwn(table, raw)) throw new ConfigError(`--${flag}: "${raw}" is not one of ${Object.keys(table).join(', ')}`, `--${flag}`);
  return table[raw];
}

function dataFile(flag: string, raw: string, cwd: string): string {
  const path = resolve(cwd, raw);
  if (!existsSync(path)) throw new ConfigError(`--${flag}: ${path} does not exist`, `--${flag}`);
  if (!statSync(path).isFile()) throw new ConfigError(`--${flag}: ${path} is not a file`, `--${flag}`);
  return path;
}

/** Parses `--eval name=FORMAT:PATH` (FORMAT arc or gsm8k). */
export function parseEvalFlag(raw: string, cwd: string): EvalSetSpec {
  const match = /^([^=]{1,64})=([a-z0-9]+):(.+)$/.exec(raw);
  if (!match) throw new ConfigError(`--eval: "${raw}" is not name=FORMAT:PATH (FORMAT ${Object.keys(EVAL_FORMATS).join(' or ')}; name 1 to 64 characters)`, '--eval');
  const [, name, format, path] = match;
  return { name, format: pick('eval', format, EVAL_FORMATS), path: dataFile('eval', path, cwd), limit: 0 };
}

/** RunSpec's fields in proto JSON (camelCase) and as in the .proto (snake_case). */
const SPEC_FIELDS = new Set(
  ['name', 'baseVersion', 'data', 'method', 'consistency', 'rate', 'ranking', 'iterations', 'numSamples', 'sampling', 'sft', 'dpo', 'rubric', 'endpoints', 'seed', 'evaluate'].flatMap(
    (name) => [name, name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)],
  ),
);

/** Proto JSON accepts both spellings; camelCase keys (recursively) so that two specs can be laid over each other. */
function camelKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), camelKeys(inner)]));
}

/**
 * Reads a RunSpec from a proto-JSON file laid over the default preset: a
 * field the file gives wins (`data` as a whole, other messages field by
 * field). Bad JSON and unknown top-level fields are errors naming the file.
 */
export function readSpecFile(raw: string, cwd: string): RunSpec {
  const path = dataFile('spec', raw, cwd);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`--spec: ${path} is not JSON: ${(error as Error).message}`, '--spec');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(`--spec: ${path} must hold a JSON object (a RunSpec)`, '--spec');
  for (const key of Object.keys(json as object)) {
    if (!SPEC_FIELDS.has(key)) throw new ConfigError(`--spec: ${path}: unknown RunSpec field "${key}"`, '--spec');
  }
  const given = camelKeys(json) as Record<string, unknown>;
  const merged: Record<string, unknown> = RunSpec.toJSON(defaultPreset()) as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) {
    const preset = merged[key];
    const isMessage = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
    merged[key] = key !== 'data' && isMessage(preset) && isMessage(value) ? { ...(preset as object), ...(value as object) } : value;
  }
  try {
    return RunSpec.fromJSON(merged);
  } catch (error) {
    throw new ConfigError(`--spec: ${path}: ${(error as Error).message}`, '--spec');
  }
}

/**
 * The spec of a run: the `default` preset (or the --spec file), then every
 * flag that was given. User data (--sft, --prompts, --eval) replaces the
 * built-in suite and needs both --sft and --prompts.
 */
export function buildRunSpec(flags: SpecFlags, cwd = process.cwd()): RunSpec {
  const spec = flags.spec ? readSpecFile(flags.spec, cwd) : defaultPreset();
  if (flags.name) spec.name = flags.name;
  if (flags.base) spec.baseVersion = flags.base;
  if (flags.method) spec.method = pick('method', flags.method, METHODS);
  if (flags.iterations) spec.iterations = integer('iterations', flags.iterations, 1, 100);
  if (flags.seed) spec.seed = integer('seed', flags.seed, 0, Number.MAX_SAFE_INTEGER);
  if (flags.samples) spec.numSamples = integer('samples', flags.samples, 2, 64);
  if (flags.consistency) spec.consistency = pick('consistency', flags.consistency, CONSISTENCY);
  if (flags.rate) spec.rate = pick('rate', flags.rate, RATES);
  if (flags.sft || flags.prompts || flags.eval.length > 0) {
    if (!flags.sft) throw new ConfigError('--sft is required with your own data (--prompts or --eval given): the SFT seed set as chat-messages JSONL', '--sft');
    if (!flags.prompts) throw new ConfigError('--prompts is required with your own data (--sft or --eval given): the unlabeled prompts as JSONL', '--prompts');
    const evalSets = flags.eval.map((raw) => parseEvalFlag(raw, cwd));
    const names = new Set<string>();
    for (const set of evalSets) {
      if (names.has(set.name)) throw new ConfigError(`--eval: the name "${set.name}" is given twice`, '--eval');
      names.add(set.name);
    }
    spec.data = { ...(spec.data ?? { promptsPerIteration: 0, maxSftExamples: 0 }), builtinSuite: false, sftPath: dataFile('sft', flags.sft, cwd), promptsPath: dataFile('prompts', flags.prompts, cwd), evalSets };
    if (evalSets.length === 0) spec.evaluate = false;
  }
  if (!spec.baseVersion) spec.baseVersion = 'm0';
  return spec;
}
