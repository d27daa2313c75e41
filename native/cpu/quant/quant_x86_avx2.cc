// AVX2 + FMA quantized kernels. Compiled with -mavx2 -mfma -mf16c (this file only) and picked at
// run time when cpuid reports them. Layouts: tensorfuse/quant.h; contracts: quant_kernels.h.
//
// int4 / int8 x float: codes masked in place inside dword lanes and used as the subnormal floats
//   they then are, met by x reordered and pre-scaled to match (prep_x, below); no shuffle and no
//   conversion of the weights; the int4 zero point and the int8 offset are subtracted in the
//   lanes (exactly). Stored order (x as given) where the lanes do not apply: int8 8 weights ->
//   vpmovsxbd -> vcvtdq2ps -> FMA.
// W8A8: vpmaddubsw takes unsigned x signed bytes, so the sign moves onto the activations:
//   |w| (unsigned, 0..128) x sign(x, w) (signed, x in [-127, 127]) = w * x exactly, and a pair
//   sum is at most 2 * 128 * 127 = 32512 < 32767: vpmaddubsw never saturates. vpmaddwd with ones
//   widens the pairs to int32 (Intel SDM, PMADDUBSW / PMADDWD; the llama.cpp q8 idiom).
#include "quant_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace tf {
namespace quant_cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Eight int32 vectors -> lane l of `low` = the sum of a_l's low 128-bit half, lane l of `high`
// that of its high half (a vphaddd tree, the halves regrouped): integer adds, exact in any order.
inline void hsum8_halves(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i a4, __m256i a5,
                         __m256i a6, __m256i a7, __m256i& low, __m256i& high) {
  const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
  const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a4, a5), _mm256_hadd_epi32(a6, a7));
  low = _mm256_permute2x128_si256(u0, u1, 0x20);
  high = _mm256_permute2x128_si256(u0, u1, 0x31);
}

// Lane l = the sum of all of a_l.
inline __m256i hsum8(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i a4, __m256i a5,
                     __m256i a6, __m256i a7) {
  __m256i low, high;
  hsum8_halves(a0, a1, a2, a3, a4, a5, a6, a7, low, high);
  return _mm256_add_epi32(low, high);
}

