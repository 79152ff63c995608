// Several model versions resident at once within a memory budget (the judge
// scores with M_t, M_{t-1} and M_{t-2}): loads on demand, evicts the least
// recently used version that no call holds, and refuses with
// RESOURCE_EXHAUSTED when even after evicting everything idle a version does
// not fit. Generic over what a model is, like ModelSlot.
import { ResourceExhaustedError } from './errors';
import type { Lease, SlotModel } from './model-slot';

/** A model with a known size. */
export interface SizedModel extends SlotModel {
  /** Bytes it holds in memory. */
  readonly bytes: number;
}

interface CacheEntry<M> {
  version: string;
  model: M;
  loadedAt: Date;
  lastUsed: number;
  leases: number;
  evicted: boolean;
}

/** A resident version as listed. */
export interface ResidentModel<M> {
  version: string;
  model: M;
  loadedAt: Date;
  leases: number;
}

/** LRU cache of loaded versions under a byte budget. */
export class ModelCache<M extends SizedModel> {
  private readonly entries = new Map<string, CacheEntry<M>>();
  private readonly loading = new Map<string, Promise<CacheEntry<M>>>();
  private clock = 0;

  constructor(
    private readonly load: (version: string) => Promise<M>,
    /** Budget for the sum of resident models' bytes. */
    readonly budgetBytes: number,
  ) {}

  /** Leases a version, loading it (and evicting idle ones) if needed. Returns the versions evicted. */
  async acquire(version: string): Promise<{ lease: Lease<M>; evicted: string[] }> {
    let evicted: string[] = [];
    let entry = this.entries.get(version);
    if (!entry) {
      let pending = this.loading.get(version);
      if (!pending) {
        pending = (async () => {
          const model = await this.load(version);
          try {
            evicted = this.makeRoom(model.bytes, version);
          } catch (error) {
            model.dispose();
            throw error;
          }
          const created: CacheEntry<M> = { version, model, loadedAt: new Date(), lastUsed: 0, leases: 0, evicted: false };
          this.entries.set(version, created);
          return created;
        })();
        this.loading.set(version, pending);
        void pending.finally(() => this.loading.delete(version)).catch(() => undefined);
      }
      entry = await pending;
    }
    const held = entry;
    held.leases++;
    held.lastUsed = ++this.clock;
    let released = false;
    return {
      evicted,
      lease: {
        version,
        model: held.model,
        release: () => {
          if (released) return;
          released = true;
          held.leases--;
          if (held.evicted && held.leases === 0) held.model.dispose();
        },
      },
    };
  }

  /** Frees a version now (or once its calls finish). Returns its bytes, or undefined when not resident. */
  unload(version: string): number | undefined {
    const entry = this.entries.get(version);
    if (!entry) return undefined;
    this.evict(entry);
    return entry.model.bytes;
  }

  /** Resident versions, most recently used first. */
  list(): Array<ResidentModel<M>> {
    return [...this.entries.values()]
      .sort((a, b) => b.lastUsed - a.lastUsed)
      .map((e) => ({ version: e.version, model: e.model, loadedAt: e.loadedAt, leases: e.leases }));
  }

  /** Bytes held by resident versions. */
  usedBytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.model.bytes;
    return total;
  }

  private makeRoom(bytes: number, version: string): string[] {
    if (bytes > this.budgetBytes) {
      throw new ResourceExhaustedError(`model ${version} needs ${bytes} bytes; the memory budget is ${this.budgetBytes} bytes`);
    }
    const evicted: string[] = [];
    const idle = [...this.entries.values()].filter((e) => e.leases === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (this.usedBytes() + bytes > this.budgetBytes) {
      const victim = idle.shift();
      if (!victim) {
        throw new ResourceExhaustedError(
          `model ${version} (${bytes} bytes) does not fit: ${this.usedBytes()} of ${this.budgetBytes} bytes are held by versions in use (${[...this.entries.keys()].join(', ')})`,
        );
      }
      this.evict(victim);
      evicted.push(victim.version);
    }
    return evicted;
  }

  private evict(entry: CacheEntry<M>): void {
    this.entries.delete(entry.version);
    entry.evicted = true;
    if (entry.leases === 0) entry.model.dispose();
  }
}
