// The CUDA core (include/tensorfuse/cuda_device.h), when compiled in. Everywhere: asking for
// devices never fails or crashes, with or without a driver, and kernels report "no device" as a
// Status. On a GPU machine: device properties and axpy against the CPU, bit for bit (both sides
// use one fused multiply-add per element).
#ifdef TENSORFUSE_WITH_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "tensorfuse/cuda_device.h"

using namespace tf;

TF_TEST(cuda_device_count_without_crashing) {
  int n = -1;
  const Status s = cuda::device_count(&n);
  CHECK(s.ok(), "%s", s.message.c_str());
  CHECK(n >= 0, "device_count gave %d", n);
  int again = -1;
  CHECK(cuda::device_count(&again).ok() && again == n, "a second call gave %d, then %d", n, again);
  CHECK(cuda::device_count(nullptr).code == StatusCode::arg);
  std::printf("  (%d CUDA device(s) visible)\n", n);

  cuda::DeviceInfo info;
  CHECK(cuda::device_info(n, &info).code == StatusCode::device, "index past the last device");
  CHECK(cuda::device_info(-1, &info).code == StatusCode::device);
  CHECK(cuda::axpy(0, 1.0f, nullptr, nullptr).ok(), "n = 0 is a no-op");
  CHECK(cuda::axpy(-1, 1.0f, nullptr, nullptr).code == StatusCode::shape);
  if (n == 0) {
    // No device: a launch must come back as ERR_DEVICE, not crash. The pointers are never read.
    float dummy = 0;
    const Status launch = cuda::axpy(16, 1.0f, &dummy, &dummy);
    CHECK(launch.code == StatusCode::device, "axpy without a device: %s", launch.message.c_str());
  }
}

TF_TEST(cuda_device_info_and_axpy_vs_cpu) {
  int n = 0;
  REQUIRE(cuda::device_count(&n).ok());
  if (n == 0) {
    std::printf("  (no CUDA device: skipped)\n");
    return;
  }
  for (int d = 0; d < n; ++d) {
    cuda::DeviceInfo info;
    const Status s = cuda::device_info(d, &info);
    REQUIRE(s.ok(), "device %d: %s", d, s.message.c_str());
    CHECK(info.index == d && !info.name.empty() && info.cc_major >= 5 && info.total_bytes > 0 &&
              info.multiprocessors > 0,
          "device %d: '%s' sm_%d%d %lld bytes %d SMs", d, info.name.c_str(), info.cc_major,
          info.cc_minor, (long long)info.total_bytes, info.multiprocessors);
    std::printf("  device %d: %s, sm_%d%d, %.1f GiB, %d SMs\n", d, info.name.c_str(),
                info.cc_major, info.cc_minor, double(info.total_bytes) / (1 << 30),
                info.multiprocessors);
  }

  tf_test::Rng rng(tf_test::case_seed());
  // Sizes around the block (256) and past the grid cap (65535 * 256), so the grid-stride loop runs.
  for (int64_t len : {1, 255, 257, 1000003, 17000000}) {
    const size_t count = size_t(len);
    std::vector<float> x(count), y(count), want(count), got(count);
    for (size_t i = 0; i < count; ++i) x[i] = rng.uniform(-4, 4), y[i] = rng.uniform(-4, 4);
    const float alpha = rng.uniform(-2, 2);
    for (size_t i = 0; i < count; ++i) want[i] = std::fma(alpha, x[i], y[i]);

    float *dx = nullptr, *dy = nullptr;
    const size_t bytes = count * sizeof(float);
    REQUIRE(cudaMalloc(&dx, bytes) == cudaSuccess && cudaMalloc(&dy, bytes) == cudaSuccess);
    CHECK(cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(dy, y.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    const Status s = cuda::axpy(len, alpha, dx, dy);
    CHECK(s.ok(), "axpy n=%lld: %s", (long long)len, s.message.c_str());
    const cudaError_t sync = cudaDeviceSynchronize();
    CHECK(sync == cudaSuccess, "axpy n=%lld: %s", (long long)len, cudaGetErrorString(sync));
    CHECK(cudaMemcpy(got.data(), dy, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(dx);
    cudaFree(dy);
    int64_t bad = 0;
    for (size_t i = 0; i < count; ++i) bad += got[i] != want[i];
    CHECK(bad == 0, "axpy n=%lld: %lld elements differ from the CPU's fma", (long long)len,
          (long long)bad);
  }
}

#endif  // TENSORFUSE_WITH_CUDA
