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

}  // namespace cream

#endif  // CREAM_COMPUTE_THREAD_POOL_H_
