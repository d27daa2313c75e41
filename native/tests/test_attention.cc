// Fused attention against a double-precision loop, on every ISA level this CPU runs: the tiled
// path (>= 6 group rows), the streaming decode path, split-K merging, causal and GQA.
#include <cmath>
#include <limits>
#include <vector>

#include "../cpu/attention/attention_kernels.h"
#include "check.h"
#include "tensorfuse/attention.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/threadpool.h"

using namespace tf;

namespace {

struct Case {
  int64_t B, Sq, Sk, Hq, Hk, D;
  bool causal;
};

// out[b, i, h, :] in bshd, by the definition (bottom-right causal alignment).
std::vector<double> reference(const Case& c, const std::vector<float>& q,
                              const std::vector<float>& k, const std::vector<float>& v) {
  std::vector<double> out(q.size(), 0.0);
  const double scale = 1.0 / std::sqrt(double(c.D));
  const int64_t G = c.Hq / c.Hk;
  std::vector<double> s(size_t(c.Sk));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Sq; ++i) {
        const float* qr = &q[size_t(((b * c.Sq + i) * c.Hq + h) * c.D)];
        double m = -INFINITY;
        for (int64_t j = 0; j < c.Sk; ++j) {
          const float* kr = &k[size_t(((b * c.Sk + j) * c.Hk + h / G) * c.D)];
          double acc = 0;
          for (int64_t d = 0; d < c.D; ++d) acc += double(qr[d]) * kr[d];
          s[size_t(j)] = c.causal && j > i + c.Sk - c.Sq ? -INFINITY : acc * scale;
          m = std::max(m, s[size_t(j)]);
        }
        if (m == -INFINITY) continue;
        double l = 0;
        for (int64_t j = 0; j < c.Sk; ++j) l += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
        double* o = &out[size_t(((b * c.Sq + i) * c.Hq + h) * c.D)];
        for (int64_t j = 0; j < c.Sk; ++j) {
          const float* vr = &v[size_t(((b * c.Sk + j) * c.Hk + h / G) * c.D)];
          for (int64_t d = 0; d < c.D; ++d) o[d] += s[size_t(j)] / l * vr[d];
        }
      }
  return out;
}

// The case as bshd tensors of dtype dt, default scale.
AttentionParams params(const Case& c, DType dt, const void* q, const void* k, const void* v,
                       void* out) {
  AttentionParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.dtype = dt;
  p.batch = c.B;
  p.heads_q = c.Hq;
  p.heads_k = c.Hk;
  p.seqlen_q = c.Sq;
  p.seqlen_k = c.Sk;
  p.head_dim = c.D;
  const int64_t qs[3] = {c.Sq * c.Hq * c.D, c.Hq * c.D, c.D};
  const int64_t ks[3] = {c.Sk * c.Hk * c.D, c.Hk * c.D, c.D};
  for (int t = 0; t < 3; ++t) {
    p.q_strides[t] = p.o_strides[t] = qs[t];
    p.k_strides[t] = p.v_strides[t] = ks[t];
  }
  p.scale = float(1.0 / std::sqrt(double(c.D)));
  p.causal = c.causal;
  return p;
}

// Fresh q, K in [-2, 2] and V in [-1, 1] for the case (bshd).
void random_qkv(const Case& c, tf_test::Rng& rng, std::vector<float>& q, std::vector<float>& k,
                std::vector<float>& v) {
  q.resize(size_t(c.B * c.Sq * c.Hq * c.D));
  k.resize(size_t(c.B * c.Sk * c.Hk * c.D));
  v.resize(k.size());
  for (float& x : q) x = rng.uniform(-2, 2);
  for (float& x : k) x = rng.uniform(-2, 2);
  for (float& x : v) x = rng.uniform(-1, 1);
}

}  // namespace

