// The quantized GEMV over a run of columns, for callers with their own tiling (quant_rows.h).
// A run is served as a weight of its own: a view whose rows keep the strides of the whole weight
// (QuantWeight::ldq / lds), so the per-ISA gemv_f32 takes it unchanged, two rows at a time.
#include "quant_rows.h"

#include <algorithm>

namespace tf {
namespace quant_cpu {
namespace {

// Weight rows per gemv_f32 call. The GEMV asks for the next rows only within a call, so short
// calls stall on memory at every start (moe decode T = 1 from memory: 8.4-10.6 ms with 8 rows,
// 6.4-7.5 with 48).
constexpr int64_t kBlock = 48;

// Rows [n0, n1), stored columns [k0, k1) of w as a weight of its own.
QuantWeight view(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1) {
  QuantWeight v = w;
  const int64_t G = w.s_stride(), ld = w.q_stride(), g0 = w.group_size > 0 ? k0 / w.group_size : 0;
  v.N = n1 - n0;
  v.K = k1 - k0;
  v.ldq = ld;
  v.lds = G;
  v.q = static_cast<const uint8_t*>(w.q) + (w.bits == 8 ? n0 * ld + k0 : (n0 * ld + k0) / 2);
  v.scales = w.scales + n0 * G + g0;
  v.zeros = w.zeros ? w.zeros + n0 * G + g0 : nullptr;
  v.perm = nullptr;
  return v;
}

}  // namespace

int64_t rows_prep_floats(const QuantWeight&, int64_t kc) { return prep_x_floats(kc); }

RowPrep rows_prepare(const Kernels& kern, const QuantWeight& w, int64_t k0, int64_t k1,
                     const float* x, float* buf) {
  RowPrep r;
  r.x = x;
  if (kern.prep_x && kern.prep_x(view(w, 0, 1, k0, k1), x, buf)) r.xd = buf;
  return r;
}

void rows_gemv(const Kernels& kern, const QuantWeight& w, const RowPrep* xs, int64_t M, int64_t n0,
               int64_t n1, int64_t k0, int64_t k1, float* y, int64_t ldy, bool accumulate) {
  // up to kRowsX rows of x a call (the kernel shares each unpacked weight vector among them)
  constexpr int64_t kRowsX = 8;
  float tmp[kRowsX][kBlock];
  const float* x[kRowsX];
  const float* xd[kRowsX];
  float* out[kRowsX];
  for (int64_t i = 0; i < kRowsX; ++i) out[i] = tmp[i];
  for (int64_t n = n0; n < n1; n += kBlock) {
    const int64_t nb = std::min(kBlock, n1 - n);
    const QuantWeight v = view(w, n, n + nb, k0, k1);
    for (int64_t m0 = 0; m0 < M; m0 += kRowsX) {
      const int64_t mx = std::min(kRowsX, M - m0);
      for (int64_t i = 0; i < mx; ++i) x[i] = xs[m0 + i].x, xd[i] = xs[m0 + i].xd;
      gemv_rows(kern, v, x, xd, mx, 0, nb, out);
      for (int64_t i = 0; i < mx; ++i) {
        float* dst = y + (m0 + i) * ldy + (n - n0);
        for (int64_t j = 0; j < nb; ++j) dst[j] = accumulate ? dst[j] + tmp[i][j] : tmp[i][j];
      }
    }
  }
}

void i8_rows_prepare(const QuantWeight& w, const int8_t* xq, int64_t M, int8_t* xl, int32_t* xsum) {
  const int64_t K = w.K, G = w.groups(), gs = w.group();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < G; ++g) {
      const int8_t* xg = xq + m * K + g * gs;
      int32_t t = 0;
      for (int64_t k = 0; k < gs; ++k) t += xg[k];
      xsum[m * G + g] = t;
    }
    if (w.bits == 4 && i8_rows_lane_order(w)) prep_i4_x(xq + m * K, K, xl + m * K);
  }
}

void i8_rows_gemv(const Kernels& kern, const QuantWeight& w, const int8_t* xq, const int8_t* xl,
                  const int32_t* xsum, const float* sx, int64_t M, int64_t n0, int64_t n1, float* c,
                  int64_t ldc) {
  // Blocks of at most kL2BlockBytes of weight rows (8..64 rows): a tile runs its rows of x one
  // after another over its weight rows, so each block is read from memory once and again from L2
  // for the next rows of x.
  const int64_t rows_fit = rows_in_l2_block(w);
  // (Strips, when the kernels read them, are whole blocks of their own: the range as it is.)
  const bool whole = (kern.tile_i8_whole_range && w.bits == 8) || (kern.reads_strips && w.strips);
  const int64_t block = whole ? std::max<int64_t>(1, n1 - n0)
                            : std::max<int64_t>(8, std::min<int64_t>(64, rows_fit) / 8 * 8);
  for (int64_t b0 = n0; b0 < n1; b0 += block) {
    const int64_t b1 = std::min(n1, b0 + block);
    if (w.bits == 8)
      kern.tile_i8(w, xq, xsum, M, b0, b1, c, ldc);
    else
      kern.tile_i4(w, xq, i8_rows_lane_order(w) ? xl : nullptr, xsum, M, b0, b1, c, ldc);
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = n0; n < n1; ++n) c[m * ldc + n] *= sx[m];
}

}  // namespace quant_cpu
}  // namespace tf
