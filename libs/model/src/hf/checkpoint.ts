// Hugging Face checkpoint directories: config.json, model.safetensors (or a
// sharded index), tokenizer.json with tokenizer_config.json, and
// generation_config.json. Loading checks every tensor against the shapes the
// config implies before reading any data; saving writes F32 tensors under
// Hugging Face names and shapes (so transformers loads the result) into a
// temporary sibling directory renamed into place, so a crash never leaves a
// half-written checkpoint under the real name.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, rmdir } from 'node:fs/promises';
import * as path from 'node:path';
import { modelConfigFromHf, type ModelConfig } from '../config';
import { ModelConfigError, ModelWeightsError } from '../errors';
import { LM_HEAD_WEIGHT, weightShapes } from '../weights';
import { CheckpointError } from './errors';
import { syncDirectory, writeFileSynced } from './files';
import {
  assertReadableDtype,
  inspectSafetensorsDir,
  readSafetensorsTensors,
  writeSafetensorsDir,
  type HostTensor,
  type TensorMap,
} from './safetensors';
import { HfTokenizer, readTokenizerFiles, writeTokenizerFiles, type TokenizerFiles } from './tokenizer';

/** File name of the model configuration. */
export const CONFIG_FILE = 'config.json';

/** File name of the generation defaults. */
export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** A loaded checkpoint: the model's config, its fp32 tensors, tokenizer and generation defaults. */
export interface Checkpoint {
  /** The directory it was loaded from. */
  dir: string;
  /** The model configuration, from config.json. */
  config: ModelConfig;
  /** config.json as parsed, for writing back or reading fields ModelConfig does not keep. */
  hfConfig: Record<string, unknown>;
  /** Every tensor the config implies, by Hugging Face name, in weightShapes order, as fp32. */
  tensors: TensorMap;
  /** generation_config.json as parsed, when present. */
  generationConfig: Record<string, unknown> | undefined;
  /** The tokenizer of tokenizer.json and tokenizer_config.json. */
  tokenizer: HfTokenizer;
  /** The default chat template, when the tokenizer has one. */
  chatTemplate: string | undefined;
}

/** What saveCheckpoint writes. */
export interface SaveCheckpointInput {
  /** The config.json object (modelConfigToHf of a ModelConfig, or a loaded hfConfig). */
  hfConfig: Record<string, unknown>;
  /** Every tensor the config implies, by Hugging Face name; written in weightShapes order. */
  tensors: ReadonlyMap<string, HostTensor>;
  /** The tokenizer (its files are written verbatim) or its file texts. */
  tokenizer: HfTokenizer | TokenizerFiles;
  /** generation_config.json, when there is one. */
  generationConfig?: Record<string, unknown>;
}

/** Options of saveCheckpoint. */
export interface SaveCheckpointOptions {
  /** Replace a non-empty `dir`. Default false: a non-empty `dir` is a CheckpointError. */
  overwrite?: boolean;
  /** Shard the weights at this many bytes per file (transformers' max_shard_size). Default: one file. */
  maxShardBytes?: number;
}

/**
 * Tensors some checkpoints carry that the model does not use: rotary inverse
 * frequencies saved as buffers by older transformers versions. They are
 * skipped on load; lm_head.weight is skipped too when embeddings are tied,
 * as transformers ties it to the embedding regardless.
 */
const HARMLESS_EXTRA = /(^|\.)rotary_emb\.inv_freq$/;

