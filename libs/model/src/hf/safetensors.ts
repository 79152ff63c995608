// The safetensors format (huggingface/safetensors README, "Format"): an 8-byte
// little-endian header length N, N bytes of JSON header mapping each tensor name
// to {dtype, shape, data_offsets} (offsets relative to the byte buffer after the
// header, plus an optional string map `__metadata__`), then the byte buffer.
// We read F32, F16 and BF16 into Float32Array and write F32; and the sharded
// layout of transformers (`model.safetensors.index.json` with a `weight_map`).
// Validation follows the reference reader: the header must fit in the file and
// under 100 MB, every tensor's range must hold exactly shape × dtype-size bytes,
// and the ranges must tile the byte buffer with no overlap, hole or tail.
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { CheckpointError, SafetensorsError, UnsupportedDtypeError } from './errors';
import { writeFileSynced } from './files';

/** A tensor in host memory: its shape and its fp32 values, row-major. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Tensors by name, in a meaningful order (the order they are written in). */
export type TensorMap = Map<string, HostTensor>;

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  /** The tensor's name (the header key). */
  name: string;
  /** The dtype as written, e.g. `BF16`. */
  dtype: string;
  /** The shape; `[]` is a scalar. */
  shape: number[];
  /** [begin, end) relative to the byte buffer, as in the header. */
  dataOffsets: [number, number];
  /** The file the tensor lives in. */
  file: string;
  /** Absolute byte position of the tensor's first byte in `file`. */
  fileOffset: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** The file it was read from (`<buffer>` for in-memory bytes). */
  file: string;
  /** The `__metadata__` string map (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors in byte-buffer order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  /** Absolute position of the byte buffer (8 + header length). */
  dataStart: number;
}

/** The reference reader's cap on the header length (MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

/** File name of an unsharded checkpoint's weights. */
export const SAFETENSORS_WEIGHTS_FILE = 'model.safetensors';

/** File name of a sharded checkpoint's index. */
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/** transformers refuses safetensors weights whose metadata lacks a known `format`; `pt` is what save_pretrained writes. */
export const DEFAULT_SAFETENSORS_METADATA: Readonly<Record<string, string>> = Object.freeze({ format: 'pt' });

/** Bits per element of each dtype the format defines; anything else is not safetensors. */
const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  F64: 64,
  I64: 64,
  U64: 64,
  C64: 64,
};

/** The dtypes read into fp32. */
export const READABLE_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Largest single fs read; Node caps one read below 2 GiB. */
const MAX_READ_BYTES = 1 << 30;

// ---------------------------------------------------------------------------
// Half-precision decoding

/**
 * IEEE 754 binary16 bits to the number they encode, exactly (every binary16
 * value is a binary32 value): subnormals as frac · 2^-24, ±0, ±Infinity, NaN.
 */
export function decodeFloat16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits (the upper half of a binary32) to the number they encode, exactly. */
export function decodeBFloat16(bits: number): number {
  const word = new Uint32Array([(bits & 0xffff) << 16]);
  return new Float32Array(word.buffer)[0];
}

/** binary16 bits to binary32 bits, preserving sign, subnormals and NaN payloads (as hardware converts). */
function float16BitsToFloat32Bits(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  let exponent = (bits >> 10) & 0x1f;
  let fraction = bits & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (fraction << 13)) >>> 0;
  if (exponent === 0) {
    if (fraction === 0) return sign >>> 0;
    // Subnormal: shift the fraction up until its leading 1 becomes the implicit bit.
    exponent = 1;
    while ((fraction & 0x400) === 0) {
      fraction <<= 1;
      exponent -= 1;
    }
    fraction &= 0x3ff;
  }
  return (sign | ((exponent - 15 + 127) << 23) | (fraction << 13)) >>> 0;
}

let float16Table: Uint32Array | undefined;

