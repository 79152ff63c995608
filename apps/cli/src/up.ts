// `cream up`: starts every available service as its own process on loopback,
// waits until each answers SERVING on grpc.health.v1, prints the endpoints,
// and on Ctrl-C or SIGTERM stops them all gracefully.
import { resolve } from 'node:path';
import { ServingStatus } from '@cream/proto';
import { describeConfig, option, readConfig } from '@cream/service-kit';
import { startServices, stopServices, waitHealthy, type StartedService } from './local-services';
import { serviceMainPath, services } from './services';

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
  let started: StartedService[] = [];
  let statuses: ServingStatus[] = [];
  const stopAll = () => stopServices(started);
  try {
    started = startServices(chosen, { host: config.host, portOffset: config.portOffset, logDir: resolve(config.logDir), env });
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
