// The run store: one folder per run, where the coordinator persists every
// stage's output before the next stage starts, so that a run killed at any
// point (even SIGKILL) resumes and never recomputes a finished stage.
//
//   <root>/runs/<runId>/run.json            spec, state, createdAt (replaced atomically)
//   <root>/runs/<runId>/events.jsonl        append-only, one event per line (WatchRun)
//   <root>/runs/<runId>/stages/<stage>/     committed stages ("/" in a stage name is "+")
//       cream-stage.json                    manifest: sha256 of every file
//       data.json                           the stage's JSON result
//       ...                                 its other files (JSONL payloads)
//   <root>/runs/<runId>/.tmp/               stages being written
//   <root>/runs/.tmp/                       runs being created
//
// A stage is built in .tmp and renamed into stages/ in one step (see
// stage-writer.ts), so it is either absent or complete with its manifest;
// checksums are verified when it is read back.
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidInputError, RunCorruptError, RunExistsError, RunNotFoundError, StageCorruptError, StageExistsError, StageNotFoundError } from './errors';
import {
  commitDirectory,
  compareText,
  compareTree,
  describeTree,
  exists,
  isCode,
  makeTempDirectory,
  removeAbandonedTemps,
  replaceFile,
  writeNewFile,
} from './files';
import { toJsonText } from './json';
import { checkName, generateName, stageDirectoryName, stageNameOf } from './names';
import { STAGE_DATA_FILE, STAGE_MANIFEST_FILE, StageWriter, type StageManifest } from './stage-writer';

const RUN_FILE = 'run.json';
const EVENTS_FILE = 'events.jsonl';
const STAGES_DIRECTORY = 'stages';
const TEMP_DIRECTORY = '.tmp';
const DEFAULT_ABANDONED_AFTER_MS = 24 * 60 * 60 * 1000;
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const MAX_STATE_BYTES = 64;

/** run.json: what a run is and where it stands. */
export interface RunRecord<Spec = unknown> {
  /** Its id. */
  runId: string;
  /** The spec it was started with (JSON), never changed. */
  spec: Spec;
  /** Its state, as the coordinator names it (e.g. "RUNNING", "INTERRUPTED"). */
  state: string;
  /** When it was created (ISO 8601, UTC). */
  createdAt: string;
  /** When run.json last changed. */
  updatedAt: string;
  /** The error that failed it, or null. */
  error: string | null;
}

/** One line of events.jsonl. */
export interface RunEvent<Payload = unknown> {
  /** 0-based line number in events.jsonl: stable, so a watcher can say where it stopped. */
  index: number;
  /** When it was appended (ISO 8601, UTC). */
  time: string;
  /** What happened, e.g. "stage_started". */
  type: string;
  /** Its details (JSON). */
  payload: Payload;
}

/** Where a reader of events.jsonl stopped; pass it back to read only what came after. */
export interface EventCursor {
  /** Byte offset of the first unread line. */
  offset: number;
  /** Index of the first unread line. */
  index: number;
}

/** A stage read back from the store (verified unless asked otherwise). */
export interface StoredStage<Data = unknown> {
  /** The stage name. */
  stage: string;
  /** Its manifest. */
  manifest: StageManifest;
  /** The JSON result given to writeStage or commit. */
  data: Data;
  /** Its directory. */
  directory: string;
  /** Absolute path of one of its files. */
  file(path: string): string;
  /** The records of one of its JSONL files, parsed, in order. */
  readJsonl<Item = unknown>(path: string): AsyncGenerator<Item>;
}

/** Extra content of writeStage besides its JSON data. */
export interface StageContent {
  /** Files by relative path. */
  files?: Record<string, string | Uint8Array>;
  /** JSONL files by relative path: their records, streamed to disk. */
  jsonl?: Record<string, Iterable<unknown> | AsyncIterable<unknown>>;
}

