// Tests of the batch scheduler with a scripted model (no weights): concurrent
// calls merged under the sequence and token budget, batches split by model and
// sampling, round robin between calls, and cancellation that stops the work.
import type { TextGenerationOptions, TextGenerationRequest, TextGenerationResult } from '@cream/model';
import { describe, expect, it } from 'vitest';
import { BatchScheduler, type BatchModel, type BatchSampling, type Finished, type GenerationRun, type SequenceRequest } from './scheduler';

/** A model whose sequence `key` finishes after (length of its prompt text) steps, yielding to the event loop between steps. */
class ScriptedModel implements BatchModel {
  readonly batches: string[][] = [];
  aborted = 0;
  stepsRun = 0;
  failWith: Error | undefined;
  /** Called after each decoding step of each batch, e.g. to cancel a call mid-batch. */
  onStep: ((step: number) => void) | undefined;

  async generateText(requests: readonly TextGenerationRequest[], options: TextGenerationOptions): Promise<TextGenerationResult[]> {
    this.batches.push(requests.map((r) => r.key));
    if (this.failWith) throw this.failWith;
    const lengths = requests.map((r) => Math.min(options.maxNewTokens, 'text' in r.prompt ? r.prompt.text.length : 1));
    const results: TextGenerationResult[] = new Array(requests.length);
    for (let step = 1; step <= Math.max(...lengths); step++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (options.signal?.aborted) {
        this.aborted++;
        throw options.signal.reason;
      }
      this.stepsRun++;
      lengths.forEach((length, i) => {
        if (length !== step) return;
        results[i] = { text: `${requests[i].key}@${options.temperature}`, tokenIds: [step], finishReason: 'length', logprobSum: -step, numPromptTokens: 1 };
        options.onFinished?.(i, results[i]);
      });
      this.onStep?.(step);
    }
    return results;
  }
}

const sampling: BatchSampling = { temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 100, stop: [] };

function sequences(name: string, count: number, steps = 3, cost = 10): SequenceRequest<string>[] {
  return Array.from({ length: count }, (_, i) => ({ key: `${name}${i}`, prompt: { text: 'x'.repeat(steps) }, cost, tag: `${name}${i}` }));
}

async function collect(run: GenerationRun<string>): Promise<Finished<string>[]> {
  const out: Finished<string>[] = [];
  for await (const item of run) out.push(item);
  return out;
}

