// NEON attention pieces for arm64 (NEON is baseline there, so no extra flags): a 4-lane vector
// exp for the online softmax, and the few-row streaming products of decode, which widen
// float16/bfloat16 K and V rows in registers. Contracts: attention_kernels.h; the x86 twin is
// attention_x86_avx2.cc (same polynomial, same shapes, 4 lanes instead of 8).
#include "attention_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <limits>

#include "tensorfuse/fp16.h"

namespace tf {
namespace attention_cpu {
namespace {

template <DType T>
inline float32x4_t ld4(const void* p, int64_t i) {
  if (T == DType::float16)
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p) + i)));
  if (T == DType::bfloat16)
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(p) + i), 16));
  return vld1q_f32(static_cast<const float*>(p) + i);
}

template <DType T>
inline float ld1(const void* p, int64_t i) {
  if (T == DType::float16) return fp16_to_f32(static_cast<const uint16_t*>(p)[i]);
  if (T == DType::bfloat16) return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// exp(x) for 4 lanes, as x86::exp8 (common/x86_avx2_math.h): x = n ln2 + r (|r| <= ln2/2, ln2 in two parts),
// Cephes' degree-6 polynomial for exp(r), 2^n built in the exponent bits; below -87.3
// (including -inf: masked scores) exactly 0. Inputs are never above 0 here.
inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(-87.3f);
  const uint32x4_t keep = vcgeq_f32(x, lo);
  x = vmaxq_f32(x, lo);
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), keep));
}

inline float exp1(float x) { return vgetq_lane_f32(exp4(vdupq_n_f32(x)), 0); }

