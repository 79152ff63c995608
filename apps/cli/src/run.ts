// `cream run`: the main job. Starts every service as its own process on
// loopback, imports the shipped base model when needed, starts (or resumes) a
// run on the coordinator, shows its progress, and ends with the results table
// and the paths of results.json, report.html and trace.jsonl. Ctrl-C cancels
// the run (it stays resumable) and stops the services.
import { existsSync } from 'node:fs';
import type { ServiceError } from '@grpc/grpc-js';
import type { CancelRunResponse, CoordinatorServiceClient, ResumeRunResponse, Run, RunSpec, StartRunResponse } from '@cream/proto';
import { formatRunTable } from '@cream/report';
import { ConfigError, describeConfig, option, readConfig } from '@cream/service-kit';
import { ensureBaseModel, followRun, readReport, RUN_STATES, runFiles, serviceOptions, startStack, unary, type LocalStack } from './experiment';
import { ProgressView } from './progress';
import { buildRunSpec, extractRepeated, methodName, specOptions, type SpecFlags } from './run-spec';

const runOptions = {
  ...specOptions,
  resume: option.string({ flag: 'resume', description: 'resume the run RUN_ID from its first unfinished stage (no spec flags)', default: '' }),
  json: option.bool({ flag: 'json', description: 'print results.json on stdout instead of the table (progress goes to stderr)', default: false }),
  ...serviceOptions,
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream run`. */
export function runHelp(): string {
  return [
    'Usage: cream run [options]            a CREAM experiment with the default preset and these flags',
    '       cream run --resume RUN_ID      finish a stopped run (finished stages are never recomputed)',
    '',
    'Starts every service on loopback, runs SFT M0 -> M1 and the iterations on the coordinator, and prints',
    'per model accuracy per task, consistency rate, reward margin, pairs used and time per stage.',
    'The run folder under $CREAM_HOME/runs holds results.json, report.html and trace.jsonl.',
    '',
    'Options:',
    describeConfig(runOptions),
  ].join('\n');
}

/** The spec flags of a parsed configuration. */
export function specFlags(config: Record<keyof typeof specOptions, string>, evals: string[]): SpecFlags {
  const { eval: _ignored, ...rest } = config;
  return { ...rest, eval: evals };
}

/** Reads argv into the run's configuration; --eval may repeat. Usage errors name the flag. */
export function parseRunArgs(argv: readonly string[], env: Record<string, string | undefined>) {
  const { rest, values } = extractRepeated(argv, 'eval');
  const config = readConfig(runOptions, { argv: rest, env });
  if (config.positionals.length > 0) throw new ConfigError(`unexpected argument "${config.positionals[0]}" (cream run takes flags only)`, config.positionals[0]);
  const flags = specFlags(config, values);
  if (config.resume) {
    const given = (Object.keys(specOptions) as (keyof typeof specOptions)[]).find((key) => (key === 'eval' ? values.length > 0 : flags[key] !== ''));
    if (given) throw new ConfigError(`--resume: a resumed run keeps its spec; --${specOptions[given].flag} cannot change it`, `--${specOptions[given].flag}`);
  }
  return { config, flags };
}

/** One line naming a gRPC failure. */
export function describeCallError(error: unknown): string {
  const e = error as Partial<ServiceError>;
  return e.details ?? (error as Error).message;
}

/** Prints the end of a run: the table (or JSON), the files, and the failed stage; returns the exit code. */
export function reportRunEnd(run: Run, cancelledByUser: boolean, json: boolean): number {
  const method = methodName(run.spec!.method);
  const { report, fromFile } = readReport(run, method);
  const files = runFiles(run);
  if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    process.stdout.write(`\n${formatRunTable(report)}\n`);
    if (!fromFile) process.stdout.write('(results.json was not written; the table comes from the coordinator\'s run record)\n');
  }
  const note = (path: string) => (existsSync(path) ? path : `${path} (not written)`);
  const lines = [`results.json  ${note(files.results)}`, `report.html   ${note(files.report)}`, `trace.jsonl   ${note(files.trace)}`];
  (json ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
  const state = RUN_STATES[run.state] ?? String(run.state);
  if (state === 'SUCCEEDED') return 0;
  const failed = run.stages.find((s) => s.error);
  process.stderr.write(
    `cream run: run ${run.runId} ${state}${failed ? ` in stage ${failed.name}: ${failed.error}` : run.error ? `: ${run.error}` : ''}\n` +
      `resume it with: cream run --resume ${run.runId}\n`,
  );
  return cancelledByUser ? 130 : 1;
}

/**
 * Starts (or resumes) a run on the coordinator and follows it to its end with
 * progress on `progressTo`; Ctrl-C (SIGINT) or SIGTERM cancel it. Resolves
 * with the final run and whether the user cancelled it.
 */
export async function driveRun(
  stack: LocalStack,
  start: { spec: RunSpec } | { resume: string },
  progressTo: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  prefix = '',
): Promise<{ run: Run; cancelledByUser: boolean }> {
  const client: CoordinatorServiceClient = stack.coordinator;
  const since = Date.now();
  const started =
    'spec' in start
      ? (await unary<StartRunResponse>((done) => client.startRun({ spec: start.spec }, done))).run!
      : (await unary<ResumeRunResponse>((done) => client.resumeRun({ runId: start.resume }, done))).run!;
  progressTo.write(`${prefix}run ${started.runId} ${'spec' in start ? 'started' : 'resumed'}; run folder ${started.runDir}\n`);
  let cancelledByUser = false;
  const onSignal = () => {
    if (cancelledByUser) return;
    cancelledByUser = true;
    progressTo.write(`\n${prefix}cancelling run ${started.runId} (it stays resumable)...\n`);
    unary<CancelRunResponse>((done) => client.cancelRun({ runId: started.runId }, done)).catch((error) => progressTo.write(`${prefix}cancel failed: ${describeCallError(error)}\n`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const view = new ProgressView(progressTo, Date.now, prefix, since);
  const ticker = setInterval(() => view.tick(), 1000);
  try {
    const run = await followRun(client, started.runId, (event) => view.onEvent(event));
    return { run, cancelledByUser };
  } catch (error) {
    progressTo.write(`\n${prefix}lost the run ${started.runId} before its end; resume it with: cream run --resume ${started.runId}\n`);
    throw error;
  } finally {
    clearInterval(ticker);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Runs `cream run`; resolves with the exit code. */
export async function run(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const { config, flags } = parseRunArgs(argv, env);
  if (config.help) {
    process.stdout.write(runHelp() + '\n');
    return 0;
  }
  const spec = config.resume ? undefined : buildRunSpec(flags);
  const log = (line: string) => (config.json ? process.stderr : process.stdout).write(`${line}\n`);
  if (spec) await ensureBaseModel(env, spec.baseVersion, log);
  log('cream run: starting the services...');
  let stack: LocalStack;
  try {
    stack = await startStack(env, config.portOffset, config.timeoutSeconds);
  } catch (error) {
    process.stderr.write(`cream run: the services did not start: ${(error as Error).message}\n`);
    return 1;
  }
  log(`cream run: services up (logs in ${stack.logDir}, CREAM_HOME ${stack.home})`);
  try {
    const { run: finished, cancelledByUser } = await driveRun(stack, spec ? { spec } : { resume: config.resume }, config.json ? process.stderr : process.stdout);
    return reportRunEnd(finished, cancelledByUser, config.json);
  } catch (error) {
    const code = (error as Partial<ServiceError>).code;
    // INVALID_ARGUMENT (3), NOT_FOUND (5), FAILED_PRECONDITION (9): the spec or the run id is wrong.
    if (code === 3 || code === 5 || code === 9) {
      process.stderr.write(`cream run: ${describeCallError(error)}\n`);
      return 2;
    }
    process.stderr.write(`cream run: ${describeCallError(error)}\n(service logs in ${stack.logDir})\n`);
    return 1;
  } finally {
    log('cream run: stopping the services...');
    await stack.stop();
  }
}
