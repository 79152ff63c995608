// Every built-in task: its reference solutions pass their own checker, its
// corrupted solutions fail it (wrong ones parse to a wrong answer, badly
// formatted ones do not parse), its options are well formed, and its keys
// agree with an independent recomputation (from the fact tables for the
// multiple-choice tasks, from the prompt's text for arithmetic).
import { describe, expect, it } from 'vitest';
import { parseAnswer } from '../answer';
import { choiceLabel } from '../prompt';
import { createRng } from '../rng';
import { ARITHMETIC_NAMES } from './arithmetic';
import { MATERIAL_PROPERTIES, OBJECTS_BY_MATERIAL, materialOf } from './objects';
import { BUILTIN_TASK_NAMES, BUILTIN_TASKS } from './registry';
import { SCIENCE_GROUPS, scienceCategoryOf } from './science';
import { SOCIAL_SITUATIONS } from './social';
import type { GeneratedProblem } from './task';

const DRAWS = 400;

function draw(task: (typeof BUILTIN_TASK_NAMES)[number], count = DRAWS): GeneratedProblem[] {
  const rng = createRng(`test/${task}`);
  return Array.from({ length: count }, () => BUILTIN_TASKS[task].generate(rng));
}

const rightOption = (problem: GeneratedProblem): string => problem.choices!.find((choice) => choice.label === problem.answer)!.text;

describe.each(BUILTIN_TASK_NAMES)('task %s', (task) => {
  const generator = BUILTIN_TASKS[task];
  const problems = draw(task);

  it('has reference solutions that pass its checker, step by step, ending with the Answer line', () => {
    for (const problem of problems) {
      expect(parseAnswer(task, problem.solution)).toBe(problem.answer);
      const lines = problem.solution.split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(2);
      expect(lines[lines.length - 1]).toBe(`Answer: ${problem.answer}`);
    }
  });

  it('has wrong solutions that parse to a wrong answer', () => {
    const rng = createRng(`test/${task}/wrong`);
    for (const problem of problems) {
      const wrong = problem.wrongSolution(rng);
      const parsed = parseAnswer(task, wrong);
      expect(parsed).not.toBeNull();
      expect(parsed).not.toBe(problem.answer);
    }
  });

  it('has badly formatted solutions that do not parse', () => {
    const rng = createRng(`test/${task}/format`);
    const endings = new Set<string>();
    for (const problem of problems) {
      const bad = problem.badFormatSolution(rng);
      expect(parseAnswer(task, bad), bad).toBeNull();
      endings.add(bad.split('\n').at(-1)!.replace(/[\dA-Z]/g, '#').slice(0, 12));
    }
    expect(endings.size).toBeGreaterThanOrEqual(3);
  });

  it('writes answers of its kind and well-formed options', () => {
    for (const problem of problems) {
      if (generator.answerKind === 'integer') {
        expect(problem.choices).toBeUndefined();
        expect(problem.answer).toMatch(/^[1-9]\d*$/);
        continue;
      }
      const choices = problem.choices!;
      expect(choices.length).toBe(task === 'social' ? 3 : task === 'science' && problem.question.includes('state of matter') ? 3 : 4);
      expect(choices.map((choice) => choice.label)).toEqual(choices.map((_, index) => choiceLabel(index)));
      expect(new Set(choices.map((choice) => choice.text)).size).toBe(choices.length);
      expect(choices.some((choice) => choice.label === problem.answer)).toBe(true);
    }
  });

  it('is deterministic and varied', () => {
    expect(JSON.stringify(draw(task, 50))).toBe(JSON.stringify(draw(task, 50)));
    const questions = new Set(problems.map((problem) => problem.question + JSON.stringify(problem.choices)));
    expect(questions.size).toBeGreaterThan(DRAWS * 0.8);
    if (generator.answerKind === 'letter') {
      // The right letter is spread over the positions.
      const letters = new Set(problems.map((problem) => problem.answer));
      expect(letters.size).toBe(task === 'social' ? 3 : 4);
    }
  });
});

describe('science keys agree with the fact table', () => {
  it('names the one option of the asked category, or the category of the asked thing', () => {
    for (const problem of draw('science')) {
      const group = Object.values(SCIENCE_GROUPS).find((candidate) =>
        Object.keys(candidate.members).some(
          (category) =>
            problem.question === candidate.askMember(category) ||
            Object.values(candidate.members).flat().some((thing) => problem.question === candidate.askCategory(thing)),
        ),
      )!;
      expect(group).toBeDefined();
      const asked = Object.keys(group.members).find((category) => problem.question === group.askMember(category));
      if (asked !== undefined) {
        const members = problem.choices!.filter((choice) => scienceCategoryOf(group, choice.text) === asked);
        expect(members.map((choice) => choice.label)).toEqual([problem.answer]);
      } else {
        const thing = Object.values(group.members).flat().find((candidate) => problem.question === group.askCategory(candidate))!;
        expect(rightOption(problem)).toBe(group.categoryOption(scienceCategoryOf(group, thing)));
      }
    }
  });

  it('puts every thing in exactly one category', () => {
    for (const group of Object.values(SCIENCE_GROUPS)) {
      const things = Object.values(group.members).flat();
      expect(new Set(things).size).toBe(things.length);
    }
  });
});

