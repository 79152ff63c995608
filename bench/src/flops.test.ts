// The training FLOP count against counts done by hand from the shapes.
import { describe, expect, it } from 'vitest';
import { MICRO_SHAPE, REFERENCE_SHAPE } from './cases';
import { forwardFlops, gflopsPerSecond, trainingStepFlops } from './flops';

describe('trainingStepFlops', () => {
  it('counts the reference shape (batch 16 x 128) by hand', () => {
    // Per layer and row, T = 128, d = q = kv = 256, f = 768:
    //   q, k, v projections 2 * 128 * 256 * 768   =  50,331,648
    //   output projection   2 * 128 * 256 * 256   =  16,777,216
    //   scores + weighted V 4 * 128^2 * 256       =  16,777,216
    //   SwiGLU              6 * 128 * 256 * 768   = 150,994,944
    //   layer total                                 234,881,024, x 4 layers = 939,524,096
    //   lm_head             2 * 127 * 256 * 512   =  33,292,288
    // Row total 972,816,384; x 16 rows = 15,565,062,144 forward; x 3 for the step.
    expect(forwardFlops(REFERENCE_SHAPE, 16, 128)).toBe(15_565_062_144);
    expect(trainingStepFlops(REFERENCE_SHAPE, 16, 128)).toBe(46_695_186_432);
  });

  it('counts grouped-query attention with its narrower k and v (micro shape, batch 2 x 16)', () => {
    // T = 16, d = 32, q = 2 * 16 = 32, kv = 1 * 16 = 16, f = 64, V = 64, 2 layers:
    //   q, k, v 2 * 16 * 32 * (32 + 32) = 65,536; output 2 * 16 * 32 * 32 = 32,768;
    //   attention 4 * 256 * 32 = 32,768; SwiGLU 6 * 16 * 32 * 64 = 196,608; layer 327,680, x 2 = 655,360;
    //   lm_head 2 * 15 * 32 * 64 = 61,440. Row 716,800; x 2 rows = 1,433,600; x 3 = 4,300,800.
    expect(trainingStepFlops(MICRO_SHAPE, 2, 16)).toBe(4_300_800);
  });

  it('turns FLOPs and milliseconds into GFLOP/s', () => {
    expect(gflopsPerSecond(46_695_186_432, 100)).toBeCloseTo(466.95, 2);
  });
});
