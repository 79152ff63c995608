// What a built-in task generator is, and the text helpers the generators
// share. A generator draws one problem from a seeded stream; the problem
// carries its correct solution and can write a wrong one (a false step that
// leads to a wrong answer) and a badly formatted one (right reasoning, no
// parsable Answer line) for the pretraining corpus.
import type { AnswerKind, Choice } from '../item';
import type { Rng } from '../rng';

/** One generated problem. */
export interface GeneratedProblem {
  /** The question alone. */
  question: string;
  /** Lettered options, for multiple-choice tasks. */
  choices?: Choice[];
  /** Canonical answer. */
  answer: string;
  /** Correct step-by-step response ending with `Answer: <answer>`. */
  solution: string;
  /** A response whose reasoning contains a false step and whose Answer line holds a wrong answer. */
  wrongSolution(rng: Rng): string;
  /** A response with correct reasoning but no parsable Answer line. */
  badFormatSolution(rng: Rng): string;
}

/** A built-in task. */
export interface TaskGenerator {
  /** Task name, used in ids and reports. */
  name: string;
  /** How its answers are written. */
  answerKind: AnswerKind;
  /** The published benchmark it mirrors in miniature. */
  mirrors: string;
  /** One line on what it asks. */
  description: string;
  /** Draws one problem. */
  generate(rng: Rng): GeneratedProblem;
}

/** `a` or `an` before a lower-case noun phrase of the suite's vocabulary. */
export function withArticle(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

/** The text with its first letter in upper case. */
export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
