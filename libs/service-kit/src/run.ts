// The common life of a service process: read the shared options (and the
// service's own), build the server, register handlers, listen, mark SERVING
// when the service says so, and stop gracefully on SIGTERM. A service's main
// starts telemetry first, then calls runService.
import { ConfigError } from './errors';
import { option, readConfig, describeConfig, type ConfigSpec, type ConfigValues } from './config';
import { createLogger, type Logger } from './logger';
import { GrpcService } from './server';

/** Options every cream service takes. */
export function commonOptions(defaultPort: number) {
  return {
    host: option.string({ flag: 'host', env: 'CREAM_HOST', description: 'address to bind (0.0.0.0 in a cluster)', default: '127.0.0.1', nonEmpty: true }),
    port: option.int({ flag: 'port', env: 'CREAM_PORT', description: 'port to listen on (0 picks a free one)', default: defaultPort, min: 0, max: 65535 }),
    logLevel: option.choice({ flag: 'log-level', env: 'CREAM_LOG_LEVEL', description: 'least severe level logged', default: 'info', values: ['debug', 'info', 'warn', 'error'] as const }),
    shutdownGraceSeconds: option.number({
      flag: 'shutdown-grace-seconds',
      env: 'CREAM_SHUTDOWN_GRACE_SECONDS',
      description: 'on SIGTERM, how long calls in flight may run before they are cancelled',
      default: 30,
      min: 0,
      max: 3600,
    }),
    maxMessageBytes: option.int({
      flag: 'max-message-bytes',
      env: 'CREAM_MAX_MESSAGE_BYTES',
      description: 'largest request or response message',
      default: 64 * 1024 * 1024,
      min: 1024,
      max: 2 ** 31 - 1,
    }),
    help: option.bool({ flag: 'help', description: 'print this help and exit', default: false }),
  };
}

/** A service definition for runService. */
export interface ServiceProgram<S extends ConfigSpec> {
  /** Name in logs and help, e.g. "consistency-scorer". */
  name: string;
  /** One paragraph for --help. */
  summary: string;
  /** Default port. */
  defaultPort: number;
  /** The service's own options. */
  options: S;
  /**
   * Registers handlers (and error mappings) on the server, before it listens.
   * May return `ready`, a promise that resolves once the service can serve
   * (e.g. weights loaded): the server listens meanwhile, NOT_SERVING, and is
   * marked SERVING when it resolves.
   */
  setup(server: GrpcService, config: ConfigValues<S> & ConfigValues<ReturnType<typeof commonOptions>>, logger: Logger): { ready?: Promise<void> } | void;
}

/** What a running service gives back. */
export interface RunningService {
  /** The server. */
  server: GrpcService;
  /** "host:port" bound. */
  address: string;
  /** Resolves when the server has stopped (after a signal or shutdown()). */
  stopped: Promise<void>;
  /** The process's exit code once stopped: 2 when `ready` failed on a configuration value, else 0. */
  exitStatus(): number;
}

/**
 * Runs a service until SIGTERM/SIGINT. Configuration errors and --help are
 * printed to stderr/stdout and resolve `exitCode` (2 and 0) without listening.
 */
export async function runService<S extends ConfigSpec>(
  program: ServiceProgram<S>,
  argv: readonly string[],
  env: Record<string, string | undefined>,
  hooks: { onStopped?: () => Promise<void> | void; startupWarnings?: readonly string[] } = {},
): Promise<RunningService | { exitCode: number }> {
  const spec = { ...commonOptions(program.defaultPort), ...program.options };
  let values;
  try {
    values = readConfig(spec, { argv, env });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`cream ${program.name}: ${error.message}\n`);
      return { exitCode: 2 };
    }
    throw error;
  }
  // The merged spec's values, seen through the common options' types.
  const config = values as unknown as ConfigValues<ReturnType<typeof commonOptions>>;
  if (config.help) {
    process.stdout.write(`Usage: cream serve ${program.name} [options]\n\n${program.summary}\n\nOptions:\n${describeConfig(spec)}\n`);
    return { exitCode: 0 };
  }
  const logger = createLogger({ level: config.logLevel, fields: { service: program.name } });
  for (const warning of hooks.startupWarnings ?? []) logger.warn(warning);
  const server = new GrpcService({
    name: program.name,
    logger,
    limits: { maxReceiveBytes: config.maxMessageBytes, maxSendBytes: config.maxMessageBytes },
  });
  const setup = program.setup(server, values as unknown as Parameters<typeof program.setup>[1], logger);
  const ready = Promise.resolve(setup?.ready);
  ready.catch(() => undefined); // handled below once listening: a rejection before that is not an unhandled one
  const address = await server.listen(config.host, config.port);
  let exitStatus = 0;
  const stopped = new Promise<void>((resolve) => {
    const finish = () => void Promise.resolve(hooks.onStopped?.()).finally(resolve);
    server.stopOnSignals(config.shutdownGraceSeconds * 1000, finish);
    void ready.then(
      () => {
        server.setServing(true);
        logger.info('serving', { address });
      },
      (error) => {
        // A bad configuration value a library read at start (e.g. CREAM_BACKEND)
        // ends the service as readConfig's errors do; anything else leaves it NOT_SERVING.
        if (namesConfigurationValue(error)) {
          process.stderr.write(`cream ${program.name}: ${error.message}\n`);
          logger.error('configuration error at start: stopping', { error });
          exitStatus = 2;
          void server.shutdown(0).then(finish);
          return;
        }
        logger.error('not ready: the service stays NOT_SERVING', { error });
      },
    );
  });
  return { server, address, stopped, exitStatus: () => exitStatus };
}

// An error that names the configuration variable (or option) and the value it rejected.
function namesConfigurationValue(error: unknown): error is Error & { variable: string; value: string } {
  const fields = error as { variable?: unknown; value?: unknown } | null;
  return error instanceof Error && typeof fields?.variable === 'string' && typeof fields.value === 'string';
}

/** What a service's telemetry handle gives runService: its start-up warnings and its flush. */
export interface ServiceTelemetry {
  /** Problems found when telemetry started (logged once the service has a logger). */
  readonly warnings: readonly string[];
  /** Flushes and stops telemetry. */
  shutdown(): Promise<void>;
}

/**
 * A service process from start to exit: runService, then wait for SIGTERM
 * and the drain, flushing telemetry last. Resolves with the exit code (2 for
 * a configuration error, 0 for --help or a clean stop).
 */
export async function serveUntilStopped<S extends ConfigSpec>(
  program: ServiceProgram<S>,
  argv: readonly string[],
  env: Record<string, string | undefined>,
  telemetry: ServiceTelemetry,
): Promise<number> {
  const running = await runService(program, argv, env, { onStopped: () => telemetry.shutdown(), startupWarnings: telemetry.warnings });
  if ('exitCode' in running) {
    await telemetry.shutdown();
    return running.exitCode;
  }
  await running.stopped;
  return running.exitStatus();
}
