// The coordinator as a user meets it: `cream serve coordinator` as a real
// process with the generator, judge, consistency scorer and trainer as real
// processes over loopback, a temporary registry holding a random tiny M0, and
// small data files of the user's own (8 SFT examples, 2 iterations x 4
// prompts, N = 3, a 6-item ARC set). Called by clients built from the .proto
// files only:
// (a) a whole CREAM run succeeds, every stage is committed in the run store,
//     WatchRun streams every stage's start and end and ends with
//     run_finished, GetRun has a result per model, and the run folder holds
//     results.json, report.html and this run's trace;
// (b) the coordinator is SIGKILLed during iter-1/sample, restarted (it
//     resumes the run by itself), SIGKILLed again during iter-1/train and
//     restarted: the run ends SUCCEEDED with results equal to the
//     uninterrupted run of (a) (accuracies, every stage metric, the sha256 of
//     every published model's weights, the samples), and every stage finished
//     before a kill was RESTORED, never recomputed;
// (c) bad specs (unknown method, zero iterations, a missing data file, an
//     eval set in the wrong format, an unreachable endpoint) fail with
//     INVALID_ARGUMENT naming the problem, and create no run;
// (d) CancelRun ends a run CANCELLED with its finished stages kept, ResumeRun
//     continues it; SIGTERM stops it INTERRUPTED with a clean exit and the next
//     coordinator resumes it to the end, restoring what was done; ResumeRun and
//     CancelRun refuse what the contract refuses, and ListRuns pages the runs
//     newest first.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ModelRegistry } from '@cream/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startModelServices, startService, type ServiceProcess } from '../support/processes';
import { creamProto, serviceClient, unary } from '../support/proto-client';
import { runModelConfig, writeRunData, type RunDataFiles } from '../support/run-data';
import { publishTinyVersions } from '../support/tiny-models';

interface StageView {
  name: string;
  iteration: number;
  state: string;
  metrics: Record<string, number>;
  error: string;
}
interface ResultView {
  model: string;
  version: string;
  accuracy: { task: string; accuracy: number; num_items: number }[];
  mean_accuracy: number;
  consistency_rate?: number | null;
  reward_margin?: number | null;
  pairs_used: number;
}
interface RunView {
  run_id: string;
  state: string;
  stages: StageView[];
  results: ResultView[];
  run_dir: string;
  error: string;
}
interface WatchMessage {
  event: 'stage_started' | 'stage_finished' | 'progress' | 'result' | 'run_finished';
  stage_started?: StageView;
  stage_finished?: StageView;
  result?: ResultView;
  run_finished?: RunView;
}
interface StoredEvent {
  type: string;
  payload: { name?: string; state?: string; stage?: string; done?: number; total?: number; attempt?: number } | null;
}

const proto = creamProto();
const Coordinator = serviceClient(proto, 'cream.v1.CoordinatorService');

let home: string;
let registryDir: string;
let runsDir: string;
let dataDir: string;
let files: RunDataFiles;
let coordinatorArgs: string[];
let coordinator: ServiceProcess;
let client: grpc.Client;
let uninterrupted: RunView | undefined;

function baseSpec(): Record<string, unknown> {
  return {
    name: 'e2e',
    base_version: 'm0',
    method: 'METHOD_CREAM',
    rate: 'CONSISTENCY_RATE_DYN',
    iterations: 2,
    num_samples: 3,
    data: {
      sft_path: files.sft,
      prompts_path: files.prompts,
      eval_sets: [{ name: 'colors', path: files.arc, format: 'EVAL_FORMAT_ARC' }],
    },
    sampling: { temperature: 1, top_p: 1, max_new_tokens: 40 },
    sft: { learning_rate: 0.01, epochs: 2, batch_size: 4, warmup_ratio: 0 },
    dpo: { learning_rate: 0.001, epochs: 12, batch_size: 1, warmup_ratio: 0 },
    seed: 3,
    evaluate: true,
  };
}

async function startCoordinator(): Promise<void> {
  coordinator = await startService('coordinator', coordinatorArgs, { CREAM_HOME: home });
  await coordinator.waitForLine((line) => line.msg === 'serving', 60_000);
  client?.close();
  client = new Coordinator(coordinator.address, grpc.credentials.createInsecure());
}

