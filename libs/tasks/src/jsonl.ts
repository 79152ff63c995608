// Reading users' data files: the file's text, its JSONL records with their
// 1-based line numbers, and field checks that throw DataFormatError naming the
// file, the line and the field path of the first bad value. The loaders check
// every record before they return, so a bad file is refused before any work.
import { readFile } from 'node:fs/promises';
import { DataFileError, DataFormatError } from './errors';

/** Most UTF-8 bytes in an id (proto Prompt.id). */
export const MAX_ID_BYTES = 256;

/** One non-blank line of a data file. */
export interface DataLine {
  /** 1-based line number. */
  line: number;
  /** The line's text, without its line break. */
  text: string;
}

/** Where a value sits: the file and line, for error messages. */
export interface Location {
  file: string;
  line: number;
}

/** The text of a data file, UTF-8, without a byte-order mark. */
export async function readDataFile(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/^\uFEFF/, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : 'cannot be read';
    throw new DataFileError(`${path}: ${why}`, path, { cause: error });
  }
}

/** The non-blank lines of a text, numbered from 1. */
export function dataLines(text: string): DataLine[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\r|\n/)
    .map((lineText, index) => ({ line: index + 1, text: lineText }))
    .filter(({ text: lineText }) => lineText.trim() !== '');
}

/** Every record of a JSONL text with its line number; throws on the first line that is not a JSON object. */
export function jsonlRecords(text: string, file: string): { line: number; record: Record<string, unknown> }[] {
  const lines = dataLines(text);
  if (lines.length === 0) throw new DataFormatError('the file has no records', file, 0, '');
  return lines.map(({ line, text: lineText }) => {
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (error) {
      throw new DataFormatError(`not valid JSON (${(error as Error).message})`, file, line, '', { cause: error });
    }
    return { line, record: expectObject(value, { file, line }, '') };
  });
}

/** The value as an object, or a DataFormatError at `field`. */
export function expectObject(value: unknown, at: Location, field: string, hint = ''): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataFormatError(`expected an object, got ${describe(value)}${hint}`, at.file, at.line, field);
  }
  return value as Record<string, unknown>;
}

/** The value as an array, or a DataFormatError at `field`. */
export function expectArray(value: unknown, at: Location, field: string): unknown[] {
  if (!Array.isArray(value)) throw new DataFormatError(`expected an array, got ${describe(value)}`, at.file, at.line, field);
  return value;
}

/** The value as a string (non-empty after trimming unless allowEmpty), or a DataFormatError at `field`. */
export function expectString(value: unknown, at: Location, field: string, options: { allowEmpty?: boolean; hint?: string } = {}): string {
  if (typeof value !== 'string') {
    throw new DataFormatError(`expected a string, got ${describe(value)}${options.hint ?? ''}`, at.file, at.line, field);
  }
  if (options.allowEmpty !== true && value.trim() === '') throw new DataFormatError('expected a non-empty string', at.file, at.line, field);
  return value;
}

/** The value as an id: a non-empty string of at most MAX_ID_BYTES UTF-8 bytes, not taken yet. */
export function expectId(value: unknown, at: Location, field: string, taken: Map<string, number>): string {
  const id = expectString(value, at, field);
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) {
    throw new DataFormatError(`the id is longer than ${MAX_ID_BYTES} bytes`, at.file, at.line, field);
  }
  const first = taken.get(id);
  if (first !== undefined) throw new DataFormatError(`duplicate id "${id}" (first on line ${first})`, at.file, at.line, field);
  taken.set(id, at.line);
  return id;
}

/** A short description of a JSON value's type, for messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value === undefined) return 'nothing (the field is missing)';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
