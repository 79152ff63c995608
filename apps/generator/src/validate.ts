// Validation of Generate and LoadModel requests against the limits that
// generator.proto and common.proto document, with their defaults applied.
// A pure function of the request (and the server's max_new_tokens limit):
// every error is an InvalidArgumentError naming the proto field path, e.g.
// `prompts[2].text` or `sampling.top_p`. The checks that need the model
// (top_k against the vocabulary, a prompt against the context length) are in
// generate.ts, once the call holds its version.
import type { PromptInput } from '@cream/model';
import type { GenerateRequest, Prompt } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

/** Most prompts in one request. */
export const MAX_PROMPTS = 4096;
/** Most samples per prompt. */
export const MAX_SAMPLES = 64;
/** Longest prompt id, bytes. */
export const PROMPT_ID_MAX_BYTES = 256;
/** Longest raw-text prompt or chat turn, bytes (1 MiB). */
export const TEXT_MAX_BYTES = 1024 * 1024;
/** Most turns in a conversation. */
export const MAX_MESSAGES = 256;
/** Longest role name, bytes. */
export const ROLE_MAX_BYTES = 32;
/** The speakers chat templates understand. */
export const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant'];
/** Sampling temperature when unset: the paper's 0.8. */
export const DEFAULT_TEMPERATURE = 0.8;
/** Highest temperature accepted. */
export const MAX_TEMPERATURE = 10;
/** Nucleus mass when unset: the paper's 0.95. */
export const DEFAULT_TOP_P = 0.95;
/** max_new_tokens when 0. */
export const DEFAULT_MAX_NEW_TOKENS = 256;
/** The server's max_new_tokens limit unless configured otherwise. */
export const DEFAULT_MAX_NEW_TOKENS_LIMIT = 1024;
/** Most stop strings. */
export const MAX_STOP_STRINGS = 8;
/** Longest stop string, bytes. */
export const STOP_MAX_BYTES = 64;
/** Longest version name, bytes. */
export const VERSION_MAX_BYTES = 128;
const VERSION_PATTERN = /^[A-Za-z0-9._-]+$/;

/** Sampling parameters with defaults applied. */
export interface Sampling {
  temperature: number;
  topP: number;
  /** 0 is no limit. */
  topK: number;
  maxNewTokens: number;
  stop: string[];
  seed: number;
}

/** One validated prompt. */
export interface PlannedPrompt {
  id: string;
  /** What the model continues: raw text or chat messages. */
  input: PromptInput;
  /** The field path of its content, for errors found later (e.g. over the context length). */
  field: string;
}

/** A validated Generate request. */
export interface GenerationPlan {
  prompts: PlannedPrompt[];
  numSamples: number;
  sampling: Sampling;
  /** The version the call is pinned to, undefined when it takes the serving one. */
  modelVersion: string | undefined;
}

function bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Checks a version name as the registry spells it (1 to 128 bytes of [A-Za-z0-9._-], not starting with a dot). */
export function checkVersionName(value: string, field: string, options: { allowLatest: boolean }): string {
  if (value.length === 0) throw new InvalidArgumentError(`${field} is empty; give a registry version name${options.allowLatest ? ' or "latest"' : ''}`, field);
  const size = bytes(value);
  if (size > VERSION_MAX_BYTES) throw new InvalidArgumentError(`${field} is ${size} bytes; at most ${VERSION_MAX_BYTES}`, field, { limit: VERSION_MAX_BYTES });
  if (!VERSION_PATTERN.test(value) || value.startsWith('.')) {
    throw new InvalidArgumentError(`${field} "${value}" is not a version name: [A-Za-z0-9._-], not starting with a dot`, field, { limit: '[A-Za-z0-9._-]' });
  }
  return value;
}

function checkPrompt(prompt: Prompt, index: number, seen: Map<string, number>): PlannedPrompt {
  const at = `prompts[${index}]`;
  const idBytes = bytes(prompt.id);
  if (idBytes === 0) throw new InvalidArgumentError(`${at}.id is empty; every prompt needs an id (1 to ${PROMPT_ID_MAX_BYTES} bytes)`, `${at}.id`);
  if (idBytes > PROMPT_ID_MAX_BYTES) {
    throw new InvalidArgumentError(`${at}.id is ${idBytes} bytes; at most ${PROMPT_ID_MAX_BYTES}`, `${at}.id`, { limit: PROMPT_ID_MAX_BYTES });
  }
  const first = seen.get(prompt.id);
  if (first !== undefined) throw new InvalidArgumentError(`${at}.id "${prompt.id}" repeats prompts[${first}].id; ids must be unique`, `${at}.id`);
  seen.set(prompt.id, index);
  const content = prompt.content;
  if (content === undefined) throw new InvalidArgumentError(`${at} has no content: set ${at}.text or ${at}.chat`, `${at}.text`);
  if (content.$case === 'text') {
    const field = `${at}.text`;
    const size = bytes(content.value);
    if (size === 0) throw new InvalidArgumentError(`${field} is empty`, field);
    if (size > TEXT_MAX_BYTES) throw new InvalidArgumentError(`${field} is ${size} bytes; at most ${TEXT_MAX_BYTES}`, field, { limit: TEXT_MAX_BYTES });
    return { id: prompt.id, input: { text: content.value }, field };
  }
  const field = `${at}.chat`;
  const messages = content.value.messages;
  if (messages.length === 0) throw new InvalidArgumentError(`${field}.messages is empty; a conversation needs at least one turn`, `${field}.messages`);
  if (messages.length > MAX_MESSAGES) {
    throw new InvalidArgumentError(`${field}.messages has ${messages.length} turns; at most ${MAX_MESSAGES}`, `${field}.messages`, { limit: MAX_MESSAGES });
  }
  messages.forEach((message, j) => {
    const turn = `${field}.messages[${j}]`;
    if (bytes(message.role) > ROLE_MAX_BYTES || !CHAT_ROLES.includes(message.role)) {
      throw new InvalidArgumentError(`${turn}.role "${message.role.slice(0, 40)}" is not one of ${CHAT_ROLES.join(', ')}`, `${turn}.role`, { limit: CHAT_ROLES.join('|') });
    }
    const size = bytes(message.content);
    if (size > TEXT_MAX_BYTES) throw new InvalidArgumentError(`${turn}.content is ${size} bytes; at most ${TEXT_MAX_BYTES}`, `${turn}.content`, { limit: TEXT_MAX_BYTES });
  });
  if (messages.every((message) => message.content.length === 0)) {
    throw new InvalidArgumentError(`${field}.messages has no text: every turn's content is empty`, `${field}.messages`);
  }
  return { id: prompt.id, input: { messages: messages.map((m) => ({ role: m.role, content: m.content })) }, field };
}

