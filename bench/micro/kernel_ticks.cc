// Kernel-level timing without the drivers' threads: the AVX-512 table's quantized GEMV
// (quant_cpu gemv_f32 after prep_x: int8 per-row scales, int4 groups of 128) and the GEMM table's dot_t over B in
// blocks of 32 rows (as moe.ffn's few-row tiles call it), one thread, the minimum of many calls
// in TSC ticks. Small calls and minima hold still on a box whose speed drifts, where a loop over
// whole layers does not (bench/NOTES.md, Zen 5 session 17). Build (after `npm run test:native`):
//   g++ -O2 -std=c++17 -Inative/include -Inative/cpu bench/micro/kernel_ticks.cc \
//       build-native/libtensorfuse_core.a -lpthread -o /tmp/kernel_ticks
// Run: /tmp/kernel_ticks gemv N K      int8 GEMV, N weight rows of K (N = 8: L1, 192: L2)
//      /tmp/kernel_ticks gemv4 N K     int4 GEMV, groups of 128 with zero points
//      /tmp/kernel_ticks dot M N K [KC] dot_t, M rows of x against N rows of B (K deep, in
//                                      calls of KC)
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "best_ticks.h"
#include "gemm/gemm_kernels.h"
#include "quant/quant_kernels.h"
#include "tensorfuse/cpu_features.h"

using namespace tf;

namespace {

// bits 8: per-row scales; bits 4: groups of 128 with zero points
int gemv(int bits, int64_t N, int64_t K) {
  const auto& kern = quant_cpu::kernels_for(Isa::avx512);
  std::mt19937 g(1);
  std::normal_distribution<float> nd;
  const int64_t gs = bits == 8 ? K : 128, G = K / gs;
  std::vector<uint8_t> q(size_t(bits == 8 ? N * K : N * K / 2)), z(size_t(N * G));
  for (auto& v : q) v = uint8_t(g() % 255);
  for (auto& v : z) v = uint8_t(g() % 16);
  std::vector<float> s(size_t(N * G), 0.01f), x(static_cast<size_t>(K)),
      y(static_cast<size_t>(N));
  for (auto& v : x) v = nd(g);
  QuantWeight w;
  w.bits = bits;
  w.N = N;
  w.K = K;
  w.group_size = bits == 8 ? 0 : gs;
  w.q = q.data();
  w.scales = s.data();
  w.zeros = bits == 8 ? nullptr : z.data();
  std::vector<float> xd(size_t(quant_cpu::prep_x_floats(K)));
  if (!kern.prep_x || !kern.prep_x(w, x.data(), xd.data())) {
    std::printf("no prepared x at this level\n");
    return 1;
  }
  const double t =
      best_ticks(3000, [&] { kern.gemv_f32(w, x.data(), xd.data(), 0, N, y.data()); });
  std::printf("int%d gemv N=%lld K=%lld: %.1f MAC/tick\n", bits, (long long)N, (long long)K,
              double(N * K) / t);
  return 0;
}

int dot(int64_t M, int64_t N, int64_t K, int64_t kc) {
  const auto& gk = gemm_cpu::kernels_for(Isa::avx512);
  const int64_t blk = std::getenv("BLK") ? std::atoll(std::getenv("BLK")) : 32;
  std::vector<float> x(size_t(M * K), 0.5f), b(size_t(N * K), 0.25f), c(size_t(M * blk));
  const double t = best_ticks(30, [&] {
    for (int64_t n = 0; n + blk <= N; n += blk)
      for (int64_t k0 = 0; k0 < K; k0 += kc)
        gk.dot_t(x.data(), K, M, b.data() + n * K, DType::float32, K, k0, std::min(K, k0 + kc),
                 0, blk, c.data(), blk, k0 > 0);
  });
  std::printf("dot_t M=%lld N=%lld K=%lld (blocks of %lld, depth %lld): %.1f MAC/tick\n",
              (long long)M, (long long)N, (long long)K, (long long)blk, (long long)kc,
              double(M * (N / blk * blk) * K) / t);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], "gemv") == 0)
    return gemv(8, atoll(argv[2]), atoll(argv[3]));
  if (argc >= 4 && std::strcmp(argv[1], "gemv4") == 0)
    return gemv(4, atoll(argv[2]), atoll(argv[3]));
  if (argc >= 5 && std::strcmp(argv[1], "dot") == 0)
    return dot(atoll(argv[2]), atoll(argv[3]), atoll(argv[4]),
               argc >= 6 ? atoll(argv[5]) : atoll(argv[4]));
  std::fprintf(stderr, "usage: %s gemv N K | gemv4 N K | dot M N K\n", argv[0]);
  return 2;
}
