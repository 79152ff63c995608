// Finite differences for gradient checks. The function differentiated is the
// float64 reference (or any float64 function of Float64Arrays), so a central
// difference with a small step is accurate to ~1e-9 and the fp32 analytic
// gradient can be held to a tight relative tolerance.

/** (f(v + step) - f(v - step)) / (2 step) at values[index]; restores the value. */
export function centralDifference(f: () => number, values: Float64Array, index: number, step = 1e-5): number {
  const saved = values[index];
  values[index] = saved + step;
  const plus = f();
  values[index] = saved - step;
  const minus = f();
  values[index] = saved;
  return (plus - minus) / (2 * step);
}

/** `count` indices spread over [0, size), deterministic, always including 0 and size - 1. */
export function probeIndices(size: number, count: number): number[] {
  if (size <= count) return Array.from({ length: size }, (_, i) => i);
  return Array.from({ length: count }, (_, i) => Math.round((i * (size - 1)) / (count - 1)));
}

/**
 * Compares analytic gradient entries with finite differences at `indices`:
 * returns max |analytic - numeric| divided by the gradient's scale (the largest
 * |analytic| over the whole tensor), the relative error that fp32 can be held to.
 */
export function gradientError(
  analytic: ArrayLike<number>,
  indices: readonly number[],
  numeric: readonly number[],
): number {
  let scale = 0;
  for (let i = 0; i < analytic.length; i++) scale = Math.max(scale, Math.abs(analytic[i]));
  let worst = 0;
  indices.forEach((index, j) => (worst = Math.max(worst, Math.abs(analytic[index] - numeric[j]))));
  return worst / Math.max(scale, 1e-12);
}

/**
 * Deterministic values in [-1, 1) (a sine hash) for test inputs, rounded to
 * fp32 so the float64 reference and a tfjs tensor see the same numbers.
 */
export function pseudoRandom(size: number, seed: number): Float64Array {
  return Float64Array.from({ length: size }, (_, i) => {
    const x = Math.sin((i + 1) * 12.9898 + seed * 78.233) * 43758.5453;
    return Math.fround(2 * (x - Math.floor(x)) - 1);
  });
}
