// Element-type conversion of contiguous buffers (Tensor.to(dtype), tensor() from numbers).
// Floats to floats round to nearest even; floats to integers truncate toward zero and saturate,
// NaN becomes 0 (documented in README).
#pragma once
#include <cstdint>
#include "tensorfuse/dtype.h"

namespace tf {

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);
// Row helpers used by kernels: widen a run of 16-bit floats to float32 and back.
void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t n);
void convert_from_f32(const float* src, void* dst, DType dst_dtype, int64_t n);

}  // namespace tf
