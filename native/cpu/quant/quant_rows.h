// Pieces of the quantized GEMV for callers outside this family that own their own tiling (the
// fused MoE expert layer): a row of x prepared once for a run of stored columns, and rows
// [n0, n1) of y = x @ dequant(W)^T over those columns, on the active ISA's gemv_f32. Prefill-sized
// work takes quant_cpu::Kernels::dequant (quant_kernels.h) into panels instead.
//
// Column runs [k0, k1) must start and end on group boundaries (k1 = K allowed; any run when
// group_size is 0, the one scale per row applying to every part of it) and, for int4, on even
// columns. The GEMV then reads x in the ISA's lane order when the run suits it (prep_x),
// else in stored order through the scalar path.
#pragma once
#include <algorithm>
#include <cstdint>

#include "quant_kernels.h"

namespace tf {
namespace quant_cpu {

// Bytes of weight codes that a block of rows run by several rows of x keeps in L2 between them
// (half of Zen 1's 512 KiB), and how many whole rows of w that is (at least 1).
constexpr int64_t kL2BlockBytes = 256 << 10;
inline int64_t rows_in_l2_block(const QuantWeight& w) {
  const int64_t row_bytes = w.bits == 8 ? w.K : w.K / 2;
  return std::max<int64_t>(1, kL2BlockBytes / std::max<int64_t>(1, row_bytes));
}

// One row of x over stored columns [k0, k1): x itself and its lane-ordered copy (null when not
// used).
struct RowPrep {
  const float* x = nullptr;
  const float* xd = nullptr;
};

// Floats of scratch rows_prepare needs for a run of kc columns.
int64_t rows_prep_floats(const QuantWeight& w, int64_t kc);

// Prepares x (float32 [k1 - k0], columns k0..k1 of one row) into buf (rows_prep_floats floats).
RowPrep rows_prepare(const Kernels& kern, const QuantWeight& w, int64_t k0, int64_t k1,
                     const float* x, float* buf);

// y[m * ldy + (n - n0)] (+)= sum_{k0 <= k < k1} xs[m].x[k - k0] * dequant(W)[n, k] for m < M,
// n in [n0, n1). Weight rows outer, rows of x inner: a weight row is read from memory once for
// all M rows of x.
void rows_gemv(const Kernels& kern, const QuantWeight& w, const RowPrep* xs, int64_t M, int64_t n0,
               int64_t n1, int64_t k0, int64_t k1, float* y, int64_t ldy, bool accumulate);

// Int8 activations (W8A8 for int8 weights, W4A8 for int4) on rows of x already quantized by
// quant_activations (codes xq [M, K], scales sx [M]), for groups of at most kMaxI8Group
// (int32 sums stay exact: 65536 * 128 * 127 < 2^31);
// whether int4 rows also want prep_i4_x's nibble order (K % 64 == 0), and the int32 group sums
// per row that tile_i4 / tile_i8 take.
constexpr int64_t kMaxI8Group = 65536;
inline bool i8_rows_lane_order(const QuantWeight& w) { return w.bits == 4 && w.K % 64 == 0; }
inline int64_t i8_rows_sums(const QuantWeight& w) { return w.groups(); }
// Fills xsum [M, i8_rows_sums] (sum of each group's codes, exact) and, for int4 weights when
// i8_rows_lane_order, xl [M, K].
void i8_rows_prepare(const QuantWeight& w, const int8_t* xq, int64_t M, int8_t* xl, int32_t* xsum);
// c[m * ldc + n] = sx[m] * (tile_i8 / tile_i4 of weight rows n in [n0, n1)) for m < M: the integer
// sums of the kernel table's contract, scaled by the row's activation scale last.
void i8_rows_gemv(const Kernels& kern, const QuantWeight& w, const int8_t* xq, const int8_t* xl,
                  const int32_t* xsum, const float* sx, int64_t M, int64_t n0, int64_t n1, float* c,
                  int64_t ldc);

}  // namespace quant_cpu
}  // namespace tf
