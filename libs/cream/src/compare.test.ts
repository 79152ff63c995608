// compareScoreSets: alignment by prompt id, left-out reasons, pairs, rates and
// weights, and validation errors that name the proto field path.
import { describe, expect, it } from 'vitest';
import {
  compareScoreSets,
  InvalidScoresError,
  NO_CONSISTENCY_WEIGHT,
  type CompareOptions,
  type PromptScores,
} from './index';

const kendallAvgLeaveOut: CompareOptions = {
  method: 'kendall',
  ranking: 'ordinal',
  rate: 'avg',
  mismatchPolicy: 'leave-out',
};

/** The thrown error, which must be an InvalidScoresError. */
function invalid(run: () => unknown): InvalidScoresError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidScoresError);
    return error as InvalidScoresError;
  }
  throw new Error('expected an InvalidScoresError, nothing was thrown');
}

describe('compareScoreSets: alignment by prompt id', () => {
  // Previous is in another order and lacks p3. Had values been matched by
  // position (the authors' bug), p1 would meet p4's list and p2 p1's.
  const current: PromptScores[] = [
    { promptId: 'p1', scores: [1, 2, 3] },
    { promptId: 'p2', scores: [3, 2, 1] },
    { promptId: 'p3', scores: [5, 6, 4] },
    { promptId: 'p4', scores: [1, 2] },
  ];
  const previous: PromptScores[] = [
    { promptId: 'p4', scores: [2, 1] },
    { promptId: 'p2', scores: [1, 2, 3] },
    { promptId: 'p1', scores: [10, 20, 30] },
  ];

  it('pairs each value with its own prompt', () => {
    const result = compareScoreSets(current, previous, kendallAvgLeaveOut);
    // p1 same order: tau 1 -> c 1; p2 reversed: tau -1 -> c 0; p4 reversed: c 0
    expect(result.prompts).toEqual([
      { promptId: 'p1', statistic: 1, consistency: 1, numResponses: 3 },
      { promptId: 'p2', statistic: -1, consistency: 0, numResponses: 3 },
      { promptId: 'p4', statistic: -1, consistency: 0, numResponses: 2 },
    ]);
    expect(result.leftOut).toEqual([
      { promptId: 'p3', reason: 'missing-previous', detail: 'prompt "p3" is current[2] but has no entry in previous' },
    ]);
  });

  it('summarizes the c_i: mean 1/3, population std sqrt(2/9)', () => {
    const { rate } = compareScoreSets(current, previous, kendallAvgLeaveOut);
    // c = [1, 0, 0]: mean 1/3; deviations 2/3, -1/3, -1/3 -> variance (4/9 + 1/9 + 1/9) / 3 = 2/9
    expect(rate.count).toBe(3);
    expect(rate.min).toBe(0);
    expect(rate.max).toBe(1);
    expect(rate.mean).toBeCloseTo(1 / 3, 15);
    expect(rate.std).toBeCloseTo(Math.sqrt(2 / 9), 15);
  });

  it('builds pairs from the current scores, also for a prompt missing from previous', () => {
    const { pairs, noPairPromptIds } = compareScoreSets(current, previous, kendallAvgLeaveOut);
    expect(pairs.map(({ promptId, chosenIndex, rejectedIndex, chosenScore, rejectedScore }) => ({
      promptId, chosenIndex, rejectedIndex, chosenScore, rejectedScore,
    }))).toEqual([
      { promptId: 'p1', chosenIndex: 2, rejectedIndex: 0, chosenScore: 3, rejectedScore: 1 },
      { promptId: 'p2', chosenIndex: 0, rejectedIndex: 2, chosenScore: 3, rejectedScore: 1 },
      { promptId: 'p3', chosenIndex: 1, rejectedIndex: 2, chosenScore: 6, rejectedScore: 4 },
      { promptId: 'p4', chosenIndex: 1, rejectedIndex: 0, chosenScore: 2, rejectedScore: 1 },
    ]);
    expect(noPairPromptIds).toEqual([]);
  });

  it('avg: every pair weighs C = mean c_i', () => {
    const { pairs } = compareScoreSets(current, previous, kendallAvgLeaveOut);
    for (const pair of pairs) {
      expect(pair.weight).toBeCloseTo(1 / 3, 15);
      expect(pair.weightIsOwn).toBe(false);
    }
  });

  it('dyn: each pair weighs its own c_i, the mean where the prompt has none', () => {
    const { pairs } = compareScoreSets(current, previous, { ...kendallAvgLeaveOut, rate: 'dyn' });
    const weights = Object.fromEntries(pairs.map((p) => [p.promptId, [p.weight, p.weightIsOwn]]));
    expect(weights.p1).toEqual([1, true]);
    expect(weights.p2).toEqual([0, true]);
    expect(weights.p4).toEqual([0, true]);
    expect(weights.p3[0]).toBeCloseTo(1 / 3, 15);
    expect(weights.p3[1]).toBe(false);
  });
});

