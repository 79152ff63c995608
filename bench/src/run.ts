// One benchmark run: for each case, our side in a forked worker, then the
// PyTorch baseline with as many threads as ours used (when python can import
// torch), interleaved case by case so both see the same machine load; with
// several rounds, the two alternate that many times per case and each side's
// samples are pooled, so a drift of the machine's speed reaches both.
import { fork } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { baseCase, METRIC_GROUPS, microCase, modelCase, referenceCase, type BenchCase, type CaseOptions, type MetricGroup } from './cases';
import { baselineWarnings, DEFAULT_PYTHONS, findTorch, runBaseline, TORCH_HINT } from './baseline';
import { TRAINING_FLOPS_FORMULA, trainingStepFlops } from './flops';
import { loadNativeGemm } from '@cream/compute';
import { poolRounds, type ImplementationResult } from './results';
import type { WorkerReply } from './worker-protocol';

/** The FP32 peak of issue 6's machine: 2 cores x 64 FLOP/cycle at about 4.15 GHz. */
export const DEFAULT_PEAK_GFLOPS = 530;

/** Options of runBench. */
export interface BenchOptions {
  /** The repository root (models/m0 is looked up there). */
  readonly workspaceRoot: string;
  /** The micro shape only, 1 warm-up and 2 timed runs unless given: a smoke run in seconds (with `models`: their micro workload). */
  readonly quick?: boolean;
  /** Checkpoint directories to measure instead of the reference shape and the base model (modelCase). */
  readonly models?: readonly string[];
  /** Metric groups to run; all by default. */
  readonly only?: readonly MetricGroup[];
  /** Timed runs per metric (default 5, quick 2). */
  readonly repeats?: number;
  /** Untimed runs first (default 2, quick 1). */
  readonly warmup?: number;
  /** Times ours and the baseline alternate per case, samples pooled (default 1). */
  readonly rounds?: number;
  /** The python of the baseline; by default the first of DEFAULT_PYTHONS that imports torch. */
  readonly python?: string;
  /** Torch threads of the baseline; by default as many as our backend's (issue 6's fair setting). */
  readonly torchThreads?: number;
  /** FP32 peak the training step is compared with, GFLOP/s. */
  readonly peakGflops?: number;
  /** Environment of the worker and the baseline (CREAM_BACKEND, the thread variables). */
  readonly env?: Record<string, string | undefined>;
  /** Progress lines (one per measured side). */
  readonly onProgress?: (line: string) => void;
}

/** Both sides of one case. */
export interface CaseReport {
  readonly case: BenchCase;
  /** Rounds of ours then the baseline whose samples are pooled. */
  readonly rounds: number;
  /** FLOPs of one training step of this case (TRAINING_FLOPS_FORMULA). */
  readonly trainingStepFlops: number;
  readonly ours: ImplementationResult;
  /** null when the baseline was skipped. */
  readonly pytorch: ImplementationResult | null;
  /** Why the baseline's figures are not fair ones (baselineWarnings); empty when they are or it was skipped. */
  readonly baselineWarnings: readonly string[];
  /** How the baseline failed on this case (ours is reported without it), or null. */
  readonly baselineError: string | null;
}

/** NativeGemm.peakGflops with the kernel and threads it ran on. */
export interface MeasuredPeak {
  /** The best of `samples`: what the machine delivers when nothing else holds its cores. */
  readonly gflops: number;
  /** Every measurement of the run (before the cases and after each), GFLOP/s. */
  readonly samples: readonly number[];
  readonly isa: string;
  readonly threads: number;
}

/** The native kernels' measured FP32 peak (one measurement), or null when the addon does not load. */
export function measurePeak(): MeasuredPeak | null {
  const loaded = loadNativeGemm();
  if (!loaded.ok) return null;
  const info = loaded.native.info();
  const gflops = loaded.native.peakGflops(0.2);
  return { gflops, samples: [gflops], isa: info.isa, threads: info.threads };
}

/**
 * Measurements of the same kernel and threads as one: the best of their
 * samples. A single one can fall in a moment when another tenant holds a core
 * (this VM gave 128 GFLOP/s once, and 176-185 in the minutes around it).
 */
export function combinePeaks(peaks: ReadonlyArray<MeasuredPeak | null>): MeasuredPeak | null {
  const measured = peaks.filter((peak): peak is MeasuredPeak => peak !== null);
  if (measured.length === 0) return null;
  const samples = measured.flatMap((peak) => peak.samples);
  return { gflops: Math.max(...samples), samples, isa: measured[0].isa, threads: measured[0].threads };
}

