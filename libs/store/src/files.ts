// Durable file operations shared by the registry and the run store. The one
// commit protocol of both: build a directory aside (a temp directory on the
// same filesystem), fsync every file and directory in it, rename it into place
// in one step, fsync the parent. rename(2) of a directory onto a non-empty one
// fails, so the first committer wins and nothing is ever overwritten; after a
// SIGKILL (or a power cut) at any instant the target is either absent or
// complete. Temp directories are named after their host, process and a
// per-process token so that a later process can tell which are abandoned.
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MismatchProblem } from './errors';

/** One file of a version or a stage, as its manifest records it. */
export interface FileEntry {
  /** Relative path, `/` separated. */
  path: string;
  /** Size in bytes. */
  bytes: number;
  /** sha256 of the content, lowercase hex. */
  sha256: string;
}

/** The first difference between a directory and its manifest. */
export interface TreeMismatch {
  file: string;
  problem: MismatchProblem;
  expected: string;
  actual: string;
}

/** What a directory holds, as relative `/` paths, sorted. */
interface TreeListing {
  files: string[];
  directories: string[];
  /** Symbolic links, sockets, devices: never part of a stored tree. */
  others: string[];
}

const READ_CHUNK_BYTES = 1 << 20;
/** Separates host, pid and token in a temp name; no hostname holds it. */
const TEMP_SEPARATOR = '~';
/** Distinguishes this process from an earlier one with the same pid (pid 1 in a restarted container). */
const PROCESS_TOKEN = randomBytes(4).toString('hex');
const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';

/** sha256 of bytes, lowercase hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Size and sha256 of a file, read in 1 MiB chunks; with `sync` the file is also fsynced. */
export async function hashFile(path: string, sync = false): Promise<{ bytes: number; sha256: string }> {
  const handle = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    if (sync) await handle.sync();
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory so that the names created or renamed in it survive a power cut. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some platforms and filesystems refuse fsync on a directory; the rename is still atomic there.
    if (!isCode(error, 'EINVAL', 'EISDIR', 'EPERM', 'EBADF')) throw error;
  } finally {
    await handle.close();
  }
}

