// Scalar sparse linear: what every other level is tested against. Plain loops over the kept
// values of each row, float32 accumulation in value order.
#include "../common/load_f32.h"
#include "prune_kernels.h"

namespace tf {
namespace prune_cpu {

namespace {

void gemv(const float* const* x, const float* const*, int64_t M, const SparseView& w, int64_t n0,
          int64_t n1, float* y, int64_t ldy) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = n0; j < n1; ++j) {
      const uint8_t* idx = w.indices + j * w.Kc;
      const int64_t base = j * w.Kc;
      float s = 0.0f;
      for (int64_t v = 0; v < w.Kc; ++v)
        s += x[m][kept_col(idx, v, w.n, w.m)] * load_as_f32(w.values, w.dt, base + v);
      y[m * ldy + j] = s;
    }
}

void panel(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
           int64_t n1, float* ct, bool accumulate) {
  for (int64_t j = n0; j < n1; ++j) {
    float* acc = ct + (j - n0) * pr;
    if (!accumulate)
      for (int r = 0; r < pr; ++r) acc[r] = 0.0f;
    const uint16_t* lw = w.lanes + j * w.words;
    const int64_t base = j * w.Kc;
    for (int64_t c = c0; c < c1; ++c)
      for (int l = 0; l < 8; ++l) {
        const float wv = load_as_f32(w.values, w.dt, base + c * 8 + l);
        const float* xr = xt + lane_col(lw[c], c, l) * pr;
        for (int r = 0; r < pr; ++r) acc[r] += wv * xr[r];
      }
  }
}

void panel_general(const float* xt, int pr, const SparseView& w, int64_t g0, int64_t g1,
                   int64_t n0, int64_t n1, float* ct, bool accumulate) {
  for (int64_t j = n0; j < n1; ++j) {
    float* acc = ct + (j - n0) * pr;
    if (!accumulate)
      for (int r = 0; r < pr; ++r) acc[r] = 0.0f;
    const uint8_t* idx = w.indices + j * w.Kc;
    for (int64_t v = g0 * w.n; v < g1 * w.n; ++v) {
      const float wv = load_as_f32(w.values, w.dt, j * w.Kc + v);
      const float* xr = xt + kept_col(idx, v, w.n, w.m) * pr;
      for (int r = 0; r < pr; ++r) acc[r] += wv * xr[r];
    }
  }
}

const Kernels kGeneric = {Isa::generic, gemv, panel, panel_general, 32};

}  // namespace

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa == Isa::avx512) k = kernels_avx512();
  if (!k && isa_has_avx2(isa)) k = kernels_avx2();
  return k ? *k : kGeneric;
}

}  // namespace prune_cpu
}  // namespace tf
