// Next-token choice: greedy, temperature, top-k and top-p against brute-force
// definitions (HF's TopKLogitsWarper and TopPLogitsWarper), and frequencies.
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, argmax, logSumExp, sampleToken, validateSamplingParams } from './index';
import { truncatedDistribution } from './sampling';

// The kept set by the definitions: sort all tokens (logit desc, id asc), keep the
// top k, then keep a token while the probability mass above it is below topP.
function bruteForceKept(logits: number[], temperature: number, topK: number, topP: number): number[] {
  const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = topK > 0 ? order.slice(0, topK) : order;
  const max = logits[order[0]];
  const weights = kept.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const result: number[] = [];
  let above = 0;
  for (const [j, id] of kept.entries()) {
    if (above >= topP * total) break;
    result.push(id);
    above += weights[j];
  }
  return result;
}

// The token each of `n` evenly spaced uniforms picks.
function picks(logits: number[], params: { temperature: number; topK: number; topP: number }, n: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const token = sampleToken(logits, params, (i + 0.5) / n);
    counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  return counts;
}

describe('sampleToken', () => {
  const logits = [0.5, 2, -1, 2, 1.2, -3, 0.1, 1.9];

  it('is argmax at temperature 0, the lowest id on ties', () => {
    expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, 0.99)).toBe(1);
    expect(argmax([3, 1, 3])).toBe(0);
  });

  it('samples softmax(logits / T) by inverse CDF', () => {
    const n = 100000;
    for (const temperature of [1, 0.5, 2]) {
      const counts = picks(logits, { temperature, topK: 0, topP: 1 }, n);
      const z = logSumExp(logits.map((l) => l / temperature));
      logits.forEach((l, i) => expect(Math.abs((counts.get(i) ?? 0) / n - Math.exp(l / temperature - z))).toBeLessThan(1e-4));
    }
  });

  it.each([
    [1, 3, 1],
    [0.7, 0, 0.5],
    [1, 0, 0.9],
    [1.3, 5, 0.8],
    [1, 0, 0.999],
    [1, 2, 0.2],
  ])('keeps the top-k / nucleus set (T %d, k %d, p %d)', (temperature, topK, topP) => {
    const expected = bruteForceKept(logits, temperature, topK, topP);
    const counts = picks(logits, { temperature, topK, topP }, 20000);
    expect([...counts.keys()].sort()).toEqual([...expected].sort());
    // Renormalized over the kept set.
    const weights = expected.map((i) => Math.exp(logits[i] / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    expected.forEach((id, j) => expect(Math.abs((counts.get(id) ?? 0) / 20000 - weights[j] / total)).toBeLessThan(1e-3));
  });

  it('finds a nucleus that reaches into tokens far below the top one', () => {
    // One token holds ~96% of the mass; 999 others share the rest at weight e^-10
    // each, below the first sorting threshold, so the search must go lower.
    const peaked = [...new Array(999).fill(0), 10];
    for (const topP of [0.9, 0.97, 0.99, 0.9999]) {
      const { order, count } = truncatedDistribution(peaked, { temperature: 1, topK: 0, topP });
      expect([...(order as Int32Array).subarray(0, count)]).toEqual(bruteForceKept(peaked, 1, 0, topP));
    }
    expect(bruteForceKept(peaked, 1, 0, 0.99).length).toBeGreaterThan(300);
  });

  it('never returns a token of zero probability', () => {
    const extreme = [0, -Infinity, 5, -Infinity];
    for (const u of [0, 0.5, 0.999999999]) expect([0, 2]).toContain(sampleToken(extreme, { temperature: 1, topK: 0, topP: 1 }, u));
  });
});

describe('validateSamplingParams', () => {
  it.each([
    [{ temperature: -0.1, topK: 0, topP: 1 }, 'temperature'],
    [{ temperature: NaN, topK: 0, topP: 1 }, 'temperature'],
    [{ temperature: 1, topK: 1.5, topP: 1 }, 'topK'],
    [{ temperature: 1, topK: -1, topP: 1 }, 'topK'],
    [{ temperature: 1, topK: 0, topP: 0 }, 'topP'],
    [{ temperature: 1, topK: 0, topP: 1.01 }, 'topP'],
  ])('rejects %j', (params, option) => {
    expect(() => validateSamplingParams(params)).toThrow(InvalidOptionError);
    try {
      validateSamplingParams(params);
    } catch (error) {
      expect((error as InvalidOptionError).option).toBe(option);
    }
  });
});

describe('logSumExp', () => {
  it('is stable for large logits', () => {
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.log(2), 12);
    expect(logSumExp([-1000, -Infinity])).toBe(-1000);
  });
});
