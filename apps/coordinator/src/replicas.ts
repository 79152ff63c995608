// The replicas of one model service (generators or judges) as the coordinator
// sees them: every "host:port" target, and every address a "dns:///name:port"
// target resolves to (a Kubernetes headless Service has one A/AAAA record per
// ready pod), re-resolved as they come and go. map() spreads a stage's shards
// over them as a work queue with at most one shard in flight per replica (a
// replica's batches, hence its floating-point results, do not depend on
// other shards), retries a shard whose replica failed on transport on
// another one, and accepts each shard's result once. broadcast() runs an
// action (a model swap) on every replica and fails unless all confirm.
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { withSpan, type Attributes } from '@cream/telemetry';
import { BroadcastError, NoReplicaError, ReplicaSetClosedError, ReplicaTargetError, ShardError, describeError, isTransportFailure, type ShardPhase } from './replicas-errors';

/** How a ReplicaSet finds and talks to the replicas of one service. */
export interface ReplicaSetOptions<Client> {
  /** 'generator' | 'judge': in span names, and in error messages. */
  service: string;
  /** "host:port" (one replica) or "dns:///name:port" (every A/AAAA record is a replica). */
  targets: string[];
  /** A gRPC client for one "host:port". */
  connect(address: string): Client;
  /** Closes a client made by connect (called when its replica vanishes from DNS, and on close()). */
  close(client: Client): void;
  /** DNS re-resolution period (default 10_000 ms): replicas added or removed by scaling are seen within it. */
  resolveEveryMs?: number;
  /** Injectable resolver of a host name to its addresses (default node:dns/promises lookup, all records). */
  lookup?: (host: string) => Promise<string[]>;
}

/** What a shard attempt is told about where it runs. */
export interface ShardInfo {
  /** The replica's "host:port". */
  address: string;
  /** The shard's index in the shards given to map(). */
  index: number;
  /** 1 for the first attempt, 2 for the first retry, ... */
  attempt: number;
}

/** Options of one map(). */
export interface MapOptions<Client, Result> {
  /** The stage the shards belong to (span attribute cream.stage, error messages). */
  stage?: string;
  /** Attempts per shard before the map fails (default 3 x the number of replicas at the start, at least 3). */
  maxAttempts?: number;
  /** Runs once per replica per map() before its first shard (again after that replica failed), e.g. a confirmed model swap. */
  prepare?: (client: Client, address: string) => Promise<void>;
  /** Called once per shard, in completion order, with its accepted result (e.g. to persist progress). */
  onShardDone?: (index: number, result: Result) => void;
}

/** A parsed target: a fixed address, or a name to resolve. */
export type ReplicaTarget = { kind: 'address'; target: string; address: string } | { kind: 'dns'; target: string; host: string; port: number };

/** Default DNS re-resolution period. */
const defaultResolveEveryMs = 10_000;
/** Back-off before retrying when no replica is usable: first wait, and the cap of its doubling. */
const firstBackoffMs = 200;
const maxBackoffMs = 3_000;
/** Consecutive back-off rounds that find no replica at all before map() gives up. */
const maxRoundsWithoutReplica = 5;

function parsePort(target: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new ReplicaTargetError(target, `has port "${text}", which is not an integer from 1 to 65535`);
  }
  return Number(text);
}

/** Splits "host:port" or "[ipv6]:port" into its host (brackets removed) and port. */
function splitHostPort(target: string, text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\]:([^:]*)$/.exec(text);
  if (bracketed) {
    if (isIP(bracketed[1]) !== 6) throw new ReplicaTargetError(target, `has "[${bracketed[1]}]", which is not an IPv6 address`);
    return { host: bracketed[1], port: parsePort(target, bracketed[2]) };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) throw new ReplicaTargetError(target, 'has no host or no port');
  const host = text.slice(0, colon);
  if (host.includes(':')) throw new ReplicaTargetError(target, 'has an IPv6 host without brackets');
  if (!/^[A-Za-z0-9._-]+$/.test(host)) throw new ReplicaTargetError(target, `has host "${host}", which is not a DNS name or an IPv4 address`);
  return { host, port: parsePort(target, text.slice(colon + 1)) };
}

/** "host:port", with brackets around an IPv6 host. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses a replica target: "host:port" and "[ipv6]:port" are one replica
 * each; "dns:///name:port" is every address the name resolves to. Throws
 * ReplicaTargetError naming the target and what is wrong with it.
 */
