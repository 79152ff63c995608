// fp32 batched GEMM: C[b] = op(A[b]) * op(B[b]) (+ bias, activation), with the
// semantics of TensorFlow's BatchMatMul: A is [batchA, M, K] ([batchA, K, M]
// when transposed), B is [batchB, K, N] ([batchB, N, K] when transposed), C is
// [max(batchA, batchB), M, N], and a batch of 1 on either side broadcasts.
#ifndef CREAM_COMPUTE_GEMM_H_
#define CREAM_COMPUTE_GEMM_H_

#include <cstddef>

#include "thread-pool.h"

namespace cream {

// Instruction sets with a kernel of their own; one binary holds all three.
enum class Isa { kGeneric = 0, kAvx2Fma = 1, kAvx512 = 2 };

// Activations tfjs's _FusedMatMul can ask for that the epilogue applies.
enum class Activation { kLinear = 0, kRelu = 1, kRelu6 = 2, kSigmoid = 3, kLeakyRelu = 4, kElu = 5 };

struct GemmProblem {
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  size_t batch_a = 1;
  size_t batch_b = 1;
  size_t m = 0;
  size_t n = 0;
  size_t k = 0;
  bool trans_a = false;
  bool trans_b = false;
  // Bias added to every output row: nullptr for none, bias_len 1 for a scalar
  // or n for one value per column.
  const float* bias = nullptr;
  size_t bias_len = 0;
  Activation activation = Activation::kLinear;
  float leaky_alpha = 0.2f;
};

// The best kernel this CPU and OS support (CPUID plus XGETBV, via GCC).
Isa DetectIsa();
bool IsaSupported(Isa isa);
const char* IsaName(Isa isa);

// The FP32 peak this machine delivers to the given kernel's instruction set,
// in GFLOP/s: every pool thread runs a loop of independent FMA chains on
// registers only (no memory traffic), best of a few timed passes of about
// `seconds` each. What the products' GFLOP/s can be compared with.
double MeasurePeakGflops(Isa isa, ThreadPool& pool, double seconds);

// Computes the problem with the given kernel on up to pool.size() threads.
void Gemm(const GemmProblem& problem, Isa isa, ThreadPool& pool);

// Weights packed for products with few rows (decoding): W [n, k] (a Linear
// layer's [out, in]) as column panels of kPanelWidth output features, panel p
// holding k rows of kPanelWidth values, W[p * kPanelWidth + j][i] at
// [p][i][j], zeros past n. Made once per weight; x . W^T then broadcasts x's
// values against whole panel rows (no per-output horizontal sums).
constexpr size_t kPanelWidth = 16;
size_t PackedPanelsSize(size_t n, size_t k);  // floats
void PackPanels(const float* w, size_t n, size_t k, float* out);

// C [m, n] = A [m, k] . W^T from PackPanels' layout, on up to pool.size() threads.
void GemmPacked(const float* a, const float* packed, float* c, size_t m, size_t n, size_t k, Isa isa, ThreadPool& pool);

}  // namespace cream

#endif  // CREAM_COMPUTE_GEMM_H_
