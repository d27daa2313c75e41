// bfloat16 GEMM blocks on AMX (Intel Advanced Matrix Extensions, Sapphire Rapids and later; Intel
// SDM vol. 1 ch. 18). TDPBF16PS multiplies a tile of 16 rows x 32 bfloat16 (A) by one of 16 rows
// x 16 pairs (B: row p holds depth steps 2p and 2p + 1 of 16 columns) into 16 x 16 float32 sums
// (C): 8K products an instruction, each pair's products exact and added in float32 (round to
// nearest even, denormal inputs and results as zero; the SDM's pseudocode). The B panels of
// common/x86_avx512_bf16.h (b[32 p + 2 j + t] = B[2 p + t][j]) are B tiles as stored: 16 pairs of
// a panel are 1 KB, 64 bytes a row. A is packed per 32-row block into tile order (amx_pack_a):
// row-major rows of x K apart put every row of a tile in one L1 set (K = 4096 bfloat16), where
// the W8A8 tiles (quant_x86_amx.cc) ran at a sixth of their rate.
// Availability and the OS request for tile state: cpu_features.h, amx_usable(Amx::bf16).
#include "gemm_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/x86_amx.h"
#include "../common/x86_avx512_transpose.h"

namespace tf {
namespace gemm_cpu {
namespace {

using x86::configure_tiles;
using x86::tile_barrier;
using x86::zero_c_tiles;

// C tiles 0-3 += A x B over `steps` depth steps of 32: A's two halves from a0 / a1 (rows sa
// bytes apart, the next step astep elements on), B panel b0 (and b1 when `two`; else tiles 1 and
// 3 are left alone), 512 elements a step.
TF_AMX inline void dot_steps(const uint16_t* a0, const uint16_t* a1, int64_t sa, int64_t astep,
                             const uint16_t* b0, const uint16_t* b1, int64_t steps, bool two) {
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, a0 + s * astep, sa);
    _tile_loadd(5, a1 + s * astep, sa);
    _tile_loadd(6, b0 + s * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(2, 5, 6);
    if (two) {
      _tile_loadd(7, b1 + s * 512, 64);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
}

}  // namespace

TF_AMX void amx_pack_a(const uint16_t* a, int64_t lda, int64_t rows, int64_t kc,
                       uint16_t* dst) {
  const int64_t steps = (kc + 31) / 32;
  for (int64_t r = 0; r < kAmxRows; ++r)
    for (int64_t s = 0; s < steps; ++s) {
      uint16_t* d = dst + s * kAmxRows * 32 + r * 32;
      const int64_t n = r < rows ? std::min<int64_t>(32, kc - 32 * s) : 0;
      const __mmask32 m = n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1);
      _mm512_storeu_si512(d, _mm512_maskz_loadu_epi16(m, n > 0 ? a + r * lda + 32 * s : a));
    }
}

TF_AMX void amx_bf16_block(const uint16_t* ap, int64_t steps, const uint16_t* bp, int64_t panel,
                           int64_t np, float* c, int64_t ldc, int64_t rows, int64_t cols,
                           bool accumulate) {
  configure_tiles();
  alignas(64) float edge[kAmxRows * 32];
  for (int64_t jp = 0; jp < np; jp += 2) {
    const bool two = jp + 1 < np;
    const int64_t w = std::min<int64_t>(two ? 32 : 16, cols - 16 * jp);
    const bool whole = rows == kAmxRows && w == (two ? 32 : 16);
    float* cj = c + 16 * jp;
    // C from c in place when the block is whole, else through `edge`
    float* ct = whole ? cj : edge;
    const int64_t ldt = whole ? ldc : 32;
    if (!whole && accumulate)
      for (int64_t i = 0; i < kAmxRows; ++i)
        for (int64_t j = 0; j < 32; ++j) edge[i * 32 + j] = i < rows && j < w ? cj[i * ldc + j] : 0;
    tile_barrier();
    if (accumulate) {
      _tile_loadd(0, ct, ldt * 4);
      _tile_loadd(2, ct + 16 * ldt, ldt * 4);
      if (two) {
        _tile_loadd(1, ct + 16, ldt * 4);
        _tile_loadd(3, ct + 16 * ldt + 16, ldt * 4);
      }
    } else {
      zero_c_tiles();
    }
    const uint16_t* b0 = bp + jp * panel;
    dot_steps(ap, ap + 16 * 32, 64, kAmxRows * 32, b0, b0 + panel, steps, two);
    if (two) {
      _tile_stored(1, ct + 16, ldt * 4);
      _tile_stored(3, ct + 16 * ldt + 16, ldt * 4);
    }
    _tile_stored(0, ct, ldt * 4);
    _tile_stored(2, ct + 16 * ldt, ldt * 4);
    tile_barrier();
    if (!whole)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < w; ++j) cj[i * ldc + j] = edge[i * 32 + j];
  }
  _tile_release();
}

namespace {

// c[kAmxRows x 16 np] (+)= the sum of A_i B_j over i < a_parts, j < b_parts, i + j <= 2, A_i at
// a + i * a_part (row-major, lda), B_j at bp + j * b_part: one part each is the one product
// A_0 B_0; three each the six products of three-part operands (common/x86_bf16_split.h). Without
// accumulate, the sums are multiplied by `scale` as they are stored.
TF_AMX void rows_impl(const uint16_t* a, int64_t lda, int64_t a_part, int64_t steps,
                      const uint16_t* bp, int64_t panel, int64_t b_part, int64_t np, float* c,
                      int64_t ldc, bool accumulate, int a_parts, int b_parts, float scale) {
  configure_tiles();
  const int64_t sa = lda * 2, sc = ldc * 4;  // strides in bytes
  for (int64_t jp = 0; jp < np; jp += 2) {
    const bool two = jp + 1 < np;
    float* cj = c + 16 * jp;
    tile_barrier();
    if (accumulate) {
      _tile_loadd(0, cj, sc);
      _tile_loadd(2, cj + 16 * ldc, sc);
      if (two) {
        _tile_loadd(1, cj + 16, sc);
        _tile_loadd(3, cj + 16 * ldc + 16, sc);
      }
    } else {
      zero_c_tiles();
    }
    if (a_parts == 1 && b_parts == 1) {
      dot_steps(a, a + 16 * lda, sa, 32, bp + jp * panel, bp + (jp + 1) * panel, steps, two);
    } else {
      // the terms in the order 02 01 11 10 00 20 (those of the parts there are), each sharing
      // its A or its B part with the one before: 14 tile loads a step for six terms, where
      // A-major order took 18 (a tile load does not overlap the tile products: Xeon session 24,
      // 77 -> 86 M products/s in L1)
      static const int order_i[6] = {0, 0, 1, 1, 0, 2}, order_j[6] = {2, 1, 1, 0, 0, 0};
      int ti[6], tj[6], nt = 0;
      for (int t = 0; t < 6; ++t)
        if (order_i[t] < a_parts && order_j[t] < b_parts)
          ti[nt] = order_i[t], tj[nt] = order_j[t], ++nt;
      for (int64_t s = 0; s < steps; ++s)
        for (int t = 0; t < nt; ++t) {
          const int i = ti[t], j = tj[t];
          const bool new_a = t == 0 || i != ti[t - 1], new_b = t == 0 || j != tj[t - 1];
          const uint16_t* ai = a + i * a_part + s * 32;
          const uint16_t* b0 = bp + j * b_part + jp * panel + s * 512;
          if (new_a) _tile_loadd(4, ai, sa);
          if (new_b) _tile_loadd(6, b0, 64);
          _tile_dpbf16ps(0, 4, 6);
          if (new_b && two) _tile_loadd(7, b0 + panel, 64);
          if (two) _tile_dpbf16ps(1, 4, 7);
          if (new_a) _tile_loadd(5, ai + 16 * lda, sa);
          _tile_dpbf16ps(2, 5, 6);
          if (two) _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, cj, sc);
    _tile_stored(2, cj + 16 * ldc, sc);
    if (two) {
      _tile_stored(1, cj + 16, sc);
      _tile_stored(3, cj + 16 * ldc + 16, sc);
    }
    tile_barrier();
    if (!accumulate && scale != 1.0f) {
      const __m512 f = _mm512_set1_ps(scale);
      for (int64_t r = 0; r < kAmxRows; ++r)
        for (int h = 0; h < (two ? 2 : 1); ++h) {
          float* cr = cj + r * ldc + 16 * h;
          _mm512_storeu_ps(cr, _mm512_mul_ps(f, _mm512_loadu_ps(cr)));
        }
    }
  }
  _tile_release();
}

}  // namespace

TF_AMX void amx_bf16_rows(const uint16_t* a, int64_t lda, int64_t steps, const uint16_t* bp,
                          int64_t panel, int64_t np, float* c, int64_t ldc, bool accumulate,
                          float scale) {
  rows_impl(a, lda, 0, steps, bp, panel, 0, np, c, ldc, accumulate, 1, 1, scale);
}

TF_AMX void amx_bf16x3_rows(const uint16_t* a, int64_t lda, int64_t a_part, int64_t steps,
                            const uint16_t* bp, int64_t panel, int64_t b_part, int64_t np,
                            float* c, int64_t ldc, bool accumulate, int a_parts, int b_parts,
                            float scale) {
  rows_impl(a, lda, a_part, steps, bp, panel, b_part, np, c, ldc, accumulate, a_parts, b_parts,
            scale);
}

TF_AMX void amx_bf16_wrows(const uint16_t* w, int64_t ldw, int64_t rows, int64_t steps,
                           const uint16_t* xp, int64_t panel, int64_t M, float* c, int64_t ldc) {
  // a last block of fewer than kAmxRows weight rows, zero-padded (the tiles read 32)
  thread_local std::vector<uint16_t> pad;
  if (rows < kAmxRows) {
    pad.assign(size_t(kAmxRows * steps * 32), 0);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(pad.data() + r * steps * 32, w + r * ldw, size_t(steps * 32) * 2);
    w = pad.data();
    ldw = steps * 32;
  }
  configure_tiles();
  const int64_t sw = ldw * 2;  // bytes
  const int64_t np = (M + 15) / 16;
  alignas(64) float ct[4][256];
  for (int64_t jp = 0; jp < np; jp += 2) {
    const bool two = jp + 1 < np;
    const uint16_t* b0 = xp + jp * panel;
    zero_c_tiles();
    dot_steps(w, w + 16 * ldw, sw, 32, b0, b0 + panel, steps, two);
    _tile_stored(0, ct[0], 64);
    _tile_stored(1, ct[1], 64);
    _tile_stored(2, ct[2], 64);
    _tile_stored(3, ct[3], 64);
    tile_barrier();
    // tile t = 2 h + q holds weight rows 16 h.. x rows of panel jp + q: C^T, transposed into c
    for (int t = 0; t < 4; ++t) {
      const int64_t h = t / 2, q = t % 2;
      if (q == 1 && !two) continue;
      const int64_t m0 = (jp + q) * 16, n0 = 16 * h;
      if (n0 >= rows) continue;
      __m512 v[16];
      for (int i = 0; i < 16; ++i) v[i] = _mm512_load_ps(ct[t] + 16 * i);
      x86::transpose16(v);
      const int64_t cn = std::min<int64_t>(16, rows - n0);
      const __mmask16 m = cn >= 16 ? __mmask16(0xffff) : __mmask16((1u << cn) - 1);
      for (int64_t i = 0; i < 16 && m0 + i < M; ++i)
        _mm512_mask_storeu_ps(c + (m0 + i) * ldc + n0, m, v[i]);
    }
  }
  _tile_release();
}

}  // namespace gemm_cpu
}  // namespace tf

#else
namespace tf {
namespace gemm_cpu {
void amx_pack_a(const uint16_t*, int64_t, int64_t, int64_t, uint16_t*) {}
void amx_bf16_block(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t,
                    int64_t, int64_t, bool) {}
void amx_bf16_rows(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*,
                   int64_t, bool, float) {}
void amx_bf16x3_rows(const uint16_t*, int64_t, int64_t, int64_t, const uint16_t*, int64_t,
                     int64_t, int64_t, float*, int64_t, bool, int, int, float) {}
void amx_bf16_wrows(const uint16_t*, int64_t, int64_t, int64_t, const uint16_t*, int64_t, int64_t,
                    float*, int64_t) {}
}  // namespace gemm_cpu
}  // namespace tf
#endif
