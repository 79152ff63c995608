// Hugging Face tokenizers: tokenizer.json run by @huggingface/tokenizers, the
// special tokens of tokenizer_config.json, and chat templates rendered by
// @huggingface/jinja the way transformers' apply_chat_template renders them
// (trim_blocks and lstrip_blocks on; `messages`, `tools`, `documents`,
// `add_generation_prompt` and the special tokens as variables). Also the text
// stop-string helpers generation uses.
//
// Both packages are ESM with a CommonJS build; `require` picks the CommonJS one
// and TypeScript 5.9 under nodenext types the import from their ESM
// declarations (require(esm) support), so no dynamic import is needed.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './errors';
import { writeFileSynced } from './files';

/** The raw text of a tokenizer's files, kept so a save writes them back byte for byte. */
export interface TokenizerFiles {
  /** tokenizer.json. */
  tokenizerJson: string;
  /** tokenizer_config.json (special tokens, chat template); absent means `{}`. */
  tokenizerConfigJson?: string;
  /** chat_template.jinja, where recent transformers saves the template instead of tokenizer_config.json. */
  chatTemplateJinja?: string;
  /** special_tokens_map.json, which overrides tokenizer_config.json's special tokens when present. */
  specialTokensMapJson?: string;
}

/** The file name of each member of TokenizerFiles. */
export const TOKENIZER_FILE_NAMES: Readonly<Record<keyof TokenizerFiles, string>> = Object.freeze({
  tokenizerJson: 'tokenizer.json',
  tokenizerConfigJson: 'tokenizer_config.json',
  chatTemplateJinja: 'chat_template.jinja',
  specialTokensMapJson: 'special_tokens_map.json',
});

/** One chat message; templates may read more fields (tool_calls, reasoning_content). */
export interface ChatMessage {
  role: string;
  content: string;
  [field: string]: unknown;
}

/** Options of applyChatTemplate. */
export interface ChatTemplateOptions {
  /** Append the assistant turn's opening so the model continues as the assistant. Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Which of several named templates to use (tokenizer_config's list form); default `default`. */
  templateName?: string;
  /** Use this template text instead of the configured one. */
  chatTemplate?: string;
  /** Tool schemas, passed to the template as `tools` (else `none`). */
  tools?: unknown[];
  /** Retrieval documents, passed as `documents` (else `none`). */
  documents?: unknown[];
  /** Extra template variables, e.g. `{ enable_thinking: false }`. */
  variables?: Record<string, unknown>;
}

/** Options of encode. */
export interface EncodeOptions {
  /** Let the post-processor add its special tokens (e.g. a BOS), as transformers does by default. Default true. */
  addSpecialTokens?: boolean;
}

/** Options of decode. */
export interface DecodeOptions {
  /** Drop special tokens from the text. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * transformers' clean_up_tokenization_spaces (" ." to "." and the like). Default
   * false, whatever tokenizer_config says, so decode(encode(text)) is text.
   */
  cleanUpTokenizationSpaces?: boolean;
}

type JsonObject = Record<string, unknown>;

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

function parseJsonObject(text: string, file: string): JsonObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new TokenizerError(`${file} is not valid JSON (${(cause as Error).message})`, 'malformed', { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenizerError(`${file} is not a JSON object`, 'malformed');
  }
  return json as JsonObject;
}

/** A special token's text: tokenizer_config holds a string or an AddedToken object `{content, ...}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as JsonObject).content === 'string') {
    return (value as JsonObject).content as string;
  }
  return undefined;
}

/** The templates of tokenizer_config's `chat_template`: a string (named `default`) or a list of `{name, template}`. */
function chatTemplatesOf(config: JsonObject, jinja: string | undefined): Map<string, string> {
  const templates = new Map<string, string>();
  const value = config.chat_template;
  if (typeof value === 'string') templates.set('default', value);
  else if (Array.isArray(value)) {
    for (const item of value) {
      const { name, template } = (item ?? {}) as JsonObject;
      if (typeof name !== 'string' || typeof template !== 'string') {
        throw new TokenizerError('tokenizer_config.json: chat_template list entries must be {name, template} strings', 'malformed');
      }
      templates.set(name, template);
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, template] of Object.entries(value as JsonObject)) {
      if (typeof template === 'string') templates.set(name, template);
    }
  }
  // transformers gives chat_template.jinja precedence over the config's default.
  if (jinja !== undefined) templates.set('default', jinja);
  return templates;
}

/**
 * A tokenizer loaded from Hugging Face files: encode/decode through
 * @huggingface/tokenizers, special tokens from tokenizer_config.json, chat
 * templates through @huggingface/jinja.
 */
