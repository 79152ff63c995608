// Starting cream processes for tests: `cream serve <service> --port 0` through
// the real CLI binary, with the address read from the service's "listening"
// log line, and every process killed when the test ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The workspace root. */
export const workspaceRoot = join(__dirname, '..', '..');
/** The CLI's executable. */
export const creamBin = join(workspaceRoot, 'apps', 'cli', 'bin', 'cream.js');

/** A running service process. */
export interface ServiceProcess {
  child: ChildProcess;
  address: string;
  /** The JSONL trace file the process writes its spans to. */
  traceFile: string;
  /** Every log line so far (parsed JSON where it parses). */
  lines: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string | null>;
  /** Resolves with the first log line that matches. */
  waitForLine(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcess>();

/** Starts `cream serve <service> --port 0 ...args` and waits until it listens. */
export async function startService(service: string, args: string[] = [], env: Record<string, string> = {}): Promise<ServiceProcess> {
  const traceFile = join(mkdtempSync(join(tmpdir(), `cream-${service}-`)), 'spans.jsonl');
  const child = spawn(process.execPath, [creamBin, 'serve', service, '--port', '0', ...args], {
    env: { ...process.env, CREAM_LOG_LEVEL: 'debug', CREAM_TRACE_FILE: traceFile, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();
  let buffer = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      try {
        lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        lines.push({ raw: text });
      }
      for (const notify of listeners) notify();
    }
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal);
      for (const notify of listeners) notify();
    }),
  );
  const waitForLine = (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no matching log line from ${service} in ${timeoutMs} ms; got:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const check = () => {
        const found = lines.find(predicate);
        if (found) {
          clearTimeout(timer);
          listeners.delete(check);
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          listeners.delete(check);
          reject(new Error(`${service} exited (${child.exitCode ?? child.signalCode}) before the expected log line:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`));
        }
      };
      listeners.add(check);
      check();
    });
  const listening = await waitForLine((l) => l.msg === 'listening');
  return { child, address: String(listening.address), traceFile, lines, exited, waitForLine };
}

/** Kills every process a test started and is still running. */
export async function killAll(): Promise<void> {
  const waits = [...running].map((child) => new Promise((resolve) => child.once('exit', resolve)));
  for (const child of running) child.kill('SIGKILL');
  await Promise.all(waits);
}

/**
 * Starts the four services a coordinator drives (generator, judge, consistency
 * scorer, trainer) on one registry, the trainer's jobs under `home`.
 */
export function startModelServices(registryDir: string, home: string, env: Record<string, string> = {}): Promise<ServiceProcess[]> {
  return Promise.all([
    startService('generator', ['--registry', registryDir], env),
    startService('judge', ['--registry', registryDir], env),
    startService('consistency-scorer', [], env),
    startService('trainer', ['--registry', registryDir, '--jobs', join(home, 'jobs')], env),
  ]);
}
