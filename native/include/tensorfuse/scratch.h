// Per-thread scratch arenas: kernels take their packing buffers and tiles from the arena of the
// thread they run on, so no kernel calls malloc in a hot loop. Memory grows to the largest
// request seen and is kept for the thread's lifetime.
#pragma once
#include <cstddef>

namespace tf {

// A 64-byte aligned buffer of at least `bytes`, owned by the calling thread, valid until the
// next scratch_get with the same slot on this thread. slot picks one of a few independent buffers
// so one kernel can hold several at once. Returns nullptr when memory is exhausted.
void* scratch_get(int slot, size_t bytes);
constexpr int kScratchSlots = 5;
// The slot an op's calling thread holds across its parallel_for for buffers its tasks share; no
// task takes it (tasks also run on the calling thread). Through CallerBuffer.
constexpr int kCallerSlot = 4;

// A buffer an op holds while its tasks run (packed x, partial outputs): the calling thread's
// kCallerSlot, kept between calls, when at most kCallerScratchBytes; else a heap block freed with
// this object. A fresh heap block per call tends to land above outputs the GC has not freed yet,
// on pages the OS maps in at first write (moe.ffn's 6 MiB partial output, int4 linear's packed
// x: 7 ms of faults in a 14 ms call; bench/NOTES.md, "Zen 5, session 20"). get() is nullptr when
// memory is exhausted (or bytes is 0).
class CallerBuffer {
 public:
  explicit CallerBuffer(size_t bytes);
  ~CallerBuffer();
  CallerBuffer(const CallerBuffer&) = delete;
  CallerBuffer& operator=(const CallerBuffer&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
  void* heap_ = nullptr;
};
constexpr size_t kCallerScratchBytes = size_t(16) << 20;

// Maps in the whole pages of [p, p + bytes) for writing now, in one system call (Linux >= 5.14,
// madvise MADV_POPULATE_WRITE; elsewhere, or when the kernel refuses, nothing). The content is
// unchanged (fresh anonymous pages stay zero). For large fresh buffers that a kernel is about to
// fill: on a paravirtualised host one page fault can cost ~15 us, ~4 ms per MiB of output.
void prefault_pages(void* p, size_t bytes);

// glibc only: serve every allocation from the heap (no block of its own mapping) and keep up to
// 256 MiB of freed heap top mapped. By default glibc maps each buffer from 128 KiB up freshly
// and unmaps it on free, so an op's output (a JS ArrayBuffer: calloc) and its packing buffers
// page-fault on first write at every call: ~3 ms per MiB on a paravirtualised host, 3.6 -> 1.0
// ms for a 512^3 matmul (bench/NOTES.md). Freed memory then stays with the process for reuse
// (as ORT's arena or PyTorch's caching allocator keep theirs). Process-wide; the addon calls it
// once at load unless TENSORFUSE_MALLOC_TUNING=0. Returns whether the settings were applied.
bool tune_malloc_for_large_buffers();

// Aligned allocation helpers for longer-lived buffers (packed weights).
void* aligned_alloc64(size_t bytes);
void aligned_free64(void* p);

}  // namespace tf
