// Reading the JSONL trace file back (format: jsonl-span-exporter.ts). Every
// line is checked against the record shape, and a bad one is reported by its
// line number, because a truncated last line (a process killed mid-write on a
// full disk) or a hand-edited file is the usual cause.
import { readFileSync } from 'node:fs';
import { TraceFileError } from './errors';
import type { SpanKindName, SpanRecord, SpanStatusName } from './jsonl-span-exporter';

/** Where span records come from: a trace file path, or its lines already in memory. */
export type SpanSource = string | readonly string[];

const kindNames: ReadonlySet<string> = new Set<SpanKindName>(['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER']);
const statusNames: ReadonlySet<string> = new Set<SpanStatusName>(['UNSET', 'OK', 'ERROR']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The first field of `value` that breaks the record shape, or undefined when it is a record. */
function shapeProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  for (const field of ['traceId', 'spanId', 'name', 'service', 'startTimeUnixNano', 'endTimeUnixNano'] as const) {
    if (typeof value[field] !== 'string') return `"${field}" is not a string`;
  }
  if (value.parentSpanId !== null && typeof value.parentSpanId !== 'string') return '"parentSpanId" is neither a string nor null';
  if (typeof value.kind !== 'string' || !kindNames.has(value.kind)) return `"kind" is not one of ${[...kindNames].join(', ')}`;
  if (typeof value.durationMs !== 'number' || !Number.isFinite(value.durationMs) || value.durationMs < 0) {
    return '"durationMs" is not a finite non-negative number';
  }
  if (!isObject(value.status) || typeof value.status.code !== 'string' || !statusNames.has(value.status.code)) {
    return `"status.code" is not one of ${[...statusNames].join(', ')}`;
  }
  if (!isObject(value.attributes)) return '"attributes" is not an object';
  if (!Array.isArray(value.events)) return '"events" is not an array';
  return undefined;
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n');
  } catch (error) {
    throw new TraceFileError(`cannot read trace file ${path}: ${(error as Error).message}`, path, undefined, { cause: error });
  }
}

/** Parses and checks span records; blank lines are skipped, a malformed line throws TraceFileError naming it. */
export function readSpanRecords(source: SpanSource): SpanRecord[] {
  const path = typeof source === 'string' ? source : undefined;
  const lines = typeof source === 'string' ? readLines(source) : source;
  const where = path ?? 'span records';
  const records: SpanRecord[] = [];
  lines.forEach((text, index) => {
    if (text.trim() === '') return;
    const line = index + 1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new TraceFileError(`${where}:${line}: not valid JSON (${(error as Error).message})`, path, line, { cause: error });
    }
    const problem = shapeProblem(value);
    if (problem !== undefined) throw new TraceFileError(`${where}:${line}: not a span record: ${problem}`, path, line);
    records.push(value as SpanRecord);
  });
  return records;
}
