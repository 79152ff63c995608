// Answer checkers: the answer is read from the LAST line that starts with
// `Answer:`, as the paper parses its evaluation responses (CREAM.md, "What
// the paper measures"). A response with no such line, or whose last such line
// does not hold an answer of the expected kind, is unparsable, and wrong.
//
// Accepted forms, after `Answer:` (any case, any white space around it, one
// trailing period ignored):
// - letters: `B`, `b`, `(B)`, `B)`, and an upper-case letter followed by `)`,
//   `.` or `:` and the option's text (`B) a spoon`). A letter followed directly
//   by words (`A whale`, `a spoon`) is not taken, as it reads as an article.
// - integers: optional sign, optional `$`, digits with or without comma groups
//   (`1,234`), an optional all-zero fraction (`12.0`), then optionally a unit
//   word (`6 apples`). A non-zero fraction parses as that decimal (and is
//   wrong against an integer key).
import { InvalidOptionsError } from './errors';
import type { AnswerKind, TaskItem } from './item';
import { isBuiltinTask, BUILTIN_TASKS, type BuiltinTaskName } from './tasks/registry';

const ANSWER_LINE = /^\s*answer\s*:(.*)$/i;
const LETTER_ALONE = /^\(?([A-Za-z])\)?$/;
const LETTER_WITH_TEXT = /^(?:\(([A-Z])\)|([A-Z])[).:])\s+\S/;
const NUMBER = /^([+\-\u2212]?)\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s+[A-Za-z].*)?$/;

/** What a checker found in a response. */
export interface CheckResult {
  /** The canonical answer read from the last Answer line, or null when unparsable. */
  parsed: string | null;
  /** True when the parsed answer equals the item's. */
  correct: boolean;
}

/**
 * The canonical answer of a response, or null when it has no parsable Answer
 * line. `kind` is a built-in task name or an answer kind.
 */
export function parseAnswer(kind: AnswerKind | BuiltinTaskName, responseText: string): string | null {
  const answerKind = resolveKind(kind);
  const rest = lastAnswerLine(responseText);
  if (rest === null) return null;
  const value = rest.trim().replace(/\.$/, '').trim();
  return answerKind === 'letter' ? parseLetter(value) : parseNumber(value);
}

/** Whether a response's last Answer line holds the item's answer. */
export function isCorrect(item: TaskItem, responseText: string): boolean {
  return checkResponse(item, responseText).correct;
}

/** The parsed answer of a response to an item and whether it is correct. */
export function checkResponse(item: TaskItem, responseText: string): CheckResult {
  const parsed = parseAnswer(item.answerKind, responseText);
  return { parsed, correct: parsed !== null && parsed === item.answer };
}

/** What follows `Answer:` on the last line that starts with it, or null when there is none. */
export function lastAnswerLine(responseText: string): string | null {
  const lines = responseText.split(/\r\n|\r|\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = ANSWER_LINE.exec(lines[i]);
    if (match !== null) return match[1];
  }
  return null;
}

/** A number written as in an Answer line or a GSM8K `####` line, canonical (`-1234`, `2.5`), or null. */
export function parseNumber(text: string): string | null {
  const match = NUMBER.exec(text.trim());
  if (match === null) return null;
  const [, sign, digits, fraction] = match;
  const whole = digits.replace(/,/g, '').replace(/^0+(?=\d)/, '');
  const decimals = (fraction ?? '').replace(/0+$/, '');
  const magnitude = decimals === '' ? whole : `${whole}.${decimals}`;
  const negative = sign !== '' && sign !== '+' && magnitude !== '0';
  return negative ? `-${magnitude}` : magnitude;
}

function parseLetter(value: string): string | null {
  const alone = LETTER_ALONE.exec(value);
  if (alone !== null) return alone[1].toUpperCase();
  const withText = LETTER_WITH_TEXT.exec(value);
  if (withText !== null) return withText[1] ?? withText[2];
  return null;
}

function resolveKind(kind: AnswerKind | BuiltinTaskName): AnswerKind {
  if (kind === 'letter' || kind === 'integer') return kind;
  if (isBuiltinTask(kind)) return BUILTIN_TASKS[kind].answerKind;
  throw new InvalidOptionsError(
    `unknown task or answer kind "${String(kind)}": give "letter", "integer" or a built-in task (${Object.keys(BUILTIN_TASKS).join(', ')})`,
    'kind',
  );
}
