// A run as rows (metric, ours, PyTorch, ratio) and as the text table of
// `cream bench`. Every ratio is oriented so that > 1 means ours is better:
// PyTorch / ours for times and memory, ours / PyTorch for throughputs.
import { gflopsPerSecond } from './flops';
import type { BenchReport, CaseReport, MeasuredPeak } from './run';
import type { ImplementationResult } from './results';

/** One line of the table. */
export interface ReportRow {
  /** The case's name. */
  readonly case: string;
  /** Metric key (results.ts names, plus train_gflops and train_peak_percent). */
  readonly metric: string;
  /** What it measures, for people. */
  readonly label: string;
  readonly unit: string;
  /** Whether a larger figure is better. */
  readonly higherIsBetter: boolean;
  readonly ours: number | null;
  readonly pytorch: number | null;
  /** > 1: ours is better; null when either side is missing. */
  readonly ratio: number | null;
}

const MIB = 1024 * 1024;

interface RowSpec {
  metric: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  value: (result: ImplementationResult) => number | undefined;
}

function rowSpecs(item: CaseReport, peakGflops: number, measuredPeak: MeasuredPeak | null): RowSpec[] {
  const { train, varied, long, score, generate, prefill } = item.case.workload;
  const lengths = varied.rows.map((row) => row.prompt + row.response);
  const median = (metric: string) => (result: ImplementationResult) => result.metrics[metric]?.median;
  const stepMs = median('train_step_ms');
  const gflops = (result: ImplementationResult) => {
    const ms = stepMs(result);
    return ms === undefined ? undefined : gflopsPerSecond(item.trainingStepFlops, ms);
  };
  // The training step's GFLOP/s as a share of a peak.
  const percentOfPeak = (metric: string, label: string, peak: number): RowSpec => ({
    metric,
    label,
    unit: '%',
    higherIsBetter: true,
    value: (result) => {
      const achieved = gflops(result);
      return achieved === undefined ? undefined : (100 * achieved) / peak;
    },
  });
  const bytes = (metric: string) => (result: ImplementationResult) => {
    const value = median(metric)(result);
    return value === undefined ? undefined : value / MIB;
  };
  return [
    { metric: 'train_step_ms', label: `training step, batch ${train.batch} x ${train.seq} (fwd, bwd, clip, AdamW)`, unit: 'ms', higherIsBetter: false, value: stepMs },
    { metric: 'train_gflops', label: `  training GFLOP/s (${(item.trainingStepFlops / 1e9).toFixed(2)} GFLOP/step)`, unit: 'GFLOP/s', higherIsBetter: true, value: gflops },
    percentOfPeak('train_peak_percent', `  % of the ${peakGflops} GFLOP/s FP32 peak`, peakGflops),
    ...(measuredPeak === null
      ? []
      : [percentOfPeak('train_measured_peak_percent', `  % of the measured ${measuredPeak.gflops.toFixed(0)} GFLOP/s peak`, measuredPeak.gflops)]),
    {
      metric: 'train_outside_native_ms',
      label: '  of the step, outside the native kernels (tfjs engine, JS, stock wasm ops)',
      unit: 'ms',
      higherIsBetter: false,
      value: median('train_outside_native_ms'),
    },
    {
      metric: 'train_varied_step_ms',
      label: `training step, ${lengths.length} sequences of ${Math.min(...lengths)}-${Math.max(...lengths)} tokens (ours packed, PyTorch padded)`,
      unit: 'ms',
      higherIsBetter: false,
      value: median('train_varied_step_ms'),
    },
    {
      // Like for like: ours on the same padded rows as PyTorch.
      metric: 'train_varied_padded_step_ms',
      label: '  ours on one right-padded row per sequence, as PyTorch',
      unit: 'ms',
      higherIsBetter: false,
      value: (result) => median(result.implementation === 'ours' ? 'train_varied_padded_step_ms' : 'train_varied_step_ms')(result),
    },
    { metric: 'train_long_step_ms', label: `training step, batch ${long.batch} x ${long.seq} (long sequences)`, unit: 'ms', higherIsBetter: false, value: median('train_long_step_ms') },
    { metric: 'score_tokens_per_s', label: `scoring, ${score.items} items of ${score.prompt}+${score.response} tokens`, unit: 'tokens/s', higherIsBetter: true, value: median('score_tokens_per_s') },
    ...generate.batches.map((batch) => ({
      metric: `generate_b${batch}_tokens_per_s`,
      label: `greedy generation, batch ${batch}, ${generate.prompt}-token prompt, ${generate.newTokens} new`,
      unit: 'tokens/s',
      higherIsBetter: true,
      value: median(`generate_b${batch}_tokens_per_s`),
    })),
    { metric: 'prefill_ms', label: `prefill, batch ${prefill.batch}, ${prefill.prompt}-token prompt (first token)`, unit: 'ms', higherIsBetter: false, value: median('prefill_ms') },
    { metric: 'peak_rss_mib', label: 'peak RSS of the process', unit: 'MiB', higherIsBetter: false, value: bytes('peak_rss_bytes') },
    { metric: 'peak_tensor_mib', label: 'peak live tfjs tensor bytes', unit: 'MiB', higherIsBetter: false, value: bytes('peak_tensor_bytes') },
  ];
}

