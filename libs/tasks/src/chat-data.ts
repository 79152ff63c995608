// Loaders for users' training data:
// - an SFT set in chat-messages JSONL, one `{"messages": [{"role", "content"}, ...]}`
//   per line (the form of Hugging Face chat datasets), each ending with an
//   assistant turn after at least one user turn;
// - a prompt list: JSONL of `{"id", "prompt"}` or `{"id", "messages"}` (ending
//   with a user turn), or plain text with one prompt per line (ids `line-<n>`).
//   A file whose first non-blank line starts with `{` is read as JSONL.
// Extra fields are ignored. The first bad record throws DataFormatError.
import { DataFormatError } from './errors';
import type { ChatExample, ChatMessage, ChatRole, PromptRecord } from './item';
import { dataLines, expectArray, expectId, expectObject, expectString, jsonlRecords, readDataFile, type Location } from './jsonl';

const ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

/** Reads an SFT set in chat-messages JSONL. */
export async function loadSftFile(path: string): Promise<ChatExample[]> {
  return parseSftJsonl(await readDataFile(path), path);
}

/** Parses an SFT set in chat-messages JSONL; `file` names it in errors. */
export function parseSftJsonl(text: string, file: string): ChatExample[] {
  return jsonlRecords(text, file).map(({ line, record }) => {
    const at = { file, line };
    const messages = chatMessages(record.messages, at);
    const last = messages[messages.length - 1];
    if (last.role !== 'assistant') {
      throw new DataFormatError('an SFT conversation must end with an assistant turn', file, line, `messages[${messages.length - 1}].role`);
    }
    if (last.content.trim() === '') throw new DataFormatError('the assistant turn is empty', file, line, `messages[${messages.length - 1}].content`);
    if (!messages.some((message) => message.role === 'user')) {
      throw new DataFormatError('an SFT conversation needs a user turn before the assistant turn', file, line, 'messages');
    }
    return { messages };
  });
}

/** Reads a prompt list: JSONL of {"id","prompt"} or {"id","messages"}, or plain text one prompt per line. */
export async function loadPromptFile(path: string): Promise<PromptRecord[]> {
  return parsePromptList(await readDataFile(path), path);
}

/** Parses a prompt list (JSONL or plain text, see loadPromptFile); `file` names it in errors. */
export function parsePromptList(text: string, file: string): PromptRecord[] {
  const lines = dataLines(text);
  if (lines.length === 0) throw new DataFormatError('the file has no prompts', file, 0, '');
  if (!lines[0].text.trimStart().startsWith('{')) {
    return lines.map(({ line, text: prompt }) => ({ id: `line-${line}`, messages: [{ role: 'user', content: prompt.trim() }] }));
  }
  const ids = new Map<string, number>();
  return jsonlRecords(text, file).map(({ line, record }) => {
    const at = { file, line };
    const id = expectId(record.id, at, 'id', ids);
    if (record.prompt !== undefined && record.messages !== undefined) {
      throw new DataFormatError('give either "prompt" or "messages", not both', file, line, 'prompt');
    }
    if (record.messages === undefined) {
      const prompt = expectString(record.prompt, at, 'prompt', { hint: ' (each record needs "prompt" or "messages")' });
      return { id, messages: [{ role: 'user', content: prompt }] };
    }
    const messages = chatMessages(record.messages, at);
    const last = messages.length - 1;
    if (messages[last].role !== 'user') {
      throw new DataFormatError('a prompt conversation must end with a user turn', file, line, `messages[${last}].role`);
    }
    return { id, messages };
  });
}

function chatMessages(value: unknown, at: Location): ChatMessage[] {
  const list = expectArray(value, at, 'messages');
  if (list.length === 0) throw new DataFormatError('expected at least one message', at.file, at.line, 'messages');
  return list.map((entry, index) => {
    const field = `messages[${index}]`;
    const message = expectObject(entry, at, field);
    const role = expectString(message.role, at, `${field}.role`);
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new DataFormatError(`unknown role "${role}"; expected one of ${ROLES.join(', ')}`, at.file, at.line, `${field}.role`);
    }
    const content = expectString(message.content, at, `${field}.content`, { allowEmpty: role === 'system' });
    return { role: role as ChatRole, content };
  });
}
