// Choosing the next token from one row of logits, in float64 JavaScript:
// greedy argmax at temperature 0, else temperature, then top-k, then top-p
// (nucleus), in Hugging Face's order, and one uniform number drawn by inverse
// CDF. Also the log-probability of a token under the unmodified distribution.

import { InvalidOptionError } from './errors';

/** How the next token is chosen. */
export interface SamplingParams {
  /** Divides the logits; 0 means greedy argmax (lowest id on ties). */
  readonly temperature: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  readonly topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all. */
  readonly topP: number;
}

/** Throws InvalidOptionError unless temperature >= 0, topK a non-negative integer, 0 < topP <= 1. */
export function validateSamplingParams(params: SamplingParams): void {
  if (!(Number.isFinite(params.temperature) && params.temperature >= 0)) {
    throw new InvalidOptionError(`temperature must be a finite number >= 0, got ${params.temperature}`, 'temperature');
  }
  if (!(Number.isInteger(params.topK) && params.topK >= 0)) {
    throw new InvalidOptionError(`topK must be an integer >= 0 (0 = off), got ${params.topK}`, 'topK');
  }
  if (!(params.topP > 0 && params.topP <= 1)) {
    throw new InvalidOptionError(`topP must be in (0, 1], got ${params.topP}`, 'topP');
  }
}

/** log(sum(exp(logits))) in float64, stable. */
export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** Index of the largest logit, the lowest index on ties. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * The next token for one row of logits and a uniform number `u` in [0, 1).
 * Truncated sampling walks the kept tokens from most to least likely (ties by
 * id); untruncated sampling walks the vocabulary in id order.
 */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, u: number): number {
  if (params.temperature === 0) return argmax(logits);
  const { weights, order, count, total } = truncatedDistribution(logits, params);
  return walk(weights, order, count, u * total);
}

/** The tokens sampling may pick, in the order it walks them, and their unnormalized weights. */
export interface TruncatedDistribution {
  /** exp((logit - max) / temperature) of every token. */
  readonly weights: Float64Array;
  /** Kept ids, most likely first (ties by id); null when nothing is truncated (id order). */
  readonly order: Int32Array | null;
  /** How many of `order` (or of the vocabulary) are kept. */
  readonly count: number;
  /** Sum of the kept weights. */
  readonly total: number;
}

/** softmax(logits / temperature) restricted by top-k, then top-p (temperature > 0). */
export function truncatedDistribution(logits: ArrayLike<number>, params: SamplingParams): TruncatedDistribution {
  const V = logits.length;
  const max = logits[argmax(logits)];
  const invTemperature = 1 / params.temperature;
  const weights = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) total += weights[i] = Math.exp((logits[i] - max) * invTemperature);

  const topK = params.topK > 0 && params.topK < V ? params.topK : 0;
  if (topK === 0 && params.topP >= 1) return { weights, order: null, count: V, total };

  let order: Int32Array | null = null;
  let count = V;
  if (topK > 0) {
    order = largest(logits, topK);
    count = topK;
    total = 0;
    for (let j = 0; j < count; j++) total += weights[order[j]];
  }
  if (params.topP < 1) {
    // The nucleus keeps a token while the mass above it is below topP (HF's
    // TopPLogitsWarper). Without top-k, only tokens above a weight threshold are
    // sorted, lowering the threshold until their mass reaches topP.
    const goal = params.topP * total;
    for (const threshold of order !== null ? [0] : [1e-4, 1e-8, 0]) {
      const candidates = order ?? sortedAbove(logits, weights, threshold);
      let mass = 0;
      let n = 0;
      while (n < candidates.length && mass < goal) mass += weights[candidates[n++]];
      if (mass >= goal || threshold === 0) {
        order = candidates;
        count = n;
        total = mass;
        break;
      }
    }
  }
  return { weights, order, count, total };
}

// The first token (in `order`, or id order) at which the cumulative weight passes `target`.
function walk(weights: Float64Array, order: Int32Array | null, count: number, target: number): number {
  let cumulative = 0;
  let last = -1;
  for (let j = 0; j < count; j++) {
    const token = order === null ? j : order[j];
    if (weights[token] === 0) continue;
    cumulative += weights[token];
    last = token;
    if (cumulative > target) return token;
  }
  return last; // rounding left the target at the very end
}

// Ids with weight >= threshold (times the largest, which is 1), by logit descending then id.
function sortedAbove(logits: ArrayLike<number>, weights: Float64Array, threshold: number): Int32Array {
  const ids: number[] = [];
  for (let i = 0; i < weights.length; i++) if (weights[i] >= threshold) ids.push(i);
  return Int32Array.from(ids.sort((a, b) => logits[b] - logits[a] || a - b));
}

// The k ids of the largest logits, by logit descending then id, through a
// size-k heap (O(V log k), not a full sort of the vocabulary).
function largest(logits: ArrayLike<number>, k: number): Int32Array {
  // `worse(a, b)`: a ranks below b. The heap's root is the worst kept id.
  const worse = (a: number, b: number) => logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
  const heap = new Int32Array(k);
  let size = 0;
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < size && worse(heap[left], heap[worst])) worst = left;
      if (right < size && worse(heap[right], heap[worst])) worst = right;
      if (worst === i) return;
      [heap[i], heap[worst]] = [heap[worst], heap[i]];
      i = worst;
    }
  };
  for (let id = 0; id < logits.length; id++) {
    if (size < k) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (worse(heap[0], id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => logits[b] - logits[a] || a - b);
}
