// Portable scalar MoE pieces: the path the AVX2 ones are tested against.
#include <cmath>

#include "moe_internal.h"

namespace tf {
namespace moe_cpu {
namespace {

float exp_shift(const float* x, float m, int64_t n, float* out) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(x[i] - m);
    sum += out[i];
  }
  return sum;
}

void sigmoid(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] *= u[i];
}

void glu(Activation act, float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = act_scalar(g[i], act) * (u ? u[i] : 1.0f);
}

float max_of(const float* x, int64_t n, bool* has_nan) {
  float m = -INFINITY;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    nan |= std::isnan(x[i]);
    if (x[i] > m) m = x[i];
  }
  *has_nan = nan;
  return m;
}

int64_t first_above(const float* keys, int64_t from, int64_t n, float thr) {
  for (int64_t i = from; i < n; ++i)
    if (keys[i] > thr) return i;
  return n;
}

const Kernels kGeneric = {Isa::generic, exp_shift, sigmoid, axpy, mul, max_of, first_above, glu};

}  // namespace

float act_scalar(float v, Activation act) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0.0f ? v : 0.0f;
    case Activation::gelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case Activation::silu: return v / (1.0f + std::exp(-v));
  }
  return v;
}

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa_has_avx2(isa)) k = kernels_avx2();
  return k ? *k : kGeneric;
}

}  // namespace moe_cpu
}  // namespace tf
