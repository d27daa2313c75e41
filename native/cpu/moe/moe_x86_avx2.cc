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

const Kernels kAvx2 = {Isa::avx2, exp_shift, sigmoid, axpy, mul, max_of, first_above, glu};

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
