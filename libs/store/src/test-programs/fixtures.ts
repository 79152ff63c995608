// Deterministic content shared by the child programs and the tests that check
// what they left behind.
import { createHash } from 'node:crypto';

/** Deterministic bytes of a "weight file" for `tag`: the test recomputes them to check the winner. */
export function weightBytes(tag: string, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let block = createHash('sha256').update(tag).digest();
  for (let offset = 0; offset < length; offset += block.length) {
    block.copy(bytes, offset);
    block = createHash('sha256').update(block).digest();
  }
  return bytes;
}

/** The record `index` of a stage: large enough that a stage takes a while to write. */
export function completion(index: number): { id: string; text: string; logProb: number } {
  return { id: `prompt-${index}`, text: `completion ${index} `.repeat(40), logProb: -(index + 1) / 7 };
}