// One online-softmax step of every ISA's softmax_tile against double: exp(s - m_new) per score
// (masked -inf scores exactly 0), alpha = exp(m_old - m_new), l and m, over row counts and widths
// off the vector sizes (tails), scores from -100 to +20 around the running max, rows that are
// all masked (before and after a visible tile) and rows whose max does not move (alpha exactly 1).
TF_TEST(attention_softmax_tile_matches_double) {
  tf_test::Rng rng(tf_test::case_seed());
  const float ninf = -std::numeric_limits<float>::infinity();
  for (Isa isa : tf_test::isa_levels()) {
    const attention_cpu::Kernels& k = attention_cpu::kernels_for(isa);
    for (int64_t R : {int64_t(1), int64_t(7), int64_t(13)})
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(16), int64_t(33), int64_t(64)}) {
        const int64_t lds = n + 3;
        const size_t nr = static_cast<size_t>(R);
        std::vector<float> s(size_t(R * lds), NAN), m(nr), l(nr), alpha(nr, NAN);
        for (int64_t r = 0; r < R; ++r) {
          const int kind = int(r % 4);  // 0: new max, 1: old max stays, 2: masked row, 3: fresh row
          m[size_t(r)] = kind == 3 || kind == 2 ? ninf : float(rng.uniform(-5, 5));
          l[size_t(r)] = kind == 3 || kind == 2 ? 0.0f : float(rng.uniform(0.5, 3));
          for (int64_t j = 0; j < n; ++j) {
            float v = float(rng.uniform(-100, 20));
            if (kind == 1) v = std::min(v, m[size_t(r)]);
            if (kind == 2 || rng.uniform(0, 1) < 0.15) v = ninf;
            s[size_t(r * lds + j)] = v;
          }
          if (kind == 1 && n > 1) s[size_t(r * lds + n / 2)] = m[size_t(r)];
        }
        const std::vector<float> s0 = s, m0 = m, l0 = l;
        k.softmax_tile(s.data(), lds, R, n, m.data(), l.data(), alpha.data());
        for (int64_t r = 0; r < R; ++r) {
          double mx = m0[size_t(r)];
          for (int64_t j = 0; j < n; ++j) mx = std::max(mx, double(s0[size_t(r * lds + j)]));
          const char* isa_s = isa_name(isa);
          if (mx == -INFINITY) {
            CHECK(m[size_t(r)] == ninf && l[size_t(r)] == 0.0f && alpha[size_t(r)] == 1.0f,
                  "%s R=%lld n=%lld row %lld: all masked gives m=%g l=%g alpha=%g", isa_s,
                  (long long)R, (long long)n, (long long)r, m[size_t(r)], l[size_t(r)],
                  alpha[size_t(r)]);
            for (int64_t j = 0; j < n; ++j)
              CHECK(s[size_t(r * lds + j)] == 0.0f, "%s row %lld col %lld: masked row not 0", isa_s,
                    (long long)r, (long long)j);
            continue;
          }
          const double a =
              m0[size_t(r)] == -INFINITY ? 0.0 : std::exp(double(m0[size_t(r)] - float(mx)));
          double sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            // the kernels subtract in float32: the exp of that rounded difference is the target
            const double x = double(s0[size_t(r * lds + j)] - float(mx));
            const double want = x == -INFINITY ? 0.0 : std::exp(x);
            const float got = s[size_t(r * lds + j)];
            sum += want;
            if (x == -INFINITY)
              CHECK(got == 0.0f, "%s row %lld col %lld: masked score gives %g", isa_s,
                    (long long)r, (long long)j, got);
            else
              CHECK(std::fabs(got - want) <= 1e-6 * want + 1e-37, "%s R=%lld n=%lld (%lld,%lld): "
                    "exp(%g) = %.9g, want %.9g", isa_s, (long long)R, (long long)n, (long long)r,
                    (long long)j, x, got, want);
          }
          CHECK(m[size_t(r)] == float(mx), "%s row %lld: m %g, want %g", isa_s, (long long)r,
                m[size_t(r)], mx);
          if (m0[size_t(r)] == float(mx))
            CHECK(alpha[size_t(r)] == 1.0f, "%s row %lld: max did not move, alpha %.9g", isa_s,
                  (long long)r, alpha[size_t(r)]);
          else
            CHECK(std::fabs(alpha[size_t(r)] - a) <= 1e-6 * a + 1e-37, "%s row %lld: alpha %.9g, want %.9g",
                  isa_s, (long long)r, alpha[size_t(r)], a);
          const double lw = l0[size_t(r)] * a + sum;
          CHECK(std::fabs(l[size_t(r)] - lw) <= 1e-6 * lw, "%s row %lld: l %.9g, want %.9g", isa_s,
                (long long)r, l[size_t(r)], lw);
        }
      }
  }
}

