// AVX-512 panel kernel of the 2:4 sparse linear (M >= 8 rows of x, float32 weights): the AVX2
// panel micro-kernel (prune_x86_avx2.cc) with 16-wide vectors, so a 32-row x panel is two loads
// per kept weight instead of four. The GEMV, the general n:m panel and 16-bit weights are the
// AVX2 table's. Layouts: prune_kernels.h; build notes: common/x86_avx512.h.
#include "prune_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "../common/x86_avx512.h"

namespace tf {
namespace prune_cpu {
namespace {

// NC columns (j0 ..) x PR rows (PR / 16 vectors) over lane words [c0, c1): each kept weight is
// one broadcast and PR / 16 FMAs against the x panel row its position selects (from L1).
template <int PR, int NC>
TF_AVX512 void panel_cols(const float* xt, const SparseView& w, int64_t c0, int64_t c1,
                          int64_t j0, float* ct, bool accumulate) {
  constexpr int kV = PR / 16;
  __m512 a[NC][kV];
  for (int q = 0; q < NC; ++q)
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm512_loadu_ps(ct + q * PR + 16 * v) : _mm512_setzero_ps();
  const uint16_t* lp = w.lanes + j0 * w.words + c0;
  const int64_t lstride = w.words;
  const float* vp = static_cast<const float*>(w.values) + j0 * w.Kc + c0 * 8;
  const int64_t vstride = w.Kc;
  const float* xc = xt + c0 * 16 * PR;
  for (int64_t c = c0; c < c1; ++c, ++lp, vp += 8, xc += 16 * PR) {
    uint32_t word[NC];
    for (int q = 0; q < NC; ++q) word[q] = lp[q * lstride];
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
#pragma GCC unroll 8
      for (int q = 0; q < NC; ++q) {
        const float* xr = xc + ((l >> 1) * 4 + (word[q] & 3u)) * PR;
        word[q] >>= 2;
        const __m512 b = _mm512_set1_ps(vp[q * vstride + l]);
#pragma GCC unroll 2
        for (int v = 0; v < kV; ++v)
          a[q][v] = _mm512_fmadd_ps(b, _mm512_loadu_ps(xr + 16 * v), a[q][v]);
      }
    }
  }
  for (int q = 0; q < NC; ++q)
    for (int v = 0; v < kV; ++v) _mm512_storeu_ps(ct + q * PR + 16 * v, a[q][v]);
}

// 32-row panels: 6 columns x 2 vectors; 16-row panels: 8 columns x 1 vector (12 and 8
// accumulators, enough chains for two FMA pipes).
template <int PR>
TF_AVX512 void panel_dt(const float* xt, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
                        int64_t n1, float* ct, bool accumulate) {
  constexpr int NC = PR == 32 ? 6 : 8;
  int64_t j = n0;
  for (; j + NC <= n1; j += NC)
    panel_cols<PR, NC>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
  for (; j < n1; ++j) panel_cols<PR, 1>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
}

TF_AVX512 void panel(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1,
                     int64_t n0, int64_t n1, float* ct, bool accumulate) {
  if (w.dt == DType::float32 && pr == 32)
    return panel_dt<32>(xt, w, c0, c1, n0, n1, ct, accumulate);
  if (w.dt == DType::float32 && pr == 16)
    return panel_dt<16>(xt, w, c0, c1, n0, n1, ct, accumulate);
  kernels_avx2()->panel(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.panel = panel;
  return k;
}

}  // namespace

const Kernels* kernels_avx512() {
  if (!kernels_avx2()) return nullptr;
  static const Kernels table = make_table();
  return &table;
}

}  // namespace prune_cpu
}  // namespace tf

#else
namespace tf {
namespace prune_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace prune_cpu
}  // namespace tf
#endif
