// Services as child processes on loopback (`cream serve <name>` each, its log
// in a file), their health, and stopping them: the machinery of `cream up`,
// `cream run` and `cream compare`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthClient, ServingStatus } from '@cream/proto';
import type { ServiceEntry } from './services';

/** A started service process. */
export interface StartedService {
  /** Which service. */
  entry: ServiceEntry;
  /** "host:port" it listens on. */
  address: string;
  /** The process. */
  child: ChildProcess;
  /** Its stdout and stderr. */
  logPath: string;
  /** Resolves with its exit code when it exits. */
  exited: Promise<number | null>;
}

/** How to start services. */
export interface StartOptions {
  /** Address every service binds. */
  host: string;
  /** Added to every default port. */
  portOffset: number;
  /** Where each service's log goes (`<name>.log`, appended). */
  logDir: string;
  /** Environment of every service (plus CREAM_SERVICE_NAME). */
  env: Record<string, string | undefined>;
  /** Extra environment per service name. */
  envOf?: (entry: ServiceEntry) => Record<string, string>;
}

/** The address of a service under these options. */
export function serviceAddress(entry: ServiceEntry, options: Pick<StartOptions, 'host' | 'portOffset'>): string {
  return `${options.host}:${entry.defaultPort + options.portOffset}`;
}

/** Spawns each service as `cream serve <name> --host H --port P`; does not wait for health. */
export function startServices(entries: readonly ServiceEntry[], options: StartOptions): StartedService[] {
  mkdirSync(options.logDir, { recursive: true });
  const bin = join(__dirname, '..', 'bin', 'cream.js');
  return entries.map((entry) => {
    const port = entry.defaultPort + options.portOffset;
    const logPath = join(options.logDir, `${entry.name}.log`);
    const log = createWriteStream(logPath, { flags: 'a' });
    const child = spawn(process.execPath, [bin, 'serve', entry.name, '--host', options.host, '--port', String(port)], {
      env: { ...options.env, ...options.envOf?.(entry), CREAM_SERVICE_NAME: entry.name },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: Ctrl-C in the terminal reaches this command only, which then
      // stops the services in order (e.g. `cream run` cancels its run before they go).
      detached: true,
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { entry, address: `${options.host}:${port}`, child, logPath, exited };
  });
}

/** One grpc.health.v1 check. */
export function healthStatus(address: string, service: string, deadlineMs: number): Promise<ServingStatus> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<ServingStatus>((resolvePromise, reject) =>
    client.check({ service }, new Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolvePromise(response.status);
    }),
  );
}

/** The last lines of a service's log. */
export function logTail(started: StartedService, lines = 15): string {
  try {
    return readFileSync(started.logPath, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Waits until the service answers health, then until it is SERVING or the
 * serving deadline passes. A model service with no model to load stays
 * NOT_SERVING: that is reported, not a failure. A process that exits is.
 */
export async function waitHealthy(started: StartedService, answerBy: number, servingBy: number): Promise<ServingStatus> {
  let exitCode: number | null | undefined;
  void started.exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`${started.entry.name} exited with code ${exitCode} before it was SERVING; its log (${started.logPath}) ends:\n${logTail(started)}`);
    }
    const status = await healthStatus(started.address, started.entry.grpcService, 1000).catch(() => undefined);
    if (status === ServingStatus.SERVING) return status;
    if (status === undefined && Date.now() > answerBy) throw new Error(`${started.entry.name} at ${started.address} did not answer health checks in time`);
    if (status !== undefined && Date.now() > servingBy) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Sends SIGTERM to every service still running and resolves with their exit codes. */
export async function stopServices(started: readonly StartedService[]): Promise<(number | null)[]> {
  for (const s of started) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
  return Promise.all(started.map((s) => s.exited));
}