inline __m256 i8x8_to_ps(const int8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

float row_i8_f32(const QuantWeight& w, int64_t n, const float* x) {
  const int64_t G = w.groups(), gs = w.group();
  const int8_t* q = static_cast<const int8_t*>(w.q) + n * w.q_stride();
  const float* s = w.scales + n * w.s_stride();
  __m256 tot = _mm256_setzero_ps();
  float tail = 0.0f;
  for (int64_t g = 0; g < G; ++g) {
    int64_t k = g * gs;
    const int64_t end = k + gs;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; k + 32 <= end; k += 32) {
      a0 = _mm256_fmadd_ps(i8x8_to_ps(q + k), _mm256_loadu_ps(x + k), a0);
      a1 = _mm256_fmadd_ps(i8x8_to_ps(q + k + 8), _mm256_loadu_ps(x + k + 8), a1);
      a2 = _mm256_fmadd_ps(i8x8_to_ps(q + k + 16), _mm256_loadu_ps(x + k + 16), a2);
      a3 = _mm256_fmadd_ps(i8x8_to_ps(q + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= end; k += 8)
      a0 = _mm256_fmadd_ps(i8x8_to_ps(q + k), _mm256_loadu_ps(x + k), a0);
    float t = 0.0f;
    for (; k < end; ++k) t += float(q[k]) * x[k];
    const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    tot = _mm256_fmadd_ps(_mm256_set1_ps(s[g]), a, tot);
    tail += s[g] * t;
  }
  return hsum(tot) + tail;
}

// Float-activation GEMVs (prep_x, row_i4_lanes, row_i8_lanes): the codes are never converted to
// float. A dword masked to a field below bit 24, read as a float32, is the field's integer value
// times 2^-149: every bit pattern below 2^24 is a subnormal or in the first normal binade, where a
// pattern's value is the pattern times 2^-149 (IEEE 754 binary32). So per 8 weights one vpand
// gives 8 floats u c_j 2^-149 (c_j the field's place value), one vsubps of the zero point at the
// same place, (u - z) c_j 2^-149, exact (a difference of subnormals), and one FMA, where
// vpmovsxbd / vcvtdq2ps run the conversion on one pipe only (4 weights per cycle at most).
//   int4: 64 weights = 32 bytes = 8 dwords; nibble j of dword i is element 8i + j. Nibbles 0-2
//         are masked from the dword, 3-5 from it shifted right by 12, 6-7 shifted by 24: places
//         16^j' with j' = j mod 3, so the zero point is needed at three places only.
//   int8: 32 weights = 8 dwords; byte j of dword i is element 4i + j, place 256^j' (j' = j, and
//         byte 3 from the dword shifted right by 8: j' = 2); the signed byte becomes offset
//         binary u = w + 128 (one vpxor per 32 weights), z = 128.
// x is stored reordered and pre-scaled to meet them,
//   xd[L b + 8j + i] = x[L b + P i + j] 2^(149 - log2(c_j) - S),   (L, P) = (64, 8) or (32, 4),
// exact powers of two, so the FMA sees (u - z) x 2^-S, and the GEMV multiplies its sums by 2^S
// (stored at xd[K]). S = e + 24 for max |x| < 2^e keeps every xd below 2^126 and the products of
// any x above 2^(e-100) normal. Subnormal inputs must be honoured: the GEMV takes the
// stored-order path when MXCSR.DAZ is set. Groups: int4 multiples of 64 or 32 (two per 64-block,
// one per 128-bit half), int8 multiples of 32 or one per row.
//
// Where subnormal inputs are slow (Intel: a microcode assist per FMA, fast_subnormals()), int4
// takes the same lanes with normal codes: (v & m) | 2^23's pattern is the float 2^23 + u c_j
// (u c_j <= 15 * 256 < 2^23: exact), and subtracting 2^23 + z c_j leaves (u - z) c_j exactly,
// one vpor more per 8 weights; x is then scaled by 1 / c_j alone (S = 0, xd[K + 1] =
// kNormalLanes). int8's byte at place 2^16 would reach the exponent, so int8 keeps the stored
// order there.
bool prep_x(const QuantWeight& w, const float* x, float* xd) {
  const int64_t gs = w.group();
  const bool i4 = w.bits == 4;
  const bool normal = !fast_subnormals();
  if (normal && !i4) return false;
  const int64_t L = i4 ? 64 : 32, P = i4 ? 8 : 4;
  if (w.K % L != 0 || (i4 ? gs % 64 != 0 && gs != 32 : gs % 32 != 0)) return false;
  float big = 0.0f;
  for (int64_t k = 0; k < w.K; ++k) big = std::max(big, std::fabs(x[k]));
  if (!std::isfinite(big)) return false;  // inf / NaN: the stored-order path gives the IEEE result
  int e = 0;
  if (big > 0.0f) std::frexp(big, &e);  // big < 2^e
  if (e < -100 || e > 100) return false;
  const int S = normal ? 0 : e + 24;
  // the factors themselves can pass float's range (2^221 for tiny x): scaled in double, exact
  double sc[8];
  for (int j = 0; j < P; ++j) {
    const int place = i4 ? 4 * (j % 3) : 8 * std::min(j, 2);
    sc[j] = std::ldexp(1.0, (normal ? 0 : 149) - place - S);
  }
  for (int64_t b = 0; b < w.K; b += L)
    for (int j = 0; j < P; ++j)
      for (int i = 0; i < 8; ++i) xd[b + 8 * j + i] = float(double(x[b + P * i + j]) * sc[j]);
  xd[w.K] = std::ldexp(1.0f, S);
  xd[w.K + 1] = normal ? kNormalLanes : kSubnormalLanes;
  return true;
}

// One row of w; four accumulators (an FMA's latency is 5 cycles on Zen, one issues per cycle),
// summed and scaled once per group (per 64-block for groups of 32: a scale per 128-bit half).
// The zero point is subtracted in the lanes, (u - z) 16^j' 2^-149 exactly (a difference of two
// subnormals), so each FMA sees the dequantized weight: folding z * sum(x) out of the sum instead
// loses ~log2(z sum|x| / |y|) bits when x has a nonzero mean (1.9e-5 relative error at K = 16384
// with x = |randn|). The subtraction costs ~20% of the in-cache rate (8.2 against 10.2
// weights/ns in a standalone loop; still 1.2x the vcvtdq2ps loop's 6.7). Groups of 32 / 64 (one
// 64-block per scale) use two accumulators: the per-block sum is then one add (4.55 -> 3.70 ms,
// K = N = 4096, 1 thread).
// Two rows per pass sharing the x loads measured slower (GCC spilled the masks and accumulators).
// STEP: 64-blocks per scale (gs / 64; 1 for groups of 32), fixed at compile time for the common
// group sizes so a group unrolls whole; 0: read at run time.
// NORMAL: the codes and zero points with 2^23's exponent or'ed in (prep_x).
template <int STEP, bool NORMAL>
float row_i4_lanes(const QuantWeight& w, int64_t n, const float* xd) {
  const int64_t gs = w.group(), blocks = w.K / 64;
  const int64_t step = STEP > 0 ? STEP : gs == 32 ? 1 : gs / 64;
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.q_stride() / 2);
  const float* s = w.scales + n * w.s_stride();
  const uint8_t* z = w.zeros ? w.zeros + n * w.s_stride() : nullptr;
  // The next row is requested while this one is read (one line every other block), so the
  // stream does not wait on the hardware prefetcher at each row's start.
  const uint8_t* next = n + 1 < w.N ? q + w.q_stride() / 2 : nullptr;
  const __m256i halves = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 tot = _mm256_setzero_ps();
  for (int64_t b0 = 0; b0 < blocks; b0 += step) {
    // the zero point in every lane (groups of 32: one per 128-bit half), at each field's place
    __m256i zb;
    if (!z)
      zb = _mm256_set1_epi32(8);
    else if (gs == 32)  // z[2 b0] in the low half, z[2 b0 + 1] in the high half
      zb = _mm256_permutevar8x32_epi32(
          _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(z[2 * b0] | z[2 * b0 + 1] << 8)), halves);
    else
      zb = _mm256_set1_epi32(z[b0 / step]);
    const __m256i magic = _mm256_set1_epi32(NORMAL ? 0x4b000000 : 0);  // 2^23
    const __m256 zc[3] = {
        _mm256_castsi256_ps(_mm256_or_si256(zb, magic)),
        _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(zb, 4), magic)),
        _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(zb, 8), magic))};
    __m256 a[4];
    for (int t = 0; t < 4; ++t) a[t] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t b = b0; b < b0 + step; ++b) {
      if ((b & 1) == 0 && next)
        _mm_prefetch(reinterpret_cast<const char*>(next + b * 32), _MM_HINT_T0);
      const float* xb = xd + b * 64;
      // nibbles 0-2 from v, 3-5 from v >> 12, 6-7 from v >> 24: three places, three zc
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * 32));
      const __m256i src[3] = {v, _mm256_srli_epi32(v, 12), _mm256_srli_epi32(v, 24)};
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m256i m = _mm256_set1_epi32(int(0xfu << (4 * (j % 3))));
        __m256i c = _mm256_and_si256(src[j / 3], m);
        if (NORMAL) c = _mm256_or_si256(c, magic);
        const __m256 u = _mm256_sub_ps(_mm256_castsi256_ps(c), zc[j % 3]);
        // one 64-block per group (STEP 1): two accumulators, so the per-block sum is one add
        const int t = STEP == 1 ? (j & 1) : (j & 3);
        a[t] = _mm256_fmadd_ps(u, _mm256_loadu_ps(xb + 8 * j), a[t]);
      }
    }
    const __m256 sum =
        STEP == 1 ? _mm256_add_ps(a[0], a[1])
                  : _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    __m256 sv;
    if (gs == 32)
      sv = _mm256_permutevar8x32_ps(
          _mm256_castps128_ps256(
              _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 2 * b0)))),
          halves);
    else
      sv = _mm256_set1_ps(s[b0 / step]);
    tot = _mm256_fmadd_ps(sv, sum, tot);
  }
  return hsum(tot) * xd[w.K];
}

