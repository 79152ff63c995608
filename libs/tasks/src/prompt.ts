// The evaluation prompt of the paper (CREAM.md, "What the paper measures"):
// the question, its lettered options, then an instruction to think step by
// step and end with an `Answer: ...` line, from which the answer is parsed.
// Every prompt of the product is built here (built-in items, users' ARC and
// GSM8K items), so that training and evaluation see the same instruction.
// The instruction is short on purpose: the built-in models have a small
// context, and the text is the same in every prompt, so it costs them little
// to learn.
import type { AnswerKind, Choice } from './item';

/** The instruction that ends a multiple-choice prompt. */
export const LETTER_INSTRUCTION = `Let's think step by step. End with a line "Answer: <letter>".`;
/** The instruction that ends a prompt whose answer is a number. */
export const NUMBER_INSTRUCTION = `Let's think step by step. End with a line "Answer: <number>".`;

/** The user turn for a question: the question, one `A) text` line per option, and the instruction. */
export function evaluationPrompt(question: string, choices?: readonly Choice[]): string {
  const lines = [question.trim()];
  for (const choice of choices ?? []) lines.push(`${choice.label}) ${choice.text}`);
  lines.push(choices !== undefined && choices.length > 0 ? LETTER_INSTRUCTION : NUMBER_INSTRUCTION);
  return lines.join('\n');
}

/** The last line of a correct response. */
export function answerLine(answer: string): string {
  return `Answer: ${answer}`;
}

/** How answers are written for a question with these choices. */
export function answerKindOf(choices: readonly Choice[] | undefined): AnswerKind {
  return choices !== undefined && choices.length > 0 ? 'letter' : 'integer';
}

/** The letter of the option at 0-based `index`: 0 is `A`. */
export function choiceLabel(index: number): string {
  return String.fromCharCode(65 + index);
}

/** Lettered choices from option texts, in order. */
export function toChoices(texts: readonly string[]): Choice[] {
  return texts.map((text, index) => ({ label: choiceLabel(index), text }));
}

/**
 * The form of a prompt under which two prompts count as the same for split
 * disjointness: Unicode NFKC, lower case, runs of white space as one space,
 * trimmed.
 */
export function normalizePrompt(prompt: string): string {
  return prompt.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}
