// Typed configuration read once at start from command-line flags and the
// environment (flag beats variable beats default), validated up front so a
// bad value fails fast with the flag's and the variable's name.
import { ConfigError } from './errors';

/** One option: where it is read from, its type, limits and default. */
export interface OptionSpec<T> {
  /** Flag name without dashes, e.g. "port" for --port. */
  flag: string;
  /** Environment variable, e.g. "CREAM_PORT". */
  env?: string;
  /** One-line meaning, for --help. */
  description: string;
  /** Value when neither flag nor variable is given; absent means required. */
  default?: T;
  /**
   * How --help states the default, when the value itself would mislead: a
   * placeholder ('' or -1 for "decided later"), or a value computed from the
   * environment that needs its rule beside it.
   */
  defaultHelp?: string;
  /** Converts and validates a raw string; throws a message (without the name) when invalid. */
  parse(raw: string): T;
  /** How --help shows the type. */
  kind: string;
  /** A boolean flag takes no value. */
  isSwitch?: boolean;
}

/** A set of options, keyed by the name the program uses. */
export type ConfigSpec = Record<string, OptionSpec<unknown>>;

/** The values of a ConfigSpec. */
export type ConfigValues<S extends ConfigSpec> = { [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never };

// What every builder takes: the OptionSpec fields a caller sets.
type BuilderSpec<T> = Pick<OptionSpec<T>, 'flag' | 'env' | 'description' | 'default' | 'defaultHelp'>;

/** Builders for common option types. */
export const option = {
  /** An integer in [min, max]. */
  int(spec: BuilderSpec<number> & { min?: number; max?: number }): OptionSpec<number> {
    const min = spec.min ?? Number.MIN_SAFE_INTEGER;
    const max = spec.max ?? Number.MAX_SAFE_INTEGER;
    return {
      ...spec,
      kind: `int ${min}..${max}`,
      parse(raw) {
        if (!/^-?\d+$/.test(raw.trim())) throw new Error(`"${raw}" is not an integer`);
        const value = Number(raw);
        if (value < min || value > max) throw new Error(`${value} is outside ${min}..${max}`);
        return value;
      },
    };
  },
  /** A number in [min, max]. */
  number(spec: BuilderSpec<number> & { min?: number; max?: number }): OptionSpec<number> {
    const min = spec.min ?? -Infinity;
    const max = spec.max ?? Infinity;
    return {
      ...spec,
      kind: `number ${min}..${max}`,
      parse(raw) {
        const value = Number(raw);
        if (raw.trim() === '' || !Number.isFinite(value)) throw new Error(`"${raw}" is not a finite number`);
        if (value < min || value > max) throw new Error(`${value} is outside ${min}..${max}`);
        return value;
      },
    };
  },
  /** Free text, optionally non-empty. */
  string(spec: BuilderSpec<string> & { nonEmpty?: boolean }): OptionSpec<string> {
    return {
      ...spec,
      kind: 'string',
      parse(raw) {
        if (spec.nonEmpty && raw.length === 0) throw new Error('must not be empty');
        return raw;
      },
    };
  },
  /** One of a fixed set of words. */
  choice<T extends string>(spec: BuilderSpec<T> & { values: readonly T[] }): OptionSpec<T> {
    return {
      ...spec,
      kind: spec.values.join('|'),
      parse(raw) {
        if (!(spec.values as readonly string[]).includes(raw)) throw new Error(`"${raw}" is not one of ${spec.values.join(', ')}`);
        return raw as T;
      },
    };
  },
  /** true/false; as a flag, present means true. */
  bool(spec: BuilderSpec<boolean>): OptionSpec<boolean> {
    return {
      ...spec,
      kind: 'bool',
      isSwitch: true,
      parse(raw) {
        const v = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(v)) return true;
        if (['0', 'false', 'no', 'off'].includes(v)) return false;
        throw new Error(`"${raw}" is not a boolean (true/false)`);
      },
    };
  },
};

function nameOf(spec: OptionSpec<unknown>): string {
  return spec.env ? `--${spec.flag} / ${spec.env}` : `--${spec.flag}`;
}

/**
 * Reads every option of `spec` from argv (`--name value`, `--name=value`) and env.
 * Throws ConfigError naming the flag or variable for an unknown flag, a bad value
 * or a missing required option. Returns the values and the positional arguments.
 */
export function readConfig<S extends ConfigSpec>(
  spec: S,
  source: { argv?: readonly string[]; env?: Record<string, string | undefined> } = {},
): ConfigValues<S> & { positionals: string[] } {
  const argv = source.argv ?? [];
  const env = source.env ?? process.env;
  const byFlag = new Map<string, string>();
  for (const [key, value] of Object.entries(spec)) byFlag.set(value.flag, key);
  const fromFlags = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const key = byFlag.get(flag);
    if (key === undefined) {
      throw new ConfigError(`unknown flag --${flag}; known: ${[...byFlag.keys()].map((f) => `--${f}`).join(', ')}`, `--${flag}`);
    }
    const option = spec[key];
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (option.isSwitch) raw = 'true';
    else if (i + 1 < argv.length) raw = argv[++i];
    else throw new ConfigError(`flag --${flag} needs a value (${option.kind})`, `--${flag}`);
    fromFlags.set(key, raw);
  }
  const values: Record<string, unknown> = { positionals };
  for (const [key, option] of Object.entries(spec)) {
    const flagValue = fromFlags.get(key);
    const envValue = option.env === undefined ? undefined : env[option.env];
    const [raw, from] =
      flagValue !== undefined ? [flagValue, `--${option.flag}`] : envValue !== undefined && envValue !== '' ? [envValue, option.env!] : [undefined, ''];
    if (raw === undefined) {
      if (option.default === undefined) throw new ConfigError(`${nameOf(option)} is required: ${option.description}`, option.env ?? `--${option.flag}`);
      values[key] = option.default;
      continue;
    }
    try {
      values[key] = option.parse(raw);
    } catch (cause) {
      throw new ConfigError(`${from}: ${(cause as Error).message} (${option.description})`, from, { cause });
    }
  }
  return values as ConfigValues<S> & { positionals: string[] };
}

// How --help states an option's default: its defaultHelp, else the value,
// but nothing for an empty text (an option that is simply not set).
function defaultText(o: OptionSpec<unknown>): string {
  if (o.defaultHelp !== undefined) return ` (default ${o.defaultHelp})`;
  if (o.default === undefined || o.default === '') return '';
  return ` (default ${JSON.stringify(o.default)})`;
}

/** Lines describing every option, for --help. */
export function describeConfig(spec: ConfigSpec): string {
  const rows = Object.values(spec).map((o) => {
    const left = `  --${o.flag}${o.isSwitch ? '' : ` <${o.kind}>`}`;
    const right = `${o.description}${o.env ? ` [env ${o.env}]` : ''}${defaultText(o)}`;
    return [left, right] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, r]) => l.padEnd(width) + r).join('\n');
}
