// Names that become directory names: version names, run ids, stage names and
// the relative paths of files inside a version or a stage. Each is checked
// before it touches the filesystem, so no name can escape its folder, clash
// with the store's own dot-folders or mean something else on another
// platform. Errors name the field and the rule.
import { randomBytes } from 'node:crypto';
import { InvalidInputError } from './errors';

/** Longest version name or run id, in bytes. */
export const NAME_MAX_BYTES = 128;
/** Longest stage name (segments joined by `/`), in bytes; it stays one directory name on disk. */
export const STAGE_NAME_MAX_BYTES = 200;
/** Longest relative file path inside a version or a stage, in bytes. */
export const FILE_PATH_MAX_BYTES = 1024;
/** Longest single segment of a file path: the common filesystem limit. */
const SEGMENT_MAX_BYTES = 255;
/** The characters a version name, run id or stage segment may hold. */
export const NAME_CHARACTERS = '[A-Za-z0-9._-]';
const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
/** The alias that resolves to the most recently published version; never a version name. */
export const LATEST = 'latest';

/**
 * Checks a version name or run id: 1 to 128 bytes of [A-Za-z0-9._-], not
 * starting with `.` (the store keeps its own `.tmp` folders beside them, and
 * `.`/`..` would escape), and for versions not the alias `latest`.
 */
export function checkName(value: unknown, field: string, kind: 'version' | 'run'): string {
  if (typeof value !== 'string') throw new InvalidInputError(`${field} must be a string, got ${typeof value}`, field, NAME_CHARACTERS);
  checkSegment(value, field, NAME_MAX_BYTES);
  if (kind === 'version' && value.toLowerCase() === LATEST) {
    throw new InvalidInputError(`${field} "${value}" is reserved: "${LATEST}" always means the most recently published version`, field, `not "${LATEST}"`);
  }
  return value;
}

/**
 * Checks a stage name: segments of [A-Za-z0-9._-] joined by `/` (e.g.
 * `iter-2/sample`), 1 to 200 bytes. Returns the directory name it is stored
 * under: `/` becomes `+`, a character no segment holds, so the mapping is
 * one to one and every stage is one flat directory.
 */
export function stageDirectoryName(stage: unknown, field = 'stage'): string {
  if (typeof stage !== 'string') throw new InvalidInputError(`${field} must be a string, got ${typeof stage}`, field, NAME_CHARACTERS);
  const bytes = Buffer.byteLength(stage);
  if (bytes > STAGE_NAME_MAX_BYTES) {
    throw new InvalidInputError(`${field} is ${bytes} bytes; at most ${STAGE_NAME_MAX_BYTES}`, field, STAGE_NAME_MAX_BYTES);
  }
  for (const segment of stage.split('/')) checkSegment(segment, field, STAGE_NAME_MAX_BYTES, stage);
  return stage.split('/').join('+');
}

/** The stage name stored under a directory name made by stageDirectoryName. */
export function stageNameOf(directoryName: string): string {
  return directoryName.split('+').join('/');
}

/**
 * Checks the relative path of a file inside a version or a stage: `/`
 * separated, no empty, `.` or `..` segment, no backslash or NUL, at most 1024
 * bytes (255 per segment). Returns it unchanged.
 */
export function checkFilePath(path: unknown, field: string): string {
  if (typeof path !== 'string') throw new InvalidInputError(`${field} must be a string, got ${typeof path}`, field, 'relative path');
  const bytes = Buffer.byteLength(path);
  if (bytes === 0 || bytes > FILE_PATH_MAX_BYTES) {
    throw new InvalidInputError(`${field} is ${bytes} bytes; a file path is 1 to ${FILE_PATH_MAX_BYTES} bytes`, field, FILE_PATH_MAX_BYTES);
  }
  if (path.includes('\\') || path.includes('\0')) {
    throw new InvalidInputError(`${field} "${path}" holds a backslash or NUL; use "/" between folders`, field, 'relative path with "/"');
  }
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidInputError(`${field} "${path}" is not a plain relative path (empty, "." or ".." segment)`, field, 'relative path inside the folder');
    }
    if (Buffer.byteLength(segment) > SEGMENT_MAX_BYTES) {
      throw new InvalidInputError(`${field} "${path}" has a segment over ${SEGMENT_MAX_BYTES} bytes`, field, SEGMENT_MAX_BYTES);
    }
  }
  return path;
}

/** A fresh sortable name: `<prefix>-YYYYMMDD-hhmmss-<6 hex>` in UTC. */
export function generateName(prefix: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${prefix}-${stamp}-${randomBytes(3).toString('hex')}`;
}

function checkSegment(segment: string, field: string, maxBytes: number, whole = segment): void {
  const bytes = Buffer.byteLength(segment);
  if (bytes === 0) throw new InvalidInputError(`${field} "${whole}" is empty or has an empty segment; at least 1 byte`, field, 1);
  if (bytes > maxBytes) throw new InvalidInputError(`${field} is ${bytes} bytes; at most ${maxBytes}`, field, maxBytes);
  if (!NAME_PATTERN.test(segment)) {
    const at = [...segment].findIndex((character) => !NAME_PATTERN.test(character));
    throw new InvalidInputError(`${field} "${whole}" has a character outside ${NAME_CHARACTERS} at index ${at}`, field, NAME_CHARACTERS);
  }
  if (segment.startsWith('.')) throw new InvalidInputError(`${field} "${whole}" starts with "."`, field, 'not starting with "."');
}