// int8 in the lane order of prep_x: as row_i4_lanes, with 32-weight blocks (one load, one vpxor
// to offset binary, one shift), 128 subtracted in the lanes. R rows per pass (1 or 2) share each
// load of x, with 4 / R accumulators per row (three masks leave room for that; two rows measured
// 12% faster than one in an in-process A/B on one thread). STEP: blocks per scale (gs / 32), 0:
// read at run time (also one scale per row).
template <int STEP, int R>
void rows_i8_lanes(const QuantWeight& w, int64_t n, const float* xd, float* y) {
  static_assert(R == 1 || R == 2, "rows");
  constexpr int A = 4 / R;  // accumulators per row
  const int64_t blocks = w.K / 32;
  const int64_t step = STEP > 0 ? STEP : w.group() / 32;
  const int8_t* q[R];
  const float* s[R];
  for (int r = 0; r < R; ++r) {
    q[r] = static_cast<const int8_t*>(w.q) + (n + r) * w.q_stride();
    s[r] = w.scales + (n + r) * w.s_stride();
  }
  // the next R rows are requested while these are read (one line per row every other block)
  const int8_t* next = n + 2 * R - 1 < w.N ? q[0] + R * w.q_stride() : nullptr;
  const __m256i flip = _mm256_set1_epi8(int8_t(0x80));
  __m256 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm256_setzero_ps();
  for (int64_t b0 = 0; b0 < blocks; b0 += step) {
    __m256 a[R][A];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < A; ++t) a[r][t] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t b = b0; b < b0 + step; ++b) {
      if ((b & 1) == 0 && next)
        for (int r = 0; r < R; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(next + r * w.q_stride() + b * 32),
                       _MM_HINT_T0);
      const float* xb = xd + b * 32;
      __m256i v[R], v8[R];
      for (int r = 0; r < R; ++r) {
        v[r] = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + b * 32)), flip);
        v8[r] = _mm256_srli_epi32(v[r], 8);
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256i m = _mm256_set1_epi32(int(0xffu << (8 * std::min(j, 2))));
        // (u - 128) 256^j' 2^-149 = w 256^j' 2^-149, exact (a subnormal difference)
        const __m256 c = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80u << (8 * std::min(j, 2)))));
        const __m256 xj = _mm256_loadu_ps(xb + 8 * j);
        for (int r = 0; r < R; ++r) {
          const __m256 f =
              _mm256_sub_ps(_mm256_castsi256_ps(_mm256_and_si256(j <= 2 ? v[r] : v8[r], m)), c);
          a[r][j % A] = _mm256_fmadd_ps(f, xj, a[r][j % A]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      __m256 sum = a[r][0];
      for (int t = 1; t < A; ++t) sum = _mm256_add_ps(sum, a[r][t]);
      tot[r] = _mm256_fmadd_ps(_mm256_set1_ps(s[r][b0 / step]), sum, tot[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[n + r] = hsum(tot[r]) * xd[w.K];
}

void gemv_f32(const QuantWeight& w, const float* x, const float* xd, int64_t n0, int64_t n1,
              float* y) {
  // No lane-ordered x, or subnormal codes read as zero on this thread (MXCSR.DAZ, bit 6): the
  // stored-order paths. (prep_x writes normal codes' lanes for int4 only.)
  const bool normal = xd && xd[w.K + 1] == kNormalLanes;
  const bool lanes = xd && (normal || !(_mm_getcsr() & 0x40));
  const int64_t gs = w.group();
  if (w.bits == 8) {
    if (!lanes) {
      for (int64_t n = n0; n < n1; ++n) y[n] = row_i8_f32(w, n, x);
      return;
    }
    auto run = [&](auto step) {
      constexpr int S = decltype(step)::value;
      int64_t n = n0;
      for (; n + 2 <= n1; n += 2) rows_i8_lanes<S, 2>(w, n, xd, y);
      if (n < n1) rows_i8_lanes<S, 1>(w, n, xd, y);
    };
    if (gs == 32)
      run(std::integral_constant<int, 1>{});
    else if (gs == 64)
      run(std::integral_constant<int, 2>{});
    else if (gs == 128)
      run(std::integral_constant<int, 4>{});
    else
      run(std::integral_constant<int, 0>{});
    return;
  }
  if (!lanes) {
    kernels_generic().gemv_f32(w, x, xd, n0, n1, y);
    return;
  }
  auto rows = [&](auto normal_const) {
    constexpr bool N = decltype(normal_const)::value;
    for (int64_t n = n0; n < n1; ++n)
      y[n] = gs == 32 || gs == 64 ? row_i4_lanes<1, N>(w, n, xd)
             : gs == 128          ? row_i4_lanes<2, N>(w, n, xd)
                                  : row_i4_lanes<0, N>(w, n, xd);
  };
  if (normal)
    rows(std::true_type{});
  else
    rows(std::false_type{});
}

// MR rows of x against NR rows of w over stored columns [k0, k1): exact int32 dot products.
template <int MR, int NR>
inline void dot_i8(const int8_t* const* xr, const int8_t* const* wr, int64_t k0, int64_t k1,
                   int32_t (*out)[NR]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  int64_t k = k0;
  for (; k + 32 <= k1; k += 32) {
    __m256i wv[NR], wa[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[j] + k));
      wa[j] = _mm256_abs_epi8(wv[j]);
    }
    for (int i = 0; i < MR; ++i) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + k));
      for (int j = 0; j < NR; ++j) {
        const __m256i p = _mm256_maddubs_epi16(wa[j], _mm256_sign_epi8(xv, wv[j]));
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(p, ones));
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      int32_t t = hsum_i32(acc[i][j]);
      for (int64_t kk = k; kk < k1; ++kk) t += int32_t(xr[i][kk]) * int32_t(wr[j][kk]);
      out[i][j] = t;
    }
}