describe('compareScoreSets: prompts left out, and prompts without a pair', () => {
  it('reports each reason with the numbers involved, in current order then previous-only ones', () => {
    const result = compareScoreSets(
      [
        { promptId: 'len', scores: [1, 2, 3] },
        { promptId: 'gap', scores: [NaN, 2, 1], missingIndices: [0] },
        { promptId: 'one', scores: [7] },
        { promptId: 'flat', scores: [2, 2, 2] },
        { promptId: 'ok', scores: [1, 3, 2] },
      ],
      [
        { promptId: 'ok', scores: [1, 2, 3] },
        { promptId: 'flat', scores: [1, 2, 3] },
        { promptId: 'one', scores: [8] },
        { promptId: 'gap', scores: [1, 2, 3], missingIndices: [2, 2] },
        { promptId: 'len', scores: [1, 2] },
        { promptId: 'old', scores: [1, 2] },
      ],
      { ...kendallAvgLeaveOut, ranking: 'average' },
    );
    expect(result.leftOut).toEqual([
      { promptId: 'len', reason: 'length-mismatch', detail: 'previous[4].scores has 2 scores but current[0] ("len") has 3' },
      {
        promptId: 'gap',
        reason: 'missing-score',
        detail: 'scores marked missing at current[1] indices 0 and previous[3] indices 2, of 3; consistency needs every score',
      },
      { promptId: 'one', reason: 'too-few-responses', detail: '1 response; comparing rankings needs at least 2' },
      {
        promptId: 'flat',
        reason: 'constant-scores',
        detail: 'all 3 current scores equal 2; a tie-aware kendall correlation is undefined',
      },
      { promptId: 'old', reason: 'missing-current', detail: 'prompt "old" is previous[5] but has no entry in current' },
    ]);
    // only "ok" is measured: [1,3,2] vs [1,2,3] has tau 1/3 -> c 2/3
    expect(result.prompts.map((p) => p.promptId)).toEqual(['ok']);
    expect(result.prompts[0].consistency).toBeCloseTo(2 / 3, 15);
    // "gap" pairs on its present scores 2 (index 1) and 1 (index 2); "one" and "flat" give none
    expect(result.pairs.find((p) => p.promptId === 'gap')).toMatchObject({ chosenIndex: 1, rejectedIndex: 2 });
    expect(result.noPairPromptIds).toEqual(['one', 'flat']);
    expect(result.pairs.map((p) => p.promptId)).toEqual(['len', 'gap', 'ok']);
  });

  it('chooses the first index among tied best and tied worst scores', () => {
    const { pairs } = compareScoreSets(
      [{ promptId: 'a', scores: [1, 5, 0, 5, 0] }],
      [{ promptId: 'a', scores: [1, 2, 3, 4, 5] }],
      kendallAvgLeaveOut,
    );
    expect(pairs[0]).toMatchObject({ chosenIndex: 1, rejectedIndex: 2 });
  });

  it('gives no pair when fewer than two scores are present', () => {
    const result = compareScoreSets(
      [{ promptId: 'a', scores: [4, 9, 1], missingIndices: [1, 2] }],
      [{ promptId: 'a', scores: [1, 2, 3] }],
      kendallAvgLeaveOut,
    );
    expect(result.pairs).toEqual([]);
    expect(result.noPairPromptIds).toEqual(['a']);
  });

  it('with no c_i at all: the rate is zeros and the pairs weigh the neutral 0.5, not 0', () => {
    const result = compareScoreSets(
      [{ promptId: 'a', scores: [1, 2] }],
      [{ promptId: 'b', scores: [1, 2] }],
      { ...kendallAvgLeaveOut, rate: 'dyn' },
    );
    expect(result.rate).toEqual({ mean: 0, min: 0, max: 0, std: 0, count: 0 });
    expect(NO_CONSISTENCY_WEIGHT).toBe(0.5);
    expect(result.pairs).toEqual([
      {
        promptId: 'a',
        chosenIndex: 1,
        rejectedIndex: 0,
        chosenScore: 2,
        rejectedScore: 1,
        weight: NO_CONSISTENCY_WEIGHT,
        weightIsOwn: false,
      },
    ]);
    expect(result.leftOut.map((entry) => entry.reason)).toEqual(['missing-previous', 'missing-current']);
  });

  it('toporder and spearman flow through with their own statistic', () => {
    const sets: [PromptScores[], PromptScores[]] = [
      [{ promptId: 'a', scores: [2, 5, 4, 1] }],
      [{ promptId: 'a', scores: [2, 4, 5, 1] }],
    ];
    // best differs (1 vs 2) -> top-order 0; rho of [2,4,3,1] vs [2,3,4,1] = 1 - 6*2/60 = 0.8
    expect(compareScoreSets(...sets, { ...kendallAvgLeaveOut, method: 'toporder' }).prompts[0]).toMatchObject({
      statistic: 0,
      consistency: 0,
    });
    const spearman = compareScoreSets(...sets, { ...kendallAvgLeaveOut, method: 'spearman' }).prompts[0];
    expect(spearman.statistic).toBeCloseTo(0.8, 15);
    expect(spearman.consistency).toBeCloseTo(0.9, 15);
  });
});

