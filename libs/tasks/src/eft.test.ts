// The EFT split: three judging examples per seed item, verdicts from the fixed
// quality -> score mapping that parse back with parseRubricScore, responses of
// the quality they claim, and no other split moved by drawing them.
import { parseRubricScore, rubricPrompt } from '@cream/cream';
import { describe, expect, it } from 'vitest';
import { checkResponse } from './answer';
import { EFT_QUALITIES, EFT_SCORES } from './eft';
import { buildSuite } from './suite';

const SIZES = { pretrainPerTask: 40, seedPerTask: 12, iterations: 2, promptsPerIterationPerTask: 4, testPerTask: 6 };

describe('suite.eft', () => {
  const suite = buildSuite({ seed: 5, sizes: SIZES });

  it('holds a correct, a badly formatted and a wrong response per seed item, scored 5, 3 and 1', () => {
    expect(suite.eft).toHaveLength(3 * suite.seedSft.length);
    expect(EFT_SCORES).toEqual({ correct: 5, 'bad-format': 3, wrong: 1 });
    suite.seedSft.forEach((item, i) => {
      const examples = suite.eft.slice(3 * i, 3 * i + 3);
      expect(examples.map((e) => e.quality)).toEqual([...EFT_QUALITIES]);
      for (const example of examples) {
        expect(example.sourceId).toBe(item.id);
        expect(example.task).toBe(item.task);
        expect(example.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
        const verdict = example.messages[1].content;
        expect(verdict.split('\n')).toHaveLength(2);
        expect(parseRubricScore(verdict)).toBe(EFT_SCORES[example.quality]);
        expect(example.score).toBe(EFT_SCORES[example.quality]);
      }
    });
  });

  it('judges, with the compact rubric, responses of the quality it claims', () => {
    suite.seedSft.forEach((item, i) => {
      for (const example of suite.eft.slice(3 * i, 3 * i + 3)) {
        const prompt = example.messages[0].content;
        const response = prompt.slice(prompt.indexOf('\nResponse: ') + '\nResponse: '.length, prompt.lastIndexOf('\n'));
        expect(prompt).toBe(rubricPrompt(item.prompt, response, 'compact'));
        const check = checkResponse(item, response);
        if (example.quality === 'correct') expect(response).toBe(item.solution);
        if (example.quality === 'correct') expect(check.correct).toBe(true);
        if (example.quality === 'wrong') expect(check.correct).toBe(false);
        if (example.quality === 'bad-format') expect(check.parsed).toBeNull();
      }
    });
  });

  it('draws from its own stream: every other split is as it was, and the same seed gives the same examples', () => {
    const again = buildSuite({ seed: 5, sizes: SIZES });
    expect(again.eft).toEqual(suite.eft);
    const { eft, ...rest } = suite;
    const { eft: _eft, ...restAgain } = again;
    expect(restAgain).toEqual(rest);
    expect(eft.length).toBeGreaterThan(0);
    expect(new Set(suite.eft.map((e) => e.id)).size).toBe(suite.eft.length);
  });
});
