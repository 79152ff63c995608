// Writing one stage of a run: its files go to a temp directory of the run (a
// large JSONL payload streams there line by line), then commit() writes
// data.json and the stage manifest with the sha256 of every file, fsyncs, and
// renames the directory into stages/ in one step. Until that rename the stage
// does not exist; after it the stage is complete. A second commit of the same
// stage (another process, a resumed run) loses with StageExistsError.
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidInputError, StageExistsError, StoreError } from './errors';
import { commitDirectory, describeTree, isCode, syncDirectory, writeNewFile, type FileEntry } from './files';
import { toJsonText } from './json';
import { checkFilePath } from './names';

/** The stage manifest's file name inside a stage directory. */
export const STAGE_MANIFEST_FILE = 'cream-stage.json';
/** The stage's JSON result inside a stage directory. */
export const STAGE_DATA_FILE = 'data.json';
/** Names a stage's own files may not take. */
export const RESERVED_STAGE_FILES: ReadonlySet<string> = new Set([STAGE_MANIFEST_FILE, STAGE_DATA_FILE]);
const MANIFEST_ONLY = new Set([STAGE_MANIFEST_FILE]);
/** A JSONL writer hands its buffer to the file once it holds this much. */
const JSONL_FLUSH_BYTES = 256 * 1024;

/** cream-stage.json: what a stored stage holds, file by file. */
export interface StageManifest {
  /** The stage name, e.g. `iter-2/sample`. */
  stage: string;
  /** The run it belongs to. */
  runId: string;
  /** When it was committed (ISO 8601, UTC). */
  createdAt: string;
  /** Every file of the stage (data.json included, the manifest excluded), sorted by path. */
  files: FileEntry[];
  /** Lines of each JSONL file written through openJsonl. */
  records: Record<string, number>;
}

/** Where a stage writer commits to. */
export interface StageTarget {
  runId: string;
  stage: string;
  /** The committed stage directory. */
  directory: string;
  /** The directory holding every stage (fsynced after the rename). */
  stagesDirectory: string;
}

/** Streams records to one JSONL file of a stage: one JSON value per line. */
export class JsonlWriter {
  /** Records written so far. */
  records = 0;
  private buffer: string[] = [];
  private bufferedBytes = 0;
  private pending: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    /** The file's path inside the stage. */
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly onClose: (writer: JsonlWriter) => void,
  ) {}

  /** Appends one record (JSON without NaN or Infinity); resolves once it is buffered or written. */
  async write(record: unknown): Promise<void> {
    if (this.closed) throw new StoreError(`JSONL file ${this.path} is closed`);
    const line = `${toJsonText(record, `${this.path}[${this.records}]`)}\n`;
    this.buffer.push(line);
    this.bufferedBytes += line.length;
    this.records++;
    if (this.bufferedBytes >= JSONL_FLUSH_BYTES) await this.flush();
  }

  /** Appends every record of an iterable, in order. */
  async writeAll(records: Iterable<unknown> | AsyncIterable<unknown>): Promise<void> {
    for await (const record of records) await this.write(record);
  }

  /** Writes what is buffered and closes the file (commit() closes writers left open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
    } finally {
      await this.handle.close();
      this.onClose(this);
    }
  }

  private flush(): Promise<unknown> {
    if (this.buffer.length > 0) {
      const chunk = this.buffer.join('');
      this.buffer = [];
      this.bufferedBytes = 0;
      this.pending = this.pending.then(() => this.handle.write(chunk));
    }
    return this.pending;
  }
}

/** Builds one stage aside and commits it atomically. */
export class StageWriter {
  private readonly openWriters = new Set<JsonlWriter>();
  private readonly records: Record<string, number> = {};
  private finished = false;

  constructor(
    private readonly target: StageTarget,
    /** The temp directory the stage is built in; a caller may also write files here directly. */
    readonly directory: string,
  ) {}

  /** The stage name. */
  get stage(): string {
    return this.target.stage;
  }

  /** Writes one file of the stage (a new path; `/` makes subdirectories). */
  async writeFile(path: string, content: string | Uint8Array): Promise<void> {
    await writeNewFile(await this.prepare(path), content).catch((error: unknown) => {
      throw isCode(error, 'EEXIST') ? new InvalidInputError(`stage file ${path} is written twice`, 'path', 'each file once') : error;
    });
  }

  /** Opens a JSONL file of the stage for streaming records into it. */
  async openJsonl(path: string): Promise<JsonlWriter> {
    const handle = await open(await this.prepare(path), 'wx').catch((error: unknown) => {
      throw isCode(error, 'EEXIST') ? new InvalidInputError(`stage file ${path} is written twice`, 'path', 'each file once') : error;
    });
    const writer = new JsonlWriter(path, handle, (closed) => {
      this.openWriters.delete(closed);
      this.records[closed.path] = closed.records;
    });
    this.openWriters.add(writer);
    return writer;
  }

  /**
   * Commits the stage with `data` (JSON, stored as data.json): closes open
   * JSONL files, checksums and fsyncs every file, writes the manifest, renames
   * the directory into place. Throws StageExistsError if the stage was stored
   * meanwhile (its stored files are untouched).
   */
  async commit(data: unknown = null): Promise<StageManifest> {
    this.assertOpen();
    this.finished = true;
    try {
      const dataText = toJsonText(data, 'data');
      for (const writer of [...this.openWriters]) await writer.close();
      await writeNewFile(join(this.directory, STAGE_DATA_FILE), dataText);
      const { files, others } = await describeTree(this.directory, MANIFEST_ONLY);
      if (others.length > 0) throw new InvalidInputError(`stage file ${others[0]} is not a regular file`, 'path', 'regular files');
      const manifest: StageManifest = { stage: this.target.stage, runId: this.target.runId, createdAt: new Date().toISOString(), files, records: this.records };
      await writeNewFile(join(this.directory, STAGE_MANIFEST_FILE), `${toJsonText(manifest, 'manifest', 2)}\n`);
      await syncDirectory(this.directory);
      if (!(await commitDirectory(this.directory, this.target.directory, this.target.stagesDirectory))) {
        throw new StageExistsError(this.target.runId, this.target.stage);
      }
      return manifest;
    } catch (error) {
      await this.discard();
      throw error;
    }
  }

  /** Drops everything written; the stage stays absent. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.discard();
  }

  private async discard(): Promise<void> {
    for (const writer of [...this.openWriters]) await writer.close().catch(() => undefined);
    await rm(this.directory, { recursive: true, force: true });
  }

  private async prepare(path: string): Promise<string> {
    this.assertOpen();
    checkFilePath(path, 'path');
    if (RESERVED_STAGE_FILES.has(path)) throw new InvalidInputError(`${path} is the run store's own file in a stage`, 'path', `not ${[...RESERVED_STAGE_FILES].join(' or ')}`);
    const absolute = join(this.directory, path);
    await mkdir(dirname(absolute), { recursive: true });
    return absolute;
  }

  private assertOpen(): void {
    if (this.finished) throw new StoreError(`the writer of stage "${this.target.stage}" is already committed or aborted`);
  }
}
