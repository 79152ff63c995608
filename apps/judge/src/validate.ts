// The judge's request checks, as judge.proto documents each field's limits:
// everything that can be checked without a model is checked here, before a
// version is loaded; the vocabulary and context checks take the model's sizes.
// Every failure is an InvalidArgumentError naming the proto field path
// (e.g. `items[3].tokens.prompt_ids[7]`), so a caller can fix the exact field.
import type { RubricStyle as RubricPromptStyle } from '@cream/cream';
import type { PromptInput } from '@cream/model';
import { RubricStyle, type JudgeWithRubricRequest, type Prompt, type PromptResponse, type SamplingParams, type ScoreLogProbsRequest } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

/** Items per ScoreLogProbs call (judge.proto). */
export const MAX_SCORE_ITEMS = 65536;
/** Items per JudgeWithRubric call (judge.proto). */
export const MAX_JUDGE_ITEMS = 4096;
/** Judgments per response, and the default for 0 (judge.proto). */
export const MAX_JUDGMENTS = 16;
/** num_judgments = 0 means this many. */
export const DEFAULT_JUDGMENTS = 3;
/** An item id's length in bytes (judge.proto). */
export const MAX_ID_BYTES = 256;
/** A response, a raw text prompt or a chat turn's content, in bytes (common.proto, judge.proto). */
export const MAX_TEXT_BYTES = 1024 * 1024;
/** Turns of a conversation (common.proto). */
export const MAX_TURNS = 256;
/** A chat role's length in bytes (common.proto). */
export const MAX_ROLE_BYTES = 32;
/** The roles the chat templates understand (common.proto). */
export const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant'];
/** Sampling defaults and limits (common.proto SamplingParams). */
export const SAMPLING = {
  /** Unset temperature: the paper's sampling temperature. */
  defaultTemperature: 0.8,
  maxTemperature: 10,
  /** Unset top_p: the paper's nucleus mass. */
  defaultTopP: 0.95,
  /** max_new_tokens = 0 means this many. */
  defaultMaxNewTokens: 256,
  /** The server's max_new_tokens limit unless configured otherwise. */
  defaultMaxNewTokensLimit: 1024,
  maxStopStrings: 8,
  maxStopBytes: 64,
} as const;

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Checks a model_version (or version) field is given; its name rules are the registry's. */
export function requireVersion(value: string, field: string): string {
  if (value.length === 0) throw new InvalidArgumentError(`${field} is empty; give a registry version name or "latest"`, field);
  return value;
}

function checkItemCount(count: number, max: number): void {
  if (count === 0) throw new InvalidArgumentError(`items is empty; it needs 1 to ${max} items`, 'items', { limit: max });
  if (count > max) throw new InvalidArgumentError(`items has ${count} items; at most ${max} are allowed`, 'items', { limit: max });
}

function checkIds(ids: readonly string[]): void {
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const field = `items[${i}].id`;
    if (id.length === 0) throw new InvalidArgumentError(`${field} is empty; it needs 1 to ${MAX_ID_BYTES} bytes`, field, { limit: MAX_ID_BYTES });
    if (byteLength(id) > MAX_ID_BYTES) throw new InvalidArgumentError(`${field} has ${byteLength(id)} bytes; at most ${MAX_ID_BYTES}`, field, { limit: MAX_ID_BYTES });
    const first = seen.get(id);
    if (first !== undefined) throw new InvalidArgumentError(`${field} "${id}" repeats items[${first}].id; ids are unique within a request`, field);
    seen.set(id, i);
  });
}

function checkText(text: string, field: string, what: string): void {
  if (text.length === 0) throw new InvalidArgumentError(`${field} is empty; ${what} needs at least 1 byte`, field, { limit: 1 });
  if (byteLength(text) > MAX_TEXT_BYTES) {
    throw new InvalidArgumentError(`${field} has ${byteLength(text)} bytes; at most ${MAX_TEXT_BYTES} (1 MiB)`, field, { limit: MAX_TEXT_BYTES });
  }
}

/** The prompt as the model library takes it, after checking it (`field` names the Prompt). */
export function decodePrompt(prompt: Prompt | undefined, field: string): PromptInput {
  if (!prompt) throw new InvalidArgumentError(`${field} is missing`, field);
  const content = prompt.content;
  if (!content) throw new InvalidArgumentError(`${field}.content is missing: give text or chat`, `${field}.content`);
  if (content.$case === 'text') {
    checkText(content.value, `${field}.text`, 'a raw text prompt');
    return { text: content.value };
  }
  const messages = content.value.messages;
  const turns = `${field}.chat.messages`;
  if (messages.length === 0) throw new InvalidArgumentError(`${turns} is empty; a conversation needs 1 to ${MAX_TURNS} turns`, turns, { limit: MAX_TURNS });
  if (messages.length > MAX_TURNS) throw new InvalidArgumentError(`${turns} has ${messages.length} turns; at most ${MAX_TURNS}`, turns, { limit: MAX_TURNS });
  messages.forEach((message, j) => {
    const role = `${turns}[${j}].role`;
    if (byteLength(message.role) > MAX_ROLE_BYTES || !CHAT_ROLES.includes(message.role)) {
      throw new InvalidArgumentError(`${role} is "${message.role.slice(0, 40)}"; it must be one of ${CHAT_ROLES.join(', ')}`, role);
    }
    const contentField = `${turns}[${j}].content`;
    if (byteLength(message.content) > MAX_TEXT_BYTES) {
      throw new InvalidArgumentError(`${contentField} has ${byteLength(message.content)} bytes; at most ${MAX_TEXT_BYTES} (1 MiB)`, contentField, { limit: MAX_TEXT_BYTES });
    }
  });
  if (messages.every((message) => message.content.length === 0)) throw new InvalidArgumentError(`${turns} has no text: every turn's content is empty`, turns);
  return { messages: messages.map((m) => ({ role: m.role, content: m.content })) };
}

