// A small persistent thread pool for the GEMM: the calling thread plus
// (threads - 1) workers that live as long as the addon instance. Starting
// threads per call (std::async) costs tens of microseconds, which is the whole
// budget of a decoding-step matmul; these workers spin briefly, then sleep.
#ifndef CREAM_COMPUTE_THREAD_POOL_H_
#define CREAM_COMPUTE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cream {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Participants in Run(): the caller plus the workers.
  size_t size() const { return workers_.size() + 1; }

  // Runs job(index) once on each of the first `participants` threads (the
  // caller is index 0) and returns when all have finished. Not reentrant:
  // one JS thread owns one pool.
  void Run(size_t participants, const std::function<void(size_t)>& job);

  // Scratch memory of `floats` floats, 64-byte aligned, owned by participant
  // `index` (0 .. size() - 1), or shared by all when index == size(); kept
  // between calls (packing buffers) and freed by the destructor.
  float* Scratch(size_t index, size_t floats);

 private:
  void WorkerLoop(size_t index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // The caller sleeps here, after a short spin, until the last worker is done.
  std::mutex done_mutex_;
  std::condition_variable done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<size_t> remaining_{0};
  std::atomic<size_t> participants_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(size_t)>* job_ = nullptr;

  struct ScratchBuffer {
    float* data = nullptr;
    size_t floats = 0;
  };
  std::vector<ScratchBuffer> scratch_;
};

// Hands out tasks 0 .. tasks - 1 (fewer than 2^32) to the participants of
// one Run(): each starts on its own contiguous share, in order (participant i
// the i-th share), and one that runs out takes tasks from the far end of the
// others'. Static shares keep the rows a thread writes in one op on that
// thread's core for the next op that splits the same rows the same way (on
// some placements of a VM's vCPUs, reading lines the other core just wrote
// runs at DRAM speed: scripts/cross-core-read.cc); taking from the others
// still lets a thread that falls behind hand work over. Measured on the Zen 3
// VM, a chain of products runs 1-3% faster than with one shared counter
// (scripts/chain-ab.ts).
class TaskShares {
 public:
  TaskShares(size_t tasks, size_t participants);
  // The next task for participant `index`; false when none is left.
  bool Next(size_t index, size_t* task);

 private:
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};  // front in the low 32 bits, end in the high
  };
  size_t participants_;
  std::unique_ptr<Share[]> shares_;
};

}  // namespace cream

#endif  // CREAM_COMPUTE_THREAD_POOL_H_