/** A page of listRuns. */
export interface RunPage<Spec = unknown> {
  /** Runs, newest first. */
  runs: RunRecord<Spec>[];
  /** Token of the next page; empty on the last. */
  nextPageToken: string;
}

/** Options of RunStore.open. */
export interface RunStoreOptions {
  /** Temp directories older than this (ms) are removed even if their owner cannot be checked (default 24 h). */
  abandonedAfterMs?: number;
}

/** The run store rooted at one folder (runs live in `<root>/runs`). */
export class RunStore {
  /** `<root>/runs`. */
  readonly runsDirectory: string;
  private readonly tempRoot: string;

  private constructor(
    /** The store folder, absolute. */
    readonly root: string,
    private readonly abandonedAfterMs: number,
  ) {
    this.runsDirectory = join(root, 'runs');
    this.tempRoot = join(this.runsDirectory, TEMP_DIRECTORY);
  }

  /** Opens (creating if needed) the run store at `root` and removes run folders that were never finished. */
  static async open(root: string, options: RunStoreOptions = {}): Promise<RunStore> {
    const store = new RunStore(resolvePath(root), options.abandonedAfterMs ?? DEFAULT_ABANDONED_AFTER_MS);
    await mkdir(store.tempRoot, { recursive: true });
    await removeAbandonedTemps(store.tempRoot, store.abandonedAfterMs);
    return store;
  }

  /**
   * Creates a run (atomically: its folder appears complete or not at all).
   * `runId` defaults to `run-YYYYMMDD-hhmmss-xxxxxx`; RunExistsError if taken.
   */
  async createRun<Spec>(spec: Spec, options: { runId?: string; state?: string } = {}): Promise<RunHandle<Spec>> {
    const runId = options.runId === undefined ? generateName('run') : checkName(options.runId, 'runId', 'run');
    const now = new Date().toISOString();
    const record: RunRecord<Spec> = { runId, spec, state: checkState(options.state ?? 'CREATED'), createdAt: now, updatedAt: now, error: null };
    const text = `${toJsonText(record, 'spec', 2)}\n`;
    const temp = await makeTempDirectory(this.tempRoot, 'run');
    try {
      await writeNewFile(join(temp, RUN_FILE), text);
      await writeNewFile(join(temp, EVENTS_FILE), '');
      await mkdir(join(temp, STAGES_DIRECTORY));
      await describeTree(temp, new Set());
      if (!(await commitDirectory(temp, join(this.runsDirectory, runId), this.runsDirectory))) throw new RunExistsError(runId);
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
    return new RunHandle<Spec>(runId, join(this.runsDirectory, runId));
  }

  /** Opens an existing run (RunNotFoundError otherwise) and removes its abandoned stage temp directories. */
  async openRun<Spec = unknown>(runId: string): Promise<RunHandle<Spec>> {
    checkName(runId, 'runId', 'run');
    const run = new RunHandle<Spec>(runId, join(this.runsDirectory, runId));
    await run.info();
    await removeAbandonedTemps(join(run.directory, TEMP_DIRECTORY), this.abandonedAfterMs);
    return run;
  }

  /**
   * Runs newest first (by createdAt, then id), `pageSize` (1 to 1000, default
   * 100) at a time. The token is a position, not an offset, so runs created
   * between two pages do not shift them. Runs whose run.json is unreadable are
   * left out (openRun reports them).
   */
  async listRuns<Spec = unknown>(options: { pageSize?: number; pageToken?: string } = {}): Promise<RunPage<Spec>> {
    const pageSize = options.pageSize === undefined || options.pageSize === 0 ? DEFAULT_PAGE_SIZE : options.pageSize;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new InvalidInputError(`page_size is ${pageSize}; 1 to ${MAX_PAGE_SIZE}, or 0 for ${DEFAULT_PAGE_SIZE}`, 'page_size', MAX_PAGE_SIZE);
    }
    const after = options.pageToken ? decodePageToken(options.pageToken) : undefined;
    const runs: RunRecord<Spec>[] = [];
    for (const name of await readdir(this.runsDirectory)) {
      if (name.startsWith('.')) continue;
      try {
        runs.push(await readRunRecord<Spec>(name, join(this.runsDirectory, name)));
      } catch (error) {
        if (!(error instanceof RunCorruptError || error instanceof RunNotFoundError)) throw error;
      }
    }
    const newestFirst = (left: { createdAt: string; runId: string }, right: { createdAt: string; runId: string }) =>
      compareText(right.createdAt, left.createdAt) || compareText(right.runId, left.runId);
    runs.sort(newestFirst);
    const start = after === undefined ? 0 : runs.findIndex((run) => newestFirst(after, run) < 0);
    const page = start < 0 ? [] : runs.slice(start, start + pageSize);
    const last = page[page.length - 1];
    const more = start >= 0 && start + pageSize < runs.length;
    return { runs: page, nextPageToken: more && last ? encodePageToken(last) : '' };
  }
}

