// summarizeSpans and formatLatencyTable on a hand-written trace, with the
// statistics computed by hand; and the trace reader's errors by line number.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TraceFileError, formatLatencyTable, percentile, readSpanRecords, summarizeSpans, type LatencyRow, type SpanRecord } from './index';

/** The error `fn` throws, or undefined when it returns. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

let nextSpan = 0;
function line(name: string, kind: SpanRecord['kind'], durationMs: number, extra: Partial<SpanRecord> = {}): string {
  nextSpan += 1;
  const record: SpanRecord = {
    traceId: 'a'.repeat(32),
    spanId: nextSpan.toString(16).padStart(16, '0'),
    parentSpanId: null,
    name,
    kind,
    service: 'cream-coordinator',
    startTimeUnixNano: '1732770000000000000',
    endTimeUnixNano: String(1732770000000000000n + BigInt(durationMs * 1e6)),
    durationMs,
    status: { code: 'UNSET' },
    attributes: {},
    events: [],
    ...extra,
  };
  return JSON.stringify(record);
}

const method = 'grpc.cream.v1.Judge/ScoreLogProbs';
const fixture = [
  line('stage generate', 'INTERNAL', 10),
  line(method, 'SERVER', 4),
  line('stage generate', 'INTERNAL', 30),
  line(method, 'SERVER', 1),
  '',
  line(method, 'CLIENT', 5),
  line('stage generate', 'INTERNAL', 20),
  line(method, 'SERVER', 3),
  line(method, 'SERVER', 2),
  line('stage generate', 'INTERNAL', 40),
  line(method, 'SERVER', 100),
  line('stage reward', 'INTERNAL', 7, { traceId: 'b'.repeat(32), service: 'other' }),
];

describe('percentile', () => {
  it('interpolates linearly between the closest ranks', () => {
    expect(percentile([10, 20, 30, 40], 0.5)).toBe(25);
    expect(percentile([10, 20, 30, 40], 0.95)).toBeCloseTo(38.5, 10);
    expect(percentile([10, 20, 30, 40], 0)).toBe(10);
    expect(percentile([10, 20, 30, 40], 1)).toBe(40);
    expect(percentile([7], 0.95)).toBe(7);
    expect(() => percentile([], 0.5)).toThrow(RangeError);
    expect(() => percentile([1], 1.5)).toThrow(RangeError);
  });
});

describe('summarizeSpans', () => {
  // By hand:
  //   SERVER ScoreLogProbs: sorted 1 2 3 4 100; total 110, mean 22, p50 = rank 2 -> 3,
  //     p95 = rank 3.8 -> 4 + 0.8 * 96 = 80.8, max 100.
  //   stage generate: sorted 10 20 30 40; total 100, mean 25, p50 = rank 1.5 -> 25,
  //     p95 = rank 2.85 -> 30 + 0.85 * 10 = 38.5, max 40.
  //   CLIENT ScoreLogProbs: 5 once. stage reward: 7 once.
  const expected: LatencyRow[] = [
    { name: method, kind: 'SERVER', count: 5, totalMs: 110, meanMs: 22, p50Ms: 3, p95Ms: 80.8, maxMs: 100 },
    { name: 'stage generate', kind: 'INTERNAL', count: 4, totalMs: 100, meanMs: 25, p50Ms: 25, p95Ms: 38.5, maxMs: 40 },
    { name: 'stage reward', kind: 'INTERNAL', count: 1, totalMs: 7, meanMs: 7, p50Ms: 7, p95Ms: 7, maxMs: 7 },
    { name: method, kind: 'CLIENT', count: 1, totalMs: 5, meanMs: 5, p50Ms: 5, p95Ms: 5, maxMs: 5 },
  ];

  function expectRows(actual: LatencyRow[], wanted: LatencyRow[]): void {
    expect(actual.map((row) => [row.name, row.kind, row.count])).toEqual(wanted.map((row) => [row.name, row.kind, row.count]));
    actual.forEach((row, index) => {
      for (const field of ['totalMs', 'meanMs', 'p50Ms', 'p95Ms', 'maxMs'] as const) {
        expect(row[field], `${row.kind} ${row.name} ${field}`).toBeCloseTo(wanted[index][field], 9);
      }
    });
  }

  it('gives per name and kind the hand-computed statistics, largest total first', () => {
    expectRows(summarizeSpans(fixture), expected);
  });

  it('reads the same from a trace file on disk', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cream-telemetry-')), 'spans.jsonl');
    writeFileSync(path, fixture.join('\n') + '\n');
    expectRows(summarizeSpans(path), expected);
  });

  it('filters by trace id and by service', () => {
    expectRows(summarizeSpans(fixture, { traceId: 'b'.repeat(32) }), [expected[2]]);
    expectRows(summarizeSpans(fixture, { service: 'cream-coordinator' }), [expected[0], expected[1], expected[3]]);
    expect(summarizeSpans(fixture, { service: 'nobody' })).toEqual([]);
  });
});

describe('formatLatencyTable', () => {
  it('aligns names left and numbers right, two decimals', () => {
    const rows: LatencyRow[] = [
      { name: 'stage train', kind: 'INTERNAL', count: 2, totalMs: 12345.678, meanMs: 6172.839, p50Ms: 6172.839, p95Ms: 6900.5, maxMs: 7000 },
      { name: 'grpc.cream.v1.Generator/Generate', kind: 'CLIENT', count: 12, totalMs: 30.5, meanMs: 2.541666, p50Ms: 2.5, p95Ms: 3.25, maxMs: 4 },
    ];
    expect(formatLatencyTable(rows)).toBe(
      [
        'span                              kind      count  total ms  mean ms   p50 ms   p95 ms   max ms',
        'stage train                       INTERNAL      2  12345.68  6172.84  6172.84  6900.50  7000.00',
        'grpc.cream.v1.Generator/Generate  CLIENT       12     30.50     2.54     2.50     3.25     4.00',
      ].join('\n'),
    );
  });

  it('says so when there is nothing to show', () => {
    expect(formatLatencyTable([])).toBe('no spans recorded');
  });
});

describe('readSpanRecords', () => {
  it('names the line of a malformed record as numbered in the file (blank lines count)', () => {
    const caught = thrownBy(() => readSpanRecords([fixture[0], '', '{"traceId": "abc", ']));
    expect(caught).toBeInstanceOf(TraceFileError);
    expect((caught as TraceFileError).line).toBe(3);
    expect((caught as TraceFileError).path).toBeUndefined();
    expect((caught as TraceFileError).message).toMatch(/^span records:3: not valid JSON/);
  });

  it('rejects JSON that is not a span record, naming the field and the file', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cream-telemetry-')), 'spans.jsonl');
    const noDuration = JSON.parse(fixture[1]) as Record<string, unknown>;
    delete noDuration.durationMs;
    writeFileSync(path, [fixture[0], JSON.stringify(noDuration)].join('\n'));
    const caught = thrownBy(() => readSpanRecords(path));
    expect(caught).toBeInstanceOf(TraceFileError);
    expect((caught as TraceFileError).line).toBe(2);
    expect((caught as TraceFileError).path).toBe(path);
    expect((caught as TraceFileError).message).toBe(`${path}:2: not a span record: "durationMs" is not a finite non-negative number`);
    expect(() => readSpanRecords([line('x', 'INTERNAL', 1).replace('"INTERNAL"', '"SIDEWAYS"')])).toThrow(/"kind" is not one of/);
    expect(() => readSpanRecords(['[1, 2]'])).toThrow(/not a JSON object/);
  });

  it('reports a missing file with its path and no line', () => {
    const path = join(tmpdir(), 'cream-telemetry-no-such-dir', 'spans.jsonl');
    const caught = thrownBy(() => readSpanRecords(path));
    expect(caught).toBeInstanceOf(TraceFileError);
    expect((caught as TraceFileError).path).toBe(path);
    expect((caught as TraceFileError).line).toBeUndefined();
    expect((caught as TraceFileError).cause).toMatchObject({ code: 'ENOENT' });
  });
});