/** Creates a file that must not exist yet, writes `data` in one call and fsyncs it. */
export async function writeNewFile(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` atomically: `data` goes to a temp file in `tempRoot` (same filesystem), then rename. */
export async function replaceFile(path: string, data: string | Uint8Array, tempRoot: string, parent: string): Promise<void> {
  await mkdir(tempRoot, { recursive: true });
  const temp = join(tempRoot, tempName('file'));
  try {
    await writeNewFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(parent);
}

/** Every file, directory and other entry under `root`, depth first, sorted by relative path. */
async function listTree(root: string): Promise<TreeListing> {
  const listing: TreeListing = { files: [], directories: [], others: [] };
  async function walk(relative: string): Promise<void> {
    const entries = await readdir(relative === '' ? root : join(root, relative), { withFileTypes: true });
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        listing.directories.push(path);
        await walk(path);
      } else if (entry.isFile()) listing.files.push(path);
      else listing.others.push(path);
    }
  }
  await walk('');
  for (const list of [listing.files, listing.directories, listing.others]) list.sort(compareText);
  return listing;
}

/**
 * Hashes every regular file under `root` except the top-level names in
 * `exclude`, and fsyncs each file and directory (so a following rename
 * commits durable content). Returns the entries sorted by path and the paths
 * that are not regular files (the caller refuses them).
 */
export async function describeTree(root: string, exclude: ReadonlySet<string>): Promise<{ files: FileEntry[]; others: string[] }> {
  const listing = await listTree(root);
  const files: FileEntry[] = [];
  for (const path of listing.files) {
    if (exclude.has(path)) continue;
    files.push({ path, ...(await hashFile(join(root, path), true)) });
  }
  for (const directory of listing.directories) await syncDirectory(join(root, directory));
  await syncDirectory(root);
  return { files, others: listing.others.filter((path) => !exclude.has(path)) };
}

/**
 * The first way `root` differs from `expected` (top-level names in `exclude`
 * aside), or undefined when every file is there with its size and sha256 and
 * nothing else is. Cheap checks (missing, extra, size) come before hashing.
 */
export async function compareTree(root: string, expected: readonly FileEntry[], exclude: ReadonlySet<string>): Promise<TreeMismatch | undefined> {
  const listing = await listTree(root);
  const present = new Set(listing.files.filter((path) => !exclude.has(path)));
  const expectedPaths = new Set(expected.map((entry) => entry.path));
  for (const entry of expected) {
    if (!present.has(entry.path)) {
      const other = listing.others.includes(entry.path);
      return { file: entry.path, problem: other ? 'not-a-file' : 'missing', expected: entry.sha256, actual: other ? 'not a regular file' : 'absent' };
    }
  }
  for (const path of listing.others) if (!exclude.has(path)) return { file: path, problem: 'not-a-file', expected: 'absent', actual: 'not a regular file' };
  for (const path of present) {
    if (!expectedPaths.has(path)) return { file: path, problem: 'extra', expected: 'absent', actual: (await hashFile(join(root, path))).sha256 };
  }
  for (const entry of expected) {
    const { size } = await stat(join(root, entry.path));
    if (size !== entry.bytes) return { file: entry.path, problem: 'size', expected: `${entry.bytes} bytes`, actual: `${size} bytes` };
  }
  for (const entry of expected) {
    const { sha256 } = await hashFile(join(root, entry.path));
    if (sha256 !== entry.sha256) return { file: entry.path, problem: 'modified', expected: entry.sha256, actual: sha256 };
  }
  return undefined;
}

/**
 * Renames the finished directory `temp` to `target` and fsyncs `target`'s
 * parent. Returns false, leaving `temp` in place, when `target` already
 * exists: the caller lost and reports it.
 */
export async function commitDirectory(temp: string, target: string, targetParent: string): Promise<boolean> {
  try {
    await rename(temp, target);
  } catch (error) {
    if (isCode(error, 'ENOTEMPTY', 'EEXIST', 'ENOTDIR', 'EISDIR')) return false;
    throw error;
  }
  await syncDirectory(targetParent);
  return true;
}

/** A temp name of this process: `<kind>~<host>~<pid>~<token>~<random>`. */
export function tempName(kind: string): string {
  return [kind, HOST, process.pid, PROCESS_TOKEN, randomBytes(6).toString('hex')].join(TEMP_SEPARATOR);
}

/** Creates a fresh temp directory of this process under `tempRoot`. */
export async function makeTempDirectory(tempRoot: string, kind: string): Promise<string> {
  await mkdir(tempRoot, { recursive: true });
  const path = join(tempRoot, tempName(kind));
  await mkdir(path);
  return path;
}

/**
 * Removes the temp entries under `tempRoot` that nobody will finish: those of
 * a dead process on this host, of an earlier process that had this pid, and
 * any older than `maxAgeMs` (a process on another host that died). Best effort:
 * another process may be cleaning at the same time.
 */
export async function removeAbandonedTemps(tempRoot: string, maxAgeMs: number): Promise<number> {
  let names: string[];
  try {
    names = await readdir(tempRoot);
  } catch (error) {
    if (isCode(error, 'ENOENT')) return 0;
    throw error;
  }
  let removed = 0;
  for (const name of names) {
    const path = join(tempRoot, name);
    if (!(await isAbandoned(name, path, maxAgeMs))) continue;
    await rm(path, { recursive: true, force: true }).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}

async function isAbandoned(name: string, path: string, maxAgeMs: number): Promise<boolean> {
  const [, host, pidText, token] = name.split(TEMP_SEPARATOR);
  const pid = Number(pidText);
  if (host === HOST && Number.isInteger(pid) && pid > 0) {
    if (pid === process.pid) return token !== PROCESS_TOKEN;
    if (!isProcessAlive(pid)) return true;
  }
  try {
    return Date.now() - (await lstat(path)).mtimeMs > maxAgeMs;
  } catch {
    return false;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isCode(error, 'ESRCH');
  }
}

/** True when `error` is a Node system error with one of `codes`. */
export function isCode(error: unknown, ...codes: string[]): boolean {
  return typeof error === 'object' && error !== null && codes.includes((error as { code?: unknown }).code as string);
}

/** Does a path exist (following symbolic links)? */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isCode(error, 'ENOENT', 'ENOTDIR')) return false;
    throw error;
  }
}

/** Orders names and paths by their UTF-16 code units, the same on every platform (no locale). */
export function compareText(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
