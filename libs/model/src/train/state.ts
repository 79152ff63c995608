// The training-state snapshot: everything a run needs to continue exactly
// where it stopped, in a new process with new objects. Layout of a
// checkpoint directory:
//   latest.json                     {"step": 12, "path": "step-00000012"}
//   step-00000012/state.json        step, epoch, position in the epoch's shuffled
//                                   order, shuffle RNG, hyperparameters, data
//                                   fingerprint, per-weight optimizer step counts
//   step-00000012/weights.safetensors    the weights, by Hugging Face name
//   step-00000012/optimizer.safetensors  AdamW moments: exp_avg/<name>, exp_avg_sq/<name>
//   step-00000012/reference.safetensors  DPO: the reference's summed log-probs
// A snapshot is written into a temporary directory, fsynced and renamed into
// place, and only then does latest.json (itself written to a temporary file
// and renamed) point at it: a crash at any moment leaves the previous
// snapshot readable. Older snapshots are removed after the switch.

import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors, type TensorMap } from '../hf/safetensors';
import type { AdamWState } from './adamw';
import { TrainingStateError } from './errors';
import type { TrainHyperparameters, TrainKind } from './hyperparameters';

/** The summed response log-probs of every pair under the frozen reference, computed once. */
export interface ReferenceLogprobs {
  /** log p_ref(y+ | x) per pair, in the pairs' order. */
  readonly chosen: Float32Array;
  /** log p_ref(y- | x) per pair. */
  readonly rejected: Float32Array;
  /** Fingerprint of the (truncated) token ids they were computed on. */
  readonly dataFingerprint: string;
}

/** Everything needed to continue a run. */
export interface TrainingState {
  /** SFT or DPO. */
  readonly kind: TrainKind;
  /** Optimizer steps completed. */
  readonly step: number;
  /** Optimizer steps of the whole run. */
  readonly totalSteps: number;
  /** Epoch of the next step, 0-based. */
  readonly epoch: number;
  /** Index in that epoch's shuffled order where the next step's first item sits. */
  readonly positionInEpoch: number;
  /** The shuffle's random stream: Philox (seed, "train-shuffle/<epoch>"); counter-based, so this is its whole state. */
  readonly rng: { readonly algorithm: 'philox4x32-10'; readonly seed: number; readonly stream: string };
  /** The run's hyperparameters. */
  readonly hyperparameters: TrainHyperparameters;
  /** Fingerprint of the training data (token ids and C). */
  readonly dataFingerprint: string;
  /** Examples or pairs. */
  readonly numExamples: number;
  /** Training time so far. */
  readonly elapsedSeconds: number;
  /** The weights, by Hugging Face name. */
  readonly weights: TensorMap;
  /** AdamW state by weight name. */
  readonly optimizer: AdamWState;
  /** DPO: the reference log-probs, so a resumed run needs no reference model. */
  readonly referenceLogprobs: ReferenceLogprobs | null;
}

const FORMAT = 'cream-training-state';
const FORMAT_VERSION = 1;
const LATEST_FILE = 'latest.json';
const STATE_FILE = 'state.json';
const WEIGHTS_FILE = 'weights.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const REFERENCE_FILE = 'reference.safetensors';
const STEP_DIR = /^step-(\d+)$/;

/** Name of the snapshot directory of `step`. */
export function snapshotName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/**
 * Writes `state` as a new snapshot under `directory` (created if needed),
 * atomically switches latest.json to it, and removes all but the newest
 * `keep` snapshots. Returns the snapshot's path.
 */
