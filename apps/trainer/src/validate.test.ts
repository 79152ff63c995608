// Unit tests of the Train input validation: the spec's defaults and ranges,
// and the data chunks' fields, each error naming the offending field.
import { Schedule, TrainKind, type TrainData, type TrainJobSpec } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { describe, expect, it } from 'vitest';
import { validateChunk, validateSpec } from './validate';

function spec(overrides: Partial<TrainJobSpec> = {}): TrainJobSpec {
  return {
    jobId: 'j1',
    kind: TrainKind.TRAIN_KIND_DPO,
    baseVersion: 'm1',
    referenceVersion: '',
    outputVersion: '',
    hyperparameters: undefined,
    consistencyRate: undefined,
    waitIfBusy: false,
    seed: 0,
    recipe: {},
    ...overrides,
  };
}

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as InvalidArgumentError).field;
  }
  throw new Error('did not throw');
}

const prompt = (text: string) => ({ id: '', content: { $case: 'text' as const, value: text } });
const pair = (id: string, chosen: string, rejected: string, weight?: number) => ({ id, prompt: prompt('q'), chosen, rejected, weight });
const data = (d: Partial<TrainData>): TrainData => ({ sftExamples: [], preferencePairs: [], ...d });

describe('validateSpec', () => {
  it('applies the defaults: reference = base, output = job id, C = 1', () => {
    const plan = validateSpec(spec());
    expect(plan).toMatchObject({ jobId: 'j1', kind: 'dpo', baseVersion: 'm1', referenceVersion: 'm1', outputVersion: 'j1', consistencyRate: 1 });
    expect(plan.overrides).toEqual({ seed: 0 });
  });

  it('assigns a job id when none is given', () => {
    expect(validateSpec(spec({ jobId: '' })).jobId).toMatch(/^job-\d{8}-\d{6}-[0-9a-f]{6}$/);
  });

  it('maps the hyperparameters it is given', () => {
    const plan = validateSpec(spec({ hyperparameters: { learningRate: 1e-3, epochs: 3, batchSize: 4, gradientAccumulation: 2, schedule: Schedule.SCHEDULE_LINEAR } }));
    expect(plan.overrides).toMatchObject({ learningRate: 1e-3, epochs: 3, batchSize: 4, gradientAccumulation: 2, schedule: 'linear' });
  });

  it.each<[string, Partial<TrainJobSpec>, string]>([
    ['no kind', { kind: TrainKind.TRAIN_KIND_UNSPECIFIED }, 'spec.kind'],
    ['no base', { baseVersion: '' }, 'spec.base_version'],
    ['a malformed base', { baseVersion: '../x' }, 'spec.base_version'],
    ['a bad job id', { jobId: 'a b' }, 'spec.job_id'],
    ['output "latest"', { outputVersion: 'latest' }, 'spec.output_version'],
    ['C above 1', { consistencyRate: 1.5 }, 'spec.consistency_rate'],
    ['C below 0', { consistencyRate: -0.1 }, 'spec.consistency_rate'],
    ['a reference for SFT', { kind: TrainKind.TRAIN_KIND_SFT, referenceVersion: 'm0' }, 'spec.reference_version'],
    ['learning rate 0', { hyperparameters: { learningRate: 0, schedule: 0 } }, 'hyperparameters.learning_rate'],
    ['learning rate above 1', { hyperparameters: { learningRate: 2, schedule: 0 } }, 'hyperparameters.learning_rate'],
    ['0 epochs', { hyperparameters: { epochs: 0, schedule: 0 } }, 'hyperparameters.epochs'],
    ['batch 5000', { hyperparameters: { batchSize: 5000, schedule: 0 } }, 'hyperparameters.batch_size'],
    ['accumulation not dividing', { hyperparameters: { batchSize: 6, gradientAccumulation: 4, schedule: 0 } }, 'hyperparameters.gradient_accumulation'],
    ['warmup 1', { hyperparameters: { warmupRatio: 1, schedule: 0 } }, 'hyperparameters.warmup_ratio'],
    ['negative decay', { hyperparameters: { weightDecay: -1, schedule: 0 } }, 'hyperparameters.weight_decay'],
    ['beta 0', { hyperparameters: { beta: 0, schedule: 0 } }, 'hyperparameters.beta'],
    ['adam beta2 1', { hyperparameters: { adamBeta2: 1, schedule: 0 } }, 'hyperparameters.adam_beta2'],
  ])('refuses %s', (_name, overrides, field) => {
    expect(fieldOf(() => validateSpec(spec(overrides)))).toBe(field);
  });
});

describe('validateChunk', () => {
  it('keeps valid pairs with their weights', () => {
    const items = validateChunk(data({ preferencePairs: [pair('a', 'x', 'y', 0.4), pair('b', 'x', 'z')] }), 'dpo', 0, new Set());
    expect(items).toEqual([
      { kind: 'dpo', id: 'a', prompt: { text: 'q' }, chosen: 'x', rejected: 'y', weight: 0.4 },
      { kind: 'dpo', id: 'b', prompt: { text: 'q' }, chosen: 'x', rejected: 'z', weight: undefined },
    ]);
  });

  it('names preference_pairs[i].rejected and the chunk when chosen equals rejected', () => {
    let error: InvalidArgumentError | undefined;
    try {
      validateChunk(data({ preferencePairs: [pair('a', 'x', 'y'), pair('b', 'same', 'same')] }), 'dpo', 2, new Set());
    } catch (e) {
      error = e as InvalidArgumentError;
    }
    expect(error?.field).toBe('preference_pairs[1].rejected');
    expect(error?.message).toContain('data message 2');
  });

  it('refuses ids repeated across chunks', () => {
    const seen = new Set<string>();
    validateChunk(data({ preferencePairs: [pair('a', 'x', 'y')] }), 'dpo', 0, seen);
    expect(fieldOf(() => validateChunk(data({ preferencePairs: [pair('a', 'x', 'z')] }), 'dpo', 1, seen))).toBe('preference_pairs[0].id');
  });

  it.each<[string, Partial<TrainData>, 'sft' | 'dpo', string]>([
    ['a weight above 1', { preferencePairs: [pair('a', 'x', 'y', 1.2)] }, 'dpo', 'preference_pairs[0].weight'],
    ['an empty id', { preferencePairs: [pair('', 'x', 'y')] }, 'dpo', 'preference_pairs[0].id'],
    ['an empty chosen', { preferencePairs: [pair('a', '', 'y')] }, 'dpo', 'preference_pairs[0].chosen'],
    ['pairs in an SFT job', { preferencePairs: [pair('a', 'x', 'y')] }, 'sft', 'preference_pairs'],
    ['examples in a DPO job', { sftExamples: [{ id: 'a', prompt: prompt('q'), response: 'r' }] }, 'dpo', 'sft_examples'],
    ['an empty response', { sftExamples: [{ id: 'a', prompt: prompt('q'), response: '' }] }, 'sft', 'sft_examples[0].response'],
    ['an empty prompt', { sftExamples: [{ id: 'a', prompt: prompt(''), response: 'r' }] }, 'sft', 'sft_examples[0].prompt.text'],
    ['no prompt', { sftExamples: [{ id: 'a', prompt: undefined, response: 'r' }] }, 'sft', 'sft_examples[0].prompt'],
  ])('refuses %s', (_name, chunk, kind, field) => {
    expect(fieldOf(() => validateChunk(data(chunk), kind, 0, new Set()))).toBe(field);
  });
});
