// F16C conversions (vcvtph2ps / vcvtps2ph with round-to-nearest-even), bit-identical to the
// scalar ones in fp16.h. Compiled with -mavx2 -mf16c (this file only).
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/fp16.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace tf {

bool convert_to_f32_f16c(const void* src, DType src_dtype, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (src_dtype == DType::float16) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    for (; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
    return true;
  }
  if (src_dtype == DType::bfloat16) {
    for (; i + 8 <= n; i += 8) {
      __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
    return true;
  }
  return false;
}

bool convert_from_f32_f16c(const float* src, void* dst, DType dst_dtype, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  if (dst_dtype == DType::float16) {
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) d[i] = f32_to_fp16(src[i]);
    return true;
  }
  // bfloat16 stays scalar-equivalent: round-to-nearest-even on the top half, quiet NaN.
  if (dst_dtype == DType::bfloat16) {
    const __m256i lsb_mask = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    for (; i + 8 <= n; i += 8) {
      __m256 v = _mm256_loadu_ps(src + i);
      __m256i x = _mm256_castps_si256(v);
      __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), lsb_mask);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, lsb)), 16);
      __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
      r = _mm256_blendv_epi8(r, qnan, nan);
      // pack 8 x u32 (values < 65536) to 8 x u16
      __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm_packus_epi32(lo, hi));
    }
    for (; i < n; ++i) d[i] = f32_to_bf16(src[i]);
    return true;
  }
  return false;
}

}  // namespace tf
#else
namespace tf {
bool convert_to_f32_f16c(const void*, DType, float*, int64_t) { return false; }
bool convert_from_f32_f16c(const float*, void*, DType, int64_t) { return false; }
}  // namespace tf
#endif
