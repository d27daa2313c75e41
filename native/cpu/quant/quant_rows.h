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
#include <cstdint>

#include "quant_kernels.h"

namespace tf {
namespace quant_cpu {

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

}  // namespace quant_cpu
}  // namespace tf