/**
 * Validates a Generate request and applies the documented defaults. Throws
 * InvalidArgumentError naming the first offending field. `maxNewTokensLimit`
 * is the server's limit on sampling.max_new_tokens.
 */
export function validateGenerateRequest(request: GenerateRequest, limits: { maxNewTokensLimit: number }): GenerationPlan {
  if (request.prompts.length === 0) throw new InvalidArgumentError('prompts is empty; give 1 to 4096 prompts', 'prompts');
  if (request.prompts.length > MAX_PROMPTS) {
    throw new InvalidArgumentError(`prompts has ${request.prompts.length} prompts; at most ${MAX_PROMPTS}`, 'prompts', { limit: MAX_PROMPTS });
  }
  const seen = new Map<string, number>();
  const prompts = request.prompts.map((prompt, i) => checkPrompt(prompt, i, seen));

  const numSamples = request.numSamples === 0 ? 1 : request.numSamples;
  if (numSamples > MAX_SAMPLES) throw new InvalidArgumentError(`num_samples is ${numSamples}; at most ${MAX_SAMPLES}`, 'num_samples', { limit: MAX_SAMPLES });

  const given = request.sampling;
  const temperature = given?.temperature ?? DEFAULT_TEMPERATURE;
  if (!(temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
    throw new InvalidArgumentError(`sampling.temperature is ${temperature}; it must be >= 0 and <= ${MAX_TEMPERATURE} (0 is greedy)`, 'sampling.temperature', {
      limit: `[0, ${MAX_TEMPERATURE}]`,
    });
  }
  const topP = given?.topP ?? DEFAULT_TOP_P;
  if (!(topP > 0 && topP <= 1)) throw new InvalidArgumentError(`sampling.top_p is ${topP}; it must be in (0, 1]`, 'sampling.top_p', { limit: '(0, 1]' });
  const topK = given?.topK ?? 0;
  const maxNewTokens = !given || given.maxNewTokens === 0 ? DEFAULT_MAX_NEW_TOKENS : given.maxNewTokens;
  if (maxNewTokens > limits.maxNewTokensLimit) {
    throw new InvalidArgumentError(`sampling.max_new_tokens is ${maxNewTokens}; this server's limit is ${limits.maxNewTokensLimit}`, 'sampling.max_new_tokens', {
      limit: limits.maxNewTokensLimit,
    });
  }
  const stop = given?.stop ?? [];
  if (stop.length > MAX_STOP_STRINGS) {
    throw new InvalidArgumentError(`sampling.stop has ${stop.length} strings; at most ${MAX_STOP_STRINGS}`, 'sampling.stop', { limit: MAX_STOP_STRINGS });
  }
  stop.forEach((text, k) => {
    const size = bytes(text);
    if (size === 0 || size > STOP_MAX_BYTES) {
      throw new InvalidArgumentError(`sampling.stop[${k}] is ${size} bytes; a stop string is 1 to ${STOP_MAX_BYTES} bytes`, `sampling.stop[${k}]`, { limit: STOP_MAX_BYTES });
    }
  });
  const seed = given?.seed ?? 0;
  if (!(Number.isSafeInteger(seed) && seed >= 0)) {
    throw new InvalidArgumentError(`sampling.seed is ${seed}; it must be an integer in [0, 2^53)`, 'sampling.seed', { limit: '[0, 2^53)' });
  }
  const modelVersion = request.modelVersion === '' ? undefined : checkVersionName(request.modelVersion, 'model_version', { allowLatest: false });
  return { prompts, numSamples, sampling: { temperature, topP, topK, maxNewTokens, stop: [...stop], seed }, modelVersion };
}

/** Validates LoadModel's version: a registry name or "latest", 1 to 128 bytes. */
export function validateLoadVersion(version: string): string {
  return checkVersionName(version, 'version', { allowLatest: true });
}