function decodePromptResponse(pair: PromptResponse | undefined, field: string): { prompt: PromptInput; response: string } {
  if (!pair) throw new InvalidArgumentError(`${field} is missing`, field);
  const prompt = decodePrompt(pair.prompt, `${field}.prompt`);
  checkText(pair.response, `${field}.response`, 'a response');
  return { prompt, response: pair.response };
}

function checkIdList(ids: readonly number[], field: string): void {
  if (ids.length === 0) throw new InvalidArgumentError(`${field} is empty; it needs at least 1 token id`, field, { limit: 1 });
  ids.forEach((id, j) => {
    if (!(Number.isInteger(id) && id >= 0)) throw new InvalidArgumentError(`${field}[${j}] = ${id} is not a token id (an integer >= 0)`, `${field}[${j}]`);
  });
}

/** One ScoreLogProbs item, checked: text to tokenize with the model, or token ids as given. */
export type ScoreInput =
  | { id: string; kind: 'text'; prompt: PromptInput; response: string }
  | { id: string; kind: 'tokens'; promptIds: number[]; responseIds: number[] };

/** Checks a ScoreLogProbs request up to what needs the model. */
export function checkScoreRequest(request: ScoreLogProbsRequest): { version: string; items: ScoreInput[] } {
  const version = requireVersion(request.modelVersion, 'model_version');
  checkItemCount(request.items.length, MAX_SCORE_ITEMS);
  checkIds(request.items.map((item) => item.id));
  const items = request.items.map((item, i): ScoreInput => {
    const input = item.input;
    if (!input) throw new InvalidArgumentError(`items[${i}].input is missing: give text or tokens`, `items[${i}].input`);
    if (input.$case === 'text') return { id: item.id, kind: 'text', ...decodePromptResponse(input.value, `items[${i}].text`) };
    checkIdList(input.value.promptIds, `items[${i}].tokens.prompt_ids`);
    checkIdList(input.value.responseIds, `items[${i}].tokens.response_ids`);
    return { id: item.id, kind: 'tokens', promptIds: input.value.promptIds, responseIds: input.value.responseIds };
  });
  return { version, items };
}

/** The model sizes the token checks need. */
export interface ModelLimits {
  vocabSize: number;
  contextLength: number;
}

/**
 * Checks one item's token ids against the model: every id in [0, vocab), a
 * prompt and a response of at least one token each, and prompt plus response
 * within the context. `field` names the item's input (`items[i].text`).
 */
export function checkTokenizedItem(promptIds: readonly number[], responseIds: readonly number[], limits: ModelLimits, field: string, tokenized: boolean): void {
  const idsField = (part: 'prompt_ids' | 'response_ids') => (tokenized ? `${field}.${part}` : `${field}.${part === 'prompt_ids' ? 'prompt' : 'response'}`);
  for (const [part, ids] of [['prompt_ids', promptIds], ['response_ids', responseIds]] as const) {
    if (ids.length === 0) throw new InvalidArgumentError(`${idsField(part)} has no tokens; it needs at least 1`, idsField(part), { limit: 1 });
    ids.forEach((id, j) => {
      if (!(Number.isInteger(id) && id >= 0 && id < limits.vocabSize)) {
        const at = tokenized ? `${idsField(part)}[${j}]` : idsField(part);
        throw new InvalidArgumentError(`${at}: token id ${id} is outside the vocabulary [0, ${limits.vocabSize})`, at, { limit: limits.vocabSize });
      }
    });
  }
  const length = promptIds.length + responseIds.length;
  if (length > limits.contextLength) {
    throw new InvalidArgumentError(
      `${field} has ${length} tokens (prompt ${promptIds.length} + response ${responseIds.length}); the model's context length is ${limits.contextLength}`,
      field,
      { limit: limits.contextLength },
    );
  }
}

/** Sampling of the judgments with the documented defaults applied. */
export interface JudgeSampling {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  stop: string[];
  seed: number;
}

