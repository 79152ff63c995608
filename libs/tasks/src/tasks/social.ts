// Task `social`, in the spirit of Social IQa (SIQA: a short situation, a
// question about a person's feelings or next action, three options): fifteen
// situations, each with one feeling among five and one fitting next step.
//   feel form: "Sam won the race. How would Sam feel?"
//   next form: "Sam saw a big spider. What will Sam want to do next?"
// Distractors come only from situations of other feelings, so that exactly
// one option fits (an action tied to another happy situation could also fit a
// happy one). The reasoning names the situation and concludes; a wrong
// solution concludes a distractor.
import type { Rng } from '../rng';
import { arrangeOptions, multipleChoiceProblem } from './multiple-choice';
import type { GeneratedProblem, TaskGenerator } from './task';

/** A situation with the feeling it causes and the step that follows it. */
export interface SocialSituation {
  /** Past-tense verb phrase after a name: "won the race". */
  event: string;
  /** One of the five feelings. */
  feeling: 'happy' | 'sad' | 'angry' | 'scared' | 'tired';
  /** Infinitive phrase: "celebrate with friends". */
  next: string;
}

/** The people of the task. */
export const SOCIAL_NAMES: readonly string[] = ['Sam', 'Alex', 'Mia', 'Tom', 'Lily', 'Ben', 'Emma', 'Jack'];

/** The situations of the task. */
export const SOCIAL_SITUATIONS: readonly SocialSituation[] = [
  { event: 'won the race', feeling: 'happy', next: 'celebrate with friends' },
  { event: 'got a new puppy', feeling: 'happy', next: 'play with the puppy' },
  { event: 'got a gift from a friend', feeling: 'happy', next: 'thank the friend' },
  { event: 'lost a favorite toy', feeling: 'sad', next: 'look for the toy' },
  { event: 'broke a favorite cup', feeling: 'sad', next: 'clean up the pieces' },
  { event: 'missed the school trip', feeling: 'sad', next: 'ask about the trip' },
  { event: 'was pushed by a bully', feeling: 'angry', next: 'tell a teacher' },
  { event: 'had a bike stolen', feeling: 'angry', next: 'report the stolen bike' },
  { event: 'was blamed for a broken window', feeling: 'angry', next: 'explain what happened' },
  { event: 'heard a loud noise in the dark', feeling: 'scared', next: 'turn on the light' },
  { event: 'saw a big spider', feeling: 'scared', next: 'move away from the spider' },
  { event: 'got lost in the woods', feeling: 'scared', next: 'call for help' },
  { event: 'worked all day', feeling: 'tired', next: 'go to bed early' },
  { event: 'ran a long race', feeling: 'tired', next: 'sit down and rest' },
  { event: 'stayed up all night', feeling: 'tired', next: 'take a nap' },
];

function generate(rng: Rng): GeneratedProblem {
  const name = rng.pick(SOCIAL_NAMES);
  const situation = rng.pick(SOCIAL_SITUATIONS);
  const others = SOCIAL_SITUATIONS.filter((other) => other.feeling !== situation.feeling);
  const context = `${name} ${situation.event}.`;
  if (rng.next() < 0.5) {
    const feelings = [...new Set(others.map((other) => other.feeling))];
    const { options, correct } = arrangeOptions(rng, situation.feeling, rng.sample(feelings, 2));
    return multipleChoiceProblem({
      question: `${context} How would ${name} feel?`,
      options,
      correct,
      reasoning: (chosen) => [`${name} ${situation.event}, so ${name} would feel ${options[chosen]}.`],
    });
  }
  // Two distractors from two different feelings.
  const [first, second] = rng.sample([...new Set(others.map((other) => other.feeling))], 2);
  const distractors = [first, second].map((feeling) => rng.pick(others.filter((other) => other.feeling === feeling)).next);
  const { options, correct } = arrangeOptions(rng, situation.next, distractors);
  return multipleChoiceProblem({
    question: `${context} What will ${name} want to do next?`,
    options,
    correct,
    reasoning: (chosen) => [`${name} ${situation.event}, so ${name} would want to ${options[chosen]}.`],
  });
}

/** SIQA-like social situations. */
export const social: TaskGenerator = {
  name: 'social',
  answerKind: 'letter',
  mirrors: 'Social IQa (SIQA)',
  description: 'how a person would feel after a situation, or what they would do next; three options',
  generate,
};