template <int MR, int NR>
void block_i8(const QuantWeight& w, const int8_t* xq, int64_t m, int64_t n, float* c, int64_t ldc) {
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  const int8_t* xr[MR];
  const int8_t* wr[NR];
  for (int i = 0; i < MR; ++i) xr[i] = xq + (m + i) * K;
  for (int j = 0; j < NR; ++j) wr[j] = static_cast<const int8_t*>(w.q) + (n + j) * K;
  float acc[MR][NR] = {};
  int32_t isum[MR][NR];
  for (int64_t g = 0; g < G; ++g) {
    dot_i8<MR, NR>(xr, wr, g * gs, (g + 1) * gs, isum);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        acc[i][j] = std::fma(w.scales[(n + j) * G + g], float(isum[i][j]), acc[i][j]);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[(m + i) * ldc + n + j] = acc[i][j];
}

// The 4 x 2 tile when groups are whole 32-byte steps: the 8 int32 accumulators of a group are
// reduced to one vector of 8 exact sums by a vphaddd tree (integer adds: any order is exact), and
// lane 2i + j then takes acc = fma(s[n + j, g], float(isum), acc), the same operation as the
// generic path, so the result stays bitwise equal to it.
void block_i8_4x2(const QuantWeight& w, const int8_t* xq, int64_t m, int64_t n, float* c,
                  int64_t ldc) {
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  const int8_t* xr[4];
  for (int i = 0; i < 4; ++i) xr[i] = xq + (m + i) * K;
  const int8_t* w0 = static_cast<const int8_t*>(w.q) + n * K;
  const int8_t* w1 = w0 + K;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m256i a[4][2];
    for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = _mm256_setzero_si256();
    // unrolled twice: the loop's own overhead was ~10% of the tile (M = 128: 14.6 -> 16.1-16.5
    // MAC/tick, 2 threads; 4 times: the same)
#pragma GCC unroll 2
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 32) {
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + k));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + k));
      const __m256i b0 = _mm256_abs_epi8(v0), b1 = _mm256_abs_epi8(v1);
      for (int i = 0; i < 4; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + k));
        a[i][0] = _mm256_add_epi32(
            a[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, _mm256_sign_epi8(xv, v0)), ones));
        a[i][1] = _mm256_add_epi32(
            a[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, _mm256_sign_epi8(xv, v1)), ones));
      }
    }
    const __m256i isum =
        hsum8(a[0][0], a[0][1], a[1][0], a[1][1], a[2][0], a[2][1], a[3][0], a[3][1]);
    const __m256 sv = _mm256_unpacklo_ps(_mm256_set1_ps(w.scales[n * G + g]),
                                         _mm256_set1_ps(w.scales[(n + 1) * G + g]));
    facc = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(isum), facc);
  }
  alignas(32) float r[8];
  _mm256_store_ps(r, facc);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) c[(m + i) * ldc + n + j] = r[2 * i + j];
}

// One row of x against 8 weight rows (the GEMV and the row tails), reduced the same way.
void block_i8_1x8(const QuantWeight& w, const int8_t* xq, int64_t m, int64_t n, float* c,
                  int64_t ldc) {
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  const int8_t* xr = xq + m * K;
  const int8_t* wr = static_cast<const int8_t*>(w.q) + n * K;
  const float* s = w.scales + n * G;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m256i a[8];
    for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_si256();
    int64_t k = g * gs;
    // Whole 64-byte lines per row and step where the group allows: each of the 8 streams moves
    // a line at a time.
    for (; k + 64 <= (g + 1) * gs; k += 64) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + k));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + k + 32));
      for (int j = 0; j < 8; ++j) {
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j * K + k));
        const __m256i v1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j * K + k + 32));
        const __m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(v0), _mm256_sign_epi8(x0, v0));
        const __m256i p1 = _mm256_maddubs_epi16(_mm256_abs_epi8(v1), _mm256_sign_epi8(x1, v1));
        a[j] = _mm256_add_epi32(a[j], _mm256_add_epi32(_mm256_madd_epi16(p0, ones),
                                                       _mm256_madd_epi16(p1, ones)));
      }
    }
    for (; k < (g + 1) * gs; k += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + k));
      for (int j = 0; j < 8; ++j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j * K + k));
        const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(xv, v));
        a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(p, ones));
      }
    }
    const __m256i isum = hsum8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    const __m256 sv = _mm256_setr_ps(s[g], s[G + g], s[2 * G + g], s[3 * G + g], s[4 * G + g],
                                     s[5 * G + g], s[6 * G + g], s[7 * G + g]);
    facc = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(isum), facc);
  }
  _mm256_storeu_ps(c + m * ldc + n, facc);
}

template <int MR>
void rows_i8(const QuantWeight& w, const int8_t* xq, int64_t m, int64_t n0, int64_t n1, float* c,
             int64_t ldc) {
  int64_t n = n0;
  if (MR == 4 && w.group() % 32 == 0)
    for (; n + 2 <= n1; n += 2) block_i8_4x2(w, xq, m, n, c, ldc);
  if (MR == 1 && w.group() % 32 == 0)
    for (; n + 8 <= n1; n += 8) block_i8_1x8(w, xq, m, n, c, ldc);
  for (; n + 2 <= n1; n += 2) block_i8<MR, 2>(w, xq, m, n, c, ldc);
  for (; n < n1; ++n) block_i8<MR, 1>(w, xq, m, n, c, ldc);
}

void tile_i8(const QuantWeight& w, const int8_t* xq, const int32_t*, int64_t M, int64_t n0,
             int64_t n1, float* c, int64_t ldc) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) rows_i8<4>(w, xq, m, n0, n1, c, ldc);
  switch (M - m) {
    case 3: rows_i8<3>(w, xq, m, n0, n1, c, ldc); break;
    case 2: rows_i8<2>(w, xq, m, n0, n1, c, ldc); break;
    case 1: rows_i8<1>(w, xq, m, n0, n1, c, ldc); break;
    default: break;
  }
}

