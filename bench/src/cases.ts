// The benchmark cases: a model shape and the work measured on it (training
// step, scoring, generation, prefill). The same JSON goes to our worker and to
// the PyTorch baseline, so both run the same shapes and the same steps.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { modelConfigFromHf, randomStream, randomUniform, type ModelConfig } from '@cream/model';

/** The shape of a Llama-style decoder: the ModelConfig fields both implementations build. */
export type BenchShape = Readonly<
  Pick<
    ModelConfig,
    | 'architecture'
    | 'vocabSize'
    | 'hiddenSize'
    | 'nLayers'
    | 'nHeads'
    | 'nKvHeads'
    | 'headDim'
    | 'intermediateSize'
    | 'ropeTheta'
    | 'rmsNormEps'
    | 'tieWordEmbeddings'
    | 'maxPositionEmbeddings'
    | 'attentionBias'
    | 'attentionOutputBias'
    | 'qkNorm'
    | 'ropeScaling'
  >
>;

/** A shape from its sizes; plain multi-head attention, untied, no biases, HF LlamaConfig's other defaults unless given. */
function llamaShape(sizes: Pick<BenchShape, 'vocabSize' | 'hiddenSize' | 'nLayers' | 'nHeads' | 'intermediateSize'> & Partial<BenchShape>): BenchShape {
  return {
    architecture: 'llama',
    nKvHeads: sizes.nHeads,
    headDim: sizes.hiddenSize / sizes.nHeads,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 2048,
    attentionBias: false,
    attentionOutputBias: false,
    qkNorm: false,
    ropeScaling: null,
    ...sizes,
  };
}

/** The work of each metric group. */
export interface BenchWorkload {
  /** One optimizer step (forward, backward, clipping, AdamW) on batch x seq tokens; the loss covers seq - 1 next tokens per row. */
  readonly train: { readonly batch: number; readonly seq: number };
  /**
   * One optimizer step on sequences of varied lengths (random tokens; the
   * loss covers each response), as SFT data comes: ours packs them into rows
   * (trainSft's default) and also runs them one right-padded row each; PyTorch
   * pads them, as a padding collator does.
   */
  readonly varied: { readonly rows: ReadonlyArray<{ readonly prompt: number; readonly response: number }> };
  /**
   * One optimizer step on batch x seq tokens of long sequences (the context's
   * length, up to 1024): attention is a large part of it, and above
   * attentionKeepLimit ours keeps no probabilities between the passes.
   */
  readonly long: { readonly batch: number; readonly seq: number };
  /** Log-probabilities of `response` tokens after `prompt` tokens, for `items` items in one batch. */
  readonly score: { readonly items: number; readonly prompt: number; readonly response: number };
  /** Greedy decoding with a KV cache: `newTokens` tokens after distinct `prompt`-token prompts, per batch size. */
  readonly generate: { readonly batches: readonly number[]; readonly prompt: number; readonly newTokens: number };
  /** The first token of one `prompt`-token prompt: the prompt through the model into a fresh cache, logits of its last position. */
  readonly prefill: { readonly batch: number; readonly prompt: number };
}

/** Metric groups, in the order they run. */
export const METRIC_GROUPS = ['train', 'varied', 'long', 'score', 'generate', 'prefill'] as const;
/** One metric group. */
export type MetricGroup = (typeof METRIC_GROUPS)[number];

/** One benchmark case, as both implementations receive it. */
export interface BenchCase {
  /** Short name: reference, base or micro. */
  readonly name: string;
  /** One line saying what the model is (and where it came from). */
  readonly title: string;
  readonly shape: BenchShape;
  /** Checkpoint directory our side loads (the baseline uses random weights of the same shape); null: random weights. */
  readonly checkpoint: string | null;
  readonly workload: BenchWorkload;
  /** Untimed runs before the timed ones. */
  readonly warmup: number;
  /** Timed runs; each figure is their median. */
  readonly repeats: number;
  /** The groups to run. */
  readonly only: readonly MetricGroup[];
  /** Seed of the random weights and token ids. */
  readonly seed: number;
}

/** Options that shape every case of a run. */
export interface CaseOptions {
  readonly warmup: number;
  readonly repeats: number;
  readonly only: readonly MetricGroup[];
}

/**
 * `count` sequences of `min` to `max` tokens (uniform, the same for every
 * case and run), the first 30% of each its prompt.
 */
