// AVX-512 FMA peak probe: 12 independent 16-wide FMA chains per thread (two 512-bit FMA pipes of
// latency 4-6 want 8-12 in flight). On a core with AVX-512 the peak is this one: the AVX2 probe
// would report half of what the AVX-512 kernels (and the peers' MLAS kernels) can reach.
// Build notes: common/x86_avx512.h.
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "../common/x86_avx512.h"

namespace tf {

TF_AVX512 double probe_fma_loop_avx512(int64_t iters, float* sink) {
  __m512 acc[12];
  for (int c = 0; c < 12; ++c) acc[c] = _mm512_set1_ps(float(c) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < 12; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }
  __m512 s = acc[0];
  for (int c = 1; c < 12; ++c) s = _mm512_add_ps(s, acc[c]);
  *sink = _mm512_reduce_add_ps(s);
  return double(iters) * 12 * 16 * 2;
}

}  // namespace tf
#else
namespace tf {
double probe_fma_loop_avx512(int64_t, float*) { return 0.0; }
}  // namespace tf
#endif
