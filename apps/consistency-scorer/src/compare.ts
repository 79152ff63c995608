// The Compare handler: decodes the request's enums (unspecified takes the
// default, an unknown value is INVALID_ARGUMENT naming the field), calls the
// method library, and encodes its result.
import {
  compareScoreSets,
  type CompareOptions,
  type CompareResult,
  type ConsistencyMethod as ConsistencyMeasure,
  type ConsistencyRateMode as RateKind,
  type LeftOutReason as LibraryLeftOutReason,
  type RankingMode as RankingKind,
} from '@cream/cream';
import {
  ConsistencyMethod,
  ConsistencyRate,
  LeftOutReason,
  MismatchPolicy,
  RankingMode,
  type CompareRequest,
  type CompareResponse,
} from '@cream/proto';
import { InvalidArgumentError } from '@cream/service-kit';

function decodeEnum<E extends number, T>(field: string, value: E, table: ReadonlyMap<number, T>, fallback: T): T {
  if (value === 0) return fallback;
  const decoded = table.get(value);
  if (decoded === undefined) {
    throw new InvalidArgumentError(`${field} = ${value} is not a known value (known: ${[...table.keys()].join(', ')}; 0 for the default)`, field);
  }
  return decoded;
}

const methods = new Map<number, ConsistencyMeasure>([
  [ConsistencyMethod.CONSISTENCY_METHOD_KENDALL, 'kendall'],
  [ConsistencyMethod.CONSISTENCY_METHOD_SPEARMAN, 'spearman'],
  [ConsistencyMethod.CONSISTENCY_METHOD_TOPORDER, 'toporder'],
]);
const rankings = new Map<number, RankingKind>([
  [RankingMode.RANKING_MODE_ORDINAL, 'ordinal'],
  [RankingMode.RANKING_MODE_AVERAGE, 'average'],
]);
const rates = new Map<number, RateKind>([
  [ConsistencyRate.CONSISTENCY_RATE_AVG, 'avg'],
  [ConsistencyRate.CONSISTENCY_RATE_DYN, 'dyn'],
]);
const policies = new Map<number, CompareOptions['mismatchPolicy']>([
  [MismatchPolicy.MISMATCH_POLICY_REJECT, 'reject'],
  [MismatchPolicy.MISMATCH_POLICY_LEAVE_OUT, 'leave-out'],
]);
const reasons: Record<LibraryLeftOutReason, LeftOutReason> = {
  'missing-previous': LeftOutReason.LEFT_OUT_REASON_MISSING_PREVIOUS,
  'missing-current': LeftOutReason.LEFT_OUT_REASON_MISSING_CURRENT,
  'length-mismatch': LeftOutReason.LEFT_OUT_REASON_LENGTH_MISMATCH,
  'missing-score': LeftOutReason.LEFT_OUT_REASON_MISSING_SCORE,
  'too-few-responses': LeftOutReason.LEFT_OUT_REASON_TOO_FEW_RESPONSES,
  'constant-scores': LeftOutReason.LEFT_OUT_REASON_CONSTANT_SCORES,
};

function inverse<T>(table: ReadonlyMap<number, T>, value: T): number {
  for (const [key, v] of table) if (v === value) return key;
  return 0;
}

/** Compare: per-prompt consistency, the rate, pairs and prompts left out. */
export function compare(request: CompareRequest): CompareResponse {
  const options: CompareOptions = {
    method: decodeEnum('method', request.method, methods, 'kendall'),
    ranking: decodeEnum('ranking', request.ranking, rankings, 'ordinal'),
    rate: decodeEnum('rate', request.rate, rates, 'avg'),
    mismatchPolicy: decodeEnum('mismatch_policy', request.mismatchPolicy, policies, 'reject'),
  };
  if (request.current.length === 0) throw new InvalidArgumentError('current is empty; it needs 1 to 100000 prompts', 'current');
  if (request.previous.length === 0) throw new InvalidArgumentError('previous is empty; it needs 1 to 100000 prompts', 'previous');
  const result: CompareResult = compareScoreSets(
    request.current.map((p) => ({ promptId: p.promptId, scores: p.scores, missingIndices: p.missingIndices })),
    request.previous.map((p) => ({ promptId: p.promptId, scores: p.scores, missingIndices: p.missingIndices })),
    options,
  );
  return {
    prompts: result.prompts,
    rate: result.rate,
    pairs: result.pairs,
    leftOut: result.leftOut.map((l) => ({ promptId: l.promptId, reason: reasons[l.reason], detail: l.detail })),
    noPairPromptIds: result.noPairPromptIds,
    method: inverse(methods, options.method),
    ranking: inverse(rankings, options.ranking),
    rateMode: inverse(rates, options.rate),
  };
}
