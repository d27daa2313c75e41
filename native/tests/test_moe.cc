// tf::moe_* (include/tensorfuse/moe.h) at the core level: the per-ISA element-wise pieces against
// the scalar ones and libm, the fused expert layer against a float64 loop with its output
// poisoned with NaN, and routing metadata at a size where T * topK * D exceeds 2^31 (metadata
// only: the data would not fit in memory).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../cpu/moe/moe_internal.h"
#include "check.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/quant.h"

using namespace tf;

namespace {

using tf_test::isa_levels;
using tf_test::IsaGuard;

struct Routed {
  std::vector<float> weights;
  std::vector<int32_t> experts, counts, offsets, order;
  MoeRouteParams p;
};

Routed route(const std::vector<float>& logits, int64_t T, int64_t E, int k, double cf = 0) {
  Routed r;
  r.weights.resize(size_t(T * k));
  r.experts.resize(size_t(T * k));
  r.counts.resize(size_t(E));
  r.offsets.resize(size_t(E + 1));
  r.order.resize(size_t(T * k));
  r.p.T = T;
  r.p.E = E;
  r.p.top_k = k;
  r.p.logits = logits.data();
  r.p.capacity_factor = cf;
  r.p.weights = r.weights.data();
  r.p.experts = r.experts.data();
  r.p.counts = r.counts.data();
  r.p.offsets = r.offsets.data();
  r.p.order = r.order.data();
  return r;
}

}  // namespace

TF_TEST(moe_kernels_match_scalar) {
  tf_test::Rng rng(tf_test::case_seed());
  const moe_cpu::Kernels& gen = moe_cpu::kernels_generic();
  for (Isa isa : isa_levels()) {
    const moe_cpu::Kernels& k = moe_cpu::kernels_for(isa);
    for (int64_t n : {1, 7, 8, 33, 384}) {
      std::vector<float> x(static_cast<size_t>(n)), a(x.size()), b(x.size());
      for (auto& v : x) v = rng.uniform(-90.0f, 30.0f);
      x[0] = 29.5f;  // the sum is not all underflow
      if (n > 3) {
        x[1] = -std::numeric_limits<float>::infinity();
        x[2] = 0.0f;
      }
      const float m = 30.0f;
      const float sa = k.exp_shift(x.data(), m, n, a.data());
      double sw = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(double(x[size_t(i)] - m));
        sw += want;
        CHECK(std::fabs(a[size_t(i)] - want) <= 3e-7 * want + 2e-38, "%s exp(%g) = %g, want %g",
              isa_name(isa), double(x[size_t(i)] - m), double(a[size_t(i)]), want);
      }
      CHECK(std::fabs(sa - sw) <= 1e-6 * sw, "%s sum %g want %g", isa_name(isa), double(sa), sw);
      for (auto& v : x) v = rng.uniform(-20.0f, 20.0f);
      k.sigmoid(x.data(), n, a.data());
      gen.sigmoid(x.data(), n, b.data());
      for (int64_t i = 0; i < n; ++i)
        CHECK(std::fabs(a[size_t(i)] - b[size_t(i)]) <= 4e-7f * b[size_t(i)], "%s sigmoid", isa_name(isa));
      std::vector<float> y1(x.size()), y2(x.size());
      for (int64_t i = 0; i < n; ++i) y1[size_t(i)] = y2[size_t(i)] = rng.uniform(-1, 1);
      k.axpy(0.37f, x.data(), y1.data(), n);
      gen.axpy(0.37f, x.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i)
        CHECK(std::fabs(y1[size_t(i)] - y2[size_t(i)]) <= 1e-6f * (1 + std::fabs(y2[size_t(i)])), "%s axpy",
              isa_name(isa));
    }
    // NaN stays NaN
    float nan_in = std::numeric_limits<float>::quiet_NaN(), out = 0;
    k.exp_shift(&nan_in, 0.0f, 1, &out);
    CHECK(std::isnan(out), "%s exp(NaN)", isa_name(isa));
    std::vector<float> nan8(8, nan_in), out8(8, 0);
    k.exp_shift(nan8.data(), 0.0f, 8, out8.data());
    CHECK(std::isnan(out8[5]), "%s exp(NaN) vector", isa_name(isa));
  }
}

