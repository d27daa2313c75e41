// bfloat16 products on AVX512-BF16, shared by the attention tiles and the GEMM: panels of
// bfloat16 pairs and the vdpbf16ps micro-tile that reads them.
//
// vdpbf16ps multiplies two pairs of bfloat16 and adds both products to a float32 lane (Intel SDM,
// VDPBF16PS: products exact in float32, each addition rounded to nearest even; denormal inputs
// read as zero, denormal results flushed). A product C = A B of bfloat16 operands keeps A
// row-major, in place, and packs B in panels of 16 columns by pairs of the depth index:
//   b[32 p + 2 j + t] = B[2 p + t][j]   (t = 0, 1; zero past the depth or the columns)
// so one 64-byte load is the next two depth steps of the panel's 16 columns, and one vdpbf16ps
// with the pair (A[i][2p], A[i][2p + 1]) broadcast adds both to row i's 16 sums: 32 products an
// instruction where a float32 FMA does 16 (Zen 5: 2.8 vdpbf16ps a TSC tick against 3.05 FMAs,
// 1.84x the products; bench/NOTES.md, session 21).
//
// Functions marked TF_AVX512BF16 run only where cpu_features() reports avx512bf16 (the tables
// fill their bfloat16 entries there); see x86_avx512.h for the attribute scheme.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../gemm/gemm_kernels.h"
#include "x86_avx512.h"
#include "x86_avx512_transpose.h"

#if defined(__GNUC__) || defined(__clang__)
#define TF_AVX512BF16 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")))
#else
#define TF_AVX512BF16
#endif

namespace tf {
namespace x86 {

// The first min(left, 32) of 32 lanes (16-bit elements).
TF_AVX512BF16 inline __mmask32 mask32(int64_t left) {
  return left >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << left) - 1);
}
TF_AVX512BF16 inline __mmask16 mask16(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// B stored as rows of its columns (B[k][j] = src[j * ld + k]: a weight [N, K], or K in
// attention's Q K^T): columns [0, n) over depth [0, depth) as panels of 16 columns, each
// round_up(depth, 2) * 16 elements. 16 pairs of 16 columns at a time by a dword transpose;
// columns past n and the element past an odd depth as zeros.
TF_AVX512BF16 inline void pack_pairs_of_rows(const void* src, int64_t ld, int64_t n, int64_t depth,
                                             uint16_t* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  const int64_t pairs = (depth + 1) / 2, panels = (n + 15) / 16;
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* pd = dst + p * pairs * 32;
    const int64_t cols = std::min<int64_t>(16, n - 16 * p);
    for (int64_t q0 = 0; q0 < pairs; q0 += 16) {
      const __mmask32 m = mask32(depth - 2 * q0);  // 16 pairs of each column, masked at depth
      __m512i rows[16];
      for (int64_t j = 0; j < 16; ++j)
        rows[j] = j < cols ? _mm512_maskz_loadu_epi16(m, s + (16 * p + j) * ld + 2 * q0)
                           : _mm512_setzero_si512();
      transpose16(rows);  // rows[q]: pair q0 + q of the 16 columns
      const int64_t nq = std::min<int64_t>(16, pairs - q0);
      for (int64_t q = 0; q < nq; ++q) _mm512_storeu_si512(pd + (q0 + q) * 32, rows[q]);
    }
  }
}

// B stored row-major (B[k][j] = src[k * ld + j]: a weight [K, N], or V in attention's P V):
// depth rows [0, depth), columns [0, n), as round_up(n, 16) / 16 panels of 16 columns, each
// round_up(depth, 2) * 16 elements. Two rows a step, interleaved by 16-bit unpacks (within
// 128-bit lanes) and put in column order by two lane permutes.
TF_AVX512BF16 inline void pack_pairs_of_cols(const void* src, int64_t ld, int64_t depth,
                                             int64_t n, uint16_t* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  const int64_t d2 = depth + (depth & 1), panels = (n + 15) / 16;
  for (int64_t kp = 0; 2 * kp < depth; ++kp) {
    const uint16_t* r0 = s + 2 * kp * ld;
    const uint16_t* r1 = 2 * kp + 1 < depth ? r0 + ld : nullptr;
    for (int64_t p = 0; p < panels; ++p) {
      const __mmask16 m = mask16(n - 16 * p);
      const __m256i a = _mm256_maskz_loadu_epi16(m, r0 + 16 * p);
      const __m256i b = r1 ? _mm256_maskz_loadu_epi16(m, r1 + 16 * p) : _mm256_setzero_si256();
      const __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
      uint16_t* out = dst + p * d2 * 16 + kp * 32;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16),
                          _mm256_permute2x128_si256(lo, hi, 0x31));
    }
  }
}

// rows x n floats (lds apart) rounded to bfloat16 (nearest even) into rows ldd apart; an odd n
// gets a zero after its last element (the other half of the last pair).
TF_AVX512BF16 inline void to_bf16_rows(const float* s, int64_t lds, int64_t rows, int64_t n,
                                       uint16_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = s + r * lds;
    uint16_t* out = dst + r * ldd;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = mask16(n - j);
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + j));
      _mm256_mask_storeu_epi16(out + j, m, (__m256i)h);
    }
    if (n & 1) out[n] = 0;
  }
}

// c[kMR rows x 16 NP] (ldc apart; NP panels of B `stride` elements apart, panel q's columns at
// c + 16 q) = (accumulate ? c : 0) + scale * A B over `pairs` depth pairs; A row i at
// a + i * lda (bfloat16, 2 * pairs elements readable). Four panels: 24 sums in registers, 10
// loads per 24 vdpbf16ps.
template <int NP>
TF_AVX512BF16 inline void tile_bf16_np(int64_t pairs, const uint16_t* a, int64_t lda,
                                       const uint16_t* b, int64_t stride, float* c, int64_t ldc,
                                       bool accumulate, float scale) {
  constexpr int MR = gemm_cpu::kMR;
  __m512 acc[MR][NP];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[i][q] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i bv[NP];
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      bv[q] = _mm512_loadu_si512(b + q * stride + 32 * p);
      __asm__("" : "+v"(bv[q]));  // one load for all rows (not a memory operand of each)
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      int32_t w;
      std::memcpy(&w, a + i * lda + 2 * p, sizeof w);
      const __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 4
      for (int q = 0; q < NP; ++q)
        acc[i][q] = _mm512_dpbf16_ps(acc[i][q], (__m512bh)av, (__m512bh)bv[q]);
    }
  }
  const __m512 vs = _mm512_set1_ps(scale);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      float* dst = c + i * ldc + 16 * q;
      __m512 t = _mm512_mul_ps(acc[i][q], vs);
      if (accumulate) t = _mm512_add_ps(t, _mm512_loadu_ps(dst));
      _mm512_storeu_ps(dst, t);
    }
}

// tile_bf16_np for np = 1-4 panels.
TF_AVX512BF16 inline void tile_bf16(int64_t pairs, const uint16_t* a, int64_t lda,
                                    const uint16_t* b, int64_t stride, int64_t np, float* c,
                                    int64_t ldc, bool accumulate, float scale) {
  switch (np) {
    case 1: return tile_bf16_np<1>(pairs, a, lda, b, stride, c, ldc, accumulate, scale);
    case 2: return tile_bf16_np<2>(pairs, a, lda, b, stride, c, ldc, accumulate, scale);
    case 3: return tile_bf16_np<3>(pairs, a, lda, b, stride, c, ldc, accumulate, scale);
    default: return tile_bf16_np<4>(pairs, a, lda, b, stride, c, ldc, accumulate, scale);
  }
}

}  // namespace x86
}  // namespace tf