export async function saveTrainingState(directory: string, state: TrainingState, keep = 1): Promise<string> {
  if (!(Number.isInteger(keep) && keep >= 1)) throw new TrainingStateError(`keep must be a positive integer, got ${keep}`, directory, 'keep');
  await mkdir(directory, { recursive: true });
  const name = snapshotName(state.step);
  const temporary = path.join(directory, `.tmp-${name}-${process.pid}-${Date.now()}`);
  const final = path.join(directory, name);
  await mkdir(temporary);
  try {
    await writeFileSynced(path.join(temporary, STATE_FILE), JSON.stringify(stateJson(state), jsonReplacer, 2) + '\n');
    await writeSafetensors(path.join(temporary, WEIGHTS_FILE), state.weights, { format: 'pt' });
    const moments: TensorMap = new Map();
    for (const [weight, entry] of state.optimizer) {
      moments.set(`exp_avg/${weight}`, { shape: [...entry.shape], data: entry.m });
      moments.set(`exp_avg_sq/${weight}`, { shape: [...entry.shape], data: entry.v });
    }
    await writeSafetensors(path.join(temporary, OPTIMIZER_FILE), moments);
    if (state.referenceLogprobs !== null) {
      const { chosen, rejected } = state.referenceLogprobs;
      await writeSafetensors(
        path.join(temporary, REFERENCE_FILE),
        new Map([
          ['chosen', { shape: [chosen.length], data: chosen }],
          ['rejected', { shape: [rejected.length], data: rejected }],
        ]),
      );
    }
    await syncDirectory(temporary);
    await rm(final, { recursive: true, force: true }); // a snapshot of this step that latest.json never pointed at
    await rename(temporary, final);
    await syncDirectory(directory);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
  const latestTemporary = path.join(directory, `.tmp-${LATEST_FILE}-${process.pid}-${Date.now()}`);
  await writeFileSynced(latestTemporary, JSON.stringify({ format: FORMAT, step: state.step, path: name }) + '\n');
  await rename(latestTemporary, path.join(directory, LATEST_FILE));
  await syncDirectory(directory);
  await pruneSnapshots(directory, name, keep);
  return final;
}

/** The path of the snapshot latest.json points at, or null when `directory` holds none. */
export async function latestSnapshot(directory: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path.join(directory, LATEST_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TrainingStateError(`cannot read ${LATEST_FILE}: ${(error as Error).message}`, directory, LATEST_FILE, { cause: error });
  }
  const latest = parseJson(text, directory, LATEST_FILE) as { format?: unknown; path?: unknown };
  if (latest.format !== FORMAT || typeof latest.path !== 'string' || !STEP_DIR.test(latest.path)) {
    throw new TrainingStateError(`${LATEST_FILE} is not a ${FORMAT} pointer`, directory, LATEST_FILE);
  }
  return path.join(directory, latest.path);
}

/** Reads the newest snapshot of `directory` (TrainingStateError when there is none or it is malformed). */
export async function loadTrainingState(directory: string): Promise<TrainingState> {
  const snapshot = await latestSnapshot(directory);
  if (snapshot === null) throw new TrainingStateError(`no training state in ${directory}`, directory, LATEST_FILE);
  let text: string;
  try {
    text = await readFile(path.join(snapshot, STATE_FILE), 'utf8');
  } catch (error) {
    throw new TrainingStateError(`cannot read ${STATE_FILE}: ${(error as Error).message}`, snapshot, STATE_FILE, { cause: error });
  }
  const json = parseJson(text, snapshot, STATE_FILE) as StateJson;
  if (json.format !== FORMAT || json.version !== FORMAT_VERSION) {
    throw new TrainingStateError(`${STATE_FILE} is not ${FORMAT} version ${FORMAT_VERSION}`, snapshot, 'version');
  }
  for (const field of ['step', 'totalSteps', 'epoch', 'positionInEpoch', 'numExamples'] as const) {
    if (!(Number.isInteger(json[field]) && json[field] >= 0)) {
      throw new TrainingStateError(`${STATE_FILE}: ${field} must be an integer >= 0`, snapshot, field);
    }
  }
  if (json.kind !== 'sft' && json.kind !== 'dpo') throw new TrainingStateError(`${STATE_FILE}: unknown kind`, snapshot, 'kind');

  const weights = (await readTensors(path.join(snapshot, WEIGHTS_FILE), snapshot)).tensors;
  const moments = (await readTensors(path.join(snapshot, OPTIMIZER_FILE), snapshot)).tensors;
  const optimizer: AdamWState = new Map();
  for (const [weight, step] of Object.entries(json.optimizerSteps ?? {})) {
    const m = moments.get(`exp_avg/${weight}`);
    const v = moments.get(`exp_avg_sq/${weight}`);
    if (m === undefined || v === undefined || !(Number.isInteger(step) && step >= 0)) {
      throw new TrainingStateError(`optimizer state of ${weight} is incomplete`, snapshot, OPTIMIZER_FILE);
    }
    optimizer.set(weight, { step, shape: m.shape, m: m.data, v: v.data });
  }
  let referenceLogprobs: ReferenceLogprobs | null = null;
  if (json.kind === 'dpo') {
    const reference = (await readTensors(path.join(snapshot, REFERENCE_FILE), snapshot)).tensors;
    const chosen = reference.get('chosen');
    const rejected = reference.get('rejected');
    if (chosen === undefined || rejected === undefined || chosen.data.length !== json.numExamples || rejected.data.length !== json.numExamples) {
      throw new TrainingStateError(`${REFERENCE_FILE} does not hold ${json.numExamples} pairs`, snapshot, REFERENCE_FILE);
    }
    referenceLogprobs = { chosen: chosen.data, rejected: rejected.data, dataFingerprint: json.referenceFingerprint ?? '' };
  }
  return {
    kind: json.kind,
    step: json.step,
    totalSteps: json.totalSteps,
    epoch: json.epoch,
    positionInEpoch: json.positionInEpoch,
    rng: json.rng,
    hyperparameters: json.hyperparameters,
    dataFingerprint: json.dataFingerprint,
    numExamples: json.numExamples,
    elapsedSeconds: json.elapsedSeconds,
    weights,
    optimizer,
    referenceLogprobs,
  };
}

// state.json: the scalar part of a TrainingState.
interface StateJson {
  format: string;
  version: number;
  kind: TrainKind;
  step: number;
  totalSteps: number;
  epoch: number;
  positionInEpoch: number;
  rng: TrainingState['rng'];
  hyperparameters: TrainHyperparameters;
  dataFingerprint: string;
  numExamples: number;
  elapsedSeconds: number;
  optimizerSteps: Record<string, number>;
  referenceFingerprint?: string;
}

function stateJson(state: TrainingState): StateJson {
  return {
    format: FORMAT,
    version: FORMAT_VERSION,
    kind: state.kind,
    step: state.step,
    totalSteps: state.totalSteps,
    epoch: state.epoch,
    positionInEpoch: state.positionInEpoch,
    rng: state.rng,
    hyperparameters: state.hyperparameters,
    dataFingerprint: state.dataFingerprint,
    numExamples: state.numExamples,
    elapsedSeconds: state.elapsedSeconds,
    optimizerSteps: Object.fromEntries([...state.optimizer].map(([name, entry]) => [name, entry.step])),
    ...(state.referenceLogprobs === null ? {} : { referenceFingerprint: state.referenceLogprobs.dataFingerprint }),
  };
}

// JSON has no Infinity (maxGradNorm may be); it round-trips as the string "Infinity".
function jsonReplacer(_key: string, value: unknown): unknown {
  return value === Infinity ? 'Infinity' : value;
}

function parseJson(text: string, directory: string, file: string): unknown {
  try {
    return JSON.parse(text, (_key, value: unknown) => (value === 'Infinity' ? Infinity : value));
  } catch (error) {
    throw new TrainingStateError(`${file} is not valid JSON: ${(error as Error).message}`, directory, file, { cause: error });
  }
}

async function readTensors(file: string, snapshot: string) {
  try {
    return await readSafetensors(file);
  } catch (error) {
    throw new TrainingStateError(`cannot read ${path.basename(file)}: ${(error as Error).message}`, snapshot, path.basename(file), {
      cause: error,
    });
  }
}

async function writeFileSynced(file: string, text: string): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Makes a rename inside `directory` durable (POSIX needs the directory fsynced).
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Removes all snapshots but the newest `keep` (always keeping `current`), and
// temporary directories left by an interrupted save.
async function pruneSnapshots(directory: string, current: string, keep: number): Promise<void> {
  const entries = await readdir(directory);
  const snapshots = entries.filter((entry) => STEP_DIR.test(entry) && entry !== current).sort().reverse();
  const stale = [...snapshots.slice(keep - 1), ...entries.filter((entry) => entry.startsWith('.tmp-'))];
  for (const entry of stale) await rm(path.join(directory, entry), { recursive: true, force: true });
}
