// Task `science`, in the spirit of ARC-Easy / ARC-Challenge (grade-school
// science, four options): questions over a small fact table of three groups,
// animal classes, states of matter and measuring tools. Two forms per group:
//   member:   "Which of these animals is a mammal?"  options are things; the
//             reasoning states the class of every option (ARC-Challenge-like:
//             all four facts are needed to rule the distractors out), and a
//             wrong solution swaps the classes of the right and chosen options;
//   category: "What kind of animal is a whale?"  options are classes; the
//             reasoning is the one fact.
// The vocabulary is about ninety words, each fact is seen under many option
// sets and orders, and every sentence follows one of a few templates, so a
// byte-level BPE model of a few million parameters can learn it.
import type { Rng } from '../rng';
import { arrangeOptions, multipleChoiceProblem } from './multiple-choice';
import { capitalize, withArticle, type GeneratedProblem, type TaskGenerator } from './task';

/** One group of the fact table: things by category, and how to talk about them. */
export interface ScienceGroup {
  /** The things of each category; a thing belongs to exactly one category. */
  members: Record<string, readonly string[]>;
  /** Question asking which option belongs to a category. */
  askMember(category: string): string;
  /** Question asking which category a thing belongs to. */
  askCategory(thing: string): string;
  /** How a category is shown as an option. */
  categoryOption(category: string): string;
  /** The fact that a thing belongs to a category, as a sentence. */
  fact(thing: string, category: string): string;
}

/** The fact table of the science task. */
export const SCIENCE_GROUPS: Readonly<Record<string, ScienceGroup>> = {
  animals: {
    members: {
      mammal: ['whale', 'dog', 'cow', 'bat', 'horse', 'rabbit'],
      bird: ['eagle', 'penguin', 'owl', 'duck', 'robin', 'parrot'],
      fish: ['shark', 'trout', 'salmon', 'goldfish', 'tuna'],
      reptile: ['snake', 'lizard', 'turtle', 'crocodile'],
      amphibian: ['frog', 'toad', 'newt', 'salamander'],
      insect: ['ant', 'bee', 'beetle', 'butterfly', 'moth'],
    },
    askMember: (category) => `Which of these animals is ${withArticle(category)}?`,
    askCategory: (thing) => `What kind of animal is ${withArticle(thing)}?`,
    categoryOption: (category) => category,
    fact: (thing, category) => `${capitalize(withArticle(thing))} is ${withArticle(category)}.`,
  },
  matter: {
    // Mass nouns: "Water is a liquid."
    members: {
      solid: ['stone', 'ice', 'wood', 'sand', 'iron', 'salt'],
      liquid: ['water', 'milk', 'juice', 'oil', 'honey'],
      gas: ['steam', 'air', 'oxygen', 'helium'],
    },
    askMember: (category) => `Which of these is ${withArticle(category)}?`,
    askCategory: (thing) => `What state of matter is ${thing}?`,
    categoryOption: (category) => category,
    fact: (thing, category) => `${capitalize(thing)} is ${withArticle(category)}.`,
  },
  tools: {
    members: {
      'measure temperature': ['thermometer'],
      'measure length': ['ruler', 'tape measure'],
      'measure weight': ['scale'],
      'tell the time': ['clock', 'watch'],
      'see things far away': ['telescope'],
      'see very small things': ['microscope', 'magnifying glass'],
      'find north': ['compass'],
      'measure rain': ['rain gauge'],
    },
    askMember: (category) => `Which tool is used to ${category}?`,
    askCategory: (thing) => `What is ${withArticle(thing)} used for?`,
    categoryOption: (category) => `to ${category}`,
    fact: (thing, category) => `${capitalize(withArticle(thing))} is used to ${category}.`,
  },
};

/** The category of a thing within its group. */
export function scienceCategoryOf(group: ScienceGroup, thing: string): string {
  for (const [category, things] of Object.entries(group.members)) if (things.includes(thing)) return category;
  throw new Error(`internal: "${thing}" is in no category`);
}

function generate(rng: Rng): GeneratedProblem {
  const group = SCIENCE_GROUPS[rng.pick(Object.keys(SCIENCE_GROUPS))];
  const categories = Object.keys(group.members);
  const category = rng.pick(categories);
  const others = categories.filter((other) => other !== category);
  return rng.next() < 0.5 ? memberForm(rng, group, category, others) : categoryForm(rng, group, category, others);
}

function memberForm(rng: Rng, group: ScienceGroup, category: string, others: readonly string[]): GeneratedProblem {
  const right = rng.pick(group.members[category]);
  const pool = others.flatMap((other) => group.members[other]);
  const { options, correct } = arrangeOptions(rng, right, rng.sample(pool, 3));
  const categoryOf = options.map((thing) => scienceCategoryOf(group, thing));
  return multipleChoiceProblem({
    question: group.askMember(category),
    options,
    correct,
    reasoning: (chosen) =>
      options.map((thing, index) => {
        // A wrong conclusion swaps the classes of the right and the chosen option.
        const claimed = index === chosen ? category : index === correct ? categoryOf[chosen] : categoryOf[index];
        return group.fact(thing, claimed);
      }),
  });
}

function categoryForm(rng: Rng, group: ScienceGroup, category: string, others: readonly string[]): GeneratedProblem {
  const thing = rng.pick(group.members[category]);
  const distractors = rng.sample(others, Math.min(3, others.length));
  const arranged = arrangeOptions(rng, category, distractors);
  return multipleChoiceProblem({
    question: group.askCategory(thing),
    options: arranged.options.map((option) => group.categoryOption(option)),
    correct: arranged.correct,
    reasoning: (chosen) => [group.fact(thing, arranged.options[chosen])],
  });
}

/** ARC-like science facts. */
export const science: TaskGenerator = {
  name: 'science',
  answerKind: 'letter',
  mirrors: 'ARC-Easy / ARC-Challenge',
  description: 'science facts (animal classes, states of matter, measuring tools), four or three options',
  generate,
};
