// The training step's products on one thread and on two, interleaved, and on
// two at once one per thread (a layer's dX = dY . W beside its dW = dY^T . X):
// a developer probe of how well the GEMM uses a second core, not part of the
// addon build. Compiled against the addon's own gemm.cc and thread-pool.cc:
//
//   cd libs/compute
//   g++ -std=c++17 -O3 -fno-math-errno -fno-trapping-math -Inative scripts/thread-scaling.cc
//       native/gemm.cc native/thread-pool.cc -o /tmp/thread-scaling -lpthread   (one line)
//   /tmp/thread-scaling [rounds]     # default 30; medians of interleaved rounds
//
// "efficiency" is the 1-thread time over twice the 2-thread time (1: the second
// thread doubles the speed). "pair" is one Run of two threads where thread 0
// computes a layer's dX on its own and thread 1 its dW, against the two products
// one after the other on two threads each (below 1: running them side by side
// is faster).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gemm.h"
#include "thread-pool.h"

using cream::GemmProblem;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::time_point since) { return std::chrono::duration<double, std::milli>(Clock::now() - since).count(); }

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (float& v : values) v = uniform(rng);
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 30;
  const cream::Isa isa = cream::DetectIsa();
  cream::ThreadPool one(1), two(2), solo0(1), solo1(1);
  std::mt19937 rng(1);
  std::printf("kernel %s, %d rounds\n", cream::IsaName(isa), rounds);
  // Linear layers of the reference and base shapes (16 x 128 tokens): [in, out].
  const size_t tokens = 2048;
  const size_t layers[][2] = {{256, 1536}, {768, 256}, {256, 768}, {256, 256}, {160, 864}, {432, 160}};
  for (const auto& layer : layers) {
    const size_t in = layer[0], out = layer[1];
    std::vector<float> x = Random(tokens * in, rng), w = Random(out * in, rng), dy = Random(tokens * out, rng);
    std::vector<float> y(tokens * out), dx(tokens * in), dw(out * in);
    GemmProblem forward;  // Y = X . W^T
    forward.a = x.data(), forward.b = w.data(), forward.c = y.data();
    forward.m = tokens, forward.n = out, forward.k = in, forward.trans_b = true;
    GemmProblem grad_x;  // dX = dY . W
    grad_x.a = dy.data(), grad_x.b = w.data(), grad_x.c = dx.data();
    grad_x.m = tokens, grad_x.n = in, grad_x.k = out;
    GemmProblem grad_w;  // dW = dY^T . X
    grad_w.a = dy.data(), grad_w.b = x.data(), grad_w.c = dw.data();
    grad_w.m = out, grad_w.n = in, grad_w.k = tokens, grad_w.trans_a = true;
    const GemmProblem* products[] = {&forward, &grad_x, &grad_w};
    const char* names[] = {"X.W^T", "dY.W", "dY^T.X"};
    std::printf("layer [%zu -> %zu]\n", in, out);
    for (int p = 0; p < 3; ++p) {
      std::vector<double> t1, t2, ratio;
      for (int r = 0; r < rounds; ++r) {
        auto started = Clock::now();
        cream::Gemm(*products[p], isa, one);
        const double single = Ms(started);
        started = Clock::now();
        cream::Gemm(*products[p], isa, two);
        const double pool = Ms(started);
        t1.push_back(single), t2.push_back(pool), ratio.push_back(single / pool / 2);
      }
      const double gflop = 2.0 * products[p]->m * products[p]->n * products[p]->k / 1e6;
      std::printf("  %-7s 1 thread %6.1f GFLOP/s, 2 threads %6.1f (%5.1f a thread), efficiency %.3f\n", names[p],
                  gflop / Median(t1), gflop / Median(t2), gflop / Median(t2) / 2, Median(ratio));
    }
    std::vector<double> pair;
    for (int r = 0; r < rounds; ++r) {
      auto started = Clock::now();
      cream::Gemm(grad_x, isa, two);
      cream::Gemm(grad_w, isa, two);
      const double sequential = Ms(started);
      started = Clock::now();
      two.Run(2, [&](size_t index) { cream::Gemm(index == 0 ? grad_x : grad_w, isa, index == 0 ? solo0 : solo1); });
      pair.push_back(Ms(started) / sequential);
    }
    std::printf("  pair    dX beside dW, one thread each: %.3f of the time of both on two threads\n", Median(pair));
  }
  return 0;
}
