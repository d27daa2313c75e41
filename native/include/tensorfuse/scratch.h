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

// Aligned allocation helpers for longer-lived buffers (packed weights).
void* aligned_alloc64(size_t bytes);
void aligned_free64(void* p);

}  // namespace tf
