// One run's reports: the terminal table printed at the end of `cream run`, and
// the self-contained HTML report (accuracy per model and task, consistency per
// iteration, stage latency, results and stage tables, the spec, the backend).
import { columns, duration, escapeHtml, fixed, percent, taskNames } from './format';
import { htmlTable, page } from './page';
import { groupedBars, horizontalBars, lines } from './svg';
import type { ReportRun } from './types';

const CONSISTENCY_STAGE = /^iter-(\d+)\/consistency$/;

/**
 * The consistency rate measured in each iteration, in iteration order: the
 * `consistency_rate` metric of the `iter-t/consistency` stage, else the
 * consistencyRate of the model that iteration produced (M_{t+1}).
 */
export function consistencyByIteration(run: ReportRun): { iteration: number; rate: number }[] {
  const rates = new Map<number, number>();
  run.results.forEach((result) => {
    const index = Number(/^M(\d+)$/.exec(result.model)?.[1]);
    if (index >= 2 && result.consistencyRate !== undefined) rates.set(index - 1, result.consistencyRate);
  });
  for (const stage of run.stages) {
    const match = CONSISTENCY_STAGE.exec(stage.name);
    const rate = stage.metrics.consistency_rate;
    if (match && rate !== undefined && Number.isFinite(rate)) rates.set(Number(match[1]), rate);
  }
  return [...rates.entries()].sort((a, b) => a[0] - b[0]).map(([iteration, rate]) => ({ iteration, rate }));
}

/** A stage's metrics as short `key=value` text (evaluation accuracies left to the results table). */
function metricsText(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .filter(([key]) => !key.startsWith('accuracy/'))
    .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(4)}`)
    .join(' ');
}

function resultRows(run: ReportRun, tasks: readonly string[]): string[][] {
  return run.results.map((r) => [
    r.model,
    r.version,
    ...tasks.map((task) => {
      const found = r.accuracy.find((a) => a.task === task);
      return found ? percent(found.accuracy) : '-';
    }),
    percent(r.meanAccuracy),
    fixed(r.consistencyRate, 3),
    fixed(r.rewardMargin, 3),
    r.pairsUsed === 0 && r.consistencyRate === undefined ? '-' : String(r.pairsUsed),
  ]);
}

function headline(run: ReportRun): string {
  return `run ${run.runId}${run.name ? ` "${run.name}"` : ''}: method ${run.method}, seed ${run.seed}, ${run.state}, backend ${run.backend || 'unknown'}`;
}

/**
 * The terminal table of a run: per model (M0..Mn) accuracy (%) per task and
 * mean, consistency rate, reward margin and pairs used; then time per stage.
 */
export function formatRunTable(run: ReportRun): string {
  const tasks = taskNames(run.results);
  const header = ['model', 'version', ...tasks, 'mean', 'consistency', 'margin', 'pairs'];
  const right = header.map((_, i) => i >= 2);
  const models = run.results.length === 0 ? '(no model evaluated)' : columns(header, resultRows(run, tasks), right);
  const stageRows = run.stages.map((s) => [s.name, s.state, duration(s.durationMs), s.error ? `error: ${s.error}` : metricsText(s.metrics)]);
  const total = run.stages.reduce((sum, s) => sum + (s.durationMs ?? 0), 0);
  stageRows.push(['total', '', duration(total), '']);
  const stages = columns(['stage', 'state', 'time', 'metrics'], stageRows, [false, false, true, false]);
  return [headline(run), '', 'Accuracy (%) per model and task', models, '', 'Time per stage', stages, ''].join('\n');
}

/**
 * The HTML report of a run: one self-contained file (inline CSS and SVG, no
 * script, nothing fetched) with three plots (accuracy per model per task and
 * mean, consistency per iteration, stage latency), the results and stage
 * tables, the backend and the resolved spec.
 */
export function renderRunReport(run: ReportRun): string {
  const tasks = taskNames(run.results);
  const series = [...tasks, 'mean'];
  const accuracyPlot = groupedBars({
    title: 'Accuracy per model and task',
    groups: run.results.map((r) => r.model),
    series,
    values: run.results.map((r) => [...tasks.map((task) => r.accuracy.find((a) => a.task === task)?.accuracy), r.meanAccuracy]),
  });
  const consistency = consistencyByIteration(run);
  const consistencyPlot = lines({
    title: 'Consistency rate per iteration',
    xLabels: consistency.map((c) => `iter ${c.iteration}`),
    series: [{ name: `C (${run.method})`, values: consistency.map((c) => c.rate) }],
  });
  const timed = run.stages.filter((s) => s.durationMs !== undefined);
  const latencyPlot = horizontalBars({
    title: 'Stage latency',
    labels: timed.map((s) => s.name),
    values: timed.map((s) => s.durationMs),
    format: duration,
  });
  const resultHeader = ['model', 'version', ...tasks.map((t) => `${t} (%)`), 'mean (%)', 'consistency', 'reward margin', 'pairs used'];
  const stageRows = run.stages.map((s) => [s.name, String(s.iteration), s.state, duration(s.durationMs), s.startedAt ?? '-', s.error ?? metricsText(s.metrics)]);
  const sections = [
    `<h1>CREAM run ${escapeHtml(run.runId)}</h1>`,
    `<p class="meta">${escapeHtml(run.name || '(no name)')} · method <b>${escapeHtml(run.method)}</b> · seed ${run.seed} · ` +
      `<span class="state-${escapeHtml(run.state)}">${escapeHtml(run.state)}</span> · backend <b>${escapeHtml(run.backend || 'unknown')}</b> · ` +
      `created ${escapeHtml(run.createdAt)}${run.finishedAt ? ` · finished ${escapeHtml(run.finishedAt)}` : ''}</p>`,
    '<h2>Accuracy</h2>',
    accuracyPlot,
    '<h2>Consistency</h2>',
    consistencyPlot,
    '<h2>Stage latency</h2>',
    latencyPlot,
    '<h2>Results</h2>',
    htmlTable(resultHeader, resultRows(run, tasks), resultHeader.map((_, i) => i >= 2)),
    '<h2>Stages</h2>',
    htmlTable(['stage', 'iteration', 'state', 'time', 'started', 'metrics / error'], stageRows, [false, true, false, true, false, false], run.stages.map((s) => `state-${s.state}`)),
    '<h2>Spec</h2>',
    `<pre>${escapeHtml(JSON.stringify(run.spec, null, 2))}</pre>`,
  ];
  return page(`CREAM run ${run.runId}`, sections);
}
