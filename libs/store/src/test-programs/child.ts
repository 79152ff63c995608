// Runs a program of this folder as a child process through tsx's CommonJS
// hook, the way a cream service runs, so the tests can race two processes and
// SIGKILL one at a chosen point: stdout lines are collected and awaited.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

/** A running test program. */
export interface Child {
  process: ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolves with the first stdout line that satisfies `match` (rejects if the child exits first). */
  waitForLine(match: (line: string) => boolean): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal) and stderr. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Starts `src/test-programs/<program>.ts` with `args`. */
export function startProgram(program: string, args: readonly string[]): Child {
  const libraryRoot = resolve(__dirname, '..', '..');
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', resolve(__dirname, `${program}.ts`), ...args], {
    cwd: libraryRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { match: (line: string) => boolean; done: (line: string) => void; fail: (error: Error) => void }[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.match(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.done(line);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) =>
    child.on('close', (code, signal) => {
      for (const waiter of waiters.splice(0)) waiter.fail(new Error(`${program} exited (${code ?? signal}) before the line; stderr: ${stderr}`));
      done({ code, signal, stderr });
    }),
  );
  return {
    process: child,
    lines,
    exited,
    waitForLine(match) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((done, fail) => waiters.push({ match, done, fail }));
    },
  };
}
