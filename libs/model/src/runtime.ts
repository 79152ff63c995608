// A loaded language model as services and the CLI use it: the decoder, its
// weights, the tokenizer and chat template, behind text-level calls (render a
// prompt, generate text, score a response). One place decides how a prompt
// and a response become token ids, so the generator, the judge, the trainer
// and `cream score` all agree on it.
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config';
import { ContextLengthError, InvalidOptionError } from './errors';
import { generate, type FinishReason } from './generate';
import { loadCheckpoint } from './hf/checkpoint';
import { stopStringPredicate, trimAtStopString, type ChatMessage, type HfTokenizer } from './hf/tokenizer';
import { LlamaModel } from './model';
import { scoreResponses, type ResponseScore } from './score';
import { createWeights, disposeWeights, type ModelWeights } from './weights';

/** A prompt: raw text (tokenized as is, with the tokenizer's special tokens) or a chat rendered with the template. */
export type PromptInput = { text: string } | { messages: readonly ChatMessage[] };

/** Options of LanguageModel.load. */
export interface LoadOptions {
  /** Variable name prefix, needed when several models live in one process (the judge). */
  scope?: string;
  /** Whether the weights are trainable variables (the trainer's policy). Default false. */
  trainable?: boolean;
}

/** One text generation request. */
export interface TextGenerationRequest {
  /** Names the sequence's random stream: same (seed, key), same sample, whatever the batch. */
  key: string;
  /** What the model continues. */
  prompt: PromptInput;
}

/** Options of generateText. */
export interface TextGenerationOptions {
  /** Most new tokens per sequence. */
  maxNewTokens: number;
  /** 0 is greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  /** 0 is off. */
  topK: number;
  /** Base seed. */
  seed: number;
  /** Text stop strings (removed from the returned text). */
  stop?: readonly string[];
  /** Aborts between decoding steps. */
  signal?: AbortSignal;
  /** Called as each sequence finishes, with its index in the request list. */
  onFinished?: (index: number, result: TextGenerationResult) => void;
}

/** One generated text. */
export interface TextGenerationResult {
  /** Decoded text, special tokens skipped, stop string removed. */
  text: string;
  /** Generated ids without the EOS token. */
  tokenIds: number[];
  /** Why it ended. */
  finishReason: FinishReason;
  /** Sum of the generated tokens' log-probs under the unmodified distribution (EOS included when produced). */
  logprobSum: number;
  /** Prompt length in tokens after templating. */
  numPromptTokens: number;
}

/** A model, its weights and tokenizer, ready to serve. */
export class LanguageModel {
  private disposed = false;

  private constructor(
    /** The decoder. */
    readonly model: LlamaModel,
    /** Its variables (keyed by HF tensor name). */
    readonly weights: ModelWeights,
    /** The tokenizer and chat template. */
    readonly tokenizer: HfTokenizer,
    /** generation_config.json, when present. */
    readonly generationConfig: Record<string, unknown> | undefined,
    /** config.json as read. */
    readonly hfConfig: Record<string, unknown>,
  ) {}

