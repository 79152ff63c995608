// The HTML page shell shared by the run and comparison reports: one file with
// its CSS inline, system fonts only, no script and nothing fetched.
import { escapeHtml } from './format';

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 980px; color: #1a202c; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
.meta { color: #4a5568; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-FAILED, .state-CANCELLED { color: #c53030; font-weight: 600; } .state-SUCCEEDED { color: #2f855a; font-weight: 600; }
pre { background: #f7fafc; border: 1px solid #e2e8f0; padding: 8px; font-size: 12px; overflow-x: auto; }
svg.plot { display: block; margin: 12px 0; max-width: 100%; height: auto; background: #fff; }
svg.plot text { font-family: system-ui, sans-serif; fill: #1a202c; }
`;

/** A whole HTML document: title, heading, and body sections (already HTML). */
export function page(title: string, sections: readonly string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...sections,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** An HTML table; cells are text (escaped here); `numeric` marks right-aligned columns. */
export function htmlTable(header: readonly string[], rows: readonly (readonly string[])[], numeric: readonly boolean[] = [], rowClasses: readonly string[] = []): string {
  const cls = (i: number) => (numeric[i] ? ' class="num"' : '');
  const head = `<tr>${header.map((h, i) => `<th${cls(i)}>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map((row, r) => `<tr${rowClasses[r] ? ` class="${escapeHtml(rowClasses[r])}"` : ''}>${row.map((c, i) => `<td${cls(i)}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}
