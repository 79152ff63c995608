// Per-sequence seeds of Generate. Every sample draws from its own random
// stream, named by the request's seed, the prompt's id and the sample's index
// only, so the same (seed, prompt id, sample index) gives the same tokens
// whatever else shares its batch (other prompts, other calls, other seeds).
//
//   sequence_seed = the first 53 bits (big-endian) of
//                   sha256(utf8(`${seed}/${promptId}/${sampleIndex}`))
//
// `seed` and `sampleIndex` are decimal digits, so the string is unambiguous
// even when the prompt id holds "/". 53 bits keep the value exact in a
// JavaScript number and in every proto uint64 client. The stream itself is
// @cream/model's Philox stream of (seed 0, key = decimal sequence_seed): the
// sequence seed alone names it, which is what lets calls with different
// request seeds run in one batch.
import { createHash } from 'node:crypto';

/** The base seed passed to generateText: every stream is named by its key (the sequence seed) alone. */
export const BATCH_SEED = 0;

/** The 53-bit seed of one sequence, derived from the request seed, the prompt id and the sample index. */
export function sequenceSeed(seed: number, promptId: string, sampleIndex: number): number {
  const digest = createHash('sha256').update(`${seed}/${promptId}/${sampleIndex}`, 'utf8').digest();
  // 48 bits from bytes 0..5, then the top 5 bits of byte 6: 53 bits, at most 2^53 - 1.
  return digest.readUIntBE(0, 6) * 32 + (digest[6] >>> 3);
}

/** The key of a sequence's random stream in generateText (with BATCH_SEED as the base seed). */
export function streamKey(sequenceSeedValue: number): string {
  return String(sequenceSeedValue);
}