namespace {

// The routing fields of MoeFfnParams from a routed case, and D / F / the activation.
MoeFfnParams ffn_params(const Routed& r, int64_t T, int64_t E, int k, int64_t D, int64_t F,
                        Activation act) {
  MoeFfnParams p;
  p.r.T = T;
  p.r.top_k = k;
  p.r.E = E;
  p.r.rows = r.offsets[size_t(E)];
  p.r.weights = r.weights.data();
  p.r.offsets = r.offsets.data();
  p.r.order = r.order.data();
  p.D = D;
  p.F = F;
  p.act = act;
  return p;
}

// The layer in float64, slot by slot: want[t, d] = sum of the token's weighted expert outputs, and
// scale[t, d] the same sum of magnitudes (w3 null: no GLU product).
void ffn_float64(const Routed& r, int64_t T, int k, int64_t D, int64_t F, Activation act,
                 const std::vector<float>& x, const std::vector<float>& w1, const float* w3,
                 const std::vector<float>& w2, std::vector<double>* want,
                 std::vector<double>* scale) {
  want->assign(size_t(T * D), 0.0);
  scale->assign(size_t(T * D), 0.0);
  for (int64_t s = 0; s < T * k; ++s) {
    const int64_t t = s / k, e = r.experts[size_t(s)];
    std::vector<double> h(static_cast<size_t>(F));
    for (int64_t f = 0; f < F; ++f) {
      double g = 0, u = 0;
      for (int64_t d = 0; d < D; ++d) {
        g += double(w1[size_t((e * F + f) * D + d)]) * x[size_t(t * D + d)];
        if (w3) u += double(w3[size_t((e * F + f) * D + d)]) * x[size_t(t * D + d)];
      }
      double a = g;
      if (act == Activation::silu) a = g / (1 + std::exp(-g));
      if (act == Activation::relu) a = g > 0 ? g : 0;
      if (act == Activation::gelu) a = 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)));
      h[size_t(f)] = w3 ? a * u : a;
    }
    for (int64_t d = 0; d < D; ++d) {
      double y = 0, ay = 0;
      for (int64_t f = 0; f < F; ++f) {
        y += double(w2[size_t((e * D + d) * F + f)]) * h[size_t(f)];
        ay += std::fabs(double(w2[size_t((e * D + d) * F + f)]) * h[size_t(f)]);
      }
      (*want)[size_t(t * D + d)] += double(r.weights[size_t(s)]) * y;
      (*scale)[size_t(t * D + d)] += std::fabs(double(r.weights[size_t(s)])) * ay;
    }
  }
}

}  // namespace

TF_TEST(moe_ffn_matches_float64_with_poisoned_output) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Case {
    int64_t T, E, D, F;
    int k;
    bool w3;
    Activation act;
  };
  for (const Case c : {Case{5, 8, 33, 70, 2, true, Activation::silu}, Case{40, 6, 17, 300, 3, false, Activation::gelu},
                       Case{1, 60, 9, 5, 4, true, Activation::relu},
                       Case{300, 2, 8, 24, 1, true, Activation::silu},
                       Case{520, 2, 20, 40, 1, true, Activation::silu},   // > 192 rows an expert
                       // ~50 rows an expert (the rows variant where the ISA pairs panels), F in
                       // three steps, D % 6 = 1, rows % 16 past the panels
                       Case{400, 16, 37, 500, 2, true, Activation::silu}}) {
    std::vector<float> logits(static_cast<size_t>(c.T * c.E)), x(static_cast<size_t>(c.T * c.D)),
        w1(static_cast<size_t>(c.E * c.F * c.D)),
        w3(w1.size()), w2(w1.size());
    for (auto& v : logits) v = std::round(rng.uniform(-3, 3) * 16) / 16;
    for (auto* vec : {&x, &w1, &w3, &w2})
      for (auto& v : *vec) v = rng.uniform(-1, 1);
    Routed r = route(logits, c.T, c.E, c.k);
    REQUIRE(moe_route(r.p).ok());
    MoeFfnParams p = ffn_params(r, c.T, c.E, c.k, c.D, c.F, c.act);
    p.x = x.data();
    p.w1 = w1.data();
    p.w3 = c.w3 ? w3.data() : nullptr;
    p.w2 = w2.data();
    std::vector<double> want, scale;  // float64 truth, slot by slot
    ffn_float64(r, c.T, c.k, c.D, c.F, c.act, x, w1, c.w3 ? w3.data() : nullptr, w2, &want, &scale);
    for (Isa isa : isa_levels()) {
      set_isa(isa);
      std::vector<float> out(static_cast<size_t>(c.T * c.D), std::numeric_limits<float>::quiet_NaN());
      p.out = out.data();
      REQUIRE(moe_ffn(p).ok());
      std::vector<double> got(out.begin(), out.end());
      const double err = tf_test::rel_norm_error(got, want, scale);
      CHECK(err < 1e-6, "%s T=%lld E=%lld D=%lld F=%lld: rel err %g", isa_name(isa), (long long)c.T,
            (long long)c.E, (long long)c.D, (long long)c.F, err);
    }
  }
}