// W4A8: vpmaddubsw takes the codes u (0..15) as its unsigned bytes and the int8 activations as
// they are: a pair sum is at most 2 * 15 * 127 = 3810, the two nibble halves of a 64-weight step
// together 7620, so the 16-bit sums never saturate. The zero point stays out of the inner loop:
// isum = sum u * xq - z * xsum, all in exact int32. One 32-byte load holds 64 codes; its low
// nibbles meet the 32 even activations of the block and its high nibbles the 32 odd ones (the
// order of prep_i4_x), so the codes need one shift and two masks, no shuffle. Each 128-bit half
// of a step is one 32-weight block: with groups of 32 the halves are two groups.
// 4 rows of x x 2 rows of w, reduced per group by hsum8 into lane 2i + j, which takes
// a_(g mod 8) = fma(s[n + j, g], float(isum), a_(g mod 8)) as tile_i4 of the generic table does:
// bitwise the same result.
void block_i4_4x2(const QuantWeight& w, const int8_t* xl, const int32_t* xsum, int64_t m,
                  int64_t n, float* c, int64_t ldc) {
  constexpr int MR = 4, NR = 2;
  const int64_t G = w.groups(), gs = w.group(), K = w.K, ldq = w.q_stride() / 2;
  const int64_t lds = w.s_stride();
  const uint8_t* wr = static_cast<const uint8_t*>(w.q) + n * ldq;
  const int8_t* xr = xl + m * K;
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0f);
  // lane l = 2i + j (the output (m + i, n + j)): z[n + j, g] * xsum[m + i, g] and s[n + j, g],
  // built from broadcasts
  auto zsum = [&](int64_t g) {
    const __m256i xs = _mm256_setr_epi32(xsum[m * G + g], xsum[m * G + g], xsum[(m + 1) * G + g],
                                         xsum[(m + 1) * G + g], xsum[(m + 2) * G + g],
                                         xsum[(m + 2) * G + g], xsum[(m + 3) * G + g],
                                         xsum[(m + 3) * G + g]);
    if (!w.zeros) return _mm256_slli_epi32(xs, 3);  // z = 8
    const __m256i z = _mm256_unpacklo_epi32(_mm256_set1_epi32(w.zeros[n * lds + g]),
                                            _mm256_set1_epi32(w.zeros[(n + 1) * lds + g]));
    return _mm256_mullo_epi32(z, xs);
  };
  auto scale = [&](int64_t g) {
    return _mm256_unpacklo_ps(_mm256_set1_ps(w.scales[n * lds + g]),
                              _mm256_set1_ps(w.scales[(n + 1) * lds + g]));
  };
  __m256 part[8];  // part[j], lane i * NR + j': a_j of output (m + i, n + j')
  for (int j = 0; j < 8; ++j) part[j] = _mm256_setzero_ps();
  const int64_t span = gs == 32 ? 64 : gs;  // weights per pass: two groups of 32, or one group
  for (int64_t k0 = 0; k0 < K; k0 += span) {
    __m256i a[8];
    for (int l = 0; l < 8; ++l) a[l] = _mm256_setzero_si256();
    for (int64_t k = k0; k < k0 + span; k += 64) {
      __m256i xe[MR], xo[MR];
      for (int i = 0; i < MR; ++i) {
        xe[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + i * K + k));
        xo[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + i * K + k + 32));
      }
      for (int j = 0; j < NR; ++j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j * ldq + k / 2));
        const __m256i lo = _mm256_and_si256(v, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        for (int i = 0; i < MR; ++i) {
          const __m256i p =
              _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe[i]), _mm256_maddubs_epi16(hi, xo[i]));
          a[i * NR + j] = _mm256_add_epi32(a[i * NR + j], _mm256_madd_epi16(p, ones));
        }
      }
    }
    __m256i first, second;  // the sums of the low 32-weight halves, of the high ones
    hsum8_halves(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], first, second);
    if (gs == 32) {
      const int64_t g = k0 / 32;
      __m256& a0 = part[g % 8];
      a0 = _mm256_fmadd_ps(scale(g), _mm256_cvtepi32_ps(_mm256_sub_epi32(first, zsum(g))), a0);
      __m256& a1 = part[(g + 1) % 8];
      a1 = _mm256_fmadd_ps(scale(g + 1), _mm256_cvtepi32_ps(_mm256_sub_epi32(second, zsum(g + 1))),
                           a1);
    } else {
      const int64_t g = k0 / gs;
      const __m256i isum = _mm256_sub_epi32(_mm256_add_epi32(first, second), zsum(g));
      part[g % 8] = _mm256_fmadd_ps(scale(g), _mm256_cvtepi32_ps(isum), part[g % 8]);
    }
  }
  // every lane in hsum's order: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
  const __m256 sum = _mm256_add_ps(
      _mm256_add_ps(_mm256_add_ps(part[0], part[4]), _mm256_add_ps(part[2], part[6])),
      _mm256_add_ps(_mm256_add_ps(part[1], part[5]), _mm256_add_ps(part[3], part[7])));
  alignas(32) float r[8];
  _mm256_store_ps(r, sum);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[(m + i) * ldc + n + j] = r[i * NR + j];
}

