// The PyTorch baseline (bench/baseline/llama_bench.py) as a subprocess, with
// the fair settings of issue 6: fp32, torch threads equal to ours, and
// OPENBLAS_CORETYPE removed from its environment (these machines set it to
// Haswell, which halves OpenBLAS on AVX-512 cores).
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { BenchCase } from './cases';
import type { ImplementationResult } from './results';

/** The baseline script. */
export const BASELINE_SCRIPT = join(__dirname, '..', 'baseline', 'llama_bench.py');

/** What to install when torch is missing. */
export const TORCH_HINT = '`apt-get install python3-torch` provides it';

/** Whether the baseline can run: torch's version, or why not. */
export type TorchProbe = { ok: true; version: string } | { ok: false; reason: string };

/**
 * Debian's OpenMP build of OpenBLAS (libopenblas0-openmp). Torch runs its own
 * OpenMP threads; the pthread build starts another pool inside them, and with
 * both spinning on 2 cores a multi-threaded step runs several times slower.
 */
export const OPENBLAS_OPENMP_DIR = '/usr/lib/x86_64-linux-gnu/openblas-openmp';

/**
 * The baseline's environment: OPENBLAS_CORETYPE unset, every thread pool at
 * `threads`, and the OpenMP OpenBLAS first on the library path when `openmpBlasDir` exists.
 */
export function baselineEnv(env: Record<string, string | undefined>, threads: number, openmpBlasDir = OPENBLAS_OPENMP_DIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && key !== 'OPENBLAS_CORETYPE') out[key] = value;
  }
  for (const key of ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS']) out[key] = String(threads);
  if (existsSync(openmpBlasDir)) out.LD_LIBRARY_PATH = [openmpBlasDir, ...(out.LD_LIBRARY_PATH ?? '').split(':').filter((dir) => dir !== '')].join(':');
  return out;
}

/**
 * Why a PyTorch result is not a fair baseline, from the BLAS its process
 * loaded: Debian's python3-torch links whichever libblas.so.3 alternative is
 * installed. Measured on a 2-core Zen 3 (reference shape, 2 threads): the
 * reference BLAS made a training step 15.4 s, the pthread OpenBLAS 1,114 ms,
 * the OpenMP OpenBLAS 645 ms.
 */
export function baselineWarnings(result: Pick<ImplementationResult, 'blas' | 'threads'>): string[] {
  const blas = result.blas;
  if (blas === undefined) return [];
  const fix = '`apt-get install libopenblas0-openmp` gives it the OpenMP OpenBLAS, which cream bench then puts first';
  if (blas.length === 0) return [`PyTorch loaded no BLAS library that cream bench can see; its products may not be optimized (${fix})`];
  const warnings: string[] = [];
  if (!blas.some((path) => /openblas|mkl/i.test(path))) {
    warnings.push(`PyTorch runs on the reference BLAS (${blas.join(', ')}), many times slower than OpenBLAS: not a fair baseline (${fix})`);
  }
  if (result.threads > 1 && blas.some((path) => path.includes('openblas-pthread'))) {
    warnings.push(`PyTorch runs on the pthread OpenBLAS, whose threads compete with torch's own with ${result.threads} threads: not a fair baseline (${fix})`);
  }
  return warnings;
}

/** The pythons tried when none is named: python3 on PATH, then the system's (Debian's python3-torch installs there). */
export const DEFAULT_PYTHONS = ['python3', '/usr/bin/python3'];

/** The first of `pythons` that imports torch, or why none does (each tried once, by its real path). */
export function findTorch(pythons: readonly string[], env: Record<string, string | undefined>): { python: string; probe: TorchProbe } {
  const seen = new Set<string>();
  const failures: TorchProbe[] = [];
  for (const python of pythons) {
    const real = realExecutable(python, env);
    if (seen.has(real)) continue;
    seen.add(real);
    const probe = probeTorch(python, env);
    if (probe.ok) return { python, probe };
    failures.push(probe);
  }
  return { python: pythons[0], probe: { ok: false, reason: failures.map((f) => (f.ok ? '' : f.reason)).join(', ') } };
}

// The file a command name runs (searched on PATH when it has no slash), links resolved; the name itself when not found.
function realExecutable(command: string, env: Record<string, string | undefined>): string {
  const candidates = command.includes('/') ? [command] : (env.PATH ?? '').split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // not this one
    }
  }
  return command;
}

/** Asks `python` to import torch (a few seconds: torch is a large import). */
export function probeTorch(python: string, env: Record<string, string | undefined>): TorchProbe {
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { env: baselineEnv(env, 1), encoding: 'utf8', timeout: 120_000 });
  if (probe.error !== undefined) {
    const code = (probe.error as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? `${python} is not installed` : `${python} did not run (${probe.error.message})` };
  }
  if (probe.status !== 0) return { ok: false, reason: `${python} cannot import torch` };
  return { ok: true, version: probe.stdout.trim() };
}

/** The baseline's figures on one case with `threads` torch threads. */
export function runBaseline(python: string, benchCase: BenchCase, threads: number, env: Record<string, string | undefined>): Promise<ImplementationResult> {
  return runScript<ImplementationResult>(python, benchCase, ['--threads', String(threads)], baselineEnv(env, threads));
}

/** Token rows and training steps for `--check`. */
export interface AgreementInput {
  /** Rows of token ids, all of one length (at least 2). */
  readonly rows: ReadonlyArray<readonly number[]>;
  /** Training steps on them (the case's training step: every row's next tokens, clipping, AdamW). */
  readonly steps: number;
}

/** What one implementation computes for an AgreementInput, to compare with the other's. */
export interface AgreementResult {
  /** Logits [B, T, V] of the rows before training, flat. */
  readonly logits: number[];
  /** Each step's loss and gradient norm (before clipping). */
  readonly steps: Array<{ loss: number; gradNorm: number }>;
  /** Every weight after the steps, flat, by its checkpoint (Hugging Face) name. */
  readonly weights: Record<string, number[]>;
}

/** The baseline's AgreementResult on a case (its checkpoint's weights, or its seed's) on one thread. */
export function runBaselineCheck(python: string, benchCase: BenchCase, input: AgreementInput, env: Record<string, string | undefined>): Promise<AgreementResult> {
  return runScript<AgreementResult>(python, benchCase, ['--threads', '1', '--check', JSON.stringify(input)], baselineEnv(env, 1));
}

// The baseline script on one case: the JSON of its last stdout line.
function runScript<T>(python: string, benchCase: BenchCase, args: string[], env: Record<string, string>): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [BASELINE_SCRIPT, '--case', JSON.stringify(benchCase), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) {
        reject(new Error(`the PyTorch baseline failed on ${benchCase.name} (exit ${status}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as T);
      } catch (error) {
        reject(new Error(`the PyTorch baseline printed no result JSON on ${benchCase.name}: ${(error as Error).message}`));
      }
    });
  });
}
