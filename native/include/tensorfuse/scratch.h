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
constexpr int kScratchSlots = 4;

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
