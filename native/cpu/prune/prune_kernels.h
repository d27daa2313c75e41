// The per-ISA pieces of the sparse linear kernel (prune_generic.cc, prune_x86_avx2.cc fill one
// table each; prune_driver.cc does the x panels, tiling, threading and the epilogue once for all
// of them).
//
// x panel layout (the panel path, from kPanelMinM / kLanesPanelMinM rows of x): rows of x in
// panels of pr (8, 16, 32 or, where the table allows, 64; the driver picks), transposed and
// widened to float32: panel p holds xt[k * pr + r] = x[p * pr + r, k], rows past M zero. A kept
// weight w[n, k] then adds w * xt[k * pr .. + pr] to pr outputs of column n: one broadcast and
// pr / 8 FMAs (pr / 16 with AVX-512), no gather, no shuffle.
#pragma once
#include <cstdint>

#include "../common/load_f32.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/dtype.h"
#include "tensorfuse/prune.h"

namespace tf {
namespace prune_cpu {

constexpr int64_t kPanelMinM = 4;       // below this, the GEMV (any n:m)
constexpr int64_t kLanesPanelMinM = 8;  // 2:4 with lanes: the GEMV below this
constexpr int kGemvRows = 4;            // rows of x one pass of the AVX2 2:4 GEMV serves

// One compressed weight as the kernels see it (see tensorfuse/prune.h).
struct SparseView {
  const void* values;      // [N, Kc]
  DType dt;
  const uint8_t* indices;  // [N, Kc]
  const uint16_t* lanes;   // [N, words] or null (2:4 only)
  const uint16_t* pairs;   // N * words pair words, 4-row interleaved (tensorfuse/prune.h), or null
  int64_t N, K, Kc, words;
  int n, m;
};

struct Kernels {
  Isa isa;
  // y[m * ldy + j] = sum_v x[m][k(v)] * w[j, v] for m < M, j in [n0, n1); x[m] float32 [K];
  // y float32, overwritten. xs[m]: with lanes, x[m] swizzled by swizzle_x (64-byte aligned), else
  // null. A weight row is read from memory once for up to kGemvRows rows of x (the rows of x
  // share its value and position loads; M = 2..7 with 2:4 lanes, where x panels would pad).
  void (*gemv)(const float* const* x, const float* const* xs, int64_t M, const SparseView& w,
               int64_t n0, int64_t n1, float* y, int64_t ldy);
  // Lane layout only. For columns j in [n0, n1) and lane words [c0, c1) of each row:
  // ct[(j - n0) * pr + r] (+)= sum over the chunks' values v of w[j, v] * xt[k(v) * pr + r],
  // xt one panel of pr (8 to 64) rows (see above); accumulate adds to ct instead of overwriting.
  void (*panel)(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
                int64_t n1, float* ct, bool accumulate);
  // Any n:m, from the indices: the same over groups [g0, g1) of each row (values g0 * n ..).
  void (*panel_general)(const float* xt, int pr, const SparseView& w, int64_t g0, int64_t g1,
                        int64_t n0, int64_t n1, float* ct, bool accumulate);
  // The largest x panel `panel` takes with float32 weights: 32, or 64 (16-bit weights: 32).
  int max_pr_f32;
};

const Kernels& kernels_generic();
const Kernels* kernels_avx2();    // nullptr when not compiled in
const Kernels* kernels_avx512();  // nullptr when not compiled in
const Kernels& kernels_for(Isa isa);

// Scalar helpers shared by the files (and load_as_f32 from common/load_f32.h).
// In-group position of a kept value, clamped to m - 1: positions are validated once per
// SparseTensor (prune_lanes), and one written into its indices afterwards must still never
// address a column outside its group.
inline int64_t kept_pos(uint8_t pos, int m) { return pos < m ? pos : m - 1; }
// Absolute column of kept value v of a row (v / n groups in, then its in-group position).
inline int64_t kept_col(const uint8_t* idx_row, int64_t v, int n, int m) {
  return (v / n) * m + kept_pos(idx_row[v], m);
}
// Column of lane l of 2:4 lane word c: 16 columns (4 groups of 4) per word, 2 values a group.
inline int64_t lane_col(uint32_t word, int64_t c, int l) {
  return c * 16 + (l >> 1) * 4 + ((word >> (2 * l)) & 3u);
}
// x for the M = 1 kernel, swizzled per 16 columns (one lane word, groups g0..g3 of 4 columns)
// into [g0 g2 g1 g3]: one 8-float load then holds groups 0 / 2 in its 128-bit halves and the next
// holds 1 / 3, so an in-lane byte shuffle per load picks a row's kept x values of all four groups
// (pair words, tensorfuse/prune.h). words * 16 floats.
inline void swizzle_x(const float* x, int64_t words, float* xs) {
  static const int kFrom[4] = {0, 8, 4, 12};
  for (int64_t c = 0; c < words; ++c)
    for (int q = 0; q < 4; ++q)
      for (int i = 0; i < 4; ++i) xs[c * 16 + q * 4 + i] = x[c * 16 + kFrom[q] + i];
}

}  // namespace prune_cpu
}  // namespace tf
