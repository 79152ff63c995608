// Checkpoint directories: bit-for-bit round trips (load → save → load equal
// tensor bytes; save → load → save equal files), half-precision and sharded
// weights, atomic saves, and a typed error for each broken checkpoint.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModelConfig, modelConfigToHf, type ModelConfig, type ModelConfigInput } from '../config';
import { ModelConfigError, ModelWeightsError } from '../errors';
import { weightShapes } from '../weights';
import { buildByteLevelBpeTokenizer } from './byte-level-bpe';
import { loadCheckpoint, saveCheckpoint, type SaveCheckpointInput } from './checkpoint';
import { CheckpointError, SafetensorsError, UnsupportedDtypeError } from './errors';
import { encodeSafetensors, readSafetensorsHeader, type TensorMap } from './safetensors';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'cream-checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const tokenizer = buildByteLevelBpeTokenizer({ vocabSize: 320 });

const SHAPES: Record<string, ModelConfigInput> = {
  'llama, grouped-query': { architecture: 'llama', vocabSize: 320, hiddenSize: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, intermediateSize: 24 },
  'qwen2, biases and tied embeddings': {
    architecture: 'qwen2',
    vocabSize: 320,
    hiddenSize: 16,
    nLayers: 1,
    nHeads: 2,
    intermediateSize: 20,
    tieWordEmbeddings: true,
  },
  'qwen3, q/k norms': { architecture: 'qwen3', vocabSize: 320, hiddenSize: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, headDim: 8, intermediateSize: 20 },
};

/** Deterministic pseudo-random tensors of the config's shapes. */
function randomTensors(config: ModelConfig, seed = 1): TensorMap {
  let state = seed;
  const tensors: TensorMap = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      data[i] = (state / 2 ** 32 - 0.5) * 0.1;
    }
    tensors.set(name, { shape, data });
  }
  return tensors;
}

function checkpointInput(input: ModelConfigInput): SaveCheckpointInput {
  const config = createModelConfig(input);
  return {
    hfConfig: modelConfigToHf(config),
    tensors: randomTensors(config),
    tokenizer: tokenizer.files,
    generationConfig: { bos_token_id: null, eos_token_id: [319, 317], do_sample: true, temperature: 0.7 },
  };
}

function bitsOf(tensors: TensorMap): Map<string, string> {
  return new Map(
    [...tensors].map(([name, { shape, data }]) => [name, `${shape.join('x')}:${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')}`]),
  );
}

async function filesOf(dir: string): Promise<Map<string, string>> {
  const names = (await readdir(dir)).sort();
  return new Map(await Promise.all(names.map(async (name) => [name, (await readFile(path.join(dir, name))).toString('hex')] as [string, string])));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe.each(Object.entries(SHAPES))('round trip: %s', (label, shape) => {
  it('load → save → load gives identical tensor bytes; save → load → save identical files', async () => {
    const input = checkpointInput(shape);
    const first = path.join(root, `${label}-first`);
    const second = path.join(root, `${label}-second`);
    const written = await saveCheckpoint(first, input);
    expect(written).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);

    const loaded = await loadCheckpoint(first);
    expect(bitsOf(loaded.tensors)).toEqual(bitsOf(input.tensors as TensorMap));
    expect([...loaded.tensors.keys()]).toEqual([...weightShapes(loaded.config).keys()]);
    expect(loaded.config).toEqual(createModelConfig(shape));
    expect(loaded.generationConfig).toEqual(input.generationConfig);
    expect(loaded.chatTemplate).toContain('<|im_start|>');
    expect(loaded.tokenizer.decode(loaded.tokenizer.encode('héllo 👋'))).toBe('héllo 👋');

    await saveCheckpoint(second, loaded);
    expect(await filesOf(second)).toEqual(await filesOf(first));
    expect(bitsOf((await loadCheckpoint(second)).tensors)).toEqual(bitsOf(loaded.tensors));
  });
});

