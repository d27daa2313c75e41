// W4A8's eight float partials per output (Kernels::tile_i4's contract, quant_kernels.h), shared by
// the AVX-512 strips (quant_x86_avx512.cc) and the AMX tiles (quant_x86_amx.cc), so that their
// results stay bitwise one. A row of x keeps part[8][32]: slot g % 8 of its 32 weight rows.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "../common/x86_avx512.h"

namespace tf {
namespace quant_cpu {

// Group g's exact sums of one row of x against 32 weight rows (dot0: rows 0-15, dot1: 16-31),
// less z * xsum (int32: |z * xsum| <= 16 * 127 * 65536 < 2^31 for the groups int8 activations
// take), joined to the slot's partials: p[j] = fma(s[j], float(isum_j), p[j]).
TF_AVX512 inline void join_group_i4(__m512i dot0, __m512i dot1, const int32_t* z,
                                    const float* s, int32_t xsum, float* p) {
  const __m512i xs = _mm512_set1_epi32(xsum);
  const __m512i i0 = _mm512_sub_epi32(dot0, _mm512_mullo_epi32(_mm512_loadu_si512(z), xs));
  const __m512i i1 = _mm512_sub_epi32(dot1, _mm512_mullo_epi32(_mm512_loadu_si512(z + 16), xs));
  _mm512_store_ps(p,
                  _mm512_fmadd_ps(_mm512_loadu_ps(s), _mm512_cvtepi32_ps(i0), _mm512_load_ps(p)));
  _mm512_store_ps(p + 16, _mm512_fmadd_ps(_mm512_loadu_ps(s + 16), _mm512_cvtepi32_ps(i1),
                                          _mm512_load_ps(p + 16)));
}

// One row's partials summed in the contract's order, ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 +
// p7)), into c[0, cols) (cols <= 32).
TF_AVX512 inline void store_parts_i4(const float (*part)[32], int cols, float* c) {
  for (int h = 0; h < 2; ++h) {
    const int n = cols - 16 * h;
    if (n <= 0) break;
    auto at = [&](int j) TF_AVX512 { return _mm512_load_ps(part[j] + 16 * h); };
    const __m512 sum =
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(at(0), at(4)), _mm512_add_ps(at(2), at(6))),
                      _mm512_add_ps(_mm512_add_ps(at(1), at(5)), _mm512_add_ps(at(3), at(7))));
    _mm512_mask_storeu_ps(c + 16 * h, n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1), sum);
  }
}

}  // namespace quant_cpu
}  // namespace tf
