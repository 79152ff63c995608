// Inline SVG plots drawn by our own code (no chart library, nothing fetched):
// grouped bars, lines over iterations with error bars, horizontal bars. Every
// data mark has a class (`bar`, `point`) so tests and the browser check can
// count them; every text is escaped.
import { escapeHtml } from './format';

/** Colours of the series, in order (readable on white, distinct in grey). */
const PALETTE = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b7791f', '#c53030', '#319795', '#4a5568'];

const WIDTH = 760;
const HEIGHT = 320;
const MARGIN = { top: 36, right: 170, bottom: 48, left: 56 };

/** Number with at most 3 decimals, for coordinates. */
function n(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

function colour(index: number): string {
  return PALETTE[index % PALETTE.length];
}

function open(title: string, width: number, height: number): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" aria-label="${escapeHtml(title)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<title>${escapeHtml(title)}</title>` +
    `<text class="plot-title" x="${MARGIN.left}" y="20" font-size="14" font-weight="600">${escapeHtml(title)}</text>`
  );
}

/** Horizontal grid lines and y tick labels for [min, max] over the plot area. */
function yAxis(min: number, max: number, format: (v: number) => string, plotHeight: number, plotWidth: number): string {
  const parts: string[] = [];
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const value = min + ((max - min) * i) / ticks;
    const y = MARGIN.top + plotHeight - (plotHeight * i) / ticks;
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${n(y)}" y2="${n(y)}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${n(y + 4)}" font-size="11" text-anchor="end">${escapeHtml(format(value))}</text>`);
  }
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotHeight}" stroke="#4a5568"/>`);
  return parts.join('');
}

function legend(names: readonly string[], plotWidth: number): string {
  return names
    .map((name, i) => {
      const x = MARGIN.left + plotWidth + 16;
      const y = MARGIN.top + i * 18;
      return `<g class="legend"><rect x="${x}" y="${y}" width="12" height="12" fill="${colour(i)}"/><text x="${x + 18}" y="${y + 10}" font-size="12">${escapeHtml(name)}</text></g>`;
    })
    .join('');
}

function empty(title: string, message: string): string {
  return `${open(title, WIDTH, 80)}<text class="plot-empty" x="${MARGIN.left}" y="52" font-size="12" fill="#718096">${escapeHtml(message)}</text></svg>`;
}

/** Input of groupedBars: one group per x label, one bar per series in each group. */
export interface GroupedBars {
  /** Plot title. */
  title: string;
  /** X labels (e.g. models). */
  groups: readonly string[];
  /** Series (e.g. tasks and mean), one colour each. */
  series: readonly string[];
  /** values[group][series]; undefined draws no bar. */
  values: readonly (readonly (number | undefined)[])[];
  /** Top of the y axis (default: 1). */
  yMax?: number;
  /** Tick and tooltip format (default: percent). */
  format?: (value: number) => string;
}

/** Grouped vertical bars: one `rect.bar` per defined value. */
export function groupedBars(chart: GroupedBars): string {
  const format = chart.format ?? ((v: number) => `${(v * 100).toFixed(0)}%`);
  if (chart.groups.length === 0 || chart.series.length === 0) return empty(chart.title, 'no data yet');
  const yMax = chart.yMax ?? 1;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const groupWidth = plotWidth / chart.groups.length;
  const barWidth = (groupWidth * 0.8) / chart.series.length;
  const parts = [open(chart.title, WIDTH, HEIGHT), yAxis(0, yMax, format, plotHeight, plotWidth)];
  chart.groups.forEach((group, g) => {
    const x0 = MARGIN.left + g * groupWidth + groupWidth * 0.1;
    chart.series.forEach((series, s) => {
      const value = chart.values[g]?.[s];
      if (value === undefined || !Number.isFinite(value)) return;
      const height = (Math.max(0, Math.min(value, yMax)) / yMax) * plotHeight;
      const x = x0 + s * barWidth;
      const y = MARGIN.top + plotHeight - height;
      parts.push(
        `<rect class="bar" x="${n(x)}" y="${n(y)}" width="${n(Math.max(1, barWidth - 2))}" height="${n(Math.max(height, 1))}" fill="${colour(s)}">` +
          `<title>${escapeHtml(`${group} ${series}: ${format(value)}`)}</title></rect>`,
      );
    });
    parts.push(`<text x="${n(x0 + groupWidth * 0.4)}" y="${MARGIN.top + plotHeight + 18}" font-size="12" text-anchor="middle">${escapeHtml(group)}</text>`);
  });
  parts.push(legend(chart.series, plotWidth), '</svg>');
  return parts.join('');
}

/** One line of a line chart. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** One value per x label; undefined leaves a gap. */
  values: readonly (number | undefined)[];
  /** Optional error (e.g. sample std) per value, drawn as a bar of ± error. */
  errors?: readonly (number | undefined)[];
}

