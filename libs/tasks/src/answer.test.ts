import { describe, expect, it } from 'vitest';
import { checkResponse, isCorrect, lastAnswerLine, parseAnswer, parseNumber } from './answer';
import { isInvalidOptionsError } from './errors';
import type { TaskItem } from './item';
import { evaluationPrompt, toChoices } from './prompt';

const letterItem: TaskItem = {
  id: 'q1',
  task: 'science',
  answerKind: 'letter',
  question: 'Which of these animals is a mammal?',
  choices: toChoices(['shark', 'whale', 'eagle', 'frog']),
  prompt: evaluationPrompt('Which of these animals is a mammal?', toChoices(['shark', 'whale', 'eagle', 'frog'])),
  answer: 'B',
  solution: 'A whale is a mammal.\nAnswer: B',
};
const numberItem: TaskItem = {
  id: 'q2',
  task: 'arithmetic',
  answerKind: 'integer',
  question: 'Sam has 1000 pens and buys 234 more. How many pens does Sam have now?',
  prompt: evaluationPrompt('Sam has 1000 pens and buys 234 more. How many pens does Sam have now?'),
  answer: '1234',
  solution: 'Sam now has 1000 + 234 = 1234 pens.\nAnswer: 1234',
};

describe('parseAnswer with letters', () => {
  it.each([
    ['Answer: B', 'B'],
    ['answer: b', 'B'],
    ['ANSWER:B', 'B'],
    ['  Answer :   B  ', 'B'],
    ['Answer: B.', 'B'],
    ['Answer: (B)', 'B'],
    ['Answer: (B).', 'B'],
    ['Answer: B)', 'B'],
    ['Answer: B) whale', 'B'],
    ['Answer: (B) whale', 'B'],
    ['Answer: B. whale', 'B'],
    ['Answer: B: whale', 'B'],
    ['A whale is a mammal.\nAnswer: B', 'B'],
    ['A whale is a mammal.\r\nAnswer: B\r\n', 'B'],
    ['Answer: D\n\n', 'D'],
  ])('%j -> %s', (response, expected) => {
    expect(parseAnswer('letter', response)).toBe(expected);
  });

  it.each([
    ['no Answer line', 'A whale is a mammal. So the answer is B.'],
    ['empty', ''],
    ['the option text', 'Answer: whale'],
    ['an article and a noun', 'Answer: a spoon'],
    ['a capital article and a noun', 'Answer: A whale'],
    ['nothing after the colon', 'Answer:'],
    ['two letters', 'Answer: BC'],
    ['not at the line start', 'So my Answer: B'],
    ['another marker', 'The answer is (B).'],
    ['GSM8K marker', '#### B'],
    ['a number', 'Answer: 2'],
  ])('unparsable: %s', (_, response) => {
    expect(parseAnswer('letter', response)).toBeNull();
  });

  it('takes the last Answer line when there are several', () => {
    expect(parseAnswer('letter', 'Answer: A\nWait, no.\nAnswer: C')).toBe('C');
    expect(parseAnswer('letter', 'Answer: C\nAnswer: A')).toBe('A');
    // The last one wins even when it cannot be parsed.
    expect(parseAnswer('letter', 'Answer: B\nAnswer: whale')).toBeNull();
    expect(lastAnswerLine('x\nAnswer: one\nAnswer: two')).toBe(' two');
  });
});

describe('parseAnswer with numbers', () => {
  it.each([
    ['Answer: 42', '42'],
    ['answer:42', '42'],
    ['Answer: 42.', '42'],
    ['Answer: 1,234', '1234'],
    ['Answer: 1,234,567.', '1234567'],
    ['Answer: -3', '-3'],
    ['Answer: +3', '3'],
    ['Answer: \u22127', '-7'],
    ['Answer: -0', '0'],
    ['Answer: 007', '7'],
    ['Answer: $18', '18'],
    ['Answer: 12.0', '12'],
    ['Answer: 12.50', '12.5'],
    ['Answer: 6 apples', '6'],
    ['Answer: 6 apples.', '6'],
    ['3 + 4 = 7.\nAnswer: 7\n', '7'],
  ])('%j -> %s', (response, expected) => {
    expect(parseAnswer('integer', response)).toBe(expected);
  });

  it.each([
    ['no Answer line', '3 + 4 = 7. So the answer is 7.'],
    ['words', 'Answer: seven'],
    ['GSM8K marker', '#### 7'],
    ['bad comma groups', 'Answer: 12,34'],
    ['an expression', 'Answer: 3 + 4'],
    ['a letter', 'Answer: B'],
    ['nothing', 'Answer: '],
  ])('unparsable: %s', (_, response) => {
    expect(parseAnswer('integer', response)).toBeNull();
  });

  it('takes the last Answer line', () => {
    expect(parseAnswer('integer', 'Answer: 5\n5 + 1 = 6\nAnswer: 6')).toBe('6');
    expect(parseAnswer('arithmetic', 'Answer: 6\nAnswer: 5')).toBe('5');
  });

  it('reads GSM8K numbers the same way', () => {
    expect(parseNumber('1,200')).toBe('1200');
    expect(parseNumber(' -3 ')).toBe('-3');
    expect(parseNumber('x')).toBeNull();
  });
});

describe('task names and kinds', () => {
  it('takes a built-in task name for its kind', () => {
    expect(parseAnswer('social', 'Answer: (c)')).toBe('C');
    expect(parseAnswer('arithmetic', 'Answer: 1,000')).toBe('1000');
  });

  it('refuses an unknown task with a typed error', () => {
    expect(() => parseAnswer('arc-easy' as 'letter', 'Answer: A')).toThrow(/unknown task or answer kind "arc-easy"/);
    try {
      parseAnswer('nope' as 'letter', 'Answer: A');
    } catch (error) {
      expect(isInvalidOptionsError(error) && error.option).toBe('kind');
    }
  });
});

describe('isCorrect and checkResponse', () => {
  it('is right only with the key on the last Answer line', () => {
    expect(isCorrect(letterItem, letterItem.solution)).toBe(true);
    expect(isCorrect(letterItem, 'A shark is a mammal.\nAnswer: A')).toBe(false);
    expect(isCorrect(letterItem, 'Answer: B\nAnswer: A')).toBe(false);
    expect(isCorrect(letterItem, 'Answer: A\nAnswer: (b)')).toBe(true);
    expect(checkResponse(letterItem, 'The whale.')).toEqual({ parsed: null, correct: false });
    expect(isCorrect(numberItem, 'Answer: 1,234')).toBe(true);
    expect(isCorrect(numberItem, 'Answer: 1234.0')).toBe(true);
    expect(isCorrect(numberItem, 'Answer: 1233')).toBe(false);
    expect(checkResponse(numberItem, 'Answer: twelve')).toEqual({ parsed: null, correct: false });
    expect(checkResponse(numberItem, 'Answer: 12')).toEqual({ parsed: '12', correct: false });
  });
});
