// ReplicaSet against real grpc-js servers on loopback: small GeneratorService
// servers (the @cream/proto contract) whose Generate echoes each prompt with
// the replica's name, so every result says where it ran. Covers sharding over
// every replica with the order kept and one shard in flight per replica, a
// replica shut down in the middle of a shard (the shard retried elsewhere,
// nothing lost or duplicated), service errors failing the map at once,
// prepare once per replica, DNS resolution through an injected lookup (several
// loopback addresses on one port; a replica joining mid-map), broadcasts, and
// the shard spans in the trace file under their stage span.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, credentials, status, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import { GenerateResponse, GeneratorServiceClient, GeneratorServiceService, GetModelResponse, LoadModelResponse, type GenerateRequest } from '@cream/proto';
import { readSpanRecords, stageSpan, startTelemetry, type SpanRecord, type TelemetryHandle } from '@cream/telemetry';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReplicaSet, parseReplicaTarget, type ReplicaSetOptions } from './replicas';
import { BroadcastError, NoReplicaError, ReplicaTargetError, ShardError, isTransportFailure } from './replicas-errors';

/** What a test replica does with one Generate call, after recording it. */
type Behaviour = (call: ServerWritableStream<GenerateRequest, GenerateResponse>, replica: TestReplica) => Promise<void>;

/** A real grpc-js server with a test GeneratorService, and what it saw. */
interface TestReplica {
  name: string;
  address: string;
  server: Server;
  /** Prompt ids of every Generate call it received, in arrival order. */
  calls: string[][];
  /** Most Generate calls it had in flight at once. */
  maxConcurrent: number;
  /** Versions asked by LoadModel, in order. */
  loads: string[];
  /** The version it serves. */
  version: string;
  behaviour: Behaviour;
}

const replicas: TestReplica[] = [];

/** Echoes each prompt as "<text> by <replica>" after `delayMs`. */
const echo =
  (delayMs = 15): Behaviour =>
  async (call, replica) => {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    for (const prompt of call.request.prompts) {
      const text = prompt.content?.$case === 'text' ? prompt.content.value : '';
      call.write(GenerateResponse.fromPartial({ completion: { promptId: prompt.id, text: `${text} by ${replica.name}`, modelVersion: replica.version } }));
    }
  };

function getModelResponse(replica: TestReplica): GetModelResponse {
  return GetModelResponse.fromPartial({ serving: { info: { version: replica.version } } });
}

/** Starts a test replica on host:port (port 0: any free port). */
async function startReplica(name: string, behaviour: Behaviour = echo(), host = '127.0.0.1', port = 0): Promise<TestReplica> {
  const server = new Server();
  let inFlight = 0;
  const replica: TestReplica = { name, address: '', server, calls: [], maxConcurrent: 0, loads: [], version: 'v0', behaviour };
  server.addService(GeneratorServiceService, {
    generate: (call: ServerWritableStream<GenerateRequest, GenerateResponse>) => {
      replica.calls.push(call.request.prompts.map((prompt) => prompt.id));
      inFlight += 1;
      replica.maxConcurrent = Math.max(replica.maxConcurrent, inFlight);
      replica.behaviour(call, replica).then(
        () => call.end(),
        (error: Partial<ServiceError>) => call.emit('error', error),
      ).finally(() => (inFlight -= 1));
    },
    loadModel: (call: { request: { version: string } }, callback: (error: Partial<ServiceError> | null, response?: unknown) => void) => {
      replica.loads.push(call.request.version);
      if (call.request.version === 'missing') return callback({ code: status.NOT_FOUND, details: 'model version "missing" is not in the registry' });
      replica.version = call.request.version;
      callback(null, LoadModelResponse.fromPartial({ state: getModelResponse(replica) }));
    },
    getModel: (_call: unknown, callback: (error: null, response: GetModelResponse) => void) => callback(null, getModelResponse(replica)),
  });
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
  replica.address = `${host}:${bound}`;
  replicas.push(replica);
  return replica;
}