// W4A8 GEMV rows: R rows of w against MX (1..3) rows of x, lane l of a vector = group g0 + l of a
// row, so the scales, zero points and x group sums of 8 groups are each one contiguous load and
// one vector FMA adds 8 groups to the contract's 8 partial sums (lane j = a_j, g0 a multiple of
// 8); each output's sum is then hsum's order. The R rows step together, one load of each row of x
// per 64 weights, and a step's codes are unpacked once for all MX rows of x (the rows of an MoE
// expert with 2-3 tokens); they meet the activations as in block_i4_4x2, and up to four steps
// add in 16 bits (4 * 7620 < 32767) before they are widened.
// Zen 1 runs vpmaddubsw / vpmaddwd / vpmulld on one pipe (ymm: 2 cycles each, vpmulld 4), and
// every ymm op is two 128-bit uops; the two vpmaddubsw of a step are the floor, so the rest is
// kept off that pipe where it can be: a group of 64+ weights folds its two 128-bit halves in 16
// bits (two groups' halves at most 2 * 4 * 3810 < 32767) and widens once as xmm; four groups
// meet in one xmm by unpacks (vphaddd is 3 cycles a ymm here); and z * xsum is taken in float,
// fnmadd(z, xsum, float(isum)), exact while every term is an integer below 2^24 (groups of at
// most 8192: 16 * 127 * 8192 < 2^24, z up to 16), so bitwise float(isum - z * xsum).
// GS: the group size when it is 32, 64 or 128 (fixed at compile time), 0 for any other multiple
// of 64.
template <int R, int MX, int GS>
void rows_i4(const QuantWeight& w, const int8_t* xl, const int32_t* xsum, int64_t m, int64_t n,
             float* c, int64_t ldc) {
  const int64_t G = w.groups(), gs = GS > 0 ? GS : w.group(), K = w.K, ldq = w.q_stride() / 2;
  const int64_t lds = w.s_stride();
  const bool z_in_float = GS > 0 || gs <= 8192;
  const int8_t* xr[MX];
  const int32_t* xs[MX];
  for (int i = 0; i < MX; ++i) {
    xr[i] = xl + (m + i) * K;
    xs[i] = xsum + (m + i) * G;
  }
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0f);
  const __m128i ones4 = _mm_set1_epi16(1);
  __m256 acc[R][MX];  // lane j: the partial sum a_j of the contract (groups g = j mod 8)
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < MX; ++i) acc[r][i] = _mm256_setzero_ps();
  const uint8_t* wq[R];
  for (int r = 0; r < R; ++r) wq[r] = static_cast<const uint8_t*>(w.q) + (n + r) * ldq;
  // Whole rows lie back to back (ldq = K / 2): rows n + R .. n + 2R - 1 are the next R * K / 2
  // bytes, fetched while these are read (each row alone is too short a stream for the hardware
  // prefetcher to ramp up on), as many lines per step as these rows consume.
  const uint8_t* next = ldq * 2 == K && n + 2 * R <= w.N ? wq[0] + R * ldq : nullptr;
  constexpr int kPrefetchLines = R < 4 ? 2 : R / 2;
  // p[r][i] = 16-bit pair sums of the products of the S steps of 64 weights from k of weight
  // row r and row i of x: the R rows step together (one load of each row of x per step)
  auto sums16 = [&](auto s_const, int64_t k, __m256i (*p)[MX]) {
    constexpr int S = decltype(s_const)::value;
    // The unroll pragmas matter: without them GCC left the 8-row pass 10% slower.
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t, k += 64) {
      if (next)
        for (int l = 0; l < kPrefetchLines; ++l)
          _mm_prefetch(reinterpret_cast<const char*>(next + R * k / 2 + 64 * l), _MM_HINT_T0);
      __m256i xe[MX], xo[MX];
      for (int i = 0; i < MX; ++i) {
        xe[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + k));
        xo[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + k + 32));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq[r] + k / 2));
        const __m256i ulo = _mm256_and_si256(v, low4);
        const __m256i uhi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 4
        for (int i = 0; i < MX; ++i) {
          const __m256i lo = _mm256_maddubs_epi16(ulo, xe[i]);
          const __m256i hi = _mm256_maddubs_epi16(uhi, xo[i]);
          p[r][i] = t == 0 ? _mm256_add_epi16(lo, hi) : _mm256_add_epi16(p[r][i], _mm256_add_epi16(lo, hi));
        }
      }
    }
  };
  // out[r][i] = S steps from k folded to 4 int32 lanes (the halves added in 16 bits: at most
  // 2 * S * 7620 <= 30480 for S <= 2; S = 4 widens each half first)
  auto steps4 = [&](auto s_const, int64_t k, __m128i (*out)[MX], bool add) {
    constexpr int S = decltype(s_const)::value;
    __m256i p[R][MX];
    sums16(s_const, k, p);
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < MX; ++i) {
        const __m128i lo = _mm256_castsi256_si128(p[r][i]);
        const __m128i hi = _mm256_extracti128_si256(p[r][i], 1);
        const __m128i q =
            S <= 2 ? _mm_madd_epi16(_mm_add_epi16(lo, hi), ones4)
                   : _mm_add_epi32(_mm_madd_epi16(lo, ones4), _mm_madd_epi16(hi, ones4));
        out[r][i] = add ? _mm_add_epi32(out[r][i], q) : q;
      }
  };
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  using Four = std::integral_constant<int, 4>;
  // out[r][i] = the sums of weights [kb, kb + gs) of weight row r and row i of x in 4 int32
  // lanes (gs a multiple of 64)
  auto accumulate = [&](int64_t kb, __m128i (*out)[MX]) {
    if (GS == 64) return steps4(One{}, kb, out, false);
    if (GS == 128) return steps4(Two{}, kb, out, false);
    int64_t k = kb;
    bool add = false;
    for (; k + 256 <= kb + gs; k += 256, add = true) steps4(Four{}, k, out, add);
    for (; k < kb + gs; k += 64, add = true) steps4(One{}, k, out, add);
  };
  for (int64_t g0 = 0; g0 < G; g0 += 8) {
    const int gn = int(std::min<int64_t>(8, G - g0));
    // the x group sums of these groups (zero-filled past G)
    __m256i xsum_v[MX];
    for (int i = 0; i < MX; ++i) {
      if (gn == 8) {
        xsum_v[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[i] + g0));
      } else {
        alignas(32) int32_t part[8] = {};
        for (int l = 0; l < gn; ++l) part[l] = xs[i][g0 + l];
        xsum_v[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(part));
      }
    }
    __m256i isum[R][MX];
    if constexpr (GS == 32) {
      // step t holds groups g0 + 2t (low half) and g0 + 2t + 1 (high half). The four steps'
      // 16-bit sums meet by two levels of vphaddw, which keep each 128-bit half's groups apart
      // and never wrap (a lane is at most 7620, then 2 * 7620, then 4 * 7620 = 30480 < 32767),
      // and one vpmaddwd widens them: [g0, g2, g4, g6 | g1, g3, g5, g7]
      __m256i p[4][R][MX];
      for (int t = 0; t < 4; ++t) {
        if (2 * t < gn) {
          sums16(One{}, (g0 + 2 * t) * 32, p[t]);
        } else {
          for (int r = 0; r < R; ++r)
            for (int i = 0; i < MX; ++i) p[t][r][i] = _mm256_setzero_si256();
        }
      }
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < MX; ++i) {
          const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(p[0][r][i], p[1][r][i]),
                                              _mm256_hadd_epi16(p[2][r][i], p[3][r][i]));
          const __m256i u = _mm256_madd_epi16(h, ones);
          // lanes g0 + {0, 2, 4, 6 | 1, 3, 5, 7} -> g0 + 0..7
          isum[r][i] = _mm256_permutevar8x32_epi32(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        }
    } else {
      // four groups' 4-lane sums a, b, c, d -> [sum a, sum b, sum c, sum d] by unpacks
      auto join4 = [](__m128i a, __m128i b, __m128i c, __m128i d) {
        const __m128i ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
        const __m128i cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
        return _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd));
      };
      __m128i half[2][R][MX];
      for (int h = 0; h < 2; ++h) {
        __m128i q[4][R][MX];
        for (int l = 0; l < 4; ++l) {
          if (4 * h + l < gn) {
            accumulate((g0 + 4 * h + l) * gs, q[l]);
          } else {
            for (int r = 0; r < R; ++r)
              for (int i = 0; i < MX; ++i) q[l][r][i] = _mm_setzero_si128();
          }
        }
        for (int r = 0; r < R; ++r)
          for (int i = 0; i < MX; ++i)
            half[h][r][i] = join4(q[0][r][i], q[1][r][i], q[2][r][i], q[3][r][i]);
      }
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < MX; ++i)
          isum[r][i] =
              _mm256_inserti128_si256(_mm256_castsi128_si256(half[0][r][i]), half[1][r][i], 1);
    }
    __m256 xsum_f[MX];
    for (int i = 0; i < MX; ++i) xsum_f[i] = _mm256_cvtepi32_ps(xsum_v[i]);
    for (int r = 0; r < R; ++r) {
      __m256i zv8 = _mm256_set1_epi32(8);  // zero points of these groups as int32 (z = 8)
      if (w.zeros) {
        const uint8_t* zr = w.zeros + (n + r) * lds + g0;
        __m128i zb;
        if (gn == 8) {
          zb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zr));
        } else {
          alignas(16) uint8_t zp[16] = {};
          for (int l = 0; l < gn; ++l) zp[l] = zr[l];
          zb = _mm_load_si128(reinterpret_cast<const __m128i*>(zp));
        }
        zv8 = _mm256_cvtepu8_epi32(zb);
      }
      const float* sr = w.scales + (n + r) * lds + g0;
      __m256 sv;
      if (gn == 8) {
        sv = _mm256_loadu_ps(sr);
      } else {
        alignas(32) float sp[8] = {};
        for (int l = 0; l < gn; ++l) sp[l] = sr[l];
        sv = _mm256_load_ps(sp);
      }
      const __m256 zf = _mm256_cvtepi32_ps(zv8);
      for (int i = 0; i < MX; ++i) {
        // float(isum - z * xsum); lanes past G: s = 0 and isum = xsum = 0, fma(0, 0, a) = a
        const __m256 d = z_in_float
                             ? _mm256_fnmadd_ps(zf, xsum_f[i], _mm256_cvtepi32_ps(isum[r][i]))
                             : _mm256_cvtepi32_ps(_mm256_sub_epi32(
                                   isum[r][i], _mm256_mullo_epi32(zv8, xsum_v[i])));
        acc[r][i] = _mm256_fmadd_ps(sv, d, acc[r][i]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < MX; ++i) c[(m + i) * ldc + n + r] = hsum(acc[r][i]);
}

