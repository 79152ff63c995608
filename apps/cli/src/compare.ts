// `cream compare`: runs several methods (default cream, srlm, srlm-dpo,
// oracle) for seeds 1..K through the same coordinator and services on the
// same data and budget, then writes <CREAM_HOME>/comparisons/<id>/
// {comparison.md, comparison.json, report.html} and prints the markdown table.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { aggregateComparison, formatComparisonMarkdown, renderComparisonReport, type ReportRun } from '@cream/report';
import { ConfigError, describeConfig, option, readConfig } from '@cream/service-kit';
import { ensureBaseModel, readReport, RUN_STATES, serviceOptions, startStack, type LocalStack } from './experiment';
import { describeCallError, driveRun, specFlags } from './run';
import { buildRunSpec, extractRepeated, METHODS, methodName, specOptions, type MethodName } from './run-spec';

/** Spec flags minus the two that compare sets per run. */
const { method: _method, seed: _seed, ...sharedSpecOptions } = specOptions;

const compareOptions = {
  methods: option.string({ flag: 'methods', description: `comma-separated methods (${Object.keys(METHODS).join(', ')})`, default: 'cream,srlm,srlm-dpo,oracle' }),
  seeds: option.int({ flag: 'seeds', description: 'run every method with seeds 1..K (mean ± sample std when K > 1)', default: 1, min: 1, max: 100 }),
  ...sharedSpecOptions,
  ...serviceOptions,
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream compare`. */
export function compareHelp(): string {
  return [
    'Usage: cream compare [--methods cream,srlm,srlm-dpo,oracle] [--seeds K] [spec options]',
    '',
    'Runs every method for seeds 1..K on the same data and budget (the default preset or --spec, with the',
    'flags on top), then writes comparison.md, comparison.json and report.html under',
    '$CREAM_HOME/comparisons/<id>/ and prints the table: accuracy per method and model, consistency per iteration.',
    '',
    'Options:',
    describeConfig(compareOptions),
  ].join('\n');
}

/** The methods of --methods, checked and without repeats. */
export function parseMethods(raw: string): MethodName[] {
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new ConfigError('--methods: give at least one method', '--methods');
  for (const name of names) {
    if (!Object.hasOwn(METHODS, name)) throw new ConfigError(`--methods: "${name}" is not one of ${Object.keys(METHODS).join(', ')}`, '--methods');
  }
  if (new Set(names).size !== names.length) throw new ConfigError('--methods: a method is listed twice', '--methods');
  return names as MethodName[];
}

/** A new comparison id: `cmp-YYYYMMDD-hhmmss-xxxx`. */
function comparisonId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `cmp-${stamp}-${randomBytes(2).toString('hex')}`;
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** Runs `cream compare`; resolves with the exit code (1 when any run did not succeed). */
export async function compare(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const { rest, values: evals } = extractRepeated(argv, 'eval');
  const config = readConfig(compareOptions, { argv: rest, env });
  if (config.help) {
    process.stdout.write(compareHelp() + '\n');
    return 0;
  }
  if (config.positionals.length > 0) throw new ConfigError(`unexpected argument "${config.positionals[0]}" (cream compare takes flags only)`, config.positionals[0]);
  const methods = parseMethods(config.methods);
  const base = buildRunSpec(specFlags({ ...config, method: '', seed: '' }, evals));
  const baseName = base.name || 'compare';
  await ensureBaseModel(env, base.baseVersion, (line) => process.stdout.write(`${line}\n`));
  process.stdout.write('cream compare: starting the services...\n');
  let stack: LocalStack;
  try {
    stack = await startStack(env, config.portOffset, config.timeoutSeconds);
  } catch (error) {
    process.stderr.write(`cream compare: the services did not start: ${(error as Error).message}\n`);
    return 1;
  }
  const id = comparisonId();
  const folder = join(stack.home, 'comparisons', id);
  const reports: ReportRun[] = [];
  // A method whose spec the coordinator refuses (e.g. oracle without answer keys) is skipped for every seed.
  const refused = new Set<MethodName>();
  let cancelled = false;
  try {
    for (let seed = 1; seed <= config.seeds && !cancelled; seed++) {
      for (const method of methods) {
        if (cancelled || refused.has(method)) continue;
        const spec = { ...base, name: `${baseName} ${method} seed ${seed}`, method: METHODS[method], seed };
        const prefix = `[${method} seed ${seed}] `;
        try {
          const { run, cancelledByUser } = await driveRun(stack, { spec }, process.stdout, prefix);
          cancelled = cancelledByUser;
          reports.push(readReport(run, methodName(run.spec!.method)).report);
          process.stdout.write(`${prefix}${RUN_STATES[run.state] ?? run.state}\n`);
        } catch (error) {
          const code = (error as { code?: number }).code;
          if (code === 3) refused.add(method);
          process.stderr.write(`${prefix}${code === 3 ? 'refused' : 'failed'}: ${describeCallError(error)}\n`);
          // UNAVAILABLE: the coordinator is gone, and so is every later run.
          cancelled = code === 14;
        }
      }
    }
  } finally {
    process.stdout.write('cream compare: stopping the services...\n');
    await stack.stop();
  }
  if (reports.length === 0) {
    process.stderr.write('cream compare: no run produced results\n');
    return 1;
  }
  const comparison = aggregateComparison(reports);
  const markdown = formatComparisonMarkdown(comparison);
  mkdirSync(folder, { recursive: true });
  writeAtomically(join(folder, 'comparison.json'), `${JSON.stringify({ id, comparison, runs: reports }, null, 2)}\n`);
  writeAtomically(join(folder, 'comparison.md'), markdown);
  writeAtomically(join(folder, 'report.html'), renderComparisonReport(comparison));
  process.stdout.write(`\n${markdown}\ncomparison.md  ${join(folder, 'comparison.md')}\ncomparison.json ${join(folder, 'comparison.json')}\nreport.html    ${join(folder, 'report.html')}\n`);
  return reports.every((r) => r.state === 'SUCCEEDED') && reports.length === methods.length * config.seeds ? 0 : 1;
}