// Each case against the double loop on every ISA, at each thread count of `thread_counts` (0:
// the pool as it is), within 1e-5 relative norm.
static void check_against_double_loop(const std::vector<Case>& cases,
                                      const std::vector<int>& thread_counts) {
  tf_test::Rng rng(tf_test::case_seed());
  const tf_test::IsaGuard guard;
  const int threads_before = threads();
  for (const Case& c : cases) {
    std::vector<float> q, k, v;
    random_qkv(c, rng, q, k, v);
    const std::vector<double> want = reference(c, q, k, v);
    for (Isa isa : tf_test::isa_levels())
      for (int nt : thread_counts) {
        set_isa(isa);
        if (nt > 0) set_threads(nt);
        std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
        const AttentionParams p =
            params(c, DType::float32, q.data(), k.data(), v.data(), out.data());
        REQUIRE(attention(p).ok());
        std::vector<double> got(out.begin(), out.end());
        const double err = tf_test::rel_norm_error(got, want, want);
        CHECK(err < 1e-5, "%s %d threads B%lld Sq%lld Sk%lld Hq%lld Hk%lld D%lld: error %.3g",
              isa_name(isa), nt, (long long)c.B, (long long)c.Sq, (long long)c.Sk,
              (long long)c.Hq, (long long)c.Hk, (long long)c.D, err);
      }
  }
  set_threads(threads_before);
}

TF_TEST(attention_matches_double_loop) {
  check_against_double_loop({{1, 1, 1, 1, 1, 1, false},     {2, 7, 7, 2, 1, 7, true},
                             {1, 40, 70, 4, 2, 64, true},   {1, 100, 100, 2, 2, 128, false},
                             {1, 1, 1100, 1, 1, 128, false}, {2, 3, 700, 8, 2, 80, true},
                             {1, 9, 9, 1, 1, 256, true},    {1, 1, 900, 12, 4, 72, false},
                             {1, 2, 300, 8, 4, 24, true},    {1, 1, 130, 20, 4, 17, false},
                             // decode with 1-2 rows per kv head: key by key over all heads
                             {1, 1, 700, 16, 8, 80, false},  {2, 2, 333, 6, 6, 40, true},
                             {1, 1, 517, 4, 4, 17, false},
                             // 3-5 rows per kv head (the per-head kernels): key counts whose
                             // last step leaves 1-7 keys past the whole score tiles
                             {1, 1, 135, 12, 3, 64, false}, {1, 1, 71, 9, 3, 48, false},
                             {1, 1, 263, 5, 1, 40, false}, {1, 1, 77, 5, 1, 40, false},
                             // 6-32 rows per kv head, streamed too (GQA 8 / 7, MQA 32, Sq 4 x
                             // G 4 causal, Sq 8 x G 4 over two heads an item); 33: tiled
                             {1, 1, 600, 16, 2, 64, false}, {1, 1, 140, 14, 2, 33, false},
                             {1, 1, 530, 32, 1, 24, false}, {2, 4, 300, 8, 2, 40, true},
                             {1, 8, 1100, 8, 2, 16, true},  {1, 11, 200, 3, 1, 32, true}},
                            {0});
}

// Several row blocks per (batch, kv head) with enough heads for the threads: each head is one
// item whose blocks share packed K / V tiles (the driver's PackedKV). GQA rows past one block
// (384 / 768 rows), causal with Sq < Sk, key counts off the tile grid (partial last tiles, and
// blocks that see part of a tile another block packed whole), on 1 and 2 threads.
TF_TEST(attention_blocks_sharing_packed_tiles_match_double_loop) {
  check_against_double_loop({{2, 200, 200, 16, 4, 32, true}, {2, 150, 333, 24, 4, 40, true},
                             {2, 300, 190, 12, 4, 64, false}, {1, 130, 260, 56, 8, 16, true}},
                            {1, 2});
}

