// The consistency scorer as a user meets it: `cream serve consistency-scorer`
// as a real process, called by clients built from the .proto files only.
// Its consistencies agree with scipy (fixture made by
// test/fixtures/make-consistency-scipy.py), bad input is INVALID_ARGUMENT
// naming the field while the service keeps serving, and SIGTERM lets a call
// in flight finish before the process exits.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startService, type ServiceProcess } from '../support/processes';
import { creamProto, reflectionProto, serviceClient, unary } from '../support/proto-client';

interface ScipyCase {
  current: number[];
  previous: number[];
  kendall_ordinal: number | null;
  kendall_average: number | null;
  spearman_ordinal: number | null;
  spearman_average: number | null;
  toporder_ordinal: number | null;
  toporder_average: number | null;
}

const fixture = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'consistency-scipy.json'), 'utf8')) as
  | ScipyCase[]
  | { cases: ScipyCase[] };
const cases: ScipyCase[] = Array.isArray(fixture) ? fixture : fixture.cases;

interface PromptConsistency {
  prompt_id: string;
  statistic: number;
  consistency: number;
}
interface CompareResponse {
  prompts: PromptConsistency[];
  rate: { mean: number; min: number; max: number; std: number; count: number };
  pairs: Array<{ prompt_id: string; chosen_index: number; rejected_index: number; weight: number; weight_is_own: boolean }>;
  left_out: Array<{ prompt_id: string; reason: string; detail: string }>;
  no_pair_prompt_ids: string[];
}

let scorer: ServiceProcess;
let client: grpc.Client;

