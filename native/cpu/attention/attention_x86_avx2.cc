// AVX2 + FMA + F16C attention pieces (compiled with -mavx2 -mfma -mf16c, this file only):
// the online softmax (through x86::exp8 of common/x86_avx2_math.h), and the few-row streaming
// products of decode, which widen float16/bfloat16 K and V rows in registers so the cache is
// read in its stored size.
#include "attention_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "../common/x86_avx2_load.h"
#include "../common/x86_avx2_math.h"

namespace tf {
namespace attention_cpu {
namespace {

using x86::exp8;
using x86::hsum;
using x86::load1;
using x86::load8;

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l, float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t n8 = n & ~int64_t(7);
  for (int64_t r = 0; r < R; ++r) {
    float* row = s + r * lds;
    __m256 vmax = _mm256_set1_ps(m[r]);
    for (int64_t j = 0; j < n8; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
    float mx = hmax(vmax);
    for (int64_t j = n8; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    if (mx == ninf) {
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t j = 0; j < n8; j += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
      _mm256_storeu_ps(row + j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum(vsum);
    if (n8 < n) {  // the tail through the same vector exp, padded with -inf (exp = 0)
      alignas(32) float t[8];
      for (int64_t j = 0; j < 8; ++j) t[j] = n8 + j < n ? row[n8 + j] - mx : ninf;
      _mm256_store_ps(t, exp8(_mm256_load_ps(t)));
      for (int64_t j = n8; j < n; ++j) {
        row[j] = t[j - n8];
        sum += t[j - n8];
      }
    }
    alignas(32) float a[8] = {m[r] - mx};
    _mm256_store_ps(a, exp8(_mm256_load_ps(a)));
    alpha[r] = a[0];
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mx;
  }
}

// Sums of 4 vectors, one per lane of the result: {hsum(a), hsum(b), hsum(c), hsum(d)}.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Four keys against one or two query rows per pass: 8 independent accumulators hide the FMA
// latency, and each widened K vector is used by both rows.
void qk_dot(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
            int64_t n, int64_t D, float* s, int64_t lds) {
  const int64_t D8 = D & ~int64_t(7);
  const int64_t n4 = n & ~int64_t(3);
  for (int64_t r = 0; r < R; r += 2) {
    const bool two = r + 1 < R;
    const float* q0 = q + r * ldq;
    const float* q1 = two ? q0 + ldq : q0;
    for (int64_t j = 0; j < n4; j += 4) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      const int64_t kj = j * ldk;
      for (int64_t d = 0; d < D8; d += 8) {
        const __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
        const __m256 k0 = load8(k, dt, kj + d), k1 = load8(k, dt, kj + ldk + d);
        const __m256 k2 = load8(k, dt, kj + 2 * ldk + d), k3 = load8(k, dt, kj + 3 * ldk + d);
        a0 = _mm256_fmadd_ps(x0, k0, a0);
        a1 = _mm256_fmadd_ps(x0, k1, a1);
        a2 = _mm256_fmadd_ps(x0, k2, a2);
        a3 = _mm256_fmadd_ps(x0, k3, a3);
        b0 = _mm256_fmadd_ps(x1, k0, b0);
        b1 = _mm256_fmadd_ps(x1, k1, b1);
        b2 = _mm256_fmadd_ps(x1, k2, b2);
        b3 = _mm256_fmadd_ps(x1, k3, b3);
      }
      alignas(16) float sa[4], sb[4];
      _mm_store_ps(sa, hsum4(a0, a1, a2, a3));
      _mm_store_ps(sb, hsum4(b0, b1, b2, b3));
      for (int64_t d = D8; d < D; ++d)
        for (int t = 0; t < 4; ++t) {
          const float kv = load1(k, dt, kj + t * ldk + d);
          sa[t] += q0[d] * kv;
          sb[t] += q1[d] * kv;
        }
      for (int t = 0; t < 4; ++t) {
        s[r * lds + j + t] = sa[t];
        if (two) s[(r + 1) * lds + j + t] = sb[t];
      }
    }
    for (int64_t j = n4; j < n; ++j) {
      __m256 a = _mm256_setzero_ps(), b = a;
      for (int64_t d = 0; d < D8; d += 8) {
        const __m256 kv = load8(k, dt, j * ldk + d);
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + d), kv, a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + d), kv, b);
      }
      float sa = hsum(a), sb = hsum(b);
      for (int64_t d = D8; d < D; ++d) {
        const float kv = load1(k, dt, j * ldk + d);
        sa += q0[d] * kv;
        sb += q1[d] * kv;
      }
      s[r * lds + j] = sa;
      if (two) s[(r + 1) * lds + j] = sb;
    }
  }
}

// Up to 3 rows x 32 columns of o in 12 accumulators; each widened V vector feeds every row.
void pv_accum(const float* p, int64_t ldp, int64_t R, const void* v, DType dt, int64_t ldv,
              int64_t n, int64_t D, float* o, int64_t ldo) {
  constexpr int kRows = 3;
  const int64_t D32 = D & ~int64_t(31);
  const int64_t D8 = D & ~int64_t(7);
  for (int64_t r0 = 0; r0 < R; r0 += kRows) {
    const int rows = int(R - r0 < kRows ? R - r0 : kRows);
    for (int64_t d = 0; d < D32; d += 32) {
      __m256 acc[kRows][4];
      for (int i = 0; i < rows; ++i)
        for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_loadu_ps(o + (r0 + i) * ldo + d + 8 * c);
      for (int64_t j = 0; j < n; ++j) {
        const __m256 v0 = load8(v, dt, j * ldv + d), v1 = load8(v, dt, j * ldv + d + 8);
        const __m256 v2 = load8(v, dt, j * ldv + d + 16), v3 = load8(v, dt, j * ldv + d + 24);
        for (int i = 0; i < rows; ++i) {
          const __m256 pj = _mm256_broadcast_ss(p + (r0 + i) * ldp + j);
          acc[i][0] = _mm256_fmadd_ps(pj, v0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(pj, v1, acc[i][1]);
          acc[i][2] = _mm256_fmadd_ps(pj, v2, acc[i][2]);
          acc[i][3] = _mm256_fmadd_ps(pj, v3, acc[i][3]);
        }
      }
      for (int i = 0; i < rows; ++i)
        for (int c = 0; c < 4; ++c) _mm256_storeu_ps(o + (r0 + i) * ldo + d + 8 * c, acc[i][c]);
    }
    for (int64_t d = D32; d < D8; d += 8) {
      __m256 acc[kRows];
      for (int i = 0; i < rows; ++i) acc[i] = _mm256_loadu_ps(o + (r0 + i) * ldo + d);
      for (int64_t j = 0; j < n; ++j) {
        const __m256 v0 = load8(v, dt, j * ldv + d);
        for (int i = 0; i < rows; ++i)
          acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + (r0 + i) * ldp + j), v0, acc[i]);
      }
      for (int i = 0; i < rows; ++i) _mm256_storeu_ps(o + (r0 + i) * ldo + d, acc[i]);
    }
    for (int64_t d = D8; d < D; ++d)
      for (int i = 0; i < rows; ++i) {
        float acc = o[(r0 + i) * ldo + d];
        for (int64_t j = 0; j < n; ++j) acc += p[(r0 + i) * ldp + j] * load1(v, dt, j * ldv + d);
        o[(r0 + i) * ldo + d] = acc;
      }
  }
}

const Kernels kAvx2 = {Isa::avx2, softmax_tile, qk_dot, pv_accum};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace attention_cpu
}  // namespace tf

#else

namespace tf {
namespace attention_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace attention_cpu
}  // namespace tf

#endif
