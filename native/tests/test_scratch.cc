// Scratch arenas and aligned allocation (include/tensorfuse/scratch.h): 64-byte alignment (the
// packed GEMM panels rely on it), slots independent, buffers per thread.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "check.h"
#include "tensorfuse/scratch.h"

using namespace tf;

namespace {
bool aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63u) == 0; }
}  // namespace

TF_TEST(scratch_alignment_and_slots) {
  for (size_t bytes : {size_t(1), size_t(63), size_t(64), size_t(1000), size_t(1) << 20,
                       size_t(3), size_t(5) << 20}) {
    void* p[kScratchSlots];
    for (int s = 0; s < kScratchSlots; ++s) {
      p[s] = scratch_get(s, bytes);
      REQUIRE(p[s] != nullptr, "slot %d, %zu bytes", s, bytes);
      CHECK(aligned64(p[s]), "slot %d, %zu bytes: %p", s, bytes, p[s]);
      std::memset(p[s], 0x40 + s, bytes);  // the whole size is ours to write
    }
    // Slots do not overlap: each still holds its own fill.
    for (int s = 0; s < kScratchSlots; ++s) {
      const uint8_t* b = static_cast<const uint8_t*>(p[s]);
      CHECK(b[0] == 0x40 + s && b[bytes - 1] == 0x40 + s, "slot %d overwritten by another", s);
    }
  }
  // Asking for less keeps the buffer (no churn in a kernel's loop).
  void* big = scratch_get(0, 4096);
  CHECK(scratch_get(0, 100) == big);
  CHECK(scratch_get(-1, 64) == nullptr);
  CHECK(scratch_get(kScratchSlots, 64) == nullptr);
}

TF_TEST(scratch_is_per_thread) {
  constexpr int kThreads = 4;
  void* seen[kThreads] = {};
  bool ok[kThreads] = {};
  std::atomic<int> arrived{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      uint8_t* p = static_cast<uint8_t*>(scratch_get(1, 1 << 16));
      seen[t] = p;
      if (p) std::memset(p, t + 1, 1 << 16);
      // Wait until every thread holds its buffer: a finished thread's arena may be reused.
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();
      if (!p) return;
      bool same = true;
      for (int i = 0; i < (1 << 16); ++i) same = same && p[i] == t + 1;
      ok[t] = same && aligned64(p);
    });
  }
  for (auto& t : ts) t.join();
  for (int t = 0; t < kThreads; ++t) {
    CHECK(ok[t], "thread %d: buffer not aligned or written by another thread", t);
    for (int u = 0; u < t; ++u) CHECK(seen[t] != seen[u], "threads %d and %d share a buffer", t, u);
  }
}

TF_TEST(aligned_alloc64_alignment) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(64), size_t(65), size_t(12345)}) {
    void* p = aligned_alloc64(bytes);
    REQUIRE(p != nullptr, "%zu bytes", bytes);
    CHECK(aligned64(p), "%zu bytes: %p", bytes, p);
    std::memset(p, 0, bytes);
    aligned_free64(p);
  }
}

// prefault_pages maps pages in without changing them: a written pattern survives (odd start and
// length, so partial pages at both ends), fresh zero memory stays zero, and null / empty ranges
// are accepted.
TF_TEST(prefault_pages_keeps_content) {
  const size_t n = (size_t(5) << 20) + 4093;
  std::vector<uint8_t> a(n);
  for (size_t i = 0; i < n; ++i) a[i] = uint8_t(i * 131 + 7);
  prefault_pages(a.data() + 3, n - 3);
  bool same = true;
  for (size_t i = 0; i < n; ++i) same = same && a[i] == uint8_t(i * 131 + 7);
  CHECK(same, "prefault_pages changed a written buffer");
  uint8_t* z = static_cast<uint8_t*>(std::calloc(n, 1));
  REQUIRE(z != nullptr);
  prefault_pages(z, n);
  bool zero = true;
  for (size_t i = 0; i < n; ++i) zero = zero && z[i] == 0;
  CHECK(zero, "prefault_pages changed fresh zero memory");
  std::free(z);
  prefault_pages(nullptr, 100);
  prefault_pages(a.data(), 0);
}

// CallerBuffer: the calling thread's kCallerSlot up to kCallerScratchBytes (the same memory for
// the next op on this thread, none of the other slots), the heap above it, nothing for 0 bytes;
// always 64-byte aligned and the whole size writable.
TF_TEST(caller_buffer_slot_and_heap) {
  void* first = nullptr;
  {
    CallerBuffer a(100000);
    REQUIRE(a.get() != nullptr);
    CHECK(aligned64(a.get()), "%p", a.get());
    std::memset(a.get(), 0x5a, 100000);
    first = a.get();
    for (int s = 0; s < kScratchSlots; ++s)
      if (s != kCallerSlot) CHECK(scratch_get(s, 64) != first, "slot %d shares the buffer", s);
  }
  {
    CallerBuffer b(1000);  // smaller: the same kept memory
    CHECK(b.get() == first, "%p vs %p", b.get(), first);
  }
  {
    CallerBuffer big(kCallerScratchBytes + 1);  // the heap, not the slot
    REQUIRE(big.get() != nullptr);
    CHECK(big.get() != first && aligned64(big.get()), "%p", big.get());
    std::memset(big.get(), 1, kCallerScratchBytes + 1);
    CallerBuffer small(64);  // the slot is still free for the op's other buffer
    CHECK(small.get() == first, "%p vs %p", small.get(), first);
  }
  CallerBuffer none(0);
  CHECK(none.get() == nullptr);
  // another thread has its own slot
  void* other = nullptr;
  std::thread([&] {
    CallerBuffer c(100000);
    other = c.get();
  }).join();
  CHECK(other != nullptr && other != first, "%p vs %p", other, first);
}
