// Public surface of @cream/report: reports of CREAM runs as pure functions
// (strings in, strings out; no files, no network).

/** results.json of a run: the contract between the coordinator and every report. */
export type { ReportRun, ReportMethod, ReportStage, ReportModelResult, ReportTaskAccuracy } from './types';
/** One run: the terminal table, the self-contained HTML report, the consistency per iteration. */
export { formatRunTable, renderRunReport, consistencyByIteration } from './run-report';
/** Several runs: aggregation by method and model over seeds, the markdown tables and the HTML report. */
export {
  aggregateComparison,
  formatComparisonMarkdown,
  renderComparisonReport,
  statistic,
  type Comparison,
  type ComparisonRow,
  type ComparisonConsistency,
  type Statistic,
} from './comparison';
/** Escaping for HTML and SVG text. */
export { escapeHtml } from './format';