/** Generate on one replica, the completions' texts in prompt order. */
function generate(client: GeneratorServiceClient, prompts: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const stream = client.generate({ prompts: prompts.map((text) => ({ id: text, content: { $case: 'text', value: text } })), numSamples: 1, sampling: undefined, modelVersion: '' });
    const texts: string[] = [];
    stream.on('data', (message: GenerateResponse) => texts.push(message.completion!.text));
    stream.on('error', reject);
    stream.on('end', () => resolve(texts));
  });
}

function loadModel(client: GeneratorServiceClient, version: string): Promise<string> {
  return new Promise((resolve, reject) => client.loadModel({ version, wait: true }, (error, response) => (error ? reject(error) : resolve(response.state!.serving!.info!.version))));
}

const sets: ReplicaSet<GeneratorServiceClient>[] = [];
const addressOf = new WeakMap<GeneratorServiceClient, string>();
const opened: string[] = [];
const closed: string[] = [];

function replicaSet(targets: string[], extra: Partial<ReplicaSetOptions<GeneratorServiceClient>> = {}): ReplicaSet<GeneratorServiceClient> {
  const set = new ReplicaSet<GeneratorServiceClient>({
    service: 'generator',
    targets,
    connect: (address) => {
      opened.push(address);
      const client = new GeneratorServiceClient(address, credentials.createInsecure());
      addressOf.set(client, address);
      return client;
    },
    close: (client) => {
      closed.push(addressOf.get(client)!);
      client.close();
    },
    ...extra,
  });
  sets.push(set);
  return set;
}

/** Shards of prompts: shard i holds `size` prompts "s<i>-<j>". */
function promptShards(count: number, size = 2): string[][] {
  return Array.from({ length: count }, (_, i) => Array.from({ length: size }, (_, j) => `s${i}-${j}`));
}

let telemetry: TelemetryHandle;
let traceFile: string;

beforeAll(() => {
  traceFile = join(mkdtempSync(join(tmpdir(), 'cream-replicas-')), 'spans.jsonl');
  telemetry = startTelemetry({ serviceName: 'replicas-test', env: {}, traceFile });
});

afterEach(() => {
  for (const set of sets.splice(0)) set.close();
  for (const replica of replicas.splice(0)) replica.server.forceShutdown();
  opened.length = 0;
  closed.length = 0;
});

afterAll(() => telemetry.shutdown());

async function spans(filter: (record: SpanRecord) => boolean): Promise<SpanRecord[]> {
  await telemetry.flush();
  return readSpanRecords(traceFile).filter(filter);
}

describe('parseReplicaTarget', () => {
  it('reads host:port, [ipv6]:port and dns:///name:port', () => {
    expect(parseReplicaTarget('127.0.0.1:50051')).toEqual({ kind: 'address', target: '127.0.0.1:50051', address: '127.0.0.1:50051' });
    expect(parseReplicaTarget('[::1]:50051')).toMatchObject({ kind: 'address', address: '[::1]:50051' });
    expect(parseReplicaTarget('generator:50051')).toMatchObject({ kind: 'address', address: 'generator:50051' });
    expect(parseReplicaTarget('dns:///cream-generator.cream.svc.cluster.local:50051')).toMatchObject({ kind: 'dns', host: 'cream-generator.cream.svc.cluster.local', port: 50051 });
  });

  it('refuses malformed targets, naming the target and the problem', () => {
    for (const [target, problem] of [
      ['', 'is empty'],
      ['generator', 'no host or no port'],
      ['generator:0', 'port "0"'],
      ['generator:70000', 'port "70000"'],
      ['::1:50051', 'IPv6 host without brackets'],
      ['dns://8.8.8.8/generator:50051', 'DNS authority'],
      ['http://generator:50051', 'scheme other than dns'],
      ['gen erator:1', 'not a DNS name'],
    ]) {
      expect(() => parseReplicaTarget(target), target).toThrow(ReplicaTargetError);
      expect(() => parseReplicaTarget(target), target).toThrow(problem);
    }
    expect(() => replicaSet([])).toThrow('no target');
  });
});