void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l, float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t n4 = n & ~int64_t(3);
  for (int64_t r = 0; r < R; ++r) {
    float* row = s + r * lds;
    float32x4_t vmax = vdupq_n_f32(m[r]);
    for (int64_t j = 0; j < n4; j += 4) vmax = vmaxq_f32(vmax, vld1q_f32(row + j));
    float mx = vmaxvq_f32(vmax);
    for (int64_t j = n4; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    if (mx == ninf) {
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    const float32x4_t vm = vdupq_n_f32(mx);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < n4; j += 4) {
      const float32x4_t e = exp4(vsubq_f32(vld1q_f32(row + j), vm));
      vst1q_f32(row + j, e);
      vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    for (int64_t j = n4; j < n; ++j) {  // the tail through the same vector exp
      row[j] = exp1(row[j] - mx);
      sum += row[j];
    }
    alpha[r] = exp1(m[r] - mx);
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mx;
  }
}

// Scores of R rows against 4 keys per pass: each widened K vector feeds every row.
template <DType T, int R>
void qk_rows(const float* q, int64_t ldq, const void* k, int64_t ldk, int64_t n, int64_t D,
             float* s, int64_t lds) {
  const int64_t D4 = D & ~int64_t(3);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    float32x4_t acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < 4; ++t) acc[r][t] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < D4; d += 4) {
      float32x4_t kv[4];
      for (int t = 0; t < 4; ++t) kv[t] = ld4<T>(k, (j + t) * ldk + d);
      for (int r = 0; r < R; ++r) {
        const float32x4_t x = vld1q_f32(q + r * ldq + d);
        for (int t = 0; t < 4; ++t) acc[r][t] = vfmaq_f32(acc[r][t], x, kv[t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < 4; ++t) {
        float sum = vaddvq_f32(acc[r][t]);
        for (int64_t d = D4; d < D; ++d) sum += q[r * ldq + d] * ld1<T>(k, (j + t) * ldk + d);
        s[r * lds + j + t] = sum;
      }
  }
  for (; j < n; ++j)
    for (int r = 0; r < R; ++r) {
      float32x4_t acc = vdupq_n_f32(0.0f);
      for (int64_t d = 0; d < D4; d += 4)
        acc = vfmaq_f32(acc, vld1q_f32(q + r * ldq + d), ld4<T>(k, j * ldk + d));
      float sum = vaddvq_f32(acc);
      for (int64_t d = D4; d < D; ++d) sum += q[r * ldq + d] * ld1<T>(k, j * ldk + d);
      s[r * lds + j] = sum;
    }
}

template <DType T>
void qk_dot_t(const float* q, int64_t ldq, int64_t R, const void* k, int64_t ldk, int64_t n,
              int64_t D, float* s, int64_t lds) {
  int64_t r = 0;
  for (; r + 2 <= R; r += 2) qk_rows<T, 2>(q + r * ldq, ldq, k, ldk, n, D, s + r * lds, lds);
  if (r < R) qk_rows<T, 1>(q + r * ldq, ldq, k, ldk, n, D, s + r * lds, lds);
}

void qk_dot(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
            int64_t n, int64_t D, float* s, int64_t lds, const Prefetch&) {
  with_dtype(dt, [&](auto t) {
    qk_dot_t<decltype(t)::value>(q, ldq, R, k, ldk, n, D, s, lds);
  });
}

// R rows x C vectors (4C columns) of o in registers over all n keys; each widened V vector
// feeds every row (R * C + C + 1 of the 32 q registers).
template <DType T, int R, int C>
void pv_cols(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n, int64_t d,
             float* o, int64_t ldo) {
  float32x4_t acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vld1q_f32(o + r * ldo + d + 4 * c);
  for (int64_t j = 0; j < n; ++j) {
    float32x4_t vv[C];
    for (int c = 0; c < C; ++c) vv[c] = ld4<T>(v, j * ldv + d + 4 * c);
    for (int r = 0; r < R; ++r) {
      const float pj = p[r * ldp + j];
      for (int c = 0; c < C; ++c) acc[r][c] = vfmaq_n_f32(acc[r][c], vv[c], pj);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) vst1q_f32(o + r * ldo + d + 4 * c, acc[r][c]);
}

template <DType T, int R>
void pv_rows(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n, int64_t D,
             float* o, int64_t ldo) {
  int64_t d = 0;
  for (; d + 16 <= D; d += 16) pv_cols<T, R, 4>(p, ldp, v, ldv, n, d, o, ldo);
  for (; d + 4 <= D; d += 4) pv_cols<T, R, 1>(p, ldp, v, ldv, n, d, o, ldo);
  for (; d < D; ++d)
    for (int r = 0; r < R; ++r) {
      float acc = o[r * ldo + d];
      for (int64_t j = 0; j < n; ++j) acc += p[r * ldp + j] * ld1<T>(v, j * ldv + d);
      o[r * ldo + d] = acc;
    }
}

template <DType T>
void pv_accum_t(const float* p, int64_t ldp, int64_t R, const void* v, int64_t ldv, int64_t n,
                int64_t D, float* o, int64_t ldo) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) pv_rows<T, 4>(p + r * ldp, ldp, v, ldv, n, D, o + r * ldo, ldo);
  for (; r + 2 <= R; r += 2) pv_rows<T, 2>(p + r * ldp, ldp, v, ldv, n, D, o + r * ldo, ldo);
  if (r < R) pv_rows<T, 1>(p + r * ldp, ldp, v, ldv, n, D, o + r * ldo, ldo);
}

void pv_accum(const float* p, int64_t ldp, int64_t R, const void* v, DType dt, int64_t ldv,
              int64_t n, int64_t D, float* o, int64_t ldo, const Prefetch&) {
  with_dtype(dt, [&](auto t) {
    pv_accum_t<decltype(t)::value>(p, ldp, R, v, ldv, n, D, o, ldo);
  });
}

const Kernels kNeon = {Isa::neon, softmax_tile, qk_dot, pv_accum, nullptr, nullptr};

}  // namespace

const Kernels* kernels_neon() { return &kNeon; }

}  // namespace attention_cpu
}  // namespace tf

#else

namespace tf {
namespace attention_cpu {
const Kernels* kernels_neon() { return nullptr; }
}  // namespace attention_cpu
}  // namespace tf

#endif