/** All 65536 binary16 patterns as binary32 bit patterns, built on first use (256 KiB). */
function float16ToFloat32Table(): Uint32Array {
  if (float16Table === undefined) {
    float16Table = new Uint32Array(65536);
    for (let bits = 0; bits < 65536; bits++) float16Table[bits] = float16BitsToFloat32Bits(bits);
  }
  return float16Table;
}

/** binary16 values to fp32, by bit pattern (no rounding is involved: the conversion is exact). */
export function float16ArrayToFloat32(source: Uint16Array): Float32Array {
  const table = float16ToFloat32Table();
  const out = new Float32Array(source.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < source.length; i++) outBits[i] = table[source[i]];
  return out;
}

/** bfloat16 values to fp32: each is the upper 16 bits of its binary32. */
export function bfloat16ArrayToFloat32(source: Uint16Array): Float32Array {
  const out = new Float32Array(source.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < source.length; i++) outBits[i] = source[i] << 16;
  return out;
}

// ---------------------------------------------------------------------------
// Header parsing and validation

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Reads the 8-byte length prefix and checks the header fits in the file and under the cap. */
function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) {
    throw new SafetensorsError(
      `${file} is ${fileSize} bytes, shorter than the 8-byte header length: the file is truncated`,
      'truncated',
      file,
    );
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${file} declares a ${length}-byte header, over the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file, or corrupt`,
      'header-overflow',
      file,
    );
  }
  const n = Number(length);
  if (8 + n > fileSize) {
    throw new SafetensorsError(
      `${file} declares a ${n}-byte header but only ${fileSize - 8} bytes follow the length prefix: the file is truncated or not safetensors`,
      'header-overflow',
      file,
    );
  }
  return n;
}

/**
 * Parses and validates a header's JSON bytes against the size of the byte
 * buffer that follows it. Throws SafetensorsError or UnsupportedDtypeError.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file: string,
): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (cause) {
    throw new SafetensorsError(`${file}: the header is not valid UTF-8`, 'bad-header', file, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(
      `${file}: the header is not valid JSON (${(cause as Error).message})`,
      'bad-header',
      file,
      { cause },
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(`${file}: the header is not a JSON object`, 'bad-header', file);
  }

  const metadata: Record<string, string> = {};
  const entries: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new SafetensorsError(`${file}: __metadata__ is not an object`, 'bad-header', file);
      }
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') {
          throw new SafetensorsError(`${file}: __metadata__.${key} is not a string`, 'bad-header', file);
        }
        metadata[key] = item;
      }
      continue;
    }
    entries.push(parseEntry(name, value, dataStart, file));
  }

  // Every range must hold exactly what its shape and dtype need.
  for (const entry of entries) {
    const bits = DTYPE_BITS[entry.dtype];
    const expected = Math.ceil((elementCount(entry.shape) * bits) / 8);
    const got = entry.dataOffsets[1] - entry.dataOffsets[0];
    if (got !== expected) {
      throw new SafetensorsError(
        `${file}: tensor ${entry.name} (${entry.dtype}, shape [${entry.shape.join(', ')}]) needs ${expected} bytes but its data_offsets span ${got}`,
        'size-mismatch',
        file,
        { tensor: entry.name },
      );
    }
  }

  // A range past the end of the file means the file was cut short.
  for (const entry of entries) {
    if (entry.dataOffsets[1] > dataLength) {
      throw new SafetensorsError(
        `${file}: tensor ${entry.name} needs bytes [${entry.dataOffsets[0]}, ${entry.dataOffsets[1]}) of the data but the file holds only ${dataLength} data bytes: the file is truncated`,
        'truncated',
        file,
        { tensor: entry.name },
      );
    }
  }

  // The ranges must tile [0, dataLength): sorted, no overlap, no hole, no tail.
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expectedBegin = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const entry of entries) {
    const [begin, end] = entry.dataOffsets;
    if (begin < expectedBegin) {
      throw new SafetensorsError(
        `${file}: tensor ${entry.name} [${begin}, ${end}) overlaps tensor ${previous?.name} [${previous?.dataOffsets[0]}, ${previous?.dataOffsets[1]})`,
        'bad-offsets',
        file,
        { tensor: entry.name },
      );
    }
    if (begin > expectedBegin) {
      throw new SafetensorsError(
        `${file}: bytes [${expectedBegin}, ${begin}) of the data belong to no tensor (before tensor ${entry.name})`,
        'bad-offsets',
        file,
        { tensor: entry.name },
      );
    }
    expectedBegin = end;
    previous = entry;
  }
  if (expectedBegin !== dataLength) {
    throw new SafetensorsError(
      `${file}: the last ${dataLength - expectedBegin} bytes of the data belong to no tensor`,
      'bad-offsets',
      file,
    );
  }

  return { file, metadata, tensors: new Map(entries.map((entry) => [entry.name, entry])), dataStart };
}

function parseEntry(name: string, value: unknown, dataStart: number, file: string): SafetensorsTensorInfo {
  const bad = (what: string): SafetensorsError =>
    new SafetensorsError(`${file}: tensor ${name} ${what}`, 'bad-header', file, { tensor: name });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('is not an object');
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw bad('has no string dtype');
  if (!Object.hasOwn(DTYPE_BITS, dtype)) {
    throw new UnsupportedDtypeError(
      `${file}: tensor ${name} has dtype ${JSON.stringify(dtype)}, which the safetensors format does not define`,
      dtype,
      file,
      name,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) throw bad('has a shape that is not a list of non-negative integers');
  if (!Number.isSafeInteger(elementCount(shape))) throw bad(`has a shape [${shape.join(', ')}] too large to address`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    throw bad('has data_offsets that are not two non-negative integers');
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw bad(`has data_offsets [${begin}, ${end}) that end before they begin`);
  return {
    name,
    dtype,
    shape: [...shape],
    dataOffsets: [begin, end],
    file,
    fileOffset: dataStart + begin,
  };
}

// ---------------------------------------------------------------------------
// Reading

async function readFully(handle: FileHandle, target: Uint8Array, position: number, info: SafetensorsTensorInfo): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, MAX_READ_BYTES);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        `${info.file}: the file ended while reading tensor ${info.name}: it is truncated (or changed while being read)`,
        'truncated',
        info.file,
        { tensor: info.name },
      );
    }
    done += bytesRead;
  }
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/** Throws UnsupportedDtypeError unless the tensor can be read into fp32. */
export function assertReadableDtype(info: SafetensorsTensorInfo): void {
  if (!READABLE_DTYPES.includes(info.dtype)) {
    throw new UnsupportedDtypeError(
      `${info.file}: tensor ${info.name} is stored as ${info.dtype}; only ${READABLE_DTYPES.join(', ')} can be read`,
      info.dtype,
      info.file,
      info.name,
    );
  }
}

/** Decodes one tensor's raw little-endian bytes (a private copy, may be modified) into fp32. */
function decodeTensorBytes(info: SafetensorsTensorInfo, bytes: Uint8Array): Float32Array {
  const count = elementCount(info.shape);
  if (info.dtype === 'F32') {
    if (!HOST_IS_LITTLE_ENDIAN) swapBytes(bytes, 4);
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }
  if (!HOST_IS_LITTLE_ENDIAN) swapBytes(bytes, 2);
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  return info.dtype === 'F16' ? float16ArrayToFloat32(halves) : bfloat16ArrayToFloat32(halves);
}

async function readTensor(handle: FileHandle, info: SafetensorsTensorInfo): Promise<HostTensor> {
  assertReadableDtype(info);
  const count = elementCount(info.shape);
  if (info.dtype === 'F32') {
    // Read straight into the result's memory: no second copy of the tensor.
    const data = new Float32Array(count);
    const bytes = new Uint8Array(data.buffer);
    await readFully(handle, bytes, info.fileOffset, info);
    if (!HOST_IS_LITTLE_ENDIAN) swapBytes(bytes, 4);
    return { shape: [...info.shape], data };
  }
  const bytes = new Uint8Array(count * 2);
  await readFully(handle, bytes, info.fileOffset, info);
  return { shape: [...info.shape], data: decodeTensorBytes(info, bytes) };
}

/** Reads and validates the header of a safetensors file, without its data. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(8);
    if (size >= 8) await handle.read(prefix, 0, 8, 0);
    const length = headerLength(prefix, size, file);
    const headerBytes = new Uint8Array(length);
    await handle.read(headerBytes, 0, length, 8);
    return parseSafetensorsHeader(headerBytes, size - 8 - length, file);
  } finally {
    await handle.close();
  }
}

/**
 * Reads tensors described by headers into fp32, one fs read per tensor (the
 * file is never held in memory whole). Groups by file; the result follows the
 * order of `infos`. Throws UnsupportedDtypeError before reading anything.
 */
export async function readSafetensorsTensors(infos: Iterable<SafetensorsTensorInfo>): Promise<TensorMap> {
  const list = [...infos];
  for (const info of list) assertReadableDtype(info);
  const byName = new Map<string, HostTensor>();
  const files = [...new Set(list.map((info) => info.file))];
  for (const file of files) {
    const handle = await open(file, 'r');
    try {
      for (const info of list) if (info.file === file) byName.set(info.name, await readTensor(handle, info));
    } finally {
      await handle.close();
    }
  }
  return new Map(list.map((info) => [info.name, byName.get(info.name)!]));
}

/** The contents of a safetensors file: its metadata and its tensors (in byte order). */
export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: TensorMap;
}

/** Reads a whole safetensors file (every tensor must be F32, F16 or BF16). */
export async function readSafetensors(file: string): Promise<SafetensorsContents> {
  const header = await readSafetensorsHeader(file);
  return { metadata: header.metadata, tensors: await readSafetensorsTensors(header.tensors.values()) };
}

/** Decodes safetensors bytes held in memory (tests, small payloads). */
export function decodeSafetensors(bytes: Uint8Array, file = '<buffer>'): SafetensorsContents {
  const length = headerLength(bytes, bytes.length, file);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + length), bytes.length - 8 - length, file);
  const tensors: TensorMap = new Map();
  for (const info of header.tensors.values()) {
    assertReadableDtype(info);
    const raw = bytes.slice(info.fileOffset, info.fileOffset + info.dataOffsets[1] - info.dataOffsets[0]);
    tensors.set(info.name, { shape: [...info.shape], data: decodeTensorBytes(info, raw) });
  }
  return { metadata: header.metadata, tensors };
}

// ---------------------------------------------------------------------------
// Writing (F32)

function checkWritable(tensors: TensorMap, file: string): void {
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__' || name.length === 0) {
      throw new SafetensorsError(`${file}: ${JSON.stringify(name)} cannot be a tensor name`, 'bad-header', file, { tensor: name });
    }
    if (!tensor.shape.every(isIndex) || elementCount(tensor.shape) !== tensor.data.length) {
      throw new SafetensorsError(
        `${file}: tensor ${name} has shape [${tensor.shape.join(', ')}] but ${tensor.data.length} values`,
        'size-mismatch',
        file,
        { tensor: name },
      );
    }
  }
}

/** The header bytes (without the length prefix), padded with spaces so the data starts 8-aligned. */
function encodeHeader(tensors: TensorMap, metadata: Readonly<Record<string, string>> | undefined): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const [name, tensor] of tensors) {
    const size = tensor.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...tensor.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const bytes = new Uint8Array(padded).fill(0x20);
  bytes.set(json);
  return bytes;
}

function lengthPrefix(length: number): Uint8Array {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(length), true);
  return prefix;
}

/** A tensor's fp32 values as little-endian bytes (a view on little-endian hosts). */
function littleEndianBytes(data: Float32Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_IS_LITTLE_ENDIAN) return view;
  const copy = view.slice();
  swapBytes(copy, 4);
  return copy;
}

/** Encodes tensors as an F32 safetensors file in memory, in the map's order. */
export function encodeSafetensors(tensors: TensorMap, metadata?: Readonly<Record<string, string>>): Uint8Array {
  checkWritable(tensors, '<buffer>');
  const header = encodeHeader(tensors, metadata);
  let total = 8 + header.length;
  for (const tensor of tensors.values()) total += tensor.data.byteLength;
  const out = new Uint8Array(total);
  out.set(lengthPrefix(header.length), 0);
  out.set(header, 8);
  let offset = 8 + header.length;
  for (const tensor of tensors.values()) {
    out.set(littleEndianBytes(tensor.data), offset);
    offset += tensor.data.byteLength;
  }
  return out;
}

/**
 * Writes tensors as an F32 safetensors file, streaming tensor by tensor, and
 * fsyncs it. Data is laid out in the map's order; the header lists it in that order.
 */
export async function writeSafetensors(
  file: string,
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  checkWritable(tensors, file);
  const header = encodeHeader(tensors, metadata);
  const handle = await open(file, 'w');
  try {
    await writeAll(handle, lengthPrefix(header.length));
    await writeAll(handle, header);
    for (const tensor of tensors.values()) await writeAll(handle, littleEndianBytes(tensor.data));
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(bytes.length - done, MAX_READ_BYTES));
    done += bytesWritten;
  }
}

// ---------------------------------------------------------------------------
// Checkpoint directories: one file or shards with an index

/** A parsed model.safetensors.index.json. */
export interface SafetensorsIndex {
  /** The index's `metadata` object (transformers writes `total_size`). */
  metadata: Record<string, unknown>;
  /** Tensor name to shard file name (relative to the index's directory). */
  weightMap: Map<string, string>;
}

/** Reads and checks a sharded index: a `weight_map` from names to plain file names in the same directory. */
export async function readSafetensorsIndex(file: string): Promise<SafetensorsIndex> {
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(`${file} is not valid JSON (${(cause as Error).message})`, 'bad-index', file, { cause });
  }
  const record = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  const weightMap = record?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new SafetensorsError(`${file} has no weight_map object`, 'bad-index', file);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.length === 0 || shard !== path.basename(shard) || shard === '..' || shard === '.') {
      throw new SafetensorsError(
        `${file}: weight_map maps ${name} to ${JSON.stringify(shard)}, not a file name in the same directory`,
        'bad-index',
        file,
        { tensor: name },
      );
    }
    map.set(name, shard);
  }
  const metadata = record?.metadata;
  return {
    metadata: typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? { ...(metadata as Record<string, unknown>) } : {},
    weightMap: map,
  };
}

/** What a checkpoint directory's weights hold, from their headers alone. */
export interface SafetensorsDirInfo {
  /** The directory. */
  dir: string;
  /** True when read through model.safetensors.index.json. */
  sharded: boolean;
  /** The headers of every weights file, in file-name order. */
  headers: SafetensorsHeader[];
  /** Every tensor by name, each with the file that holds it. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the headers of a directory's weights, as transformers finds them:
 * model.safetensors if present, else model.safetensors.index.json and its
 * shards (which must agree with the index exactly).
 */
export async function inspectSafetensorsDir(dir: string): Promise<SafetensorsDirInfo> {
  const single = path.join(dir, SAFETENSORS_WEIGHTS_FILE);
  if (await exists(single)) {
    const header = await readSafetensorsHeader(single);
    return { dir, sharded: false, headers: [header], tensors: new Map(header.tensors) };
  }
  const indexFile = path.join(dir, SAFETENSORS_INDEX_FILE);
  if (!(await exists(indexFile))) {
    const legacy = (await exists(path.join(dir, 'pytorch_model.bin'))) || (await exists(path.join(dir, 'pytorch_model.bin.index.json')));
    throw new CheckpointError(
      legacy
        ? `${dir} holds only PyTorch pickle weights (pytorch_model.bin); convert them to safetensors`
        : `${dir} has neither ${SAFETENSORS_WEIGHTS_FILE} nor ${SAFETENSORS_INDEX_FILE}`,
      legacy ? 'unsupported' : 'missing-file',
      single,
    );
  }
  const index = await readSafetensorsIndex(indexFile);
  const shardNames = [...new Set(index.weightMap.values())].sort();
  const headers: SafetensorsHeader[] = [];
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const shard of shardNames) {
    const shardFile = path.join(dir, shard);
    if (!(await exists(shardFile))) {
      throw new SafetensorsError(`${indexFile} names shard ${shard}, which does not exist`, 'bad-index', indexFile);
    }
    const header = await readSafetensorsHeader(shardFile);
    headers.push(header);
    for (const [name, info] of header.tensors) {
      const mapped = index.weightMap.get(name);
      if (mapped !== shard) {
        throw new SafetensorsError(
          mapped === undefined
            ? `${shardFile} holds tensor ${name}, which ${SAFETENSORS_INDEX_FILE} does not list`
            : `${shardFile} holds tensor ${name}, which ${SAFETENSORS_INDEX_FILE} maps to ${mapped}`,
          'bad-index',
          indexFile,
          { tensor: name },
        );
      }
      tensors.set(name, info);
    }
  }
  for (const [name, shard] of index.weightMap) {
    if (!tensors.has(name)) {
      throw new SafetensorsError(`${SAFETENSORS_INDEX_FILE} maps ${name} to ${shard}, which has no such tensor`, 'bad-index', indexFile, {
        tensor: name,
      });
    }
  }
  return { dir, sharded: true, headers, tensors };
}

/** Reads every tensor of a checkpoint directory (unsharded or sharded) into fp32. */
export async function readSafetensorsDir(dir: string): Promise<TensorMap> {
  const info = await inspectSafetensorsDir(dir);
  return readSafetensorsTensors(info.tensors.values());
}

/** Options of writeSafetensorsDir. */
export interface WriteSafetensorsDirOptions {
  /** Split into shards of at most this many data bytes (a larger tensor gets a shard of its own). Default: one file. */
  maxShardBytes?: number;
  /** Each file's `__metadata__`; default `{format: 'pt'}`, which transformers requires. */
  metadata?: Readonly<Record<string, string>>;
}

/** Shard file name as transformers writes it: model-00001-of-00003.safetensors. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Writes tensors into `dir` (which must exist) as model.safetensors, or, when
 * they exceed maxShardBytes, as shards plus model.safetensors.index.json,
 * filling shards greedily in the map's order as transformers does. Returns the
 * file names written.
 */
export async function writeSafetensorsDir(
  dir: string,
  tensors: TensorMap,
  options: WriteSafetensorsDirOptions = {},
): Promise<string[]> {
  const metadata = options.metadata ?? DEFAULT_SAFETENSORS_METADATA;
  const limit = options.maxShardBytes ?? Infinity;
  if (!(limit > 0)) {
    throw new SafetensorsError(`maxShardBytes must be positive, got ${options.maxShardBytes}`, 'bad-index', dir);
  }
  const shards: TensorMap[] = [];
  let current: TensorMap = new Map();
  let currentBytes = 0;
  for (const [name, tensor] of tensors) {
    const size = tensor.data.byteLength;
    if (current.size > 0 && currentBytes + size > limit) {
      shards.push(current);
      current = new Map();
      currentBytes = 0;
    }
    current.set(name, tensor);
    currentBytes += size;
  }
  shards.push(current);

  if (shards.length === 1) {
    await writeSafetensors(path.join(dir, SAFETENSORS_WEIGHTS_FILE), shards[0], metadata);
    return [SAFETENSORS_WEIGHTS_FILE];
  }
  const written: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let i = 0; i < shards.length; i++) {
    const name = shardFileName(i, shards.length);
    await writeSafetensors(path.join(dir, name), shards[i], metadata);
    written.push(name);
    for (const [tensorName, tensor] of shards[i]) {
      weightMap[tensorName] = name;
      totalSize += tensor.data.byteLength;
    }
  }
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((key) => [key, weightMap[key]]));
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
  await writeFileSynced(path.join(dir, SAFETENSORS_INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
  written.push(SAFETENSORS_INDEX_FILE);
  return written;
}
