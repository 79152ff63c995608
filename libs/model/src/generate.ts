// Batched generation with a KV cache. Identical prompts are prefilled once and
// fanned out; then each step feeds every unfinished sequence its last token,
// pulls the logits to JavaScript and samples there, each sequence with its own
// counter-based random stream named by (seed, key). A sequence's tokens are
// therefore the same alone or in any batch. Finished sequences drop out of the
// compute: their cache rows are removed before the next step.

import * as tf from '@tensorflow/tfjs-core';
import { InvalidOptionError } from './errors';
import type { KvCache } from './kv-cache';
import type { LlamaModel } from './model';
import { checkPositiveInteger, checkSequence, feedSequences } from './prefill';
import { type RandomStream, randomStream, randomUniform } from './random';
import { type SamplingParams, logSumExp, sampleToken, validateSamplingParams } from './sampling';

/** Why a sequence stopped: an EOS token, the stop predicate, maxNewTokens, or the model's context. */
export type FinishReason = 'eos' | 'stop' | 'length' | 'context';

/** One sequence to continue. */
export interface GenerationRequest {
  /** Prompt token ids, at least one. */
  readonly promptIds: readonly number[];
  /**
   * With options.seed, names this sequence's random stream: the same (seed, key)
   * gives the same tokens in any batch; give n samples of a prompt n keys.
   */
  readonly key: string | number;
}

/** Sampling and stopping options of one generate call. */
export interface GenerateOptions {
  /** Most tokens to generate per sequence. */
  readonly maxNewTokens: number;
  /** Divides the logits; 0 is greedy argmax. Default 1 (the model's own distribution). */
  readonly temperature?: number;
  /** Nucleus sampling mass; default 1 (off). */
  readonly topP?: number;
  /** Keep the k most likely tokens; default 0 (off). */
  readonly topK?: number;
  /** Seed of every sequence's stream, an integer in [0, 2^53). Default 0. */
  readonly seed?: number;
  /** Tokens that end a sequence (kept as its last token). Default: the config's eosTokenIds. */
  readonly eosTokenIds?: readonly number[];
  /**
   * Called after each token with the sequence's generated ids so far; true ends
   * it with finish reason 'stop' (the tokens are kept). Text stop strings go here.
   */
  readonly stop?: (generatedIds: readonly number[], requestIndex: number) => boolean;
  /** Prompt positions fed per prefill pass (bounds the attention memory). Default 256. */
  readonly prefillChunkSize?: number;
  /** Aborts between steps, rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called once per sequence as soon as it finishes (to stream results). */
  readonly onFinished?: (requestIndex: number, result: GenerationResult) => void;
}

/** A generated continuation. */
export interface GenerationResult {
  /** Generated token ids (an EOS or stop-triggering token included). */
  readonly tokenIds: number[];
  readonly finishReason: FinishReason;
  /** Sum of the generated tokens' log-probabilities under the model's unmodified distribution. */
  readonly logprobSum: number;
  /** Each generated token's log-probability under the unmodified distribution (before temperature and truncation). */
  readonly tokenLogprobs: number[];
}

// A sequence being generated.
interface Sequence {
  readonly index: number;
  readonly promptLength: number;
  readonly stream: RandomStream;
  readonly tokenIds: number[];
  readonly tokenLogprobs: number[];
  finishReason: FinishReason | null;
}

/**
 * Continues each request's prompt, batched with a KV cache; results in request
 * order. Throws TokenIdError or ContextLengthError (prompt longer than the
 * context) naming the request, InvalidOptionError for bad options.
 */
