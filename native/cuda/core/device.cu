// CUDA device discovery and the first kernel (include/tensorfuse/cuda_device.h). The runtime is
// linked statically (CMakeLists.txt), so nothing here touches the driver until a function is
// called; with no libcuda the runtime reports an error code and we answer "0 devices".
#include <cuda_runtime.h>

#include <string>

#include "tensorfuse/cuda_device.h"

namespace tf {
namespace cuda {
namespace {

Status cuda_error(const char* what, cudaError_t e) {
  return Status(StatusCode::device, std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                                        cudaGetErrorString(e) + ")");
}

// out is (n,): out = alpha * x + y. Grid-stride loop with 64-bit indices, so one launch shape
// serves every n (CUDA C++ Best Practices Guide, "grid-stride loops").
__global__ void axpy_kernel(int64_t n, float alpha, const float* __restrict__ x,
                            float* __restrict__ y) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = fmaf(alpha, x[i], y[i]);
}

}  // namespace

Status device_count(int* n) {
  if (!n) return Status(StatusCode::arg, "device_count: null output");
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    // cudaErrorNoDevice, cudaErrorInsufficientDriver (no libcuda or too old), ...: no GPU here.
    // Clear the runtime's last-error slot so a later unrelated check does not see it.
    cudaGetLastError();
    count = 0;
  }
  *n = count;
  return Status::Ok();
}

Status device_info(int index, DeviceInfo* out) {
  if (!out) return Status(StatusCode::arg, "device_info: null output");
  int count = 0;
  TF_RETURN_IF_ERROR(device_count(&count));
  if (index < 0 || index >= count)
    return Status(StatusCode::device, "device_info: no CUDA device " + std::to_string(index) +
                                          " (" + std::to_string(count) + " visible)");
  cudaDeviceProp prop;
  const cudaError_t e = cudaGetDeviceProperties(&prop, index);
  if (e != cudaSuccess) return cuda_error("cudaGetDeviceProperties", e);
  out->index = index;
  out->name = prop.name;
  out->cc_major = prop.major;
  out->cc_minor = prop.minor;
  out->total_bytes = int64_t(prop.totalGlobalMem);
  out->multiprocessors = prop.multiProcessorCount;
  return Status::Ok();
}

Status axpy(int64_t n, float alpha, const float* x, float* y, Stream stream) {
  if (n < 0) return Status(StatusCode::shape, "axpy: negative size");
  if (n == 0) return Status::Ok();
  if (!x || !y) return Status(StatusCode::arg, "axpy: null pointer");
  // Memory bound: one 256-thread block per 256 elements, capped at 65535 blocks (far more than
  // it takes to fill any device); the grid-stride loop covers the rest.
  constexpr int kThreads = 256;
  const int64_t want = (n + kThreads - 1) / kThreads;
  const unsigned blocks = unsigned(want < 65535 ? want : 65535);
  axpy_kernel<<<blocks, kThreads, 0, stream>>>(n, alpha, x, y);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error("axpy launch", e);
  return Status::Ok();
}

}  // namespace cuda
}  // namespace tf