describe('what is written', () => {
  it('uses Hugging Face names, shapes and metadata, F32, and config.json says float32', async () => {
    const input = checkpointInput(SHAPES['qwen2, biases and tied embeddings']);
    input.hfConfig.torch_dtype = 'bfloat16';
    const dir = path.join(root, 'written');
    await saveCheckpoint(dir, input);
    const header = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.tensors.get('model.layers.0.self_attn.q_proj.bias')).toMatchObject({ dtype: 'F32', shape: [16] });
    expect(header.tensors.get('model.embed_tokens.weight')).toMatchObject({ dtype: 'F32', shape: [320, 16] });
    expect(header.tensors.has('lm_head.weight')).toBe(false);
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['Qwen2ForCausalLM'], torch_dtype: 'float32', tie_word_embeddings: true });
    expect(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')).toBe(tokenizer.files.tokenizerJson);
  });
  it('shards when asked, and the sharded checkpoint loads the same tensors', async () => {
    const input = checkpointInput(SHAPES['llama, grouped-query']);
    const dir = path.join(root, 'sharded');
    const written = await saveCheckpoint(dir, input, { maxShardBytes: 8 * 1024 });
    expect(written).toContain('model.safetensors.index.json');
    expect(written.filter((name) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(name)).length).toBeGreaterThan(1);
    expect(bitsOf((await loadCheckpoint(dir)).tensors)).toEqual(bitsOf(input.tensors as TensorMap));
  });
  it('reads BF16 and F16 weights into fp32 and writes them back as F32 with the same values', async () => {
    const input = checkpointInput(SHAPES['qwen2, biases and tied embeddings']);
    const dir = path.join(root, 'half');
    await saveCheckpoint(dir, input);
    // Re-encode the weights by hand: even tensors BF16 (upper halves), odd ones F16 of simple values.
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    const chunks: Uint8Array[] = [];
    const expected = new Map<string, number[]>();
    let offset = 0;
    [...(input.tensors as TensorMap)].forEach(([name, { shape, data }], i) => {
      const halves = new Uint16Array(data.length);
      const values: number[] = [];
      for (let j = 0; j < data.length; j++) {
        if (i % 2 === 0) {
          halves[j] = new Uint32Array(new Float32Array([data[j]]).buffer)[0] >>> 16;
          values.push(new Float32Array(new Uint32Array([halves[j] << 16]).buffer)[0]);
        } else {
          halves[j] = [0x3c00, 0xb800, 0x0001][j % 3]; // 1, -0.5, 2^-24
          values.push([1, -0.5, 2 ** -24][j % 3]);
        }
      }
      header[name] = { dtype: i % 2 === 0 ? 'BF16' : 'F16', shape, data_offsets: [offset, offset + halves.byteLength] };
      offset += halves.byteLength;
      chunks.push(new Uint8Array(halves.buffer));
      expected.set(name, values);
    });
    const json = new TextEncoder().encode(JSON.stringify(header));
    const bytes = new Uint8Array(8 + json.length + offset);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    let at = 8 + json.length;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    await writeFile(path.join(dir, 'model.safetensors'), bytes);

    const loaded = await loadCheckpoint(dir);
    for (const [name, values] of expected) expect([...loaded.tensors.get(name)!.data]).toEqual(values);
    const resaved = path.join(root, 'half-resaved');
    await saveCheckpoint(resaved, loaded);
    expect(bitsOf((await loadCheckpoint(resaved)).tensors)).toEqual(bitsOf(loaded.tensors));
  });
  it('skips rotary inv_freq buffers and a tied lm_head.weight on load', async () => {
    const input = checkpointInput(SHAPES['qwen2, biases and tied embeddings']);
    const dir = path.join(root, 'extras');
    await saveCheckpoint(dir, input);
    const tensors = new Map(input.tensors as TensorMap);
    tensors.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [4], data: new Float32Array(4) });
    tensors.set('lm_head.weight', { shape: [320, 16], data: new Float32Array(320 * 16) });
    await writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    const loaded = await loadCheckpoint(dir);
    expect([...loaded.tensors.keys()]).toEqual([...weightShapes(loaded.config).keys()]);
  });
});

