// AVX2 + FMA vector math shared by the kernel families (softmax, sigmoid, silu).
// Included only by files compiled with -mavx2 -mfma -mf16c (the <family>_x86_avx2.cc files).
#pragma once
#include <immintrin.h>

#include <cmath>

namespace tf {
namespace x86 {

// The core of exp8: n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two
// for accuracy, |r| <= ln2/2), and exp(r) by Cephes' degree-6 minimax polynomial; exp(x) is the
// result times 2^n.
inline __m256 exp8_reduced(__m256 x, __m256* n_out) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  *n_out = n;
  return _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
}

// exp(x) for 8 lanes, the Cephes expf scheme: x = n ln2 + r with |r| <= ln2/2 (ln 2 split in two
// for accuracy), exp(r) by Cephes' degree-6 minimax polynomial, times 2^n built in the exponent
// bits; within 2 ulp of std::exp over the range a softmax feeds it. Inputs at or below -88.38
// (including -inf: masked scores, -inf logits) give exactly 0, NaN stays NaN, and 2^n is built in
// two steps so n = 128 (x near 88.7) does not overflow the exponent field.
inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
  const __m256 nan_mask = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  __m256 n;
  const __m256 p = exp8_reduced(x, &n);
  // 2^n in two steps so n = 128 (x near 88.7) does not overflow the exponent field
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  // below the clamp exp is 0 (the softmax of a -inf logit), NaN stays NaN
  y = _mm256_and_ps(y, _mm256_cmp_ps(x, lo, _CMP_GT_OQ));
  return _mm256_blendv_ps(y, _mm256_set1_ps(NAN), nan_mask);
}

// exp(x) for x <= 0, the online softmax's exp(s - max), cut to the operations its accuracy needs
// (a softmax weight is at most 1, and float32 attention is held to 1e-5):
//   t = x log2(e) + (1.5 * 2^23 + 127): adding 1.5 * 2^23 rounds to an integer, so the low mantissa
//     bits of t hold n + 127 with n = round(x log2(e)), and t << 23 is 2^n as a float32;
//   r = x - n ln2 in one FMA (|r| <= ln2 / 2; ln 2's rounding error times |n| stays below 3e-8 |x|
//     in r, i.e. a relative error of 3e-8 |x| in exp(x), whose weight e^x makes it vanish);
//   exp(r) by a degree-5 minimax polynomial with p(0) = 1 exactly, so exp(0) = 1 and the online
//     softmax's alpha stays 1 while a row's max does not move (relative error 9.1e-8 on
//     [-ln2/2, ln2/2], fitted for this file by Lawson's iteration).
// Within 5e-7 relative of exp over [-87.3, 0]; at or below -87.3 (including -inf: masked scores)
// exactly 0; NaN stays NaN (max keeps its second operand when one is NaN, the keep test is
// unordered). Two thirds of the latency of the Cephes form in exp8, which matters on Zen 1: the
// softmax's exps are a dependent chain per vector and the FP scheduler holds about two of them.
// (exp16_nonpos of x86_avx512_math.h is the same on 16 lanes.)
constexpr float kExpNonposCoeffs[6] = {1.0f,
                                       0.9999997019767761f,
                                       0.4999915063381195f,
                                       0.1666763573884964f,
                                       0.04189793020486832f,
                                       0.008290315046906471f};
inline __m256 exp8_nonpos(__m256 x) {
  const float* c = kExpNonposCoeffs;
  const __m256 lo = _mm256_set1_ps(-87.3f), magic = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);
  x = _mm256_max_ps(lo, x);
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 r =
      _mm256_fnmadd_ps(_mm256_sub_ps(t, magic), _mm256_set1_ps(0.693147180559945f), x);
  __m256 p = _mm256_set1_ps(c[5]);
  for (int i = 4; i >= 0; --i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c[i]));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
  return _mm256_and_ps(_mm256_mul_ps(p, scale), keep);
}

// exp8_nonpos of two vectors, step by step side by side (the same operations per lane, so the same
// results). Written as two calls, the two chains sit one after the other in program order and Zen
// 1's FP scheduler holds too little of either to overlap them (about 20% slower in a loop of exps
// on this machine; four at a time spill registers and lose more).
inline void exp8_nonpos_x2(__m256* a, __m256* b) {
  const float* c = kExpNonposCoeffs;
  const __m256 lo = _mm256_set1_ps(-87.3f), magic = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 keep_a = _mm256_cmp_ps(*a, lo, _CMP_NLT_UQ);
  const __m256 keep_b = _mm256_cmp_ps(*b, lo, _CMP_NLT_UQ);
  const __m256 xa = _mm256_max_ps(lo, *a), xb = _mm256_max_ps(lo, *b);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ta = _mm256_fmadd_ps(xa, log2e, magic), tb = _mm256_fmadd_ps(xb, log2e, magic);
  const __m256 ln2 = _mm256_set1_ps(0.693147180559945f);
  const __m256 ra = _mm256_fnmadd_ps(_mm256_sub_ps(ta, magic), ln2, xa);
  const __m256 rb = _mm256_fnmadd_ps(_mm256_sub_ps(tb, magic), ln2, xb);
  __m256 pa = _mm256_set1_ps(c[5]), pb = pa;
  for (int i = 4; i >= 0; --i) {
    pa = _mm256_fmadd_ps(pa, ra, _mm256_set1_ps(c[i]));
    pb = _mm256_fmadd_ps(pb, rb, _mm256_set1_ps(c[i]));
  }
  const __m256 sa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(ta), 23));
  const __m256 sb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(tb), 23));
  *a = _mm256_and_ps(_mm256_mul_ps(pa, sa), keep_a);
  *b = _mm256_and_ps(_mm256_mul_ps(pb, sb), keep_b);
}

}  // namespace x86
}  // namespace tf
