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

}  // namespace x86
}  // namespace tf