async function readJsonFile(file: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw new CheckpointError(`${file} does not exist`, 'missing-file', file, { cause: error });
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError(`${file} is not valid JSON: ${(cause as Error).message}`, 'malformed-json', file, { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(`${file} must hold a JSON object`, 'malformed-json', file);
  }
  return json as Record<string, unknown>;
}

/** modelConfigFromHf, with the file named in the message of its ModelConfigError. */
function configFromHf(hfConfig: Record<string, unknown>, file: string): ModelConfig {
  try {
    return modelConfigFromHf(hfConfig);
  } catch (error) {
    if (error instanceof ModelConfigError) throw new ModelConfigError(`${file}: ${error.message}`, error.field, { cause: error });
    throw error;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/**
 * Checks named shapes against the config: shapes first (the most telling
 * error), then missing names, then names the model does not have. Returns the
 * names to keep, in weightShapes order. Throws ModelWeightsError.
 */
function checkTensorSet(
  config: ModelConfig,
  found: ReadonlyMap<string, readonly number[]>,
  where: string,
  skipHarmless: boolean,
): string[] {
  const expected = weightShapes(config);
  for (const [name, shape] of expected) {
    const got = found.get(name);
    if (got !== undefined && !sameShape(got, shape)) {
      throw new ModelWeightsError(
        `${where}: tensor ${name} has shape [${got.join(', ')}] but the config implies [${shape.join(', ')}]`,
        name,
        { expectedShape: shape, actualShape: got },
      );
    }
  }
  const missing = [...expected.keys()].filter((name) => !found.has(name));
  if (missing.length > 0) {
    throw new ModelWeightsError(
      `${where}: missing ${missing.length} tensor(s) the config implies: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`,
      missing[0],
      { expectedShape: expected.get(missing[0]) },
    );
  }
  const harmless = (name: string): boolean =>
    skipHarmless && (HARMLESS_EXTRA.test(name) || (name === LM_HEAD_WEIGHT && config.tieWordEmbeddings));
  const unexpected = [...found.keys()].filter((name) => !expected.has(name) && !harmless(name));
  if (unexpected.length > 0) {
    throw new ModelWeightsError(
      `${where}: ${unexpected.length} tensor(s) this ${config.architecture} config does not have: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}`,
      unexpected[0],
    );
  }
  return [...expected.keys()];
}

/**
 * Loads a Hugging Face checkpoint directory. Throws CheckpointError (missing
 * or malformed file), ModelConfigError (unsupported architecture or field),
 * ModelWeightsError (tensor of the wrong shape, missing or unexpected),
 * UnsupportedDtypeError, SafetensorsError (a malformed or truncated file) or
 * TokenizerError; every check on the weights runs before any data is read.
 */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const configFile = path.join(dir, CONFIG_FILE);
  const hfConfig = (await readJsonFile(configFile, true))!;
  const config = configFromHf(hfConfig, configFile);
  const generationConfig = await readJsonFile(path.join(dir, GENERATION_CONFIG_FILE), false);

  const tokenizerFiles = await readTokenizerFiles(dir);
  if (tokenizerFiles === undefined) {
    const file = path.join(dir, 'tokenizer.json');
    throw new CheckpointError(`${file} does not exist (only tokenizer.json tokenizers are supported)`, 'missing-file', file);
  }
  const tokenizer = HfTokenizer.fromFiles(tokenizerFiles);

  const weights = await inspectSafetensorsDir(dir);
  const shapes = new Map([...weights.tensors].map(([name, info]) => [name, info.shape]));
  const names = checkTensorSet(config, shapes, dir, true);
  const infos = names.map((name) => weights.tensors.get(name)!);
  for (const info of infos) assertReadableDtype(info);
  const tensors = await readSafetensorsTensors(infos);

  return { dir, config, hfConfig, tensors, generationConfig, tokenizer, chatTemplate: tokenizer.chatTemplate() };
}

/** config.json as written: the dtype fields say float32, which is what the weights hold. */
function configToWrite(hfConfig: Record<string, unknown>): Record<string, unknown> {
  const out = { ...hfConfig };
  // transformers 4.x reads torch_dtype, 5.x dtype; set whichever is there (torch_dtype when neither).
  if ('dtype' in out) out.dtype = 'float32';
  if ('torch_dtype' in out || !('dtype' in out)) out.torch_dtype = 'float32';
  return out;
}

/** The entries of `dir`, or undefined when it does not exist. */
async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Saves a checkpoint directory: config.json (dtype float32), model.safetensors
 * (F32, or shards with an index), the tokenizer files verbatim and
 * generation_config.json. Everything is written and fsynced in a temporary
 * sibling directory, which is then renamed to `dir`. Throws ModelConfigError or
 * ModelWeightsError when the input does not describe a valid model (nothing is
 * written), CheckpointError when `dir` is not empty and overwrite is off.
 * Returns the file names written.
 */
export async function saveCheckpoint(dir: string, input: SaveCheckpointInput, options: SaveCheckpointOptions = {}): Promise<string[]> {
  const config = configFromHf(input.hfConfig, CONFIG_FILE);
  const shapes = new Map([...input.tensors].map(([name, tensor]) => [name, tensor.shape]));
  const names = checkTensorSet(config, shapes, 'tensors to save', false);
  const tensors: TensorMap = new Map(names.map((name) => [name, input.tensors.get(name)!]));
  const tokenizerFiles = input.tokenizer instanceof HfTokenizer ? input.tokenizer.files : input.tokenizer;

  const target = path.resolve(dir);
  const existing = await listDir(target);
  if (existing !== undefined && existing.length > 0 && !options.overwrite) {
    throw new CheckpointError(`${target} already exists and is not empty (pass overwrite to replace it)`, 'exists', target);
  }
  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temporary = path.join(parent, `.${path.basename(target)}.tmp-${suffix}`);
  await mkdir(temporary);
  try {
    const written = await writeSafetensorsDir(temporary, tensors, { maxShardBytes: options.maxShardBytes });
    await writeFileSynced(path.join(temporary, CONFIG_FILE), JSON.stringify(configToWrite(input.hfConfig), null, 2) + '\n');
    written.push(CONFIG_FILE);
    if (input.generationConfig !== undefined) {
      await writeFileSynced(path.join(temporary, GENERATION_CONFIG_FILE), JSON.stringify(input.generationConfig, null, 2) + '\n');
      written.push(GENERATION_CONFIG_FILE);
    }
    written.push(...(await writeTokenizerFiles(temporary, tokenizerFiles)));
    await syncDirectory(temporary);

    const current = await listDir(target);
    if (current !== undefined && current.length > 0) {
      if (!options.overwrite) {
        throw new CheckpointError(`${target} appeared while saving and is not empty`, 'exists', target);
      }
      // Move the old checkpoint aside, put the new one in place, then delete the old.
      const old = path.join(parent, `.${path.basename(target)}.old-${suffix}`);
      await rename(target, old);
      await rename(temporary, target);
      await rm(old, { recursive: true, force: true });
    } else {
      if (current !== undefined) await rmdir(target);
      await rename(temporary, target);
    }
    await syncDirectory(parent);
    return written.sort();
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}
