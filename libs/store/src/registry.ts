// The model registry: a folder of immutable model versions, each a Hugging
// Face directory (config.json, model.safetensors, tokenizer.json, ... whatever
// the publisher gives) plus cream-manifest.json with the sha256 of every file,
// the parent version and the recipe that made it. Several processes, on
// several machines sharing a volume, may publish and read at once:
//
//   <root>/versions/<version>/    committed versions, never modified
//   <root>/.sequence/<n>          one claim per publish; orders `latest`
//   <root>/.tmp/                  versions being written, and removals
//
// A publish writes aside in .tmp, fsyncs, checksums, claims the next sequence
// number and renames its directory into versions/ in one step: the rename is
// the commit, so a reader never sees half a version and of two publishes of
// one name exactly one wins. The registry does not parse weights; a version
// whose files differ from its manifest is refused by verify() and open().
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { InvalidInputError, ManifestMismatchError, VersionExistsError, VersionNotFoundError } from './errors';
import {
  commitDirectory,
  compareText,
  compareTree,
  describeTree,
  exists,
  isCode,
  makeTempDirectory,
  removeAbandonedTemps,
  sha256Hex,
  syncDirectory,
  tempName,
  writeNewFile,
  type FileEntry,
} from './files';
import { toJsonText } from './json';
import { LATEST, checkFilePath, checkName, generateName } from './names';

/** The manifest's file name inside every version directory (reserved: a publisher's file may not use it). */
export const MANIFEST_FILE = 'cream-manifest.json';
/** Temp directories older than this are taken as abandoned by a process on another machine. */
const DEFAULT_ABANDONED_AFTER_MS = 24 * 60 * 60 * 1000;
const MANIFEST_ONLY = new Set([MANIFEST_FILE]);
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
/** Claim file names are zero-padded so that they sort as numbers. */
const SEQUENCE_DIGITS = 12;

/** How a version was made: stored as given, so the version can be traced and reproduced. */
export interface Recipe {
  /** What made it: "sft", "cream", "srlm", "srlm-dpo", "oracle", "import", "pretrain", ... */
  method: string;
  /** sha256 (hex) of the training data, null when there is none (an import). */
  dataSha256: string | null;
  /** The training hyperparameters. */
  hyperparameters: Record<string, unknown>;
  /** Results of the job (final loss, reward accuracy, ...). */
  metrics: Record<string, unknown>;
  /** Anything else: run id, iteration, seed, source. */
  [key: string]: unknown;
}

/** A recipe as the publisher gives it: missing dataSha256 means null, missing maps mean {}. */
export type RecipeInput = Partial<Recipe> & { method: string };

/** cream-manifest.json: what a version is, file by file. */
export interface ModelManifest {
  /** The version name (equal to its directory's name). */
  version: string;
  /** Publish order across the whole registry; `latest` is the highest. */
  sequence: number;
  /** When it was published (ISO 8601, UTC). */
  createdAt: string;
  /** The version it was trained from, null for an import or a base model. */
  parent: string | null;
  /** Every file of the version except the manifest, sorted by path. */
  files: FileEntry[];
  /** How it was made. */
  recipe: Recipe;
}

/** A version as the registry hands it out. */
export interface VersionRecord {
  /** Its name. */
  version: string;
  /** Absolute path of its directory (a Hugging Face directory plus the manifest). */
  path: string;
  /** Its manifest. */
  manifest: ModelManifest;
  /** sha256 (hex) of the manifest file's bytes: ModelInfo.manifest_sha256, identifies the exact weights. */
  manifestSha256: string;
}

/** What to publish. Give exactly one of `fromDirectory` and `write`. */
export interface PublishOptions {
  /** The name, 1 to 128 bytes of [A-Za-z0-9._-], not "latest"; generated (`v-YYYYMMDD-hhmmss-xxxxxx`) when absent. */
  version?: string;
  /** The version it was trained from (must be in the registry), or null. */
  parent?: string | null;
  /** How it was made. */
  recipe: RecipeInput;
  /** Copy the files of this directory (symbolic links to files are copied as files). */
  fromDirectory?: string;
  /** Or write the files into `directory` (a fresh temp directory inside the registry): no copy of large weights. */
  write?: (directory: string) => Promise<void> | void;
}

