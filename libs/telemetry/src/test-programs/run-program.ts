// Runs one of the programs in this folder as a child process through tsx's
// CommonJS hook, the way a cream service runs: `require` of grpc-js happens
// after startTelemetry, so the gRPC instrumentation can patch it (vitest's own
// module loader cannot show that).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** What a finished child program left behind. */
export interface ProgramResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of the test process without OTEL_* and CREAM_* variables, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('OTEL_') && !name.startsWith('CREAM_')) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs `src/test-programs/<program>.ts` with `args` and `env`; resolves when it exits. */
export function runProgram(program: string, args: readonly string[], env: Record<string, string>): Promise<ProgramResult> {
  const libraryRoot = resolve(__dirname, '..', '..');
  const script = resolve(__dirname, `${program}.ts`);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', script, ...args], { cwd: libraryRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}
