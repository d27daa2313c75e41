// float32 as three bfloat16 parts, for float32-accurate products on bfloat16 hardware (AMX-BF16
// tiles: quant/quant_float_x86_amx.cc, attention/attention_x86_amx.cc).
//
// x = x0 + x1 + x2 exactly, with x0 = x truncated to its top 16 bits (a bfloat16),
// x1 = (x - x0) truncated likewise and x2 = x - x0 - x1: x - x0 keeps the low 16 bits of the
// significand and is exact in float32, x1 takes its top 8, x2 the at most 8 left. With parts of
// both operands of a product, the six products x_i y_j with i + j <= 2 leave out terms below
// 2^-20 |x y| (|x1| < 2^-7 |x|, |x2| < 2^-14 |x|), the error class of a float32 dot product;
// bfloat16 multipliers (AMX TDPBF16PS, VDPBF16PS) form each product exactly and add in float32.
// Lost: parts below float32's normal range (those units read denormal inputs as zero), i.e.
// relative accuracy for operands whose magnitude is below about 2^-110; callers check the range
// they need and take a float32 path otherwise. An infinity splits into a NaN part.
//
// Layouts written here (bfloat16 elements; part p of every layout at dst + p * part_stride):
//   rows:   row-major, A operands (x, Q, P): row i at + i * ldd, zero past n up to the
//           multiple of 32 that the tiles read;
//   panel:  rows of x as the columns of a B operand (x in a linear, K in Q K^T): 16 rows, depth
//           in steps of 32, step s at + s * step_stride, its pair q at + 32 q, holding
//           (x[row j][32 s + 2 q], x[row j][32 s + 2 q + 1]) at + 2 j;
//   cols:   a row-major B operand (V in P V) in panels of 16 columns by pairs of depth rows:
//           panel c at + c * panel_stride, depth pair q at + 32 q holding (v[2 q][16 c + j],
//           v[2 q + 1][16 c + j]) at + 2 j.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "x86_avx512.h"
#include "x86_avx512_transpose.h"

namespace tf {
namespace x86 {

// The three parts of 16 floats, each in the high half of its float32 lane (low half zero).
TF_AVX512 inline void split3(__m512 v, __m512i q[3]) {
  const __m512i top = _mm512_set1_epi32(int(0xFFFF0000u));
  const __m512i x0 = _mm512_and_si512(_mm512_castps_si512(v), top);
  const __m512 r1 = _mm512_sub_ps(v, _mm512_castsi512_ps(x0));
  const __m512i x1 = _mm512_and_si512(_mm512_castps_si512(r1), top);
  const __m512 x2 = _mm512_sub_ps(r1, _mm512_castsi512_ps(x1));
  q[0] = x0, q[1] = x1, q[2] = _mm512_and_si512(_mm512_castps_si512(x2), top);
}

// Word 2i + 1 of two vectors (64 words): the high halves of 32 float32, in order.
TF_AVX512 inline __m512i high_halves() {
  alignas(64) static const uint16_t idx[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                               23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                               45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  return _mm512_load_si512(idx);
}

TF_AVX512 inline __mmask16 lanes16(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

// The lanes of m from src as float32: float, or float16 (uint16_t) widened. The functions below
// take either.
TF_AVX512 inline __m512 load16(const float* src, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, src);
}
TF_AVX512 inline __m512 load16(const uint16_t* src, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src));
}

// The parts of 32 values (src[0, n), zero past n) as 32 bfloat16 each.
template <class T>
TF_AVX512 inline void split3_32(const T* src, int64_t n, __m512i out[3]) {
  const __m512i hi = high_halves();
  __m512i a[3], b[3];
  split3(load16(src, lanes16(n)), a);
  split3(load16(src + 16, lanes16(n - 16)), b);
  for (int p = 0; p < 3; ++p) out[p] = _mm512_permutex2var_epi16(a[p], hi, b[p]);
}

// rows x n floats (lds apart) as the `rows` layout, each row round_up(n, 32) long.
TF_AVX512 inline void split3_rows(const float* s, int64_t lds, int64_t rows, int64_t n,
                                  uint16_t* dst, int64_t ldd, int64_t part_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; j += 32) {
      __m512i q[3];
      split3_32(s + r * lds + j, n - j, q);
      for (int p = 0; p < 3; ++p) _mm512_storeu_si512(dst + p * part_stride + r * ldd + j, q[p]);
    }
}

// rows (<= 16; the others zero) of x, depth [0, depth) (zero past it up to a multiple of 32), as
// the `panel` layout.
template <class T>
TF_AVX512 inline void split3_panel(const T* x, int64_t ldx, int64_t rows, int64_t depth,
                                   uint16_t* dst, int64_t step_stride, int64_t part_stride) {
  for (int64_t s = 0; 32 * s < depth; ++s) {
    __m512i part[3][16];
    for (int64_t i = 0; i < 16; ++i) {
      __m512i q[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      if (i < rows) split3_32(x + i * ldx + 32 * s, depth - 32 * s, q);
      for (int p = 0; p < 3; ++p) part[p][i] = q[p];
    }
    // row i holds x row i as 16 pairs; the panel wants pair q of all 16 rows in its row q
    for (int p = 0; p < 3; ++p) {
      transpose16(part[p]);
      uint16_t* d = dst + p * part_stride + s * step_stride;
      for (int q = 0; q < 16; ++q) _mm512_storeu_si512(d + 32 * q, part[p][q]);
    }
  }
}

// Rows [0, depth) x columns [0, n) of row-major v (ldv) as the `cols` layout: round_up(n, 16) / 16
// panels of depth_pad / 2 pairs (depth_pad even, >= depth; rows past depth zero).
template <class T>
TF_AVX512 inline void split3_cols(const T* v, int64_t ldv, int64_t depth, int64_t n,
                                  int64_t depth_pad, uint16_t* dst, int64_t panel_stride,
                                  int64_t part_stride) {
  for (int64_t c = 0; 16 * c < n; ++c) {
    const __mmask16 m = lanes16(n - 16 * c);
    for (int64_t k = 0; k < depth_pad; k += 2) {
      __m512i a[3], b[3];
      split3(load16(v + k * ldv + 16 * c, k < depth ? m : __mmask16(0)), a);
      split3(load16(v + (k + 1) * ldv + 16 * c, k + 1 < depth ? m : __mmask16(0)), b);
      // word 2j: row k's part (its high half moved down), word 2j + 1: row k + 1's
      for (int p = 0; p < 3; ++p)
        _mm512_storeu_si512(dst + p * part_stride + c * panel_stride + 16 * k,
                            _mm512_or_si512(b[p], _mm512_srli_epi32(a[p], 16)));
    }
  }
}

// Whether rows x n floats are finite (no infinity, no NaN); *amax: their largest |x|.
template <class T>
TF_AVX512 inline bool finite_rows(const T* x, int64_t ldx, int64_t rows, int64_t n,
                                  float* amax) {
  __m512 big = _mm512_setzero_ps(), bad = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; j += 16) {
      const __m512 v = load16(x + r * ldx + j, lanes16(n - j));
      big = _mm512_max_ps(big, _mm512_abs_ps(v));
      bad = _mm512_add_ps(bad, _mm512_mul_ps(v, _mm512_setzero_ps()));  // NaN: inf or NaN
    }
  *amax = _mm512_reduce_max_ps(big);
  const float b = _mm512_reduce_add_ps(bad);
  return b == b;
}

}  // namespace x86
}  // namespace tf