describe('atomic saves', () => {
  it('refuses a non-empty destination unless asked to overwrite, then replaces it whole', async () => {
    const dir = path.join(root, 'existing');
    await saveCheckpoint(dir, checkpointInput(SHAPES['llama, grouped-query']));
    const before = await filesOf(dir);
    const other = checkpointInput(SHAPES['qwen2, biases and tied embeddings']);
    const error = await rejection(saveCheckpoint(dir, other));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ kind: 'exists' });
    expect(await filesOf(dir)).toEqual(before);
    await saveCheckpoint(dir, other, { overwrite: true });
    expect((await loadCheckpoint(dir)).config.architecture).toBe('qwen2');
    expect((await readdir(root)).filter((name) => name.includes('.tmp-') || name.includes('.old-'))).toEqual([]);
  });
  it('a failure while writing leaves neither the checkpoint nor temporary files', async () => {
    const dir = path.join(root, 'crashed');
    const input = checkpointInput(SHAPES['llama, grouped-query']);
    const failing = {
      get tokenizerJson(): string {
        throw new Error('disk full');
      },
    };
    await expect(saveCheckpoint(dir, { ...input, tokenizer: failing })).rejects.toThrow('disk full');
    expect((await readdir(root)).filter((name) => name.includes('crashed'))).toEqual([]);
  });
  it('writes nothing for tensors that do not fit the config', async () => {
    const input = checkpointInput(SHAPES['llama, grouped-query']);
    const tensors = new Map(input.tensors);
    tensors.delete('model.norm.weight');
    await expect(saveCheckpoint(path.join(root, 'invalid'), { ...input, tensors })).rejects.toBeInstanceOf(ModelWeightsError);
    expect((await readdir(root)).filter((name) => name.includes('invalid'))).toEqual([]);
  });
});