export class HfTokenizer {
  /** The files it was built from, verbatim. */
  readonly files: Readonly<TokenizerFiles>;
  /** tokenizer_config.json, parsed. */
  readonly config: Readonly<JsonObject>;
  /** Special token texts as transformers' special_tokens_map (bos_token, eos_token, ...; absent when null). */
  readonly specialTokens: Readonly<Record<string, string | string[]>>;
  /** BOS token text, when the tokenizer has one. */
  readonly bosToken: string | undefined;
  /** BOS token id, when the tokenizer has one. */
  readonly bosTokenId: number | undefined;
  /** EOS token text, when the tokenizer has one. */
  readonly eosToken: string | undefined;
  /** EOS token id, when the tokenizer has one. */
  readonly eosTokenId: number | undefined;
  /** Padding token id, when the tokenizer has one. */
  readonly padTokenId: number | undefined;
  /** Ids of every added token marked special (these are what skipSpecialTokens drops). */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Number of ids, added tokens included (one past the largest id). */
  readonly vocabSize: number;
  /** Chat templates by name; the string form is named `default`. */
  readonly chatTemplates: ReadonlyMap<string, string>;

  private readonly tokenizer: Tokenizer;
  private readonly compiled = new Map<string, Template>();

  private constructor(files: TokenizerFiles) {
    this.files = Object.freeze({ ...files });
    const tokenizerJson = parseJsonObject(files.tokenizerJson, TOKENIZER_FILE_NAMES.tokenizerJson);
    this.config = parseJsonObject(files.tokenizerConfigJson ?? '{}', TOKENIZER_FILE_NAMES.tokenizerConfigJson);
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, this.config);
    } catch (cause) {
      throw new TokenizerError(`tokenizer.json cannot be loaded: ${(cause as Error).message}`, 'malformed', { cause });
    }

    const specialsFile =
      files.specialTokensMapJson === undefined ? {} : parseJsonObject(files.specialTokensMapJson, TOKENIZER_FILE_NAMES.specialTokensMapJson);
    const specialTokens: Record<string, string | string[]> = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const content = tokenContent(specialsFile[key] ?? this.config[key]);
      if (content !== undefined) specialTokens[key] = content;
    }
    const additional = specialsFile.additional_special_tokens ?? this.config.additional_special_tokens;
    if (Array.isArray(additional)) {
      specialTokens.additional_special_tokens = additional.map(tokenContent).filter((t): t is string => t !== undefined);
    }
    this.specialTokens = Object.freeze(specialTokens);
    this.bosToken = specialTokens.bos_token as string | undefined;
    this.eosToken = specialTokens.eos_token as string | undefined;
    this.bosTokenId = this.bosToken === undefined ? undefined : this.tokenizer.token_to_id(this.bosToken);
    this.eosTokenId = this.eosToken === undefined ? undefined : this.tokenizer.token_to_id(this.eosToken);
    const padToken = specialTokens.pad_token as string | undefined;
    this.padTokenId = padToken === undefined ? undefined : this.tokenizer.token_to_id(padToken);

    const specialIds = new Set<number>();
    let maxId = -1;
    for (const [id, token] of this.tokenizer.get_added_tokens_decoder()) {
      if (token.special) specialIds.add(id);
      maxId = Math.max(maxId, id);
    }
    for (const id of this.tokenizer.get_vocab(false).values()) maxId = Math.max(maxId, id);
    this.specialTokenIds = specialIds;
    this.vocabSize = maxId + 1;
    this.chatTemplates = chatTemplatesOf(this.config, files.chatTemplateJinja);
  }

  /** Builds a tokenizer from file texts. Throws TokenizerError when they are malformed. */
  static fromFiles(files: TokenizerFiles): HfTokenizer {
    return new HfTokenizer(files);
  }

  /** Text to token ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Token ids to text; ids outside the vocabulary decode to nothing, as in transformers. No ids is the empty string. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    // @huggingface/tokenizers throws on an empty list; a generation whose first token is EOS has none.
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? false,
    });
  }

  /** A token's id, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** An id's token string, or undefined when out of range. */
  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /** The chat template transformers would pick, or undefined when none is configured. */
  chatTemplate(name?: string, tools?: unknown[]): string | undefined {
    if (name !== undefined) return this.chatTemplates.get(name);
    // transformers: with tools, prefer a template named tool_use; else `default`.
    if (tools !== undefined && this.chatTemplates.has('tool_use')) return this.chatTemplates.get('tool_use');
    if (this.chatTemplates.has('default')) return this.chatTemplates.get('default');
    return undefined;
  }

  /**
   * Renders messages with the chat template as transformers' apply_chat_template
   * (tokenize=False) does. Throws TokenizerError when there is no template or it fails.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const source = options.chatTemplate ?? this.chatTemplate(options.templateName, options.tools);
    if (source === undefined) {
      const names = [...this.chatTemplates.keys()];
      throw new TokenizerError(
        options.templateName !== undefined
          ? `no chat template named ${JSON.stringify(options.templateName)} (have: ${names.join(', ') || 'none'})`
          : names.length > 0
            ? `several chat templates (${names.join(', ')}) and none is named default: pass templateName`
            : 'this tokenizer has no chat template (tokenizer_config.json chat_template or chat_template.jinja)',
        'no-chat-template',
      );
    }
    let template = this.compiled.get(source);
    if (template === undefined) {
      try {
        template = new Template(source);
      } catch (cause) {
        throw new TokenizerError(`the chat template does not parse: ${(cause as Error).message}`, 'template', { cause });
      }
      this.compiled.set(source, template);
    }
    try {
      return template.render({
        ...this.specialTokens,
        ...options.variables,
        messages: messages.map((message) => ({ ...message })),
        tools: options.tools ?? null,
        documents: options.documents ?? null,
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (cause) {
      throw new TokenizerError(`the chat template failed to render: ${(cause as Error).message}`, 'template', { cause });
    }
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Reads a directory's tokenizer files. Returns undefined when tokenizer.json is
 * absent; the other files are optional.
 */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles | undefined> {
  const tokenizerJson = await readOptional(path.join(dir, TOKENIZER_FILE_NAMES.tokenizerJson));
  if (tokenizerJson === undefined) return undefined;
  const files: TokenizerFiles = { tokenizerJson };
  for (const key of ['tokenizerConfigJson', 'chatTemplateJinja', 'specialTokensMapJson'] as const) {
    const text = await readOptional(path.join(dir, TOKENIZER_FILE_NAMES[key]));
    if (text !== undefined) files[key] = text;
  }
  return files;
}

