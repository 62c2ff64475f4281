// WorkPool: a fixed set of threads running jobs from a bounded queue, and BufferPool: a
// bounded set of reusable byte buffers. Together they bound a pipeline's memory: a
// producer blocks in submit() or acquire() while consumers are behind.
//
// Thread contract: every method is safe to call from any thread, except that the
// destructor must not race with submit(). Jobs must not throw.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace coffer::repo {

class WorkPool {
 public:
  using Job = std::function<void()>;

  // `threads` workers; at most `depth` jobs wait in the queue.
  WorkPool(unsigned threads, std::size_t depth) : depth_(depth == 0 ? 1 : depth) {
    for (unsigned i = 0; i < (threads == 0 ? 1 : threads); ++i)
      threads_.emplace_back([this] { run(); });
  }
  ~WorkPool() { join(); }

  // Runs every queued job (and any job they queue), then stops the threads. Submitting
  // after join() returns is not allowed.
  void join() {
    {
      std::scoped_lock lock(mutex_);
      closing_ = true;
    }
    ready_.notify_all();
    room_.notify_all();
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `job` unless the queue is full; then runs it on the calling thread (a job that
  // submits more jobs of its own kind can never deadlock this way).
  void submit_or_run(Job job) {
    {
      std::scoped_lock lock(mutex_);
      if (jobs_.size() < depth_ || closing_) {
        jobs_.push_back(std::move(job));
        job = nullptr;
      }
    }
    if (job)
      return job();
    ready_.notify_one();
  }

  // Queues `job`, blocking while the queue is full.
  void submit(Job job) {
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] { return jobs_.size() < depth_ || closing_; });
    jobs_.push_back(std::move(job));
    lock.unlock();
    ready_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        // When closing, stay while another job runs: it may still queue more.
        ready_.wait(lock, [&] { return !jobs_.empty() || (closing_ && active_ == 0); });
        if (jobs_.empty())
          return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
        ++active_;
      }
      room_.notify_one();
      job();
      std::scoped_lock lock(mutex_);
      if (--active_ == 0 && closing_)
        ready_.notify_all();
    }
  }

  const std::size_t depth_;
  std::mutex mutex_;  // guards jobs_, closing_, active_
  std::condition_variable ready_, room_;
  std::deque<Job> jobs_;
  bool closing_ = false;
  unsigned active_ = 0;                // jobs running now
  std::vector<std::jthread> threads_;  // last: joined before the queue goes
};

// A buffer of `capacity` bytes, not zero-filled, returned to its pool when destroyed.
class PooledBuffer;

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  // At most `count` buffers of `capacity` bytes exist at once.
  static std::shared_ptr<BufferPool> create(std::size_t capacity, std::size_t count) {
    return std::shared_ptr<BufferPool>(new BufferPool(capacity, count));
  }
  // Blocks until a buffer is free.
  std::unique_ptr<PooledBuffer> acquire();
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

 private:
  friend class PooledBuffer;
  BufferPool(std::size_t capacity, std::size_t count) : capacity_(capacity), count_(count) {}
  void release(std::unique_ptr<std::byte[]> memory) {
    {
      std::scoped_lock lock(mutex_);
      free_.push_back(std::move(memory));
      --out_;
    }
    freed_.notify_one();
  }

  const std::size_t capacity_, count_;
  std::mutex mutex_;  // guards free_, out_
  std::condition_variable freed_;
  std::vector<std::unique_ptr<std::byte[]>> free_;
  std::size_t out_ = 0;
};

class PooledBuffer {
 public:
  PooledBuffer(std::shared_ptr<BufferPool> pool, std::unique_ptr<std::byte[]> memory)
      : pool_(std::move(pool)), memory_(std::move(memory)) {}
  ~PooledBuffer() { pool_->release(std::move(memory_)); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;

  [[nodiscard]] std::byte* data() const { return memory_.get(); }
  [[nodiscard]] std::size_t capacity() const { return pool_->capacity(); }
  std::size_t size = 0;  // bytes in use

 private:
  std::shared_ptr<BufferPool> pool_;
  std::unique_ptr<std::byte[]> memory_;
};

inline std::unique_ptr<PooledBuffer> BufferPool::acquire() {
  std::unique_ptr<std::byte[]> memory;
  {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return !free_.empty() || out_ < count_; });
    ++out_;
    if (!free_.empty()) {
      memory = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!memory)
    memory = std::make_unique_for_overwrite<std::byte[]>(capacity_);
  return std::make_unique<PooledBuffer>(shared_from_this(), std::move(memory));
}

}  // namespace coffer::repo
