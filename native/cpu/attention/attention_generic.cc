// Portable scalar attention pieces: the path every fast kernel is tested against.
#include <cmath>
#include <limits>

#include "../common/load_f32.h"
#include "attention_kernels.h"

namespace tf {
namespace attention_cpu {
namespace {

void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l, float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < R; ++r) {
    float* row = s + r * lds;
    float mx = m[r];
    for (int64_t j = 0; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    if (mx == ninf) {  // nothing visible yet: keep the state, the tile contributes nothing
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    alpha[r] = std::exp(m[r] - mx);  // m[r] = -inf gives 0, and l[r] is 0 then
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mx;
  }
}

void qk_dot(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
            int64_t n, int64_t D, float* s, int64_t lds, const Prefetch&) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t d = 0; d < D; ++d) acc += q[r * ldq + d] * load_as_f32(k, dt, j * ldk + d);
      s[r * lds + j] = acc;
    }
}

void pv_accum(const float* p, int64_t ldp, int64_t R, const void* v, DType dt, int64_t ldv,
              int64_t n, int64_t D, float* o, int64_t ldo, const Prefetch&) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const float pj = p[r * ldp + j];
      for (int64_t d = 0; d < D; ++d) o[r * ldo + d] += pj * load_as_f32(v, dt, j * ldv + d);
    }
}

const Kernels kGeneric = {Isa::generic, softmax_tile, qk_dot, pv_accum, nullptr, nullptr};

}  // namespace

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa == Isa::avx512) k = kernels_avx512();
  if (!k && isa_has_avx2(isa)) k = kernels_avx2();
  if (isa == Isa::neon) k = kernels_neon();
  return k ? *k : kGeneric;
}

}  // namespace attention_cpu
}  // namespace tf