/** Options of importDirectory. */
export interface ImportOptions {
  /** The name; generated when absent. */
  version?: string;
  /** How it was made; defaults to `{ method: "import", source: <absolute source path> }`. */
  recipe?: RecipeInput;
  /** The version it derives from, if any. */
  parent?: string | null;
}

/** Options of open. */
export interface OpenVersionOptions {
  /** Recompute every checksum before handing the path out (default true). */
  verify?: boolean;
  /** Refuse the version unless its manifest has this sha256 (a version pinned by a caller). */
  manifestSha256?: string;
}

/** Options of ModelRegistry.open. */
export interface RegistryOptions {
  /** Temp directories older than this (ms) are removed at open even if their owner cannot be checked (default 24 h). */
  abandonedAfterMs?: number;
}

/** The model registry rooted at one folder. */
export class ModelRegistry {
  /** The versions directory: `<root>/versions`. */
  readonly versionsDirectory: string;
  private readonly tempRoot: string;
  private readonly sequenceDirectory: string;

  private constructor(
    /** The registry folder, absolute. */
    readonly root: string,
  ) {
    this.versionsDirectory = join(root, 'versions');
    this.tempRoot = join(root, '.tmp');
    this.sequenceDirectory = join(root, '.sequence');
  }

  /** Opens (creating if needed) the registry at `root` and removes temp directories of dead publishers. */
  static async open(root: string, options: RegistryOptions = {}): Promise<ModelRegistry> {
    const registry = new ModelRegistry(resolvePath(root));
    for (const directory of [registry.versionsDirectory, registry.tempRoot, registry.sequenceDirectory]) await mkdir(directory, { recursive: true });
    await removeAbandonedTemps(registry.tempRoot, options.abandonedAfterMs ?? DEFAULT_ABANDONED_AFTER_MS);
    return registry;
  }