// float32 on AMX-BF16 tiles, q, K, V and P as three bfloat16 parts each (attention_x86_amx.cc):
// against the double loop and against the float32 micro-kernel (AMX off) on the same inputs,
// over head dims with a partial last step of 32 (1, 17, 80), causal with Sq != Sk, GQA, blocks
// sharing packed tiles (Sq * G past 768 rows), on 1 and 2 threads. The parts must keep the
// float32 kernel's accuracy: within 2e-6 relative norm and at most 4x its error (a two-part
// split measured ~3e-5 and fails). The fallbacks, each where a part would change the answer:
// a q row with -inf against keys whose column is positive (every score -inf: the row sees no
// key and gives zeros; parts would give NaN), a K element +inf met by negative q (that key's
// scores are -inf, masked), and V wholly below 2^-100 (parts flushed as denormals): the same
// values as AMX off, within float32 rounding. Skipped where AMX-BF16 is not usable.
TF_TEST(attention_float32_amx_parts_match_double_loop) {
  const tf_test::IsaGuard guard;
  set_isa(Isa::avx512);
  if (!attention_cpu::amx_f32_usable()) {
    set_use_amx(-1);
    return;
  }
  tf_test::Rng rng(tf_test::case_seed());
  const int threads_before = threads();
  const Case cases[] = {{1, 33, 33, 1, 1, 1, false},     {1, 40, 70, 4, 2, 17, true},
                        {2, 100, 130, 2, 2, 64, true},   {1, 127, 127, 3, 3, 80, false},
                        {1, 70, 300, 4, 1, 96, true},    {1, 200, 260, 2, 2, 128, false},
                        {1, 64, 64, 2, 1, 256, true},    {2, 300, 333, 16, 4, 64, true}};
  // out[amx]: the float32 call with AMX off (0) and on (1), outputs poisoned with NaN first
  auto run_both = [](const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, std::vector<float>* out) {
    for (int amx : {0, 1}) {
      set_use_amx(amx);
      out[amx].assign(q.size(), std::numeric_limits<float>::quiet_NaN());
      REQUIRE(attention(params(c, DType::float32, q.data(), k.data(), v.data(), out[amx].data()))
                  .ok());
    }
  };
  bool differs = false;  // AMX on gave other bits than AMX off somewhere: the parts ran
  for (const Case& c : cases)
    for (int nt : {1, 2}) {
      set_threads(nt);
      std::vector<float> q, k, v, out[2];
      random_qkv(c, rng, q, k, v);
      const std::vector<double> want = reference(c, q, k, v);
      run_both(c, q, k, v, out);
      double err[2];
      for (int amx : {0, 1})
        err[amx] = tf_test::rel_norm_error(std::vector<double>(out[amx].begin(), out[amx].end()),
                                           want, want);
      differs = differs || out[0] != out[1];
      CHECK(err[1] < 2e-6 && err[1] <= 4 * err[0] + 1e-7,
            "%d threads B%lld Sq%lld Sk%lld Hq%lld Hk%lld D%lld: error %.3g (AMX off %.3g)", nt,
            (long long)c.B, (long long)c.Sq, (long long)c.Sk, (long long)c.Hq, (long long)c.Hk,
            (long long)c.D, err[1], err[0]);
    }
  CHECK(differs, "AMX on and off gave the same bits in every case: the parts did not run");

  // float16 q, K, V (two parts each; S scaled after Q K^T): against the double loop on the
  // rounded inputs, as close as the float32 kernels on the same inputs (the float16 output's
  // rounding dominates both)
  for (size_t ci = 0; ci < 5; ++ci) {
    const Case& c = cases[ci];
    std::vector<uint16_t> q16(size_t(c.B * c.Sq * c.Hq * c.D));
    std::vector<uint16_t> k16(size_t(c.B * c.Sk * c.Hk * c.D)), v16(k16.size());
    std::vector<float> q(q16.size()), k(k16.size()), v(v16.size());
    auto fill = [&](std::vector<uint16_t>& h, std::vector<float>& f, double bound) {
      for (size_t i = 0; i < f.size(); ++i)
        f[i] = fp16_to_f32(h[i] = f32_to_fp16(float(rng.uniform(-bound, bound))));
    };
    fill(q16, q, 2);
    fill(k16, k, 2);
    fill(v16, v, 1);
    const std::vector<double> want = reference(c, q, k, v);
    double err[2];
    for (int amx : {0, 1}) {
      set_use_amx(amx);
      std::vector<uint16_t> out(q16.size(), 0x7e00);
      REQUIRE(attention(params(c, DType::float16, q16.data(), k16.data(), v16.data(), out.data()))
                  .ok());
      std::vector<double> got(out.size());
      for (size_t i = 0; i < out.size(); ++i) got[i] = fp16_to_f32(out[i]);
      err[amx] = tf_test::rel_norm_error(got, want, want);
    }
    CHECK(err[1] <= 1.1 * err[0] + 2e-5, "float16 Sq%lld Sk%lld D%lld: error %.3g (AMX off %.3g)",
          (long long)c.Sq, (long long)c.Sk, (long long)c.D, err[1], err[0]);
  }

  // the fallbacks, on the last case's shape (two blocks a head, sharing packed tiles): the
  // inputs made as described above; AMX on against AMX off
  const Case c = cases[sizeof(cases) / sizeof(cases[0]) - 1];
  for (int kind = 0; kind < 3; ++kind)
    for (int nt : {1, 2}) {
      set_threads(nt);
      std::vector<float> q, k, v, out[2];
      random_qkv(c, rng, q, k, v);
      // query 250 (the second block of each head) of batch 0, head 1
      const size_t qrow = size_t((250 * c.Hq + 1) * c.D);
      if (kind == 0) {
        q[qrow] = -INFINITY;
        for (int64_t j = 0; j < c.Sk; ++j) k[size_t((j * c.Hk + 0) * c.D)] = rng.uniform(0.5, 2);
      } else if (kind == 1) {
        for (int64_t i = 0; i < c.B * c.Sq * c.Hq; ++i) q[size_t(i * c.D)] = rng.uniform(-2, -0.5);
        k[size_t((5 * c.Hk + 1) * c.D)] = INFINITY;
      } else {
        for (float& x : v) x *= 1e-36f;
      }
      run_both(c, q, k, v, out);
      bool finite = true;
      for (float x : out[1]) finite = finite && std::isfinite(x);
      const double err =
          tf_test::rel_norm_error(std::vector<double>(out[1].begin(), out[1].end()),
                                  std::vector<double>(out[0].begin(), out[0].end()),
                                  std::vector<double>(out[0].begin(), out[0].end()));
      CHECK(finite && err < 1e-6, "fallback %d, %d threads: finite %d, error %.3g against AMX off",
            kind, nt, int(finite), err);
      if (kind == 0)
        for (int64_t d = 0; d < c.D; ++d)
          CHECK(out[1][qrow + size_t(d)] == 0.0f, "fallback 0: the row with -inf q is not zero");
    }
  set_use_amx(-1);
  set_threads(threads_before);
}