/** Loads the tokenizer of a Hugging Face directory. Throws TokenizerError when tokenizer.json is absent or malformed. */
export async function loadTokenizer(dir: string): Promise<HfTokenizer> {
  const files = await readTokenizerFiles(dir);
  if (files === undefined) {
    throw new TokenizerError(`${path.join(dir, TOKENIZER_FILE_NAMES.tokenizerJson)} does not exist`, 'malformed');
  }
  return HfTokenizer.fromFiles(files);
}

/** Writes the tokenizer files present in `files` into `dir` (fsynced), verbatim. Returns the names written. */
export async function writeTokenizerFiles(dir: string, files: TokenizerFiles): Promise<string[]> {
  const written: string[] = [];
  for (const key of Object.keys(TOKENIZER_FILE_NAMES) as (keyof TokenizerFiles)[]) {
    const text = files[key];
    if (text === undefined) continue;
    await writeFileSynced(path.join(dir, TOKENIZER_FILE_NAMES[key]), text);
    written.push(TOKENIZER_FILE_NAMES[key]);
  }
  return written;
}

// ---------------------------------------------------------------------------
// Stop strings

/** Options of stopStringPredicate. */
export interface StopStringOptions {
  /** Decode with special tokens dropped, as the returned text will be. Default true. */
  skipSpecialTokens?: boolean;
}

/**
 * A predicate over the ids generated so far that is true once their text
 * contains a stop string. It decodes only a tail long enough to hold the
 * longest stop string (each token carries at least one byte) plus margin for
 * a character split across tokens and a decoder that strips a leading space,
 * so it costs O(stop length) per call. Called after every new token, a match
 * always involves the newest token, so a stop string completed in the middle
 * of a token (with text after it) stops generation too.
 */
export function stopStringPredicate(
  tokenizer: HfTokenizer,
  stopStrings: readonly string[],
  options: StopStringOptions = {},
): (generatedIds: readonly number[]) => boolean {
  const stops = stopStrings.filter((stop) => stop.length > 0);
  if (stops.length !== stopStrings.length) {
    throw new TokenizerError('stop strings must not be empty', 'invalid-argument');
  }
  if (stops.length === 0) return () => false;
  const skipSpecial = options.skipSpecialTokens ?? true;
  const encoder = new TextEncoder();
  const window = Math.max(...stops.map((stop) => encoder.encode(stop).length)) + 2;
  return (generatedIds) => {
    // Walk back over `window` tokens that contribute text (skipped specials contribute none).
    let start = generatedIds.length;
    for (let counted = 0; start > 0 && counted < window; ) {
      start -= 1;
      if (!(skipSpecial && tokenizer.specialTokenIds.has(generatedIds[start]))) counted += 1;
    }
    const tail = tokenizer.decode(generatedIds.slice(start), { skipSpecialTokens: skipSpecial });
    return stops.some((stop) => tail.includes(stop));
  };
}

/**
 * Cuts text at the earliest stop string, dropping it and what follows, as
 * vLLM and OpenAI-style APIs return it. `stopString` is the one found (the
 * longest when several start at the same place), or undefined.
 */
export function trimAtStopString(text: string, stopStrings: readonly string[]): { text: string; stopString: string | undefined } {
  let cut = -1;
  let found: string | undefined;
  for (const stop of stopStrings) {
    if (stop.length === 0) continue;
    const at = text.indexOf(stop);
    if (at >= 0 && (cut < 0 || at < cut || (at === cut && stop.length > (found?.length ?? 0)))) {
      cut = at;
      found = stop;
    }
  }
  return cut < 0 ? { text, stopString: undefined } : { text: text.slice(0, cut), stopString: found };
}