describe('BatchScheduler', () => {
  it('merges concurrent calls on one model and sampling into one batch, and both complete', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const a = scheduler.submit({ model, sampling, sequences: sequences('a', 3) });
    const b = scheduler.submit({ model, sampling, sequences: sequences('b', 2) });
    const [ra, rb] = await Promise.all([collect(a), collect(b)]);
    expect(ra.map((r) => r.tag).sort()).toEqual(['a0', 'a1', 'a2']);
    expect(rb.map((r) => r.tag).sort()).toEqual(['b0', 'b1']);
    expect(model.batches).toEqual([['a0', 'a1', 'a2', 'b0', 'b1']]);
    await Promise.all([a.settled, b.settled]);
  });

  it('streams each sequence as it finishes, before its batch ends', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const run = scheduler.submit({
      model,
      sampling,
      sequences: [
        { key: 'short', prompt: { text: 'x' }, cost: 1, tag: 'short' },
        { key: 'long', prompt: { text: 'x'.repeat(20) }, cost: 1, tag: 'long' },
      ],
    });
    const iterator = run[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.tag).toBe('short');
    expect(model.stepsRun).toBeLessThan(20);
    expect((await iterator.next()).value?.tag).toBe('long');
    expect((await iterator.next()).done).toBe(true);
  });

  it('keeps calls on different models or sampling parameters in different batches', async () => {
    const one = new ScriptedModel();
    const two = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const runs = [
      scheduler.submit({ model: one, sampling, sequences: sequences('a', 2) }),
      scheduler.submit({ model: two, sampling, sequences: sequences('b', 2) }),
      scheduler.submit({ model: one, sampling: { ...sampling, temperature: 0 }, sequences: sequences('c', 2) }),
      scheduler.submit({ model: one, sampling: { ...sampling, stop: ['\n'] }, sequences: sequences('d', 2) }),
      scheduler.submit({ model: one, sampling, sequences: sequences('e', 2) }),
    ];
    const results = await Promise.all(runs.map(collect));
    expect(results.map((r) => r.length)).toEqual([2, 2, 2, 2, 2]);
    expect(results[2][0].result.text).toMatch(/@0$/);
    expect(one.batches).toEqual([['a0', 'a1', 'e0', 'e1'], ['c0', 'c1'], ['d0', 'd1']]);
    expect(two.batches).toEqual([['b0', 'b1']]);
  });

  it('splits work under the sequence and token budgets, a too-large sequence running alone', async () => {
    const model = new ScriptedModel();
    const bySequences = new BatchScheduler({ maxBatchSequences: 4, maxBatchTokens: 10_000 });
    expect(await collect(bySequences.submit({ model, sampling, sequences: sequences('a', 10) }))).toHaveLength(10);
    expect(model.batches.map((b) => b.length)).toEqual([4, 4, 2]);

    model.batches.length = 0;
    const byTokens = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 25 });
    const mixed: SequenceRequest<string>[] = [
      ...sequences('s', 2, 2, 10),
      { key: 'huge', prompt: { text: 'xx' }, cost: 100, tag: 'huge' },
      ...sequences('t', 3, 2, 10),
    ];
    expect(await collect(byTokens.submit({ model, sampling, sequences: mixed }))).toHaveLength(6);
    expect(model.batches).toEqual([['s0', 's1'], ['huge'], ['t0', 't1'], ['t2']]);
  });

  it('takes turns between calls so a large call does not starve a small one', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 4, maxBatchTokens: 10_000 });
    const big = scheduler.submit({ model, sampling, sequences: sequences('a', 12) });
    const small = scheduler.submit({ model, sampling: { ...sampling, topK: 5 }, sequences: sequences('b', 2) });
    await Promise.all([collect(big), collect(small)]);
    expect(model.batches).toEqual([['a0', 'a1', 'a2', 'a3'], ['b0', 'b1'], ['a4', 'a5', 'a6', 'a7'], ['a8', 'a9', 'a10', 'a11']]);
  });

  it('stops a cancelled call: its running batch aborts and its queued sequences never run', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 2, maxBatchTokens: 10_000 });
    const controller = new AbortController();
    model.onStep = (step) => step === 3 && controller.abort(new Error('cancelled by the caller')); // mid first batch
    const run = scheduler.submit({ model, sampling, sequences: sequences('a', 8, 50), signal: controller.signal });
    await expect(collect(run)).rejects.toThrow('cancelled by the caller');
    await run.settled;
    expect(model.aborted).toBe(1);
    expect(model.batches).toEqual([['a0', 'a1']]);
    expect(model.stepsRun).toBe(3);
    // The scheduler goes on serving.
    expect(await collect(scheduler.submit({ model, sampling, sequences: sequences('b', 1) }))).toHaveLength(1);
  });

  it('lets a shared batch finish for the others when the cancelled call holds a minority of it', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const controller = new AbortController();
    model.onStep = (step) => step === 3 && controller.abort(new Error('gone'));
    const keep = scheduler.submit({ model, sampling, sequences: sequences('k', 3, 30) });
    const drop = scheduler.submit({ model, sampling, sequences: sequences('d', 1, 30), signal: controller.signal });
    await expect(collect(drop)).rejects.toThrow('gone');
    expect((await collect(keep)).map((r) => r.tag)).toEqual(['k0', 'k1', 'k2']);
    expect(model.aborted).toBe(0);
    expect(model.batches).toHaveLength(1);
  });

  it('aborts a shared batch when the cancelled call holds most of it, and reruns the others to the same results', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const controller = new AbortController();
    const keep = scheduler.submit({
      model,
      sampling,
      sequences: [
        { key: 'quick', prompt: { text: 'x' }, cost: 1, tag: 'quick' },
        { key: 'slow', prompt: { text: 'x'.repeat(40) }, cost: 1, tag: 'slow' },
      ],
    });
    const drop = scheduler.submit({ model, sampling, sequences: sequences('d', 4, 40), signal: controller.signal });
    model.onStep = (step) => step === 3 && controller.abort(new Error('gone'));
    const kept = collect(keep);
    await expect(collect(drop)).rejects.toThrow('gone');
    const results = await kept;
    expect(model.aborted).toBe(1);
    // "quick" finished before the abort and is not run again; "slow" reran alone.
    expect(model.batches).toEqual([['quick', 'slow', 'd0', 'd1', 'd2', 'd3'], ['slow']]);
    expect(results.map((r) => [r.tag, r.result.text])).toEqual([
      ['quick', 'quick@0.8'],
      ['slow', 'slow@0.8'],
    ]);
  });

  it('fails every call of a batch whose model throws, and goes on with the next', async () => {
    const broken = new ScriptedModel();
    broken.failWith = new Error('kernel exploded');
    const fine = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    const a = scheduler.submit({ model: broken, sampling, sequences: sequences('a', 1) });
    const b = scheduler.submit({ model: broken, sampling, sequences: sequences('b', 1) });
    const c = scheduler.submit({ model: fine, sampling, sequences: sequences('c', 1) });
    await expect(collect(a)).rejects.toThrow('kernel exploded');
    await expect(collect(b)).rejects.toThrow('kernel exploded');
    expect(await collect(c)).toHaveLength(1);
    await Promise.all([a.settled, b.settled, c.settled]);
  });

  it('ends at once for an already aborted signal or no sequences', async () => {
    const model = new ScriptedModel();
    const scheduler = new BatchScheduler({ maxBatchSequences: 64, maxBatchTokens: 10_000 });
    await expect(collect(scheduler.submit({ model, sampling, sequences: sequences('a', 1), signal: AbortSignal.abort(new Error('late')) }))).rejects.toThrow('late');
    expect(await collect(scheduler.submit({ model, sampling, sequences: [] }))).toEqual([]);
    expect(model.batches).toEqual([]);
  });
});
