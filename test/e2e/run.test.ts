// `cream run` and `cream compare` as a user runs them: the real CLI binary
// starts every service as its own process on loopback around a temporary
// CREAM_HOME that holds a random tiny M0, on small data files of the user's
// own (8 SFT examples, 8 prompts, a 6-item ARC set), one iteration of N = 3:
// - `cream run` interrupted by Ctrl-C during training exits 130 naming the
//   run to resume, with every service stopped; `cream run --resume` restores
//   the finished stages, runs the rest, prints the results table (M0, M1,
//   M2) and the time per stage, and the run folder holds results.json,
//   report.html and trace.jsonl;
// - a bad flag or a base version the registry lacks fails before any service
//   starts, naming the flag;
// - `cream compare --methods cream,oracle,srlm-dpo` runs cream and srlm-dpo,
//   reports oracle refused (user data has no answer keys), writes
//   comparison.md/json and report.html and prints the markdown table.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creamBin } from '../support/processes';
import { writeRunData, runModelConfig, type RunDataFiles } from '../support/run-data';
import { publishTinyVersions } from '../support/tiny-models';

let home: string;
let dataDir: string;
let data: RunDataFiles;

/** Is this loopback port free? */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// The first port above the kernel's ephemeral range: outgoing connections
// (the other tests' gRPC clients) take ports inside it at any moment, so a
// port found free there can be gone when a service binds it (EADDRINUSE).
function aboveEphemeralPorts(): number {
  try {
    const [, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(high)) return high + 1;
  } catch {
    // not Linux: the IANA dynamic range starts at 49152; stay near the top
  }
  return 61000;
}

