// How fast one core reads data that another core has just written, against
// data it wrote itself and data in DRAM: a developer probe of the machine, not
// part of the addon build. On some VMs the vCPUs are placed, at times, on cores
// that share no cache, and then a thread that reads what the other thread
// wrote in the previous op runs at DRAM speed; the thread pool's static task
// shares (thread-pool.h, TaskShares) exist for that.
//
//   g++ -O2 -mavx2 -pthread -o /tmp/cross-core-read libs/compute/scripts/cross-core-read.cc
//   /tmp/cross-core-read [MiB]     # default 1 MiB; run it a few times, placements change
//
// Needs two CPUs (it pins one thread to CPU 0 and one to CPU 1) and AVX2.
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void Write(float* data, size_t n, float value) {
  for (size_t i = 0; i < n; i += 8) _mm256_store_ps(data + i, _mm256_set1_ps(value));
}

// Four independent sums, so the loads and not the add latency set the pace.
float Read(const float* data, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(data + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(data + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(data + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(data + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0];
}

}  // namespace

int main(int argc, char** argv) {
  const double mib = argc > 1 ? std::atof(argv[1]) : 1.0;
  const size_t n = mib > 0 && mib <= 1024 ? static_cast<size_t>(mib * 1024 * 1024 / 4) / 32 * 32 : 0;
  if (n == 0) {
    std::fprintf(stderr, "usage: cross-core-read [MiB, from 1/8192 to 1024]\n");
    return 2;
  }
  const size_t bytes = n * 4;
  const size_t evict_floats = size_t{64} << 18;  // 64 MiB, past any L3 here
  float* data = static_cast<float*>(std::aligned_alloc(64, bytes));
  float* evict = static_cast<float*>(std::aligned_alloc(64, evict_floats * 4));
  if (data == nullptr || evict == nullptr) return 1;
  Write(data, n, 1.0f);
  Write(evict, evict_floats, 0.0f);

  // The other thread writes when `turn` is 1 and hands back with 2; -1 stops it.
  std::atomic<int> turn{0};
  std::thread other([&] {
    PinTo(1);
    for (;;) {
      int t;
      while ((t = turn.load()) == 0 || t == 2) {
      }
      if (t < 0) return;
      Write(data, n, 2.0f);
      turn.store(2);
    }
  });
  PinTo(0);
  constexpr int kReps = 200;
  double own = 0, cross = 0, cold = 0;
  int cold_reps = 0;
  volatile float sink = 0;
  for (int r = 0; r < kReps; ++r) {
    Write(data, n, 1.0f);
    double t0 = Now();
    sink = sink + Read(data, n);
    own += Now() - t0;

    turn.store(1);
    while (turn.load() != 2) {
    }
    t0 = Now();
    sink = sink + Read(data, n);
    cross += Now() - t0;
    turn.store(0);

    if (r % 20 == 0) {
      Write(data, n, 1.0f);
      for (size_t i = 0; i < evict_floats; i += 16) evict[i] += 1.0f;
      t0 = Now();
      sink = sink + Read(data, n);
      cold += Now() - t0;
      ++cold_reps;
    }
  }
  turn.store(-1);
  other.join();
  std::printf("%.2f MiB read by CPU 0: written by itself %.1f GB/s, written by CPU 1 %.1f GB/s, from DRAM %.1f GB/s\n",
              bytes / 1048576.0, bytes * kReps / own / 1e9, bytes * kReps / cross / 1e9, bytes * cold_reps / cold / 1e9);
  std::free(data);
  std::free(evict);
  return 0;
}