/** A whole run. */
export interface BenchReport {
  /** ISO time the run started. */
  readonly date: string;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly loadAverageBefore: readonly number[];
    readonly loadAverageAfter: readonly number[];
    /** The FP32 peak the native kernels reach here (register-only FMA loop, best of before the cases and after each); null without the addon. */
    readonly measuredPeak: MeasuredPeak | null;
  };
  readonly baseline: { readonly status: 'ran' | 'skipped'; readonly python: string; readonly torchVersion: string | null; readonly message: string };
  readonly peakGflops: number;
  readonly flopsFormula: string;
  readonly cases: readonly CaseReport[];
}

/**
 * The cases of a run: the checkpoints named (`models`), else the micro shape
 * when quick, else the reference shape and the base model.
 */
export function benchCases(options: BenchOptions): BenchCase[] {
  const caseOptions: CaseOptions = {
    warmup: options.warmup ?? (options.quick ? 1 : 2),
    repeats: options.repeats ?? (options.quick ? 2 : 5),
    only: METRIC_GROUPS.filter((group) => (options.only ?? METRIC_GROUPS).includes(group)),
  };
  if (options.models !== undefined && options.models.length > 0) return options.models.map((dir) => modelCase(dir, { ...caseOptions, quick: options.quick }));
  return options.quick ? [microCase(caseOptions)] : [referenceCase(caseOptions), baseCase(options.workspaceRoot, caseOptions)];
}

/** Our side of one case, in a fresh process. */
export function runOurs(benchCase: BenchCase, env: Record<string, string | undefined>): Promise<ImplementationResult> {
  return new Promise((resolve, reject) => {
    const child = fork(join(__dirname, 'worker.ts'), [], {
      execArgv: ['--require', require.resolve('tsx/cjs')],
      env,
      // The worker's stdout goes to our stderr: stdout carries the report (--json).
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    let reply: WorkerReply | undefined;
    child.once('message', (message) => (reply = message as WorkerReply));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (reply === undefined) reject(new Error(`the benchmark worker of ${benchCase.name} exited (${signal ?? `code ${code}`}) without a result`));
      else if (!reply.ok) reject(new Error(`the benchmark of ${benchCase.name} failed: ${reply.error}`));
      else resolve(reply.result);
    });
    child.send({ benchCase });
  });
}

/** Runs every case on both sides; the baseline is skipped (and says why) when python cannot import torch. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const env = options.env ?? process.env;
  const progress = options.onProgress ?? (() => undefined);
  const date = new Date().toISOString();
  const loadAverageBefore = loadavg();
  const cases = benchCases(options);
  const peaks = [measurePeak()];
  const { python, probe: torch } = findTorch(options.python === undefined ? DEFAULT_PYTHONS : [options.python], env);
  const baseline = torch.ok
    ? { status: 'ran' as const, python, torchVersion: torch.version, message: `PyTorch ${torch.version} baseline via ${python}` }
    : { status: 'skipped' as const, python, torchVersion: null, message: `PyTorch baseline skipped: ${torch.reason}; ${TORCH_HINT}` };
  const reports: CaseReport[] = [];
  const rounds = options.rounds ?? 1;
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`rounds must be an integer >= 1, got ${rounds}`);
  for (const benchCase of cases) {
    const ourRounds: ImplementationResult[] = [];
    const baselineRounds: ImplementationResult[] = [];
    let baselineError: string | null = null;
    for (let round = 1; round <= rounds; round++) {
      const of = rounds > 1 ? `, round ${round} of ${rounds}` : '';
      progress(`${benchCase.name}: ours (${benchCase.title})${of}`);
      const ours = await runOurs(benchCase, env);
      ourRounds.push(ours);
      if (torch.ok && baselineError === null) {
        const threads = options.torchThreads ?? ours.threads;
        progress(`${benchCase.name}: PyTorch ${torch.version}, ${threads} thread${threads === 1 ? '' : 's'}${of}`);
        try {
          baselineRounds.push(await runBaseline(python, benchCase, threads, env));
        } catch (error) {
          // A checkpoint the baseline cannot read, say: ours still reports, without ratios.
          baselineError = (error as Error).message;
          baselineRounds.length = 0;
          progress(`${benchCase.name}: ${baselineError}; reporting ours alone`);
        }
      }
    }
    const { batch, seq } = benchCase.workload.train;
    reports.push({
      case: benchCase,
      rounds,
      trainingStepFlops: trainingStepFlops(benchCase.shape, batch, seq),
      ours: poolRounds(ourRounds),
      pytorch: baselineRounds.length > 0 ? poolRounds(baselineRounds) : null,
      baselineWarnings: baselineRounds.length > 0 ? baselineWarnings(baselineRounds[0]) : [],
      baselineError,
    });
    peaks.push(measurePeak());
  }
  const measuredPeak = combinePeaks(peaks);
  return {
    date,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), loadAverageBefore, loadAverageAfter: loadavg(), measuredPeak },
    baseline,
    peakGflops: options.peakGflops ?? DEFAULT_PEAK_GFLOPS,
    flopsFormula: TRAINING_FLOPS_FORMULA,
    cases: reports,
  };
}