  /**
   * Publishes a new immutable version. Throws VersionExistsError when the name
   * is taken (also when another process wins a concurrent publish of it),
   * VersionNotFoundError when the parent is unknown, InvalidInputError for a
   * bad name, recipe or file.
   */
  async publish(options: PublishOptions): Promise<VersionRecord> {
    const version = options.version === undefined ? generateName('v') : checkName(options.version, 'version', 'version');
    const recipe = normalizeRecipe(options.recipe);
    toJsonText(recipe, 'recipe');
    const parent = options.parent ?? null;
    if (parent !== null) {
      checkName(parent, 'parent', 'version');
      if (!(await this.has(parent))) throw new VersionNotFoundError(parent, 'parent');
    }
    if ((options.fromDirectory === undefined) === (options.write === undefined)) {
      throw new InvalidInputError('give exactly one of fromDirectory and write', 'fromDirectory', 'exactly one source');
    }
    if (await this.has(version)) throw new VersionExistsError(version);

    const temp = await makeTempDirectory(this.tempRoot, 'publish');
    try {
      if (options.fromDirectory !== undefined) await copyDirectory(options.fromDirectory, temp, 'fromDirectory');
      else await options.write!(temp);
      if (await exists(join(temp, MANIFEST_FILE))) {
        throw new InvalidInputError(`${MANIFEST_FILE} is the registry's own file; a version may not bring one`, 'files', `not ${MANIFEST_FILE}`);
      }
      const { files, others } = await describeTree(temp, MANIFEST_ONLY);
      if (others.length > 0) throw new InvalidInputError(`${others[0]} is not a regular file (a link or device)`, 'files', 'regular files');
      if (files.length === 0) throw new InvalidInputError('a version needs at least one file', 'files', 1);
      files.forEach((file, index) => checkFilePath(file.path, `files[${index}]`));
      // Read-only, so that a stray write fails loudly; verify() still catches what chmod cannot stop.
      for (const file of files) await chmod(join(temp, file.path), 0o444);

      const manifest: ModelManifest = { version, sequence: await this.claimSequence(version), createdAt: new Date().toISOString(), parent, files, recipe };
      const text = `${toJsonText(manifest, 'manifest', 2)}\n`;
      await writeNewFile(join(temp, MANIFEST_FILE), text);
      await syncDirectory(temp);
      const target = join(this.versionsDirectory, version);
      if (!(await commitDirectory(temp, target, this.versionsDirectory))) throw new VersionExistsError(version);
      return { version, path: target, manifest, manifestSha256: sha256Hex(text) };
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
  }

  /** Imports a user's Hugging Face directory (it must hold config.json) as a new version. */
  async importDirectory(sourceDirectory: string, options: ImportOptions = {}): Promise<VersionRecord> {
    const source = resolvePath(sourceDirectory);
    if (!(await isFile(join(source, 'config.json')))) {
      throw new InvalidInputError(`${source} is not a Hugging Face model directory: it has no config.json`, 'sourceDirectory', 'a directory with config.json');
    }
    return this.publish({
      version: options.version,
      parent: options.parent ?? null,
      recipe: options.recipe ?? { method: 'import', source },
      fromDirectory: source,
    });
  }

  /** The version name that `nameOrLatest` means now; VersionNotFoundError when there is none. */
  async resolve(nameOrLatest: string): Promise<string> {
    if (nameOrLatest === LATEST) {
      const versions = await this.list();
      if (versions.length === 0) throw new VersionNotFoundError(LATEST);
      return versions[versions.length - 1].version;
    }
    const version = checkName(nameOrLatest, 'version', 'version');
    if (!(await exists(join(this.versionsDirectory, version)))) throw new VersionNotFoundError(version);
    return version;
  }

  /** Is there a committed version of this name? */
  async has(version: string): Promise<boolean> {
    return exists(join(this.versionsDirectory, checkName(version, 'version', 'version'), MANIFEST_FILE));
  }

  /** Every version with a readable manifest, oldest first (publish order; the last is `latest`). Files are not verified. */
  async list(): Promise<VersionRecord[]> {
    const records: VersionRecord[] = [];
    for (const name of await readdir(this.versionsDirectory)) {
      if (name.startsWith('.')) continue;
      try {
        records.push(await this.read(name));
      } catch (error) {
        // A version whose manifest cannot be read has no place in the order; get() and open() report it.
        if (!(error instanceof ManifestMismatchError || error instanceof VersionNotFoundError)) throw error;
      }
    }
    return records.sort((left, right) => left.manifest.sequence - right.manifest.sequence || compareText(left.version, right.version));
  }

  /** The manifest of a version (or of `latest`), files not verified. */
  async get(nameOrLatest: string): Promise<ModelManifest> {
    return (await this.read(await this.resolve(nameOrLatest))).manifest;
  }

  /** sha256 (hex) of a version's manifest file: ModelInfo.manifest_sha256. */
  async manifestSha256(nameOrLatest: string): Promise<string> {
    return (await this.read(await this.resolve(nameOrLatest))).manifestSha256;
  }

  /**
   * Recomputes every file's size and sha256 against the manifest; throws
   * ManifestMismatchError naming the first file that differs, is missing, or
   * is extra. Returns the version when all match.
   */
  async verify(nameOrLatest: string): Promise<VersionRecord> {
    return this.open(nameOrLatest, { verify: true });
  }

  /**
   * The version's directory, for loading: verified first (unless `verify` is
   * false) so that a tampered version is never served.
   */
  async open(nameOrLatest: string, options: OpenVersionOptions = {}): Promise<VersionRecord> {
    const record = await this.read(await this.resolve(nameOrLatest));
    if (options.manifestSha256 !== undefined && options.manifestSha256 !== record.manifestSha256) {
      throw new ManifestMismatchError(record.version, MANIFEST_FILE, 'manifest-sha256', options.manifestSha256, record.manifestSha256);
    }
    if (options.verify ?? true) {
      const mismatch = await compareTree(record.path, record.manifest.files, MANIFEST_ONLY);
      if (mismatch !== undefined) throw new ManifestMismatchError(record.version, mismatch.file, mismatch.problem, mismatch.expected, mismatch.actual);
    }
    return record;
  }

  /**
   * Deletes a version, named explicitly (never through `latest`). It leaves
   * versions/ in one rename, then its files are deleted; versions that name it
   * as parent keep the name.
   */
  async remove(version: string): Promise<void> {
    checkName(version, 'version', 'version');
    const doomed = join(this.tempRoot, tempName('remove'));
    try {
      await rename(join(this.versionsDirectory, version), doomed);
    } catch (error) {
      if (isCode(error, 'ENOENT')) throw new VersionNotFoundError(version);
      throw error;
    }
    await syncDirectory(this.versionsDirectory);
    await rm(doomed, { recursive: true, force: true });
  }

  /** Reads and checks the manifest of a committed version. */
  private async read(version: string): Promise<VersionRecord> {
    const path = join(this.versionsDirectory, version);
    let bytes: Buffer;
    try {
      bytes = await readFile(join(path, MANIFEST_FILE));
    } catch (error) {
      if (!isCode(error, 'ENOENT', 'ENOTDIR')) throw error;
      if (await exists(path)) throw new ManifestMismatchError(version, MANIFEST_FILE, 'missing', 'a manifest', 'absent', { cause: error });
      throw new VersionNotFoundError(version, 'version', { cause: error });
    }
    const manifest = parseManifest(bytes, version);
    if (manifest.version !== version) throw new ManifestMismatchError(version, MANIFEST_FILE, 'wrong-version', version, manifest.version);
    return { version, path, manifest, manifestSha256: sha256Hex(bytes) };
  }

  /**
   * Claims the next sequence number by creating its file exclusively (O_EXCL
   * is atomic on local filesystems and NFS v3+): concurrent publishers get
   * distinct numbers. A claim whose publish then loses stays burnt.
   */
  private async claimSequence(version: string): Promise<number> {
    for (;;) {
      const claimed = (await readdir(this.sequenceDirectory)).map(Number).filter(Number.isInteger);
      const next = claimed.reduce((highest, value) => Math.max(highest, value), 0) + 1;
      try {
        await writeNewFile(join(this.sequenceDirectory, String(next).padStart(SEQUENCE_DIGITS, '0')), `${version}\n`);
      } catch (error) {
        if (isCode(error, 'EEXIST')) continue;
        throw error;
      }
      await syncDirectory(this.sequenceDirectory);
      return next;
    }
  }
}

function parseManifest(bytes: Buffer, version: string): ModelManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ManifestMismatchError(version, MANIFEST_FILE, 'unreadable', 'JSON', 'not JSON', { cause: error });
  }
  const manifest = value as Partial<ModelManifest> | null;
  const wellFormed =
    typeof manifest === 'object' &&
    manifest !== null &&
    typeof manifest.version === 'string' &&
    typeof manifest.sequence === 'number' &&
    Array.isArray(manifest.files) &&
    manifest.files.every((file) => typeof file?.path === 'string' && typeof file.bytes === 'number' && typeof file.sha256 === 'string') &&
    typeof manifest.recipe === 'object';
  if (!wellFormed) throw new ManifestMismatchError(version, MANIFEST_FILE, 'unreadable', 'a cream manifest', 'another JSON shape');
  return manifest as ModelManifest;
}

