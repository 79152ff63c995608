// Standalone check of the native GEMM under sanitizers (see
// scripts/check-native-sanitizers.sh): random shapes, exact-size heap buffers
// so any overread or overwrite trips AddressSanitizer, every kernel, against a
// float64 reference. Not part of the addon build.
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <random>
#include "gemm.h"
using namespace cream;
int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  ThreadPool pool(2);
  int bad = 0, runs = 0;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2Fma, Isa::kGeneric}) {
    const int dims[] = {1, 2, 3, 5, 12, 13, 17, 31, 32, 33, 65, 100, 257, 300};
    for (int trial = 0; trial < 166; ++trial) {
      size_t m = dims[rng() % 14], n = dims[rng() % 14], k = dims[rng() % 14];
      size_t ba = 1 + rng() % 3, bb = (rng() % 2) ? 1 : ba; if (rng() % 3 == 0) std::swap(ba, bb);
      bool ta = rng() % 2, tb = rng() % 2;
      if (trial >= 150) {
        // Single tall products: op(B) packed once and shared by the threads,
        // with ragged last column and depth blocks.
        const size_t tall[4][3] = {{300, 100, 300}, {257, 65, 257}, {1100, 1030, 70}, {600, 33, 513}};
        m = tall[trial % 4][0]; n = tall[trial % 4][1]; k = tall[trial % 4][2];
        ba = bb = 1; ta = (trial / 4) % 2; tb = (trial / 8) % 2;
      }
      size_t bt = std::max(ba, bb);
      // Exact-size heap buffers so any overread or overwrite trips ASan.
      float* a = (float*)malloc(sizeof(float) * ba * m * k);
      float* b = (float*)malloc(sizeof(float) * bb * k * n);
      float* c = (float*)malloc(sizeof(float) * bt * m * n);
      float* bias = (float*)malloc(sizeof(float) * n);
      for (size_t i = 0; i < ba * m * k; ++i) a[i] = u(rng);
      for (size_t i = 0; i < bb * k * n; ++i) b[i] = u(rng);
      for (size_t i = 0; i < n; ++i) bias[i] = u(rng);
      GemmProblem p; p.a = a; p.b = b; p.c = c; p.batch_a = ba; p.batch_b = bb; p.m = m; p.n = n; p.k = k; p.trans_a = ta; p.trans_b = tb;
      bool use_bias = rng() % 2; if (use_bias) { p.bias = bias; p.bias_len = n; p.activation = Activation::kRelu; }
      Gemm(p, isa, pool);
      double err = 0, scale = 0;
      for (size_t t = 0; t < bt; ++t) for (size_t i = 0; i < m; ++i) for (size_t j = 0; j < n; ++j) {
        double s = 0;
        for (size_t q = 0; q < k; ++q) {
          double av = ta ? a[(ba == 1 ? 0 : t) * m * k + q * m + i] : a[(ba == 1 ? 0 : t) * m * k + i * k + q];
          double bv = tb ? b[(bb == 1 ? 0 : t) * k * n + j * k + q] : b[(bb == 1 ? 0 : t) * k * n + q * n + j];
          s += av * bv;
        }
        if (use_bias) { s += bias[j]; s = s > 0 ? s : 0; }
        err = std::max(err, std::fabs(s - c[t * m * n + i * n + j])); scale = std::max(scale, std::fabs(s));
      }
      if (err > 1e-5 * std::max(scale, 1.0)) { ++bad; printf("BAD isa=%d %zu %zu %zu %zu %zu %d %d err=%g\n", (int)isa, ba, bb, m, n, k, ta, tb, err); }
      ++runs;
      free(a); free(b); free(c); free(bias);
    }
  }
  printf("%d runs, %d bad\n", runs, bad);
  return bad != 0;
}