export function variedRows(count: number, min: number, max: number): Array<{ prompt: number; response: number }> {
  const stream = randomStream(7, 'bench/varied');
  return Array.from({ length: count }, (_, i) => {
    const length = min + Math.floor(randomUniform(stream, i) * (max - min + 1));
    const prompt = Math.max(1, Math.floor(0.3 * length));
    return { prompt, response: length - prompt };
  });
}

/** The long group of a model whose context holds `context` tokens: sequences of min(1024, context), 2048 tokens a step. */
export function longWorkload(context: number): BenchWorkload['long'] {
  const seq = Math.min(1024, context);
  return { batch: Math.max(1, Math.floor(2048 / seq)), seq };
}

const FULL_WORKLOAD: BenchWorkload = {
  train: { batch: 16, seq: 128 },
  varied: { rows: variedRows(16, 64, 240) },
  long: longWorkload(1024),
  score: { items: 16, prompt: 64, response: 64 },
  generate: { batches: [8, 32], prompt: 64, newTokens: 64 },
  prefill: { batch: 1, prompt: 64 },
};

/** The full workload for a model whose context holds `context` tokens: its long group as longWorkload's. */
function fullWorkload(context: number): BenchWorkload {
  return { ...FULL_WORKLOAD, long: longWorkload(context) };
}

/** Issue 6's Tiny-GPT reference shape: vocab 512, d_model 256, 4 layers, 4 heads, SwiGLU 768. */
export const REFERENCE_SHAPE: BenchShape = llamaShape({ vocabSize: 512, hiddenSize: 256, nLayers: 4, nHeads: 4, intermediateSize: 768 });

/** A micro shape for `--quick` (tests and a smoke check): every path, in seconds. */
export const MICRO_SHAPE: BenchShape = llamaShape({ vocabSize: 64, hiddenSize: 32, nLayers: 2, nHeads: 2, nKvHeads: 1, intermediateSize: 64, tieWordEmbeddings: true, maxPositionEmbeddings: 64 });

const MICRO_WORKLOAD: BenchWorkload = {
  train: { batch: 2, seq: 16 },
  varied: { rows: variedRows(4, 4, 16) },
  long: { batch: 1, seq: 64 },
  score: { items: 2, prompt: 8, response: 8 },
  generate: { batches: [2, 4], prompt: 8, newTokens: 8 },
  prefill: { batch: 1, prompt: 8 },
};

/**
 * The base model's shape when models/m0 is not there yet: the one `cream
 * pretrain` gives M0 (apps/cli/configs/m0-llama.json), with random weights.
 */
export const BASE_FALLBACK_SHAPE: BenchShape = llamaShape({ vocabSize: 768, hiddenSize: 160, nLayers: 4, nHeads: 4, intermediateSize: 432, tieWordEmbeddings: true, maxPositionEmbeddings: 256 });

/** The shipped base model's directory in a workspace. */
export function baseModelDir(workspaceRoot: string): string {
  return join(workspaceRoot, 'models', 'm0');
}

/** The benchmark shape of a model config (e.g. a checkpoint's, through modelConfigFromHf). */
export function shapeOf(config: ModelConfig): BenchShape {
  const { vocabSize, hiddenSize, nLayers, nHeads, nKvHeads, headDim, intermediateSize, ropeTheta, rmsNormEps, tieWordEmbeddings, maxPositionEmbeddings } = config;
  const { architecture, attentionBias, attentionOutputBias, qkNorm, ropeScaling } = config;
  return { architecture, vocabSize, hiddenSize, nLayers, nHeads, nKvHeads, headDim, intermediateSize, ropeTheta, rmsNormEps, tieWordEmbeddings, maxPositionEmbeddings, attentionBias, attentionOutputBias, qkNorm, ropeScaling };
}

/**
 * "vocab 512, d_model 256, 4 layers, 4 heads, SwiGLU 768" (and kv heads, a head
 * width other than d_model / heads, biases, q/k norms, rotary scaling and tying
 * when they apply).
 */
export function describeShape(shape: BenchShape): string {
  const parts = [
    `vocab ${shape.vocabSize}`,
    `d_model ${shape.hiddenSize}`,
    `${shape.nLayers} layers`,
    `${shape.nHeads} heads${shape.nKvHeads === shape.nHeads ? '' : ` (${shape.nKvHeads} kv)`}`,
    `SwiGLU ${shape.intermediateSize}`,
  ];
  if (shape.headDim * shape.nHeads !== shape.hiddenSize) parts.push(`head width ${shape.headDim}`);
  if (shape.attentionBias) parts.push('q/k/v biases');
  if (shape.attentionOutputBias) parts.push('o bias');
  if (shape.qkNorm) parts.push('q/k norms');
  if (shape.ropeScaling !== null) parts.push(`${shape.ropeScaling.type} rotary scaling x${shape.ropeScaling.factor}`);
  if (shape.tieWordEmbeddings) parts.push('tied embeddings');
  return parts.join(', ');
}

