// The shapes every part of the suite shares: an evaluation item, chat turns,
// SFT examples and unlabeled prompt records, and the conversions between them.
// Chat turns have no system prompt, as in the paper (CREAM.md, step 1).

/** How an answer is written: a choice letter (`B`) or an integer (`42`, `-3`). */
export type AnswerKind = 'letter' | 'integer';

/** One option of a multiple-choice question. */
export interface Choice {
  /** Upper-case letter `A`, `B`, ... (numeric labels of user files are mapped to letters). */
  label: string;
  /** The option's text. */
  text: string;
}

/** A question with its reference answer: an evaluation item, an SFT source, or an unlabeled prompt with its key. */
export interface TaskItem {
  /** Unique within its split, e.g. `test/science/0007` or the id of a user's ARC record. */
  id: string;
  /** Task name: a built-in task or the name given to a user's evaluation set. */
  task: string;
  /** How the answer is written, which decides how responses are parsed. */
  answerKind: AnswerKind;
  /** The question alone (ARC's stem, GSM8K's question). */
  question: string;
  /** The options, for multiple-choice items. */
  choices?: Choice[];
  /** The user turn the model sees: evaluationPrompt(question, choices). */
  prompt: string;
  /** Canonical answer: an upper-case letter, or an integer without commas or leading zeros. */
  answer: string;
  /** A correct step-by-step response ending with the line `Answer: <answer>`. */
  solution: string;
}

/** Speaker of a chat turn (proto ChatMessage.role). */
export type ChatRole = 'system' | 'user' | 'assistant';

/** One chat turn. */
export interface ChatMessage {
  /** Who speaks. */
  role: ChatRole;
  /** What is said. */
  content: string;
}

/** A supervised example in chat-messages form; the assistant turns are the targets. */
export interface ChatExample {
  /** The conversation, ending with an assistant turn. */
  messages: ChatMessage[];
}

/** An unlabeled prompt: the conversation a model answers (proto Prompt with chat content). */
export interface PromptRecord {
  /** Unique within its set; results are keyed by it. */
  id: string;
  /** The conversation, ending with a user turn. */
  messages: ChatMessage[];
  /** The task it belongs to, when known. */
  task?: string;
}

/** The SFT example of an item: its prompt as the user turn and its reference solution as the assistant's. */
export function toSftExample(item: TaskItem): ChatExample {
  return { messages: chatTurns(item.prompt, item.solution) };
}

/** The unlabeled prompt of an item (its answer left out). */
export function toPromptRecord(item: TaskItem): PromptRecord {
  return { id: item.id, task: item.task, messages: [{ role: 'user', content: item.prompt }] };
}

/** A user turn and the assistant's response to it. */
export function chatTurns(prompt: string, response: string): ChatMessage[] {
  return [
    { role: 'user', content: prompt },
    { role: 'assistant', content: response },
  ];
}