// float16 / bfloat16 storage, widened in registers on each ISA: against the double loop on the
// rounded inputs, within the rounding of the 16-bit output (plus float32 accumulation).
TF_TEST(attention_16bit_matches_double_loop) {
  const Case cases[] = {{1, 1, 700, 8, 2, 64, false}, {1, 3, 90, 4, 4, 40, true},
                        {1, 30, 50, 2, 1, 32, true},  {1, 1, 300, 8, 4, 72, false},
                        {1, 2, 257, 6, 6, 128, false}, {1, 1, 135, 12, 3, 64, false},
                        {1, 1, 77, 5, 1, 40, false}};
  tf_test::Rng rng(tf_test::case_seed());
  const tf_test::IsaGuard guard;
  const std::vector<Isa> isas = tf_test::isa_levels();
  for (DType dt : {DType::float16, DType::bfloat16}) {
    auto round = [dt](float x) {
      return dt == DType::float16 ? f32_to_fp16(x) : f32_to_bf16(x);
    };
    auto widen = [dt](uint16_t h) { return dt == DType::float16 ? fp16_to_f32(h) : bf16_to_f32(h); };
    for (const Case& c : cases) {
      std::vector<uint16_t> q16(size_t(c.B * c.Sq * c.Hq * c.D)), k16(size_t(c.B * c.Sk * c.Hk * c.D));
      std::vector<uint16_t> v16(k16.size());
      std::vector<float> q(q16.size()), k(k16.size()), v(v16.size());
      for (size_t i = 0; i < q.size(); ++i) q[i] = widen(q16[i] = round(float(rng.uniform(-2, 2))));
      for (size_t i = 0; i < k.size(); ++i) k[i] = widen(k16[i] = round(float(rng.uniform(-2, 2))));
      for (size_t i = 0; i < v.size(); ++i) v[i] = widen(v16[i] = round(float(rng.uniform(-1, 1))));
      const std::vector<double> want = reference(c, q, k, v);
      for (Isa isa : isas) {
        set_isa(isa);
        std::vector<uint16_t> out(q16.size(), 0x7e00);  // NaN in both formats' upper bits
        REQUIRE(attention(params(c, dt, q16.data(), k16.data(), v16.data(), out.data())).ok());
        std::vector<double> got(out.size());
        for (size_t i = 0; i < out.size(); ++i) got[i] = widen(out[i]);
        const double err = tf_test::rel_norm_error(got, want, want);
        const double tol = dt == DType::float16 ? 2e-3 : 1.5e-2;  // output rounding: 2^-11 / 2^-8
        CHECK(err < tol, "%s %s Sq%lld Sk%lld Hq%lld Hk%lld D%lld: relative error %.3g",
              isa_name(isa), dt == DType::float16 ? "float16" : "bfloat16", (long long)c.Sq,
              (long long)c.Sk, (long long)c.Hq, (long long)c.Hk, (long long)c.D, err);
      }
    }
  }
}

