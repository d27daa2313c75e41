// In-cache / in-memory cycle counts of tf::quant_linear and tf::gemm on one shape, min of many
// runs in TSC ticks: steadier than the tinybench suite on a shared box. Build and run:
//   npm run test:native quant   # builds build-native/libtensorfuse_core.a
//   g++ -O2 -std=c++17 -I native/include bench/micro/quant_ticks.cc \
//       build-native/libtensorfuse_core.a -lpthread -o /tmp/quant_ticks
//   T=1 /tmp/quant_ticks N M     # N weight rows (K = 4096), M rows of x; T threads
// Data are constant patterns: this measures speed only (the tests check the values).
#include <chrono>
#include <cstdio>
#include <vector>
#include <x86intrin.h>
#include "tensorfuse/quant.h"
#include "tensorfuse/threadpool.h"
#include "tensorfuse/gemm.h"
using namespace tf;
int main(int argc, char** argv) {
  set_threads(getenv("T") ? atoi(getenv("T")) : 1);
  const int64_t K = 4096, N = argc > 1 ? atoi(argv[1]) : 128;
  std::vector<uint8_t> q4(N * K / 2, 0x5a), z(N * K / 32, 3);
  std::vector<int8_t> q8(N * K, 7);
  std::vector<float> s(N * K / 32, 0.01f), x(K, 0.5f), y(N), wf(N * K, 0.1f);
  int M = argc > 2 ? atoi(argv[2]) : 1;
  x.assign(size_t(M * K), 0.5f); y.assign(size_t(M * N), 0.f);
  for (auto& v : q8) v = int8_t(rand());
  {
    GemmParams g; g.M = M; g.N = N; g.K = K; g.a = x.data(); g.lda = K; g.b = wf.data(); g.ldb = K; g.trans_b = true; g.c = y.data(); g.ldc = N;
    double best = 1e30;
    for (int r = 0; r < (M > 8 ? 8 : 1000); ++r) { uint64_t t0 = __rdtsc(); gemm(g); best = std::min(best, double(__rdtsc() - t0)); }
    printf("f32 gemm: %.2f MAC/tick\n", M * N * K / best);
  }
  for (int act : {0, 1}) for (int bits : {4, 8}) for (int64_t gs : {0, 32, 128}) {
    if (act && bits == 4) continue;
    QuantLinearParams p;
    p.w.bits = bits; p.w.N = N; p.w.K = K; p.w.group_size = gs;
    p.w.q = bits == 4 ? (const void*)q4.data() : (const void*)q8.data();
    p.w.scales = s.data(); p.w.zeros = bits == 4 ? z.data() : nullptr;
    p.M = M; p.act = QuantActivation(act); p.x = x.data(); p.y = y.data();
    double best = 1e30;
    for (int r = 0; r < (M > 8 ? 8 : 1000); ++r) {
      uint64_t t0 = __rdtsc();
      quant_linear(p);
      uint64_t t1 = __rdtsc();
      best = std::min(best, double(t1 - t0));
    }
    printf("%s int%d g%lld: %.2f MAC/tick\n", act ? "w8a8" : "wonly", bits, (long long)gs, M * N * K / best);
  }
}
