// A 16 x 16 transpose of 32-bit elements in zmm registers, shared by the AVX-512 files (the
// W8A8 weight packing, the GEMM's B packing). Functions marked TF_AVX512: see x86_avx512.h.
#pragma once
#include <immintrin.h>

#include "x86_avx512.h"

namespace tf {
namespace x86 {

// a[i] (16 dwords each) -> a[j] = [a_0[j], a_1[j], ..., a_15[j]]: dword 16 x 16 transpose in
// four rounds of 16 shuffles (32-bit unpacks, 64-bit unpacks, two rounds of 128-bit lane moves).
TF_AVX512 inline void transpose16(__m512i* a) {
  __m512i b[16], c[16];
  for (int i = 0; i < 16; i += 2) {
    b[i] = _mm512_unpacklo_epi32(a[i], a[i + 1]);
    b[i + 1] = _mm512_unpackhi_epi32(a[i], a[i + 1]);
  }
  // c[i + j] (i = 0, 4, 8, 12): 128-bit lane L = rows i..i+3 at element 4L + j
  for (int i = 0; i < 16; i += 4) {
    c[i] = _mm512_unpacklo_epi64(b[i], b[i + 2]);
    c[i + 1] = _mm512_unpackhi_epi64(b[i], b[i + 2]);
    c[i + 2] = _mm512_unpacklo_epi64(b[i + 1], b[i + 3]);
    c[i + 3] = _mm512_unpackhi_epi64(b[i + 1], b[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i d0 = _mm512_shuffle_i32x4(c[j], c[4 + j], 0x88);
    const __m512i d1 = _mm512_shuffle_i32x4(c[j], c[4 + j], 0xdd);
    const __m512i d2 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], 0x88);
    const __m512i d3 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], 0xdd);
    a[j] = _mm512_shuffle_i32x4(d0, d2, 0x88);
    a[8 + j] = _mm512_shuffle_i32x4(d0, d2, 0xdd);
    a[4 + j] = _mm512_shuffle_i32x4(d1, d3, 0x88);
    a[12 + j] = _mm512_shuffle_i32x4(d1, d3, 0xdd);
  }
}

// The same on float32 rows (the casts are free).
TF_AVX512 inline void transpose16(__m512* r) {
  __m512i a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_castps_si512(r[i]);
  transpose16(a);
  for (int i = 0; i < 16; ++i) r[i] = _mm512_castsi512_ps(a[i]);
}

}  // namespace x86
}  // namespace tf
