// judgeWithinContext against a real grpc-js JudgeService on loopback whose
// refusals go through service-kit's toStatus, as the judge's do: an item whose
// rubric prompt does not fit the context is left out (named by the cream-field
// trailer) and the rest judged; any other refusal is thrown.
import { Server, ServerCredentials, credentials, status, type ServerWritableStream } from '@grpc/grpc-js';
import { JudgeServiceClient, JudgeServiceService, JudgeWithRubricResponse, type JudgeWithRubricRequest } from '@cream/proto';
import { InvalidArgumentError, toStatus } from '@cream/service-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contextOverflowIndex, judgeWithinContext } from './rpc';

// The test judge's "context": a response longer than this many characters does not fit.
const MAX_RESPONSE_CHARS = 10;
let server: Server;
let client: JudgeServiceClient;
const calls: string[][] = [];

beforeAll(async () => {
  server = new Server();
  server.addService(JudgeServiceService, {
    judgeWithRubric: (call: ServerWritableStream<JudgeWithRubricRequest, JudgeWithRubricResponse>) => {
      const items = call.request.items;
      calls.push(items.map((item) => item.id));
      const refused = (error: Error) => call.emit('error', toStatus(error));
      const bad = items.findIndex((item) => item.id === 'refused');
      if (bad >= 0) return refused(new InvalidArgumentError(`items[${bad}].id: not allowed`, `items[${bad}].id`));
      const long = items.findIndex((item) => (item.item?.response ?? '').length > MAX_RESPONSE_CHARS);
      if (long >= 0) return refused(new InvalidArgumentError(`items[${long}].item: the compact rubric prompt has 300 tokens; the model's context length is 256`, `items[${long}].item`));
      for (const item of items) call.write(JudgeWithRubricResponse.fromPartial({ id: item.id, meanScore: item.item!.response.length / 2, numParsed: 1 }));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  client = new JudgeServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
});

const request = (responses: Record<string, string>) => ({
  modelVersion: 'v1',
  items: Object.entries(responses).map(([id, response]) => ({ id, item: { prompt: undefined, response } })),
  numJudgments: 1,
  sampling: undefined,
  style: 0,
});

describe('judgeWithinContext', () => {
  it('leaves out every item that does not fit and judges the others, in order', async () => {
    calls.length = 0;
    const { judged, tooLong } = await judgeWithinContext(client, request({ a: 'short', b: 'much too long', c: 'ok', d: 'also too long!', e: 'fine' }), new AbortController().signal);
    expect(tooLong).toEqual(['b', 'd']);
    expect(judged.map((r) => [r.id, r.meanScore])).toEqual([['a', 2.5], ['c', 1], ['e', 2]]);
    // One call per refusal, each without the refused item.
    expect(calls).toEqual([['a', 'b', 'c', 'd', 'e'], ['a', 'c', 'd', 'e'], ['a', 'c', 'e']]);
  });

  it('returns nothing judged when no item fits', async () => {
    const { judged, tooLong } = await judgeWithinContext(client, request({ x: 'far too long here', y: 'also far too long' }), new AbortController().signal);
    expect(judged).toEqual([]);
    expect(tooLong).toEqual(['x', 'y']);
  });

  it('throws any other refusal as it is', async () => {
    const error = await judgeWithinContext(client, request({ a: 'short', refused: 'x' }), new AbortController().signal).catch((e: unknown) => e);
    expect((error as { code: number }).code).toBe(status.INVALID_ARGUMENT);
    expect(contextOverflowIndex(error)).toBeUndefined();
    expect(String((error as Error).message)).toMatch(/items\[1\]\.id: not allowed/);
  });
});