describe('compareScoreSets: validation names the proto field', () => {
  const ok = (promptId: string, scores: number[] = [1, 2, 3]): PromptScores => ({ promptId, scores });
  const five = ['p0', 'p1', 'p2', 'p3', 'p4'].map((id) => ok(id));
  const reject: CompareOptions = { ...kendallAvgLeaveOut, mismatchPolicy: 'reject' };

  it.each([
    ['NaN', [ok('a'), ok('b'), ok('c'), ok('d', [1, 2, NaN])], 'current[3].scores[2]', 'current[3].scores[2] is NaN; scores must be finite'],
    ['Infinity', [ok('a', [-Infinity, 1])], 'current[0].scores[0]', 'current[0].scores[0] is -Infinity; scores must be finite'],
    ['empty scores', [ok('a', [])], 'current[0].scores', 'current[0].scores is empty; each prompt needs 1 to 1024 scores'],
    ['too many scores', [ok('a', new Array(1025).fill(0))], 'current[0].scores', 'current[0].scores has 1025 scores; the limit is 1024'],
    ['empty id', [ok('')], 'current[0].prompt_id', 'current[0].prompt_id is empty; a prompt id needs 1 to 256 UTF-8 bytes'],
    // 129 two-byte characters: 258 bytes although only 129 UTF-16 units
    ['long id', [ok('é'.repeat(129))], 'current[0].prompt_id', 'current[0].prompt_id is 258 UTF-8 bytes; the limit is 256'],
    ['duplicate id', [ok('p7'), ok('p7')], 'current[1].prompt_id', 'current[1].prompt_id "p7" is duplicated (first at current[0])'],
    [
      'missing index out of range',
      [ok('a'), ok('b'), { promptId: 'c', scores: [1, 2, 3, 4, 5], missingIndices: [9] }],
      'current[2].missing_indices[0]',
      'current[2].missing_indices[0] = 9 is out of range [0, 5)',
    ],
    [
      'missing index not an integer',
      [{ promptId: 'c', scores: [1, 2], missingIndices: [0, 0.5] }],
      'current[0].missing_indices[1]',
      'current[0].missing_indices[1] = 0.5 is out of range [0, 2)',
    ],
    ['empty set', [], 'current', 'current is empty; each set needs 1 to 100000 prompts'],
  ] as [string, PromptScores[], string, string][])('%s', (_name, current, field, message) => {
    const error = invalid(() => compareScoreSets(current, [ok('a')], kendallAvgLeaveOut));
    expect(error.field).toBe(field);
    expect(error.message).toBe(message);
    expect(error.name).toBe('InvalidScoresError');
  });

  it('checks the previous set with its own path', () => {
    const error = invalid(() => compareScoreSets([ok('p7')], [ok('p7'), ok('p7')], kendallAvgLeaveOut));
    expect(error.message).toBe('previous[1].prompt_id "p7" is duplicated (first at previous[0])');
  });

  it('accepts a NaN at an index marked missing', () => {
    expect(() =>
      compareScoreSets([{ promptId: 'a', scores: [NaN, 1, 2], missingIndices: [0] }], [ok('a')], kendallAvgLeaveOut),
    ).not.toThrow();
  });

  it('counts prompts against the limit, and reports the limit', () => {
    const many = Array.from({ length: 100_001 }, (_, i) => ok(`p${i}`, [1]));
    const error = invalid(() => compareScoreSets(many, [ok('a')], kendallAvgLeaveOut));
    expect(error.message).toBe('current has 100001 prompts; the limit is 100000');
    expect(error.field).toBe('current');
    expect(error.limit).toBe(100_000);
  });

  it('takes overridden limits', () => {
    const options = { ...kendallAvgLeaveOut, limits: { maxScoresPerPrompt: 2, maxPromptIdBytes: 3 } };
    expect(invalid(() => compareScoreSets([ok('a')], [ok('a')], options))).toMatchObject({
      field: 'current[0].scores',
      limit: 2,
      message: 'current[0].scores has 3 scores; the limit is 2',
    });
    expect(invalid(() => compareScoreSets([ok('abcd', [1])], [ok('a')], options)).message).toBe(
      'current[0].prompt_id is 4 UTF-8 bytes; the limit is 3',
    );
  });

  it('reject: a length mismatch names both positions', () => {
    const previous = five.map((p, i) => (i === 4 ? ok('p4', [1, 2, 3, 4]) : p));
    const current = five.map((p, i) => (i === 4 ? ok('p4', [1, 2, 3, 4, 5]) : p));
    const error = invalid(() => compareScoreSets(current, previous, reject));
    expect(error.field).toBe('previous[4].scores');
    expect(error.message).toBe('previous[4].scores has 4 scores but current[4] ("p4") has 5');
  });

  it('reject: a prompt in only one set', () => {
    expect(invalid(() => compareScoreSets(five, five.slice(1), reject))).toMatchObject({
      field: 'current[0].prompt_id',
      message: 'current[0].prompt_id "p0" has no entry in previous',
    });
    expect(invalid(() => compareScoreSets(five.slice(0, 4), five, reject))).toMatchObject({
      field: 'previous[4].prompt_id',
      message: 'previous[4].prompt_id "p4" has no entry in current',
    });
  });

  it('reject still leaves out, rather than throws for, missing scores and short lists', () => {
    const result = compareScoreSets(
      [{ promptId: 'a', scores: [1, 2], missingIndices: [0] }, ok('b', [1])],
      [ok('a', [1, 2]), ok('b', [1])],
      reject,
    );
    expect(result.leftOut.map((entry) => entry.reason)).toEqual(['missing-score', 'too-few-responses']);
  });
});
