// The one native thread pool. parallel_for splits [0, n) into tasks that the pool's workers and
// the calling thread take from a shared counter; the caller always works on its own job, so
// concurrent callers (worker_threads, async ops, nested calls) never wait on each other to make
// progress. Sized to the machine, TENSORFUSE_THREADS, or set_threads().
#pragma once
#include <cstdint>
#include <functional>

namespace tf {

// fn(task_index, thread_slot): thread_slot is in [0, threads()) and unique among the threads
// running tasks of this job at the same moment (use it to index per-thread scratch).
using TaskFn = std::function<void(int64_t task, int slot)>;

// Threads that parallel_for may use (the caller included). At least 1.
int threads();
// Resize the pool. n >= 1. Safe to call while other threads run ops.
void set_threads(int n);
// Runs fn for every task in [0, n_tasks); returns when all are done. max_threads caps the threads
// used (0 = all). Exceptions must not escape fn.
void parallel_for(int64_t n_tasks, const TaskFn& fn, int max_threads = 0);
// Threads the machine offers (hardware_concurrency, at least 1).
int hardware_threads();

}  // namespace tf
