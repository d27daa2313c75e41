// CUDA devices as the core sees them: how many, what they are, and one elementwise kernel that
// keeps the nvcc -> static cudart -> addon path exercised until the real kernel families land.
// Declared only when the core is built with CUDA (TENSORFUSE_WITH_CUDA); plain C++ can include
// it, no CUDA header is needed. Every call returns a Status instead of failing hard: a machine
// without a driver or a GPU is normal (CI, laptops), and the addon must still load there.
#pragma once
#include <cstdint>
#include <string>

#include "tensorfuse/status.h"

#ifdef TENSORFUSE_WITH_CUDA

struct CUstream_st;  // the CUDA runtime's cudaStream_t is CUstream_st*

namespace tf {
namespace cuda {

using Stream = CUstream_st*;  // nullptr: the legacy default stream

struct DeviceInfo {
  int index = 0;
  std::string name;          // "NVIDIA H100 80GB HBM3"
  int cc_major = 0;          // compute capability, 9.0 for Hopper
  int cc_minor = 0;
  int64_t total_bytes = 0;   // global memory
  int multiprocessors = 0;
};

// Devices visible to this process. No driver, a driver older than the runtime, or no device all
// give *n = 0 and an ok status: "no GPU" is an answer, not an error.
Status device_count(int* n);
// Properties of device `index` in [0, device_count). ERR_DEVICE for any other index.
Status device_info(int index, DeviceInfo* out);

// y[i] = alpha * x[i] + y[i] for i in [0, n), fused (one rounding, as std::fma), on `stream`.
// x, y: device pointers to n float32. Asynchronous: errors of the kernel itself show at the next
// synchronizing call; launch errors (no device, bad configuration) are returned here.
Status axpy(int64_t n, float alpha, const float* x, float* y, Stream stream = nullptr);

}  // namespace cuda
}  // namespace tf

#endif  // TENSORFUSE_WITH_CUDA
