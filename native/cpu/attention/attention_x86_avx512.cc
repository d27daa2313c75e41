// AVX-512 attention pieces: the online softmax of the tiled (prefill) path on 16-wide vectors,
// with the exponential of x86_avx512_math.h (the AVX2 one's operations on 16 lanes). The decode
// products are the AVX2 table's (16-wide versions measured no faster: bench/NOTES.md, Zen 5).
// Build notes: common/x86_avx512.h.
#include "attention_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "../common/x86_avx512_math.h"

namespace tf {
namespace attention_cpu {
namespace {

using x86::exp16_nonpos;

// exp(s - mx) over one row's tile in place, two 16-wide chains side by side (the polynomial is
// latency bound), the tail masked (lanes past n read as -inf: exp 0, not stored). Returns the
// row's sum.
TF_AVX512 float exp_row(float* row, int64_t n, float mx) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 e0 = exp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm));
    const __m512 e1 = exp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(row + j + 16), vm));
    _mm512_storeu_ps(row + j, e0);
    _mm512_storeu_ps(row + j + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const __m512 e = exp16_nonpos(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, row + j), vm));
    _mm512_mask_storeu_ps(row + j, m, e);
    s0 = _mm512_add_ps(s0, e);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// The AVX2 softmax_tile's three passes on 16-wide vectors: the new maxima, alpha for 16 rows per
// vector exp, then the exponentials and sums.
TF_AVX512 void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l,
                            float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const __m512 vninf = _mm512_set1_ps(ninf);
  for (int64_t r = 0; r < R; ++r) {  // alpha[r] holds the new maximum for now
    const float* row = s + r * lds;
    __m512 vmax = _mm512_set1_ps(m[r]);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    if (j < n)
      vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vninf, __mmask16((1u << (n - j)) - 1), row + j));
    alpha[r] = _mm512_reduce_max_ps(vmax);
  }
  for (int64_t r0 = 0; r0 < R; r0 += 16) {
    alignas(64) float d[16];
    const int64_t c = std::min<int64_t>(16, R - r0);
    // m_old - m_new <= 0; a row that is still all -inf gets 0 here (alpha 1 below)
    for (int64_t i = 0; i < 16; ++i)
      d[i] = i < c && alpha[r0 + i] != ninf ? m[r0 + i] - alpha[r0 + i] : 0.0f;
    _mm512_store_ps(d, exp16_nonpos(_mm512_load_ps(d)));
    for (int64_t i = 0; i < c; ++i) {
      const int64_t r = r0 + i;
      const float mx = alpha[r];
      float* row = s + r * lds;
      if (mx == ninf) {
        for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
        alpha[r] = 1.0f;
        continue;
      }
      const float sum = exp_row(row, n, mx);
      alpha[r] = d[i];
      l[r] = l[r] * d[i] + sum;
      m[r] = mx;
    }
  }
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.softmax_tile = softmax_tile;
  return k;
}

}  // namespace

const Kernels* kernels_avx512() {
  if (!kernels_avx2()) return nullptr;
  static const Kernels table = make_table();
  return &table;
}

}  // namespace attention_cpu
}  // namespace tf

#else
namespace tf {
namespace attention_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace attention_cpu
}  // namespace tf
#endif