/** SamplingParams with defaults applied and limits checked (top_k against the vocabulary is checked by checkTopK). */
export function decodeSampling(sampling: SamplingParams | undefined, maxNewTokensLimit: number, field = 'sampling'): JudgeSampling {
  const temperature = sampling?.temperature ?? SAMPLING.defaultTemperature;
  if (!(Number.isFinite(temperature) && temperature >= 0 && temperature <= SAMPLING.maxTemperature)) {
    throw new InvalidArgumentError(`${field}.temperature = ${temperature}; it must be in [0, ${SAMPLING.maxTemperature}] (0 is greedy)`, `${field}.temperature`, {
      limit: SAMPLING.maxTemperature,
    });
  }
  const topP = sampling?.topP ?? SAMPLING.defaultTopP;
  if (!(topP > 0 && topP <= 1)) throw new InvalidArgumentError(`${field}.top_p = ${topP}; it must be in (0, 1]`, `${field}.top_p`, { limit: '(0, 1]' });
  const requested = sampling?.maxNewTokens ?? 0;
  const maxNewTokens = requested === 0 ? Math.min(SAMPLING.defaultMaxNewTokens, maxNewTokensLimit) : requested;
  if (maxNewTokens > maxNewTokensLimit) {
    throw new InvalidArgumentError(`${field}.max_new_tokens = ${maxNewTokens}; this server allows at most ${maxNewTokensLimit}`, `${field}.max_new_tokens`, {
      limit: maxNewTokensLimit,
    });
  }
  const stop = sampling?.stop ?? [];
  if (stop.length > SAMPLING.maxStopStrings) {
    throw new InvalidArgumentError(`${field}.stop has ${stop.length} strings; at most ${SAMPLING.maxStopStrings}`, `${field}.stop`, { limit: SAMPLING.maxStopStrings });
  }
  stop.forEach((s, i) => {
    if (s.length === 0 || byteLength(s) > SAMPLING.maxStopBytes) {
      throw new InvalidArgumentError(`${field}.stop[${i}] has ${byteLength(s)} bytes; a stop string has 1 to ${SAMPLING.maxStopBytes}`, `${field}.stop[${i}]`, {
        limit: SAMPLING.maxStopBytes,
      });
    }
  });
  const seed = sampling?.seed ?? 0;
  if (!(Number.isSafeInteger(seed) && seed >= 0)) {
    throw new InvalidArgumentError(`${field}.seed = ${seed}; it must be an integer in [0, 2^53)`, `${field}.seed`, { limit: Number.MAX_SAFE_INTEGER });
  }
  return { temperature, topP, topK: sampling?.topK ?? 0, maxNewTokens, stop: [...stop], seed };
}

/** top_k is at most the vocabulary size (0 is no limit). */
export function checkTopK(topK: number, vocabSize: number, field = 'sampling.top_k'): void {
  if (topK > vocabSize) throw new InvalidArgumentError(`${field} = ${topK}; the model's vocabulary has ${vocabSize} tokens`, field, { limit: vocabSize });
}

/** One JudgeWithRubric item, checked. */
export interface JudgeInput {
  id: string;
  /** The text the rubric quotes as the user's question: a raw prompt, or the conversation's last turn. */
  question: string;
  response: string;
}

/** The rubric wording of a request's style field (unspecified: the paper's full text). */
export function decodeRubricStyle(style: RubricStyle): RubricPromptStyle {
  switch (style) {
    case RubricStyle.RUBRIC_STYLE_UNSPECIFIED:
    case RubricStyle.RUBRIC_STYLE_FULL:
      return 'full';
    case RubricStyle.RUBRIC_STYLE_COMPACT:
      return 'compact';
    default:
      throw new InvalidArgumentError(`style = ${String(style)}; use RUBRIC_STYLE_FULL or RUBRIC_STYLE_COMPACT`, 'style');
  }
}

/** Checks a JudgeWithRubric request up to what needs the model; applies the defaults. */
export function checkJudgeRequest(
  request: JudgeWithRubricRequest,
  maxNewTokensLimit: number,
): { version: string; items: JudgeInput[]; numJudgments: number; sampling: JudgeSampling; style: RubricPromptStyle } {
  const version = requireVersion(request.modelVersion, 'model_version');
  checkItemCount(request.items.length, MAX_JUDGE_ITEMS);
  checkIds(request.items.map((item) => item.id));
  const numJudgments = request.numJudgments === 0 ? DEFAULT_JUDGMENTS : request.numJudgments;
  if (numJudgments > MAX_JUDGMENTS) {
    throw new InvalidArgumentError(`num_judgments = ${numJudgments}; at most ${MAX_JUDGMENTS} judgments per response`, 'num_judgments', { limit: MAX_JUDGMENTS });
  }
  const sampling = decodeSampling(request.sampling, maxNewTokensLimit);
  const style = decodeRubricStyle(request.style);
  const items = request.items.map((item, i): JudgeInput => {
    const { prompt, response } = decodePromptResponse(item.item, `items[${i}].item`);
    // The last turn is the one the response answers (common.proto Conversation).
    const question = 'text' in prompt ? prompt.text : prompt.messages[prompt.messages.length - 1].content;
    return { id: item.id, question, response };
  });
  return { version, items, numJudgments, sampling, style };
}
