// Public surface of @cream/cream: the CREAM method (Wang et al., ICLR 2025) as
// pure functions, with no model and no gRPC. Steps refer to CREAM.md.

/** Scores to ranks as scipy.stats.rankdata: 'ordinal' (ties by index) and 'average' (tie-aware). */
export { rankOrdinal, rankAverage } from './ranking';
/** Kendall's tau-b and Spearman's rho, equal to scipy's to 1e-12; NaN where undefined. */
export { kendallTau, spearmanRho } from './correlation';
/** The consistency c_i of one prompt (step 4) and its option and result types. */
export {
  promptConsistency,
  type ConsistencyMethod,
  type RankingMode,
  type LeftOutReason,
  type ConsistencyOptions,
  type PromptConsistencyResult,
} from './consistency';
/** Compare two score sets keyed by prompt id: c_i, the rate and the weighted pairs (steps 4 to 6). */
export {
  compareScoreSets,
  DEFAULT_SCORE_LIMITS,
  NO_CONSISTENCY_WEIGHT,
  type PromptScores,
  type CompareOptions,
  type CompareResult,
  type ConsistencyRateMode,
  type MismatchPolicy,
  type ScoreLimits,
  type PromptConsistencyEntry,
  type RateSummary,
  type PreferencePair,
  type LeftOutPrompt,
} from './compare';
/** The consistency-regularized DPO loss (step 7), its gradient and margin, and stable softplus/sigmoid. */
export {
  consistencyRegularizedDpoLoss,
  consistencyRegularizedDpoLossGradient,
  dpoMargin,
  softplus,
  sigmoid,
} from './loss';
/** Reward definitions of steps 2 and 3: DPO implicit reward and length-normalized log-likelihood. */
export { dpoImplicitReward, lengthNormalizedLogLikelihood } from './rewards';
/** InvalidScoresError (a bad score set, with the proto field path) and its guard. */
export { InvalidScoresError, isInvalidScoresError } from './errors';
/** The Self-Rewarding LM judge: the additive 5-point rubric prompt and its "Score: n" parser (SRLM baseline). */
export { rubricPrompt, parseRubricScore, aggregateJudgments, RUBRIC_MIN_SCORE, RUBRIC_MAX_SCORE, RUBRIC_STYLES, type RubricStyle } from './rubric';
