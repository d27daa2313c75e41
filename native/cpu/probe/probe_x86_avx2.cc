// AVX2 FMA peak probe: 10 independent 8-wide FMA chains per thread, enough to cover the FMA
// latency on every x86 core with two FMA pipes (latency 4-5 cycles). Compiled with -mavx2 -mfma.
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace tf {

double probe_fma_loop_avx2(int64_t iters, float* sink) {
  __m256 acc[10];
  for (int c = 0; c < 10; ++c) acc[c] = _mm256_set1_ps(float(c) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int c = 0; c < 10; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }
  __m256 s = acc[0];
  for (int c = 1; c < 10; ++c) s = _mm256_add_ps(s, acc[c]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  *sink = out[0];
  return double(iters) * 10 * 8 * 2;
}

}  // namespace tf
#else
namespace tf {
double probe_fma_loop_avx2(int64_t, float*) { return 0.0; }
}  // namespace tf
#endif
