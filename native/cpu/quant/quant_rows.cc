// The quantized GEMV over a run of columns, for callers with their own tiling (quant_rows.h).
// A run is served as a weight of its own: a view whose rows keep the strides of the whole weight
// (QuantWeight::ldq / lds), so the per-ISA gemv_f32 takes it unchanged, two rows at a time.
#include "quant_rows.h"

#include <algorithm>

namespace tf {
namespace quant_cpu {
namespace {

constexpr int64_t kBlock = 8;  // weight rows per gemv_f32 call

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

int64_t rows_prep_floats(const QuantWeight&, int64_t kc) { return kc + kPrepXTail; }

RowPrep rows_prepare(const Kernels& kern, const QuantWeight& w, int64_t k0, int64_t k1,
                     const float* x, float* buf) {
  RowPrep r;
  r.x = x;
  if (kern.prep_x && kern.prep_x(view(w, 0, 1, k0, k1), x, buf)) r.xd = buf;
  return r;
}

void rows_gemv(const Kernels& kern, const QuantWeight& w, const RowPrep* xs, int64_t M, int64_t n0,
               int64_t n1, int64_t k0, int64_t k1, float* y, int64_t ldy, bool accumulate) {
  float tmp[kBlock];
  for (int64_t n = n0; n < n1; n += kBlock) {
    const int64_t nb = std::min(kBlock, n1 - n);
    const QuantWeight v = view(w, n, n + nb, k0, k1);
    for (int64_t m = 0; m < M; ++m) {
      kern.gemv_f32(v, xs[m].x, xs[m].xd, 0, nb, tmp);
      float* dst = y + m * ldy + (n - n0);
      for (int64_t i = 0; i < nb; ++i) dst[i] = accumulate ? dst[i] + tmp[i] : tmp[i];
    }
  }
}

}  // namespace quant_cpu
}  // namespace tf
