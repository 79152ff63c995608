// Many processes, one store: two child processes publish the same version at
// the same instant (exactly one wins, its files intact), and children SIGKILLed
// while publishing or writing stages leave nothing partial behind: the next
// writer succeeds and the abandoned temp directories are cleaned.
import { readFile, readdir, rm, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModelRegistry, RunStore, StageNotFoundError } from './index';
import { startProgram, type Child } from './test-programs/child';
import { completion, weightBytes } from './test-programs/fixtures';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cream-processes-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function killed(child: Child): Promise<void> {
  child.process.kill('SIGKILL');
  expect((await child.exited).signal).toBe('SIGKILL');
}

describe('registry across processes', () => {
  it('two processes publishing one name at the same instant: exactly one wins, with its own files', async () => {
    await ModelRegistry.open(root);
    const goFile = join(root, 'go');
    const children = ['left', 'right'].map((tag) => startProgram('publish-version', [root, 'm1', tag, 'race', goFile]));
    // Both have written their files and passed the early name check before either may commit.
    await Promise.all(children.map((child) => child.waitForLine((line) => line === 'ready')));
    await writeFile(goFile, '');
    const exits = await Promise.all(children.map((child) => child.exited));
    for (const exit of exits) expect(exit).toMatchObject({ code: 0, stderr: '' });

    const outcomes = children.map((child) => child.lines[child.lines.length - 1]);
    expect(outcomes.filter((line) => line.startsWith('published '))).toHaveLength(1);
    expect(outcomes.filter((line) => line === 'exists')).toHaveLength(1);
    const winnerTag = outcomes[0].startsWith('published ') ? 'left' : 'right';

    const registry = await ModelRegistry.open(root);
    const record = await registry.verify('m1');
    expect(outcomes).toContain(`published ${record.manifestSha256}`);
    expect(JSON.parse(await readFile(join(record.path, 'config.json'), 'utf8'))).toEqual({ tag: winnerTag });
    expect((await readFile(join(record.path, 'model.safetensors'))).equals(weightBytes(winnerTag, 256 * 1024))).toBe(true);
    expect(record.manifest.recipe.tag).toBe(winnerTag);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });

  it('a publisher SIGKILLed while writing weights leaves no version; the next publish of the name succeeds', async () => {
    await ModelRegistry.open(root);
    const child = startProgram('publish-version', [root, 'm1', 'doomed', 'slow']);
    await child.waitForLine((line) => line === 'writing');
    await killed(child);

    expect(await readdir(join(root, 'versions'))).toEqual([]);
    expect(await readdir(join(root, '.tmp'))).toHaveLength(1);
    const registry = await ModelRegistry.open(root);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    expect(await registry.has('m1')).toBe(false);
    await expect(registry.resolve('latest')).rejects.toMatchObject({ name: 'VersionNotFoundError' });

    await registry.publish({ version: 'm1', recipe: { method: 'sft' }, write: (directory) => writeFile(join(directory, 'model.safetensors'), 'weights') });
    expect((await registry.verify('latest')).version).toBe('m1');
  });
});

describe('run store across processes', () => {
  it('a writer SIGKILLed in the middle of a large stage leaves it absent; the next writer stores it', async () => {
    const store = await RunStore.open(root);
    const run = await store.createRun({ method: 'cream' }, { runId: 'big-run' });
    const child = startProgram('write-stages', [root, run.runId, 'big', '20000']);
    await child.waitForLine((line) => line === 'halfway');
    await killed(child);
    expect(child.lines).not.toContain('committed');

    expect(await run.stageDone('big')).toBe(false);
    expect(await run.listStages()).toEqual([]);
    await expect(run.readStage('big')).rejects.toBeInstanceOf(StageNotFoundError);
    expect(await readdir(join(run.directory, '.tmp'))).toHaveLength(1);

    const resumed = await store.openRun(run.runId);
    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
    const records = Array.from({ length: 1000 }, (_, index) => completion(index));
    await resumed.writeStage('big', { records: records.length }, { jsonl: { 'completions.jsonl': records } });
    const stored = await resumed.readStage('big');
    let count = 0;
    for await (const record of stored.readJsonl('completions.jsonl')) expect(record).toEqual(completion(count++));
    expect(count).toBe(1000);
  });

  it.each([0, 5, 13])('a writer SIGKILLed %i ms after a commit leaves only complete stages', async (delayMs) => {
    const store = await RunStore.open(root);
    const run = await store.createRun({ method: 'cream' }, { runId: `loop-${delayMs}` });
    const child = startProgram('write-stages', [root, run.runId, 'loop', '1500']);
    await child.waitForLine((line) => line === 'committed 1');
    await new Promise((done) => setTimeout(done, delayMs));
    await killed(child);
    const printed = child.lines.filter((line) => line.startsWith('committed ')).length;

    const resumed = await store.openRun(run.runId);
    const stages = await resumed.listStages();
    // Committed in order; at most the one whose "committed" line the kill cut off is extra.
    expect(stages.map((stage) => stage.stage)).toEqual(Array.from({ length: stages.length }, (_, index) => `loop/${index}`));
    expect(stages.length - printed).toBeGreaterThanOrEqual(0);
    expect(stages.length - printed).toBeLessThanOrEqual(1);
    for (const manifest of stages) {
      const stored = await resumed.readStage<{ stage: number; records: number }>(manifest.stage);
      expect(stored.manifest.records).toEqual({ 'completions.jsonl': 1500 });
      let count = 0;
      for await (const _record of stored.readJsonl('completions.jsonl')) count++;
      expect(count).toBe(1500);
    }
    const { events } = await resumed.readEvents();
    expect(events.every((event) => event.type === 'stage_finished')).toBe(true);
    expect(stages.length - events.length).toBeGreaterThanOrEqual(0);
    expect(stages.length - events.length).toBeLessThanOrEqual(1);

    expect(await readdir(join(run.directory, '.tmp'))).toEqual([]);
    await resumed.writeStage(`loop/${stages.length}`, { stage: stages.length, records: 0 });
    await resumed.appendEvent('stage_finished', { stage: stages.length });
    expect((await resumed.readEvents()).events.at(-1)?.payload).toEqual({ stage: stages.length });
  });
});