// bfloat16 x and experts: on AVX512-BF16 G and U run on the bfloat16 tile (G^T = w1 X^T, x
// packed by pairs of D) from 8 rows an expert, in the few-row (dot) and the packed variants, D
// past one 1024-deep slice, F steps ending off the 6-row blocks. Against float64 on the rounded
// values: within 1.5x the error of the float32 layer's output rounded to bfloat16.
TF_TEST(moe_ffn_bf16_matches_float64) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Case {
    int64_t T, E, D, F;
    int k;
  };
  for (const Case c :
       {Case{40, 4, 1030, 530, 2}, Case{200, 2, 64, 301, 1}, Case{30, 3, 40, 50, 2},
        Case{60, 4, 96, 70, 2}}) {
    std::vector<float> logits(size_t(c.T * c.E)), x(size_t(c.T * c.D)),
        w1(size_t(c.E * c.F * c.D)), w3(w1.size()), w2(w1.size());
    std::vector<uint16_t> xh(x.size()), w1h(w1.size()), w3h(w1.size()), w2h(w1.size());
    for (auto& v : logits) v = std::round(rng.uniform(-3, 3) * 16) / 16;
    const std::pair<std::vector<float>*, std::vector<uint16_t>*> pairs[] = {
        {&x, &xh}, {&w1, &w1h}, {&w3, &w3h}, {&w2, &w2h}};
    for (auto& [f, h] : pairs)
      for (size_t i = 0; i < f->size(); ++i)
        (*f)[i] = bf16_to_f32((*h)[i] = f32_to_bf16(rng.uniform(-1, 1)));
    Routed r = route(logits, c.T, c.E, c.k);
    REQUIRE(moe_route(r.p).ok());
    MoeFfnParams p = ffn_params(r, c.T, c.E, c.k, c.D, c.F, Activation::silu);
    std::vector<double> want, scale;
    ffn_float64(r, c.T, c.k, c.D, c.F, Activation::silu, x, w1, w3.data(), w2, &want, &scale);
    // every level; the AVX-512 one also with AMX off, vdpbf16ps on and off (no-ops where the CPU
    // has neither)
    struct Run { Isa isa; int amx, dot; };
    std::vector<Run> runs;
    for (Isa isa : isa_levels()) runs.push_back({isa, -1, -1});
    if (isa_supported(Isa::avx512)) {
      runs.push_back({Isa::avx512, 0, 1});
      runs.push_back({Isa::avx512, 0, 0});
    }
    for (const Run& run : runs) {
      const Isa isa = run.isa;
      set_isa(isa);
      tf::set_use_amx(run.amx);
      tf::set_fast_bf16_dot(run.dot);
      // the float32 layer on the same values, rounded to bfloat16: the budget
      std::vector<float> out32(want.size(), std::numeric_limits<float>::quiet_NaN());
      p.dtype = DType::float32;
      p.x = x.data(), p.w1 = w1.data(), p.w3 = w3.data(), p.w2 = w2.data(), p.out = out32.data();
      REQUIRE(moe_ffn(p).ok());
      std::vector<double> ref(want.size()), got(want.size());
      for (size_t i = 0; i < ref.size(); ++i) ref[i] = bf16_to_f32(f32_to_bf16(out32[i]));
      std::vector<uint16_t> outh(want.size(), 0x7fc0);  // NaN
      p.dtype = DType::bfloat16;
      p.x = xh.data(), p.w1 = w1h.data(), p.w3 = w3h.data(), p.w2 = w2h.data(), p.out = outh.data();
      REQUIRE(moe_ffn(p).ok());
      for (size_t i = 0; i < got.size(); ++i) got[i] = bf16_to_f32(outh[i]);
      const double budget = tf_test::rel_norm_error(ref, want, want);
      const double err = tf_test::rel_norm_error(got, want, want);
      CHECK(err <= 1.5 * budget + 1e-6,
            "%s amx=%d dot=%d T=%lld E=%lld D=%lld F=%lld: rel err %.3g, budget %.3g",
            isa_name(isa), run.amx, run.dot, (long long)c.T, (long long)c.E, (long long)c.D, (long long)c.F, err,
            budget);
    }
  }
}

