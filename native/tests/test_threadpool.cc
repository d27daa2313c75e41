// The thread pool (include/tensorfuse/threadpool.h): every task runs exactly once, thread slots
// are in range and never shared by two threads at the same moment, and the promises the header
// makes hold under nesting, concurrent callers and set_threads() while jobs run.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "check.h"
#include "tensorfuse/threadpool.h"

using namespace tf;

namespace {

// A few hundred nanoseconds of work, so tasks overlap across threads.
void spin(int64_t t) {
  volatile uint64_t x = uint64_t(t);  // unsigned: wraps instead of overflowing
  for (unsigned i = 0; i < 200; ++i) x = x * 31 + i;
}

struct Coverage {
  int64_t n;
  std::unique_ptr<std::atomic<int>[]> hits;
  explicit Coverage(int64_t n_) : n(n_), hits(new std::atomic<int>[size_t(n_ > 0 ? n_ : 1)]()) {}
  void hit(int64_t t) { hits[size_t(t)].fetch_add(1, std::memory_order_relaxed); }
  // Tasks not run exactly once (0 when all is well).
  int64_t wrong() const {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += hits[size_t(i)].load() != 1;
    return bad;
  }
};

// One parallel_for over n tasks, checking coverage and the slot promises.
void check_one_job(int64_t n, int max_threads) {
  const int nthreads = threads();
  Coverage cov(n);
  std::unique_ptr<std::atomic<int>[]> busy(new std::atomic<int>[size_t(nthreads)]());
  std::atomic<int> out_of_range{0}, shared{0}, over_cap{0};
  parallel_for(
      n,
      [&](int64_t t, int slot) {
        if (slot < 0 || slot >= nthreads) {
          out_of_range.fetch_add(1);
        } else {
          if (busy[size_t(slot)].exchange(1)) shared.fetch_add(1);
          if (max_threads > 0 && slot >= max_threads) over_cap.fetch_add(1);
        }
        spin(t);
        cov.hit(t);
        if (slot >= 0 && slot < nthreads) busy[size_t(slot)].store(0);
      },
      max_threads);
  CHECK(cov.wrong() == 0, "n=%lld max_threads=%d: %lld tasks not run exactly once", (long long)n,
        max_threads, (long long)cov.wrong());
  CHECK(out_of_range.load() == 0, "n=%lld: slot outside [0, %d)", (long long)n, nthreads);
  CHECK(shared.load() == 0, "n=%lld: a slot was used by two threads at once", (long long)n);
  CHECK(over_cap.load() == 0, "n=%lld: slot >= max_threads=%d", (long long)n, max_threads);
}

// Restores the pool size when a case ends, whatever it did.
struct ThreadsGuard {
  int saved = threads();
  ~ThreadsGuard() { set_threads(saved); }
};

}  // namespace

TF_TEST(threadpool_every_task_once) {
  ThreadsGuard guard;
  for (int nthreads : {1, 2, 4}) {
    set_threads(nthreads);
    CHECK(threads() == nthreads, "set_threads(%d) -> threads() = %d", nthreads, threads());
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 100000})
      for (int max_threads : {0, 1, 2, 3}) check_one_job(n, max_threads);
  }
  CHECK(hardware_threads() >= 1);
}

TF_TEST(threadpool_nested) {
  ThreadsGuard guard;
  set_threads(4);
  constexpr int64_t kOuter = 12, kInner = 300;
  Coverage cov(kOuter * kInner);
  parallel_for(kOuter, [&](int64_t o, int) {
    parallel_for(kInner, [&](int64_t i, int) {
      spin(i);
      cov.hit(o * kInner + i);
    });
  });
  CHECK(cov.wrong() == 0, "%lld tasks not run exactly once", (long long)cov.wrong());
}

// Several std::threads call parallel_for at once (worker_threads, *Async ops do): each caller
// drains its own job, so all finish and none sees another's tasks.
TF_TEST(threadpool_concurrent_callers) {
  ThreadsGuard guard;
  set_threads(3);
  constexpr int kCallers = 4, kRounds = 100;
  std::atomic<int64_t> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        Coverage cov(257 + c);
        parallel_for(cov.n, [&](int64_t t, int) { spin(t); cov.hit(t); });
        wrong.fetch_add(cov.wrong());
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(wrong.load() == 0, "%lld tasks not run exactly once", (long long)wrong.load());
}

// set_threads() while other threads run jobs, nested ones included ("safe to call while other
// threads run ops").
TF_TEST(threadpool_resize_while_running) {
  ThreadsGuard guard;
  set_threads(2);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> wrong{0}, jobs{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&, c] {
      while (!stop.load()) {
        Coverage cov(64 + 37 * c);
        if (c == 2) {  // a nested job: 8 outer tasks of n / 8 inner ones
          parallel_for(8, [&](int64_t o, int) {
            parallel_for(cov.n / 8, [&](int64_t i, int) { cov.hit(o * (cov.n / 8) + i); });
          });
          for (int64_t t = 8 * (cov.n / 8); t < cov.n; ++t) cov.hit(t);
        } else {
          parallel_for(cov.n, [&](int64_t t, int) { spin(t); cov.hit(t); });
        }
        wrong.fetch_add(cov.wrong());
        jobs.fetch_add(1);
      }
    });
  }
  const int sizes[] = {1, 4, 2, 3, 1, 5};
  for (int i = 0; i < 60; ++i) {
    set_threads(sizes[i % 6]);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop.store(true);
  for (auto& t : callers) t.join();
  CHECK(wrong.load() == 0, "%lld tasks not run exactly once", (long long)wrong.load());
  CHECK(jobs.load() > 0, "no job finished while the pool was resized");
  CHECK(threads() == 5);
}
