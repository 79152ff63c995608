// safetensors: half-precision decoding against hand-computed values, bit-exact
// round trips (in memory, on disk, sharded), and a typed error for every way a
// file can be malformed.
import { mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, SafetensorsError, UnsupportedDtypeError } from './errors';
import {
  decodeBFloat16,
  decodeFloat16,
  decodeSafetensors,
  encodeSafetensors,
  float16ArrayToFloat32,
  inspectSafetensorsDir,
  readSafetensors,
  readSafetensorsDir,
  readSafetensorsHeader,
  writeSafetensors,
  writeSafetensorsDir,
  type TensorMap,
} from './safetensors';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cream-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file from a header object and raw data bytes, unpadded, as an arbitrary writer may produce. */
function rawFile(header: Record<string, unknown>, data: Uint8Array, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16(values: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(values).buffer);
}

function bits(data: Float32Array): number[] {
  return [...new Uint32Array(data.buffer, data.byteOffset, data.length)];
}

/** Tensors whose values exercise every bit-level corner: -0, subnormals, infinities, NaN payloads. */
function cornerTensors(): TensorMap {
  const corners = new Float32Array(12);
  new Uint32Array(corners.buffer).set([
    0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fa00001, 0xffc12345, 0x3f800000,
    0x7f7fffff, 0x33d6bf95,
  ]);
  const random = new Float32Array(6 * 7);
  let seed = 12345;
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    random[i] = (seed / 2 ** 32 - 0.5) * 3;
  }
  return new Map([
    ['model.embed_tokens.weight', { shape: [6, 7], data: random }],
    ['corners', { shape: [3, 4], data: corners }],
    ['scalar', { shape: [], data: new Float32Array([Math.PI]) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
  ]);
}

function expectSameTensors(actual: TensorMap, expected: TensorMap): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    expect(actual.get(name)!.shape).toEqual(tensor.shape);
    expect(bits(actual.get(name)!.data)).toEqual(bits(tensor.data));
  }
}

describe('decodeFloat16', () => {
  it.each([
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125], // 0x155 = 341: (1 + 341/1024) · 2^-2
    [0x7bff, 65504], // largest finite: (2 - 2^-10) · 2^15
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x8001, -(2 ** -24)],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('decodes %s as %s', (input, expected) => {
    expect(decodeFloat16(input)).toBe(expected);
  });
  it('keeps the sign of zero and decodes NaN', () => {
    expect(Object.is(decodeFloat16(0x8000), -0)).toBe(true);
    expect(Object.is(decodeFloat16(0x0000), 0)).toBe(true);
    expect(decodeFloat16(0x7e00)).toBeNaN();
    expect(decodeFloat16(0xfc01)).toBeNaN();
  });
  it('agrees with the array conversion on all 65536 patterns, NaN payloads widened as hardware does', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = float16ArrayToFloat32(all);
    const disagreements: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const expected = decodeFloat16(i);
      if (Number.isNaN(expected) ? !Number.isNaN(out[i]) : !Object.is(out[i], expected)) disagreements.push(i);
    }
    expect(disagreements).toEqual([]);
    expect(new Uint32Array(out.buffer)[0x7e01]).toBe(0x7fc02000);
  });
});

describe('decodeBFloat16', () => {
  it.each([
    [0x3f80, 1],
    [0xc040, -3],
    [0x4049, 3.140625], // 0x49 = 73: (1 + 73/128) · 2
    [0x0001, 2 ** -133], // smallest subnormal: 2^-126 · 2^-7
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ])('decodes %s as %s', (input, expected) => {
    expect(decodeBFloat16(input)).toBe(expected);
  });
  it('keeps -0 and NaN', () => {
    expect(Object.is(decodeBFloat16(0x8000), -0)).toBe(true);
    expect(decodeBFloat16(0x7fc0)).toBeNaN();
  });
});

