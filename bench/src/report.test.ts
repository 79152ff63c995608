// Rows and the table: ratios oriented so > 1 means ours is better, GFLOP/s
// and % of peak from the step time, missing sides shown as such.
import { describe, expect, it } from 'vitest';
import { microCase } from './cases';
import { trainingStepFlops } from './flops';
import { baselineWarnings } from './baseline';
import { formatReport, reportRows } from './report';
import { poolRounds, samplesOf, type ImplementationResult } from './results';
import { combinePeaks, type BenchReport } from './run';

const benchCase = microCase({ warmup: 1, repeats: 3, only: ['train', 'generate'] });
const ours: ImplementationResult = {
  implementation: 'ours',
  backend: 'tfjs wasm+native (avx512f, 2 threads)',
  threads: 2,
  metrics: {
    train_step_ms: samplesOf([10, 12, 11]),
    train_outside_native_ms: samplesOf([2, 3, 1]),
    generate_b2_tokens_per_s: samplesOf([300]),
    generate_b4_tokens_per_s: samplesOf([900]),
    peak_rss_bytes: samplesOf([200 * 1024 * 1024]),
    peak_tensor_bytes: samplesOf([3 * 1024 * 1024]),
  },
};
const pytorch: ImplementationResult = {
  implementation: 'pytorch',
  backend: 'PyTorch 1.13.1 CPU fp32 (2 threads, BLAS open, OPENBLAS_CORETYPE unset)',
  threads: 2,
  metrics: {
    train_step_ms: samplesOf([22]),
    generate_b2_tokens_per_s: samplesOf([600]),
    generate_b4_tokens_per_s: samplesOf([900]),
    peak_rss_bytes: samplesOf([400 * 1024 * 1024]),
  },
};

function report(withBaseline: boolean, rounds = 1, baselineWarnings: string[] = [], baselineError: string | null = null): BenchReport {
  return {
    date: '2026-11-28T12:00:00.000Z',
    machine: { cpu: 'AMD EPYC', cores: 2, loadAverageBefore: [0.5, 0.4, 0.3], loadAverageAfter: [1, 0.5, 0.3], measuredPeak: { gflops: 176, samples: [176], isa: 'avx2+fma', threads: 2 } },
    baseline: withBaseline
      ? { status: 'ran', python: 'python3', torchVersion: '1.13.1', message: 'PyTorch 1.13.1 baseline via python3' }
      : { status: 'skipped', python: 'python3', torchVersion: null, message: 'PyTorch baseline skipped: python3 cannot import torch' },
    peakGflops: 530,
    flopsFormula: 'formula',
    cases: [{ case: benchCase, rounds, trainingStepFlops: trainingStepFlops(benchCase.shape, 2, 16), ours, pytorch: withBaseline ? pytorch : null, baselineWarnings, baselineError }],
  };
}

