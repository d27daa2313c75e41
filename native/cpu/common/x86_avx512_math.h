// AVX-512 vector math (functions marked TF_AVX512; included by *_x86_avx512.cc files, which are
// compiled with the AVX2 flags: see x86_avx512.h).
#pragma once
#include <immintrin.h>

#include "x86_avx2_math.h"
#include "x86_avx512.h"

namespace tf {
namespace x86 {

// exp8_nonpos (x86_avx2_math.h) on 16 lanes: the same operations per lane, so the same results:
// exp(x) for x <= 0 within 5e-7 relative over [-87.3, 0], exactly 0 at or below -87.3 (and for
// -inf), NaN kept.
TF_AVX512 inline __m512 exp16_nonpos(__m512 x) {
  const float* c = kExpNonposCoeffs;
  const __m512 lo = _mm512_set1_ps(-87.3f), magic = _mm512_set1_ps(12582912.0f + 127.0f);
  const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);
  x = _mm512_max_ps(lo, x);
  const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic);
  const __m512 r =
      _mm512_fnmadd_ps(_mm512_sub_ps(t, magic), _mm512_set1_ps(0.693147180559945f), x);
  __m512 p = _mm512_set1_ps(c[5]);
  for (int i = 4; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[i]));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
  return _mm512_maskz_mul_ps(keep, p, scale);
}

// Lane i of the result: the sum of the 16 lanes of v[i], for the first N <= 16 vectors (lanes
// past N: 0). Pairs of vectors are interleaved and added at each level (unpack, then 64-bit
// shuffles, then 128-bit lane shuffles twice), each level halving the vectors and doubling the
// sums each holds: 45 ops for 16 sums.
template <int N>
TF_AVX512 inline __m512 lane_sums(const __m512* v) {
  __m512 a[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = i < N ? v[i] : _mm512_setzero_ps();
  __m512 b[8], c[4], d[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)  // lanes 4l + {0, 1, 2, 3}: v[2i], v[2i+1], v[2i], v[2i+1]
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)  // lanes 4l + j: v[4i + j], partial over 128-bit lane l
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // lanes: v[8i..8i+3] (128-bit lanes 0, 1), v[8i+4..8i+7] (2, 3)
    d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xee));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88),
                       _mm512_shuffle_f32x4(d[0], d[1], 0xdd));
}

}  // namespace x86
}  // namespace tf
