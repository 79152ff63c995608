// The judge's LRU cache: loads on demand, evicts the least recently used idle
// version to fit the budget, never evicts one in use, shares concurrent loads.
import { describe, expect, it } from 'vitest';
import { ResourceExhaustedError } from './errors';
import { ModelCache } from './model-cache';

class Sized {
  disposed = 0;
  constructor(
    readonly version: string,
    readonly bytes: number,
  ) {}
  dispose() {
    this.disposed++;
  }
}

describe('ModelCache', () => {
  it('evicts the least recently used idle version to fit the budget', async () => {
    const made = new Map<string, Sized>();
    const cache = new ModelCache(async (v) => {
      const m = new Sized(v, 40);
      made.set(v, m);
      return m;
    }, 100);
    (await cache.acquire('a')).lease.release();
    (await cache.acquire('b')).lease.release();
    (await cache.acquire('a')).lease.release(); // a is now more recent than b
    const third = await cache.acquire('c');
    expect(third.evicted).toEqual(['b']);
    expect(made.get('b')!.disposed).toBe(1);
    expect(cache.list().map((m) => m.version)).toEqual(['c', 'a']);
    third.lease.release();
  });

  it('never evicts a version in use, and says so when nothing idle can make room', async () => {
    const cache = new ModelCache(async (v) => new Sized(v, 60), 100);
    const held = await cache.acquire('a');
    await expect(cache.acquire('b')).rejects.toThrow(ResourceExhaustedError);
    await expect(cache.acquire('b')).rejects.toThrow(/held by versions in use \(a\)/);
    held.lease.release();
    const b = await cache.acquire('b');
    expect(b.evicted).toEqual(['a']);
  });

  it('refuses a model larger than the whole budget', async () => {
    const cache = new ModelCache(async (v) => new Sized(v, 500), 100);
    await expect(cache.acquire('big')).rejects.toThrow(/needs 500 bytes; the memory budget is 100 bytes/);
  });

  it('unloads on request, disposing only after the last lease', async () => {
    const model = new Sized('a', 10);
    const cache = new ModelCache(async () => model, 100);
    const { lease } = await cache.acquire('a');
    expect(cache.unload('a')).toBe(10);
    expect(model.disposed).toBe(0);
    lease.release();
    expect(model.disposed).toBe(1);
    expect(cache.unload('a')).toBeUndefined();
  });

  it('shares one load between concurrent acquires', async () => {
    let loads = 0;
    const cache = new ModelCache(async (v) => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return new Sized(v, 10);
    }, 100);
    const leases = await Promise.all([cache.acquire('a'), cache.acquire('a')]);
    expect(loads).toBe(1);
    expect(cache.list()[0].leases).toBe(2);
    for (const l of leases) l.lease.release();
  });
});
