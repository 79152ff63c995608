// The server over real loopback gRPC: health transitions, reflection-free
// typed handlers, error mapping with the field in metadata, cancellation, and
// graceful drain of a call in flight.
import { afterEach, describe, expect, it } from 'vitest';
import { credentials, Metadata, status, type ServiceError as GrpcError } from '@grpc/grpc-js';
import {
  ConsistencyScorerServiceClient,
  ConsistencyScorerServiceService,
  GeneratorServiceClient,
  GeneratorServiceService,
  HealthClient,
  ServingStatus,
  type CompareResponse,
  type GenerateResponse,
} from '@cream/proto';
import { GrpcService } from './server';
import { InvalidArgumentError, mapErrorClass } from './errors';
import { createLogger } from './logger';

class LibraryError extends Error {
  readonly field = 'current[0].scores';
}

const emptyResponse: CompareResponse = {
  prompts: [],
  rate: undefined,
  pairs: [],
  leftOut: [],
  noPairPromptIds: [],
  method: 0,
  ranking: 0,
  rateMode: 0,
};

const services: GrpcService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.shutdown(100)));
});

function makeService(compare: (delayMs: number) => Promise<CompareResponse>) {
  const logs: string[] = [];
  const service = new GrpcService({
    name: 'test',
    logger: createLogger({ sink: (line) => logs.push(line) }),
    errorMappings: [mapErrorClass(LibraryError, status.INVALID_ARGUMENT)],
  });
  service.add('cream.v1.ConsistencyScorerService', ConsistencyScorerServiceService, {
    compare: async (request) => {
      const first = request.current[0]?.promptId;
      if (first === 'bad') throw new InvalidArgumentError('current[0].prompt_id is "bad"', 'current[0].prompt_id');
      if (first === 'library') throw new LibraryError('current[0].scores is empty');
      if (first === 'boom') throw new Error('unexpected');
      return compare(Number(request.current[0]?.scores[0] ?? 0));
    },
  });
  services.push(service);
  return { service, logs };
}

function call(client: InstanceType<typeof ConsistencyScorerServiceClient>, promptId: string, delayMs = 0) {
  return new Promise<CompareResponse>((resolve, reject) =>
    client.compare(
      { current: [{ promptId, scores: [delayMs], missingIndices: [] }], previous: [], method: 0, ranking: 0, rate: 0, mismatchPolicy: 0 },
      (error, response) => (error ? reject(error) : resolve(response)),
    ),
  );
}

function check(address: string, service: string) {
  const health = new HealthClient(address, credentials.createInsecure());
  return new Promise<ServingStatus>((resolve, reject) =>
    health.check({ service }, (error, response) => {
      health.close();
      if (error) reject(error);
      else resolve(response.status);
    }),
  );
}

describe('GrpcService', () => {
  it('is NOT_SERVING until told, then SERVING, and NOT_FOUND for unknown services', async () => {
    const { service } = makeService(async () => emptyResponse);
    const address = await service.listen('127.0.0.1', 0);
    expect(await check(address, '')).toBe(ServingStatus.NOT_SERVING);
    expect(await check(address, 'cream.v1.ConsistencyScorerService')).toBe(ServingStatus.NOT_SERVING);
    service.setServing(true);
    expect(await check(address, '')).toBe(ServingStatus.SERVING);
    expect(await check(address, 'cream.v1.ConsistencyScorerService')).toBe(ServingStatus.SERVING);
    await expect(check(address, 'cream.v1.Nope')).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('maps typed and registered errors to their status with the field in metadata, unknown ones to INTERNAL', async () => {
    const { service, logs } = makeService(async () => emptyResponse);
    const address = await service.listen('127.0.0.1', 0);
    const client = new ConsistencyScorerServiceClient(address, credentials.createInsecure());
    const bad = (await call(client, 'bad').catch((e) => e)) as GrpcError;
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toBe('current[0].prompt_id is "bad"');
    expect(bad.metadata.get('cream-field')).toEqual(['current[0].prompt_id']);
    const library = (await call(client, 'library').catch((e) => e)) as GrpcError;
    expect(library.code).toBe(status.INVALID_ARGUMENT);
    expect(library.metadata.get('cream-field')).toEqual(['current[0].scores']);
    const boom = (await call(client, 'boom').catch((e) => e)) as GrpcError;
    expect(boom.code).toBe(status.INTERNAL);
    expect(logs.some((l) => l.includes('"level":"error"') && l.includes('unexpected'))).toBe(true);
    // Still serving after errors.
    expect(await call(client, 'ok')).toMatchObject({ prompts: [] });
    client.close();
  });

  it('lets a call in flight finish during a graceful shutdown, and refuses new ones', async () => {
    const { service } = makeService((delay) => new Promise((resolve) => setTimeout(() => resolve(emptyResponse), delay)));
    const address = await service.listen('127.0.0.1', 0);
    service.setServing(true);
    const client = new ConsistencyScorerServiceClient(address, credentials.createInsecure());
    const slow = call(client, 'slow', 400);
    await new Promise((r) => setTimeout(r, 100));
    expect(service.inFlight.size).toBe(1);
    const stopped = service.shutdown(5000);
    await expect(slow).resolves.toMatchObject({ prompts: [] });
    await stopped;
    const late = new ConsistencyScorerServiceClient(address, credentials.createInsecure());
    await expect(
      new Promise((resolve, reject) =>
        late.compare(
          { current: [], previous: [], method: 0, ranking: 0, rate: 0, mismatchPolicy: 0 },
          new Metadata(),
          { deadline: Date.now() + 500 },
          (e, r) => (e ? reject(e) : resolve(r)),
        ),
      ),
    ).rejects.toMatchObject({ code: expect.any(Number) });
    client.close();
    late.close();
  });

  it('aborts a streaming handler when the caller cancels', async () => {
    const service = new GrpcService({ name: 'stream', logger: createLogger({ sink: () => {} }) });
    services.push(service);
    let aborted!: () => void;
    const abortSeen = new Promise<void>((resolve) => (aborted = resolve));
    let written = 0;
    service.add('cream.v1.GeneratorService', GeneratorServiceService, {
      generate: async (_request, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted());
        while (!ctx.signal.aborted) {
          await ctx.write({ completion: undefined }).catch(() => undefined);
          written++;
          await new Promise((r) => setTimeout(r, 5));
        }
      },
      loadModel: async () => ({ state: undefined }),
      getModel: async () => ({
        serving: undefined,
        loadingVersion: '',
        loadingSince: undefined,
        lastLoadError: '',
        drainingVersions: [],
        compute: undefined,
      }),
    });
    const address = await service.listen('127.0.0.1', 0);
    const client = new GeneratorServiceClient(address, credentials.createInsecure());
    const stream = client.generate({ prompts: [], numSamples: 1, sampling: undefined, modelVersion: '' });
    let received = 0;
    await new Promise<void>((resolve) =>
      stream.on('data', (_m: GenerateResponse) => {
        if (++received === 3) resolve();
      }),
    );
    stream.on('error', () => undefined);
    stream.cancel();
    await abortSeen;
    const writtenAtAbort = written;
    await new Promise((r) => setTimeout(r, 50));
    expect(written - writtenAtAbort).toBeLessThanOrEqual(1);
    client.close();
  });
});
