// Fused attention against a double-precision loop, on every ISA level this CPU runs: the tiled
// path (>= 6 group rows), the streaming decode path, split-K merging, causal and GQA.
#include <cmath>
#include <limits>
#include <vector>

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

}  // namespace

TF_TEST(attention_matches_double_loop) {
  const Case cases[] = {{1, 1, 1, 1, 1, 1, false},     {2, 7, 7, 2, 1, 7, true},
                        {1, 40, 70, 4, 2, 64, true},   {1, 100, 100, 2, 2, 128, false},
                        {1, 1, 1100, 1, 1, 128, false}, {2, 3, 700, 8, 2, 80, true},
                        {1, 9, 9, 1, 1, 256, true},    {1, 1, 900, 12, 4, 72, false},
                        {1, 2, 300, 8, 4, 24, true},    {1, 1, 130, 20, 4, 17, false}};
  tf_test::Rng rng(tf_test::case_seed());
  const tf_test::IsaGuard guard;
  const std::vector<Isa> isas = tf_test::isa_levels();
  for (const Case& c : cases) {
    std::vector<float> q(size_t(c.B * c.Sq * c.Hq * c.D)), k(size_t(c.B * c.Sk * c.Hk * c.D));
    std::vector<float> v(k.size());
    for (float& x : q) x = rng.uniform(-2, 2);
    for (float& x : k) x = rng.uniform(-2, 2);
    for (float& x : v) x = rng.uniform(-1, 1);
    const std::vector<double> want = reference(c, q, k, v);
    for (Isa isa : isas) {
      set_isa(isa);
      std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
      REQUIRE(attention(params(c, DType::float32, q.data(), k.data(), v.data(), out.data())).ok());
      std::vector<double> got(out.begin(), out.end());
      const double err = tf_test::rel_norm_error(got, want, want);
      CHECK(err < 1e-5, "%s B%lld Sq%lld Sk%lld Hq%lld Hk%lld D%lld: relative error %.3g",
            isa_name(isa), (long long)c.B, (long long)c.Sq, (long long)c.Sk, (long long)c.Hq,
            (long long)c.Hk, (long long)c.D, err);
    }
  }
}

// float16 / bfloat16 storage, widened in registers on each ISA: against the double loop on the
// rounded inputs, within the rounding of the 16-bit output (plus float32 accumulation).
TF_TEST(attention_16bit_matches_double_loop) {
  const Case cases[] = {{1, 1, 700, 8, 2, 64, false}, {1, 3, 90, 4, 4, 40, true},
                        {1, 30, 50, 2, 1, 32, true}};
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