describe('round trip', () => {
  it('encodes and decodes bit for bit in memory, data 8-aligned and metadata kept', () => {
    const tensors = cornerTensors();
    const bytes = encodeSafetensors(tensors, { format: 'pt' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual({ format: 'pt' });
    expectSameTensors(decoded.tensors, tensors);
  });
  it('writes and reads bit for bit on disk, and a second write is byte-identical', async () => {
    const tensors = cornerTensors();
    const first = path.join(dir, 'first.safetensors');
    const second = path.join(dir, 'second.safetensors');
    await writeSafetensors(first, tensors, { format: 'pt' });
    const read = await readSafetensors(first);
    expectSameTensors(read.tensors, tensors);
    await writeSafetensors(second, read.tensors, read.metadata);
    expect(Buffer.compare(await readFile(first), await readFile(second))).toBe(0);
    expect(Buffer.compare(await readFile(first), Buffer.from(encodeSafetensors(tensors, { format: 'pt' })))).toBe(0);
  });
  it('reads F16 and BF16 tensors into fp32', async () => {
    const data = new Uint8Array([...u16([0x3c00, 0x0001, 0xfc00, 0x8000]), ...u16([0x3f80, 0xc040])]);
    const file = path.join(dir, 'half.safetensors');
    await writeFile(
      file,
      rawFile(
        {
          h: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 8] },
          b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
        },
        data,
      ),
    );
    const { tensors } = await readSafetensors(file);
    expect([...tensors.get('h')!.data]).toEqual([1, 2 ** -24, -Infinity, -0]);
    expect(tensors.get('h')!.shape).toEqual([2, 2]);
    expect([...tensors.get('b')!.data]).toEqual([1, -3]);
  });
});

describe('malformed files', () => {
  async function fileOf(name: string, bytes: Uint8Array): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return file;
  }
  async function errorOf(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      return error as Error;
    }
    throw new Error('expected a rejection');
  }

  it('a truncated file is a SafetensorsError naming the tensor cut short', async () => {
    const file = path.join(dir, 'truncated.safetensors');
    await writeSafetensors(file, cornerTensors());
    await truncate(file, (await readFile(file)).length - 3);
    const error = await errorOf(readSafetensors(file));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect(error).toMatchObject({ kind: 'truncated', file });
    expect(error.message).toMatch(/truncated/);
    expect((error as SafetensorsError).tensor).toBeDefined();
    expect(error.message).toContain((error as SafetensorsError).tensor!);
  });
  it('a file shorter than the length prefix is truncated', async () => {
    const error = await errorOf(readSafetensors(await fileOf('tiny.safetensors', new Uint8Array(5))));
    expect(error).toMatchObject({ name: 'SafetensorsError', kind: 'truncated' });
  });
  it('a header claiming more bytes than exist is a header overflow', async () => {
    const file = await fileOf('overflow.safetensors', rawFile({}, new Uint8Array(0), 1000));
    const error = await errorOf(readSafetensors(file));
    expect(error).toMatchObject({ name: 'SafetensorsError', kind: 'header-overflow' });
    expect(error.message).toMatch(/1000-byte header but only 2 bytes follow/);
  });
  it('a header over the 100 MB cap is refused before reading it', async () => {
    const error = await errorOf(readSafetensors(await fileOf('huge.safetensors', rawFile({}, new Uint8Array(0), 2 ** 40))));
    expect(error).toMatchObject({ kind: 'header-overflow' });
    expect(error.message).toMatch(/limit/);
  });
  it('an unknown dtype is an UnsupportedDtypeError naming it', async () => {
    const file = await fileOf('q4.safetensors', rawFile({ w: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 1] } }, new Uint8Array(1)));
    const error = await errorOf(readSafetensors(file));
    expect(error).toBeInstanceOf(UnsupportedDtypeError);
    expect(error).toMatchObject({ dtype: 'Q4_K', tensor: 'w', file });
    expect(error.message).toContain('Q4_K');
  });
  it('a defined but unreadable dtype parses, and reading it is an UnsupportedDtypeError', async () => {
    const file = await fileOf('i64.safetensors', rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16)));
    const header = await readSafetensorsHeader(file);
    expect(header.tensors.get('ids')).toMatchObject({ dtype: 'I64', shape: [2] });
    const error = await errorOf(readSafetensors(file));
    expect(error).toBeInstanceOf(UnsupportedDtypeError);
    expect(error.message).toMatch(/ids is stored as I64; only F32, F16, BF16 can be read/);
  });
  it.each([
    [
      'overlapping ranges',
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      12,
      'bad-offsets',
      /overlaps/,
    ],
    [
      'a hole between ranges',
      { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } },
      12,
      'bad-offsets',
      /belong to no tensor/,
    ],
    ['bytes after the last tensor', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8, 'bad-offsets', /last 4 bytes/],
    ['a range that does not hold shape × dtype', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8, 'size-mismatch', /needs 12 bytes/],
    ['a negative dimension', { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4, 'bad-header', /shape/],
    ['offsets that end before they begin', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4, 'bad-header', /end before/],
    ['non-string metadata', { __metadata__: { format: 1 } }, 0, 'bad-header', /__metadata__.format/],
  ])('%s is a typed error', async (_what, header, dataLength, kind, message) => {
    const error = await errorOf(readSafetensors(await fileOf(`bad-${kind}.safetensors`, rawFile(header, new Uint8Array(dataLength)))));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).kind).toBe(kind);
    expect(error.message).toMatch(message);
  });
  it('a header that is not JSON is a bad header', async () => {
    const json = new TextEncoder().encode('{"a": ');
    const bytes = new Uint8Array(8 + json.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    const error = await errorOf(readSafetensors(await fileOf('notjson.safetensors', bytes)));
    expect(error).toMatchObject({ kind: 'bad-header' });
    expect(error.message).toMatch(/not valid JSON/);
  });
});