export function parseReplicaTarget(target: string): ReplicaTarget {
  const text = target.trim();
  if (text === '') throw new ReplicaTargetError(target, 'is empty');
  if (text.startsWith('dns:')) {
    if (!text.startsWith('dns:///')) throw new ReplicaTargetError(target, 'names a DNS authority or lacks "///" (only "dns:///name:port" is supported)');
    const { host, port } = splitHostPort(target, text.slice('dns:///'.length));
    return { kind: 'dns', target, host, port };
  }
  if (text.includes('/')) throw new ReplicaTargetError(target, 'has a scheme other than dns:///');
  const { host, port } = splitHostPort(target, text);
  return { kind: 'address', target, address: formatAddress(host, port) };
}

/** node:dns lookup of every A and AAAA record of `host`. */
async function lookupAll(host: string): Promise<string[]> {
  return (await dnsLookup(host, { all: true })).map((record) => record.address);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A replica's client, and how many calls hold it (a vanished replica is closed once none do). */
interface Replica<Client> {
  client: Client;
  inUse: number;
  vanished: boolean;
}

/** The replicas of one service: resolution, sharded work with retries, and confirmed broadcasts. */
export class ReplicaSet<Client> {
  private readonly service: string;
  private readonly targets: ReplicaTarget[];
  private readonly connect: (address: string) => Client;
  private readonly closeClient: (client: Client) => void;
  private readonly resolveEveryMs: number;
  private readonly lookup: (host: string) => Promise<string[]>;
  /** Current replicas by address, in target order. */
  private replicas = new Map<string, Replica<Client>>();
  /** Last successful resolution of each DNS target, kept when a later lookup fails. */
  private readonly resolvedByTarget = new Map<string, string[]>();
  /** Why each target gave no address at the last resolution. */
  private resolveProblems: string[] = [];
  private resolvedAt = Number.NEGATIVE_INFINITY;
  private resolving: Promise<void> | undefined;
  private closed = false;

  /** Checks every target (ReplicaTargetError naming the bad one); resolves nothing until first used. */
  constructor(options: ReplicaSetOptions<Client>) {
    if (options.targets.length === 0) throw new ReplicaTargetError('', `is missing: the ${options.service} replica set has no target`);
    const resolveEveryMs = options.resolveEveryMs ?? defaultResolveEveryMs;
    if (!(Number.isFinite(resolveEveryMs) && resolveEveryMs > 0)) throw new RangeError(`resolveEveryMs is ${resolveEveryMs}; it must be a positive number of milliseconds`);
    this.service = options.service;
    this.targets = options.targets.map(parseReplicaTarget);
    this.connect = options.connect;
    this.closeClient = options.close;
    this.resolveEveryMs = resolveEveryMs;
    this.lookup = options.lookup ?? lookupAll;
  }

  /** The current replicas' "host:port" (re-resolved when stale); NoReplicaError when there is none. */
  async addresses(): Promise<string[]> {
    await this.refresh(false);
    if (this.replicas.size === 0) throw this.noReplicaError();
    return [...this.replicas.keys()];
  }

  /**
   * Runs `work` on every shard, at most one shard in flight per replica,
   * spread over every replica, and resolves with the results in shard order.
   * A shard whose replica fails on transport (see isTransportFailure) is
   * retried on another replica, or on the same one after re-resolution, up
   * to maxAttempts; that replica is put aside for the rest of the map. Any
   * other error fails the map at once with a ShardError naming the shard and
   * the replica. A shard's result is accepted once. `prepare` runs once per
   * replica before its first shard. Each attempt is a span `shard <service>`.
   */
  async map<Shard, Result>(
    shards: Shard[],
    work: (client: Client, shard: Shard, info: ShardInfo) => Promise<Result>,
    options: MapOptions<Client, Result> = {},
  ): Promise<Result[]> {
    this.checkOpen();
    if (options.maxAttempts !== undefined && !(Number.isInteger(options.maxAttempts) && options.maxAttempts >= 1)) {
      throw new RangeError(`maxAttempts is ${options.maxAttempts}; it must be an integer >= 1`);
    }
    if (shards.length === 0) return [];
    const initial = await this.liveAddresses(false);
    const maxAttempts = options.maxAttempts ?? Math.max(3, 3 * initial.length);
    const results = new Array<Result>(shards.length);
    const accepted = new Array<boolean>(shards.length).fill(false);
    const attempts = new Array<number>(shards.length).fill(0);
    const queue = shards.map((_, index) => index);
    const inFlight = new Map<string, Promise<void>>();
    const putAside = new Set<string>();
    const prepared = new Set<string>();
    let remaining = shards.length;
    let failure: Error | undefined;
    let roundsWithoutLaunch = 0;
    let backoffRounds = 0;

    const fail = (index: number, address: string, phase: ShardPhase, error: unknown) => {
      const transport = isTransportFailure(error);
      if (transport && attempts[index] < maxAttempts) {
        putAside.add(address);
        prepared.delete(address);
        queue.unshift(index);
        return;
      }
      failure ??= new ShardError(this.service, index, address, attempts[index], maxAttempts, phase, transport, { cause: error, stage: options.stage });
    };

    const launch = (index: number, address: string) => {
      attempts[index] += 1;
      const info: ShardInfo = { address, index, attempt: attempts[index] };
      const settled = this.using(address, async (client) => {
        if (options.prepare && !prepared.has(address)) {
          try {
            await withSpan(`prepare ${this.service}`, this.spanAttributes(options.stage, { 'cream.replica': address }), () => options.prepare!(client, address));
          } catch (error) {
            fail(index, address, 'prepare', error);
            return;
          }
          prepared.add(address);
        }
        let result: Result;
        try {
          result = await withSpan(`shard ${this.service}`, this.shardAttributes(options.stage, shards[index], info), () => work(client, shards[index], info));
        } catch (error) {
          if (failure === undefined) fail(index, address, 'work', error);
          return;
        }
        if (failure !== undefined || accepted[index]) return;
        accepted[index] = true;
        results[index] = result;
        remaining -= 1;
        try {
          options.onShardDone?.(index, result);
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }).finally(() => inFlight.delete(address));
      inFlight.set(address, settled);
    };

    while (remaining > 0 && failure === undefined) {
      const idle = (await this.liveAddresses(false)).filter((address) => !inFlight.has(address) && !putAside.has(address));
      let launched = false;
      while (queue.length > 0 && idle.length > 0) {
        launch(queue.shift()!, idle.shift()!);
        launched = true;
      }
      if (launched) roundsWithoutLaunch = 0;
      if (inFlight.size === 0) {
        // Work is left and no replica can take it: every known replica failed
        // (or none is known). Wait, re-resolve, and give the replicas another
        // chance; attempts per shard bound how often a dead one is tried.
        roundsWithoutLaunch += 1;
        if (roundsWithoutLaunch > maxRoundsWithoutReplica) {
          failure = this.noReplicaError();
          break;
        }
        backoffRounds += 1;
        await sleep(Math.min(maxBackoffMs, firstBackoffMs * 2 ** (backoffRounds - 1)));
        this.checkOpen();
        await this.liveAddresses(true);
        putAside.clear();
        continue;
      }
      // Wake when a shard settles, or when re-resolution is due while shards
      // wait, so replicas added by scaling get work mid-stage.
      const wakeups: Promise<unknown>[] = [...inFlight.values()];
      let timer: NodeJS.Timeout | undefined;
      if (queue.length > 0 && this.targets.some((target) => target.kind === 'dns')) {
        const dueInMs = Math.max(1, this.resolvedAt + this.resolveEveryMs - Date.now());
        wakeups.push(new Promise((resolve) => (timer = setTimeout(resolve, dueInMs))));
      }
      await Promise.race(wakeups);
      clearTimeout(timer);
    }
    if (failure !== undefined) throw failure;
    return results;
  }

  /**
   * Runs `action` on every current replica concurrently and resolves with each
   * replica's answer once all confirmed. A replica that failed on transport
   * and is gone after re-resolution (a pod scaled away) is not waited for, and
   * a replica that appeared meanwhile gets the action too; otherwise any
   * failure throws BroadcastError naming the replicas that did not confirm.
   */
  async broadcast<R>(action: (client: Client, address: string) => Promise<R>): Promise<Map<string, R>> {
    const confirmed = new Map<string, R>();
    const failures = new Map<string, unknown>();
    const run = (addresses: string[]) =>
      Promise.all(
        addresses.map(async (address) => {
          try {
            confirmed.set(address, await this.using(address, (client) => action(client, address)));
          } catch (error) {
            failures.set(address, error);
          }
        }),
      );
    const tried = await this.addresses();
    await run(tried);
    if ([...failures.values()].some(isTransportFailure)) {
      const now = await this.liveAddresses(true);
      for (const [address, error] of [...failures]) if (!now.includes(address) && isTransportFailure(error)) failures.delete(address);
      const added = now.filter((address) => !tried.includes(address));
      tried.push(...added);
      await run(added);
      if (confirmed.size === 0 && failures.size === 0) throw this.noReplicaError();
    }
    if (failures.size > 0) throw new BroadcastError(this.service, failures, tried.length);
    return new Map(tried.filter((address) => confirmed.has(address)).map((address) => [address, confirmed.get(address) as R]));
  }

  /** Closes every client; later calls throw ReplicaSetClosedError. */
  close(): void {
    this.closed = true;
    for (const replica of this.replicas.values()) this.closeClient(replica.client);
    this.replicas.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new ReplicaSetClosedError(this.service);
  }

  private noReplicaError(): NoReplicaError {
    return new NoReplicaError(
      this.service,
      this.targets.map((target) => target.target),
      this.resolveProblems,
    );
  }

  /** The current addresses, re-resolved when stale (or now when `force`); empty rather than throwing. */
  private async liveAddresses(force: boolean): Promise<string[]> {
    await this.refresh(force);
    return [...this.replicas.keys()];
  }

  /** Re-resolves when `force` or stale; concurrent callers share one resolution. */
  private async refresh(force: boolean): Promise<void> {
    this.checkOpen();
    if (this.resolving) return this.resolving;
    if (!force && Date.now() - this.resolvedAt < this.resolveEveryMs) return;
    this.resolving = this.resolve().finally(() => (this.resolving = undefined));
    return this.resolving;
  }

  /** Resolves every target, closes replicas that vanished (once no call holds them) and connects new ones. */
  private async resolve(): Promise<void> {
    const problems: string[] = [];
    const perTarget = await Promise.all(
      this.targets.map(async (target) => {
        if (target.kind === 'address') return [target.address];
        try {
          const found = [...new Set(await this.lookup(target.host))].sort().map((ip) => formatAddress(ip, target.port));
          if (found.length === 0) problems.push(`${target.target}: resolved to no address`);
          this.resolvedByTarget.set(target.target, found);
          return found;
        } catch (error) {
          // Keep the last known addresses: a DNS hiccup is not a scale-down.
          const previous = this.resolvedByTarget.get(target.target) ?? [];
          problems.push(`${target.target}: ${describeError(error)}${previous.length > 0 ? ` (keeping ${previous.length} known)` : ''}`);
          return previous;
        }
      }),
    );
    if (this.closed) return;
    const next = new Map<string, Replica<Client>>();
    for (const address of perTarget.flat()) {
      if (next.has(address)) continue;
      next.set(address, this.replicas.get(address) ?? { client: this.connect(address), inUse: 0, vanished: false });
    }
    for (const [address, replica] of this.replicas) {
      if (next.has(address)) continue;
      replica.vanished = true;
      if (replica.inUse === 0) this.closeClient(replica.client);
    }
    this.replicas = next;
    this.resolveProblems = problems;
    this.resolvedAt = Date.now();
  }

  /** Runs `use` with a replica's client, holding it open even if the replica vanishes meanwhile. */
  private async using<T>(address: string, use: (client: Client) => Promise<T>): Promise<T> {
    const replica = this.replicas.get(address);
    if (!replica) throw new NoReplicaError(this.service, [address], [`${address} is no longer a replica`]);
    replica.inUse += 1;
    try {
      return await use(replica.client);
    } finally {
      replica.inUse -= 1;
      if (replica.vanished && replica.inUse === 0 && !this.closed) this.closeClient(replica.client);
    }
  }

  private spanAttributes(stage: string | undefined, attributes: Attributes): Attributes {
    return stage === undefined ? attributes : { 'cream.stage': stage, ...attributes };
  }

  private shardAttributes(stage: string | undefined, shard: unknown, info: ShardInfo): Attributes {
    const attributes: Attributes = { 'cream.replica': info.address, 'cream.shard.index': info.index, 'cream.shard.attempt': info.attempt };
    if (Array.isArray(shard)) attributes['cream.shard.items'] = shard.length;
    return this.spanAttributes(stage, attributes);
  }
}
