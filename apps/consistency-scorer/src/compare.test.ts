// The Compare handler's own work: resolving unspecified enums to the
// documented defaults, refusing unknown enum values by field name, and
// encoding the library's result (reasons, echoed options).
import { describe, expect, it } from 'vitest';
import { ConsistencyMethod, ConsistencyRate, LeftOutReason, MismatchPolicy, RankingMode, type CompareRequest } from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';
import { compare } from './compare';

function request(overrides: Partial<CompareRequest> = {}): CompareRequest {
  return {
    current: [
      { promptId: 'a', scores: [3, 1, 2], missingIndices: [] },
      { promptId: 'b', scores: [5, 5], missingIndices: [] },
    ],
    previous: [{ promptId: 'a', scores: [1, 3, 2], missingIndices: [] }],
    method: ConsistencyMethod.CONSISTENCY_METHOD_UNSPECIFIED,
    ranking: RankingMode.RANKING_MODE_UNSPECIFIED,
    rate: ConsistencyRate.CONSISTENCY_RATE_UNSPECIFIED,
    mismatchPolicy: MismatchPolicy.MISMATCH_POLICY_LEAVE_OUT,
    ...overrides,
  };
}

describe('compare', () => {
  it('resolves unspecified options to Kendall, ordinal ranks and avg, and echoes them', () => {
    const response = compare(request());
    expect(response.method).toBe(ConsistencyMethod.CONSISTENCY_METHOD_KENDALL);
    expect(response.ranking).toBe(RankingMode.RANKING_MODE_ORDINAL);
    expect(response.rateMode).toBe(ConsistencyRate.CONSISTENCY_RATE_AVG);
    // a: current ranks [3,1,2], previous ranks [1,3,2]: pairs (0,1) and (0,2) discordant, (1,2) discordant -> tau = -1.
    expect(response.prompts).toEqual([{ promptId: 'a', statistic: -1, consistency: 0, numResponses: 3 }]);
    expect(response.leftOut).toEqual([expect.objectContaining({ promptId: 'b', reason: LeftOutReason.LEFT_OUT_REASON_MISSING_PREVIOUS })]);
    // b's scores are all equal: no pair.
    expect(response.noPairPromptIds).toEqual(['b']);
    expect(response.pairs).toEqual([expect.objectContaining({ promptId: 'a', chosenIndex: 0, rejectedIndex: 1, weight: 0 })]);
  });

  it('rejects an unknown enum value naming the field', () => {
    expect(() => compare(request({ ranking: 7 as RankingMode }))).toThrow(InvalidArgumentError);
    expect(() => compare(request({ ranking: 7 as RankingMode }))).toThrow(/^ranking = 7 is not a known value/);
    expect(() => compare(request({ mismatchPolicy: 9 as MismatchPolicy }))).toThrow(/^mismatch_policy = 9/);
  });

  it('applies the default REJECT policy to a prompt present in one set only', () => {
    expect(() => compare(request({ mismatchPolicy: MismatchPolicy.MISMATCH_POLICY_UNSPECIFIED }))).toThrow(/current\[1\]/);
  });
});