/** Input of lines. */
export interface Lines {
  /** Plot title. */
  title: string;
  /** X labels (e.g. iterations or models). */
  xLabels: readonly string[];
  /** The lines. */
  series: readonly LineSeries[];
  /** Y range (default [0, 1]). */
  yMin?: number;
  /** Y range (default [0, 1]). */
  yMax?: number;
  /** Tick and tooltip format (default: two decimals). */
  format?: (value: number) => string;
}

/** Lines over x labels: one `circle.point` per defined value, `line.error` for each error bar. */
export function lines(chart: Lines): string {
  const format = chart.format ?? ((v: number) => v.toFixed(2));
  const defined = chart.series.some((s) => s.values.some((v) => v !== undefined && Number.isFinite(v)));
  if (chart.xLabels.length === 0 || !defined) return empty(chart.title, 'no data yet');
  const yMin = chart.yMin ?? 0;
  const yMax = chart.yMax ?? 1;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const step = plotWidth / chart.xLabels.length;
  const xOf = (i: number) => MARGIN.left + step * (i + 0.5);
  const yOf = (v: number) => MARGIN.top + plotHeight - ((Math.max(yMin, Math.min(v, yMax)) - yMin) / (yMax - yMin)) * plotHeight;
  const parts = [open(chart.title, WIDTH, HEIGHT), yAxis(yMin, yMax, format, plotHeight, plotWidth)];
  chart.xLabels.forEach((label, i) =>
    parts.push(`<text x="${n(xOf(i))}" y="${MARGIN.top + plotHeight + 18}" font-size="12" text-anchor="middle">${escapeHtml(label)}</text>`),
  );
  chart.series.forEach((series, s) => {
    const points = series.values.map((v, i) => (v === undefined || !Number.isFinite(v) ? undefined : { x: xOf(i), y: yOf(v), v, i }));
    // A gap (undefined) breaks the line into segments.
    let segment: string[] = [];
    const flush = () => {
      if (segment.length > 1) parts.push(`<polyline class="line" fill="none" stroke="${colour(s)}" stroke-width="2" points="${segment.join(' ')}"/>`);
      segment = [];
    };
    for (const p of points) {
      if (p === undefined) flush();
      else segment.push(`${n(p.x)},${n(p.y)}`);
    }
    flush();
    for (const p of points) {
      if (p === undefined) continue;
      const error = series.errors?.[p.i];
      if (error !== undefined && Number.isFinite(error) && error > 0) {
        parts.push(
          `<line class="error" x1="${n(p.x)}" x2="${n(p.x)}" y1="${n(yOf(p.v - error))}" y2="${n(yOf(p.v + error))}" stroke="${colour(s)}" stroke-width="1.5"/>`,
        );
      }
      const tip = `${series.name} ${chart.xLabels[p.i]}: ${format(p.v)}${error ? ` ± ${format(error)}` : ''}`;
      parts.push(`<circle class="point" cx="${n(p.x)}" cy="${n(p.y)}" r="4" fill="${colour(s)}"><title>${escapeHtml(tip)}</title></circle>`);
    }
  });
  parts.push(legend(chart.series.map((s) => s.name), plotWidth), '</svg>');
  return parts.join('');
}

/** Input of horizontalBars. */
export interface HorizontalBars {
  /** Plot title. */
  title: string;
  /** One label per bar (e.g. stage names). */
  labels: readonly string[];
  /** One value per bar; undefined draws no bar. */
  values: readonly (number | undefined)[];
  /** Value label format. */
  format: (value: number) => string;
}

/** Horizontal bars, one row per label: one `rect.bar` per defined value. */
export function horizontalBars(chart: HorizontalBars): string {
  if (chart.labels.length === 0) return empty(chart.title, 'no data yet');
  const rowHeight = 20;
  const labelWidth = 170;
  const valueWidth = 90;
  const height = MARGIN.top + rowHeight * chart.labels.length + 12;
  const plotWidth = WIDTH - labelWidth - valueWidth - 20;
  const max = Math.max(0, ...chart.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const parts = [open(chart.title, WIDTH, height)];
  chart.labels.forEach((label, i) => {
    const y = MARGIN.top + i * rowHeight;
    parts.push(`<text x="${labelWidth - 6}" y="${y + 14}" font-size="12" text-anchor="end">${escapeHtml(label)}</text>`);
    const value = chart.values[i];
    if (value === undefined || !Number.isFinite(value)) return;
    const width = max > 0 ? Math.max(1, (value / max) * plotWidth) : 1;
    parts.push(
      `<rect class="bar" x="${labelWidth}" y="${y + 3}" width="${n(width)}" height="${rowHeight - 6}" fill="${colour(0)}"><title>${escapeHtml(`${label}: ${chart.format(value)}`)}</title></rect>`,
      `<text x="${n(labelWidth + width + 6)}" y="${y + 14}" font-size="11">${escapeHtml(chart.format(value))}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}
