// `cream bench` as a user runs it, on the micro shape (--quick): every metric
// with the compute backend named, the PyTorch baseline marked skipped when its
// python cannot import torch (and run beside ours when it can), bad flags as
// one-line usage errors.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { creamBin } from '../support/processes';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cream(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [creamBin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

interface Row {
  case: string;
  metric: string;
  label: string;
  ours: number | null;
  pytorch: number | null;
  ratio: number | null;
}
interface Report {
  baseline: { status: string; message: string };
  machine: { loadAverageBefore: number[]; measuredPeak: { gflops: number; samples: number[]; isa: string; threads: number } | null };
  cases: Array<{ case: { name: string }; ours: { backend: string; threads: number }; pytorch: { backend: string } | null }>;
  rows: Row[];
}

const METRICS = [
  'train_step_ms',
  'train_gflops',
  'train_peak_percent',
  'train_measured_peak_percent',
  'train_outside_native_ms',
  'train_varied_step_ms',
  'train_varied_padded_step_ms',
  'train_long_step_ms',
  'score_tokens_per_s',
  'generate_b2_tokens_per_s',
  'generate_b4_tokens_per_s',
  'prefill_ms',
  'peak_rss_mib',
  'peak_tensor_mib',
];

// A python that starts without site-packages, so it cannot import torch even where torch is installed.
function pythonWithoutTorch(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'cream-bench-')), 'python-no-site');
  writeFileSync(file, '#!/bin/sh\nexec python3 -S "$@"\n');
  chmodSync(file, 0o755);
  return file;
}

// A python that passes the torch probe (\`-c\`) and fails as the baseline: its figures cannot come.
function pythonFailingBaseline(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'cream-bench-')), 'python-failing');
  writeFileSync(file, '#!/bin/sh\nif [ "$1" = "-c" ]; then echo 9.9.9; exit 0; fi\necho "ValueError: cannot read this checkpoint" >&2\nexit 3\n');
  chmodSync(file, 0o755);
  return file;
}

const torchImportable = ['python3', '/usr/bin/python3'].some((python) => spawnSync(python, ['-c', 'import torch']).status === 0);

