import { describe, expect, it } from 'vitest';
import { createRng } from './rng';

describe('createRng', () => {
  it('gives the same stream for the same key and another for another key', () => {
    const draw = (key: string) => {
      const rng = createRng(key);
      return Array.from({ length: 8 }, () => rng.next());
    };
    expect(draw('7/science')).toEqual(draw('7/science'));
    expect(draw('7/science')).not.toEqual(draw('8/science'));
    expect(draw('7/science')).not.toEqual(draw('7/social'));
  });

  it('draws floats in [0, 1) and integers in the closed range, covering it evenly', () => {
    const rng = createRng('range');
    const counts = [0, 0, 0, 0, 0, 0];
    let outside = 0;
    for (let i = 0; i < 60_000; i++) {
      const x = rng.next();
      if (!(x >= 0 && x < 1)) outside += 1;
      counts[rng.int(0, 5)] += 1;
    }
    expect(outside).toBe(0);
    // Each face 10000 +- 5 sigma (sigma ~ 91).
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(460);
  });

  it('shuffles into a permutation and samples distinct elements', () => {
    const rng = createRng('shuffle');
    const items = Array.from({ length: 20 }, (_, i) => i);
    const shuffled = rng.shuffle(items);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
    expect(shuffled).not.toEqual(items);
    const sample = rng.sample(items, 5);
    expect(new Set(sample).size).toBe(5);
    expect(items).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});