// Quantized experts (int8 / int4, with and without zero points, per-row and grouped scales): the
// layer on the codes against the float layer on quant_dequantize of the same codes, on every ISA,
// the output poisoned with NaN; decode tiles (GEMV), few-row tiles (dequantized panels for dot_t)
// and prefill tiles (packed). Mixed float / quantized weights are refused.
TF_TEST(moe_ffn_quantized_matches_float_on_dequantized_weights) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Case {
    int64_t T, E, D, F;
    int k;
    int bits;
    int64_t group;
    bool zeros, w3;
  };
  for (const Case c : {Case{1, 8, 128, 640, 2, 4, 128, true, true}, Case{2, 4, 96, 160, 1, 4, 32, false, true},
                       Case{7, 8, 33, 45, 2, 8, 0, false, false}, Case{40, 2, 64, 96, 2, 8, 32, false, true},
                       Case{130, 2, 64, 200, 2, 4, 0, true, true}, Case{100, 256, 64, 192, 1, 4, 64, true, true},
                       Case{90, 256, 33, 45, 2, 8, 0, false, false},
                       // AMX-BF16 tiles where the CPU has them (tiles past the GEMV, D, F and
                       // groups in 32s): F steps accumulated into y, D past 128 rows a call, int4
                       // with zero points, one scale a row, no w3
                       Case{100, 2, 192, 576, 2, 4, 64, true, true},
                       Case{60, 2, 288, 320, 1, 8, 0, false, true},
                       Case{50, 4, 96, 1088, 2, 4, 0, false, false}}) {
    std::vector<float> logits(static_cast<size_t>(c.T * c.E)), x(static_cast<size_t>(c.T * c.D));
    for (auto& v : logits) v = std::round(rng.uniform(-3, 3) * 16) / 16;
    for (auto& v : x) v = rng.uniform(-1, 1);
    Routed r = route(logits, c.T, c.E, c.k);
    REQUIRE(moe_route(r.p).ok());
    // w1, w3 [E, F, D] and w2 [E, D, F]: codes, scales, zeros and the dequantized floats
    struct Q {
      std::vector<uint8_t> q, z;
      std::vector<float> s, f;
      MoeQuant mq;
    } qs[3];
    for (int i = 0; i < 3; ++i) {
      const int64_t R = c.E * (i == 2 ? c.D : c.F), K = i == 2 ? c.F : c.D;
      const int64_t G = c.group > 0 ? K / c.group : 1;
      std::vector<float> w(static_cast<size_t>(R * K));
      for (auto& v : w) v = rng.uniform(-1, 1);
      Q& q = qs[i];
      q.q.resize(static_cast<size_t>(c.bits == 8 ? R * K : R * K / 2));
      q.s.resize(static_cast<size_t>(R * G));
      q.z.resize(c.zeros ? q.s.size() : 0);
      q.f.resize(w.size());
      REQUIRE(quant_quantize(w.data(), R, K, c.bits, c.group, !c.zeros, q.q.data(), q.s.data(),
                             c.zeros ? q.z.data() : nullptr)
                  .ok());
      QuantWeight qw;
      qw.bits = c.bits;
      qw.N = R;
      qw.K = K;
      qw.group_size = c.group;
      qw.q = q.q.data();
      qw.scales = q.s.data();
      qw.zeros = c.zeros ? q.z.data() : nullptr;
      REQUIRE(quant_dequantize(qw, q.f.data()).ok());
      q.mq.bits = c.bits;
      q.mq.group_size = c.group;
      q.mq.scales = q.s.data();
      q.mq.zeros = qw.zeros;
    }
    MoeFfnParams p;
    p.r.T = c.T;
    p.r.top_k = c.k;
    p.r.E = c.E;
    p.r.rows = r.offsets[size_t(c.E)];
    p.r.weights = r.weights.data();
    p.r.offsets = r.offsets.data();
    p.r.order = r.order.data();
    p.D = c.D;
    p.F = c.F;
    p.x = x.data();
    p.act = Activation::silu;
    MoeFfnParams pf = p, pq = p;
    pf.w1 = qs[0].f.data();
    pf.w3 = c.w3 ? qs[1].f.data() : nullptr;
    pf.w2 = qs[2].f.data();
    pq.w1 = qs[0].q.data();
    pq.w3 = c.w3 ? qs[1].q.data() : nullptr;
    pq.w2 = qs[2].q.data();
    pq.q1 = qs[0].mq;
    pq.q3 = qs[1].mq;
    pq.q2 = qs[2].mq;
    // a call on other values between the float layer and the checked one: the layer's own
    // buffers (reused from call to call) then hold values that are wrong for this x, so a piece
    // of them the checked call did not write shows
    std::vector<float> x_other(x.size());
    for (size_t i = 0; i < x.size(); ++i) x_other[i] = -1.5f * x[i] + 0.25f;
    MoeFfnParams scrub = pq;
    scrub.x = x_other.data();
    std::vector<float> scrub_out(static_cast<size_t>(c.T * c.D));
    scrub.out = scrub_out.data();
    for (const tf_test::IsaForm& form : tf_test::isa_forms()) {
      form.use();
      std::vector<float> want(static_cast<size_t>(c.T * c.D)), out(want.size(), std::numeric_limits<float>::quiet_NaN());
      pf.out = want.data();
      pq.out = out.data();
      REQUIRE(moe_ffn(pf).ok());
      REQUIRE(moe_ffn(scrub).ok());
      REQUIRE(moe_ffn(pq).ok());
      std::vector<double> got(out.begin(), out.end()), ref(want.begin(), want.end());
      double num = 0, den = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
      }
      const double err = std::sqrt(num / std::max(den, 1e-300));
      CHECK(std::isfinite(err) && err < 1e-5, "%s T=%lld int%d g%lld: rel err %g", form.name().c_str(),
            (long long)c.T, c.bits,
            (long long)c.group, err);
    }
    // all float or all quantized
    MoeFfnParams mixed = pq;
    mixed.w2 = qs[2].f.data();
    mixed.q2 = MoeQuant();
    std::vector<float> out(static_cast<size_t>(c.T * c.D));
    mixed.out = out.data();
    CHECK(moe_ffn(mixed).code == StatusCode::unsupported);
    MoeFfnParams bad = pq;
    bad.q1.bits = 3;
    bad.out = out.data();
    CHECK(moe_ffn(bad).code == StatusCode::arg);
  }
}