/** One run: its record, its stages and its events. */
export class RunHandle<Spec = unknown> {
  private readonly stagesDirectory: string;
  private readonly tempRoot: string;
  private eventsRepaired = false;

  constructor(
    /** The run id. */
    readonly runId: string,
    /** The run folder. */
    readonly directory: string,
  ) {
    this.stagesDirectory = join(directory, STAGES_DIRECTORY);
    this.tempRoot = join(directory, TEMP_DIRECTORY);
  }

  /** run.json as it is now. */
  async info(): Promise<RunRecord<Spec>> {
    return readRunRecord<Spec>(this.runId, this.directory);
  }

  /** Sets the run's state (and error, null to clear it); run.json is replaced atomically. */
  async updateRunState(state: string, fields: { error?: string | null } = {}): Promise<RunRecord<Spec>> {
    const record = await this.info();
    const updated: RunRecord<Spec> = { ...record, state: checkState(state), updatedAt: new Date().toISOString(), error: fields.error === undefined ? record.error : fields.error };
    await replaceFile(join(this.directory, RUN_FILE), `${toJsonText(updated, 'run', 2)}\n`, this.tempRoot, this.directory);
    return updated;
  }

  /** Is this stage stored (committed, with its manifest)? Cheap: no checksum is computed. */
  async stageDone(stage: string): Promise<boolean> {
    return exists(join(this.stageDirectory(stage), STAGE_MANIFEST_FILE));
  }

  /** Starts writing a stage; StageExistsError at once if it is already stored. */
  async beginStage(stage: string): Promise<StageWriter> {
    const directory = this.stageDirectory(stage);
    if (await this.stageDone(stage)) throw new StageExistsError(this.runId, stage);
    const temp = await makeTempDirectory(this.tempRoot, 'stage');
    return new StageWriter({ runId: this.runId, stage, directory, stagesDirectory: this.stagesDirectory }, temp);
  }