describe('broken checkpoints are typed errors', () => {
  let good: string;
  beforeAll(async () => {
    good = path.join(root, 'good');
    await saveCheckpoint(good, checkpointInput(SHAPES['llama, grouped-query']));
  });
  /** A copy of the good checkpoint with one file replaced (or removed, for undefined). */
  async function broken(name: string, file: string, content: string | Uint8Array | undefined): Promise<string> {
    const dir = path.join(root, `broken-${name}`);
    await rm(dir, { recursive: true, force: true });
    await saveCheckpoint(dir, await loadCheckpoint(good));
    if (content === undefined) await rm(path.join(dir, file));
    else await writeFile(path.join(dir, file), content);
    return dir;
  }
  async function withConfig(name: string, edit: (config: Record<string, unknown>) => void): Promise<string> {
    const config = JSON.parse(await readFile(path.join(good, 'config.json'), 'utf8'));
    edit(config);
    return broken(name, 'config.json', JSON.stringify(config));
  }
  async function withTensors(name: string, edit: (tensors: TensorMap) => void): Promise<string> {
    const tensors = new Map((await loadCheckpoint(good)).tensors);
    edit(tensors);
    return broken(name, 'model.safetensors', encodeSafetensors(tensors, { format: 'pt' }));
  }

  it('missing config.json', async () => {
    const error = await rejection(loadCheckpoint(await broken('no-config', 'config.json', undefined)));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ kind: 'missing-file' });
    expect(error.message).toMatch(/config\.json does not exist/);
  });
  it('malformed config.json names the file and the parse error', async () => {
    const error = await rejection(loadCheckpoint(await broken('bad-json', 'config.json', '{"vocab_size": 320,')));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ kind: 'malformed-json' });
    expect(error.message).toMatch(/config\.json is not valid JSON: /);
  });
  it('an unsupported architecture', async () => {
    const dir = await withConfig('gpt2', (config) => {
      config.architectures = ['GPT2LMHeadModel'];
      config.model_type = 'gpt2';
    });
    const error = await rejection(loadCheckpoint(dir));
    expect(error).toBeInstanceOf(ModelConfigError);
    expect(error.message).toMatch(/config\.json: unsupported architecture \["GPT2LMHeadModel"\]/);
  });
  it('a tensor with the wrong shape names the tensor, the expected and the actual shape', async () => {
    const dir = await withTensors('wrong-shape', (tensors) => {
      tensors.set('model.layers.1.mlp.down_proj.weight', { shape: [24, 16], data: new Float32Array(24 * 16) });
    });
    const error = await rejection(loadCheckpoint(dir));
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error).toMatchObject({ tensorName: 'model.layers.1.mlp.down_proj.weight', expectedShape: [16, 24], actualShape: [24, 16] });
    expect(error.message).toMatch(/down_proj\.weight has shape \[24, 16\] but the config implies \[16, 24\]/);
  });
  it('a missing tensor', async () => {
    const dir = await withTensors('missing', (tensors) => tensors.delete('model.layers.0.self_attn.k_proj.weight'));
    const error = await rejection(loadCheckpoint(dir));
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error).toMatchObject({ tensorName: 'model.layers.0.self_attn.k_proj.weight', expectedShape: [8, 16] });
    expect(error.message).toMatch(/missing 1 tensor/);
  });
  it('an unexpected tensor', async () => {
    const dir = await withTensors('unexpected', (tensors) => tensors.set('model.layers.0.mlp.gate_proj.bias', { shape: [24], data: new Float32Array(24) }));
    const error = await rejection(loadCheckpoint(dir));
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error.message).toMatch(/does not have: model\.layers\.0\.mlp\.gate_proj\.bias/);
  });
  it('an unsupported dtype names the tensor and dtype', async () => {
    const bytes = await readFile(path.join(good, 'model.safetensors'));
    // Relabel model.norm.weight (16 F32 values, 64 bytes) as 16 I32 values: same bytes and shape, unreadable dtype.
    const length = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
    header['model.norm.weight'].dtype = 'I32';
    bytes.write(JSON.stringify(header).padEnd(length, ' '), 8, 'utf8');
    const error = await rejection(loadCheckpoint(await broken('int32', 'model.safetensors', bytes)));
    expect(error).toBeInstanceOf(UnsupportedDtypeError);
    expect(error).toMatchObject({ dtype: 'I32', tensor: 'model.norm.weight' });
    expect(error.message).toMatch(/model\.norm\.weight is stored as I32/);
  });
  it('a truncated weights file', async () => {
    const bytes = await readFile(path.join(good, 'model.safetensors'));
    const error = await rejection(loadCheckpoint(await broken('truncated', 'model.safetensors', bytes.subarray(0, bytes.length - 100))));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect(error).toMatchObject({ kind: 'truncated' });
  });
  it('missing weights, missing tokenizer.json', async () => {
    expect(await rejection(loadCheckpoint(await broken('no-weights', 'model.safetensors', undefined)))).toMatchObject({
      name: 'CheckpointError',
      kind: 'missing-file',
    });
    const error = await rejection(loadCheckpoint(await broken('no-tokenizer', 'tokenizer.json', undefined)));
    expect(error).toMatchObject({ name: 'CheckpointError', kind: 'missing-file' });
    expect(error.message).toMatch(/tokenizer\.json does not exist/);
  });
  it('malformed generation_config.json', async () => {
    const error = await rejection(loadCheckpoint(await broken('bad-generation', 'generation_config.json', '[1, 2')));
    expect(error).toMatchObject({ name: 'CheckpointError', kind: 'malformed-json' });
    expect(error.message).toMatch(/generation_config\.json/);
  });
});
