// Validation of a Train call's input per trainer.proto: the spec (kind,
// versions, job id, hyperparameter ranges, consistency rate, recipe) and every
// data chunk (examples of the right kind, unique non-empty ids, chosen !=
// rejected, weights in [0, 1]). Errors are InvalidArgumentError naming the field.
import { randomBytes } from 'node:crypto';
import type { TrainHyperparameters as LibHyperparameters, PromptInput } from '@cream/model';
import { Schedule, TrainKind, type Prompt, type TrainData, type TrainHyperparameters, type TrainJobSpec } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const ID_MAX_BYTES = 256;
const MAX_PER_MESSAGE = 4096;
const MAX_RECIPE_ENTRIES = 64;

/** A validated spec with its defaults applied. */
export interface JobPlan {
  jobId: string;
  kind: 'sft' | 'dpo';
  baseVersion: string;
  /** DPO: the reference; SFT: empty. */
  referenceVersion: string;
  outputVersion: string;
  /** Overrides of the paper's defaults (only what the caller set). */
  overrides: Partial<LibHyperparameters>;
  /** DPO: C of pairs without their own weight. */
  consistencyRate: number;
  waitIfBusy: boolean;
  recipe: Record<string, string>;
}

/** One validated SFT example or preference pair, still as text. */
export type PlannedItem =
  | { kind: 'sft'; id: string; prompt: PromptInput; response: string }
  | { kind: 'dpo'; id: string; prompt: PromptInput; chosen: string; rejected: string; weight: number | undefined };

function bytes(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/** A fresh server-assigned job id. */
export function newJobId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `job-${stamp}-${randomBytes(3).toString('hex')}`;
}

function checkRange(field: string, value: number | undefined, ok: (v: number) => boolean, range: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isFinite(value) || !ok(value)) {
    throw new InvalidArgumentError(`hyperparameters.${field} is ${value}; it must be ${range}`, `hyperparameters.${field}`, { limit: range });
  }
  return value;
}

/** The caller's hyperparameters checked against the proto's ranges, as library overrides. */
export function hyperparameterOverrides(h: TrainHyperparameters | undefined, seed: number): Partial<LibHyperparameters> {
  const out: { -readonly [K in keyof LibHyperparameters]?: LibHyperparameters[K] } = { seed };
  if (!h) return out;
  const lr = checkRange('learning_rate', h.learningRate, (v) => v > 0 && v <= 1, 'in (0, 1]');
  if (lr !== undefined) out.learningRate = lr;
  const epochs = checkRange('epochs', h.epochs, (v) => Number.isInteger(v) && v >= 1 && v <= 1000, '1 to 1000');
  if (epochs !== undefined) out.epochs = epochs;
  const batch = checkRange('batch_size', h.batchSize, (v) => Number.isInteger(v) && v >= 1 && v <= 4096, '1 to 4096');
  if (batch !== undefined) out.batchSize = batch;
  const accumulation = checkRange('gradient_accumulation', h.gradientAccumulation, (v) => Number.isInteger(v) && v >= 1 && v <= 4096, '1 to 4096');
  if (accumulation !== undefined) {
    const size = batch ?? 16;
    if (size % accumulation !== 0) {
      throw new InvalidArgumentError(
        `hyperparameters.gradient_accumulation ${accumulation} does not divide batch_size ${size}`,
        'hyperparameters.gradient_accumulation',
      );
    }
    out.gradientAccumulation = accumulation;
  }
  const warmup = checkRange('warmup_ratio', h.warmupRatio, (v) => v >= 0 && v < 1, 'in [0, 1)');
  if (warmup !== undefined) out.warmupRatio = warmup;
  const decay = checkRange('weight_decay', h.weightDecay, (v) => v >= 0, '>= 0');
  if (decay !== undefined) out.weightDecay = decay;
  const clip = checkRange('max_grad_norm', h.maxGradNorm, (v) => v > 0, '> 0');
  if (clip !== undefined) out.maxGradNorm = clip;
  const beta = checkRange('beta', h.beta, (v) => v > 0, '> 0');
  if (beta !== undefined) out.beta = beta;
  switch (h.schedule) {
    case Schedule.SCHEDULE_UNSPECIFIED:
    case Schedule.SCHEDULE_COSINE:
      out.schedule = 'cosine';
      break;
    case Schedule.SCHEDULE_CONSTANT:
      out.schedule = 'constant';
      break;
    case Schedule.SCHEDULE_LINEAR:
      out.schedule = 'linear';
      break;
    default:
      throw new InvalidArgumentError(`hyperparameters.schedule ${h.schedule} is not a known schedule`, 'hyperparameters.schedule');
  }
  const length = checkRange('max_sequence_length', h.maxSequenceLength, (v) => Number.isInteger(v) && v >= 2, 'an integer >= 2');
  if (length !== undefined) out.maxSequenceLength = length;
  const b1 = checkRange('adam_beta1', h.adamBeta1, (v) => v >= 0 && v < 1, 'in [0, 1)');
  if (b1 !== undefined) out.adamBeta1 = b1;
  const b2 = checkRange('adam_beta2', h.adamBeta2, (v) => v >= 0 && v < 1, 'in [0, 1)');
  if (b2 !== undefined) out.adamBeta2 = b2;
  const eps = checkRange('adam_epsilon', h.adamEpsilon, (v) => v > 0, '> 0');
  if (eps !== undefined) out.adamEpsilon = eps;
  return out;
}

