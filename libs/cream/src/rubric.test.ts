// The SRLM rubric: the prompt embeds the question and response verbatim, and
// the parser takes the last in-range integer verdict, never a guess.
import { describe, expect, it } from 'vitest';
import { aggregateJudgments, parseRubricScore, rubricPrompt } from './rubric';

describe('rubricPrompt', () => {
  it('embeds the question and the response and asks for "Score: <total points>"', () => {
    const prompt = rubricPrompt('What is 2+3?', 'It is 5.\nAnswer: 5');
    expect(prompt).toContain('User: What is 2+3?\n<response>It is 5.\nAnswer: 5</response>');
    expect(prompt).toContain('additive 5-point scoring system');
    expect(prompt).toContain('Conclude with the score using the format: "Score: <total points>"');
    expect(prompt.match(/^- (Add|Award|Grant|Bestow)/gm)).toHaveLength(5);
    expect(rubricPrompt('What is 2+3?', 'It is 5.\nAnswer: 5', 'full')).toBe(prompt);
  });

  it('compact: the five additive criteria in one line, the question, the response and the verdict format, far shorter', () => {
    const prompt = rubricPrompt('What is 2+3?', 'It is 5.\nAnswer: 5', 'compact');
    const lines = prompt.split('\n');
    expect(lines[0]).toMatch(/^Add 1 point each if/);
    expect(lines[0].split(';')).toHaveLength(5);
    expect(prompt).toContain('\nQuestion: What is 2+3?\nResponse: It is 5.\nAnswer: 5\n');
    expect(lines[lines.length - 1]).toContain('Score: n');
    expect(prompt.length * 5).toBeLessThan(rubricPrompt('What is 2+3?', 'It is 5.\nAnswer: 5').length);
  });
});

describe('parseRubricScore', () => {
  it.each([
    ['The response is relevant and complete.\nScore: 4', 4],
    ['score:3', 3],
    ['Score: 5/5', 5],
    ['**Score:** 2', 2],
    ['Score: 0', 0],
    ['I will use the format "Score: <total points>". The answer is wrong. Score: 1', 1],
    ['Score: 2 ... on reflection, Score: 3', 3],
  ])('parses %j as %d', (text, expected) => {
    expect(parseRubricScore(text)).toBe(expected);
  });

  it.each([['no verdict here'], ['Score: 7'], ['Score: 4.5'], ['Score: -1'], ['Score: <total points>'], ['']])('does not guess for %j', (text) => {
    expect(parseRubricScore(text)).toBeUndefined();
  });
});

describe('aggregateJudgments', () => {
  it('averages parsed scores only and counts the rest', () => {
    expect(aggregateJudgments(['Score: 4', 'nonsense', 'Score: 2'])).toEqual({ scores: [4, undefined, 2], mean: 3, numParsed: 2, numUnparsed: 1 });
    expect(aggregateJudgments(['?', '??'])).toEqual({ scores: [undefined, undefined], mean: undefined, numParsed: 0, numUnparsed: 2 });
  });
});