/** The rows of every case, only the metrics that were measured. */
export function reportRows(report: BenchReport): ReportRow[] {
  return report.cases.flatMap((item) =>
    rowSpecs(item, report.peakGflops, report.machine.measuredPeak).flatMap((spec) => {
      const ours = spec.value(item.ours) ?? null;
      const pytorch = item.pytorch === null ? null : (spec.value(item.pytorch) ?? null);
      if (ours === null && pytorch === null) return [];
      const ratio = ours === null || pytorch === null ? null : spec.higherIsBetter ? ours / pytorch : pytorch / ours;
      return [{ case: item.case.name, metric: spec.metric, label: spec.label, unit: spec.unit, higherIsBetter: spec.higherIsBetter, ours, pytorch, ratio }];
    }),
  );
}

/** A figure with its unit, to 3-4 significant digits. */
export function formatValue(value: number | null, unit: string): string {
  if (value === null) return '-';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit === '%' ? `${text}%` : `${text} ${unit}`;
}

function table(rows: readonly string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('   ').trimEnd());
}

function measuredPeakLine(peak: MeasuredPeak | null): string {
  if (peak === null) return 'measured FP32 peak: not measured (the native addon is not loaded)';
  const threads = `${peak.threads} thread${peak.threads === 1 ? '' : 's'}`;
  const samples = peak.samples.length > 1 ? `, best of ${peak.samples.map((g) => g.toFixed(0)).join(', ')} before the cases and after each` : '';
  return `measured FP32 peak: ${peak.gflops.toFixed(0)} GFLOP/s (register-only FMA loop, ${peak.isa}, ${threads}${samples})`;
}

/** The report as text: machine and load, then per case the backends and the table. */
export function formatReport(report: BenchReport): string {
  const load = (values: readonly number[]) => values.map((v) => v.toFixed(2)).join(' ');
  const rows = reportRows(report);
  const lines = [
    `cream bench, ${report.date}`,
    `machine: ${report.machine.cores} cores, ${report.machine.cpu}; load average ${load(report.machine.loadAverageBefore)} before, ${load(report.machine.loadAverageAfter)} after`,
    measuredPeakLine(report.machine.measuredPeak),
    report.baseline.message,
    `training FLOPs = ${report.flopsFormula}`,
  ];
  for (const item of report.cases) {
    const runs = item.rounds > 1 ? `${item.rounds} x ${item.case.repeats} runs (${item.rounds} rounds alternating with PyTorch)` : `${item.case.repeats} runs`;
    lines.push('', `${item.case.name}: ${item.case.title}; median of ${runs} after ${item.case.warmup} warm-up`);
    lines.push(`  ours:    ${item.ours.backend}`);
    if (item.pytorch !== null) {
      lines.push(`  PyTorch: ${item.pytorch.backend}`);
      lines.push(...item.baselineWarnings.map((warning) => `  WARNING: ${warning}`));
    }
    if (item.baselineError !== null) lines.push(`  PyTorch: failed (${item.baselineError})`);
    const caseRows = rows.filter((row) => row.case === item.case.name);
    lines.push(
      ...table([
        ['metric', 'ours', 'PyTorch', 'ratio (>1: ours better)'],
        ...caseRows.map((row) => [row.label, formatValue(row.ours, row.unit), formatValue(row.pytorch, row.unit), row.ratio === null ? '-' : `${row.ratio.toFixed(2)}x`]),
      ]).map((line) => `  ${line}`),
    );
  }
  return lines.join('\n');
}
