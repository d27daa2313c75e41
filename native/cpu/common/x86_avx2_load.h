// AVX2 + F16C loads that widen float32 / float16 / bfloat16 storage to float32 in registers.
// Included only by files compiled with -mavx2 -mfma -mf16c (the <family>_x86_avx2.cc files).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensorfuse/dtype.h"

namespace tf {
namespace x86 {

// 8 consecutive elements p[i .. i+8) widened to float32 (unaligned).
inline __m256 load8(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float16:
      return _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
    case DType::bfloat16:
      return _mm256_castsi256_ps(_mm256_slli_epi32(
          _mm256_cvtepu16_epi32(_mm_loadu_si128(
              reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i))),
          16));
    default: return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  }
}

// One element p[i] widened to float32.
inline float load1(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float16: return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
    case DType::bfloat16: {
      uint32_t u = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    default: return static_cast<const float*>(p)[i];
  }
}

// Sum of the 8 lanes.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace x86
}  // namespace tf
