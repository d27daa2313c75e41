// The decode kernels' software prefetch of the next (step, head) unit's K and V rows, shared by
// the x86 attention files (attention_x86_avx2.cc, attention_x86_avx512.cc).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "attention_kernels.h"

namespace tf {
namespace attention_cpu {

// Compiler barriers for GCC/Clang (MSVC has no inline asm on x64; there they are no-ops):
// TF_SIDE_EFFECT gives a function an observable effect; TF_IN_REGISTER(v) makes v opaque, so the
// compiler keeps it in a register instead of re-loading it from memory at every use.
#if defined(__GNUC__) || defined(__clang__)
#define TF_SIDE_EFFECT() __asm__ volatile("")
#define TF_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define TF_SIDE_EFFECT() ((void)0)
#define TF_IN_REGISTER(v) ((void)0)
#endif

// Requests rows [j, j + c) of the hint's K (clipped to its row count), every line. T0 hints (into
// L1): on Zen 5 the Hk = 8 decode from memory ran 6% faster than with T1 (float32 1.10-1.14 ->
// 1.03-1.06 ms, bfloat16 0.75-0.97 -> 0.67-0.74); on Zen 1 the two tied.
// TF_SIDE_EFFECT gives the function a side effect: without it GCC's pure/const analysis
// sees a function of prefetches only, calls it side-effect free, and deletes every call.
inline void prefetch_k_rows(const Prefetch& pf, int64_t ldk, int64_t row_bytes, size_t esz,
                            int64_t j, int64_t c) {
  TF_SIDE_EFFECT();
  for (int64_t i = j; i < std::min(j + c, pf.k_rows); ++i)
    for (int64_t b = 0; b < row_bytes; b += 64)
      _mm_prefetch(static_cast<const char*>(pf.k) + i * ldk * esz + b, _MM_HINT_T0);
}

// Requests the lines of row j of the hint's V that start inside bytes [b0, b1) of the row: a
// pass over columns [d, d + w) asks for [d * esz, (d + w) * esz), so the passes together ask for
// every line once.
inline void prefetch_v_cols(const Prefetch& pf, int64_t j, int64_t b0, int64_t b1, size_t esz) {
  TF_SIDE_EFFECT();
  if (j >= pf.v_rows) return;
  const char* row = static_cast<const char*>(pf.v) + j * pf.ldv * int64_t(esz);
  for (int64_t b = (b0 + 63) & ~int64_t(63); b < b1; b += 64) _mm_prefetch(row + b, _MM_HINT_T0);
}

// Key-major decode (qk_keys / pv_keys) with 16-bit K / V: the four rows [j, j + 4) of head h
// (key rows ld elements apart, heads ldh apart; D elements of esz bytes each), every line, asked
// for kKeyMajorAhead keys before they are read. The hardware prefetcher alone left the float16
// / bfloat16 cache at 27-30 GB/s (Hk = 32, Sk = 4096, Zen 5, from memory): 4-8 keys ahead gave
// 39-43 GB/s; float32 K / V already stream at the memory's rate and are left to it.
constexpr int64_t kKeyMajorAhead = 8;
inline void prefetch_key_block(const void* base, int64_t ld, int64_t ldh, int64_t D, size_t esz,
                               int64_t j, int64_t h, int64_t n) {
  TF_SIDE_EFFECT();
  if (esz != 2 || j + kKeyMajorAhead + 4 > n) return;
  const char* row = static_cast<const char*>(base) +
                    ((j + kKeyMajorAhead) * ld + h * ldh) * int64_t(esz);
  for (int t = 0; t < 4; ++t)
    for (int64_t b = 0; b < D * int64_t(esz); b += 64)
      _mm_prefetch(row + t * ld * int64_t(esz) + b, _MM_HINT_T0);
}

}  // namespace attention_cpu
}  // namespace tf
