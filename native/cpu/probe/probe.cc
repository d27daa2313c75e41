// Machine-limit probes (include/tensorfuse/probe.h). The FMA loop is per ISA (probe_x86_avx2.cc,
// probe_x86_avx512.cc, a portable fallback here); the bandwidth probe is plain code on
// std::threads.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/probe.h"
#include "tensorfuse/scratch.h"

namespace tf {

// Return the float32 FLOPs done (probe_x86_avx2.cc, probe_x86_avx512.cc); 0 when not compiled in.
double probe_fma_loop_avx2(int64_t iters, float* sink);
double probe_fma_loop_avx512(int64_t iters, float* sink);

namespace {

// 8 independent chains of 4-wide multiply-adds: what a plain compiler build can reach.
double fma_loop_generic(int64_t iters, float* sink) {
  float acc[8][4];
  for (int c = 0; c < 8; ++c)
    for (int l = 0; l < 4; ++l) acc[c][l] = float(c + l) * 1e-3f;
  const float m = 0.999999f, a = 1e-7f;
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < 8; ++c)
      for (int l = 0; l < 4; ++l) acc[c][l] = acc[c][l] * m + a;
  float s = 0;
  for (int c = 0; c < 8; ++c)
    for (int l = 0; l < 4; ++l) s += acc[c][l];
  *sink = s;
  return double(iters) * 8 * 4 * 2;
}

template <typename Fn>
double run_on_threads(int threads, Fn fn) {
  threads = std::max(1, threads);
  std::vector<std::thread> ts;
  std::vector<double> work(size_t(threads), 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { work[size_t(t)] = fn(t); });
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double w : work) total += w;
  return total / secs;
}

}  // namespace

double probe_fma_gflops(int threads, int64_t iters) {
  const Isa isa = active_isa();
  std::vector<float> sink(size_t(std::max(1, threads)) * 16);
  return run_on_threads(threads, [&](int t) {
           float* s = &sink[size_t(t) * 16];
           // the AVX-512 loop does twice the work per iteration: half the iterations
           if (isa == Isa::avx512) return probe_fma_loop_avx512(std::max<int64_t>(1, iters / 2), s);
           return isa_has_avx2(isa) ? probe_fma_loop_avx2(iters, s) : fma_loop_generic(iters, s);
         }) / 1e9;
}

double probe_read_bandwidth_gbs(int threads, int64_t bytes, int reps) {
  threads = std::max(1, threads);
  const int64_t per = std::max<int64_t>(1 << 20, bytes / threads) & ~int64_t(63);
  std::vector<float*> bufs(size_t(threads), nullptr);
  for (auto& b : bufs) {
    b = static_cast<float*>(aligned_alloc64(size_t(per)));
    if (!b) {
      for (auto* x : bufs) aligned_free64(x);
      return 0.0;
    }
    std::memset(b, 1, size_t(per));  // touch every page before timing
  }
  std::vector<float> sink(size_t(threads) * 16);
  const double bps = run_on_threads(threads, [&](int t) {
    const float* p = bufs[size_t(t)];
    const int64_t n = per / 4;
    float s[16] = {};
    for (int r = 0; r < reps; ++r)
      for (int64_t i = 0; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) s[l] += p[i + l];
    float tot = 0;
    for (float v : s) tot += v;
    sink[size_t(t) * 16] = tot;
    return double(per) * reps;
  });
  for (auto* x : bufs) aligned_free64(x);
  return bps / 1e9;
}

}  // namespace tf