  /** Writes a whole stage in one call: `data` as JSON plus optional files and streamed JSONL files. */
  async writeStage(stage: string, data: unknown, content: StageContent = {}): Promise<StageManifest> {
    const writer = await this.beginStage(stage);
    try {
      for (const [path, bytes] of Object.entries(content.files ?? {})) await writer.writeFile(path, bytes);
      for (const [path, records] of Object.entries(content.jsonl ?? {})) {
        const jsonl = await writer.openJsonl(path);
        await jsonl.writeAll(records);
        await jsonl.close();
      }
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer.commit(data);
  }

  /**
   * Reads a stored stage; by default every file's sha256 is checked first and
   * a difference throws StageCorruptError naming the file. StageNotFoundError
   * if the stage is not stored.
   */
  async readStage<Data = unknown>(stage: string, options: { verify?: boolean } = {}): Promise<StoredStage<Data>> {
    const directory = this.stageDirectory(stage);
    const manifest = await this.readStageManifest(stage, directory);
    if (options.verify ?? true) {
      const mismatch = await compareTree(directory, manifest.files, new Set([STAGE_MANIFEST_FILE]));
      if (mismatch !== undefined) throw new StageCorruptError(this.runId, stage, mismatch.file, mismatch.problem, mismatch.expected, mismatch.actual);
    }
    const dataText = await readFile(join(directory, STAGE_DATA_FILE), 'utf8').catch((error: unknown) => {
      throw isCode(error, 'ENOENT') ? new StageCorruptError(this.runId, stage, STAGE_DATA_FILE, 'missing', 'a data file', 'absent', { cause: error }) : error;
    });
    const data = parseJson(dataText, () => this.corrupt(stage, STAGE_DATA_FILE)) as Data;
    const files = new Set(manifest.files.map((file) => file.path));
    const fileOf = (path: string): string => {
      if (!files.has(path)) throw new InvalidInputError(`stage "${stage}" has no file ${path}`, 'path', 'a file of the stage manifest');
      return join(directory, path);
    };
    const corrupt = (path: string) => this.corrupt(stage, path);
    return {
      stage,
      manifest,
      data,
      directory,
      file: fileOf,
      readJsonl: <Item>(path: string) => readJsonlFile<Item>(fileOf(path), () => corrupt(path)),
    };
  }

  /** The manifests of every stored stage, in the order they were committed. */
  async listStages(): Promise<StageManifest[]> {
    const manifests: StageManifest[] = [];
    for (const name of await readdir(this.stagesDirectory)) {
      if (name.startsWith('.')) continue;
      manifests.push(await this.readStageManifest(stageNameOf(name), join(this.stagesDirectory, name)));
    }
    return manifests.sort((left, right) => compareText(left.createdAt, right.createdAt) || compareText(left.stage, right.stage));
  }

  /**
   * Appends one event to events.jsonl in a single write, fsynced unless
   * `sync` is false (frequent progress events, where losing the last few to a
   * power cut is fine). A line torn by a crash is terminated before the first
   * append of this handle, so it cannot swallow the next event (readers skip it).
   */
  async appendEvent(type: string, payload: unknown = null, options: { sync?: boolean } = {}): Promise<void> {
    if (typeof type !== 'string' || type.length === 0) throw new InvalidInputError('event type must be a non-empty string', 'type', 1);
    const line = `${toJsonText({ time: new Date().toISOString(), type, payload }, 'payload')}\n`;
    const handle = await open(join(this.directory, EVENTS_FILE), 'a+');
    try {
      if (!this.eventsRepaired) {
        const { size } = await handle.stat();
        const last = Buffer.alloc(1);
        if (size > 0 && (await handle.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a) await handle.write('\n');
        this.eventsRepaired = true;
      }
      await handle.write(line);
      if (options.sync ?? true) await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /**
   * The events after `cursor` (all from the start without one) and the cursor
   * to pass next time. Only newline-terminated lines are read (a line being
   * appended is left for the next call); a line that is not a JSON event (torn
   * by a crash) is skipped but keeps its index.
   */
  async readEvents<Payload = unknown>(cursor: EventCursor = { offset: 0, index: 0 }): Promise<{ events: RunEvent<Payload>[]; cursor: EventCursor }> {
    const handle = await open(join(this.directory, EVENTS_FILE), 'r');
    let bytes: Buffer;
    try {
      const { size } = await handle.stat();
      bytes = Buffer.alloc(Math.max(0, size - cursor.offset));
      if (bytes.length > 0) await handle.read(bytes, 0, bytes.length, cursor.offset);
    } finally {
      await handle.close();
    }
    const events: RunEvent<Payload>[] = [];
    let offset = 0;
    let index = cursor.index;
    for (let end = bytes.indexOf(0x0a); end >= 0; end = bytes.indexOf(0x0a, offset)) {
      const event = parseEvent<Payload>(bytes.subarray(offset, end).toString('utf8'), index);
      if (event !== undefined) events.push(event);
      index++;
      offset = end + 1;
    }
    return { events, cursor: { offset: cursor.offset + offset, index } };
  }

  private stageDirectory(stage: string): string {
    return join(this.stagesDirectory, stageDirectoryName(stage));
  }

  private async readStageManifest(stage: string, directory: string): Promise<StageManifest> {
    let text: string;
    try {
      text = await readFile(join(directory, STAGE_MANIFEST_FILE), 'utf8');
    } catch (error) {
      if (!isCode(error, 'ENOENT', 'ENOTDIR')) throw error;
      if (await exists(directory)) throw new StageCorruptError(this.runId, stage, STAGE_MANIFEST_FILE, 'missing', 'a manifest', 'absent', { cause: error });
      if (!(await exists(this.directory))) throw new RunNotFoundError(this.runId, { cause: error });
      throw new StageNotFoundError(this.runId, stage, { cause: error });
    }
    const manifest = parseJson(text, () => this.corrupt(stage, STAGE_MANIFEST_FILE)) as Partial<StageManifest> | null;
    if (manifest?.stage !== stage || !Array.isArray(manifest.files)) throw this.corrupt(stage, STAGE_MANIFEST_FILE);
    return manifest as StageManifest;
  }

  private corrupt(stage: string, file: string): StageCorruptError {
    return new StageCorruptError(this.runId, stage, file, 'unreadable', 'JSON', 'not JSON');
  }
}

async function readRunRecord<Spec>(runId: string, directory: string): Promise<RunRecord<Spec>> {
  let text: string;
  try {
    text = await readFile(join(directory, RUN_FILE), 'utf8');
  } catch (error) {
    if (isCode(error, 'ENOENT', 'ENOTDIR')) throw new RunNotFoundError(runId, { cause: error });
    throw error;
  }
  const record = parseJson(text, (cause) => new RunCorruptError(runId, RUN_FILE, { cause })) as Partial<RunRecord<Spec>> | null;
  if (record?.runId !== runId || typeof record.createdAt !== 'string' || typeof record.state !== 'string') {
    throw new RunCorruptError(runId, RUN_FILE, { cause: new Error('run.json is not a run record of this run') });
  }
  return record as RunRecord<Spec>;
}

async function* readJsonlFile<Item>(path: string, corrupt: () => Error): AsyncGenerator<Item> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.length > 0) yield parseJson(line, corrupt) as Item;
  }
}

function parseEvent<Payload>(line: string, index: number): RunEvent<Payload> | undefined {
  try {
    const value = JSON.parse(line) as { time?: unknown; type?: unknown; payload?: Payload };
    if (typeof value?.time !== 'string' || typeof value.type !== 'string') return undefined;
    return { index, time: value.time, type: value.type, payload: value.payload as Payload };
  } catch {
    return undefined;
  }
}

function parseJson(text: string, corrupt: (cause: unknown) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw corrupt(error);
  }
}

function checkState(state: string): string {
  if (typeof state !== 'string' || state.length === 0 || Buffer.byteLength(state) > MAX_STATE_BYTES) {
    throw new InvalidInputError(`state must be a string of 1 to ${MAX_STATE_BYTES} bytes`, 'state', MAX_STATE_BYTES);
  }
  return state;
}

function encodePageToken(run: { createdAt: string; runId: string }): string {
  return Buffer.from(JSON.stringify([run.createdAt, run.runId])).toString('base64url');
}

function decodePageToken(token: string): { createdAt: string; runId: string } {
  try {
    const [createdAt, runId] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown[];
    if (typeof createdAt === 'string' && typeof runId === 'string') return { createdAt, runId };
  } catch {
    // fall through to the error below
  }
  throw new InvalidInputError('page_token is not a token from a previous page', 'page_token', 'a next_page_token');
}