function checkName(field: string, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(`${field} "${value.slice(0, 40)}" must be 1 to 128 bytes of [A-Za-z0-9._-]`, field);
  }
  return value;
}

/** Validates the spec (the first Train message) and applies its defaults. */
export function validateSpec(spec: TrainJobSpec): JobPlan {
  const jobId = spec.jobId === '' ? newJobId() : checkName('spec.job_id', spec.jobId);
  let kind: 'sft' | 'dpo';
  if (spec.kind === TrainKind.TRAIN_KIND_SFT) kind = 'sft';
  else if (spec.kind === TrainKind.TRAIN_KIND_DPO) kind = 'dpo';
  else throw new InvalidArgumentError('spec.kind must be TRAIN_KIND_SFT or TRAIN_KIND_DPO', 'spec.kind');
  if (spec.baseVersion === '') throw new InvalidArgumentError('spec.base_version is empty; name the version to train from', 'spec.base_version');
  const baseVersion = spec.baseVersion === 'latest' ? 'latest' : checkName('spec.base_version', spec.baseVersion);
  let referenceVersion = '';
  if (kind === 'dpo') {
    referenceVersion = spec.referenceVersion === '' ? baseVersion : spec.referenceVersion === 'latest' ? 'latest' : checkName('spec.reference_version', spec.referenceVersion);
  } else if (spec.referenceVersion !== '') {
    throw new InvalidArgumentError('spec.reference_version is for DPO jobs only', 'spec.reference_version');
  }
  const outputVersion = spec.outputVersion === '' ? jobId : checkName('spec.output_version', spec.outputVersion);
  if (outputVersion === 'latest') throw new InvalidArgumentError('spec.output_version may not be "latest"', 'spec.output_version');
  const rate = spec.consistencyRate;
  if (rate !== undefined && !(Number.isFinite(rate) && rate >= 0 && rate <= 1)) {
    throw new InvalidArgumentError(`spec.consistency_rate is ${rate}; it must be in [0, 1]`, 'spec.consistency_rate', { limit: '[0, 1]' });
  }
  if (rate !== undefined && kind === 'sft') throw new InvalidArgumentError('spec.consistency_rate is for DPO jobs only', 'spec.consistency_rate');
  const recipe = spec.recipe ?? {};
  if (Object.keys(recipe).length > MAX_RECIPE_ENTRIES) {
    throw new InvalidArgumentError(`spec.recipe has ${Object.keys(recipe).length} entries; at most ${MAX_RECIPE_ENTRIES}`, 'spec.recipe', { limit: MAX_RECIPE_ENTRIES });
  }
  const seed = Number(spec.seed ?? 0);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidArgumentError(`spec.seed ${spec.seed} must be below 2^53`, 'spec.seed');
  return {
    jobId,
    kind,
    baseVersion,
    referenceVersion,
    outputVersion,
    overrides: hyperparameterOverrides(spec.hyperparameters, seed),
    consistencyRate: rate ?? 1,
    waitIfBusy: spec.waitIfBusy,
    recipe: { ...recipe },
  };
}

