// Attention decode/prefill timing without Node: calls tf::attention on the core library and
// prints the best of many runs (wall clock), for perf and A/B work on the kernels. Build (after
// `npm run test:native`, which builds build-native/libtensorfuse_core.a):
//   g++ -O2 -std=c++17 -Inative/include bench/micro/attention_ticks.cc \
//       build-native/libtensorfuse_core.a -lpthread -o /tmp/attention_ticks
// Run: /tmp/attention_ticks Hq Hk Sq Sk D threads [bhsd|bshd] [causal]   (B = 1; float32, or
//      float16 / bfloat16 with DT=f16 / DT=bf16 in the environment; FLUSH=1: K / V from memory;
//      REPS=n: the number of runs)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "tensorfuse/attention.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/threadpool.h"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s Hq Hk Sq Sk D threads [bhsd|bshd] [causal]\n", argv[0]);
    return 2;
  }
  const int64_t Hq = atoll(argv[1]), Hk = atoll(argv[2]), Sq = atoll(argv[3]),
                Sk = atoll(argv[4]), D = atoll(argv[5]);
  const bool bhsd = argc > 7 && std::strcmp(argv[7], "bhsd") == 0;
  const bool causal = argc > 8 && std::strcmp(argv[8], "causal") == 0;
  tf::set_threads(atoi(argv[6]));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> q(size_t(Sq * Hq * D)), k(size_t(Sk * Hk * D)), v(k.size()), o(q.size());
  for (auto* a : {&q, &k, &v})
    for (float& x : *a) x = nd(rng);
  tf::AttentionParams p;
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = o.data();
  // DT=f16 / bf16: the same values stored in half precision (converted once, before timing)
  const char* dt = std::getenv("DT");
  std::vector<uint16_t> qh, kh, vh, oh;
  if (dt && (std::strcmp(dt, "f16") == 0 || std::strcmp(dt, "bf16") == 0)) {
    p.dtype = std::strcmp(dt, "f16") == 0 ? tf::DType::float16 : tf::DType::bfloat16;
    auto half = [&](const std::vector<float>& a, std::vector<uint16_t>& h) {
      h.resize(a.size());
      tf::convert_from_f32(a.data(), h.data(), p.dtype, int64_t(a.size()));
      return h.data();
    };
    p.q = half(q, qh), p.k = half(k, kh), p.v = half(v, vh);
    oh.resize(o.size());
    p.out = oh.data();
  }
  const double esz = p.dtype == tf::DType::float32 ? 4.0 : 2.0;
  p.batch = 1, p.heads_q = Hq, p.heads_k = Hk, p.seqlen_q = Sq, p.seqlen_k = Sk, p.head_dim = D;
  p.scale = 1.0f / std::sqrt(float(D));
  auto strides = [&](int64_t* s, int64_t S, int64_t H) {
    s[0] = S * H * D;
    s[1] = bhsd ? D : H * D;      // sequence
    s[2] = bhsd ? S * D : D;      // head
  };
  strides(p.q_strides, Sq, Hq);
  strides(p.k_strides, Sk, Hk);
  strides(p.v_strides, Sk, Hk);
  strides(p.o_strides, Sq, Hq);
  p.causal = causal;
  double best = 1e30;
  // REPS=n: that many runs (a profile of a short decode call wants thousands, or the setup above
  // is most of it)
  const int reps = std::getenv("REPS")
                       ? std::atoi(std::getenv("REPS"))
                       : int(std::max<int64_t>(5, 2000000000 / (4 * Hq * Sq * Sk * D + 1)));
  // FLUSH=1: read a 128 MiB buffer before each run, so K / V come from memory as in a model
  // (the suite's alternation does the same), not from a last-level cache that holds them
  const bool flush = std::getenv("FLUSH") && std::atoi(std::getenv("FLUSH")) != 0;
  std::vector<char> junk(flush ? size_t(128) << 20 : 0, 1);
  volatile char sink = 0;
  for (int r = 0; r < std::min(reps, flush ? 60 : reps); ++r) {
    if (flush)
      for (size_t i = 0; i < junk.size(); i += 64) sink = char(sink + junk[i]);
    auto t0 = std::chrono::steady_clock::now();
    tf::Status s = tf::attention(p);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!s.ok()) return 1;
    best = std::min(best, t);
  }
  // causal: the FLOPs the mask leaves (bottom-right aligned)
  const double keys = causal ? double(Sk) - double(Sq) + (double(Sq) + 1) / 2 : double(Sk);
  const double flops = 4.0 * Hq * Sq * keys * D, bytes = 2.0 * Sk * Hk * D * esz;
  std::printf("%s Hq %lld Hk %lld Sq %lld Sk %lld D %lld %s%s: %.1f us, %.1f GFLOP/s, %.1f GB/s (K+V)\n",
              p.dtype == tf::DType::float16 ? "f16" : p.dtype == tf::DType::bfloat16 ? "bf16" : "f32",
              (long long)Hq, (long long)Hk, (long long)Sq, (long long)Sk, (long long)D,
              bhsd ? "bhsd" : "bshd", causal ? " causal" : "", best * 1e6, flops / best * 1e-9,
              bytes / best * 1e-9);
  return 0;
}
