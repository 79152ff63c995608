// Comparison of methods over seeds (the paper's main table in miniature):
// aggregation of runs by method and model (iteration), mean and sample
// standard deviation over seeds, as markdown and as an HTML report.
import { escapeHtml, percent, taskNames } from './format';
import { htmlTable, page } from './page';
import { lines } from './svg';
import type { ReportRun } from './types';
import { consistencyByIteration } from './run-report';

/** Values over seeds: their mean, sample standard deviation (n - 1; absent when n < 2) and count. */
export interface Statistic {
  /** Arithmetic mean. */
  mean: number;
  /** Sample standard deviation (Bessel-corrected); undefined for a single value. */
  std?: number;
  /** Number of values (seeds). */
  n: number;
}

/** One method's model (M0, M1, ...) over seeds. */
export interface ComparisonRow {
  /** Method. */
  method: string;
  /** "M0", "M1", ... */
  model: string;
  /** Accuracy per task over seeds. */
  tasks: Record<string, Statistic>;
  /** Mean accuracy over tasks, over seeds. */
  mean: Statistic;
}

/** One method's consistency rate in one iteration, over seeds. */
export interface ComparisonConsistency {
  /** Method. */
  method: string;
  /** Iteration t (M_t -> M_{t+1}). */
  iteration: number;
  /** Consistency rate over seeds. */
  rate: Statistic;
}

/** The aggregated comparison. */
export interface Comparison {
  /** Methods in first-seen order. */
  methods: string[];
  /** Models in index order (M0, M1, ...). */
  models: string[];
  /** Tasks in first-seen order. */
  tasks: string[];
  /** Seeds, ascending. */
  seeds: number[];
  /** Every run that went in. */
  runs: { runId: string; method: string; seed: number; state: string }[];
  /** One row per method and model that has results, methods then models in order. */
  rows: ComparisonRow[];
  /** Consistency per method and iteration. */
  consistency: ComparisonConsistency[];
}

/** Mean and sample standard deviation of a non-empty list. */
export function statistic(values: readonly number[]): Statistic {
  if (values.length === 0) throw new RangeError('statistic of no values');
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
  if (values.length < 2) return { mean, n: values.length };
  const variance = values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(variance), n: values.length };
}

function modelIndex(model: string): number {
  const match = /^M(\d+)$/.exec(model);
  return match ? Number(match[1]) : Number.MAX_SAFE_INTEGER;
}

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Groups runs by method and model (iteration) over their seeds: mean and
 * sample std of each task's accuracy, of the mean accuracy, and of the
 * consistency rate per iteration. Runs that stopped early contribute the
 * models they have.
 */
export function aggregateComparison(runs: readonly ReportRun[]): Comparison {
  const methods: string[] = [];
  for (const run of runs) if (!methods.includes(run.method)) methods.push(run.method);
  const allResults = runs.flatMap((r) => r.results);
  const tasks = taskNames(allResults);
  const models = [...new Set(allResults.map((r) => r.model))].sort((a, b) => modelIndex(a) - modelIndex(b) || a.localeCompare(b));
  const accuracy = new Map<string, number[]>();
  const means = new Map<string, number[]>();
  const rates = new Map<string, number[]>();
  const key = (...parts: (string | number)[]) => JSON.stringify(parts);
  for (const run of runs) {
    for (const result of run.results) {
      push(means, key(run.method, result.model), result.meanAccuracy);
      for (const a of result.accuracy) push(accuracy, key(run.method, result.model, a.task), a.accuracy);
    }
    for (const { iteration, rate } of consistencyByIteration(run)) push(rates, key(run.method, iteration), rate);
  }
  const rows: ComparisonRow[] = [];
  for (const method of methods) {
    for (const model of models) {
      const meanValues = means.get(key(method, model));
      if (!meanValues) continue;
      const taskStats: Record<string, Statistic> = {};
      for (const task of tasks) {
        const values = accuracy.get(key(method, model, task));
        if (values) taskStats[task] = statistic(values);
      }
      rows.push({ method, model, tasks: taskStats, mean: statistic(meanValues) });
    }
  }
  const iterations = [...new Set([...rates.keys()].map((k) => JSON.parse(k)[1] as number))].sort((a, b) => a - b);
  const consistency: ComparisonConsistency[] = [];
  for (const method of methods) {
    for (const iteration of iterations) {
      const values = rates.get(key(method, iteration));
      if (values) consistency.push({ method, iteration, rate: statistic(values) });
    }
  }
  return {
    methods,
    models,
    tasks,
    seeds: [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b),
    runs: runs.map((r) => ({ runId: r.runId, method: r.method, seed: r.seed, state: r.state })),
    rows,
    consistency,
  };
}

/** "41.2" or "41.2 ± 1.3" (accuracy in %). */
function accuracyCell(stat: Statistic | undefined): string {
  if (!stat) return '-';
  return stat.std === undefined ? percent(stat.mean) : `${percent(stat.mean)} ± ${percent(stat.std)}`;
}

