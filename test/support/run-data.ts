// Small data files of a user's own for runs in tests: 8 SFT examples
// (chat-messages JSONL), 8 unlabeled prompts, a 6-item ARC set, and a GSM8K
// file (the wrong format for an ARC set), plus the tiny model config with
// room for an ARC prompt and a sampled response.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tinyLlamaConfig } from './tiny-models';

/** The tiny Llama with room for an ARC prompt (byte-level tokens) and the response after it. */
export const runModelConfig = { ...tinyLlamaConfig, max_position_embeddings: 384 };

/** Paths of the files writeRunData writes. */
export interface RunDataFiles {
  sft: string;
  prompts: string;
  /** ARC format, 6 items, task name "colors". */
  arc: string;
  /** GSM8K format, 1 item. */
  gsm8k: string;
}

const words = ['red', 'blue', 'green', 'gold', 'gray', 'pink', 'teal', 'navy'];

function writeJsonl(path: string, records: unknown[]): string {
  writeFileSync(path, records.map((record) => JSON.stringify(record)).join('\n') + '\n');
  return path;
}

/** Writes the files into `dir`. */
export function writeRunData(dir: string): RunDataFiles {
  return {
    sft: writeJsonl(
      join(dir, 'sft.jsonl'),
      words.map((word, i) => ({ messages: [{ role: 'user', content: `Name color ${i}.` }, { role: 'assistant', content: `It is ${word}.\nAnswer: ${word}` }] })),
    ),
    prompts: writeJsonl(
      join(dir, 'prompts.jsonl'),
      words.map((word, i) => ({ id: `p${i}`, prompt: `Which color rhymes with ${word}?` })),
    ),
    arc: writeJsonl(
      join(dir, 'colors-arc.jsonl'),
      words.slice(0, 6).map((word, i) => ({
        id: `c${i}`,
        question: { stem: `Pick ${word}.`, choices: [{ text: word, label: 'A' }, { text: words[(i + 1) % 8], label: 'B' }] },
        answerKey: 'A',
      })),
    ),
    gsm8k: writeJsonl(join(dir, 'sums-gsm8k.jsonl'), [{ question: 'What is 2 + 3?', answer: '2 + 3 = 5\n#### 5' }]),
  };
}
