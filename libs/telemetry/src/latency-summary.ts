// Latency per span name from a trace file: what the CLI prints after a run so
// an engineer sees which stage or call dominates an iteration. Rows are keyed
// by name AND kind, because the client and the server span of one gRPC method
// share a name but measure different things (the client's includes the
// network and queueing).
import type { SpanKindName } from './jsonl-span-exporter';
import { readSpanRecords, type SpanSource } from './trace-file';

/** Latency statistics of one span name and kind, in milliseconds. */
export interface LatencyRow {
  name: string;
  kind: SpanKindName;
  count: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** Which records to summarize; all when empty. */
export interface SummaryFilter {
  /** Only spans of this trace (e.g. one coordinator run). */
  traceId?: string;
  /** Only spans of this service (resource service.name). */
  service?: string;
}

/**
 * The p-quantile (0..1) of ascending `sorted` values, by linear interpolation
 * between the two closest ranks (NumPy's default, so numbers match a notebook).
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values');
  if (!(p >= 0 && p <= 1)) throw new RangeError(`percentile rank ${p} is outside 0..1`);
  const rank = p * (sorted.length - 1);
  const below = Math.floor(rank);
  const above = Math.ceil(rank);
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - below);
}

/** Per span name and kind: count, total, mean, p50, p95 and max duration; largest total first. */
export function summarizeSpans(source: SpanSource, filter: SummaryFilter = {}): LatencyRow[] {
  const groups = new Map<string, { name: string; kind: SpanKindName; durations: number[] }>();
  for (const record of readSpanRecords(source)) {
    if (filter.traceId !== undefined && record.traceId !== filter.traceId) continue;
    if (filter.service !== undefined && record.service !== filter.service) continue;
    const key = `${record.kind} ${record.name}`;
    let group = groups.get(key);
    if (!group) {
      group = { name: record.name, kind: record.kind, durations: [] };
      groups.set(key, group);
    }
    group.durations.push(record.durationMs);
  }
  const rows: LatencyRow[] = [];
  for (const { name, kind, durations } of groups.values()) {
    const sorted = [...durations].sort((a, b) => a - b);
    const totalMs = sorted.reduce((sum, value) => sum + value, 0);
    rows.push({
      name,
      kind,
      count: sorted.length,
      totalMs,
      meanMs: totalMs / sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p95Ms: percentile(sorted, 0.95),
      maxMs: sorted[sorted.length - 1],
    });
  }
  return rows.sort((a, b) => b.totalMs - a.totalMs || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
}

const columns: { title: string; cell: (row: LatencyRow) => string; alignLeft?: boolean }[] = [
  { title: 'span', cell: (row) => row.name, alignLeft: true },
  { title: 'kind', cell: (row) => row.kind, alignLeft: true },
  { title: 'count', cell: (row) => String(row.count) },
  { title: 'total ms', cell: (row) => row.totalMs.toFixed(2) },
  { title: 'mean ms', cell: (row) => row.meanMs.toFixed(2) },
  { title: 'p50 ms', cell: (row) => row.p50Ms.toFixed(2) },
  { title: 'p95 ms', cell: (row) => row.p95Ms.toFixed(2) },
  { title: 'max ms', cell: (row) => row.maxMs.toFixed(2) },
];

/** The summary as an aligned plain-text table (no trailing newline), for a terminal. */
export function formatLatencyTable(rows: readonly LatencyRow[]): string {
  if (rows.length === 0) return 'no spans recorded';
  const cells = [columns.map((column) => column.title), ...rows.map((row) => columns.map((column) => column.cell(row)))];
  const widths = columns.map((_, index) => Math.max(...cells.map((line) => line[index].length)));
  return cells
    .map((line) =>
      line
        .map((text, index) => (columns[index].alignLeft ? text.padEnd(widths[index]) : text.padStart(widths[index])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