function events(runId: string): StoredEvent[] {
  const path = join(runsDir, runId, 'events.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as StoredEvent];
      } catch {
        return [];
      }
    });
}

/** Polls the run's events until `predicate` holds for them. */
async function waitForEvents(runId: string, predicate: (all: StoredEvent[]) => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(events(runId))) {
    if (Date.now() > deadline) throw new Error(`timed out; events so far:\n${events(runId).map((e) => JSON.stringify(e)).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}

/** WatchRun until the stream ends. */
function watch(runId: string): Promise<WatchMessage[]> {
  return new Promise((resolve, reject) => {
    const messages: WatchMessage[] = [];
    const call = (client as unknown as { WatchRun(request: unknown): grpc.ClientReadableStream<WatchMessage> }).WatchRun({ run_id: runId });
    call.on('data', (message: WatchMessage) => messages.push(message));
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

async function startRun(spec: Record<string, unknown>): Promise<RunView> {
  return (await unary<{ run: RunView }>(client, 'StartRun', { spec }, 60_000)).run;
}

async function getRun(runId: string): Promise<RunView> {
  return (await unary<{ run: RunView }>(client, 'GetRun', { run_id: runId })).run;
}

function storedStages(runId: string): string[] {
  return readdirSync(join(runsDir, runId, 'stages'))
    .filter((name) => !name.startsWith('.'))
    .map((name) => name.replace(/\+/g, '/'))
    .sort();
}

interface ReportRun {
  state: string;
  stages: { name: string; state: string; metrics: Record<string, number> }[];
  results: { model: string; version: string; accuracy: unknown[]; meanAccuracy: number; consistencyRate?: number; rewardMargin?: number; pairsUsed: number }[];
}

function results(run: RunView): ReportRun {
  return JSON.parse(readFileSync(join(run.run_dir, 'results.json'), 'utf8')) as ReportRun;
}

/** What must be equal between two runs of one spec: everything but names, times and run ids. */
async function comparable(run: RunView) {
  const report = results(run);
  const registry = await ModelRegistry.open(registryDir);
  const weights: Record<string, string> = {};
  for (const result of report.results) {
    const manifest = await registry.get(result.version);
    weights[result.model] = manifest.files.find((file) => file.path === 'model.safetensors')!.sha256;
  }
  const samples = (t: number) => readFileSync(join(run.run_dir, 'stages', `iter-${t}+sample`, 'items.jsonl'), 'utf8');
  return {
    state: report.state,
    metrics: Object.fromEntries(report.stages.map((stage) => [stage.name, stage.metrics])),
    results: report.results.map(({ version: _version, ...rest }) => rest),
    weights,
    samples: [samples(1), samples(2)],
  };
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'cream-coordinator-home-'));
  registryDir = join(home, 'registry');
  runsDir = join(home, 'runs');
  dataDir = mkdtempSync(join(tmpdir(), 'cream-coordinator-data-'));
  files = writeRunData(dataDir);
  await publishTinyVersions(registryDir, [{ version: 'm0', seed: 17 }], runModelConfig);
  const env = { CREAM_HOME: home };
  const [generator, judge, scorer, trainer] = await startModelServices(registryDir, home, env);
  coordinatorArgs = [
    '--registry',
    registryDir,
    '--runs',
    runsDir,
    '--generators',
    generator.address,
    '--judges',
    judge.address,
    '--consistency-scorer',
    scorer.address,
    '--trainer',
    trainer.address,
  ];
  await startCoordinator();
}, 180_000);

afterAll(async () => {
  client?.close();
  await killAll();
  for (const dir of [home, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const isStarted = (all: StoredEvent[], name: string) => all.some((e) => e.type === 'stage_started' && e.payload?.name === name);
const isFinished = (all: StoredEvent[], name: string) => all.some((e) => e.type === 'stage_finished' && e.payload?.name === name);

describe('cream serve coordinator', () => {
  it('rejects bad specs with INVALID_ARGUMENT naming the problem, before any run exists', async () => {
    const cases: { change: (spec: Record<string, unknown>) => void; message: RegExp }[] = [
      { change: (spec) => (spec.method = 42), message: /spec\.method: 42 is not a method/ },
      { change: (spec) => (spec.method = 'METHOD_UNSPECIFIED'), message: /spec\.method: not set/ },
      { change: (spec) => (spec.iterations = 0), message: /spec\.iterations: 0 iterations; 1 to 100/ },
      { change: (spec) => ((spec.data as Record<string, unknown>).sft_path = join(dataDir, 'absent.jsonl')), message: /spec\.data\.sft_path: .*absent\.jsonl: no such file/ },
      {
        change: (spec) => ((spec.data as Record<string, unknown>).eval_sets = [{ name: 'sums', path: files.gsm8k, format: 'EVAL_FORMAT_ARC' }]),
        message: /spec\.data\.eval_sets\[0\]: .*sums-gsm8k\.jsonl:1 .*looks like GSM8K/,
      },
      { change: (spec) => (spec.base_version = 'no-such-version'), message: /spec\.base_version: version "no-such-version" is not in the registry/ },
      { change: (spec) => (spec.endpoints = { trainer: '127.0.0.1:1' }), message: /spec\.endpoints\.trainer: 127\.0\.0\.1:1 is unreachable/ },
    ];
    for (const { change, message } of cases) {
      const spec = baseSpec();
      change(spec);
      const error = await startRun(spec).then(
        () => null,
        (failure: grpc.ServiceError) => failure,
      );
      expect(error?.code, String(message)).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(message);
    }
    const listed = await unary<{ runs: RunView[] }>(client, 'ListRuns', {});
    expect(listed.runs).toEqual([]);
    expect(readdirSync(runsDir).filter((name) => !name.startsWith('.'))).toEqual([]);
  });

  it('runs CREAM end to end: every stage stored, WatchRun streams it, GetRun has the results, the run folder has the report and trace', async () => {
    const started = await startRun(baseSpec());
    expect(started.state).toBe('RUN_STATE_RUNNING');
    const messages = await watch(started.run_id);
    const last = messages[messages.length - 1];
    expect(last.event).toBe('run_finished');
    expect(last.run_finished?.state, last.run_finished?.error).toBe('RUN_STATE_SUCCEEDED');

    const run = await getRun(started.run_id);
    const names = run.stages.map((stage) => stage.name);
    expect(names).toEqual([
      'data',
      'eval/m0',
      'sft',
      'eval/m1',
      'iter-1/sample',
      'iter-1/logprobs/m1',
      'iter-1/logprobs/m0',
      'iter-1/consistency',
      'iter-1/train',
      'eval/m2',
      'iter-2/sample',
      'iter-2/logprobs/m2',
      'iter-2/logprobs/m1',
      'iter-2/logprobs/m0',
      'iter-2/consistency',
      'iter-2/train',
      'eval/m3',
    ]);
    expect(run.stages.every((stage) => stage.state === 'STAGE_STATE_DONE')).toBe(true);
    expect(storedStages(run.run_id)).toEqual([...names].sort());
    const started_ = messages.filter((m) => m.event === 'stage_started').map((m) => m.stage_started!.name);
    const finished = messages.filter((m) => m.event === 'stage_finished').map((m) => m.stage_finished!.name);
    expect(started_).toEqual(names);
    expect(finished).toEqual(names);

    const metrics = Object.fromEntries(run.stages.map((stage) => [stage.name, stage.metrics]));
    expect(metrics['iter-1/sample']).toMatchObject({ completions: 12 });
    expect(metrics['iter-2/logprobs/m0'].items).toBeLessThanOrEqual(12);
    expect(metrics['iter-1/consistency'].prompts).toBe(4);
    expect(metrics['iter-1/consistency'].consistency_rate).toBeGreaterThanOrEqual(0);
    expect(metrics['iter-1/consistency'].consistency_rate).toBeLessThanOrEqual(1);
    expect(metrics['iter-1/train'].steps).toBeGreaterThan(0);
    expect(metrics['eval/m3'].items).toBe(6);

    expect(run.results.map((result) => result.model)).toEqual(['M0', 'M1', 'M2', 'M3']);
    expect(run.results[0].version).toBe('m0');
    expect(run.results[1].version).toBe(`${run.run_id}-m1`);
    expect(run.results[3].version).toBe(`${run.run_id}-m3`);
    expect(run.results[0].consistency_rate ?? null).toBeNull();
    expect(run.results[2].consistency_rate).toBe(metrics['iter-1/consistency'].consistency_rate);
    expect(run.results[2].pairs_used).toBe(metrics['iter-1/train'].pairs);
    for (const result of run.results) expect(result.accuracy).toEqual([{ task: 'colors', accuracy: expect.any(Number), num_items: 6 }]);

    // The published versions descend from one another.
    const registry = await ModelRegistry.open(registryDir);
    expect((await registry.get(`${run.run_id}-m2`)).parent).toBe(`${run.run_id}-m1`);
    expect((await registry.get(`${run.run_id}-m3`)).recipe).toMatchObject({ runId: run.run_id, stage: 'iter-2/train', method: 'cream' });

    const report = results(run);
    expect(report.state).toBe('SUCCEEDED');
    expect(report.results).toHaveLength(4);
    expect(readFileSync(join(run.run_dir, 'report.html'), 'utf8')).toContain('<svg');
    const spans = readFileSync(join(run.run_dir, 'trace.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { name: string; attributes: Record<string, unknown> });
    expect(spans.find((span) => span.name === 'stage iter-1/train')?.attributes).toMatchObject({ 'cream.run_id': run.run_id, 'cream.stage': 'iter-1/train', 'cream.iteration': 1 });
    expect(spans.some((span) => span.name === 'shard generator')).toBe(true);
    uninterrupted = run;
  });

  it('resumes after SIGKILL during iter-1/sample and during iter-1/train with the results of the uninterrupted run', async () => {
    expect(uninterrupted, 'needs the uninterrupted run').toBeDefined();
    const run = await startRun(baseSpec());
    const id = run.run_id;

    // Kill 1: iter-1/sample has started and not finished.
    await waitForEvents(id, (all) => isStarted(all, 'iter-1/sample'));
    coordinator.child.kill('SIGKILL');
    await coordinator.exited;
    const first = events(id);
    expect(isFinished(first, 'iter-1/sample')).toBe(false);
    const doneBeforeFirstKill = first.filter((e) => e.type === 'stage_finished' && e.payload?.state === 'STAGE_STATE_DONE').map((e) => e.payload!.name!);
    expect(doneBeforeFirstKill).toEqual(['data', 'eval/m0', 'sft', 'eval/m1']);

    // The restarted coordinator finds the run RUNNING, marks it INTERRUPTED and resumes it.
    await startCoordinator();
    await waitForEvents(id, (all) => all.filter((e) => e.type === 'attempt_started').length === 2);
    // Kill 2: iter-1/train is past its first optimizer step and far from its last.
    await waitForEvents(id, (all) => all.some((e) => e.type === 'progress' && e.payload?.stage === 'iter-1/train' && (e.payload.done ?? 0) >= 1 && (e.payload.done ?? 0) < (e.payload.total ?? 0) / 2));
    coordinator.child.kill('SIGKILL');
    await coordinator.exited;
    expect(isFinished(events(id), 'iter-1/train')).toBe(false);

    await startCoordinator();
    await waitForEvents(id, (all) => all.filter((e) => e.type === 'attempt_started').length === 3);
    const messages = await watch(id);
    const final = messages[messages.length - 1];
    expect(final.run_finished?.state, final.run_finished?.error).toBe('RUN_STATE_SUCCEEDED');

    // Each attempt restored what earlier attempts finished and recomputed nothing of it.
    const all = events(id);
    const attemptStarts = all.map((e, i) => (e.type === 'attempt_started' ? i : -1)).filter((i) => i >= 0);
    expect(attemptStarts).toHaveLength(3);
    for (let a = 1; a < 3; a++) {
      const before = all.slice(0, attemptStarts[a]).filter((e) => e.type === 'stage_finished' && e.payload?.state === 'STAGE_STATE_DONE').map((e) => e.payload!.name!);
      const during = all.slice(attemptStarts[a], attemptStarts[a + 1] ?? all.length);
      const restored = during.filter((e) => e.type === 'stage_finished' && e.payload?.state === 'STAGE_STATE_RESTORED').map((e) => e.payload!.name!);
      const recomputed = during.filter((e) => e.type === 'stage_started').map((e) => e.payload!.name!);
      expect(restored).toEqual(before);
      expect(recomputed.filter((name) => before.includes(name))).toEqual([]);
    }
    // The second attempt redid iter-1/sample from scratch; the third redid iter-1/train.
    expect(all.slice(attemptStarts[1], attemptStarts[2]).some((e) => e.type === 'stage_started' && e.payload?.name === 'iter-1/sample')).toBe(true);
    expect(all.slice(attemptStarts[2]).some((e) => e.type === 'stage_started' && e.payload?.name === 'iter-1/train')).toBe(true);

    const resumed = await getRun(id);
    expect(resumed.stages.filter((stage) => stage.state === 'STAGE_STATE_RESTORED').map((stage) => stage.name)).toContain('iter-1/sample');
    expect(await comparable(resumed)).toEqual(await comparable(uninterrupted!));
  });

  it('CancelRun keeps the finished stages, ResumeRun and a restart after SIGTERM finish the run restoring them, ListRuns pages newest first', async () => {
    const run = await startRun({ ...baseSpec(), name: 'cancelled then resumed', iterations: 1 });
    const id = run.run_id;
    await waitForEvents(id, (all) => isStarted(all, 'sft'));
    const cancelled = (await unary<{ run: RunView }>(client, 'CancelRun', { run_id: id }, 60_000)).run;
    expect(cancelled.state).toBe('RUN_STATE_CANCELLED');
    expect(cancelled.stages.slice(0, 3).map((stage) => [stage.name, stage.state])).toEqual([
      ['data', 'STAGE_STATE_DONE'],
      ['eval/m0', 'STAGE_STATE_DONE'],
      ['sft', 'STAGE_STATE_FAILED'],
    ]);
    expect(storedStages(id)).toEqual(['data', 'eval/m0']);
    expect(results(cancelled).state).toBe('CANCELLED');
    // Cancelling a cancelled run changes nothing.
    expect((await unary<{ run: RunView }>(client, 'CancelRun', { run_id: id })).run.state).toBe('RUN_STATE_CANCELLED');

    const resumed = (await unary<{ run: RunView }>(client, 'ResumeRun', { run_id: id })).run;
    expect(resumed.state).toBe('RUN_STATE_RUNNING');
    // SIGTERM mid-run: the attempt stops INTERRUPTED, writes its outputs, and the process exits cleanly.
    const stopped = watch(id);
    await waitForEvents(id, (all) => isStarted(all, 'iter-1/sample'));
    coordinator.child.kill('SIGTERM');
    expect(await coordinator.exited).toBe(0);
    expect((await stopped).at(-1)?.run_finished?.state).toBe('RUN_STATE_INTERRUPTED');
    expect(results(resumed).state).toBe('INTERRUPTED');
    // The next coordinator resumes the interrupted run by itself.
    await startCoordinator();
    const messages = await watch(id);
    const final = messages[messages.length - 1].run_finished!;
    expect(final.state, final.error).toBe('RUN_STATE_SUCCEEDED');
    expect(final.stages.slice(0, 5).map((stage) => stage.state)).toEqual([...Array(4).fill('STAGE_STATE_RESTORED'), 'STAGE_STATE_DONE']);
    expect(final.results.map((result) => result.model)).toEqual(['M0', 'M1', 'M2']);

    const refused = async (method: string, runId: string) =>
      unary(client, method, { run_id: runId }).then(
        () => null,
        (error: grpc.ServiceError) => error.code,
      );
    expect(await refused('ResumeRun', id)).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await refused('CancelRun', id)).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await refused('GetRun', 'run-none')).toBe(grpc.status.NOT_FOUND);

    const first = await unary<{ runs: RunView[]; next_page_token: string }>(client, 'ListRuns', { page_size: 2 });
    expect(first.runs.map((r) => r.run_id)).toEqual([id, first.runs[1].run_id]);
    expect(first.runs[0].stages).toEqual([]);
    const second = await unary<{ runs: RunView[]; next_page_token: string }>(client, 'ListRuns', { page_size: 2, page_token: first.next_page_token });
    expect(second.runs.map((r) => r.run_id)).toEqual([uninterrupted!.run_id]);
    expect(second.next_page_token).toBe('');
  });
});
