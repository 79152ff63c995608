// The consistency-regularized DPO loss of CREAM step 7, in plain numbers: the
// reference the tfjs training loss is tested against.
//   h    = beta * [(log p(y+) - log p_ref(y+)) - (log p(y-) - log p_ref(y-))]
//   loss = C * (-log sigmoid(h)) + (1 - C) * (-log sigmoid(-h))
// With C = 1 it is plain DPO (Rafailov et al. 2023); C < 1 says the label
// "y+ beats y-" holds with probability C (CREAM.md, step 7).

/**
 * softplus(x) = log(1 + e^x) without overflow or loss of precision:
 * x + log1p(e^-x) for x > 0, log1p(e^x) otherwise. Exact to double precision
 * for any finite x (e^-|x| never overflows; for |x| > 745 it underflows to 0,
 * which is then the exact answer to double precision).
 */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** sigmoid(x) = 1 / (1 + e^-x), computed from e^-|x| so it never overflows. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * The DPO margin h = beta * ((policyChosen - refChosen) - (policyRejected - refRejected)),
 * each argument a response's log-probability summed over its tokens (prompt
 * tokens masked), under the policy being trained or the frozen reference.
 */
export function dpoMargin(
  policyChosen: number,
  refChosen: number,
  policyRejected: number,
  refRejected: number,
  beta: number,
): number {
  return beta * (policyChosen - refChosen - (policyRejected - refRejected));
}

/**
 * The CREAM loss of one pair: C * (-log sigmoid(h)) + (1 - C) * (-log sigmoid(-h)),
 * computed as C * softplus(-h) + (1 - C) * softplus(h) so it stays finite and
 * accurate for any |h| (the naive form rounds sigmoid(h) to 1 and loses the
 * small term from |h| ~ 37, and overflows to Infinity, or NaN as 0 * Infinity
 * at c = 0 or 1, from |h| ~ 745). c is the label's confidence in [0, 1].
 */
export function consistencyRegularizedDpoLoss(h: number, c: number): number {
  return c * softplus(-h) + (1 - c) * softplus(h);
}

/**
 * d loss / d h of consistencyRegularizedDpoLoss: sigmoid(h) - c. It is zero at
 * sigmoid(h) = c, so the loss pulls the implied preference probability towards
 * the consistency rather than towards 1 as DPO does.
 */
export function consistencyRegularizedDpoLossGradient(h: number, c: number): number {
  return sigmoid(h) - c;
}
