// Reward and pair assembly: r_t and the previous score per CREAM.md, pairs from
// each method's scores, weights, and what is left out.
import type { TaskItem } from '@cream/tasks';
import { describe, expect, it } from 'vitest';
import type { PromptItem } from './data';
import { dpoRewardSets, groupSamples, meanMargin, oracleScoreSet, pairsFromScores, rubricScoreSet, sampleId, trainingPairs, type LogprobRecord, type SampleRecord } from './rewards';

const prompts: PromptItem[] = [
  { id: 'p1', messages: [{ role: 'user', content: 'one?' }] },
  { id: 'p2', messages: [{ role: 'user', content: 'two?' }] },
];

function sample(promptId: string, index: number, text: string): SampleRecord {
  return { id: sampleId(promptId, index), promptId, index, text, numTokens: text.length, finishReason: 'FINISH_REASON_EOS', logprobSum: 0, sequenceSeed: 1 };
}

const samples = [sample('p1', 0, 'aa'), sample('p1', 1, 'bbbb'), sample('p1', 2, ''), sample('p2', 0, 'x'), sample('p2', 1, 'yy'), sample('p2', 2, 'zzz')];
const groups = groupSamples(prompts, samples, 3);

/** Log-probs of M_k: sum = base[k] * (sample position + 1), tokens = text length; empty texts unscored. */
function logprobs(scale: number): Map<string, LogprobRecord> {
  const map = new Map<string, LogprobRecord>();
  samples.forEach((s, i) => {
    if (s.text !== '') map.set(s.id, { id: s.id, sum: -scale * (i + 1), mean: (-scale * (i + 1)) / s.text.length, numTokens: s.text.length });
  });
  return map;
}

describe('dpoRewardSets', () => {
  it('t = 1: r_1 = logp_M1 - logp_M0 summed, previous = M0 mean log-prob; unscored responses are missing', () => {
    const { current, previous } = dpoRewardSets(1, groups, new Map([[1, logprobs(1)], [0, logprobs(3)]]));
    expect(current.map((p) => p.promptId)).toEqual(['p1', 'p2']);
    // sample i: -1(i+1) - (-3(i+1)) = 2(i+1)
    expect(current[0]).toEqual({ promptId: 'p1', scores: [2, 4, 0], missingIndices: [2] });
    expect(current[1].scores).toEqual([8, 10, 12]);
    expect(previous[0]).toEqual({ promptId: 'p1', scores: [-3 / 2, -6 / 4, 0], missingIndices: [2] });
    expect(previous[1].scores).toEqual([-12 / 1, -15 / 2, -18 / 3]);
  });

  it('t = 2: previous is r_1 = logp_M1 - logp_M0 on the same responses', () => {
    const { current, previous } = dpoRewardSets(2, groups, new Map([[2, logprobs(2)], [1, logprobs(5)], [0, logprobs(4)]]));
    expect(current[1].scores).toEqual([3 * 4, 3 * 5, 3 * 6]);
    expect(previous[1].scores).toEqual([-1 * 4, -1 * 5, -1 * 6]);
  });

  it('fails when a needed version was not scored', () => {
    expect(() => dpoRewardSets(2, groups, new Map([[2, logprobs(1)], [1, logprobs(1)]]))).toThrow(/M0/);
  });
});

describe('pairs', () => {
  it('pairs argmax against argmin of the present scores, first on ties; equal scores give no pair', () => {
    const { pairs, noPairPromptIds } = pairsFromScores([
      { promptId: 'p1', scores: [1, 5, 9], missingIndices: [2] },
      { promptId: 'p2', scores: [3, 3, 3], missingIndices: [] },
    ]);
    expect(pairs).toHaveLength(1);
    expect(pairs[0]).toMatchObject({ promptId: 'p1', chosenIndex: 1, rejectedIndex: 0, chosenScore: 5, rejectedScore: 1 });
    expect(noPairPromptIds).toEqual(['p2']);
  });

  it('SRLM uses the mean rubric scores, an unparsed response is missing', () => {
    const scores = rubricScoreSet(groups, new Map([[sampleId('p1', 0), 4], [sampleId('p1', 1), null], [sampleId('p2', 0), 1], [sampleId('p2', 1), 5], [sampleId('p2', 2), 2]]));
    expect(scores[0]).toEqual({ promptId: 'p1', scores: [4, 0, 0], missingIndices: [1, 2] });
    const { pairs } = pairsFromScores(scores);
    expect(pairs.map((p) => [p.promptId, p.chosenIndex, p.rejectedIndex])).toEqual([['p2', 1, 0]]);
  });

  it('the oracle scores 1 for a correct answer and 0 otherwise', () => {
    const item = (answer: string): TaskItem => ({ id: 'k', task: 't', answerKind: 'integer', question: 'q', prompt: 'q', answer, solution: `Answer: ${answer}` });
    const keyed: PromptItem[] = [{ ...prompts[0], item: item('4') }];
    const oracleGroups = groupSamples(keyed, [sample('p1', 0, 'Answer: 3'), sample('p1', 1, 'so\nAnswer: 4'), sample('p1', 2, '')], 3);
    expect(oracleScoreSet(oracleGroups, keyed)[0].scores).toEqual([0, 1, 0]);
    expect(() => oracleScoreSet(groups, prompts)).toThrow(/answer key/);
  });

  it('builds weighted DPO examples, dropping pairs whose texts are equal', () => {
    const twin = groupSamples(prompts, [sample('p1', 0, 'same'), sample('p1', 1, 'same'), sample('p1', 2, 'c'), ...samples.slice(3)], 3);
    const pairs = [
      { promptId: 'p1', chosenIndex: 0, rejectedIndex: 1, chosenScore: 2, rejectedScore: 1, weight: 0.7, weightIsOwn: true },
      { promptId: 'p2', chosenIndex: 2, rejectedIndex: 0, chosenScore: 6, rejectedScore: 1, weight: 0.6, weightIsOwn: true },
    ];
    const weighted = trainingPairs(pairs, twin, true);
    expect(weighted.droppedIdentical).toBe(1);
    expect(weighted.pairs).toEqual([{ id: 'p2', promptId: 'p2', chosenIndex: 2, rejectedIndex: 0, chosen: 'zzz', rejected: 'x', margin: 5, weight: 0.6 }]);
    expect(trainingPairs(pairs, twin, false).pairs[0].weight).toBe(1);
    expect(meanMargin(weighted.pairs)).toBe(5);
    expect(meanMargin([])).toBe(0);
  });

  it('refuses a sample stage with a sample missing', () => {
    expect(() => groupSamples(prompts, samples.slice(1), 3)).toThrow(/sample 0 of prompt "p1"/);
  });
});