describe('cream bench --quick --json', () => {
  it('measures every metric of the micro shape, names the backend, and marks the baseline skipped without torch', async () => {
    const python = pythonWithoutTorch();
    const run = await cream(['bench', '--quick', '--json', '--python', python]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.baseline.status).toBe('skipped');
    expect(report.baseline.message).toBe(`PyTorch baseline skipped: ${python} cannot import torch; \`apt-get install python3-torch\` provides it`);
    expect(run.stderr).toContain(report.baseline.message);
    expect(report.machine.loadAverageBefore).toHaveLength(3);
    expect(report.cases.map((c) => c.case.name)).toEqual(['micro']);
    expect(report.cases[0].ours.backend).toMatch(/^tfjs (wasm\+native|wasm|cpu|tfjs-node|tfjs-node-gpu) \(.*threads?\)$/);
    expect(report.cases[0].pytorch).toBeNull();
    // The measured-peak row comes with the native addon's measurement (npm ci builds it).
    const peak = report.machine.measuredPeak;
    if (peak !== null) {
      expect(peak.gflops).toBeGreaterThan(0);
      // Measured before the one case and after it; the best is the peak.
      expect(peak.samples).toHaveLength(2);
      expect(peak.gflops).toBe(Math.max(...peak.samples));
      expect(peak.isa).toMatch(/^(avx512f|avx2\+fma|generic)$/);
      expect(peak.threads).toBeGreaterThanOrEqual(1);
    }
    // Both need the native addon: the measured peak, and the part of a step outside its kernels.
    const needAddon = ['train_measured_peak_percent', 'train_outside_native_ms'];
    expect(report.rows.map((row) => row.metric)).toEqual(METRICS.filter((metric) => peak !== null || !needAddon.includes(metric)));
    for (const row of report.rows) {
      expect(row.ours, row.metric).toBeGreaterThan(0);
      expect(row.pytorch, row.metric).toBeNull();
    }
    const rows = new Map(report.rows.map((row) => [row.metric, row]));
    if (peak !== null) expect(rows.get('train_outside_native_ms')?.ours).toBeLessThan(rows.get('train_step_ms')?.ours as number);
    expect(rows.get('train_varied_step_ms')?.label).toMatch(/^training step, 4 sequences of \d+-\d+ tokens \(ours packed, PyTorch padded\)$/);
    expect(rows.get('train_long_step_ms')?.label).toBe('training step, batch 1 x 64 (long sequences)');
  });

  it.runIf(torchImportable)('runs the PyTorch baseline beside ours when python3 imports torch, with ratios', async () => {
    const run = await cream(['bench', '--quick', '--json', '--only', 'train,prefill', '--repeats', '1']);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.baseline.status).toBe('ran');
    const { ours, pytorch } = report.cases[0];
    expect(pytorch?.backend).toContain(`(${ours.threads} thread`);
    expect(pytorch?.backend).toContain('OPENBLAS_CORETYPE unset');
    const rows = new Map(report.rows.map((row) => [row.metric, row]));
    const trainRows = report.machine.measuredPeak === null
      ? ['train_step_ms', 'train_gflops', 'train_peak_percent']
      : ['train_step_ms', 'train_gflops', 'train_peak_percent', 'train_measured_peak_percent', 'train_outside_native_ms'];
    expect([...rows.keys()]).toEqual([...trainRows, 'prefill_ms', 'peak_rss_mib', 'peak_tensor_mib']);
    const step = rows.get('train_step_ms') as Row;
    expect(step.ratio).toBeCloseTo((step.pytorch as number) / (step.ours as number), 6);
  });

  it('measures the checkpoint --model names (both sides on its weights), and refuses a directory that is not one in one line (exit 1)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'cream-bench-model-')), 'tiny-qwen2');
    const init = await cream(['init-model', '--config', join(__dirname, '..', '..', 'apps', 'cli', 'configs', 'tiny-qwen2.json'), '--out', dir, '--seed', '3']);
    expect(init.status, init.stderr).toBe(0);
    const args = ['bench', '--quick', '--json', '--model', dir, '--only', 'train,score', '--repeats', '1'];
    const run = await cream(torchImportable ? args : [...args, '--python', pythonWithoutTorch()]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.cases.map((c) => c.case.name)).toEqual(['tiny-qwen2']);
    expect((report.cases[0].case as unknown as { title: string; checkpoint: string }).checkpoint).toBe(dir);
    expect((report.cases[0].case as unknown as { title: string }).title).toBe(`checkpoint ${dir} (vocab 320, d_model 64, 2 layers, 4 heads (2 kv), SwiGLU 176, q/k/v biases)`);
    const rows = new Map(report.rows.map((row) => [row.metric, row]));
    for (const metric of ['train_step_ms', 'score_tokens_per_s']) {
      expect(rows.get(metric)?.ours, metric).toBeGreaterThan(0);
      if (torchImportable) expect(rows.get(metric)?.pytorch, metric).toBeGreaterThan(0);
    }
    const missing = await cream(['bench', '--model', join(dir, 'nonexistent')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe(`cream bench: ${join(dir, 'nonexistent')} has no config.json: name a checkpoint directory (config.json and safetensors)`);
  });

  it('reports ours alone, saying how, when the baseline fails on a case', async () => {
    const run = await cream(['bench', '--quick', '--json', '--only', 'prefill', '--repeats', '1', '--rounds', '2', '--python', pythonFailingBaseline()]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report & { cases: Array<{ baselineError: string | null }> };
    expect(report.baseline.status).toBe('ran');
    expect(report.cases[0].pytorch).toBeNull();
    expect(report.cases[0].baselineError).toBe('the PyTorch baseline failed on micro (exit 3): ValueError: cannot read this checkpoint');
    expect(run.stderr).toContain('micro: the PyTorch baseline failed on micro (exit 3): ValueError: cannot read this checkpoint; reporting ours alone');
    expect(run.stderr.match(/micro: PyTorch 9\.9\.9/g)).toHaveLength(1); // not tried again in round 2
    const prefill = report.rows.find((row) => row.metric === 'prefill_ms');
    expect(prefill?.ours).toBeGreaterThan(0);
    expect(prefill?.pytorch).toBeNull();
  });

  it('prints a table by default, pools --rounds, and rejects an unknown group in one line (exit 2)', async () => {
    const table = await cream(['bench', '--quick', '--only', 'prefill', '--repeats', '1', '--rounds', '2', '--python', pythonWithoutTorch()]);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/prefill, batch 1, 8-token prompt \(first token\)\s+[\d.]+ ms\s+-\s+-/);
    expect(table.stdout).toContain('median of 2 x 1 runs (2 rounds alternating with PyTorch)');
    expect(table.stderr.match(/micro: ours .*, round \d of 2/g)).toHaveLength(2); // a worker per round
    expect(table.stdout).toContain('PyTorch baseline skipped');
    const bad = await cream(['bench', '--only', 'train,decode']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe('cream bench: --only: unknown group "decode"; use some of train, varied, long, score, generate, prefill');
  });
});
