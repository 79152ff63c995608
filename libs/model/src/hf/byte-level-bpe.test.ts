// The byte-level BPE builder: exact vocabulary size, special tokens last, merges
// that shorten common words, and an exact round trip of any text through
// @huggingface/tokenizers.
import { describe, expect, it } from 'vitest';
import { buildByteLevelBpeTokenizer, bytesToUnicode } from './byte-level-bpe';
import { TokenizerError } from './errors';
import { HfTokenizer } from './tokenizer';

const TEXTS = [
  'the model writes the answer',
  'Café déjà vu, naïve façade, Straße',
  '你好，世界。日本語のテキスト',
  'emoji 🤖🎉👩‍👩‍👧‍👦 and flags 🇫🇷',
  '  spaces\tand\nnew lines\r\n\n   trailing  \u0000\u0007 controls',
  'special <|im_start|>user\nHi<|im_end|> inline',
];

describe('buildByteLevelBpeTokenizer', () => {
  const built = buildByteLevelBpeTokenizer({ vocabSize: 512 });
  const tokenizer = HfTokenizer.fromFiles(built.files);

  it('covers exactly vocabSize ids with the special tokens last', () => {
    expect(tokenizer.vocabSize).toBe(512);
    expect([...built.specialTokenIds]).toEqual([
      ['<|endoftext|>', 509],
      ['<|im_start|>', 510],
      ['<|im_end|>', 511],
    ]);
    expect(tokenizer.eosTokenId).toBe(511);
    expect(tokenizer.padTokenId).toBe(509);
    expect(tokenizer.bosTokenId).toBeUndefined();
    expect(built.mergeCount).toBeGreaterThan(100);
  });
  it('round-trips any text, special tokens included', () => {
    for (const text of TEXTS) expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    expect(tokenizer.encode('<|im_start|>')).toEqual([510]);
  });
  it('uses its merges: common words take fewer tokens than bytes', () => {
    expect(tokenizer.encode(' the answer').length).toBeLessThan(4);
  });
  it('decodes every id, so a random model sampling any id yields text', () => {
    for (let id = 0; id < 512; id++) expect(typeof tokenizer.decode([id])).toBe('string');
    expect(tokenizer.decode([...new TextEncoder().encode('é')].map((b) => b))).toBe('é');
  });
  it('maps byte b to id b', () => {
    const chars = bytesToUnicode();
    expect(new Set(chars).size).toBe(256);
    expect(tokenizer.tokenToId(chars[0x41])).toBe(0x41);
    expect(tokenizer.encode('A')).toEqual([0x41]);
  });
  it('renders a ChatML conversation', () => {
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  it('is deterministic', () => {
    expect(buildByteLevelBpeTokenizer({ vocabSize: 512 }).files).toEqual(built.files);
  });
  it('fills with unreachable tokens when the corpus runs out of pairs, and works with bytes alone', () => {
    const big = HfTokenizer.fromFiles(buildByteLevelBpeTokenizer({ vocabSize: 5000, corpus: 'tiny tiny text' }).files);
    expect(big.vocabSize).toBe(5000);
    expect(big.decode(big.encode(TEXTS[3]))).toBe(TEXTS[3]);
    const bare = buildByteLevelBpeTokenizer({ vocabSize: 259, chatTemplate: null });
    expect(bare.mergeCount).toBe(0);
    const bareTokenizer = HfTokenizer.fromFiles(bare.files);
    expect(bareTokenizer.encode('hi')).toEqual([0x68, 0x69]);
    expect(bareTokenizer.chatTemplates.size).toBe(0);
  });
  it('refuses a vocabulary too small for the bytes and special tokens, or an unknown eos', () => {
    expect(() => buildByteLevelBpeTokenizer({ vocabSize: 258 })).toThrow(TokenizerError);
    expect(() => buildByteLevelBpeTokenizer({ vocabSize: 300, eosToken: '</s>' })).toThrow(/eosToken/);
  });
});
