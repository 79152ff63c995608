// A small byte-level BPE tokenizer for our own random and tiny models, written
// as the tokenizer.json / tokenizer_config.json pair that transformers and
// @huggingface/tokenizers load. Byte-level (GPT-2, Radford et al. 2019): every
// byte is a base token, so any UTF-8 text encodes and decodes back exactly.
// Merges are learned from a small corpus with the textbook BPE loop (Sennrich
// et al. 2016): count adjacent pairs within pre-tokenized words, merge the most
// frequent, repeat. Layout of ids: the 256 bytes, the learned merges, unreachable
// fillers up to the requested size, then the special tokens last (as GPT-2 and
// Qwen place them), so the tokenizer covers exactly `vocabSize` ids and every id
// a random model samples decodes.
import { TokenizerError } from './errors';
import type { TokenizerFiles } from './tokenizer';

/** A ChatML template (the SmolLM2 / Qwen form without a default system prompt). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Options of buildByteLevelBpeTokenizer. */
export interface ByteLevelBpeOptions {
  /** Exact number of ids (bytes + merges + fillers + special tokens); match the model's vocab_size. */
  vocabSize: number;
  /** Text to learn merges from; default a built-in English paragraph. */
  corpus?: string;
  /** Special tokens, given the last ids in this order. Default `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`. */
  specialTokens?: string[];
  /** BOS token (one of specialTokens), or null for none (ChatML models have none). Default null. */
  bosToken?: string | null;
  /** EOS token (one of specialTokens). Default `<|im_end|>`, where a chat turn ends. */
  eosToken?: string;
  /** Padding token (one of specialTokens). Default `<|endoftext|>`. */
  padToken?: string;
  /** Chat template for tokenizer_config.json, or null for none. Default CHATML_TEMPLATE. */
  chatTemplate?: string | null;
  /** model_max_length for tokenizer_config.json. Default 2048. */
  modelMaxLength?: number;
  /** Stop learning merges at pairs seen fewer than this many times. Default 2. */
  minPairCount?: number;
}

/** What buildByteLevelBpeTokenizer made. */
export interface ByteLevelBpeTokenizer {
  /** tokenizer.json and tokenizer_config.json, ready to write. */
  files: TokenizerFiles;
  /** Id of each special token. */
  specialTokenIds: Map<string, number>;
  /** Number of merges learned from the corpus. */
  mergeCount: number;
}

const DEFAULT_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/** Built-in corpus: plain English with digits and punctuation, enough for a few hundred merges. */
const DEFAULT_CORPUS = `
The model reads a prompt and writes a response, one token at a time. Each token is a piece of text:
a whole word when the word is common, a few letters when it is not, and a single byte at worst, so
every sentence in every language can be written. A tokenizer learns its pieces from text by joining
the pair of pieces that appears together most often, then the next pair, and so on until it has as
many pieces as it wants. The answer to the question is 42. The first three numbers are 1, 2 and 3.
When the judge compares two answers, it gives each a score between 0 and 10, and the better answer
gets the higher score. Training makes the model prefer the answers that were scored higher, and the
consistency between two rounds of scores tells how much to trust them. Questions and answers, steps
and reasons: the model should think about the problem, show the steps, and state the final answer.
It is important that the answer is correct, that the reasoning is clear, and that the response is
helpful to the person who asked. This is a small text for a small tokenizer in a small test model.
`;

/** GPT-2's byte-to-character table: printable bytes map to themselves, the rest to U+0100 onwards. */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + next++);
  return table;
}

