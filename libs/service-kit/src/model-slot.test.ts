// The hot-swap slot: calls in flight finish on their version, the switch is
// atomic, the old model is disposed after its last lease, pinned calls and
// failed loads behave as documented.
import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, UnavailableError } from './errors';
import { ModelSlot } from './model-slot';

class FakeWeights {
  disposed = 0;
  constructor(readonly version: string) {}
  dispose() {
    this.disposed++;
  }
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ModelSlot', () => {
  it('is unavailable until a version loads, then serves it', async () => {
    const slot = new ModelSlot(async (v) => new FakeWeights(v));
    expect(() => slot.acquire()).toThrow(UnavailableError);
    await slot.swap('m1');
    const lease = slot.acquire();
    expect(lease.version).toBe('m1');
    lease.release();
    expect(slot.state().serving?.version).toBe('m1');
  });

  it('keeps serving the old version while the new one loads, and frees it after the last lease', async () => {
    const gate = deferred();
    const loaded: FakeWeights[] = [];
    const slot = new ModelSlot(async (v) => {
      if (v === 'm2') await gate.promise;
      const w = new FakeWeights(v);
      loaded.push(w);
      return w;
    });
    await slot.swap('m1');
    const inFlight = slot.acquire();
    const swapping = slot.swap('m2');
    // While m2 loads, new calls still get m1.
    await new Promise((r) => setTimeout(r, 10));
    expect(slot.state().loading?.version).toBe('m2');
    const during = slot.acquire();
    expect(during.version).toBe('m1');
    during.release();
    gate.resolve();
    await swapping;
    // New calls get m2; the call in flight still holds m1, which is draining, not disposed.
    expect(slot.acquire().version).toBe('m2');
    expect(slot.state().draining).toEqual(['m1']);
    expect(loaded[0].disposed).toBe(0);
    expect(inFlight.model.version).toBe('m1');
    inFlight.release();
    inFlight.release();
    expect(loaded[0].disposed).toBe(1);
    expect(slot.state().draining).toEqual([]);
  });

  it('refuses a pinned version that is not serving with FAILED_PRECONDITION', async () => {
    const slot = new ModelSlot(async (v) => new FakeWeights(v));
    await slot.swap('m1');
    expect(() => slot.acquire('m2')).toThrow(FailedPreconditionError);
    expect(slot.acquire('m1').version).toBe('m1');
  });

  it('leaves the serving version untouched when a load fails', async () => {
    const slot = new ModelSlot(async (v) => {
      if (v === 'bad') throw new Error('checksum mismatch in model.safetensors');
      return new FakeWeights(v);
    });
    await slot.swap('m1');
    await expect(slot.swap('bad')).rejects.toThrow('checksum mismatch');
    expect(slot.state().serving?.version).toBe('m1');
    expect(slot.state().lastLoadError).toContain('bad: checksum mismatch');
    expect(slot.acquire().version).toBe('m1');
  });

  it('shares one load between concurrent swaps to the same version', async () => {
    let loads = 0;
    const slot = new ModelSlot(async (v) => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return new FakeWeights(v);
    });
    await Promise.all([slot.swap('m1'), slot.swap('m1'), slot.swap('m1')]);
    expect(loads).toBe(1);
    await Promise.all([slot.swap('m2'), slot.swap('m3')]);
    expect(slot.state().serving?.version).toBe('m3');
  });
});
