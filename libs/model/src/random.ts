// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011). The n-th number of a stream is a pure
// function of (key, n), so a sequence's samples depend on its seed and its own
// key only, never on the batch it runs in or on how many numbers others drew.
// Used for sampling and for the deterministic random weight init.

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9; // golden ratio
const PHILOX_W1 = 0xbb67ae85; // sqrt(3) - 1

// High and low 32-bit words of the 64-bit product a * b of two uint32.
function mulHiLo(a: number, b: number): [number, number] {
  const lo = Math.imul(a, b) >>> 0;
  const aHi = a >>> 16;
  const aLo = a & 0xffff;
  const bHi = b >>> 16;
  const bLo = b & 0xffff;
  const lohi = aLo * bHi;
  const hilo = aHi * bLo;
  const carry = ((aLo * bLo) >>> 16) + (lohi & 0xffff) + (hilo & 0xffff);
  const hi = (aHi * bHi + Math.floor(lohi / 65536) + Math.floor(hilo / 65536) + Math.floor(carry / 65536)) >>> 0;
  return [hi, lo];
}

/** Philox4x32-10: four uint32 counter words and two key words to four random uint32 words. */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((w) => w >>> 0);
  let [k0, k1] = key.map((w) => w >>> 0);
  for (let round = 0; round < 10; round++) {
    const [hi0, lo0] = mulHiLo(PHILOX_M0, c0);
    const [hi1, lo1] = mulHiLo(PHILOX_M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + PHILOX_W0) >>> 0;
    k1 = (k1 + PHILOX_W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** A stream of random numbers named by a seed and a key: (seed, key) -> Philox key and counter words. */
export interface RandomStream {
  readonly key: readonly [number, number];
  readonly stream: readonly [number, number];
}

/**
 * The stream of (seed, streamKey). `seed` is an integer in [0, 2^53); `streamKey` a
 * string or number (a number n and the string `${n}` name the same stream).
 */
export function randomStream(seed: number, streamKey: string | number): RandomStream {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`seed must be an integer in [0, 2^53), got ${seed}`);
  }
  return { key: [seed % 0x100000000, Math.floor(seed / 0x100000000)], stream: fnv1a64(String(streamKey)) };
}

/** The four uint32 words at position `index` (an integer in [0, 2^53)) of a stream. */
export function randomWords(stream: RandomStream, index: number): [number, number, number, number] {
  return philox4x32([index % 0x100000000, Math.floor(index / 0x100000000), stream.stream[0], stream.stream[1]], stream.key);
}

/** A uniform double in [0, 1) with 53 random bits, the `index`-th of a stream. */
export function randomUniform(stream: RandomStream, index: number): number {
  const [w0, w1] = randomWords(stream, index);
  return ((w0 >>> 5) * 67108864 + (w1 >>> 6)) / 9007199254740992;
}

/**
 * Fills `out` with normal(0, std) samples from a stream (Box-Muller on the four
 * words of each counter, two normals per pair of words).
 */
export function fillNormal(out: Float32Array, stream: RandomStream, std: number): void {
  for (let i = 0, block = 0; i < out.length; block++) {
    const [w0, w1, w2, w3] = randomWords(stream, block);
    for (const [a, b] of [
      [w0, w1],
      [w2, w3],
    ]) {
      // (a + 1) / 2^32 is in (0, 1], so the log is finite.
      const radius = Math.sqrt(-2 * Math.log((a + 1) / 4294967296)) * std;
      const angle = (2 * Math.PI * b) / 4294967296;
      if (i < out.length) out[i++] = radius * Math.cos(angle);
      if (i < out.length) out[i++] = radius * Math.sin(angle);
    }
  }
}

// FNV-1a 64 of the UTF-8 bytes of `text`, as [low, high] uint32 words.
function fnv1a64(text: string): [number, number] {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return [Number(hash & 0xffffffffn), Number(hash >> 32n)];
}
