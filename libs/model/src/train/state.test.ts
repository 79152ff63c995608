// Training-state snapshots on disk: round trip, the latest.json switch,
// pruning, leftovers of an interrupted save, and typed errors for a missing
// or malformed snapshot.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrainingStateError } from './errors';
import { resolveHyperparameters } from './hyperparameters';
import { latestSnapshot, loadTrainingState, saveTrainingState, type TrainingState } from './state';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'cream-state-test-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function state(step: number): TrainingState {
  return {
    kind: 'dpo',
    step,
    totalSteps: 10,
    epoch: Math.floor(step / 5),
    positionInEpoch: (step % 5) * 4,
    rng: { algorithm: 'philox4x32-10', seed: 3, stream: `train-shuffle/${Math.floor(step / 5)}` },
    hyperparameters: resolveHyperparameters('dpo', { maxGradNorm: Infinity, batchSize: 4 }),
    dataFingerprint: '0123456789abcdef',
    numExamples: 2,
    elapsedSeconds: 1.5,
    weights: new Map([
      ['model.norm.weight', { shape: [3], data: Float32Array.from([1, 2, 3]) }],
      ['lm_head.weight', { shape: [2, 3], data: Float32Array.from([0.1, -0.2, 0.3, 1e-8, 5, -6]) }],
    ]),
    optimizer: new Map([['lm_head.weight', { step, shape: [2, 3], m: new Float32Array(6).fill(0.5), v: new Float32Array(6).fill(0.25) }]]),
    referenceLogprobs: { chosen: Float32Array.from([-1.5, -2]), rejected: Float32Array.from([-3, -4.25]), dataFingerprint: 'fedcba9876543210' },
  };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('training-state snapshots', () => {
  it('round-trip every field, Infinity included', async () => {
    const directory = path.join(scratch, 'round-trip');
    const written = await saveTrainingState(directory, state(7));
    expect(written).toBe(path.join(directory, 'step-00000007'));
    expect(await loadTrainingState(directory)).toEqual(state(7));
  });

  it('switch latest.json to the newest snapshot and keep only the newest `keep`', async () => {
    const directory = path.join(scratch, 'keep');
    for (const step of [2, 4, 6]) await saveTrainingState(directory, state(step), 2);
    expect(await latestSnapshot(directory)).toBe(path.join(directory, 'step-00000006'));
    expect((await readdir(directory)).sort()).toEqual(['latest.json', 'step-00000004', 'step-00000006']);
    expect((await loadTrainingState(directory)).step).toBe(6);
  });

  it('ignore and clean up what an interrupted save left', async () => {
    const directory = path.join(scratch, 'interrupted');
    await saveTrainingState(directory, state(3));
    // A crash mid-save: a half-written temporary directory and a snapshot latest.json never pointed at.
    await mkdir(path.join(directory, '.tmp-step-00000005-1-2'));
    await mkdir(path.join(directory, 'step-00000005'));
    expect((await loadTrainingState(directory)).step).toBe(3);
    await saveTrainingState(directory, state(5));
    expect((await readdir(directory)).sort()).toEqual(['latest.json', 'step-00000005']);
    expect((await loadTrainingState(directory)).step).toBe(5);
  });

  it('fail with TrainingStateError for a missing, malformed or foreign snapshot', async () => {
    const empty = path.join(scratch, 'empty');
    await mkdir(empty);
    expect(await latestSnapshot(empty)).toBeNull();
    const missing = await caught(loadTrainingState(empty));
    expect(isTrainingStateError(missing) && missing.field).toBe('latest.json');

    const directory = path.join(scratch, 'malformed');
    const snapshot = await saveTrainingState(directory, state(1));
    await writeFile(path.join(snapshot, 'state.json'), '{"format": "cream-training-state", "version": 1, "step": -1');
    const truncated = await caught(loadTrainingState(directory));
    expect(isTrainingStateError(truncated) && truncated.field).toBe('state.json');

    await saveTrainingState(directory, state(2));
    await writeFile(path.join(directory, 'step-00000002', 'optimizer.safetensors'), 'not safetensors');
    const badTensors = await caught(loadTrainingState(directory));
    expect(isTrainingStateError(badTensors) && badTensors.field).toBe('optimizer.safetensors');

    await writeFile(path.join(directory, 'latest.json'), '{"format": "something-else", "path": "step-00000002"}');
    const foreign = await caught(loadTrainingState(directory));
    expect(isTrainingStateError(foreign) && foreign.field).toBe('latest.json');
  });
});
