// The persistent GEMM thread pool (see thread-pool.h for why it exists).
#include "thread-pool.h"

#include <chrono>
#include <cstdlib>
#include <new>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CREAM_CPU_RELAX() _mm_pause()
#else
#define CREAM_CPU_RELAX() ((void)0)
#endif

namespace cream {

namespace {
// How long an idle worker spins before it sleeps on the condition variable: a
// model step issues matmuls back to back, a few microseconds apart, and a
// futex wake-up costs more than that.
constexpr auto kSpinFor = std::chrono::microseconds(100);

// How many pause instructions the caller spins through, waiting for the
// workers, before it sleeps: about 10 us, enough for the usual imbalance
// between two halves of a product; longer means the other thread is not
// running (a loaded machine) and spinning would only take its core.
constexpr int kCallerSpins = 4096;
}  // namespace

ThreadPool::ThreadPool(size_t threads) : scratch_((threads == 0 ? 1 : threads) + 1) {
  const size_t workers = threads <= 1 ? 0 : threads - 1;
  workers_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  for (auto& buffer : scratch_) std::free(buffer.data);
}

float* ThreadPool::Scratch(size_t index, size_t floats) {
  ScratchBuffer& buffer = scratch_[index];
  if (buffer.floats < floats) {
    std::free(buffer.data);
    buffer.data = nullptr;
    buffer.floats = 0;
    // aligned_alloc needs a size that is a multiple of the alignment.
    const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    void* memory = std::aligned_alloc(64, bytes);
    if (memory == nullptr) throw std::bad_alloc();
    buffer.data = static_cast<float*>(memory);
    buffer.floats = floats;
  }
  return buffer.data;
}

void ThreadPool::Run(size_t participants, const std::function<void(size_t)>& job) {
  if (participants > size()) participants = size();
  if (participants <= 1) {
    job(0);
    return;
  }
  job_ = &job;
  participants_.store(participants, std::memory_order_relaxed);
  // Every worker checks in, participating or not, so none can lag a
  // generation behind and mistake the next job for its own.
  remaining_.store(workers_.size(), std::memory_order_relaxed);
  {
    // Publishing under the mutex pairs with the sleeping workers' wait.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  job(0);
  const auto finished = [this] { return remaining_.load(std::memory_order_acquire) == 0; };
  for (int i = 0; i < kCallerSpins && !finished(); ++i) CREAM_CPU_RELAX();
  if (!finished()) {
    std::unique_lock<std::mutex> lock(done_mutex_);
    done_.wait(lock, finished);
  }
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(size_t index) {
  // Generation 0 is the one at construction. Reading generation_ here instead
  // would race with a Run() or destructor that starts before this thread
  // does, and the thread would sleep through it.
  uint64_t seen = 0;
  for (;;) {
    // Spin a little, then sleep until the generation moves.
    const auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
    while (generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
      for (int i = 0; i < 64; ++i) CREAM_CPU_RELAX();
      std::this_thread::yield();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    if (index < participants_.load(std::memory_order_relaxed)) (*job_)(index);
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the mutex, so the wake-up cannot fall between the caller's
      // check and its wait.
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.notify_one();
    }
  }
}

TaskShares::TaskShares(size_t tasks, size_t participants)
    : participants_(participants == 0 ? 1 : participants), shares_(new Share[participants_]) {
  for (size_t i = 0; i < participants_; ++i) {
    const uint64_t front = tasks * i / participants_;
    const uint64_t end = tasks * (i + 1) / participants_;
    shares_[i].range.store(front | end << 32, std::memory_order_relaxed);
  }
}

bool TaskShares::Next(size_t index, size_t* task) {
  // Its own share from the front.
  std::atomic<uint64_t>& own = shares_[index].range;
  uint64_t range = own.load(std::memory_order_relaxed);
  while ((range & 0xffffffffu) < (range >> 32)) {
    if (own.compare_exchange_weak(range, range + 1, std::memory_order_relaxed)) {
      *task = range & 0xffffffffu;
      return true;
    }
  }
  // Then the others' from the end.
  for (size_t step = 1; step < participants_; ++step) {
    std::atomic<uint64_t>& other = shares_[(index + step) % participants_].range;
    range = other.load(std::memory_order_relaxed);
    while ((range & 0xffffffffu) < (range >> 32)) {
      const uint64_t last = (range >> 32) - 1;
      if (other.compare_exchange_weak(range, (range & 0xffffffffu) | last << 32, std::memory_order_relaxed)) {
        *task = last;
        return true;
      }
    }
  }
  return false;
}

}  // namespace cream
