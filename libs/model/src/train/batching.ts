// Training data as token ids: examples and preference pairs, their truncation
// to a maximum length, right-padded batches with the mask of the tokens a loss
// counts, the seeded shuffle of each epoch, and a fingerprint that ties saved
// state and reference log-probs to the data they came from.
//
// Rows are padded on the right, so no attention mask is needed: under the
// causal mask a real token never attends a later padding token, and positions
// are 0..length-1 as in an unpadded pass. The padding's own outputs are
// masked out of every loss. A packed batch (packBatch) puts several
// sequences in one row, each a segment of its own: a token attends only the
// earlier tokens of its segment, at positions counted from the segment's
// start, so each sequence's log-probs are those of its own unpadded pass.

import { ContextLengthError, InvalidOptionError, TokenIdError } from '../errors';
import { randomStream, randomUniform } from '../random';

/** A prompt and a response as token ids (the chat template already applied). */
export interface TokenSequence {
  /** Prompt tokens; at least one (the first token has no prediction). */
  readonly promptIds: readonly number[];
  /** Response tokens; at least one. */
  readonly responseIds: readonly number[];
}

/** One supervised example. */
export interface SftExample extends TokenSequence {
  /** The caller's id, for error messages. */
  readonly id?: string;
}

/** One preference pair with its label confidence C (CREAM.md steps 5 and 6). */
export interface DpoPair {
  /** The caller's id, for error messages. */
  readonly id?: string;
  /** Prompt tokens; at least one. */
  readonly promptIds: readonly number[];
  /** The preferred response y+. */
  readonly chosenIds: readonly number[];
  /** The dispreferred response y-. */
  readonly rejectedIds: readonly number[];
  /** C in [0, 1]: this pair's consistency (dyn) or the iteration's rate (avg); 1 is plain DPO. */
  readonly consistency: number;
}

/**
 * `sequence` cut to at most `maxLength` tokens by dropping the response's
 * tail; `truncated` says whether anything was cut. Throws ContextLengthError
 * when the prompt leaves no room for one response token.
 */
export function truncateSequence(
  sequence: TokenSequence,
  maxLength: number,
  index?: number,
): { sequence: TokenSequence; truncated: boolean } {
  const { promptIds, responseIds } = sequence;
  if (promptIds.length + responseIds.length <= maxLength) return { sequence, truncated: false };
  if (promptIds.length + 1 > maxLength) {
    throw new ContextLengthError(
      `a prompt of ${promptIds.length} tokens leaves no room for a response within maxSequenceLength ${maxLength}`,
      promptIds.length + 1,
      maxLength,
      index,
    );
  }
  return { sequence: { promptIds, responseIds: responseIds.slice(0, maxLength - promptIds.length) }, truncated: true };
}

/** Throws unless every id is an integer token of the vocabulary and both parts are non-empty. */
export function validateSequence(sequence: TokenSequence, vocabSize: number, index: number, what = 'example'): void {
  if (sequence.promptIds.length === 0) throw new InvalidOptionError(`${what} ${index} has an empty prompt`, 'promptIds');
  if (sequence.responseIds.length === 0) throw new InvalidOptionError(`${what} ${index} has an empty response`, 'responseIds');
  for (const ids of [sequence.promptIds, sequence.responseIds]) {
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
        throw new TokenIdError(`${what} ${index} holds token id ${id}, outside [0, ${vocabSize})`, id, vocabSize, index);
      }
    }
  }
}

/** A right-padded batch and where its response tokens are predicted. */
export interface PaddedBatch {
  /** Rows. */
  readonly rows: number;
  /** Columns: the longest row. */
  readonly length: number;
  /** Token ids [rows, length], padded on the right. */
  readonly inputIds: Int32Array;
  /**
   * Flat positions (row * length + t) whose next token is a response token, row
   * by row: response token j of a row with P prompt tokens is predicted at P - 1 + j.
   */
  readonly predictingPositions: Int32Array;
  /** The response token each of those positions predicts. */
  readonly targets: Int32Array;
  /** Response tokens per row (how many of the positions each row owns, in order). */
  readonly responseTokens: readonly number[];
  /** Non-padding tokens of the batch (prompt and response). */
  readonly tokens: number;
  /**
   * Packed batches only: the segment of each position [rows, length], the
   * index of its sequence (-1 on padding). Absent: one sequence per row.
   */
  readonly segments?: Int32Array;
}

/** Pads prompt+response rows on the right with `padTokenId` (any valid id: it is never attended). */
export function padBatch(sequences: readonly TokenSequence[], padTokenId = 0): PaddedBatch {
  const rows = sequences.length;
  if (rows === 0) throw new InvalidOptionError('a batch needs at least one sequence', 'sequences');
  const length = Math.max(...sequences.map((s) => s.promptIds.length + s.responseIds.length));
  const inputIds = new Int32Array(rows * length).fill(padTokenId);
  const count = sequences.reduce((sum, s) => sum + s.responseIds.length, 0);
  const predictingPositions = new Int32Array(count);
  const targets = new Int32Array(count);
  let tokens = 0;
  let n = 0;
  for (const [b, { promptIds, responseIds }] of sequences.entries()) {
    if (promptIds.length === 0) throw new InvalidOptionError(`sequence ${b} has an empty prompt`, 'promptIds');
    inputIds.set(promptIds, b * length);
    inputIds.set(responseIds, b * length + promptIds.length);
    for (const [j, token] of responseIds.entries()) {
      predictingPositions[n] = b * length + promptIds.length - 1 + j;
      targets[n++] = token;
    }
    tokens += promptIds.length + responseIds.length;
  }
  return { rows, length, inputIds, predictingPositions, targets, responseTokens: sequences.map((s) => s.responseIds.length), tokens };
}

