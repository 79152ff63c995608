// What the model commands (init-model, generate, score) share: starting the
// compute backend and naming it once on stderr, a typed error for bad input
// files, and argv helpers readConfig lacks (--help before required options are
// checked, a flag given several times).
import { readdirSync, readFileSync } from 'node:fs';
import { initCompute, type ComputeInfo, type ComputeLogger } from '@cream/compute';
import { ConfigError, type ConfigSpec } from '@cream/service-kit';

/** An input file (a config, a JSONL line) that cannot be used; the message names the file and line. Exits 1. */
export class InputFileError extends Error {
  override name = 'InputFileError';
  constructor(
    message: string,
    /** The file at fault. */
    readonly file: string,
    /** 1-based line at fault, for line-oriented files. */
    readonly line?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The text of an input file; an unreadable one is an InputFileError naming it (`FILE: no such file`). */
export function readInputFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : (cause as Error).message;
    throw new InputFileError(`${file}: ${why}`, file, undefined, { cause });
  }
}

/** A config.json file as an object; a missing or unparsable file is an InputFileError naming it. */
export function readHfConfig(file: string): Record<string, unknown> {
  const text = readInputFile(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InputFileError(`${file}: not valid JSON (${(cause as Error).message})`, file, undefined, { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputFileError(`${file}: must hold a JSON object (a Hugging Face config.json)`, file);
  }
  return json as Record<string, unknown>;
}

/** True when `dir` exists and holds anything (an absent directory is empty). */
export function nonEmptyDirectory(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false; // absent (or not a directory: saving says so)
  }
}

/** One line naming the backend, e.g. `wasm+native (avx512f, 2 threads)`. */
export function describeBackend(info: ComputeInfo): string {
  const details = [info.simd, `${info.threads} thread${info.threads === 1 ? '' : 's'}`].filter((d) => d !== '');
  return `${info.variant} (${details.join(', ')})`;
}

/**
 * Chooses the tfjs backend (CREAM_BACKEND overrides) and prints it once to
 * stderr. Compute's warnings (e.g. native kernels unavailable) go to stderr too.
 */
export async function startCompute(env: Record<string, string | undefined>, command: string): Promise<ComputeInfo> {
  const logger: ComputeLogger = {
    info: () => undefined,
    warn: (msg, fields) => process.stderr.write(`cream ${command}: warning: ${msg}${fields?.reason ? ` (${String(fields.reason)})` : ''}\n`),
  };
  const info = await initCompute({ env, logger });
  process.stderr.write(`backend: ${describeBackend(info)}\n`);
  return info;
}

/** A flag as it appears in argv: the option key, its raw value and where it sits. */
interface FlagUse {
  key: string | undefined;
  flag: string;
  raw: string | undefined;
  start: number;
  end: number;
}

// Walks argv as readConfig does: `--name value`, `--name=value`, switches take no value.
function flagUses(spec: ConfigSpec, argv: readonly string[]): FlagUse[] {
  const keyByFlag = new Map(Object.entries(spec).map(([key, option]) => [option.flag, key]));
  const uses: FlagUse[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const key = keyByFlag.get(flag);
    const start = i;
    let raw: string | undefined;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (key !== undefined && !spec[key].isSwitch && i + 1 < argv.length) raw = argv[++i];
    uses.push({ key, flag, raw, start, end: i + 1 });
  }
  return uses;
}

/** True when argv asks for --help (checked before readConfig, so required options need not be given). */
export function wantsHelp(spec: ConfigSpec, argv: readonly string[]): boolean {
  return flagUses(spec, argv).some((use) => use.flag === 'help' && use.raw !== 'false');
}

/**
 * Takes every occurrence of a repeatable flag (e.g. `--stop a --stop b`) out of
 * argv, since readConfig keeps only the last; returns the values and the rest.
 */
export function takeRepeated(spec: ConfigSpec, argv: readonly string[], key: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const drop = new Set<number>();
  for (const use of flagUses(spec, argv)) {
    if (use.key !== key) continue;
    if (use.raw === undefined) throw new ConfigError(`flag --${use.flag} needs a value (${spec[key].kind})`, `--${use.flag}`);
    values.push(use.raw);
    for (let i = use.start; i < use.end; i++) drop.add(i);
  }
  return { values, rest: argv.filter((_, i) => !drop.has(i)) };
}

/** Throws a usage error for positional words a command does not take. */
export function rejectPositionals(positionals: readonly string[], usage: string): void {
  if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}" (usage: ${usage})`, positionals[0]);
}
