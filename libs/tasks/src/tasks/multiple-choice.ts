// The shape every multiple-choice task shares: a question, options in random
// order, and reasoning lines that conclude a given option. The correct
// solution is the reasoning for the right option and `Answer: <letter>`; a
// wrong solution is the (false) reasoning for another option and its letter,
// so that the corpus teaches wrong facts along with wrong letters, as a noisy
// web corpus would; a badly formatted one keeps the right reasoning and ends
// without a parsable Answer line.
import { answerLine, choiceLabel, toChoices } from '../prompt';
import type { Rng } from '../rng';
import type { GeneratedProblem } from './task';

/** A multiple-choice problem before it is written out. */
export interface MultipleChoiceDraft {
  /** The question alone. */
  question: string;
  /** Option texts in display order. */
  options: string[];
  /** 0-based index of the right option. */
  correct: number;
  /** Reasoning lines that conclude option `chosen`; they state something false unless chosen is the right one. */
  reasoning(chosen: number): string[];
}

/** A drawn problem from a draft. */
export function multipleChoiceProblem(draft: MultipleChoiceDraft): GeneratedProblem {
  const letter = choiceLabel(draft.correct);
  const conclude = (chosen: number): string =>
    [...draft.reasoning(chosen), answerLine(choiceLabel(chosen))].join('\n');
  return {
    question: draft.question,
    choices: toChoices(draft.options),
    answer: letter,
    solution: conclude(draft.correct),
    wrongSolution: (rng) => {
      const others = draft.options.map((_, index) => index).filter((index) => index !== draft.correct);
      return conclude(rng.pick(others));
    },
    badFormatSolution: (rng) => {
      const reasoning = draft.reasoning(draft.correct);
      const endings = [
        `So the answer is ${letter}.`,
        // The option's text instead of its letter.
        `Answer: ${draft.options[draft.correct]}`,
        `The answer is (${letter}).`,
      ];
      return [...reasoning, rng.pick(endings)].join('\n');
    },
  };
}

/** The right option and the distractors in random order, and where the right one landed. */
export function arrangeOptions(rng: Rng, right: string, distractors: readonly string[]): { options: string[]; correct: number } {
  const options = rng.shuffle([right, ...distractors]);
  return { options, correct: options.indexOf(right) };
}
