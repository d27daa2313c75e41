#include "tensorfuse/scratch.h"

#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace tf {

void prefault_pages(void* p, size_t bytes) {
#if defined(__linux__)
  constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14); older headers lack it
  const long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0 || !p) return;
  const uintptr_t page = uintptr_t(ps);
  const uintptr_t a = (uintptr_t(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (uintptr_t(p) + bytes) & ~(page - 1);
  if (e > a) (void)madvise(reinterpret_cast<void*>(a), e - a, kPopulateWrite);  // a hint only
#else
  (void)p, (void)bytes;
#endif
}

bool tune_malloc_for_large_buffers() {
#if defined(__GLIBC__)
  // No block gets its own mapping (M_MMAP_MAX 0: the largest threshold, 32 MiB, would still map
  // a 32 MiB attention output afresh at every call); the heap grows instead (glibc still maps
  // when it cannot), and its top is given back only past 256 MiB free. Setting these also turns
  // off glibc's dynamic threshold (which rises only after a mapped block is freed).
  const bool mmap_ok = mallopt(M_MMAP_MAX, 0) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
  return mmap_ok && trim_ok;
#else
  return false;
#endif
}

void* aligned_alloc64(size_t bytes) {
  if (bytes == 0) bytes = 64;
  const size_t rounded = (bytes + 63) & ~size_t(63);
  if (rounded < bytes) return nullptr;  // overflow
#if defined(_MSC_VER)
  return _aligned_malloc(rounded, 64);
#else
  return std::aligned_alloc(64, rounded);
#endif
}

void aligned_free64(void* p) {
#if defined(_MSC_VER)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

namespace {
struct Arena {
  void* ptr[kScratchSlots] = {};
  size_t cap[kScratchSlots] = {};
  ~Arena() {
    for (int i = 0; i < kScratchSlots; ++i) aligned_free64(ptr[i]);
  }
};
thread_local Arena t_arena;
}  // namespace

void* scratch_get(int slot, size_t bytes) {
  if (slot < 0 || slot >= kScratchSlots) return nullptr;
  Arena& a = t_arena;
  if (a.cap[slot] < bytes) {
    aligned_free64(a.ptr[slot]);
    a.ptr[slot] = nullptr;
    a.cap[slot] = 0;
    size_t grown = bytes + bytes / 4;  // grow with headroom to avoid realloc churn
    void* p = aligned_alloc64(grown);
    if (!p) return nullptr;
    a.ptr[slot] = p;
    a.cap[slot] = grown;
  }
  return a.ptr[slot];
}

CallerBuffer::CallerBuffer(size_t bytes) {
  if (bytes == 0) return;
  if (bytes <= kCallerScratchBytes) {
    p_ = scratch_get(kCallerSlot, bytes);
  } else {
    heap_ = aligned_alloc64(bytes);
    p_ = heap_;
  }
}

CallerBuffer::~CallerBuffer() { aligned_free64(heap_); }

}  // namespace tf