// Four rows of x at a time in 4 x 2 blocks (the codes unpacked once for four rows), the rest of
// the rows by rows_i4; a last odd weight row of the blocks, and shapes off the 64-blocks (xl
// null, or groups neither 32 nor a multiple of 64), by the generic kernel.
void tile_i4(const QuantWeight& w, const int8_t* xq, const int8_t* xl, const int32_t* xsum,
             int64_t M, int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const auto generic = kernels_generic().tile_i4;
  const int64_t gs = w.group();
  if (!xl || (gs != 32 && gs % 64 != 0)) return generic(w, xq, xl, xsum, M, n0, n1, c, ldc);
  const int64_t K = w.K;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2) block_i4_4x2(w, xl, xsum, m, n, c, ldc);
    if (n < n1) generic(w, xq + m * K, nullptr, nullptr, 4, n, n1, c + m * ldc, ldc);
  }
  // The last 1-3 rows of x together: each step's codes unpacked once for all of them.
  auto rest = [&](auto mx_const) {
    constexpr int MX = decltype(mx_const)::value;
    auto run = [&](auto gs_const) {
      constexpr int GS = decltype(gs_const)::value;
      // weight rows per pass (quant_ticks, 2 threads, K = N = 4096: the best of 1 / 2 / 4 / 8):
      // the codes, x rows and 16-bit sums fit the 16 registers; groups of 32 keep two steps'
      // sums per row for their widening, so fewer rows
      constexpr int R = GS == 32 ? (MX == 1 ? 2 : 1) : MX == 1 ? 8 : MX == 2 ? 4 : 2;
      int64_t n = n0;
      for (; n + R <= n1; n += R) rows_i4<R, MX, GS>(w, xl, xsum, m, n, c, ldc);
      for (; n < n1; ++n) rows_i4<1, MX, GS>(w, xl, xsum, m, n, c, ldc);
    };
    switch (gs) {
      case 32: return run(std::integral_constant<int, 32>{});
      case 64: return run(std::integral_constant<int, 64>{});
      case 128: return run(std::integral_constant<int, 128>{});
      default: return run(std::integral_constant<int, 0>{});
    }
  };
  switch (M - m) {
    case 1: rest(std::integral_constant<int, 1>{}); break;
    case 2: rest(std::integral_constant<int, 2>{}); break;
    case 3: rest(std::integral_constant<int, 3>{}); break;
    default: break;
  }
}