// The AVX512-BF16 Q K^T (qk_bf16: bfloat16 q and K as stored, vdpbf16ps, scale after the dot)
// score by score against double on the same bfloat16 values, and against the float kernel
// (qk_dot on q widened and scaled): row counts 1-11 (the 1-8 row kernels and a second pass), key
// counts off every tile width, head dims with a partial last 32-element step, K rows strided.
// Within float32 accumulation of the products' magnitudes. Skipped without AVX512-BF16.
TF_TEST(attention_qk_bf16_matches_double) {
  const attention_cpu::Kernels* k512 = attention_cpu::kernels_avx512();
  if (!k512 || !k512->qk_bf16) return;
  tf_test::Rng rng(tf_test::case_seed());
  for (int64_t R : {1, 2, 3, 4, 5, 6, 7, 8, 11})
    for (int64_t n : {1, 3, 7, 17, 64})
      for (int64_t D : {1, 17, 32, 37, 64, 96, 128, 130}) {
        const int64_t ldk = D + 5, ldq = D + 3, lds = n + 2;
        const float scale = 0.37f;
        std::vector<uint16_t> q(size_t(R * ldq)), kk(size_t(n * ldk));
        for (auto& h : q) h = f32_to_bf16(rng.uniform(-2, 2));
        for (auto& h : kk) h = f32_to_bf16(rng.uniform(-2, 2));
        std::vector<float> qf(size_t(R * D));
        for (int64_t r = 0; r < R; ++r)
          for (int64_t d = 0; d < D; ++d)
            qf[size_t(r * D + d)] = bf16_to_f32(q[size_t(r * ldq + d)]) * scale;
        std::vector<float> s(size_t(R * lds), NAN), sf(size_t(R * lds), NAN);
        const attention_cpu::Prefetch pf;
        k512->qk_bf16(q.data(), ldq, R, kk.data(), ldk, n, D, scale, s.data(), lds, pf);
        k512->qk_dot(qf.data(), D, R, kk.data(), DType::bfloat16, ldk, n, D, sf.data(), lds, pf);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t j = 0; j < n; ++j) {
            double want = 0, mag = 0;
            for (int64_t d = 0; d < D; ++d) {
              const double t = double(bf16_to_f32(q[size_t(r * ldq + d)])) *
                               bf16_to_f32(kk[size_t(j * ldk + d)]);
              want += t;
              mag += std::fabs(t);
            }
            want *= scale;
            const double tol = 1e-6 * (mag * scale + 1e-30) * (1 + D / 32.0);
            const float got = s[size_t(r * lds + j)], other = sf[size_t(r * lds + j)];
            CHECK(std::fabs(got - want) <= tol && std::fabs(other - want) <= tol,
                  "R%lld n%lld D%lld (%lld,%lld): qk_bf16 %.9g, qk_dot %.9g, want %.9g",
                  (long long)R, (long long)n, (long long)D, (long long)r, (long long)j, got,
                  other, want);
          }
      }
}

TF_TEST(attention_rejects_bad_parameters) {
  float x[8] = {};
  AttentionParams p;
  p.q = p.k = p.v = x;
  p.out = x;
  p.batch = p.heads_q = p.seqlen_q = p.seqlen_k = 1;
  p.heads_k = 1;
  p.head_dim = 8;
  CHECK(attention(p).ok());
  AttentionParams bad = p;
  bad.heads_q = 3;
  bad.heads_k = 2;
  CHECK(attention(bad).code == StatusCode::shape);
  bad = p;
  bad.head_dim = 257;
  CHECK(attention(bad).code == StatusCode::shape);
  bad = p;
  bad.window_left = -2;
  CHECK(attention(bad).code == StatusCode::arg);
  bad = p;
  bad.softcap = std::numeric_limits<float>::quiet_NaN();
  CHECK(attention(bad).code == StatusCode::arg);
  bad = p;
  bad.dtype = DType::int8;
  CHECK(attention(bad).code == StatusCode::dtype);
}
