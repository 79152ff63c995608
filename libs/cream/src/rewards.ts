// The two reward definitions of CREAM steps 2 and 3, from log-probabilities
// the judge service computes (summed over response tokens, prompt masked).

/**
 * The DPO implicit reward r_t(x, y) = log p_{M_t}(y | x) - log p_{M_{t-1}}(y | x)
 * (steps 2 and 3 for t >= 2): the difference of the summed response
 * log-probabilities under the current model and under its DPO reference. As in
 * the paper there is no beta (a positive factor would not change the ranking
 * within a prompt) and no length normalization (which would).
 */
export function dpoImplicitReward(logpCurrentSum: number, logpPreviousSum: number): number {
  return logpCurrentSum - logpPreviousSum;
}

/**
 * The previous-model score at t = 1 (step 3): M0 has no reference, so its score
 * is the mean log-probability per response token, sum / numTokens. Throws a
 * RangeError when numTokens is not a positive integer (an empty response has no
 * mean).
 */
export function lengthNormalizedLogLikelihood(logpSum: number, numTokens: number): number {
  if (!Number.isInteger(numTokens) || numTokens < 1) {
    throw new RangeError(`numTokens is ${numTokens}; a mean log-likelihood needs at least 1 token`);
  }
  return logpSum / numTokens;
}