/** "0.812" or "0.812 ± 0.010". */
function rateCell(stat: Statistic | undefined): string {
  if (!stat) return '-';
  return stat.std === undefined ? stat.mean.toFixed(3) : `${stat.mean.toFixed(3)} ± ${stat.std.toFixed(3)}`;
}

function iterationsOf(comparison: Comparison): number[] {
  return [...new Set(comparison.consistency.map((c) => c.iteration))].sort((a, b) => a - b);
}

function accuracyTable(comparison: Comparison): { header: string[]; rows: string[][] } {
  return {
    header: ['method', 'model', ...comparison.tasks, 'mean'],
    rows: comparison.rows.map((row) => [row.method, row.model, ...comparison.tasks.map((t) => accuracyCell(row.tasks[t])), accuracyCell(row.mean)]),
  };
}

function consistencyTable(comparison: Comparison): { header: string[]; rows: string[][] } {
  const iterations = iterationsOf(comparison);
  return {
    header: ['method', ...iterations.map((t) => `iter ${t}`)],
    rows: comparison.methods.map((method) => [
      method,
      ...iterations.map((t) => rateCell(comparison.consistency.find((c) => c.method === method && c.iteration === t)?.rate)),
    ]),
  };
}

/** A markdown cell: pipes escaped, line breaks flattened. */
function markdownCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], textColumns: number): string {
  const line = (cells: readonly string[]) => `| ${cells.map(markdownCell).join(' | ')} |`;
  const rule = `|${header.map((_, i) => (i < textColumns ? '---' : '---:')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

function seedsText(comparison: Comparison): string {
  const k = comparison.seeds.length;
  return k > 1 ? `mean ± sample std over ${k} seeds (${comparison.seeds.join(', ')})` : `seed ${comparison.seeds.join(', ')}`;
}

/**
 * The comparison as markdown: accuracy (%) per method and model (rows) per
 * task and mean (columns), "mean ± std" over seeds when there are several;
 * then the consistency rate per method and iteration; then the runs.
 */
export function formatComparisonMarkdown(comparison: Comparison): string {
  const accuracy = accuracyTable(comparison);
  const consistency = consistencyTable(comparison);
  const runs = comparison.runs.map((r) => `${r.method} seed ${r.seed}: ${r.runId} (${r.state})`);
  return [
    `Accuracy (%) per method and model, ${seedsText(comparison)}. M0 is the base model, M1 the SFT model, M(t+1) the model of iteration t.`,
    '',
    markdownTable(accuracy.header, accuracy.rows, 2),
    '',
    `Consistency rate of the rewards between successive models, per iteration (${seedsText(comparison)}).`,
    '',
    consistency.header.length > 1 ? markdownTable(consistency.header, consistency.rows, 1) : '(no iteration measured)',
    '',
    `Runs: ${runs.join('; ')}.`,
    '',
  ].join('\n');
}

/**
 * The comparison as one self-contained HTML file: the plots "accuracy per
 * iteration per method" (mean accuracy per model, error bars = sample std) and
 * consistency per iteration per method, then both tables and the runs.
 */
export function renderComparisonReport(comparison: Comparison): string {
  const accuracyPlot = lines({
    title: 'Accuracy per iteration per method',
    xLabels: comparison.models,
    series: comparison.methods.map((method) => {
      const rows = comparison.models.map((model) => comparison.rows.find((r) => r.method === method && r.model === model));
      return { name: method, values: rows.map((r) => r?.mean.mean), errors: rows.map((r) => r?.mean.std) };
    }),
    format: (v) => `${(v * 100).toFixed(1)}%`,
  });
  const iterations = iterationsOf(comparison);
  const consistencyPlot = lines({
    title: 'Consistency rate per iteration per method',
    xLabels: iterations.map((t) => `iter ${t}`),
    series: comparison.methods.map((method) => {
      const stats = iterations.map((t) => comparison.consistency.find((c) => c.method === method && c.iteration === t)?.rate);
      return { name: method, values: stats.map((s) => s?.mean), errors: stats.map((s) => s?.std) };
    }),
  });
  const accuracy = accuracyTable(comparison);
  const consistency = consistencyTable(comparison);
  return page('CREAM comparison', [
    '<h1>CREAM comparison</h1>',
    `<p class="meta">methods ${escapeHtml(comparison.methods.join(', '))} · ${escapeHtml(seedsText(comparison))}</p>`,
    '<h2>Accuracy</h2>',
    accuracyPlot,
    htmlTable(accuracy.header, accuracy.rows, accuracy.header.map((_, i) => i >= 2)),
    '<h2>Consistency</h2>',
    consistencyPlot,
    htmlTable(consistency.header, consistency.rows, consistency.header.map((_, i) => i >= 1)),
    '<h2>Runs</h2>',
    htmlTable(['method', 'seed', 'run', 'state'], comparison.runs.map((r) => [r.method, String(r.seed), r.runId, r.state]), [false, true, false, false]),
  ]);
}
