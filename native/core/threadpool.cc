// Job-queue thread pool. Each parallel_for call is one Job with an atomic task counter; workers
// take the oldest job with tasks left, and the caller drains its own job too, so progress never
// depends on a worker being free (no deadlock with nested or concurrent calls).
#include "tensorfuse/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tf {
namespace {

struct Job {
  const TaskFn* fn;
  int64_t n_tasks;
  int max_helpers;                 // workers allowed besides the caller
  std::atomic<int64_t> next{0};    // next task index to hand out
  std::atomic<int64_t> done{0};    // tasks finished
  std::atomic<int> helpers{0};     // workers that joined
  std::atomic<int> next_slot{1};   // slot 0 is the caller's
  std::mutex mu;
  std::condition_variable cv;
};

// Runs tasks of `job` until none are left. Returns how many this thread ran.
void drain(Job& job, int slot) {
  int64_t ran = 0;
  for (;;) {
    const int64_t t = job.next.fetch_add(1, std::memory_order_relaxed);
    if (t >= job.n_tasks) break;
    (*job.fn)(t, slot);
    ++ran;
  }
  if (ran > 0 && job.done.fetch_add(ran, std::memory_order_acq_rel) + ran == job.n_tasks) {
    std::lock_guard<std::mutex> lock(job.mu);
    job.cv.notify_all();
  }
}

class Pool {
 public:
  Pool() { resize(initial_threads()); }
  ~Pool() { stop_workers(); }

  int threads() const { return threads_.load(); }

  void resize(int n) {
    n = std::max(1, std::min(n, 1024));
    std::lock_guard<std::mutex> resize_lock(resize_mu_);
    stop_workers();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = false;
      stopping_flag_.store(false);
    }
    threads_.store(n);
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void run(int64_t n_tasks, const TaskFn& fn, int max_threads) {
    if (n_tasks <= 0) return;
    int want = threads();
    if (max_threads > 0) want = std::min(want, max_threads);
    if (want <= 1 || n_tasks == 1) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n_tasks = n_tasks;
    job->max_helpers = int(std::min<int64_t>(want - 1, n_tasks - 1));
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
      pending_.fetch_add(1, std::memory_order_relaxed);
    }
    cv_.notify_all();
    drain(*job, 0);
    {
      std::unique_lock<std::mutex> lock(job->mu);
      job->cv.wait(lock, [&] { return job->done.load(std::memory_order_acquire) == job->n_tasks; });
    }
    std::lock_guard<std::mutex> lock(mu_);
    erase_locked(job);
  }

  void erase_locked(const std::shared_ptr<Job>& job) {
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it == queue_.end()) return;
    queue_.erase(it);
    pending_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static int initial_threads() {
    if (const char* env = std::getenv("TENSORFUSE_THREADS")) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 1 && v <= 1024) return int(v);
    }
    return hardware_threads();
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      stopping_flag_.store(true);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void spin_for_work() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    while (pending_.load(std::memory_order_relaxed) == 0) {
      for (int i = 0; i < 64; ++i) cpu_relax();
      if (stopping_flag_.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() > until) return;
    }
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }

  // The oldest job that still has tasks and room for a helper; nullptr if none.
  std::shared_ptr<Job> pick_locked() {
    for (auto& j : queue_) {
      if (j->next.load(std::memory_order_relaxed) < j->n_tasks &&
          j->helpers.load(std::memory_order_relaxed) < j->max_helpers)
        return j;
    }
    return nullptr;
  }

  void worker_loop() {
    for (;;) {
      // Spin a little before sleeping: back-to-back ops (a decode loop, a benchmark) then find
      // the worker awake, where a futex wake-up costs tens of microseconds in a VM.
      spin_for_work();
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || (job = pick_locked()) != nullptr; });
        if (stopping_) return;
        job->helpers.fetch_add(1, std::memory_order_relaxed);
      }
      const int slot = job->next_slot.fetch_add(1, std::memory_order_relaxed);
      drain(*job, slot);
      // This job is exhausted for us; do not spin on it again.
      std::lock_guard<std::mutex> lock(mu_);
      if (job->next.load(std::memory_order_relaxed) >= job->n_tasks) erase_locked(job);
    }
  }

  std::atomic<int> threads_{1};
  std::mutex resize_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // stopping_, readable without the lock
  std::atomic<int> pending_{0};             // jobs in queue_
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit races with
  // Node's own teardown.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}
int threads() { return pool().threads(); }
void set_threads(int n) { pool().resize(n); }
void parallel_for(int64_t n_tasks, const TaskFn& fn, int max_threads) {
  pool().run(n_tasks, fn, max_threads);
}

}  // namespace tf