/** GPT-2's pre-tokenizer pattern, which the ByteLevel pre-tokenizer applies with use_regex. */
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Learns up to `limit` merges; ties go to the lexicographically first pair so the result is deterministic. */
function learnMerges(corpus: string, limit: number, minPairCount: number, byteChars: string[]): [string, string][] {
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const word of corpus.match(GPT2_PATTERN) ?? []) {
    const mapped = [...encoder.encode(word)].map((b) => byteChars[b]).join('');
    wordCounts.set(mapped, (wordCounts.get(mapped) ?? 0) + 1);
  }
  const words = [...wordCounts].map(([word, count]) => ({ symbols: [...word], count }));
  const known = new Set(byteChars);
  const merges: [string, string][] = [];
  while (merges.length < limit) {
    const pairCounts = new Map<string, { pair: [string, string]; count: number }>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + '\u0000' + symbols[i + 1];
        const entry = pairCounts.get(key);
        if (entry) entry.count += count;
        else pairCounts.set(key, { pair: [symbols[i], symbols[i + 1]], count });
      }
    }
    let best: { pair: [string, string]; count: number; key: string } | undefined;
    for (const [key, entry] of pairCounts) {
      if (best === undefined || entry.count > best.count || (entry.count === best.count && key < best.key)) best = { ...entry, key };
    }
    if (best === undefined || best.count < minPairCount) break;
    const [left, right] = best.pair;
    const joined = left + right;
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (i + 1 < word.symbols.length && word.symbols[i] === left && word.symbols[i + 1] === right) {
          out.push(joined);
          i += 1;
        } else out.push(word.symbols[i]);
      }
      word.symbols = out;
    }
    // Two merge paths can make the same string; it gets one id, and the merge list both rules.
    merges.push([left, right]);
    known.add(joined);
    if (known.size - 256 >= limit) break;
  }
  return merges;
}

/**
 * Builds a byte-level BPE tokenizer of exactly `vocabSize` ids. Throws
 * TokenizerError when vocabSize cannot hold the 256 bytes and the special tokens.
 */
export function buildByteLevelBpeTokenizer(options: ByteLevelBpeOptions): ByteLevelBpeTokenizer {
  const specialTokens = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const bosToken = options.bosToken ?? null;
  const eosToken = options.eosToken ?? '<|im_end|>';
  const padToken = options.padToken ?? '<|endoftext|>';
  const { vocabSize } = options;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 256 + specialTokens.length) {
    throw new TokenizerError(
      `vocabSize ${vocabSize} cannot hold the 256 byte tokens and ${specialTokens.length} special tokens`,
      'invalid-argument',
    );
  }
  if (new Set(specialTokens).size !== specialTokens.length) {
    throw new TokenizerError('special tokens must be distinct', 'invalid-argument');
  }
  for (const [role, token] of [['bosToken', bosToken], ['eosToken', eosToken], ['padToken', padToken]] as const) {
    if (token !== null && !specialTokens.includes(token)) {
      throw new TokenizerError(`${role} ${JSON.stringify(token)} is not one of the special tokens`, 'invalid-argument');
    }
  }

  const byteChars = bytesToUnicode();
  const vocab = new Map<string, number>();
  for (const char of byteChars) vocab.set(char, vocab.size);
  const learnable = vocabSize - 256 - specialTokens.length;
  const merges = learnMerges(options.corpus ?? DEFAULT_CORPUS, learnable, options.minPairCount ?? 2, byteChars);
  for (const [left, right] of merges) if (!vocab.has(left + right)) vocab.set(left + right, vocab.size);
  // Fillers no merge produces: they keep special ids at the end and every id decodable.
  for (let i = 0; vocab.size < vocabSize - specialTokens.length; i++) {
    if (!vocab.has(`<|filler_${i}|>`)) vocab.set(`<|filler_${i}|>`, vocab.size);
  }

  const specialTokenIds = new Map<string, number>();
  const addedTokens = specialTokens.map((content, i) => {
    const id = vocabSize - specialTokens.length + i;
    specialTokenIds.set(content, id);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      // "left right" strings: the form every tokenizers version reads (byte-level symbols hold no space).
      merges: merges.map(([left, right]) => `${left} ${right}`),
    },
  };

  const tokenizerConfig: Record<string, unknown> = {
    added_tokens_decoder: Object.fromEntries(
      addedTokens.map(({ id, ...token }) => [String(id), { content: token.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]),
    ),
    bos_token: bosToken,
    clean_up_tokenization_spaces: false,
    eos_token: eosToken,
    model_max_length: options.modelMaxLength ?? 2048,
    pad_token: padToken,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  const chatTemplate = options.chatTemplate === undefined ? CHATML_TEMPLATE : options.chatTemplate;
  if (chatTemplate !== null) tokenizerConfig.chat_template = chatTemplate;

  return {
    files: {
      tokenizerJson: JSON.stringify(tokenizerJson, null, 2) + '\n',
      tokenizerConfigJson: JSON.stringify(tokenizerConfig, null, 2) + '\n',
    },
    specialTokenIds,
    mergeCount: merges.length,
  };
}
