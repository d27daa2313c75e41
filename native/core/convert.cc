// Element-type conversion. Float -> float rounds to nearest even (fp16.h); float -> integer
// truncates toward zero and saturates, NaN -> 0; integer -> float rounds to nearest even.
#include "tensorfuse/convert.h"

#include <cmath>
#include <cstring>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"

namespace tf {

// x86_f16c.cc: vector float32 <-> float16/bfloat16 (nullptr-free: false when not compiled in).
bool convert_to_f32_f16c(const void* src, DType src_dtype, float* dst, int64_t n);
bool convert_from_f32_f16c(const float* src, void* dst, DType dst_dtype, int64_t n);

namespace {

double load_as_double(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float32: return static_cast<const float*>(p)[i];
    case DType::float16: return fp16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::bfloat16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::int8: return static_cast<const int8_t*>(p)[i];
    case DType::uint8: return static_cast<const uint8_t*>(p)[i];
    case DType::int32: return static_cast<const int32_t*>(p)[i];
  }
  return 0.0;
}

template <typename T>
T saturate(double v, double lo, double hi) {
  if (std::isnan(v)) return T(0);
  v = std::trunc(v);
  if (v < lo) return T(lo);
  if (v > hi) return T(hi);
  return T(v);
}

void store_from_double(void* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::float32: static_cast<float*>(p)[i] = float(v); break;
    // via float: exact for every source but int32 above 2^24, where double rounding could
    // differ from a direct rounding by one unit in rare ties; documented.
    case DType::float16: static_cast<uint16_t*>(p)[i] = f32_to_fp16(float(v)); break;
    case DType::bfloat16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    case DType::int8: static_cast<int8_t*>(p)[i] = saturate<int8_t>(v, -128, 127); break;
    case DType::uint8: static_cast<uint8_t*>(p)[i] = saturate<uint8_t>(v, 0, 255); break;
    case DType::int32:
      static_cast<int32_t*>(p)[i] = saturate<int32_t>(v, -2147483648.0, 2147483647.0);
      break;
  }
}

bool use_f16c() { return isa_has_avx2(active_isa()); }

}  // namespace

void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t n) {
  if (src_dtype == DType::float32) {
    std::memmove(dst, src, size_t(n) * 4);
    return;
  }
  if (use_f16c() && convert_to_f32_f16c(src, src_dtype, dst, n)) return;
  // 16-bit floats widen directly: a trip through double would quiet signaling NaNs depending on
  // the optimisation level, and the vector paths keep them bit for bit.
  const uint16_t* h = static_cast<const uint16_t*>(src);
  if (src_dtype == DType::float16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
    return;
  }
  if (src_dtype == DType::bfloat16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = float(load_as_double(src, src_dtype, i));
}

void convert_from_f32(const float* src, void* dst, DType dst_dtype, int64_t n) {
  if (dst_dtype == DType::float32) {
    std::memmove(dst, src, size_t(n) * 4);
    return;
  }
  if (use_f16c() && convert_from_f32_f16c(src, dst, dst_dtype, n)) return;
  switch (dst_dtype) {
    case DType::float16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_fp16(src[i]);
      return;
    case DType::bfloat16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    default:
      for (int64_t i = 0; i < n; ++i) store_from_double(dst, dst_dtype, i, src[i]);
  }
}

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (n <= 0) return;
  if (src_dtype == dst_dtype) {
    std::memmove(dst, src, size_t(n) * dtype_size(src_dtype));
    return;
  }
  if (dst_dtype == DType::float32) return convert_to_f32(src, src_dtype, static_cast<float*>(dst), n);
  if (src_dtype == DType::float32) return convert_from_f32(static_cast<const float*>(src), dst, dst_dtype, n);
  for (int64_t i = 0; i < n; ++i) store_from_double(dst, dst_dtype, i, load_as_double(src, src_dtype, i));
}

}  // namespace tf