describe('reportRows', () => {
  it('orients every ratio so that > 1 means ours is better', () => {
    const rows = new Map(reportRows(report(true)).map((row) => [row.metric, row]));
    expect(rows.get('train_step_ms')?.ratio).toBeCloseTo(2); // 22 ms theirs / 11 ms ours
    expect(rows.get('generate_b2_tokens_per_s')?.ratio).toBeCloseTo(0.5); // 300 / 600 tokens/s
    expect(rows.get('generate_b4_tokens_per_s')?.ratio).toBeCloseTo(1);
    expect(rows.get('peak_rss_mib')?.ratio).toBeCloseTo(2); // 400 MiB theirs / 200 MiB ours
    expect(rows.get('peak_tensor_mib')).toMatchObject({ ours: 3, pytorch: null, ratio: null });
  });

  it('compares the varied-length step packed and padded against PyTorch padded, with its lengths in the label', () => {
    const withVaried: BenchReport = {
      ...report(true),
      cases: [
        {
          ...report(true).cases[0],
          ours: { ...ours, metrics: { ...ours.metrics, train_varied_step_ms: samplesOf([40]), train_varied_padded_step_ms: samplesOf([60]) } },
          pytorch: { ...pytorch, metrics: { ...pytorch.metrics, train_varied_step_ms: samplesOf([90]) } },
        },
      ],
    };
    const rows = reportRows(withVaried);
    const lengths = benchCase.workload.varied.rows.map((row) => row.prompt + row.response);
    const packed = rows.find((row) => row.metric === 'train_varied_step_ms');
    expect(packed).toMatchObject({ ours: 40, pytorch: 90, label: `training step, 4 sequences of ${Math.min(...lengths)}-${Math.max(...lengths)} tokens (ours packed, PyTorch padded)` });
    expect(packed?.ratio).toBeCloseTo(2.25);
    const padded = rows.find((row) => row.metric === 'train_varied_padded_step_ms');
    expect(padded).toMatchObject({ ours: 60, pytorch: 90 }); // like for like: both padded
    expect(padded?.ratio).toBeCloseTo(1.5);
    expect(rows.map((row) => row.metric).indexOf('train_varied_padded_step_ms')).toBe(rows.map((row) => row.metric).indexOf('train_varied_step_ms') + 1);
    expect(reportRows(report(true)).some((row) => row.metric.startsWith('train_varied'))).toBe(false); // not measured: no rows
  });

  it('shows the time outside the native kernels for ours only, under the step', () => {
    const metrics = reportRows(report(true)).map((row) => row.metric);
    expect(metrics.indexOf('train_outside_native_ms')).toBe(metrics.indexOf('train_measured_peak_percent') + 1);
    const rows = new Map(reportRows(report(true)).map((row) => [row.metric, row]));
    expect(rows.get('train_outside_native_ms')).toMatchObject({ ours: 2, pytorch: null, ratio: null, unit: 'ms', higherIsBetter: false });
    expect(formatReport(report(true))).toMatch(/outside the native kernels \(tfjs engine, JS, stock wasm ops\)\s+2\.00 ms\s+-/);
    // Without the addon there is no such figure, and no row.
    const { train_outside_native_ms: _, ...withoutAddon } = ours.metrics;
    const plain = report(true);
    const rowsWithout = reportRows({ ...plain, cases: [{ ...plain.cases[0], ours: { ...ours, metrics: withoutAddon } }] });
    expect(rowsWithout.map((row) => row.metric)).not.toContain('train_outside_native_ms');
  });

  it('derives GFLOP/s and % of peak from the step time and the FLOP count', () => {
    const rows = new Map(reportRows(report(true)).map((row) => [row.metric, row]));
    expect(rows.get('train_gflops')?.ours).toBeCloseTo(4_300_800 / 0.011 / 1e9, 6);
    expect(rows.get('train_peak_percent')?.ours).toBeCloseTo((100 * 4_300_800) / 0.011 / 1e9 / 530, 6);
    expect(rows.get('train_measured_peak_percent')?.ours).toBeCloseTo((100 * 4_300_800) / 0.011 / 1e9 / 176, 6);
    expect(rows.get('train_measured_peak_percent')?.label).toBe('  % of the measured 176 GFLOP/s peak');
    expect(rows.get('train_gflops')?.ratio).toBeCloseTo(2);
  });

  it('compares the long-sequence step, its batch and length in the label', () => {
    const withLong = report(true);
    const item = withLong.cases[0];
    const rows = reportRows({
      ...withLong,
      cases: [{ ...item, ours: { ...ours, metrics: { ...ours.metrics, train_long_step_ms: samplesOf([50]) } }, pytorch: { ...pytorch, metrics: { ...pytorch.metrics, train_long_step_ms: samplesOf([150]) } } }],
    });
    const long = rows.find((row) => row.metric === 'train_long_step_ms');
    expect(long).toMatchObject({ label: `training step, batch ${benchCase.workload.long.batch} x ${benchCase.workload.long.seq} (long sequences)`, ours: 50, pytorch: 150 });
    expect(long?.ratio).toBeCloseTo(3);
    expect(reportRows(report(true)).some((row) => row.metric === 'train_long_step_ms')).toBe(false); // not measured: no row
  });

  it('leaves out groups that did not run, and ratios when the baseline was skipped', () => {
    const rows = reportRows(report(false));
    expect(rows.map((row) => row.metric)).not.toContain('score_tokens_per_s');
    expect(rows.map((row) => row.metric)).not.toContain('prefill_ms');
    expect(rows.every((row) => row.pytorch === null && row.ratio === null)).toBe(true);
  });
});

describe('formatReport', () => {
  it('names both backends, the load and every row', () => {
    const text = formatReport(report(true));
    expect(text).toContain('ours:    tfjs wasm+native (avx512f, 2 threads)');
    expect(text).toContain('PyTorch: PyTorch 1.13.1 CPU fp32');
    expect(text).toContain('load average 0.50 0.40 0.30 before');
    expect(text).toMatch(/training step, batch 2 x 16 .*11\.0 ms\s+22\.0 ms\s+2\.00x/);
    expect(text).toMatch(/greedy generation, batch 2, .*300 tokens\/s\s+600 tokens\/s\s+0\.50x/);
    expect(text).not.toContain('WARNING');
    expect(text).toContain('measured FP32 peak: 176 GFLOP/s (register-only FMA loop, avx2+fma, 2 threads)');
  });

  it('prints why the baseline is not fair under its backend line', () => {
    const text = formatReport(report(true, 1, baselineWarnings({ threads: 2, blas: ['blas/libblas.so.3.11.0'] })));
    expect(text).toMatch(/PyTorch: PyTorch 1\.13\.1 CPU fp32.*\n {2}WARNING: PyTorch runs on the reference BLAS \(blas\/libblas\.so\.3\.11\.0\)/);
  });

  it('prints how the baseline failed on a case, and our figures without ratios', () => {
    const failed = report(false, 1, [], 'the PyTorch baseline failed on micro (exit 1): ValueError: no model.embed_tokens.weight');
    const text = formatReport(failed);
    expect(text).toContain('  PyTorch: failed (the PyTorch baseline failed on micro (exit 1): ValueError: no model.embed_tokens.weight)');
    expect(reportRows(failed).every((row) => row.pytorch === null && row.ratio === null)).toBe(true);
  });
});