describe('ReplicaSet.map', () => {
  it('spreads shards over every replica, one in flight per replica, results in shard order', async () => {
    const [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    const set = replicaSet([a.address, b.address]);
    const done: number[] = [];
    const results = await set.map(promptShards(8), (client, shard) => generate(client, shard), { onShardDone: (index) => done.push(index) });
    expect(results).toHaveLength(8);
    results.forEach((texts, i) => expect(texts.map((text) => text.replace(/ by [ab]$/, ''))).toEqual([`s${i}-0`, `s${i}-1`]));
    expect(a.calls.length).toBeGreaterThan(0);
    expect(b.calls.length).toBeGreaterThan(0);
    expect(a.calls.length + b.calls.length).toBe(8);
    expect([a.maxConcurrent, b.maxConcurrent]).toEqual([1, 1]);
    expect([...done].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Where a result says it ran is where the server saw the shard, and only there.
    results.forEach((texts, i) => {
      const [owner, other] = texts[0].endsWith('by a') ? [a, b] : [b, a];
      expect(owner.calls).toContainEqual([`s${i}-0`, `s${i}-1`]);
      expect(other.calls).not.toContainEqual([`s${i}-0`, `s${i}-1`]);
      expect(texts.every((text) => text.endsWith(`by ${owner.name}`)), `shard ${i}`).toBe(true);
    });
  });

  it('retries the shard of a replica shut down mid-shard on the other one: nothing lost, nothing duplicated', async () => {
    let killed = false;
    const dying = await startReplica('dying', async (call, replica) => {
      // Streams the first completion of its second shard, then the server dies.
      if (replica.calls.length < 2) return echo(10)(call, replica);
      const first = call.request.prompts[0];
      call.write(GenerateResponse.fromPartial({ completion: { promptId: first.id, text: 'partial', modelVersion: replica.version } }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      killed = true;
      replica.server.forceShutdown();
      await new Promise(() => {});
    });
    const steady = await startReplica('steady', echo(25));
    const set = replicaSet([dying.address, steady.address]);
    const accepted: number[] = [];
    const results = await stageSpan('iter-1/sample', { 'cream.run_id': 'replicas-test' }, () =>
      set.map(promptShards(6), (client, shard) => generate(client, shard), { stage: 'iter-1/sample', onShardDone: (index) => accepted.push(index) }),
    );
    expect(killed).toBe(true);
    results.forEach((texts, i) => expect(texts.map((text) => text.replace(/ by \w+$/, ''))).toEqual([`s${i}-0`, `s${i}-1`]));
    expect(results.flat().filter((text) => text === 'partial')).toEqual([]);
    expect([...accepted].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5]);
    // The dying replica got two shards (one finished, one lost), then no more: it was put aside.
    expect(dying.calls).toHaveLength(2);
    expect(steady.calls).toHaveLength(5);

    const shardSpans = await spans((record) => record.name === 'shard generator' && record.attributes['cream.stage'] === 'iter-1/sample');
    const [stage] = await spans((record) => record.name === 'stage iter-1/sample');
    expect(shardSpans).toHaveLength(7);
    expect(shardSpans.every((span) => span.parentSpanId === stage.spanId && span.traceId === stage.traceId)).toBe(true);
    expect(new Set(shardSpans.map((span) => span.attributes['cream.replica']))).toEqual(new Set([dying.address, steady.address]));
    const failed = shardSpans.filter((span) => span.status.code === 'ERROR');
    expect(failed).toHaveLength(1);
    expect(failed[0].attributes).toMatchObject({ 'cream.replica': dying.address, 'cream.shard.attempt': 1, 'cream.shard.items': 2 });
    const retried = shardSpans.filter((span) => span.attributes['cream.shard.index'] === failed[0].attributes['cream.shard.index'] && span.status.code !== 'ERROR');
    expect(retried).toHaveLength(1);
    expect(retried[0].attributes).toMatchObject({ 'cream.replica': steady.address, 'cream.shard.attempt': 2 });
  });

  it('fails at once on a service error, naming the shard and the replica, without retrying it', async () => {
    const refusing = async (call: ServerWritableStream<GenerateRequest, GenerateResponse>, replica: TestReplica) => {
      if (call.request.prompts.some((prompt) => prompt.id === 's3-0')) {
        throw { code: status.INVALID_ARGUMENT, details: 'prompts[0].text is over the context length (128 tokens)' };
      }
      return echo(5)(call, replica);
    };
    const [a, b] = await Promise.all([startReplica('a', refusing), startReplica('b', refusing)]);
    const set = replicaSet([a.address, b.address]);
    const error = (await set.map(promptShards(6), (client, shard) => generate(client, shard), { stage: 'eval/m0' }).catch((e: unknown) => e)) as ShardError;
    expect(error).toBeInstanceOf(ShardError);
    expect(error).toMatchObject({ shardIndex: 3, transport: false, phase: 'work', code: status.INVALID_ARGUMENT, attempt: 1 });
    expect(error.message).toContain('generator shard 3 of stage eval/m0');
    expect(error.message).toContain(error.address);
    expect(error.message).toContain('INVALID_ARGUMENT: prompts[0].text is over the context length');
    // Shard 3 reached one replica, once; the replica named is the one that refused it.
    const sawShard3 = [a, b].flatMap((replica) => replica.calls.filter((ids) => ids[0] === 's3-0').map(() => replica.address));
    expect(sawShard3).toEqual([error.address]);
    expect(isTransportFailure(error.cause)).toBe(false);
  });

  it('runs prepare once per replica before its first shard, and fails the map when it is refused', async () => {
    const [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    const set = replicaSet([a.address, b.address]);
    const prepared: string[] = [];
    const results = await set.map(promptShards(6), (client, shard) => generate(client, shard), {
      prepare: async (client, address) => {
        prepared.push(address);
        expect(await loadModel(client, 'm2')).toBe('m2');
      },
    });
    expect([...prepared].sort()).toEqual([a.address, b.address].sort());
    expect([a.loads, b.loads]).toEqual([['m2'], ['m2']]);
    expect(a.calls.length + b.calls.length).toBe(6);
    expect(results.flat()).toHaveLength(12);

    const error = (await set.map(promptShards(2), (client, shard) => generate(client, shard), { prepare: (client) => loadModel(client, 'missing').then(() => undefined) }).catch((e: unknown) => e)) as ShardError;
    expect(error).toBeInstanceOf(ShardError);
    expect(error).toMatchObject({ phase: 'prepare', code: status.NOT_FOUND, transport: false });
    expect(error.message).toMatch(/preparing replica 127\.0\.0\.1:\d+ failed/);
    expect(error.message).toContain('model version "missing"');
  });

  it('gives up after maxAttempts when every replica is unreachable', async () => {
    const gone = await startReplica('gone');
    gone.server.forceShutdown();
    const set = replicaSet([gone.address]);
    const error = (await set.map(promptShards(1), (client, shard) => generate(client, shard), { maxAttempts: 2 }).catch((e: unknown) => e)) as ShardError;
    expect(error).toBeInstanceOf(ShardError);
    expect(error).toMatchObject({ transport: true, attempt: 2, maxAttempts: 2, code: status.UNAVAILABLE, address: gone.address });
    expect(error.message).toContain('every attempt failed on transport (attempt 2 of 2)');
    await expect(set.map([[]], async () => 1, { maxAttempts: 0 })).rejects.toThrow('maxAttempts is 0');
  });
});

describe('ReplicaSet with DNS targets', () => {
  it('uses every address of the name, follows it as it changes, and closes replicas that vanish', async () => {
    const first = await startReplica('first', echo(), '127.0.0.1', 0);
    const port = Number(first.address.split(':')[1]);
    const [second, third] = await Promise.all([startReplica('second', echo(), '127.0.0.2', port), startReplica('third', echo(), '127.0.0.3', port)]);
    let records = ['127.0.0.2', '127.0.0.1', '127.0.0.2'];
    const asked: string[] = [];
    const set = replicaSet([`dns:///generators.test:${port}`], {
      resolveEveryMs: 60,
      lookup: async (host) => {
        asked.push(host);
        return records;
      },
    });
    expect(await set.addresses()).toEqual([first.address, second.address]);
    const results = await set.map(promptShards(6), (client, shard) => generate(client, shard));
    expect(results).toHaveLength(6);
    expect(first.calls.length).toBeGreaterThan(0);
    expect(second.calls.length).toBeGreaterThan(0);

    records = ['127.0.0.3', '127.0.0.2'];
    expect(await set.addresses()).toEqual([first.address, second.address]); // not stale yet
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await set.addresses()).toEqual([second.address, third.address]);
    expect(closed).toEqual([first.address]);
    expect(opened).toEqual([first.address, second.address, third.address]);
    const before = first.calls.length;
    await set.map(promptShards(4), (client, shard) => generate(client, shard));
    expect(first.calls.length).toBe(before);
    expect(third.calls.length).toBeGreaterThan(0);
    expect(asked.every((host) => host === 'generators.test')).toBe(true);
  });

  it('gives work to a replica that appears in the middle of a map, after preparing it', async () => {
    const early = await startReplica('early', echo(40), '127.0.0.1', 0);
    const port = Number(early.address.split(':')[1]);
    const late = await startReplica('late', echo(40), '127.0.0.2', port);
    const started = Date.now();
    const set = replicaSet([`dns:///generators.test:${port}`], {
      resolveEveryMs: 50,
      // The second pod becomes ready 100 ms into the stage.
      lookup: async () => (Date.now() - started < 100 ? ['127.0.0.1'] : ['127.0.0.1', '127.0.0.2']),
    });
    const events: string[] = [];
    const results = await set.map(
      promptShards(10),
      async (client, shard, info) => {
        events.push(`work ${info.address}`);
        return generate(client, shard);
      },
      { prepare: async (_client, address) => void events.push(`prepare ${address}`) },
    );
    expect(results.map((texts) => texts.length)).toEqual(Array(10).fill(2));
    expect(late.calls.length).toBeGreaterThan(0);
    expect(early.calls.length + late.calls.length).toBe(10);
    expect(events.filter((event) => event === `prepare ${late.address}`)).toHaveLength(1);
    expect(events.indexOf(`prepare ${late.address}`)).toBeLessThan(events.indexOf(`work ${late.address}`));
  });

  it('re-resolves when every known replica failed, and keeps known addresses through a failed lookup', async () => {
    const alive = await startReplica('alive', echo(), '127.0.0.1', 0);
    const port = Number(alive.address.split(':')[1]);
    let lookups = 0;
    let fail = false;
    const set = replicaSet([`dns:///generators.test:${port}`], {
      resolveEveryMs: 3_600_000,
      lookup: async () => {
        lookups += 1;
        if (fail) throw Object.assign(new Error('getaddrinfo EAI_AGAIN generators.test'), { code: 'EAI_AGAIN' });
        // The first answer names a pod that is gone (nothing listens on 127.0.0.4).
        return lookups === 1 ? ['127.0.0.4'] : ['127.0.0.1'];
      },
    });
    const results = await set.map(promptShards(3), (client, shard) => generate(client, shard));
    expect(results.flat().every((text) => text.endsWith('by alive'))).toBe(true);
    expect(lookups).toBe(2);
    expect(await set.addresses()).toEqual([alive.address]);

    // A lookup that fails keeps the last known replicas (here the replica died
    // too, so every attempt fails); a name that never resolved is NoReplicaError.
    fail = true;
    alive.server.forceShutdown();
    const error = (await set.map(promptShards(1), (client, shard) => generate(client, shard), { maxAttempts: 2 }).catch((e: unknown) => e)) as ShardError;
    expect(error).toMatchObject({ name: 'ShardError', transport: true, address: alive.address, attempt: 2 });
    expect(lookups).toBe(3);
    expect(await set.addresses()).toEqual([alive.address]);
    const never = replicaSet([`dns:///nowhere.test:${port}`], { lookup: async () => Promise.reject(new Error('getaddrinfo ENOTFOUND nowhere.test')) });
    await expect(never.addresses()).rejects.toThrow(NoReplicaError);
    await expect(never.addresses()).rejects.toThrow('dns:///nowhere.test:' + port + ': getaddrinfo ENOTFOUND nowhere.test');
  });
});

describe('ReplicaSet.broadcast', () => {
  it('resolves once every replica confirmed, and names the replicas that did not', async () => {
    const [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    const set = replicaSet([a.address, b.address]);
    const confirmed = await set.broadcast((client) => loadModel(client, 'm3'));
    expect(confirmed).toEqual(new Map([[a.address, 'm3'], [b.address, 'm3']]));
    expect([a.version, b.version]).toEqual(['m3', 'm3']);

    b.server.forceShutdown();
    const error = (await set.broadcast((client) => loadModel(client, 'm4')).catch((e: unknown) => e)) as BroadcastError;
    expect(error).toBeInstanceOf(BroadcastError);
    expect([...error.failures.keys()]).toEqual([b.address]);
    expect(error.message).toContain(`1 of 2 generator replicas did not confirm: ${b.address} (UNAVAILABLE`);
    expect(a.version).toBe('m4');

    const refused = (await set.broadcast((client) => loadModel(client, 'missing')).catch((e: unknown) => e)) as BroadcastError;
    expect(refused.message).toContain(`${a.address} (NOT_FOUND: model version "missing" is not in the registry)`);
  });

  it('does not wait for a replica that failed and is gone from DNS, and reaches the one that replaced it', async () => {
    const old = await startReplica('old', echo(), '127.0.0.1', 0);
    const port = Number(old.address.split(':')[1]);
    const replacement = await startReplica('replacement', echo(), '127.0.0.2', port);
    const kept = await startReplica('kept', echo(), '127.0.0.3', port);
    let records = ['127.0.0.1', '127.0.0.3'];
    const set = replicaSet([`dns:///generators.test:${port}`], { lookup: async () => records });
    await set.addresses();
    old.server.forceShutdown();
    records = ['127.0.0.2', '127.0.0.3'];
    const confirmed = await set.broadcast((client) => loadModel(client, 'm5'));
    expect([...confirmed.keys()]).toEqual([kept.address, replacement.address]);
    expect([replacement.version, kept.version]).toEqual(['m5', 'm5']);
  });
});

describe('isTransportFailure', () => {
  it('tells a connection problem from the service answering', () => {
    const failure = (code: status, details: string) => ({ code, details });
    expect(isTransportFailure(failure(status.UNAVAILABLE, 'Connection dropped'))).toBe(true);
    expect(isTransportFailure(failure(status.DEADLINE_EXCEEDED, 'Deadline exceeded'))).toBe(true);
    expect(isTransportFailure(failure(status.CANCELLED, 'Call cancelled'))).toBe(true);
    expect(isTransportFailure(failure(status.CANCELLED, 'Cancelled on client'))).toBe(false);
    expect(isTransportFailure(failure(status.INTERNAL, 'Received RST_STREAM with code 2 (Internal server error)'))).toBe(true);
    expect(isTransportFailure(failure(status.INTERNAL, 'tensor shape mismatch'))).toBe(false);
    expect(isTransportFailure(failure(status.UNKNOWN, 'No status information received'))).toBe(true);
    expect(isTransportFailure(failure(status.UNKNOWN, 'handler threw: TypeError'))).toBe(false);
    for (const code of [status.INVALID_ARGUMENT, status.FAILED_PRECONDITION, status.NOT_FOUND, status.RESOURCE_EXHAUSTED]) {
      expect(isTransportFailure(failure(code, 'refused'))).toBe(false);
    }
    expect(isTransportFailure(new Error('not gRPC'))).toBe(false);
  });
});
