// `cream up`: starts every available service as its own process on loopback,
// waits until each answers SERVING on grpc.health.v1, prints the endpoints,
// and on Ctrl-C or SIGTERM stops them all gracefully.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthClient, ServingStatus } from '@cream/proto';
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { serviceMainPath, services, type ServiceEntry } from './services';

const upOptions = {
  host: option.string({ flag: 'host', env: 'CREAM_HOST', description: 'address every service binds', default: '127.0.0.1', nonEmpty: true }),
  portOffset: option.int({ flag: 'port-offset', env: 'CREAM_PORT_OFFSET', description: 'added to every default port (50051..50055)', default: 0, min: -50000, max: 15000 }),
  logDir: option.string({ flag: 'log-dir', env: 'CREAM_LOG_DIR', description: 'where each service\'s log goes', default: '.cream/logs' }),
  timeoutSeconds: option.number({ flag: 'timeout-seconds', description: 'how long to wait for every service to answer health checks', default: 120, min: 1, max: 3600 }),
  servingTimeoutSeconds: option.number({
    flag: 'serving-timeout-seconds',
    description: 'how long to wait for SERVING (a model service without a model stays NOT_SERVING and is reported)',
    default: 60,
    min: 0,
    max: 3600,
  }),
  only: option.string({ flag: 'only', description: 'comma-separated services to start (default: every available one)', default: '' }),
  help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
};

/** Help for `cream up`. */
export function upHelp(): string {
  return `Usage: cream up [options]\n\nStarts every available service as its own process on loopback, waits until each is SERVING,\nprints the endpoints, and stops them all on Ctrl-C.\n\nOptions:\n${describeConfig(upOptions)}`;
}

/** A started service process. */
interface Started {
  entry: ServiceEntry;
  address: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
}

function healthStatus(address: string, service: string, deadlineMs: number): Promise<ServingStatus> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<ServingStatus>((resolvePromise, reject) =>
    client.check({ service }, new Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolvePromise(response.status);
    }),
  );
}

/**
 * Waits until the service answers health, then until it is SERVING or the
 * serving deadline passes. A model service with no model to load stays
 * NOT_SERVING: that is reported, not a failure. A process that exits is.
 */
async function waitHealthy(started: Started, answerBy: number, servingBy: number): Promise<ServingStatus> {
  let exitCode: number | null | undefined;
  void started.exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) {
      const tail = readFileSync(started.logPath, 'utf8').split('\n').slice(-15).join('\n');
      throw new Error(`${started.entry.name} exited with code ${exitCode} before it was SERVING; its log (${started.logPath}) ends:\n${tail}`);
    }
    const status = await healthStatus(started.address, started.entry.grpcService, 1000).catch(() => undefined);
    if (status === ServingStatus.SERVING) return status;
    if (status === undefined && Date.now() > answerBy) throw new Error(`${started.entry.name} at ${started.address} did not answer health checks in time`);
    if (status !== undefined && Date.now() > servingBy) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs `cream up`; resolves with the exit code once every service has stopped. */
export async function up(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const config = readConfig(upOptions, { argv, env });
  if (config.help) {
    process.stdout.write(upHelp() + '\n');
    return 0;
  }
  const wanted = config.only ? config.only.split(',').map((s) => s.trim()) : undefined;
  for (const name of wanted ?? []) {
    if (!services.some((s) => s.name === name)) throw new Error(`--only: unknown service "${name}"`);
  }
  const chosen = services.filter((s) => (wanted ? wanted.includes(s.name) : true) && serviceMainPath(s) !== undefined);
  const missing = services.filter((s) => serviceMainPath(s) === undefined).map((s) => s.name);
  const logDir = resolve(config.logDir);
  mkdirSync(logDir, { recursive: true });
  const bin = join(__dirname, '..', 'bin', 'cream.js');
  const started: Started[] = [];
  let statuses: ServingStatus[] = [];
  const stopAll = async () => {
    for (const s of started) if (s.child.exitCode === null) s.child.kill('SIGTERM');
    await Promise.all(started.map((s) => s.exited));
  };
  try {
    for (const entry of chosen) {
      const port = entry.defaultPort + config.portOffset;
      const logPath = join(logDir, `${entry.name}.log`);
      const log = createWriteStream(logPath, { flags: 'a' });
      const child = spawn(process.execPath, [bin, 'serve', entry.name, '--host', config.host, '--port', String(port)], {
        env: { ...env, CREAM_SERVICE_NAME: entry.name },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      started.push({ entry, address: `${config.host}:${port}`, child, logPath, exited });
    }
    const answerBy = Date.now() + config.timeoutSeconds * 1000;
    const servingBy = Date.now() + config.servingTimeoutSeconds * 1000;
    statuses = await Promise.all(started.map((s) => waitHealthy(s, answerBy, servingBy)));
  } catch (error) {
    process.stderr.write(`cream up: ${(error as Error).message}\n`);
    await stopAll();
    return 1;
  }
  const width = Math.max(...started.map((s) => s.entry.name.length)) + 2;
  const waiting = started.filter((_, i) => statuses[i] !== ServingStatus.SERVING);
  process.stdout.write(waiting.length === 0 ? 'cream up: every service is SERVING\n' : 'cream up: every service is up\n');
  started.forEach((s, i) => {
    const state = statuses[i] === ServingStatus.SERVING ? 'SERVING' : 'NOT_SERVING';
    process.stdout.write(`  ${s.entry.name.padEnd(width)}${s.address}  ${state.padEnd(12)}(pid ${s.child.pid}, log ${s.logPath})\n`);
  });
  if (waiting.length > 0) {
    process.stdout.write(
      `  NOT_SERVING: ${waiting.map((s) => s.entry.name).join(', ')} (no model loaded yet: put one in the registry with \`cream init-model\` and \`cream models import\`, then call LoadModel)\n`,
    );
  }
  if (missing.length > 0) process.stdout.write(`  not in this build yet: ${missing.join(', ')}\n`);
  process.stdout.write('Ctrl-C stops them all.\n');
  await new Promise<void>((resolvePromise) => {
    const onSignal = () => resolvePromise();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // If a service dies on its own, stop the rest rather than serve half a system.
    for (const s of started) void s.exited.then(() => resolvePromise());
  });
  process.stdout.write('cream up: stopping...\n');
  await stopAll();
  const codes = await Promise.all(started.map((s) => s.exited));
  process.stdout.write('cream up: stopped\n');
  return codes.every((c) => c === 0) ? 0 : 1;
}
