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

const Kernels kGeneric = {Isa::generic, exp_shift, sigmoid, axpy, mul};

}  // namespace

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa == Isa::avx2) k = kernels_avx2();
  return k ? *k : kGeneric;
}

}  // namespace moe_cpu
}  // namespace tf