/** A port offset whose five ports (50051..50055 + offset) are free now, above the ephemeral range when it can be. */
async function freeOffset(): Promise<number> {
  // --port-offset allows up to 15000: ports up to 65055.
  const low = Math.min(Math.max(aboveEphemeralPorts() - 50051, 1000), 14_000);
  for (;;) {
    const offset = low + Math.floor(Math.random() * (15_000 - 4 - low));
    const ports = [0, 1, 2, 3, 4].map((i) => 50051 + offset + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return offset;
  }
}

/**
 * Runs the CLI to its end; resolves with its exit code and output. `interruptOn`:
 * send SIGINT (Ctrl-C) once a line of stdout matches it.
 */
function cream(args: string[], interruptOn?: RegExp): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [creamBin, ...args], { env: { ...process.env, CREAM_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (interruptOn && !interrupted && interruptOn.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The tiny spec's training and sampling settings (the data and method come from flags). */
function specFile(): string {
  const path = join(dataDir, 'tiny-spec.json');
  writeFileSync(
    path,
    JSON.stringify({
      name: 'tiny',
      sampling: { temperature: 1, top_p: 1, max_new_tokens: 24 },
      sft: { learning_rate: 0.01, epochs: 1, batch_size: 4, warmup_ratio: 0 },
      // 40 DPO steps: long enough that Ctrl-C lands during training.
      dpo: { learning_rate: 0.001, epochs: 20, batch_size: 2, warmup_ratio: 0 },
      evaluate: true,
    }),
  );
  return path;
}

function dataFlags(): string[] {
  return ['--spec', specFile(), '--sft', data.sft, '--prompts', data.prompts, '--eval', `colors=arc:${data.arc}`];
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'cream-run-home-'));
  dataDir = mkdtempSync(join(tmpdir(), 'cream-run-data-'));
  data = writeRunData(dataDir);
  await publishTinyVersions(join(home, 'registry'), [{ version: 'm0', seed: 17 }], runModelConfig);
}, 60_000);

afterAll(() => {
  for (const dir of [home, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('cream run', () => {
  it('fails on a bad flag before starting any service, naming the flag', async () => {
    const result = await cream(['run', '--iterations', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('cream run: --iterations: 0 is outside 1..100');
    expect(result.stdout).not.toContain('starting the services');
    const missing = await cream(['run', '--base', 'no-such-version']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cream run: --base: version "no-such-version" is not in the registry .*registry/);
    expect(missing.stdout).not.toContain('starting the services');
  });

  it('runs one iteration end to end, Ctrl-C during training cancels it, --resume finishes it: the table and the run folder files', async () => {
    const offset = await freeOffset();
    const cancelled = await cream(['run', ...dataFlags(), '--iterations', '1', '--samples', '3', '--seed', '5', '--port-offset', String(offset)], /^iter-1\/train: started$/m);
    expect(cancelled.code, cancelled.stderr + cancelled.stdout).toBe(130);
    const runId = /resume it with: cream run --resume (\S+)/.exec(cancelled.stderr)?.[1];
    expect(runId, cancelled.stderr).toBeDefined();
    expect(cancelled.stderr).toMatch(/CANCELLED/);
    for (let i = 0; i < 5; i++) expect(await portFree(50051 + offset + i)).toBe(true);
    const result = await cream(['run', '--resume', runId!, '--port-offset', String(offset)]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('model'))?.split(/\s+/)).toEqual(['model', 'version', 'colors', 'mean', 'consistency', 'margin', 'pairs']);
    for (const model of ['M0', 'M1', 'M2']) expect(lines.some((l) => l.startsWith(`${model} `)), model).toBe(true);
    expect(lines.find((l) => l.startsWith('M2 '))).toMatch(/^M2\s+\S+-m2\s+\d+\.\d\s+\d+\.\d\s+\d\.\d{3}\s+-?\d+\.\d{3}\s+\d+$/);
    expect(result.stdout).toContain('Time per stage');
    // Stages finished before Ctrl-C are restored, never recomputed; the rest ran after the resume.
    for (const stage of ['data', 'eval/m0', 'sft', 'eval/m1', 'iter-1/sample', 'iter-1/consistency']) {
      expect(lines.some((l) => l.startsWith(`${stage} `) && /\bRESTORED\b/.test(l)), stage).toBe(true);
    }
    for (const stage of ['iter-1/train', 'eval/m2']) expect(lines.some((l) => l.startsWith(`${stage} `) && /\bDONE\b/.test(l)), stage).toBe(true);
    const path = (name: string) => lines.find((l) => l.startsWith(name))!.split(/\s+/)[1];
    const report = JSON.parse(readFileSync(path('results.json'), 'utf8'));
    expect(report.state).toBe('SUCCEEDED');
    expect(report.results.map((r: { model: string }) => r.model)).toEqual(['M0', 'M1', 'M2']);
    expect(readFileSync(path('report.html'), 'utf8').match(/<svg /g)).toHaveLength(3);
    expect(readFileSync(path('trace.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThan(5);
    expect(path('results.json').startsWith(join(home, 'runs'))).toBe(true);
    // Every service was stopped: the ports are free again.
    for (let i = 0; i < 5; i++) expect(await portFree(50051 + offset + i)).toBe(true);
  }, 600_000);
});

describe('cream compare', () => {
  it('runs cream and srlm-dpo on the same data, skips oracle (no answer keys in user data), and writes the comparison', async () => {
    const offset = await freeOffset();
    const result = await cream(['compare', '--methods', 'cream,oracle,srlm-dpo', ...dataFlags(), '--iterations', '1', '--samples', '3', '--port-offset', String(offset)]);
    expect(result.code, result.stderr + result.stdout).toBe(1);
    expect(result.stderr).toMatch(/\[oracle seed 1\] refused: spec\.method: oracle needs the answer keys/);
    expect(result.stdout).toContain('| method | model | colors | mean |');
    for (const method of ['cream', 'srlm-dpo']) for (const model of ['M0', 'M1', 'M2']) expect(result.stdout).toMatch(new RegExp(`\\| ${method} \\| ${model} \\| \\d+\\.\\d \\| \\d+\\.\\d \\|`));
    expect(result.stdout).toMatch(/\| cream \| \d\.\d{3} \|/);
    const folder = join(home, 'comparisons', readdirSync(join(home, 'comparisons'))[0]);
    expect(readFileSync(join(folder, 'comparison.md'), 'utf8')).toContain('| method | model | colors | mean |');
    expect(JSON.parse(readFileSync(join(folder, 'comparison.json'), 'utf8')).runs).toHaveLength(2);
    expect(readFileSync(join(folder, 'report.html'), 'utf8')).toContain('Accuracy per iteration per method');
  }, 900_000);
});
