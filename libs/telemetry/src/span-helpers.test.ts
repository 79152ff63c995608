// withSpan, stageSpan and currentTraceId against the real SDK writing a trace
// file: what the coordinator's stage spans will look like in it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTraceId, readSpanRecords, stageSpan, startTelemetry, withSpan, type SpanRecord, type TelemetryHandle } from './index';

describe('span helpers', () => {
  let telemetry: TelemetryHandle;
  let traceFile: string;
  beforeAll(() => {
    traceFile = join(mkdtempSync(join(tmpdir(), 'cream-telemetry-')), 'spans.jsonl');
    telemetry = startTelemetry({ serviceName: 'helpers-test', env: {}, traceFile });
  });
  afterAll(() => telemetry.shutdown());

  async function spansNamed(name: string): Promise<SpanRecord[]> {
    await telemetry.flush();
    return readSpanRecords(traceFile).filter((record) => record.name === name);
  }

  it('withSpan returns a sync result and ends the span before returning', async () => {
    let idInside: string | undefined;
    const value = withSpan('sync work', { 'cream.items': 3 }, (span) => {
      idInside = span.spanContext().spanId;
      return 'done';
    });
    expect(value).toBe('done');
    const [record] = await spansNamed('sync work');
    expect(record.spanId).toBe(idInside);
    expect(record.attributes).toEqual({ 'cream.items': 3 });
    expect(record.status.code).toBe('UNSET');
    expect(currentTraceId()).toBeUndefined();
  });

  it('withSpan on a sync throw records the exception, sets ERROR and rethrows the same error', async () => {
    const thrown = new TypeError('bad shape');
    expect(() =>
      withSpan('sync failure', {}, () => {
        throw thrown;
      }),
    ).toThrow(thrown);
    const [record] = await spansNamed('sync failure');
    expect(record.status).toEqual({ code: 'ERROR', message: 'TypeError: bad shape' });
    expect(record.events.map((event) => event.name)).toEqual(['exception']);
  });

  it('withSpan on a rejection that is not an Error still records it', async () => {
    await expect(withSpan('odd rejection', {}, () => Promise.reject('just a string'))).rejects.toBe('just a string');
    const [record] = await spansNamed('odd rejection');
    expect(record.status).toEqual({ code: 'ERROR', message: 'just a string' });
    expect(record.events[0].attributes).toMatchObject({ 'exception.message': 'just a string' });
  });

  it('withSpan keeps the span open until the promise settles', async () => {
    await withSpan('slow async', {}, () => new Promise((wake) => setTimeout(wake, 25)));
    const [record] = await spansNamed('slow async');
    expect(record.durationMs).toBeGreaterThanOrEqual(24);
  });

  it('stageSpan names the span "stage <name>", tags cream.stage, and nests under the active span', async () => {
    let runTraceId: string | undefined;
    let stageTraceId: string | undefined;
    await withSpan('run', { 'cream.run': 'r1' }, async () => {
      runTraceId = currentTraceId();
      await stageSpan('generate', { 'cream.iteration': 1 }, async () => {
        stageTraceId = currentTraceId();
      });
    });
    const [run] = await spansNamed('run');
    const [stage] = await spansNamed('stage generate');
    expect(stage.attributes).toEqual({ 'cream.iteration': 1, 'cream.stage': 'generate' });
    expect(stage.parentSpanId).toBe(run.spanId);
    expect(stage.traceId).toBe(run.traceId);
    expect(runTraceId).toBe(run.traceId);
    expect(stageTraceId).toBe(run.traceId);
  });

  it('stageSpan lets the caller\'s attributes not override the stage name attribute', async () => {
    stageSpan('reward', { 'cream.stage': 'something else' }, () => undefined);
    const [stage] = await spansNamed('stage reward');
    expect(stage.attributes['cream.stage']).toBe('reward');
  });
});