function normalizeRecipe(input: RecipeInput): Recipe {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidInputError('recipe must be an object', 'recipe', 'object');
  const { method, dataSha256 = null, hyperparameters = {}, metrics = {} } = input;
  if (typeof method !== 'string' || method.length === 0 || Buffer.byteLength(method) > 128) {
    throw new InvalidInputError('recipe.method must be a string of 1 to 128 bytes', 'recipe.method', 128);
  }
  if (dataSha256 !== null && (typeof dataSha256 !== 'string' || !SHA256_PATTERN.test(dataSha256))) {
    throw new InvalidInputError('recipe.dataSha256 must be 64 lowercase hex digits or null', 'recipe.dataSha256', '64 hex digits');
  }
  for (const [field, value] of [
    ['recipe.hyperparameters', hyperparameters],
    ['recipe.metrics', metrics],
  ] as const) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidInputError(`${field} must be an object`, field, 'object');
  }
  return { ...input, method, dataSha256, hyperparameters, metrics };
}

/**
 * Copies a directory tree into `target` (which exists). Symbolic links to
 * files are copied as files (a Hugging Face cache snapshot is links into
 * blobs/); links to directories and special files are refused.
 */
async function copyDirectory(source: string, target: string, field: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(source, { withFileTypes: true });
  } catch (error) {
    throw new InvalidInputError(`${source} cannot be read as a directory: ${(error as Error).message}`, field, 'a readable directory', { cause: error });
  }
  for (const entry of entries) {
    const from = join(source, entry.name);
    const to = join(target, entry.name);
    if (entry.isDirectory()) {
      await mkdir(to);
      await copyDirectory(from, to, field);
    } else if (entry.isFile() || (entry.isSymbolicLink() && (await isFile(from)))) {
      await copyFile(from, to);
    } else {
      throw new InvalidInputError(`${from} is neither a file nor a directory (or a link to a directory)`, field, 'files and directories');
    }
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