function checkPrompt(prompt: Prompt | undefined, at: string): PromptInput {
  const content = prompt?.content;
  if (!content) throw new InvalidArgumentError(`${at}.prompt has no content: set its text or chat`, `${at}.prompt`);
  if (content.$case === 'text') {
    if (content.value.length === 0) throw new InvalidArgumentError(`${at}.prompt.text is empty`, `${at}.prompt.text`);
    return { text: content.value };
  }
  if (content.$case === 'chat') {
    const messages = content.value.messages;
    if (messages.length === 0 || messages.every((m) => m.content.length === 0)) {
      throw new InvalidArgumentError(`${at}.prompt.chat.messages has no text`, `${at}.prompt.chat.messages`);
    }
    return { messages: messages.map((m) => ({ role: m.role, content: m.content })) };
  }
  throw new InvalidArgumentError(`${at}.prompt must be text or chat`, `${at}.prompt`);
}

function checkId(id: string, at: string, seen: Set<string>): void {
  const size = bytes(id);
  if (size === 0 || size > ID_MAX_BYTES) throw new InvalidArgumentError(`${at}.id must be 1 to ${ID_MAX_BYTES} bytes, got ${size}`, `${at}.id`, { limit: ID_MAX_BYTES });
  if (seen.has(id)) throw new InvalidArgumentError(`${at}.id "${id}" repeats an earlier id; ids must be unique within the job`, `${at}.id`);
  seen.add(id);
}

/**
 * Validates one data message (`chunk`, 0-based among the data messages) of a
 * job of `kind`; `seen` holds the ids so far. Fields are named within the
 * chunk (e.g. preference_pairs[3].rejected), the message says which chunk.
 */
export function validateChunk(data: TrainData, kind: 'sft' | 'dpo', chunk: number, seen: Set<string>): PlannedItem[] {
  const where = `data message ${chunk}`;
  const fail = (message: string, field: string, limit?: number | string): never => {
    throw new InvalidArgumentError(`${where}: ${message}`, field, limit === undefined ? undefined : { limit });
  };
  const items: PlannedItem[] = [];
  if (kind === 'sft') {
    if (data.preferencePairs.length > 0) fail('preference_pairs are for DPO jobs; this is an SFT job', 'preference_pairs');
    if (data.sftExamples.length > MAX_PER_MESSAGE) fail(`${data.sftExamples.length} sft_examples; at most ${MAX_PER_MESSAGE}`, 'sft_examples', MAX_PER_MESSAGE);
    data.sftExamples.forEach((example, i) => {
      const at = `sft_examples[${i}]`;
      try {
        checkId(example.id, at, seen);
        const prompt = checkPrompt(example.prompt, at);
        if (example.response.length === 0) fail(`${at}.response is empty`, `${at}.response`);
        items.push({ kind: 'sft', id: example.id, prompt, response: example.response });
      } catch (error) {
        throw prefixed(error, where);
      }
    });
    return items;
  }
  if (data.sftExamples.length > 0) fail('sft_examples are for SFT jobs; this is a DPO job', 'sft_examples');
  if (data.preferencePairs.length > MAX_PER_MESSAGE) fail(`${data.preferencePairs.length} preference_pairs; at most ${MAX_PER_MESSAGE}`, 'preference_pairs', MAX_PER_MESSAGE);
  data.preferencePairs.forEach((pair, i) => {
    const at = `preference_pairs[${i}]`;
    try {
      checkId(pair.id, at, seen);
      const prompt = checkPrompt(pair.prompt, at);
      if (pair.chosen.length === 0) fail(`${at}.chosen is empty`, `${at}.chosen`);
      if (pair.rejected.length === 0) fail(`${at}.rejected is empty`, `${at}.rejected`);
      if (pair.chosen === pair.rejected) fail(`${at}.rejected equals its chosen; a pair needs two different responses`, `${at}.rejected`);
      const weight = pair.weight;
      if (weight !== undefined && !(Number.isFinite(weight) && weight >= 0 && weight <= 1)) {
        fail(`${at}.weight is ${weight}; it must be in [0, 1]`, `${at}.weight`, '[0, 1]');
      }
      items.push({ kind: 'dpo', id: pair.id, prompt, chosen: pair.chosen, rejected: pair.rejected, weight });
    } catch (error) {
      throw prefixed(error, where);
    }
  });
  return items;
}

function prefixed(error: unknown, where: string): unknown {
  if (error instanceof InvalidArgumentError && !error.message.startsWith(where)) {
    return new InvalidArgumentError(`${where}: ${error.message}`, error.field, { limit: error.limit });
  }
  return error;
}
