// Portable scalar GEMM pieces: the path every fast kernel is tested against. Written for
// clarity; the compiler may vectorise it with the baseline ISA, nothing more.
#include "../common/load_f32.h"
#include "gemm_kernels.h"

namespace tf {
namespace gemm_cpu {
namespace {

void pack_a(const void* a, DType dt, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += kMR) {
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < kMR; ++i) {
        const int64_t row = i0 + i;
        dst[k * kMR + i] = row < mc ? load_as_f32(a, dt, row * lda + k) : 0.0f;
      }
    }
    dst += kc * kMR;
  }
}

void pack_b(const void* b, DType dt, int64_t ldb, bool trans, int64_t kc, int64_t nc,
            float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += kNR) {
    for (int64_t k = 0; k < kc; ++k) {
      for (int j = 0; j < kNR; ++j) {
        const int64_t col = j0 + j;
        float v = 0.0f;
        if (col < nc) v = load_as_f32(b, dt, trans ? col * ldb + k : k * ldb + col);
        dst[k * kNR + j] = v;
      }
    }
    dst += kc * kNR;
  }
}

void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kMR; ++i) {
      const float av = a[k * kMR + i];
      for (int j = 0; j < kNR; ++j) acc[i][j] += av * b[k * kNR + j];
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j)
      c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.0f) + acc[i][j];
}

void gemv(const float* x, const void* b, DType dt, int64_t ldb, bool trans, int64_t K, int64_t n0,
          int64_t n1, float* y) {
  if (trans) {
    for (int64_t n = n0; n < n1; ++n) {
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += x[k] * load_as_f32(b, dt, n * ldb + k);
      y[n] = s;
    }
  } else {
    for (int64_t n = n0; n < n1; ++n) y[n] = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float xv = x[k];
      for (int64_t n = n0; n < n1; ++n) y[n] += xv * load_as_f32(b, dt, k * ldb + n);
    }
  }
}

const Kernels kGeneric = {Isa::generic, pack_a,  pack_b,  kernel, nullptr,
                          gemv,         nullptr, nullptr, nullptr};

}  // namespace

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa == Isa::avx512) k = kernels_avx512();
  if (!k && isa_has_avx2(isa)) k = kernels_avx2();
  if (isa == Isa::neon) k = kernels_neon();
  return k ? *k : kGeneric;
}

}  // namespace gemm_cpu
}  // namespace tf
