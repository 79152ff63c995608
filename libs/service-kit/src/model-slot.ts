// The hot-swappable model slot of a serving process (generator): one version
// serves new calls; LoadModel loads another in the background while the old
// one keeps serving, then switches atomically. Calls hold a lease on the
// version they started with and finish on it; the old version is disposed
// once its last lease is released. A failed load leaves the serving version
// untouched. The slot is generic over what a "model" is, so it is tested
// here without weights and used by the services with real ones.
import { FailedPreconditionError, UnavailableError } from './errors';

/** A loaded model as the slot sees it. */
export interface SlotModel {
  /** Frees the model's memory (weights). Called once, after the last lease. */
  dispose(): void;
}

/** A call's hold on one loaded version. */
export interface Lease<M> {
  /** The version. */
  readonly version: string;
  /** The model. */
  readonly model: M;
  /** Ends the hold; the version may be freed after. Idempotent. */
  release(): void;
}

/** What the slot holds now. */
export interface SlotState {
  /** The version serving new calls, if any. */
  serving: { version: string; loadedAt: Date } | undefined;
  /** The version loading in the background, if any. */
  loading: { version: string; since: Date } | undefined;
  /** Versions swapped out but still held by calls in flight. */
  draining: string[];
  /** The last failed load and why. */
  lastLoadError: string;
}

interface Entry<M> {
  version: string;
  model: M;
  loadedAt: Date;
  leases: number;
  retired: boolean;
  disposed: boolean;
}

/** One serving version at a time, hot-swapped without failing calls in flight. */
export class ModelSlot<M extends SlotModel> {
  private current: Entry<M> | undefined;
  private readonly draining = new Set<Entry<M>>();
  private loading: { version: string; since: Date; done: Promise<void> } | undefined;
  private lastLoadError = '';
  private readonly listeners = new Set<(state: SlotState) => void>();

  /** `load` reads and verifies a version (it throws typed errors: NotFound, FailedPrecondition, ...). */
  constructor(private readonly load: (version: string) => Promise<M>) {}

  /** Calls `listener` after every change of state (serving, loading, draining). */
  onChange(listener: (state: SlotState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The state now. */
  state(): SlotState {
    return {
      serving: this.current ? { version: this.current.version, loadedAt: this.current.loadedAt } : undefined,
      loading: this.loading ? { version: this.loading.version, since: this.loading.since } : undefined,
      draining: [...this.draining].map((e) => e.version),
      lastLoadError: this.lastLoadError,
    };
  }

  /**
   * Leases the serving version for one call. With `pinned`, only that version
   * will do: FailedPreconditionError when another is serving. UnavailableError
   * when nothing is loaded yet.
   */
  acquire(pinned?: string): Lease<M> {
    const entry = this.current;
    if (!entry) {
      throw new UnavailableError(this.loading ? `no model serves yet; ${this.loading.version} is loading` : 'no model is loaded; call LoadModel first');
    }
    if (pinned && pinned !== entry.version) {
      throw new FailedPreconditionError(`model_version "${pinned}" is not loaded; this server serves "${entry.version}"`);
    }
    entry.leases++;
    let released = false;
    return {
      version: entry.version,
      model: entry.model,
      release: () => {
        if (released) return;
        released = true;
        entry.leases--;
        this.collect(entry);
      },
    };
  }

  /**
   * Loads `version` and makes it serve. Resolves when it serves (or at once
   * when it already does). Concurrent calls for the same version share one
   * load; a call for another version waits for the running load, then loads.
   * On failure the serving version is untouched and the error is rethrown.
   */
  async swap(version: string): Promise<void> {
    if (this.current?.version === version && !this.loading) return;
    if (this.loading) {
      const running = this.loading;
      await running.done.catch(() => undefined);
      if (running.version === version && this.current?.version === version) return;
      return this.swap(version);
    }
    const since = new Date();
    const done = (async () => {
      const model = await this.load(version);
      const previous = this.current;
      this.current = { version, model, loadedAt: new Date(), leases: 0, retired: false, disposed: false };
      this.lastLoadError = '';
      if (previous) {
        previous.retired = true;
        this.draining.add(previous);
        this.collect(previous);
      }
    })();
    this.loading = { version, since, done };
    this.emit();
    try {
      await done;
    } catch (error) {
      this.lastLoadError = `${version}: ${(error as Error).message}`;
      throw error;
    } finally {
      this.loading = undefined;
      this.emit();
    }
  }

  /** Disposes every version (at shutdown, after calls have drained). */
  disposeAll(): void {
    for (const entry of [...this.draining, ...(this.current ? [this.current] : [])]) this.disposeEntry(entry);
    this.draining.clear();
    this.current = undefined;
    this.emit();
  }

  private collect(entry: Entry<M>): void {
    if (entry.retired && entry.leases === 0 && !entry.disposed) {
      this.disposeEntry(entry);
      this.draining.delete(entry);
      this.emit();
    }
  }

  private disposeEntry(entry: Entry<M>): void {
    if (entry.disposed) return;
    entry.disposed = true;
    entry.model.dispose();
  }

  private emit(): void {
    const state = this.state();
    for (const listener of this.listeners) listener(state);
  }
}
