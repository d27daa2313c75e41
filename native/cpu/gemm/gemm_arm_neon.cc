// NEON GEMM pieces for arm64 (NEON is baseline there, so no extra flags). Same 6x16 tile as
// x86: 24 q-register accumulators, 4 B vectors, A rows broadcast by lane (FMLA by element).
#include "gemm_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include "../common/load_f32.h"

namespace tf {
namespace gemm_cpu {
namespace {

inline float32x4_t load4(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float16:
      return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p) + i)));
    case DType::bfloat16:
      return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(p) + i), 16));
    default: return vld1q_f32(static_cast<const float*>(p) + i);
  }
}

void pack_a(const void* a, DType dt, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += kMR) {
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < kMR; ++i)
        dst[k * kMR + i] = i0 + i < mc ? load_as_f32(a, dt, (i0 + i) * lda + k) : 0.0f;
    dst += kc * kMR;
  }
}

void pack_b(const void* b, DType dt, int64_t ldb, bool trans, int64_t kc, int64_t nc,
            float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += kNR) {
    const int cols = int(nc - j0 < kNR ? nc - j0 : kNR);
    for (int64_t k = 0; k < kc; ++k) {
      if (!trans && cols == kNR) {
        for (int q = 0; q < 4; ++q) vst1q_f32(dst + k * kNR + 4 * q, load4(b, dt, k * ldb + j0 + 4 * q));
      } else {
        for (int j = 0; j < kNR; ++j)
          dst[k * kNR + j] =
              j < cols ? load_as_f32(b, dt, trans ? (j0 + j) * ldb + k : k * ldb + j0 + j)
                       : 0.0f;
      }
    }
    dst += kc * kNR;
  }
}

void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  float32x4_t acc[kMR][4];
  for (int i = 0; i < kMR; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < kc; ++k) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
    const float32x4_t b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    const float32x4_t a03 = vld1q_f32(a);
    const float32x2_t a45 = vld1_f32(a + 4);
#define TF_ROW(i, av, lane)                               \
  acc[i][0] = vfmaq_lane##av##_f32(acc[i][0], b0, src_##av, lane); \
  acc[i][1] = vfmaq_lane##av##_f32(acc[i][1], b1, src_##av, lane); \
  acc[i][2] = vfmaq_lane##av##_f32(acc[i][2], b2, src_##av, lane); \
  acc[i][3] = vfmaq_lane##av##_f32(acc[i][3], b3, src_##av, lane);
    const float32x4_t src_q = a03;
    const float32x2_t src_ = a45;
    TF_ROW(0, q, 0) TF_ROW(1, q, 1) TF_ROW(2, q, 2) TF_ROW(3, q, 3)
    TF_ROW(4, , 0) TF_ROW(5, , 1)
#undef TF_ROW
    a += kMR;
    b += kNR;
  }
  for (int i = 0; i < kMR; ++i) {
    float* row = c + i * ldc;
    for (int q = 0; q < 4; ++q) {
      float32x4_t v = acc[i][q];
      if (accumulate) v = vaddq_f32(v, vld1q_f32(row + 4 * q));
      vst1q_f32(row + 4 * q, v);
    }
  }
}

void gemv(const float* x, const void* b, DType dt, int64_t ldb, bool trans, int64_t K, int64_t n0,
          int64_t n1, float* y) {
  if (trans) {
    for (int64_t n = n0; n < n1; ++n) {
      float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(x + k), load4(b, dt, n * ldb + k));
        s1 = vfmaq_f32(s1, vld1q_f32(x + k + 4), load4(b, dt, n * ldb + k + 4));
      }
      float t = vaddvq_f32(vaddq_f32(s0, s1));
      for (; k < K; ++k) t += x[k] * load_as_f32(b, dt, n * ldb + k);
      y[n] = t;
    }
  } else {
    for (int64_t n = n0; n < n1; ++n) y[n] = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float32x4_t xv = vdupq_n_f32(x[k]);
      int64_t n = n0;
      for (; n + 4 <= n1; n += 4)
        vst1q_f32(y + n, vfmaq_f32(vld1q_f32(y + n), xv, load4(b, dt, k * ldb + n)));
      for (; n < n1; ++n) y[n] += x[k] * load_as_f32(b, dt, k * ldb + n);
    }
  }
}

const Kernels kNeon = {Isa::neon, pack_a, pack_b, kernel, nullptr, gemv, nullptr, nullptr, nullptr};

}  // namespace

const Kernels* kernels_neon() { return &kNeon; }

}  // namespace gemm_cpu
}  // namespace tf

#else
namespace tf {
namespace gemm_cpu {
const Kernels* kernels_neon() { return nullptr; }
}  // namespace gemm_cpu
}  // namespace tf
#endif
