// The run store on real files in a temp folder: runs and their paging, stages
// written whole or streamed and read back verified, corruption caught on read,
// a stage never stored twice, run state, and the events log.
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunStore, StageCorruptError, StageExistsError, StageNotFoundError, RunNotFoundError, RunExistsError, type RunHandle } from './index';
import { sha256Hex } from './files';

let root: string;
let store: RunStore;
let run: RunHandle<{ method: string }>;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cream-runs-'));
  store = await RunStore.open(root);
  run = await store.createRun({ method: 'cream' });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('runs', () => {
  it('creates a run folder with run.json, an empty event log and no stages', async () => {
    expect(run.runId).toMatch(/^run-\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect((await readdir(run.directory)).sort()).toEqual(['events.jsonl', 'run.json', 'stages']);
    const info = await run.info();
    expect(info).toMatchObject({ runId: run.runId, spec: { method: 'cream' }, state: 'CREATED', error: null });
    expect((await (await store.openRun<{ method: string }>(run.runId)).info()).spec.method).toBe('cream');
    await expect(store.openRun('missing')).rejects.toBeInstanceOf(RunNotFoundError);
    await expect(store.createRun({}, { runId: run.runId })).rejects.toBeInstanceOf(RunExistsError);
    expect(await readdir(join(root, 'runs', '.tmp'))).toEqual([]);
  });

  it('updates the state atomically and keeps the spec', async () => {
    await run.updateRunState('RUNNING');
    const failed = await run.updateRunState('FAILED', { error: 'judge unavailable' });
    expect(failed).toMatchObject({ state: 'FAILED', error: 'judge unavailable', spec: { method: 'cream' } });
    expect(JSON.parse(await readFile(join(run.directory, 'run.json'), 'utf8'))).toEqual(failed);
    expect(await run.updateRunState('RUNNING', { error: null })).toMatchObject({ state: 'RUNNING', error: null });
    await expect(run.updateRunState('')).rejects.toMatchObject({ field: 'state' });
  });

  it('lists runs newest first in pages that runs created meanwhile do not shift', async () => {
    const ids = [run.runId];
    for (let index = 1; index < 5; index++) {
      await new Promise((done) => setTimeout(done, 2));
      ids.push((await store.createRun({ method: 'cream' }, { runId: `r${index}` })).runId);
    }
    const newestFirst = [...ids].reverse();
    const first = await store.listRuns({ pageSize: 2 });
    expect(first.runs.map((entry) => entry.runId)).toEqual(newestFirst.slice(0, 2));
    await store.createRun({ method: 'srlm' }, { runId: 'newer' });
    const second = await store.listRuns({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.runs.map((entry) => entry.runId)).toEqual(newestFirst.slice(2, 4));
    const third = await store.listRuns({ pageSize: 2, pageToken: second.nextPageToken });
    expect(third).toEqual({ runs: [expect.objectContaining({ runId: newestFirst[4] })], nextPageToken: '' });
    expect((await store.listRuns()).runs).toHaveLength(6);
    await expect(store.listRuns({ pageSize: 1001 })).rejects.toMatchObject({ field: 'page_size', limit: 1000 });
    await expect(store.listRuns({ pageToken: 'garbage' })).rejects.toMatchObject({ field: 'page_token' });
  });
});

describe('stages', () => {
  it('writes a stage with data, files and JSONL, and reads it back verified', async () => {
    expect(await run.stageDone('iter-1/sample')).toBe(false);
    const completions = Array.from({ length: 10_000 }, (_, index) => ({ id: `p${index}`, text: `answer ${index}`, logProb: -(index + 1) / 3 }));
    const manifest = await run.writeStage(
      'iter-1/sample',
      { completions: completions.length, seed: 7 },
      { jsonl: { 'completions.jsonl': completions }, files: { 'notes/readme.txt': 'hello', 'raw.bin': new Uint8Array([1, 2, 3]) } },
    );
    expect(manifest).toMatchObject({ stage: 'iter-1/sample', runId: run.runId, records: { 'completions.jsonl': 10_000 } });
    expect(manifest.files.map((file) => file.path)).toEqual(['completions.jsonl', 'data.json', 'notes/readme.txt', 'raw.bin']);
    expect(manifest.files.find((file) => file.path === 'raw.bin')).toEqual({ path: 'raw.bin', bytes: 3, sha256: sha256Hex(new Uint8Array([1, 2, 3])) });
    expect(await run.stageDone('iter-1/sample')).toBe(true);
    expect(await readdir(join(run.directory, 'stages'))).toEqual(['iter-1+sample']);

    const stored = await run.readStage<{ completions: number; seed: number }>('iter-1/sample');
    expect(stored.data).toEqual({ completions: 10_000, seed: 7 });
    const readBack: unknown[] = [];
    for await (const record of stored.readJsonl('completions.jsonl')) readBack.push(record);
    expect(readBack).toEqual(completions);
    expect(await readFile(stored.file('notes/readme.txt'), 'utf8')).toBe('hello');
    expect(() => stored.file('other.txt')).toThrow(expect.objectContaining({ field: 'path' }));
    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
  });

  it('streams a stage through a writer and keeps it absent until commit', async () => {
    const writer = await run.beginStage('eval/m1');
    const jsonl = await writer.openJsonl('items.jsonl');
    for (let index = 0; index < 2000; index++) await jsonl.write({ index, correct: index % 3 === 0 });
    expect(await run.stageDone('eval/m1')).toBe(false);
    await expect(run.readStage('eval/m1')).rejects.toBeInstanceOf(StageNotFoundError);
    await writeFile(join(writer.directory, 'written-directly.txt'), 'by the caller');
    const manifest = await writer.commit({ accuracy: 0.34 });
    expect(manifest.records).toEqual({ 'items.jsonl': 2000 });
    expect(manifest.files.map((file) => file.path)).toContain('written-directly.txt');
    expect((await run.readStage('eval/m1')).data).toEqual({ accuracy: 0.34 });
    await expect(writer.commit()).rejects.toThrow(/already committed/);

    const aborted = await run.beginStage('eval/m2');
    await (await aborted.openJsonl('items.jsonl')).write({ index: 0 });
    await aborted.abort();
    expect(await run.stageDone('eval/m2')).toBe(false);
    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
  });

  it('never stores a stage twice: a second writer loses and the first is untouched', async () => {
    await run.writeStage('sft', { loss: 1.5 });
    await expect(run.writeStage('sft', { loss: 9 })).rejects.toBeInstanceOf(StageExistsError);
    const first = await run.beginStage('train');
    const second = await run.beginStage('train');
    await first.commit({ winner: 'first' });
    await expect(second.commit({ winner: 'second' })).rejects.toBeInstanceOf(StageExistsError);
    expect((await run.readStage('train')).data).toEqual({ winner: 'first' });
    expect((await run.readStage('sft')).data).toEqual({ loss: 1.5 });
    expect((await run.listStages()).map((stage) => stage.stage)).toEqual(['sft', 'train']);
    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
  });

  it('refuses NaN in data or records instead of storing null', async () => {
    await expect(run.writeStage('consistency', { perPrompt: [{ tau: 0.5 }, { tau: Number.NaN }] })).rejects.toMatchObject({
      field: 'data.perPrompt[1].tau',
      limit: 'finite number',
    });
    await expect(run.writeStage('consistency', {}, { jsonl: { 'taus.jsonl': [{ tau: 1 }, { tau: Infinity }] } })).rejects.toMatchObject({
      field: 'taus.jsonl[1].tau',
    });
    expect(await run.stageDone('consistency')).toBe(false);
    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
  });

  it('detects a changed, missing or extra file on read, naming it', async () => {
    await run.writeStage('score', { n: 2 }, { jsonl: { 'scores.jsonl': [{ score: 1 }, { score: 2 }] } });
    const directory = join(run.directory, 'stages', 'score');
    const scores = join(directory, 'scores.jsonl');
    const original = await readFile(scores);
    const changed = Buffer.from(original);
    changed[changed.indexOf('1')] = '7'.charCodeAt(0);
    await writeFile(scores, changed);
    const error = await run.readStage('score').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StageCorruptError);
    expect(error).toMatchObject({ stage: 'score', file: 'scores.jsonl', problem: 'modified', actual: sha256Hex(changed) });
    expect((await run.readStage('score', { verify: false })).data).toEqual({ n: 2 });

    await writeFile(scores, original);
    await writeFile(join(directory, 'stray.txt'), 'x');
    await expect(run.readStage('score')).rejects.toMatchObject({ file: 'stray.txt', problem: 'extra' });
    await rm(join(directory, 'stray.txt'));
    await rm(join(directory, 'data.json'));
    await expect(run.readStage('score')).rejects.toMatchObject({ file: 'data.json', problem: 'missing' });
    await writeFile(join(directory, 'cream-stage.json'), '{ torn');
    await expect(run.readStage('score')).rejects.toMatchObject({ name: 'StageCorruptError', file: 'cream-stage.json', problem: 'unreadable' });
    await rm(join(directory, 'cream-stage.json'));
    await expect(run.readStage('score')).rejects.toMatchObject({ file: 'cream-stage.json', problem: 'missing' });
  });
});

describe('events', () => {
  it('appends events and reads them from a cursor', async () => {
    await run.appendEvent('stage_started', { stage: 'sft' });
    await run.appendEvent('progress', { done: 1, total: 10 });
    const all = await run.readEvents();
    expect(all.events.map((event) => [event.index, event.type])).toEqual([
      [0, 'stage_started'],
      [1, 'progress'],
    ]);
    expect(all.events[1].payload).toEqual({ done: 1, total: 10 });
    expect(Date.parse(all.events[0].time)).not.toBeNaN();
    await run.appendEvent('stage_finished', { stage: 'sft' });
    const next = await run.readEvents(all.cursor);
    expect(next.events.map((event) => [event.index, event.type])).toEqual([[2, 'stage_finished']]);
    expect((await run.readEvents(next.cursor)).events).toEqual([]);
  });

  it('skips a line torn by a crash, and a new writer does not glue its event to it', async () => {
    await run.appendEvent('stage_started', { stage: 'sample' });
    await appendFile(join(run.directory, 'events.jsonl'), '{"time":"2025-01-01T00:00:00.000Z","type":"prog');
    const reader = await store.openRun(run.runId);
    const partial = await reader.readEvents();
    expect(partial.events).toHaveLength(1);
    const resumed = await store.openRun(run.runId);
    await resumed.appendEvent('stage_started', { stage: 'sample', attempt: 2 });
    const after = await reader.readEvents(partial.cursor);
    expect(after.events.map((event) => [event.index, event.type, event.payload])).toEqual([[2, 'stage_started', { stage: 'sample', attempt: 2 }]]);
    expect((await resumed.readEvents()).events.map((event) => event.index)).toEqual([0, 2]);
  });
});
