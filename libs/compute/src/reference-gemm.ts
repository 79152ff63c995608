// Pure-JS batched GEMM with the BatchMatMul semantics of the native kernel:
// float64 accumulation, so tests can use it as the ground truth, and the last
// fallback of gemm() when the native addon is not there.
import { GemmShapeError } from './errors';

/** Geometry of C[b] = op(A[b]) * op(B[b]); a batch of 1 on either side broadcasts. */
export interface GemmShape {
  /** Batch items in A (1 broadcasts). */
  batchA: number;
  /** Batch items in B (1 broadcasts). */
  batchB: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  /** A is stored [batchA, K, M] instead of [batchA, M, K]. */
  transposeA?: boolean;
  /** B is stored [batchB, N, K] instead of [batchB, K, N]. */
  transposeB?: boolean;
}

/** Activations the fused epilogue applies after the bias. */
export type GemmActivation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'leakyrelu' | 'elu';

/** Bias (length 1 or n, added to every row) and activation applied to C. */
export interface GemmEpilogue {
  bias?: Float32Array;
  activation?: GemmActivation;
  /** Slope of leakyrelu below zero. */
  leakyAlpha?: number;
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/** Checks a GEMM shape and returns the output batch; throws GemmShapeError. */
export function checkGemmShape(shape: GemmShape): number {
  const { batchA, batchB, m, n, k } = shape;
  for (const [name, value] of Object.entries({ batchA, batchB, m, n, k })) {
    if (!isCount(value)) throw new GemmShapeError(`${name} must be a non-negative integer, got ${value}`, 'shape');
  }
  if (batchA < 1 || batchB < 1) throw new GemmShapeError('batch sizes must be at least 1', 'shape');
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) {
    throw new GemmShapeError(`batch sizes ${batchA} and ${batchB} do not broadcast`, 'shape');
  }
  return Math.max(batchA, batchB);
}

/** Applies one activation to one value, as the native epilogue does. */
export function activate(x: number, activation: GemmActivation, leakyAlpha: number): number {
  switch (activation) {
    case 'relu':
      return x > 0 ? x : 0;
    case 'relu6':
      return Math.min(Math.max(x, 0), 6);
    case 'sigmoid':
      return 1 / (1 + Math.exp(-x));
    case 'leakyrelu':
      return x > 0 ? x : leakyAlpha * x;
    case 'elu':
      return x > 0 ? x : Math.expm1(x);
    default:
      return x;
  }
}

/** C = op(A) * op(B) (+ epilogue) in float64; C is [max(batchA, batchB), M, N]. */
export function referenceGemm(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: GemmShape,
  epilogue: GemmEpilogue = {},
): Float64Array {
  const batch = checkGemmShape(shape);
  const { batchA, batchB, m, n, k } = shape;
  const transposeA = shape.transposeA ?? false;
  const transposeB = shape.transposeB ?? false;
  if (a.length < batchA * m * k) throw new GemmShapeError(`a holds ${a.length} values, needs ${batchA * m * k}`, 'a');
  if (b.length < batchB * k * n) throw new GemmShapeError(`b holds ${b.length} values, needs ${batchB * k * n}`, 'b');
  const bias = epilogue.bias;
  if (bias && bias.length !== 1 && bias.length !== n) {
    throw new GemmShapeError(`bias holds ${bias.length} values, needs 1 or ${n}`, 'bias');
  }
  const activation = epilogue.activation ?? 'linear';
  const leakyAlpha = epilogue.leakyAlpha ?? 0.2;
  const c = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const aBase = (batchA === 1 ? 0 : t) * m * k;
    const bBase = (batchB === 1 ? 0 : t) * k * n;
    const cBase = t * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = transposeA ? a[aBase + p * m + i] : a[aBase + i * k + p];
          const bv = transposeB ? b[bBase + j * k + p] : b[bBase + p * n + j];
          sum += av * bv;
        }
        if (bias) sum += bias[bias.length === 1 ? 0 : j];
        c[cBase + i * n + j] = activate(sum, activation, leakyAlpha);
      }
    }
  }
  return c;
}
