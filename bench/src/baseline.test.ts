// The PyTorch baseline script's argument handling (when python3 exists), its
// fair environment, the torch probe, and a micro run when torch is importable.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BASELINE_SCRIPT, DEFAULT_PYTHONS, baselineEnv, findTorch, probeTorch, runBaseline } from './baseline';
import { microCase } from './cases';

const hasPython = spawnSync('python3', ['--version']).status === 0;
const torch = findTorch(DEFAULT_PYTHONS, process.env);
const script = (args: string[]) => spawnSync('python3', [BASELINE_SCRIPT, ...args], { encoding: 'utf8' });
const micro = microCase({ warmup: 1, repeats: 2, only: ['train', 'varied', 'long', 'score', 'generate', 'prefill'] });

describe.runIf(hasPython)('bench/baseline/llama_bench.py arguments', () => {
  it('prints its help without importing torch', () => {
    const run = script(['--help']);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('--case');
    expect(run.stdout).toContain('--threads');
  });

  it('rejects a case that is not JSON, lacks a field or names an unknown group, exit 2', () => {
    expect(script(['--case', '{', '--threads', '1']).stderr).toContain('--case is not JSON');
    const missing = script(['--case', JSON.stringify({ ...micro, workload: undefined }), '--threads', '1']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--case lacks "workload"');
    const unknown = script(['--case', JSON.stringify({ ...micro, only: ['train', 'decode'] }), '--threads', '1']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown groups ['decode']");
    const threads = script(['--case', JSON.stringify(micro), '--threads', '0']);
    expect(threads.status).toBe(2);
    expect(threads.stderr).toContain('--threads must be >= 1');
  });

  it('rejects a --check that is not JSON, has ragged or short rows, or a bad step count, exit 2', () => {
    const check = (value: string) => script(['--case', JSON.stringify(micro), '--threads', '1', '--check', value]);
    expect(check('{').stderr).toContain('--check is not JSON');
    for (const rows of [[], [[1, 2], [3]], [[1]], 'rows']) {
      const run = check(JSON.stringify({ rows, steps: 1 }));
      expect(run.status, JSON.stringify(rows)).toBe(2);
      expect(run.stderr).toContain('--check "rows" must be a non-empty list of equally long lists of at least 2 token ids');
    }
    const outside = check(JSON.stringify({ rows: [[1, micro.shape.vocabSize]], steps: 1 }));
    expect(outside.status).toBe(2);
    expect(outside.stderr).toContain(`--check "rows" must hold token ids in [0, ${micro.shape.vocabSize})`);
    const steps = check(JSON.stringify({ rows: [[1, 2]], steps: -1 }));
    expect(steps.status).toBe(2);
    expect(steps.stderr).toContain('--check "steps" must be an integer >= 0, got -1');
  });
});

describe('baselineEnv', () => {
  it('unsets OPENBLAS_CORETYPE and sets every thread pool to ours', () => {
    const env = baselineEnv({ OPENBLAS_CORETYPE: 'Haswell', PATH: '/usr/bin', UNSET: undefined }, 2, '/nonexistent/openblas-openmp');
    expect(env).toEqual({ PATH: '/usr/bin', OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2', MKL_NUM_THREADS: '2' });
  });

  it('puts the OpenMP OpenBLAS first on the library path when it is installed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'openblas-openmp-'));
    expect(baselineEnv({ LD_LIBRARY_PATH: '/opt/lib' }, 1, dir).LD_LIBRARY_PATH).toBe(`${dir}:/opt/lib`);
    expect(baselineEnv({}, 1, dir).LD_LIBRARY_PATH).toBe(dir);
  });
});

describe('probeTorch', () => {
  it('says which python is missing', () => {
    expect(probeTorch('/nonexistent/python3', {})).toEqual({ ok: false, reason: '/nonexistent/python3 is not installed' });
  });

  it('tries each python once and names every one that failed', () => {
    const found = findTorch(['/nonexistent/python3', '/nonexistent/python3', '/nonexistent/other'], {});
    expect(found).toEqual({ python: '/nonexistent/python3', probe: { ok: false, reason: '/nonexistent/python3 is not installed, /nonexistent/other is not installed' } });
  });
});

describe.runIf(torch.probe.ok)('the baseline on the micro case', () => {
  it('reports every metric with its backend, threads as asked, OPENBLAS_CORETYPE unset', async () => {
    const result = await runBaseline(torch.python, micro, 1, { ...process.env, OPENBLAS_CORETYPE: 'Haswell' });
    expect(result.implementation).toBe('pytorch');
    expect(result.threads).toBe(1);
    expect(result.backend).toMatch(/^PyTorch .* CPU fp32 \(1 thread, BLAS .*, OPENBLAS_CORETYPE unset\)$/);
    expect(Array.isArray(result.blas)).toBe(true);
    for (const path of result.blas ?? []) expect(result.backend).toContain(path);
    for (const metric of ['train_step_ms', 'train_varied_step_ms', 'train_long_step_ms', 'score_tokens_per_s', 'generate_b2_tokens_per_s', 'generate_b4_tokens_per_s', 'prefill_ms', 'peak_rss_bytes']) {
      expect(result.metrics[metric]?.median, metric).toBeGreaterThan(0);
    }
    expect(result.metrics.train_step_ms.samples).toHaveLength(2);
  });
});
