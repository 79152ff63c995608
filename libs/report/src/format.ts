// Small formatting helpers shared by the text, markdown and HTML reports.

/** Escapes text for HTML and SVG (element content and quoted attributes). */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** An accuracy in [0, 1] as a percentage with one decimal ("41.7"). */
export function percent(value: number): string {
  return (value * 100).toFixed(1);
}

/** A fixed-decimal number, or "-" when unknown. */
export function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/** A duration for people: "850 ms", "12.3 s", "4 min 05 s". */
export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
}

/** Lays rows out as aligned columns; `right` marks the columns aligned right (numbers). */
export function columns(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The tasks of a set of model results, in first-seen order. */
export function taskNames(results: readonly { accuracy: readonly { task: string }[] }[]): string[] {
  const names: string[] = [];
  for (const result of results) for (const { task } of result.accuracy) if (!names.includes(task)) names.push(task);
  return names;
}
