import { describe, expect, it } from 'vitest';
import { loadPromptFile, loadSftFile, parsePromptList, parseSftJsonl } from './chat-data';
import { isDataFileError, isDataFormatError } from './errors';
import { TASK_FIXTURES } from './testing';

/** The error a call throws, for looking at its fields. */
function thrown(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function formatError(call: () => unknown): { file: string; line: number; field: string; message: string } {
  const error = thrown(call);
  if (!isDataFormatError(error)) throw error;
  return { file: error.file, line: error.line, field: error.field, message: error.message };
}

describe('SFT chat-messages JSONL', () => {
  it('loads the fixture', async () => {
    const examples = await loadSftFile(TASK_FIXTURES.sft);
    expect(examples).toHaveLength(2);
    expect(examples[0].messages[1]).toEqual({ role: 'assistant', content: '2 + 3 = 5.\nAnswer: 5' });
    expect(examples[1].messages.map((message) => message.role)).toEqual(['system', 'user', 'assistant']);
  });

  it.each([
    ['not JSON', '{"messages": [', 1, ''],
    ['not an object', '[1, 2]', 1, ''],
    ['no messages', '{"conversation": []}', 1, 'messages'],
    ['empty messages', '{"messages": []}', 1, 'messages'],
    ['a bad role', '{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}', 1, 'messages[1].role'],
    ['a non-string content', '{"messages": [{"role": "user", "content": 3}]}', 1, 'messages[0].content'],
    ['no assistant at the end', '{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "hi"}]}', 1, 'messages[1].role'],
    ['no user turn', '{"messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]}', 1, 'messages'],
    ['an empty assistant turn', '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]}', 1, 'messages[1].content'],
  ])('refuses %s, naming the line and field', (_, line, lineNumber, field) => {
    const good = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}';
    const error = formatError(() => parseSftJsonl(`${good}\n\n${line}\n`, 'data/sft.jsonl'));
    expect(error).toMatchObject({ file: 'data/sft.jsonl', line: lineNumber + 2, field });
    expect(error.message).toContain(`data/sft.jsonl:${lineNumber + 2}`);
  });

  it('refuses an empty file', () => {
    expect(formatError(() => parseSftJsonl('\n  \n', 'empty.jsonl'))).toMatchObject({ line: 0, field: '' });
  });

  it('names a missing file with a DataFileError', async () => {
    const error = await loadSftFile('/no/such/sft.jsonl').catch((caught: unknown) => caught);
    expect(isDataFileError(error) && error.file).toBe('/no/such/sft.jsonl');
    expect(String(error)).toContain('no such file');
  });
});

describe('prompt lists', () => {
  it('loads JSONL with "prompt" or "messages"', async () => {
    const prompts = await loadPromptFile(TASK_FIXTURES.promptsJsonl);
    expect(prompts.map((prompt) => prompt.id)).toEqual(['p1', 'p2']);
    expect(prompts[0].messages).toEqual([{ role: 'user', content: expect.stringContaining('Which of these animals is a bird?') }]);
    expect(prompts[1].messages[0].content).toContain('Sam has 3 apples');
  });

  it('loads plain text, one prompt per line, ids by line number', async () => {
    expect(await loadPromptFile(TASK_FIXTURES.promptsText)).toEqual([
      { id: 'line-1', messages: [{ role: 'user', content: 'What kind of animal is a whale?' }] },
      { id: 'line-3', messages: [{ role: 'user', content: 'Which object floats on water?' }] },
    ]);
  });

  it.each([
    ['no id', '{"prompt": "x"}', 'id'],
    ['an empty id', '{"id": "", "prompt": "x"}', 'id'],
    ['a long id', `{"id": "${'x'.repeat(257)}", "prompt": "x"}`, 'id'],
    ['a duplicate id', '{"id": "a", "prompt": "y"}', 'id'],
    ['neither prompt nor messages', '{"id": "b"}', 'prompt'],
    ['both prompt and messages', '{"id": "b", "prompt": "x", "messages": []}', 'prompt'],
    ['a number prompt', '{"id": "b", "prompt": 5}', 'prompt'],
    ['messages ending with the assistant', '{"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}', 'messages[1].role'],
    ['a plain-text line in JSONL', 'What is 2 + 2?', ''],
  ])('refuses %s on line 2', (_, line, field) => {
    expect(formatError(() => parsePromptList(`{"id": "a", "prompt": "x"}\n${line}`, 'prompts.jsonl'))).toMatchObject({ file: 'prompts.jsonl', line: 2, field });
  });
});
