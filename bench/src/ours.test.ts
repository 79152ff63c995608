// Our side's backend line: the variant, its CPU features and threads, and the
// attention keep limit when a run changed it (CREAM_ATTENTION_KEEP_MIB), so a
// report says what memory setting its figures come from.
import { defaultAttentionKeepBytes, type ComputeInfo } from '@cream/compute';
import { describe, expect, it } from 'vitest';
import { describeCompute } from './ours';

const info: ComputeInfo = { backend: 'wasm', variant: 'wasm+native', detail: 'first choice', threads: 2, simd: 'avx2+fma' };

describe('describeCompute', () => {
  it('names the variant, features and threads, and the attention keep limit only when it is not the default', () => {
    expect(describeCompute(info, defaultAttentionKeepBytes)).toBe('tfjs wasm+native (avx2+fma, 2 threads)');
    expect(describeCompute(info, 0)).toBe('tfjs wasm+native (avx2+fma, 2 threads, attention probabilities kept up to 0 MiB)');
    expect(describeCompute(info, 100 * 1024 * 1024)).toBe('tfjs wasm+native (avx2+fma, 2 threads, attention probabilities kept up to 100 MiB)');
    expect(describeCompute({ ...info, variant: 'cpu', simd: '', threads: 1 }, defaultAttentionKeepBytes)).toBe('tfjs cpu (1 thread)');
  });
});