// The generic quantizer's operations lane by lane: max_ps(v, c) returns c when v is NaN, as
// std::max(c, v) does; vdivps is the IEEE division and vroundps(nearest) is nearbyint in the
// default rounding mode, so the codes and the scale are bitwise the generic ones.
float quant_row_i8(const float* x, int64_t K, int8_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256 a = _mm256_loadu_ps(x + k), b = _mm256_loadu_ps(x + k + 8);
    m0 = _mm256_max_ps(_mm256_and_ps(a, abs_mask), m0);
    m1 = _mm256_max_ps(_mm256_and_ps(b, abs_mask), m1);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
  }
  alignas(32) float part[8];
  _mm256_store_ps(part, _mm256_max_ps(m0, m1));
  float amax = 0.0f;
  for (float v : part) amax = std::max(amax, v);
  bool any_nan = _mm256_movemask_ps(nan) != 0;
  for (; k < K; ++k) {
    amax = std::max(amax, std::fabs(x[k]));
    any_nan |= std::isnan(x[k]);
  }
  const float sc = any_nan || std::isinf(amax) ? std::numeric_limits<float>::quiet_NaN()
                   : amax > 0.0f              ? amax / 127.0f
                                              : 1.0f;
  const __m256 scv = _mm256_set1_ps(sc), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  auto codes8 = [&](const float* p) {
    const __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(p), scv),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));  // integral: exact
  };
  for (k = 0; k + 16 <= K; k += 16) {
    const __m256i a = codes8(x + k), b = codes8(x + k + 8);
    // int32 -> int16 -> int8 with saturating packs (the values are in range); the packs work
    // per 128-bit lane, the permute puts the 16 codes back in order.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
    const __m128i c = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), c);
  }
  for (; k < K; ++k) {
    const float v = std::nearbyint(x[k] / sc);
    q[k] = int8_t(std::min(127.0f, std::max(-127.0f, v)));
  }
  return sc;
}

void dequant(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1, float* out,
             int64_t ldo) {
  const int64_t G = w.groups(), gs = w.group();
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ldo - k0;
    int64_t k = k0;
    while (k < k1) {
      const int64_t g = k / gs, end = std::min(k1, (g + 1) * gs);
      const float sc = w.scales[n * G + g];
      const __m256 s = _mm256_set1_ps(sc);
      if (w.bits == 8) {
        const int8_t* q = static_cast<const int8_t*>(w.q) + n * w.K;
        for (; k + 8 <= end; k += 8) _mm256_storeu_ps(o + k, _mm256_mul_ps(i8x8_to_ps(q + k), s));
        for (; k < end; ++k) o[k] = float(q[k]) * sc;
      } else {
        const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.K / 2);
        const int z = zero_of(w, n, g);
        const __m256i zv = _mm256_set1_epi32(z);
        if (k & 1) {
          o[k] = float(int(nibble(q, k)) - z) * sc;
          ++k;
        }
        for (; k + 16 <= end; k += 16) {
          const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + k / 2));
          const __m128i lo = _mm_and_si128(v, mask);
          const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
          const __m128i e = _mm_unpacklo_epi8(lo, hi);  // elements k .. k + 15 in order
          const __m256i u0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(e), zv);
          const __m256i u1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(e, 8)), zv);
          _mm256_storeu_ps(o + k, _mm256_mul_ps(_mm256_cvtepi32_ps(u0), s));
          _mm256_storeu_ps(o + k + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(u1), s));
        }
        for (; k < end; ++k) o[k] = float(int(nibble(q, k)) - z) * sc;
      }
    }
  }
}

// Prefill's int4 dequantization in the lane order of prep_x: per 8 weights vpand, vcvtdq2ps, one
// FMA (u 16^j * 16^-j - z: exact, a small integer) and one multiply by s, so each weight is
// (u - z) s rounded once, bitwise the generic dequant (u s - z s in one FMA left a rounding of
// z s where u = z, which an outlier in x then multiplied); about half the uops of the in-order
// dequant above.
void dequant_lanes(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                   float* out, int64_t ldo) {
  const int64_t G = w.groups(), gs = w.group();
  const __m256i halves = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.K / 2);
    const float* s = w.scales + n * G;
    const uint8_t* z = w.zeros ? w.zeros + n * G : nullptr;
    float* o = out + (n - n0) * ldo - k0;
    for (int64_t k = k0; k < k1; k += 64) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k / 2));
      __m256 sv, zv;
      if (gs == 32) {
        const int64_t g = k / 32;
        sv = _mm256_permutevar8x32_ps(
            _mm256_castps128_ps256(
                _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + g)))),
            halves);
        zv = z ? _mm256_set_m128(_mm_set1_ps(float(z[g + 1])), _mm_set1_ps(float(z[g])))
               : _mm256_set1_ps(8.0f);
      } else {
        const int64_t g = k / gs;
        sv = _mm256_set1_ps(s[g]);
        zv = _mm256_set1_ps(z ? float(z[g]) : 8.0f);
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m256i m = j < 7 ? _mm256_and_si256(v, _mm256_set1_epi32(int(0xfu << (4 * j))))
                                : _mm256_srli_epi32(v, 28);
        const __m256 uz = _mm256_fmsub_ps(
            _mm256_cvtepi32_ps(m), _mm256_set1_ps(j < 7 ? 1.0f / float(1 << (4 * j)) : 1.0f), zv);
        _mm256_storeu_ps(o + k + 8 * j, _mm256_mul_ps(uz, sv));
      }
    }
  }
}

const Kernels kAvx2 = {Isa::avx2,    gemv_f32, prep_x,        tile_i8,          tile_i4,
                       quant_row_i8, dequant,  dequant_lanes, /*whole range*/ false};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace quant_cpu
}  // namespace tf

#else
namespace tf {
namespace quant_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace quant_cpu
}  // namespace tf
#endif
