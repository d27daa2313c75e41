// In-cache / in-memory cycle counts of tf::quant_linear and tf::gemm on one shape, min of many
// runs in TSC ticks (2.0 GHz on the dev box): steadier than the tinybench suite on a shared box.
// Build and run:
//   npm run test:native quant   # builds build-native/libtensorfuse_core.a
//   g++ -O2 -std=c++17 -I native/include bench/micro/quant_ticks.cc \
//       build-native/libtensorfuse_core.a -lpthread -o /tmp/quant_ticks
//   T=1 /tmp/quant_ticks N M     # N weight rows (K = 4096), M rows of x; T threads
//   ONLY="int8-act int8" ...      # only the rows whose label contains this
//   TENSORFUSE_ISA=avx2 ...       # a lower kernel level than the best
//   STRIPS=1 ...                  # int8-activation rows on the weight's strip layout
// Data are constant patterns: this measures speed only (the tests check the values).
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "best_ticks.h"
#include "tensorfuse/gemm.h"
#include "tensorfuse/quant.h"
#include "tensorfuse/threadpool.h"

using namespace tf;

int main(int argc, char** argv) {
  set_threads(getenv("T") ? atoi(getenv("T")) : 1);
  const int64_t K = 4096, N = argc > 1 ? atoi(argv[1]) : 128, M = argc > 2 ? atoi(argv[2]) : 1;
  const int reps = M > 8 ? 8 : 1000;
  std::vector<uint8_t> q4(size_t(N * K / 2), 0x5a), z(size_t(N * K / 32), 3);
  std::vector<int8_t> q8(size_t(N * K));
  for (auto& v : q8) v = int8_t(rand());
  std::vector<float> s(size_t(N * K / 32), 0.01f), x(size_t(M * K), 0.5f), y(size_t(M * N));
  std::vector<float> wf(size_t(N * K), 0.1f);
  GemmParams g;
  g.M = M; g.N = N; g.K = K;
  g.a = x.data(); g.lda = K;
  g.b = wf.data(); g.ldb = K; g.trans_b = true;
  g.c = y.data(); g.ldc = N;
  const char* only = getenv("ONLY");  // run only the rows whose label contains it
  if (!only || strstr("f32 gemm", only))
    printf("f32 gemm: %.2f MAC/tick\n", double(M * N * K) / best_ticks(reps, [&] { gemm(g); }));
  for (int act : {0, 1})
    for (int bits : {4, 8})
      for (int64_t gs : {0, 32, 128}) {
        QuantLinearParams p;
        p.w.bits = bits; p.w.N = N; p.w.K = K; p.w.group_size = gs;
        p.w.q = bits == 4 ? static_cast<const void*>(q4.data()) : q8.data();
        p.w.scales = s.data();
        p.w.zeros = bits == 4 ? z.data() : nullptr;
        p.M = M; p.x = x.data(); p.y = y.data();
        p.act = QuantActivation(act);
        std::vector<uint8_t> strips;
        if (act && getenv("STRIPS") && atoi(getenv("STRIPS")) && quant_strips_bytes(p.w) > 0) {
          strips.resize(size_t(quant_strips_bytes(p.w)));
          quant_pack_strips(p.w, strips.data());
          p.w.strips = strips.data();
        }
        char label[64];
        snprintf(label, sizeof label, "%s int%d g%lld", act ? "int8-act" : "wonly", bits,
                 (long long)gs);
        if (only && !strstr(label, only)) continue;
        const double t = best_ticks(reps, [&] { quant_linear(p); });
        printf("%s: %.2f MAC/tick\n", label, double(M * N * K) / t);
      }
}