/** The longest sequence a workload feeds; the model's context must hold it. */
export function longestSequence(workload: BenchWorkload): number {
  return Math.max(
    workload.train.seq,
    ...workload.varied.rows.map((row) => row.prompt + row.response),
    workload.long.seq,
    workload.score.prompt + workload.score.response,
    workload.generate.prompt + workload.generate.newTokens,
    workload.prefill.prompt,
  );
}

/** The base model's case: models/m0 when it exists, else the fallback shape (the title says which). */
export function baseCase(workspaceRoot: string, options: CaseOptions): BenchCase {
  const dir = baseModelDir(workspaceRoot);
  const configFile = join(dir, 'config.json');
  const shipped = existsSync(configFile) && existsSync(join(dir, 'model.safetensors'));
  const shape = shipped ? shapeOf(modelConfigFromHf(JSON.parse(readFileSync(configFile, 'utf8')))) : BASE_FALLBACK_SHAPE;
  const title = shipped
    ? `base model models/m0 (${describeShape(shape)})`
    : `base model: models/m0 is absent, so its fallback shape (${describeShape(shape)}; random weights)`;
  const workload = fullWorkload(shape.maxPositionEmbeddings);
  return checkContext({ name: 'base', title, shape, checkpoint: shipped ? dir : null, workload, seed: 2, ...options });
}

/**
 * The case of a checkpoint directory the user names (`cream bench --model`):
 * its own config and weights on our side and in the baseline, the full
 * workload (long sequences of its context), or the micro one when `quick`.
 */
export function modelCase(dir: string, options: CaseOptions & { readonly quick?: boolean }): BenchCase {
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new BenchCaseError(`${dir} has no config.json: name a checkpoint directory (config.json and safetensors)`);
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json'))) {
    throw new BenchCaseError(`${dir} has no model.safetensors (or model.safetensors.index.json): name a checkpoint directory (config.json and safetensors)`);
  }
  let config: ModelConfig;
  try {
    config = modelConfigFromHf(JSON.parse(readFileSync(configFile, 'utf8')));
  } catch (error) {
    throw new BenchCaseError(`${configFile}: ${(error as Error).message}`);
  }
  const shape = shapeOf(config);
  const workload = options.quick ? MICRO_WORKLOAD : fullWorkload(shape.maxPositionEmbeddings);
  const { warmup, repeats, only } = options;
  const benchCase = { name: basename(resolve(dir)), title: `checkpoint ${dir} (${describeShape(shape)})`, shape, checkpoint: dir, workload, seed: 4, warmup, repeats, only };
  try {
    return checkContext(benchCase);
  } catch (error) {
    throw new BenchCaseError(`${(error as Error).message} (--quick runs the micro workload, up to ${longestSequence(MICRO_WORKLOAD)} tokens)`);
  }
}

/** A case that cannot be built from what the user named (the message says why). */
export class BenchCaseError extends Error {
  override readonly name = 'BenchCaseError';
}

/** Issue 6's reference case. */
export function referenceCase(options: CaseOptions): BenchCase {
  return { name: 'reference', title: `reference shape (${describeShape(REFERENCE_SHAPE)})`, shape: REFERENCE_SHAPE, checkpoint: null, workload: FULL_WORKLOAD, seed: 1, ...options };
}

/** The micro case of `--quick`. */
export function microCase(options: CaseOptions): BenchCase {
  return { name: 'micro', title: `micro shape (${describeShape(MICRO_SHAPE)})`, shape: MICRO_SHAPE, checkpoint: null, workload: MICRO_WORKLOAD, seed: 3, ...options };
}

function checkContext(benchCase: BenchCase): BenchCase {
  const longest = longestSequence(benchCase.workload);
  if (benchCase.shape.maxPositionEmbeddings < longest) {
    throw new BenchCaseError(`${benchCase.title}: its context (${benchCase.shape.maxPositionEmbeddings}) is shorter than the benchmark's ${longest}-token sequences`);
  }
  return benchCase;
}
