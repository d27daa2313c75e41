// AVX2 + FMA MoE pieces (compiled with -mavx2 -mfma -mf16c, this file only). The vector exp is
// x86::exp8 from common/x86_avx2_math.h.
#include "moe_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

#include <cmath>

#include "../common/x86_avx2_math.h"

namespace tf {
namespace moe_cpu {
namespace {

// Index of the lowest set bit of a nonzero mask.
inline int lowest_set_bit(unsigned mask) {
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward(&i, mask);
  return int(i);
#else
  return __builtin_ctz(mask);
#endif
}

using x86::exp8;

float exp_shift(const float* x, float m, int64_t n, float* out) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) {
    out[i] = std::exp(x[i] - m);
    sum += out[i];
  }
  return sum;
}

void sigmoid(const float* x, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(zero, _mm256_loadu_ps(x + i)));
    _mm256_storeu_ps(out + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

void mul(float* g, const float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  for (; i < n; ++i) g[i] *= u[i];
}

// silu and relu in vectors; gelu (erf) stays scalar.
void glu(Activation act, float* g, const float* u, int64_t n) {
  int64_t i = 0;
  if (act == Activation::silu || act == Activation::relu || act == Activation::none) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      __m256 v = _mm256_loadu_ps(g + i);
      if (act == Activation::silu)
        v = _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v))));
      else if (act == Activation::relu)
        v = _mm256_max_ps(v, zero);
      if (u) v = _mm256_mul_ps(v, _mm256_loadu_ps(u + i));
      _mm256_storeu_ps(g + i, v);
    }
  }
  for (; i < n; ++i) g[i] = act_scalar(g[i], act) * (u ? u[i] : 1.0f);
}

float max_of(const float* x, int64_t n, bool* has_nan) {
  // max_ps returns its second operand when either is NaN: (x, acc) keeps acc, skipping NaN.
  __m256 acc = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_max_ps(v, acc);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float m = lanes[0];
  for (int j = 1; j < 8; ++j) m = lanes[j] > m ? lanes[j] : m;
  bool any = _mm256_movemask_ps(nan) != 0;
  for (; i < n; ++i) {
    any |= std::isnan(x[i]);
    if (x[i] > m) m = x[i];
  }
  *has_nan = any;
  return m;
}

int64_t first_above(const float* keys, int64_t from, int64_t n, float thr) {
  const __m256 t = _mm256_set1_ps(thr);
  int64_t i = from;
  for (; i + 8 <= n; i += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(keys + i), t, _CMP_GT_OQ));
    if (mask) return i + lowest_set_bit(unsigned(mask));
  }
  for (; i < n; ++i)
    if (keys[i] > thr) return i;
  return n;
}

inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// R rows of x against C weight rows, 8 k per step: R*C accumulators + R x vectors + 1 weight
// vector. At 3 x 4 that is exactly the 16 ymm registers (the GEMM engine's dot tile holds its 4
// weight vectors at once and spills an accumulator, which puts a store-load in an FMA chain).
template <int R, int C>
inline void dot_rows_tile(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k0,
                          int64_t k1, float* c, int64_t ldc, bool accumulate) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q) acc[r][q] = _mm256_setzero_ps();
  int64_t k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + k);
    for (int q = 0; q < C; ++q) {
      const __m256 wv = _mm256_loadu_ps(w + q * ldw + k);
      for (int r = 0; r < R; ++r) acc[r][q] = _mm256_fmadd_ps(xv[r], wv, acc[r][q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q) {
      float t = hsum8(acc[r][q]);
      for (int64_t kk = k; kk < k1; ++kk) t += x[r * ldx + kk] * w[q * ldw + kk];
      c[r * ldc + q] = accumulate ? c[r * ldc + q] + t : t;
    }
}

void dot_rows(const float* x, int64_t ldx, int64_t M, const float* w, int64_t ldw, int64_t k0,
              int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc, bool accumulate) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    int64_t m = 0;
    for (; m + 3 <= M; m += 3)
      dot_rows_tile<3, 4>(x + m * ldx, ldx, w + n * ldw, ldw, k0, k1, c + m * ldc + n, ldc, accumulate);
    for (; m < M; ++m)
      dot_rows_tile<1, 4>(x + m * ldx, ldx, w + n * ldw, ldw, k0, k1, c + m * ldc + n, ldc, accumulate);
  }
  for (; n < n1; ++n) {
    int64_t m = 0;
    for (; m + 3 <= M; m += 3)
      dot_rows_tile<3, 1>(x + m * ldx, ldx, w + n * ldw, ldw, k0, k1, c + m * ldc + n, ldc, accumulate);
    for (; m < M; ++m)
      dot_rows_tile<1, 1>(x + m * ldx, ldx, w + n * ldw, ldw, k0, k1, c + m * ldc + n, ldc, accumulate);
  }
}

const Kernels kAvx2 = {Isa::avx2, exp_shift, sigmoid, axpy, mul, max_of, first_above, dot_rows, glu};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace moe_cpu
}  // namespace tf

#else
namespace tf {
namespace moe_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace moe_cpu
}  // namespace tf
#endif