beforeAll(async () => {
  scorer = await startService('consistency-scorer');
  const Scorer = serviceClient(creamProto(), 'cream.v1.ConsistencyScorerService');
  client = new Scorer(scorer.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await killAll();
});

function scoreSet(side: 'current' | 'previous', extra: Array<{ prompt_id: string; scores: number[]; missing_indices?: number[] }> = []) {
  return [...cases.map((c, i) => ({ prompt_id: `case-${i}`, scores: c[side], missing_indices: [] as number[] })), ...extra];
}

describe('cream serve consistency-scorer', () => {
  it('answers health SERVING and lists the cream.v1 services through reflection', async () => {
    const Health = serviceClient(creamProto(), 'grpc.health.v1.Health');
    const health = new Health(scorer.address, grpc.credentials.createInsecure());
    expect(await unary(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    expect(await unary(health, 'Check', { service: 'cream.v1.ConsistencyScorerService' })).toEqual({ status: 'SERVING' });
    health.close();

    const Reflection = serviceClient(reflectionProto(), 'grpc.reflection.v1.ServerReflection');
    const reflection = new Reflection(scorer.address, grpc.credentials.createInsecure());
    const stream = (reflection as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, unknown> }).ServerReflectionInfo();
    const reply = new Promise<{ list_services_response: { service: Array<{ name: string }> } }>((resolve, reject) => {
      stream.on('data', (m) => resolve(m as never));
      stream.on('error', reject);
    });
    stream.write({ list_services: '' });
    const names = (await reply).list_services_response.service.map((s) => s.name);
    stream.end();
    reflection.close();
    expect(names).toEqual(
      expect.arrayContaining([
        'cream.v1.ConsistencyScorerService',
        'cream.v1.GeneratorService',
        'cream.v1.JudgeService',
        'cream.v1.TrainerService',
        'cream.v1.CoordinatorService',
        'grpc.health.v1.Health',
      ]),
    );
  });

  const variants = [
    { method: 'CONSISTENCY_METHOD_KENDALL', ranking: 'RANKING_MODE_ORDINAL', key: 'kendall_ordinal' },
    { method: 'CONSISTENCY_METHOD_KENDALL', ranking: 'RANKING_MODE_AVERAGE', key: 'kendall_average' },
    { method: 'CONSISTENCY_METHOD_SPEARMAN', ranking: 'RANKING_MODE_ORDINAL', key: 'spearman_ordinal' },
    { method: 'CONSISTENCY_METHOD_SPEARMAN', ranking: 'RANKING_MODE_AVERAGE', key: 'spearman_average' },
    { method: 'CONSISTENCY_METHOD_TOPORDER', ranking: 'RANKING_MODE_ORDINAL', key: 'toporder_ordinal' },
    { method: 'CONSISTENCY_METHOD_TOPORDER', ranking: 'RANKING_MODE_AVERAGE', key: 'toporder_average' },
  ] as const;

  it.each(variants)('agrees with scipy to 1e-12: $method, $ranking', async ({ method, ranking, key }) => {
    // Two extra prompts: one with a missing score, one absent from previous.
    const response = await unary<CompareResponse>(client, 'Compare', {
      current: scoreSet('current', [
        { prompt_id: 'has-missing', scores: [1, 2, 3], missing_indices: [1] },
        { prompt_id: 'only-current', scores: [3, 1, 2] },
      ]),
      previous: scoreSet('previous', [{ prompt_id: 'has-missing', scores: [1, 2, 3] }]),
      method,
      ranking,
      rate: 'CONSISTENCY_RATE_DYN',
      mismatch_policy: 'MISMATCH_POLICY_LEAVE_OUT',
    });
    const byId = new Map(response.prompts.map((p) => [p.prompt_id, p]));
    let checked = 0;
    cases.forEach((c, i) => {
      const expected = c[key];
      const got = byId.get(`case-${i}`);
      if (expected === null) {
        expect(got, `case-${i} should be left out (undefined statistic)`).toBeUndefined();
        return;
      }
      expect(got, `case-${i}`).toBeDefined();
      expect(Math.abs(got!.statistic - expected), `case-${i}: ${got!.statistic} vs scipy ${expected}`).toBeLessThanOrEqual(1e-12);
      const c01 = method === 'CONSISTENCY_METHOD_TOPORDER' ? expected : (expected + 1) / 2;
      expect(Math.abs(got!.consistency - c01)).toBeLessThanOrEqual(1e-12);
      checked++;
    });
    expect(checked).toBeGreaterThan(cases.length / 2);
    const leftOut = new Map(response.left_out.map((l) => [l.prompt_id, l.reason]));
    expect(leftOut.get('has-missing')).toBe('LEFT_OUT_REASON_MISSING_SCORE');
    expect(leftOut.get('only-current')).toBe('LEFT_OUT_REASON_MISSING_PREVIOUS');
    // The rate summarizes exactly the values returned.
    const values = response.prompts.map((p) => p.consistency);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(response.rate.count).toBe(values.length);
    expect(Math.abs(response.rate.mean - mean)).toBeLessThan(1e-12);
    // dyn: a pair carries its own prompt's c_i, or the mean where it has none.
    for (const pair of response.pairs) {
      const own = byId.get(pair.prompt_id);
      expect(pair.weight).toBeCloseTo(own ? own.consistency : response.rate.mean, 12);
      expect(pair.weight_is_own).toBe(own !== undefined);
    }
    // The prompt with a missing score still gets a pair from its present scores (chosen 2, rejected 0).
    expect(response.pairs.find((p) => p.prompt_id === 'has-missing')).toMatchObject({ chosen_index: 2, rejected_index: 0 });
  });

  const valid = { prompt_id: 'p', scores: [1, 2, 3] };
  const badInputs: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an empty score list', { current: [{ prompt_id: 'p', scores: [] }], previous: [valid] }, /current\[0\]\.scores/],
    ['lists of different lengths', { current: [valid], previous: [{ prompt_id: 'p', scores: [1, 2] }] }, /previous\[0\]\.scores|current\[0\]/],
    ['a NaN score', { current: [{ prompt_id: 'p', scores: [1, NaN, 3] }], previous: [valid] }, /current\[0\]\.scores\[1\]/],
    ['an infinite score', { current: [valid], previous: [{ prompt_id: 'p', scores: [1, Infinity, 3] }] }, /previous\[0\]\.scores\[1\]/],
    ['a duplicate prompt id', { current: [valid, valid], previous: [valid] }, /current\[1\]\.prompt_id/],
    ['an unknown method', { current: [valid], previous: [valid], method: 42 }, /method/],
    ['an empty current set', { current: [], previous: [valid] }, /current/],
    ['too many scores for one prompt', { current: [{ prompt_id: 'p', scores: Array.from({ length: 1025 }, (_, i) => i) }], previous: [valid] }, /current\[0\]\.scores.*1024/],
  ];

  it.each(badInputs)('rejects %s with INVALID_ARGUMENT naming the field, and keeps serving', async (_name, request, field) => {
    const error = (await unary(client, 'Compare', request).catch((e) => e)) as grpc.ServiceError;
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toMatch(field);
    const ok = await unary<CompareResponse>(client, 'Compare', { current: [valid], previous: [valid] });
    expect(ok.prompts[0]).toMatchObject({ prompt_id: 'p', statistic: 1, consistency: 1 });
  });

  it('rejects a request over the prompt-count limit with INVALID_ARGUMENT, and one over the message size limit with RESOURCE_EXHAUSTED', async () => {
    const many = Array.from({ length: 100_001 }, (_, i) => ({ prompt_id: `p${i}`, scores: [1, 2] }));
    const overCount = (await unary(client, 'Compare', { current: many, previous: many }).catch((e) => e)) as grpc.ServiceError;
    expect(overCount.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(overCount.details).toMatch(/current.*100000/);
    const huge = [{ prompt_id: 'x'.repeat(70 * 1024 * 1024), scores: [1, 2] }];
    const overSize = (await unary(client, 'Compare', { current: huge, previous: huge }).catch((e) => e)) as grpc.ServiceError;
    expect(overSize.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await unary<CompareResponse>(client, 'Compare', { current: [valid], previous: [valid] })).toMatchObject({ rate: { count: 1 } });
  });

  it('finishes a call in flight when SIGTERM arrives, then exits 0', async () => {
    const own = await startService('consistency-scorer');
    const Scorer = serviceClient(creamProto(), 'cream.v1.ConsistencyScorerService');
    const ownClient = new Scorer(own.address, grpc.credentials.createInsecure());
    // A large request (50k prompts x 12 scores): the server is still busy with it when the signal lands.
    const big = Array.from({ length: 50_000 }, (_, i) => ({ prompt_id: `p${i}`, scores: Array.from({ length: 12 }, (_, j) => Math.sin(i * 12 + j)) }));
    const call = unary<CompareResponse>(ownClient, 'Compare', { current: big, previous: big, method: 'CONSISTENCY_METHOD_SPEARMAN' }, 60_000);
    await own.waitForLine((l) => l.msg === 'call started' && String(l.method).endsWith('/Compare'));
    own.child.kill('SIGTERM');
    const response = await call;
    expect(response.prompts).toHaveLength(50_000);
    expect(response.rate.mean).toBeCloseTo(1, 12);
    expect(await own.exited).toBe(0);
    const shutdown = own.lines.find((l) => l.msg === 'shutting down');
    expect(shutdown).toBeDefined();
    expect(own.lines.findIndex((l) => l.msg === 'signal received')).toBeGreaterThan(own.lines.findIndex((l) => l.msg === 'call started'));
    ownClient.close();
    // The call's server span was exported before the process exited.
    const spans = readFileSync(own.traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(spans).toContainEqual(
      expect.objectContaining({
        name: 'grpc.cream.v1.ConsistencyScorerService/Compare',
        kind: 'SERVER',
        service: 'cream-consistency-scorer',
        attributes: expect.objectContaining({ 'rpc.grpc.status_code': 0 }),
      }),
    );
  });
});