export async function generate(
  model: LlamaModel,
  requests: readonly GenerationRequest[],
  options: GenerateOptions,
): Promise<GenerationResult[]> {
  const params: SamplingParams = {
    temperature: options.temperature ?? 1,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
  };
  validateSamplingParams(params);
  const { maxNewTokens } = options;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    throw new InvalidOptionError(`maxNewTokens must be an integer >= 0, got ${maxNewTokens}`, 'maxNewTokens');
  }
  const chunkSize = options.prefillChunkSize ?? 256;
  checkPositiveInteger(chunkSize, 'prefillChunkSize', true);
  const seed = options.seed ?? 0;
  if (!(Number.isSafeInteger(seed) && seed >= 0)) {
    throw new InvalidOptionError(`seed must be an integer in [0, 2^53), got ${seed}`, 'seed');
  }
  const eos = new Set(options.eosTokenIds ?? model.config.eosTokenIds);
  const contextLimit = model.config.maxPositionEmbeddings;
  requests.forEach((request, i) => {
    if (request.promptIds.length === 0) throw new InvalidOptionError(`request ${i} has an empty prompt`, 'promptIds');
    checkSequence(model, request.promptIds, i, 'request');
  });

  const sequences: Sequence[] = requests.map((request, index) => ({
    index,
    promptLength: request.promptIds.length,
    stream: randomStream(seed, request.key),
    tokenIds: [],
    tokenLogprobs: [],
    finishReason: null,
  }));
  const results: GenerationResult[] = new Array(requests.length);
  const finish = (sequence: Sequence, reason: FinishReason) => {
    sequence.finishReason = reason;
    const result: GenerationResult = {
      tokenIds: sequence.tokenIds,
      finishReason: reason,
      logprobSum: sequence.tokenLogprobs.reduce((a, b) => a + b, 0),
      tokenLogprobs: sequence.tokenLogprobs,
    };
    results[sequence.index] = result;
    options.onFinished?.(sequence.index, result);
  };
  for (const sequence of sequences) {
    if (maxNewTokens === 0) finish(sequence, 'length');
    else if (sequence.promptLength >= contextLimit) finish(sequence, 'context');
  }
  let active = sequences.filter((s) => s.finishReason === null);
  if (active.length === 0) return results;

  // Prefill each distinct prompt once, then give every request its prompt's cache row.
  const promptRow = new Map<string, number>();
  const prompts: (readonly number[])[] = [];
  const rowOf = active.map((s) => {
    const prompt = requests[s.index].promptIds;
    const name = prompt.join(',');
    if (!promptRow.has(name)) {
      promptRow.set(name, prompts.length);
      prompts.push(prompt);
    }
    return promptRow.get(name) as number;
  });
  const cache = model.createCache(prompts.length);
  try {
    const promptLogits: Float32Array[] = new Array(prompts.length);
    const V = model.config.vocabSize;
    await feedSequences(
      model,
      cache,
      prompts,
      chunkSize,
      (row, start, end) => (prompts[row].length - 1 >= start && prompts[row].length - 1 < end ? [prompts[row].length - 1] : []),
      (hidden) => model.logits(hidden), // [n, V]
      (values, picks) => picks.forEach((pick, j) => (promptLogits[pick.row] = values.slice(j * V, (j + 1) * V))),
      options.signal,
    );
    cache.select(rowOf);
    let logits = rowOf.map((row) => promptLogits[row]);

    for (;;) {
      // Sample one token for every active sequence, and retire the finished.
      active.forEach((sequence, i) => {
        const row = logits[i];
        const step = sequence.tokenIds.length;
        const token = sampleToken(row, params, params.temperature === 0 ? 0 : randomUniform(sequence.stream, step));
        sequence.tokenIds.push(token);
        sequence.tokenLogprobs.push(row[token] - logSumExp(row));
        if (eos.has(token)) finish(sequence, 'eos');
        else if (options.stop?.(sequence.tokenIds, sequence.index)) finish(sequence, 'stop');
        else if (sequence.tokenIds.length >= maxNewTokens) finish(sequence, 'length');
        else if (sequence.promptLength + sequence.tokenIds.length >= contextLimit) finish(sequence, 'context');
      });
      const keep = active.flatMap((sequence, i) => (sequence.finishReason === null ? [i] : []));
      if (keep.length === 0) break;
      if (keep.length < active.length) {
        cache.select(keep);
        active = keep.map((i) => active[i]);
      }
      // Give the event loop a turn per step: a serving process must answer
      // health checks, deliver finished sequences and see cancellations while
      // a long batch decodes (a resolved await alone stays in the microtask queue).
      await new Promise<void>((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
      logits = await decodeStep(model, cache, active.map((s) => s.tokenIds[s.tokenIds.length - 1]));
    }
  } finally {
    cache.dispose();
  }
  return results;
}

// Feeds one token per sequence and returns each sequence's next-token logits.
async function decodeStep(model: LlamaModel, cache: KvCache, tokens: readonly number[]): Promise<Float32Array[]> {
  const B = tokens.length;
  const V = model.config.vocabSize;
  const logits = tf.tidy(() => {
    const hidden = model.hiddenStates(tf.tensor2d(tokens as number[], [B, 1], 'int32'), { cache }); // [B, 1, D]
    return model.logits(tf.reshape(hidden, [B, hidden.shape[2]])); // [B, V]
  });
  try {
    const values = (await logits.data()) as Float32Array;
    return Array.from({ length: B }, (_, b) => values.subarray(b * V, (b + 1) * V));
  } finally {
    logits.dispose();
  }
}