TF_TEST(moe_routing_metadata_past_int32_element_offsets) {
  // T * topK = 10.5M slots; with D = 256 the dispatched tensor would hold T * topK * D > 2^31
  // elements, so every row offset of it must be 64-bit. Only the metadata is built here.
  const int64_t T = (int64_t(1) << 20) + (int64_t(1) << 18) + 3, E = 16, D = 256;
  const int k = 8;
  REQUIRE(T * k * D > (int64_t(1) << 31));
  tf_test::Rng rng(tf_test::case_seed());
  std::vector<float> logits(static_cast<size_t>(T * E));
  for (auto& v : logits) v = std::round(rng.uniform(-3, 3) * 16) / 16;
  Routed r = route(logits, T, E, k, 1.5);
  REQUIRE(moe_route(r.p).ok());
  const int64_t rows = r.offsets[size_t(E)];
  CHECK(rows == T * k - r.p.dropped, "rows %lld dropped %lld", (long long)rows, (long long)r.p.dropped);
  const int64_t cap = int64_t(std::ceil(1.5 * double(T) * k / double(E)));
  for (int64_t e = 0; e < E; ++e) CHECK(r.counts[size_t(e)] <= cap, "expert %lld over capacity", (long long)e);
  MoeRoutingView v;
  v.T = T;
  v.top_k = k;
  v.E = E;
  v.rows = rows;
  v.weights = r.weights.data();
  v.offsets = r.offsets.data();
  v.order = r.order.data();
  REQUIRE(moe_check_routing(v).ok());
  // The row map the kernels use: every kept slot's row, its element offset row * D past 2^31
  // for the last rows, computed without wrapping.
  const std::vector<int64_t> slot_row = moe_cpu::slot_rows(v);
  int64_t kept = 0, max_offset = 0;
  for (int64_t s = 0; s < T * k; ++s) {
    const int64_t row = slot_row[size_t(s)];
    if (row < 0) {
      CHECK(r.experts[size_t(s)] == -1);
      continue;
    }
    ++kept;
    CHECK(r.order[size_t(row)] == s);
    max_offset = std::max(max_offset, row * D);
  }
  CHECK(kept == rows);
  CHECK(max_offset == (rows - 1) * D && max_offset > (int64_t(1) << 31), "max offset %lld",
        (long long)max_offset);
  // align over the same slots: one sentinel-padded run per expert
  int64_t padded = 0;
  REQUIRE(moe_align_size(r.experts.data(), T * k, E, 64, &padded).ok());
  std::vector<int32_t> sorted(static_cast<size_t>(padded)), ids(static_cast<size_t>(padded / 64));
  REQUIRE(moe_align(r.experts.data(), T * k, E, 64, sorted.data(), ids.data()).ok());
  int64_t sentinels = 0;
  for (int32_t s : sorted) sentinels += s == int32_t(T * k);
  CHECK(padded - sentinels == rows, "padded %lld sentinels %lld", (long long)padded, (long long)sentinels);
}