describe('the measured peak', () => {
  it('is named on its own line, and its row left out when it was not measured', () => {
    const unmeasured = report(true);
    const text = formatReport({ ...unmeasured, machine: { ...unmeasured.machine, measuredPeak: null } });
    expect(text).toContain('measured FP32 peak: not measured');
    expect(text).not.toContain('% of the measured');
    expect(text).toContain('% of the 530 GFLOP/s FP32 peak');
  });
});

describe('combinePeaks', () => {
  it('keeps the best of every measurement and lists them, and names several on the peak line', () => {
    const peak = (gflops: number) => ({ gflops, samples: [gflops], isa: 'avx2+fma', threads: 2 });
    const combined = combinePeaks([peak(176), peak(128), peak(185)]);
    expect(combined).toEqual({ gflops: 185, samples: [176, 128, 185], isa: 'avx2+fma', threads: 2 });
    expect(combinePeaks([null, null])).toBeNull();
    expect(combinePeaks([null, peak(90)])?.samples).toEqual([90]);
    const plain = report(true);
    const text = formatReport({ ...plain, machine: { ...plain.machine, measuredPeak: combined } });
    expect(text).toContain('measured FP32 peak: 185 GFLOP/s (register-only FMA loop, avx2+fma, 2 threads, best of 176, 128, 185 before the cases and after each)');
    // The share of the measured peak divides by the best.
    const rows = new Map(reportRows({ ...plain, machine: { ...plain.machine, measuredPeak: combined } }).map((row) => [row.metric, row]));
    expect(rows.get('train_measured_peak_percent')?.ours).toBeCloseTo((100 * 4_300_800) / 0.011 / 1e9 / 185, 6);
  });
});

describe('baselineWarnings', () => {
  it('names the reference BLAS and the pthread OpenBLAS with several threads, and says what to install', () => {
    expect(baselineWarnings({ threads: 2, blas: ['openblas-openmp/libblas.so.3', 'openblas-openmp/libopenblasp-r0.3.21.so'] })).toEqual([]);
    expect(baselineWarnings({ threads: 2 })).toEqual([]); // a result without the field (ours)
    const reference = baselineWarnings({ threads: 1, blas: ['blas/libblas.so.3.11.0'] });
    expect(reference).toHaveLength(1);
    expect(reference[0]).toContain('reference BLAS');
    expect(reference[0]).toContain('apt-get install libopenblas0-openmp');
    const pthread = ['openblas-pthread/libblas.so.3', 'openblas-pthread/libopenblasp-r0.3.21.so'];
    expect(baselineWarnings({ threads: 1, blas: pthread })).toEqual([]);
    expect(baselineWarnings({ threads: 2, blas: pthread })[0]).toContain('pthread OpenBLAS');
    expect(baselineWarnings({ threads: 2, blas: [] })[0]).toContain('no BLAS library');
  });
});

describe('rounds', () => {
  it('pool every round\'s samples into one median, and keep the largest peak', () => {
    const second: ImplementationResult = {
      ...ours,
      metrics: { ...ours.metrics, train_step_ms: samplesOf([30, 31, 29]), peak_rss_bytes: samplesOf([250 * 1024 * 1024]) },
    };
    const pooled = poolRounds([ours, second]);
    expect(pooled.metrics.train_step_ms.samples).toEqual([10, 12, 11, 30, 31, 29]);
    expect(pooled.metrics.train_step_ms.median).toBe(20.5); // of 10 11 12 29 30 31
    expect(pooled.metrics.peak_rss_bytes.median).toBe(250 * 1024 * 1024);
    expect(pooled.metrics.generate_b2_tokens_per_s.samples).toEqual([300, 300]);
    expect(pooled.backend).toBe(ours.backend);
    expect(() => poolRounds([])).toThrow(/no rounds/);
  });

  it('say in the table how many runs of how many rounds a median is of', () => {
    expect(formatReport(report(true, 3))).toContain('median of 3 x 3 runs (3 rounds alternating with PyTorch) after 1 warm-up');
    expect(formatReport(report(true))).toContain('median of 3 runs after 1 warm-up');
  });
});