describe('sharded checkpoints', () => {
  it('writes two shards and an index, and reading them equals the unsharded read', async () => {
    const tensors = cornerTensors();
    const single = path.join(dir, 'single');
    const sharded = path.join(dir, 'sharded');
    await Promise.all([rm(single, { recursive: true, force: true }), rm(sharded, { recursive: true, force: true })]);
    await Promise.all([mkdir(single), mkdir(sharded)]);
    expect(await writeSafetensorsDir(single, tensors)).toEqual(['model.safetensors']);
    // embed_tokens is 168 bytes; the 48 + 4 + 0 bytes after it fit one more shard.
    const written = await writeSafetensorsDir(sharded, tensors, { maxShardBytes: 170 });
    expect(written).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    expect((await readdir(sharded)).sort()).toEqual([...written].sort());

    const index = JSON.parse(await readFile(path.join(sharded, 'model.safetensors.index.json'), 'utf8'));
    expect(index).toEqual({
      metadata: { total_size: 168 + 48 + 4 },
      weight_map: {
        corners: 'model-00002-of-00002.safetensors',
        empty: 'model-00002-of-00002.safetensors',
        'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
        scalar: 'model-00002-of-00002.safetensors',
      },
    });
    const info = await inspectSafetensorsDir(sharded);
    expect(info.sharded).toBe(true);
    expect(info.headers.map((header) => header.metadata)).toEqual([{ format: 'pt' }, { format: 'pt' }]);
    const fromShards = await readSafetensorsDir(sharded);
    const fromSingle = await readSafetensorsDir(single);
    expectSameTensors(fromShards, fromSingle);
    expectSameTensors(fromShards, tensors);
  });
  it('an index that disagrees with its shards is a bad index', async () => {
    const sharded = path.join(dir, 'sharded');
    const indexFile = path.join(sharded, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8'));
    index.weight_map.ghost = 'model-00002-of-00002.safetensors';
    await writeFile(indexFile, JSON.stringify(index));
    await expect(inspectSafetensorsDir(sharded)).rejects.toMatchObject({ kind: 'bad-index', tensor: 'ghost' });
    index.weight_map.ghost = '../elsewhere.safetensors';
    await writeFile(indexFile, JSON.stringify(index));
    await expect(inspectSafetensorsDir(sharded)).rejects.toThrow(/not a file name in the same directory/);
    await writeFile(indexFile, '{"weight_map": ');
    await expect(inspectSafetensorsDir(sharded)).rejects.toMatchObject({ name: 'SafetensorsError', kind: 'bad-index' });
  });
  it('a directory without weights is a CheckpointError', async () => {
    const empty = await mkdtemp(path.join(dir, 'empty-'));
    const error = await inspectSafetensorsDir(empty).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ kind: 'missing-file' });
  });
});