describe('objects keys agree with the material table', () => {
  const propertyOf = (material: string) => MATERIAL_PROPERTIES.find((property) => property.material === material)!;
  const has = (material: string, phrase: string) => propertyOf(material).phrase === phrase;
  const lacks = (material: string, phrase: string) => MATERIAL_PROPERTIES.find((property) => property.phrase === phrase)!.lackedBy.includes(material);

  it('has exactly one option with the property, all others plainly without it', () => {
    for (const problem of draw('objects')) {
      const objectForm = /^Which object (.+)\?$/.exec(problem.question);
      if (objectForm !== null) {
        const phrase = objectForm[1];
        for (const choice of problem.choices!) {
          const material = materialOf(choice.text.replace(/^an? /, ''));
          expect(choice.label === problem.answer ? has(material, phrase) : lacks(material, phrase)).toBe(true);
        }
        continue;
      }
      const propertyForm = /^What is true about an? (.+)\?$/.exec(problem.question)!;
      const material = materialOf(propertyForm[1]);
      for (const choice of problem.choices!) {
        const phrase = choice.text.replace(/^it /, '');
        expect(choice.label === problem.answer ? has(material, phrase) : lacks(material, phrase)).toBe(true);
      }
    }
  });

  it('gives every material at least three properties it lacks, and each property enough distractor objects', () => {
    for (const material of Object.keys(OBJECTS_BY_MATERIAL)) {
      expect(MATERIAL_PROPERTIES.filter((property) => property.lackedBy.includes(material)).length).toBeGreaterThanOrEqual(3);
    }
    for (const property of MATERIAL_PROPERTIES) {
      expect(property.lackedBy).not.toContain(property.material);
      expect(property.lackedBy.flatMap((material) => OBJECTS_BY_MATERIAL[material]).length).toBeGreaterThanOrEqual(3);
    }
  });
});

describe('social keys agree with the situations', () => {
  it('keys the feeling or next step of the situation, with distractors from other feelings', () => {
    for (const problem of draw('social')) {
      const situation = SOCIAL_SITUATIONS.find((candidate) => problem.question.includes(` ${candidate.event}.`))!;
      expect(situation).toBeDefined();
      if (problem.question.endsWith('feel?')) {
        expect(rightOption(problem)).toBe(situation.feeling);
        continue;
      }
      expect(rightOption(problem)).toBe(situation.next);
      for (const choice of problem.choices!.filter((choice) => choice.label !== problem.answer)) {
        const source = SOCIAL_SITUATIONS.find((candidate) => candidate.next === choice.text)!;
        expect(source.feeling).not.toBe(situation.feeling);
      }
    }
  });
});

describe('arithmetic keys recomputed from the question text', () => {
  // An independent reading of the word problem, sentence by sentence.
  function solve(question: string): { answer: number; steps: number } {
    let value = Number.NaN;
    let steps = 0;
    for (const sentence of question.split(/(?<=[.?])\s+/)) {
      let match: RegExpExecArray | null;
      if ((match = /^\w+ has (\d+) bags with (\d+) \w+ in each bag\.$/.exec(sentence))) {
        value = Number(match[1]) * Number(match[2]);
        steps += 1;
      } else if ((match = /^\w+ has (\d+) \w+\.$/.exec(sentence))) {
        value = Number(match[1]);
      } else if ((match = /^(?:\w+ buys|\w+ gives \w+|\w+ finds) (\d+) more \w+\.$/.exec(sentence))) {
        value += Number(match[1]);
        steps += 1;
      } else if ((match = /^(?:\w+ gives (\d+) \w+ to \w+|\w+ loses (\d+) \w+)\.$/.exec(sentence))) {
        value -= Number(match[1] ?? match[2]);
        steps += 1;
      } else if ((match = /^\w+ shares the \w+ equally among (\d+) friends\.$/.exec(sentence))) {
        expect(value % Number(match[1])).toBe(0);
        value /= Number(match[1]);
        steps += 1;
      } else {
        expect(sentence).toMatch(/^How many \w+ does (each friend get|\w+ have now)\?$/);
      }
    }
    return { answer: value, steps };
  }

  it('gets the same answer in two or three steps, with small numbers', () => {
    for (const problem of draw('arithmetic', 1000)) {
      const { answer, steps } = solve(problem.question);
      expect(problem.answer).toBe(String(answer));
      expect(steps).toBeGreaterThanOrEqual(2);
      expect(steps).toBeLessThanOrEqual(3);
      for (const number of problem.question.match(/\d+/g)!) expect(Number(number)).toBeLessThanOrEqual(20);
      expect(answer).toBeGreaterThanOrEqual(2);
      expect(answer).toBeLessThan(100);
    }
  });

  it('shows each step as a true equation in the reference solution', () => {
    for (const problem of draw('arithmetic')) {
      for (const [, left, op, right, result] of problem.solution.matchAll(/(\d+) ([-+*/]) (\d+) = (\d+)/g)) {
        const [a, b] = [Number(left), Number(right)];
        const value = op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
        expect(value).toBe(Number(result));
      }
      expect(ARITHMETIC_NAMES.some((name) => problem.question.startsWith(`${name} has`))).toBe(true);
    }
  });
});
