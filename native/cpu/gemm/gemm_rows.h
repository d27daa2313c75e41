// The small-M engine with B's rows as the micro-kernel's A (y^T = B x^T), shared by the float
// GEMM (B = linear's weight, read in place) and the quantized linear (B = a dequantized slice in
// L2). x^T is packed once into kNR-column panels; each 6 x 16 tile of y^T is accumulated in
// registers over a depth slice through Kernels::kernel_rows (no horizontal sums, as dot_t needs).
// Used for M >= kRowsMinM: the M % 16 rows past the whole panels are the caller's (dot_t).
#pragma once
#include <algorithm>
#include <cstdint>

#include "gemm_kernels.h"

namespace tf {
namespace gemm_cpu {

constexpr int64_t kRowsMinM = 16;
constexpr int64_t kRowsTile = kMR * kNR;

// xp[(p * K + k) * kNR + j] = x[(p * kNR + j) * ldx + k] for the P whole panels of x's rows.
inline void rows_pack_x(const float* x, int64_t ldx, int64_t P, int64_t K, float* xp) {
  for (int64_t p = 0; p < P; ++p)
    for (int64_t j = 0; j < kNR; ++j) {
      const float* src = x + (p * kNR + j) * ldx;
      float* dst = xp + p * K * kNR + j;
      for (int64_t k = 0; k < K; ++k) dst[k * kNR] = src[k];
    }
}

// The tile panel p belongs to: its first panel and its width in panels. With the ISA's
// kernel4_rows the panels go in fours from 0 (one 6 x 64 tile: each A element broadcast once for
// four), then with kernel2_rows in pairs (6 x 32), a lone last panel 6 x 16.
struct RowsTile {
  int64_t first, width;
};
inline RowsTile rows_tile(const Kernels& kern, int64_t P, int64_t p) {
  const int64_t p4 = kern.kernel4_rows ? P / 4 * 4 : 0;
  if (p < p4) return {p / 4 * 4, 4};
  const int64_t f2 = p4 + (p - p4) / 2 * 2;
  if (kern.kernel2_rows && f2 + 2 <= P) return {f2, 2};
  return {p, 1};
}
// Depth per kernel4_rows call: four panels' slices (4 x 128 x 16 floats, 32 KiB) stay in L1.
constexpr int64_t kRowsKC4 = 128;

// Tiles of y^T for `strips` strips of kMR rows of A (row stride lda; A points at depth k0) over
// depth [k0, k0 + kc), against the P panels of xp (K deep): tile (s, p) at ct + (s * P + p) *
// kRowsTile (a pair's or a four's tile over all its places), accumulated onto unless `accumulate`
// is false. Depth in slices of kKC, so a panel's slice (kKC x kNR floats) and a strip's
// (kMR x kKC) stay in L1 across the panels.
inline void rows_tiles(const Kernels& kern, const float* a, int64_t lda, int64_t strips,
                       const float* xp, int64_t P, int64_t K, int64_t k0, int64_t kc, float* ct,
                       bool accumulate) {
  for (int64_t s = 0; s < strips; ++s)
    for (int64_t d = 0; d < kc; d += kKC) {
      const int64_t dc = std::min(kKC, kc - d);
      const float* as = a + s * kMR * lda + d;
      for (int64_t p = 0; p < P;) {
        const float* b = xp + (p * K + k0 + d) * kNR;
        float* t = ct + (s * P + p) * kRowsTile;
        const int64_t w = rows_tile(kern, P, p).width;
        if (w == 4) {
          for (int64_t h = 0; h < dc; h += kRowsKC4)
            kern.kernel4_rows(std::min(kRowsKC4, dc - h), as + h, lda, b + h * kNR, K * kNR, t,
                              4 * kNR, accumulate || d > 0 || h > 0);
        } else if (w == 2) {
          kern.kernel2_rows(dc, as, lda, b, b + K * kNR, t, 2 * kNR, accumulate || d > 0);
        } else {
          kern.kernel_rows(dc, as, lda, b, t, kNR, accumulate || d > 0);
        }
        p += w;
      }
    }
}

// What the tiles of rows_tiles leave of y = x b^T (float32 b, rows nb of row stride ldb, the
// depth kc of x and b from where they point): rows [mp, mp + rem) of x (past the whole panels)
// against all nb rows of b, and rows [0, mp) against b's rows [ns, nb) past its whole strips;
// through dot_t, onto y (row stride ldc) where `accumulate`.
inline void rows_edges(const Kernels& kern, const float* x, int64_t ldx, int64_t mp, int64_t rem,
                       const float* b, int64_t ldb, int64_t kc, int64_t ns, int64_t nb, float* y,
                       int64_t ldc, bool accumulate) {
  if (rem)
    kern.dot_t(x + mp * ldx, ldx, rem, b, DType::float32, ldb, 0, kc, 0, nb, y + mp * ldc, ldc,
               accumulate);
  if (ns < nb)
    kern.dot_t(x, ldx, mp, b, DType::float32, ldb, 0, kc, ns, nb, y, ldc, accumulate);
}

// The tiles into y (row stride ldc): row i of strip s is output column n0 + s * kMR + i, column j
// of panel p is output row p * kNR + j.
inline void rows_store(const Kernels& kern, const float* ct, int64_t strips, int64_t P, float* c,
                       int64_t ldc, int64_t n0) {
  for (int64_t s = 0; s < strips; ++s)
    for (int64_t p = 0; p < P; ++p) {
      // element (i, j) of panel p: in its own 6 x 16 tile, or in its pair's / four's
      const RowsTile rt = rows_tile(kern, P, p);
      const int64_t first = rt.first, ld = rt.width * kNR;
      const float* t = ct + (s * P + first) * kRowsTile + (p - first) * kNR;
      for (int64_t j = 0; j < kNR; ++j)
        for (int64_t i = 0; i < kMR; ++i) c[(p * kNR + j) * ldc + n0 + s * kMR + i] = t[i * ld + j];
    }
}

// The bfloat16 form (Kernels::tile_bf16, present with AVX512-BF16): y^T = W x^T for rows
// [0, nrows) of W (bfloat16, ldw apart, even depth K2; a last block of fewer than kMR rows copied
// and zero-padded) against x packed by pairs of k (pack_b_bf16 with trans: x_panels panels of
// kNR rows, K2 * kNR elements each), into ct[n * ldct + m] (float32, overwritten). Depth in
// slices of kRowsBf16KC, so a 6-row block's slice sits in L1 across the quads of x panels.
constexpr int64_t kRowsBf16KC = 1024;
inline void rows_tiles_bf16(const Kernels& kern, const uint16_t* w, int64_t ldw, int64_t nrows,
                            const uint16_t* xpack, int64_t x_panels, int64_t K2, float* ct,
                            int64_t ldct) {
  alignas(64) uint16_t pad[kMR * kRowsBf16KC];
  for (int64_t pc = 0; pc < K2; pc += kRowsBf16KC) {
    const int64_t kc = std::min(kRowsBf16KC, K2 - pc);
    for (int64_t n = 0; n < nrows; n += kMR) {
      int64_t ld = ldw;
      const uint16_t* wp =
          tile_bf16_rows(w + n * ldw + pc, &ld, std::min<int64_t>(kMR, nrows - n), kc, pad);
      for (int64_t xq = 0; xq < x_panels; xq += 4)
        kern.tile_bf16(kc / 2, wp, ld, xpack + xq * K2 * kNR + pc * kNR, K2 * kNR,
                       std::min<int64_t>(4, x_panels - xq), ct + n * ldct + xq * kNR, ldct,
                       pc > 0, 1.0f);
    }
  }
}

}  // namespace gemm_cpu
}  // namespace tf