  /** Loads a Hugging Face checkpoint directory (config.json, safetensors, tokenizer). */
  static async load(dir: string, options: LoadOptions = {}): Promise<LanguageModel> {
    const checkpoint = await loadCheckpoint(dir);
    const tensors = new Map<string, tf.Tensor>();
    try {
      for (const [name, host] of checkpoint.tensors) tensors.set(name, tf.tensor(host.data, host.shape, 'float32'));
      const weights = createWeights(checkpoint.config, tensors, { scope: options.scope, trainable: options.trainable ?? false });
      return new LanguageModel(new LlamaModel(checkpoint.config, weights), weights, checkpoint.tokenizer, checkpoint.generationConfig, checkpoint.hfConfig);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** Wraps weights that already exist (e.g. a model being trained). */
  static fromWeights(config: ModelConfig, weights: ModelWeights, tokenizer: HfTokenizer, hfConfig: Record<string, unknown>): LanguageModel {
    return new LanguageModel(new LlamaModel(config, weights), weights, tokenizer, undefined, hfConfig);
  }

  /** The model configuration. */
  get config(): ModelConfig {
    return this.model.config;
  }

  /** Bytes of fp32 weights held. */
  get weightBytes(): number {
    let total = 0;
    for (const w of this.weights.values()) total += w.size * 4;
    return total;
  }

  /** Number of parameters. */
  get numParameters(): number {
    let total = 0;
    for (const w of this.weights.values()) total += w.size;
    return total;
  }

  /** End-of-sequence ids: the config's, else the tokenizer's. */
  get eosTokenIds(): readonly number[] {
    if (this.config.eosTokenIds.length > 0) return this.config.eosTokenIds;
    return this.tokenizer.eosTokenId === undefined ? [] : [this.tokenizer.eosTokenId];
  }

  /** Token ids of a prompt: raw text with special tokens, or the chat template with the generation prompt. */
  promptIds(prompt: PromptInput): number[] {
    if ('text' in prompt) return this.tokenizer.encode(prompt.text);
    const rendered = this.tokenizer.applyChatTemplate(prompt.messages, { addGenerationPrompt: true });
    // The template already holds any BOS it wants; do not add another.
    return this.tokenizer.encode(rendered, { addSpecialTokens: false });
  }

  /**
   * Token ids of a response to a prompt: the text without special tokens,
   * then the first EOS id (the model's way of ending the turn), as DPO
   * trainers tokenize chosen and rejected. Scoring and training both use it.
   */
  responseIds(response: string, options: { appendEos?: boolean } = {}): number[] {
    const ids = this.tokenizer.encode(response, { addSpecialTokens: false });
    const eos = this.eosTokenIds[0];
    if ((options.appendEos ?? true) && eos !== undefined) ids.push(eos);
    return ids;
  }

  /** Samples one continuation per request. */
  async generateText(requests: readonly TextGenerationRequest[], options: TextGenerationOptions): Promise<TextGenerationResult[]> {
    this.checkAlive();
    const context = this.config.maxPositionEmbeddings;
    const prompts = requests.map((r, i) => {
      const ids = this.promptIds(r.prompt);
      if (ids.length === 0) throw new InvalidOptionError(`prompt ${i} ("${r.key}") has no tokens`, 'prompt');
      if (ids.length >= context) {
        throw new ContextLengthError(
          `prompt ${i} ("${r.key}") has ${ids.length} tokens; the model's context length is ${context}, leaving no room to generate`,
          ids.length,
          context - 1,
          i,
        );
      }
      return ids;
    });
    const stopStrings = options.stop ?? [];
    const stop = stopStrings.length > 0 ? stopStringPredicate(this.tokenizer, stopStrings) : undefined;
    const eos = new Set(this.eosTokenIds);
    const finish = (index: number, raw: { tokenIds: number[]; finishReason: FinishReason; logprobSum: number }): TextGenerationResult => {
      const tokenIds = raw.finishReason === 'eos' && eos.has(raw.tokenIds[raw.tokenIds.length - 1]) ? raw.tokenIds.slice(0, -1) : raw.tokenIds;
      const decoded = this.tokenizer.decode(tokenIds, { skipSpecialTokens: true });
      const text = raw.finishReason === 'stop' ? trimAtStopString(decoded, stopStrings).text : decoded;
      return { text, tokenIds, finishReason: raw.finishReason, logprobSum: raw.logprobSum, numPromptTokens: prompts[index].length };
    };
    const results = await generate(
      this.model,
      prompts.map((promptIds, i) => ({ promptIds, key: requests[i].key })),
      {
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        seed: options.seed,
        eosTokenIds: [...eos],
        stop: stop ? (ids) => stop(ids) : undefined,
        signal: options.signal,
        onFinished: options.onFinished ? (index, result) => options.onFinished!(index, finish(index, result)) : undefined,
      },
    );
    return results.map((r, i) => finish(i, r));
  }

  /** Sum and mean log-prob of each response given its prompt (prompt masked). */
  async scoreText(
    items: ReadonlyArray<{ prompt: PromptInput; response: string }>,
    options: { batchSize?: number; signal?: AbortSignal; appendEos?: boolean } = {},
  ): Promise<ResponseScore[]> {
    return this.scoreIds(
      items.map((item) => ({ promptIds: this.promptIds(item.prompt), responseIds: this.responseIds(item.response, options) })),
      options,
    );
  }

  /** Sum and mean log-prob of response ids given prompt ids, checked against the vocabulary and context. */
  async scoreIds(
    items: ReadonlyArray<{ promptIds: readonly number[]; responseIds: readonly number[] }>,
    options: { batchSize?: number; signal?: AbortSignal } = {},
  ): Promise<ResponseScore[]> {
    this.checkAlive();
    const context = this.config.maxPositionEmbeddings;
    items.forEach((item, i) => {
      const length = item.promptIds.length + item.responseIds.length;
      if (length > context) {
        throw new ContextLengthError(`item ${i} has ${length} tokens (prompt and response); the model's context length is ${context}`, length, context, i);
      }
    });
    return scoreResponses(this.model, items, { batchSize: options.batchSize, signal: options.signal });
  }

  /** Frees the weights. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
    disposeWeights(this.weights);
  }

  private checkAlive(): void {
    if (this.disposed) throw new InvalidOptionError('this model has been disposed', 'model');
  }
}
