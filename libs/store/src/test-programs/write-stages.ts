// A run-store writer in its own process, for SIGKILL tests. Usage:
//   write-stages.ts <store root> <run id> big <records>
//     streams <records> JSONL records into stage "big", printing "halfway"
//     once half are written, then commits and prints "committed".
//   write-stages.ts <store root> <run id> loop <records>
//     stores stages loop/0, loop/1, ... of <records> records each until killed,
//     printing "committed <n>" after each, and appends an event for each.
import { RunStore } from '../index';
import { completion } from './fixtures';

async function main(): Promise<void> {
  const [root, runId, mode, recordsText] = process.argv.slice(2);
  const records = Number(recordsText);
  const run = await (await RunStore.open(root)).openRun(runId);
  if (mode === 'big') {
    const writer = await run.beginStage('big');
    const jsonl = await writer.openJsonl('completions.jsonl');
    for (let index = 0; index < records; index++) {
      await jsonl.write(completion(index));
      if (index === records / 2) process.stdout.write('halfway\n');
      // From halfway on, yield now and then, so that the SIGKILL lands mid-stage and not after the commit.
      if (index > records / 2 && index % 50 === 0) await new Promise((done) => setTimeout(done, 1));
    }
    await writer.commit({ records });
    process.stdout.write('committed\n');
    return;
  }
  for (let stage = 0; ; stage++) {
    const items = Array.from({ length: records }, (_, index) => completion(index));
    await run.writeStage(`loop/${stage}`, { stage, records }, { jsonl: { 'completions.jsonl': items }, files: { 'note.txt': `stage ${stage}` } });
    await run.appendEvent('stage_finished', { stage });
    process.stdout.write(`committed ${stage}\n`);
  }
}

void main();
