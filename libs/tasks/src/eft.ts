// Evaluation fine-tuning (EFT) examples: the Self-Rewarding LM paper (Yuan et
// al. 2024) trains M1 on instruction data AND on judging examples, so that the
// model can act as its own judge. For each seed item the built-in suite writes
// three responses of known quality, each wrapped in the compact rubric prompt
// (@cream/cream rubricPrompt) as the user turn, answered by a one-line
// justification and "Score: n" from a fixed mapping:
//   correct     right answer, clear steps, parsable Answer line   -> Score: 5
//   bad-format  right reasoning, no parsable Answer line           -> Score: 3
//   wrong       a false step and a wrong answer                    -> Score: 1
// The wrong and badly formatted responses come from the same corruption code as
// the pretraining corpus (GeneratedProblem.wrongSolution/badFormatSolution).
import { rubricPrompt } from '@cream/cream';
import { chatTurns, type ChatExample } from './item';
import type { Rng } from './rng';
import type { GeneratedProblem } from './tasks/task';
import type { TaskItem } from './item';

/** The quality of a judged response, in the order the examples are written per seed item. */
export type EftQuality = 'correct' | 'bad-format' | 'wrong';

/** Every EFT quality, in the order of the examples of one seed item. */
export const EFT_QUALITIES: readonly EftQuality[] = Object.freeze(['correct', 'bad-format', 'wrong']);

/** The rubric score each quality gets (0..5). */
export const EFT_SCORES: Readonly<Record<EftQuality, number>> = Object.freeze({ correct: 5, 'bad-format': 3, wrong: 1 });

/** The one-line justification before the score, per quality. */
export const EFT_JUSTIFICATIONS: Readonly<Record<EftQuality, string>> = Object.freeze({
  correct: 'The answer is right and the steps are clear.',
  'bad-format': 'The answer is right, but there is no Answer line.',
  wrong: 'The answer is wrong.',
});

/** One judging example: the compact rubric prompt as the user turn, the verdict as the assistant turn. */
export interface EftExample extends ChatExample {
  /** `eft/<task>/<seed index>/<quality>`. */
  id: string;
  /** The seed item's task. */
  task: string;
  /** The seed item's id. */
  sourceId: string;
  /** What the judged response is. */
  quality: EftQuality;
  /** The score of the verdict (EFT_SCORES[quality]). */
  score: number;
}

/** The verdict an EFT example teaches for a quality: its justification and "Score: n". */
export function eftVerdict(quality: EftQuality): string {
  return `${EFT_JUSTIFICATIONS[quality]}\nScore: ${EFT_SCORES[quality]}`;
}

/**
 * The EFT examples of seed items (with the problems they were drawn from), three
 * per item in EFT_QUALITIES order; `rng` draws the corruptions (give it its own
 * stream, so no other split moves).
 */
export function eftExamples(drawn: readonly { item: TaskItem; problem: GeneratedProblem }[], rng: Rng): EftExample[] {
  return drawn.flatMap(({ item, problem }) =>
    EFT_QUALITIES.map((quality): EftExample => {
      const response = quality === 'correct' ? problem.solution : quality === 'wrong' ? problem.wrongSolution(rng) : problem.badFormatSolution(rng);
      const index = item.id.slice(item.id.lastIndexOf('/') + 1);
      return {
        id: `eft/${item.task}/${index}/${quality}`,
        task: item.task,
        sourceId: item.id,
        quality,
        score: EFT_SCORES[quality],
        messages: chatTurns(rubricPrompt(item.prompt, response, 'compact'), eftVerdict(quality)),
      };
    }),
  );
}