/**
 * Packs the sequences into as few rows as first-fit decreasing finds, each
 * row as long as the longest sequence, the rest right padding: a batch of
 * random lengths then holds fewer padding positions than padBatch's one row
 * per sequence (the default SFT set: 13% of positions instead of 23%). The
 * positions that predict response tokens, their targets and responseTokens
 * are listed sequence by sequence in the given order, as padBatch lists them,
 * so a loss over them is the same sum; the model must be run with
 * `segments` (batchResponseTokenLogprobs does that). When no two sequences
 * share a row (equal lengths, say), the batch is a right-padded one (longest
 * first) and has no segments.
 */
export function packBatch(sequences: readonly TokenSequence[], padTokenId = 0): PaddedBatch {
  if (sequences.length === 0) throw new InvalidOptionError('a batch needs at least one sequence', 'sequences');
  const lengths = sequences.map((s, i) => {
    if (s.promptIds.length === 0) throw new InvalidOptionError(`sequence ${i} has an empty prompt`, 'promptIds');
    return s.promptIds.length + s.responseIds.length;
  });
  const length = Math.max(...lengths);
  // Longest first (ties in the given order), each into the first row with room.
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const used: number[] = [];
  const start = new Array<number>(sequences.length); // flat position of each sequence's first token
  for (const i of order) {
    let row = used.findIndex((n) => n + lengths[i] <= length);
    if (row < 0) row = used.push(0) - 1;
    start[i] = row * length + used[row];
    used[row] += lengths[i];
  }
  const rows = used.length;
  const inputIds = new Int32Array(rows * length).fill(padTokenId);
  const segments = new Int32Array(rows * length).fill(-1);
  const count = sequences.reduce((sum, s) => sum + s.responseIds.length, 0);
  const predictingPositions = new Int32Array(count);
  const targets = new Int32Array(count);
  let n = 0;
  for (const [i, { promptIds, responseIds }] of sequences.entries()) {
    inputIds.set(promptIds, start[i]);
    inputIds.set(responseIds, start[i] + promptIds.length);
    segments.fill(i, start[i], start[i] + lengths[i]);
    for (const [j, token] of responseIds.entries()) {
      predictingPositions[n] = start[i] + promptIds.length - 1 + j;
      targets[n++] = token;
    }
  }
  const tokens = lengths.reduce((sum, x) => sum + x, 0);
  const batch = { rows, length, inputIds, predictingPositions, targets, responseTokens: sequences.map((s) => s.responseIds.length), tokens };
  // A row per sequence, each from position 0: a right-padded batch, which needs no segments.
  return rows === sequences.length ? batch : { ...batch, segments };
}

/** The rows of a batch of pairs: all chosen responses first, then all rejected ones. */
export function pairSequences(pairs: readonly DpoPair[]): TokenSequence[] {
  return [
    ...pairs.map((pair) => ({ promptIds: pair.promptIds, responseIds: pair.chosenIds })),
    ...pairs.map((pair) => ({ promptIds: pair.promptIds, responseIds: pair.rejectedIds })),
  ];
}

/**
 * The order of epoch `epoch`: a Fisher-Yates shuffle of 0..n-1 driven by the
 * counter-based stream (seed, "train-shuffle/<epoch>"), so any epoch's order
 * is a pure function of (n, seed, epoch) and a resumed run recomputes it.
 */
export function shuffledOrder(n: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const stream = randomStream(seed, `train-shuffle/${epoch}`);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(randomUniform(stream, i) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * A 64-bit fingerprint (16 hex digits) of a list of number lists: the token
 * ids (and weights) of a dataset, each list's length included. Numbers hash
 * by their float64 bits. For telling datasets apart, not for security.
 */
export function fingerprint(lists: Iterable<readonly number[]>): string {
  // Two 32-bit FNV-1a-style lanes with different offsets and primes make 64 bits.
  let low = 0x811c9dc5;
  let high = 0xcbf29ce4;
  const bits = new DataView(new ArrayBuffer(8));
  const mix = (word: number) => {
    for (let shift = 0; shift < 32; shift += 8) {
      const byte = (word >>> shift) & 0xff;
      low = Math.imul(low ^ byte, 0x01000193);
      high = Math.imul(high ^ byte, 0x5bd1e995);
    }
  };
  for (const list of lists) {
    mix(list.length);
    for (const value of list) {
      bits.setFloat64(0, value, true);
      mix(bits.getUint32(0, true));
      mix(bits.getUint32(4, true));
    }
  }
  return (high >>> 0).toString(16).padStart(8, '0') + (low >>> 0).toString(16).padStart(8, '0');
}