TF_TEST(moe_dispatch_combine_poisoned_outputs_and_bad_routing) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t T = 37, E = 60, D = 33;
  const int k = 4;
  std::vector<float> logits(static_cast<size_t>(T * E)), x(static_cast<size_t>(T * D));
  for (auto& v : logits) v = std::round(rng.uniform(-3, 3) * 16) / 16;
  for (auto& v : x) v = rng.uniform(-1, 1);
  Routed r = route(logits, T, E, k, 0.5);
  REQUIRE(moe_route(r.p).ok());
  MoeRoutingView v;
  v.T = T;
  v.top_k = k;
  v.E = E;
  v.rows = r.offsets[size_t(E)];
  v.weights = r.weights.data();
  v.offsets = r.offsets.data();
  v.order = r.order.data();
  REQUIRE(v.rows < T * k, "capacity 0.5 should drop slots");
  for (Isa isa : isa_levels()) {
    set_isa(isa);
    std::vector<float> xs(static_cast<size_t>(v.rows * D), std::numeric_limits<float>::quiet_NaN());
    REQUIRE(moe_dispatch(v, x.data(), sizeof(float), D, xs.data()).ok());
    for (int64_t i = 0; i < v.rows; ++i)
      CHECK(std::memcmp(&xs[size_t(i * D)], &x[size_t(r.order[size_t(i)] / k * D)], D * sizeof(float)) == 0,
            "%s row %lld", isa_name(isa), (long long)i);
    std::vector<float> out(static_cast<size_t>(T * D), std::numeric_limits<float>::quiet_NaN());
    REQUIRE(moe_combine(v, xs.data(), DType::float32, D, out.data()).ok());
    // combine(dispatch(x)) = x * (sum of the kept weights of each token)
    std::vector<double> got(out.begin(), out.end()), want(got.size());
    for (int64_t t = 0; t < T; ++t) {
      double ws = 0;
      for (int j = 0; j < k; ++j) ws += r.weights[size_t(t * k + j)];
      for (int64_t d = 0; d < D; ++d) want[size_t(t * D + d)] = ws * x[size_t(t * D + d)];
    }
    CHECK(tf_test::rel_norm_error(got, want, want) < 1e-6, "%s combine", isa_name(isa));
  }
  // a corrupted routing is an error, never a crash
  std::vector<int32_t> bad(r.order);
  bad[0] = int32_t(T * k);
  v.order = bad.data();
  CHECK(moe_dispatch(v, x.data(), sizeof(float), D, x.data()).code == StatusCode::arg);
  bad[0] = bad[1];
  CHECK(moe_combine(v, x.data(), DType::float32, D, x.data()).code == StatusCode::arg);
  std::vector<int32_t> off(r.offsets);
  off[3] = off[2] - 1;
  v.order = r.order.data();
  v.offsets = off.data();
  CHECK(moe_check_routing(v).code == StatusCode::arg);
}
