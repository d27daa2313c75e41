// Scalar loads that widen float32 / float16 / bfloat16 storage to float32: the portable twin of
// x86_avx2_load.h, for the generic kernels and the scalar pieces of the others. The conversions
// are fp16.h's reference ones, which the vector paths match bit for bit.
#pragma once
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/fp16.h"

namespace tf {

// One element p[i] widened to float32.
inline float load_as_f32(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float16: return fp16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::bfloat16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

}  // namespace tf
