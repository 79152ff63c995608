import { describe, expect, it } from 'vitest';
import { answerKindOf, answerLine, choiceLabel, evaluationPrompt, normalizePrompt, toChoices } from './prompt';

describe('evaluationPrompt', () => {
  it('writes the question, lettered options and the letter instruction', () => {
    expect(evaluationPrompt('  Which of these animals is a bird? ', toChoices(['owl', 'shark', 'ant']))).toBe(
      'Which of these animals is a bird?\nA) owl\nB) shark\nC) ant\nLet\'s think step by step. End with a line "Answer: <letter>".',
    );
  });

  it('asks for a number when there are no options', () => {
    expect(evaluationPrompt('Sam has 3 pens. How many pens does Sam have?')).toBe(
      'Sam has 3 pens. How many pens does Sam have?\nLet\'s think step by step. End with a line "Answer: <number>".',
    );
    expect(evaluationPrompt('q', [])).toBe(evaluationPrompt('q'));
  });

  it('has helpers that agree with it', () => {
    expect(answerLine('C')).toBe('Answer: C');
    expect(choiceLabel(0) + choiceLabel(25)).toBe('AZ');
    expect(answerKindOf(toChoices(['x']))).toBe('letter');
    expect(answerKindOf(undefined)).toBe('integer');
  });
});

describe('normalizePrompt', () => {
  it('ignores case, runs of white space and compatibility forms', () => {
    expect(normalizePrompt('  Which  OBJECT\n\tfloats? ')).toBe('which object floats?');
    expect(normalizePrompt('\uFF21nswer')).toBe('answer');
  });
});
