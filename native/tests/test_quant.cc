// tf::quant_linear / quant_quantize / quant_dequantize (include/tensorfuse/quant.h) against a
// float64 loop over the documented formulas, at every ISA level this CPU runs: int8 and int4,
// per-row and per-group scales (groups on and off the 32-element AVX2 blocks), symmetric and
// asymmetric int4, act-order perm, every float dtype of x, bias, the GEMV / dot / packed paths
// and W8A8 (exact integer sums, checked bitwise across ISAs and at the int8 extremes). Codes are
// random (seeded, check.h); outputs start as NaN so a skipped element fails.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../cpu/quant/quant_kernels.h"
#include "check.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/quant.h"
#include "tensorfuse/threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

using namespace tf;

namespace {

using tf_test::isa_levels;
using tf_test::isa_forms;
using tf_test::IsaForm;
using tf_test::IsaGuard;

// A random quantized weight with its storages.
struct QW {
  std::vector<int8_t> q8;
  std::vector<uint8_t> q4, zeros;
  std::vector<float> scales;
  std::vector<int32_t> perm;
  QuantWeight w;
};

QW random_weight(tf_test::Rng& rng, int bits, int64_t N, int64_t K, int64_t gs, bool sym,
                 bool with_perm) {
  QW r;
  r.w.bits = bits;
  r.w.N = N;
  r.w.K = K;
  r.w.group_size = gs;
  const int64_t G = r.w.groups();
  r.scales.resize(size_t(N * G));
  for (auto& s : r.scales) s = rng.uniform(0.001f, 0.05f) * (rng.below(2) ? 1.0f : -1.0f);
  if (bits == 8) {
    r.q8.resize(size_t(N * K));
    for (auto& v : r.q8) v = int8_t(rng.below(256) - 128);
    r.w.q = r.q8.data();
  } else {
    r.q4.resize(size_t(N * K / 2));
    for (auto& v : r.q4) v = uint8_t(rng.below(256));
    r.w.q = r.q4.data();
    if (!sym) {
      r.zeros.resize(size_t(N * G));
      for (auto& z : r.zeros) z = uint8_t(rng.below(17));  // GPTQ v1 zeros reach 16
      r.w.zeros = r.zeros.data();
    }
  }
  if (with_perm) {
    r.perm.resize(size_t(K));
    for (int64_t k = 0; k < K; ++k) r.perm[size_t(k)] = int32_t(k);
    for (int64_t k = K - 1; k > 0; --k)
      std::swap(r.perm[size_t(k)], r.perm[size_t(rng.below(k + 1))]);
    r.w.perm = r.perm.data();
  }
  r.w.scales = r.scales.data();
  return r;
}

// w[n, k] in the input feature order, float64, from the documented formula.
std::vector<double> dequant_ref(const QuantWeight& w) {
  std::vector<double> out(size_t(w.N * w.K));
  const int64_t G = w.groups(), gs = w.group();
  for (int64_t n = 0; n < w.N; ++n)
    for (int64_t j = 0; j < w.K; ++j) {
      const int64_t g = j / gs;
      double v;
      if (w.bits == 8) {
        v = static_cast<const int8_t*>(w.q)[n * w.K + j];
      } else {
        const uint8_t b = static_cast<const uint8_t*>(w.q)[(n * w.K + j) / 2];
        const int u = (j & 1) ? b >> 4 : b & 15;
        v = u - (w.zeros ? w.zeros[n * G + g] : 8);
      }
      const int64_t k = w.perm ? w.perm[j] : j;
      out[size_t(n * w.K + k)] = v * w.scales[n * G + g];
    }
  return out;
}

double rel(const std::vector<double>& got, const std::vector<double>& want) {
  return tf_test::rel_norm_error(got, want, want);
}

// quant_linear's arguments for one float32 row x through w (the GEMV), y poisoned with NaN.
QuantLinearParams gemv_params(const QuantWeight& w, const std::vector<float>& x,
                              std::vector<float>& y) {
  y.assign(static_cast<size_t>(w.N), NAN);
  QuantLinearParams p;
  p.w = w;
  p.M = 1;
  p.x = x.data();
  p.x_dtype = DType::float32;
  p.y = y.data();
  return p;
}

// An int8-activation product (W8A8 / W4A8) the plain way: x quantized by quant_activations (its
// first row set to +-127 here, so that row's scale is exactly 1, checked), exact integer sums
// per group of xq * code(n, k, g), combined in float64 and scaled by the row's s_x.
template <typename Code>
std::vector<double> int8_activation_ref(const QuantWeight& w, std::vector<float>& x, int64_t M,
                                        int period, Code code) {
  const int64_t N = w.N, K = w.K, G = w.groups(), g_len = w.group();
  for (int64_t k = 0; k < K; ++k) x[size_t(k)] = (k % period ? 127.0f : -127.0f);
  std::vector<int8_t> xq(x.size());
  std::vector<float> sx(static_cast<size_t>(M));
  quant_activations(x.data(), M, K, xq.data(), sx.data());
  CHECK(sx[0] == 1.0f && xq[0] == -127 && xq[1] == 127);
  std::vector<double> want(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t g = 0; g < G; ++g) {
        int64_t isum = 0;
        for (int64_t k = g * g_len; k < (g + 1) * g_len; ++k)
          isum += int64_t(xq[size_t(m * K + k)]) * code(n, k, g);
        acc += double(w.scales[size_t(n * G + g)]) * double(isum);
      }
      want[size_t(m * N + n)] = acc * sx[size_t(m)];
    }
  return want;
}

}  // namespace

TF_TEST(quant_dequantize_matches_formula) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct C { int bits; int64_t N, K, gs; bool sym, perm; };
  const C cases[] = {{8, 7, 33, 0, true, false},   {8, 5, 96, 32, true, false},
                     {4, 9, 64, 32, false, false}, {4, 3, 126, 42, true, false},
                     {4, 6, 256, 128, false, true}, {4, 1, 34, 0, false, false}};
  for (const C& c : cases) {
    QW q = random_weight(rng, c.bits, c.N, c.K, c.gs, c.sym, c.perm);
    const std::vector<double> want = dequant_ref(q.w);
    for (Isa isa : isa_levels()) {
      set_isa(isa);
      std::vector<float> out(size_t(c.N * c.K), NAN);
      REQUIRE(quant_dequantize(q.w, out.data()).ok());
      std::vector<double> got(out.begin(), out.end());
      // one float32 rounding of an exact product
      CHECK(rel(got, want) < 1e-7, "%s int%d K=%lld: %g", isa_name(isa), c.bits, (long long)c.K,
            rel(got, want));
    }
  }
}

TF_TEST(quant_linear_float_matches_reference) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct C { int bits; int64_t M, N, K, gs; bool sym, perm; DType dt; };
  const C cases[] = {
      {8, 1, 33, 127, 0, true, false, DType::float32},
      {8, 1, 64, 256, 32, true, false, DType::float16},
      {4, 1, 40, 256, 128, false, false, DType::float32},
      {4, 1, 17, 96, 32, true, false, DType::bfloat16},
      {4, 1, 9, 126, 42, false, false, DType::float32},
      {4, 3, 33, 128, 64, false, true, DType::float32},
      {4, 16, 70, 1100, 100, false, false, DType::float32},
      {8, 20, 50, 300, 60, true, false, DType::float16},
      {4, 61, 67, 600, 120, false, false, DType::float32},
      {8, 61, 35, 520, 0, true, true, DType::bfloat16},
      {4, 20, 50, 2048, 64, false, false, DType::float32},
      {4, 5, 33, 128, 32, false, true, DType::float16},
      {4, 9, 21, 256, 0, true, false, DType::float32},
      {8, 1, 7, 512, 0, true, false, DType::float32},    // int8 lane GEMV: row pairs + a tail row
      {8, 2, 9, 384, 128, true, false, DType::bfloat16},
      {8, 1, 6, 192, 64, true, true, DType::float32},
      // the rows engine (16..48 rows): whole panels, a remainder row, strips' tail rows, lane
      // order (K % 64 == 0, groups of 32 / 128), slices past kDotKC
      {4, 16, 53, 2112, 32, false, false, DType::float32},
      {4, 33, 49, 256, 128, true, false, DType::float16},
      {8, 48, 100, 1500, 0, true, false, DType::float32},
      {4, 31, 7, 192, 64, false, true, DType::float32},
      // AVX-512: the int4 GEMV with rows of x in pairs up to 12 (groups of 32) / 16 rows
      {4, 16, 37, 512, 128, false, false, DType::float32},
      {4, 12, 21, 384, 32, true, false, DType::bfloat16},
      {4, 9, 17, 256, 0, false, false, DType::float32},
      {4, 13, 19, 640, 64, false, false, DType::float16},
      // the packed path (49+ rows) in lane order: slices of 256, a last one of 64 (the lone
      // 64-block), groups of 32 / 64 / 128, act-order
      {4, 61, 67, 640, 64, false, false, DType::float32},
      {4, 50, 33, 1088, 32, true, false, DType::bfloat16},
      {4, 97, 20, 384, 128, false, true, DType::float16},
  };
  for (const C& c : cases) {
    QW q = random_weight(rng, c.bits, c.N, c.K, c.gs, c.sym, c.perm);
    const std::vector<double> w = dequant_ref(q.w);
    std::vector<float> xf(size_t(c.M * c.K)), bias(size_t(c.N));
    for (auto& v : xf) v = rng.uniform(-1, 1);
    for (auto& v : bias) v = rng.uniform(-1, 1);
    // x stored in its dtype; the reference sees the rounded values
    std::vector<uint16_t> x16(xf.size());
    for (size_t i = 0; i < xf.size(); ++i) {
      if (c.dt == DType::float16) { x16[i] = f32_to_fp16(xf[i]); xf[i] = fp16_to_f32(x16[i]); }
      if (c.dt == DType::bfloat16) { x16[i] = f32_to_bf16(xf[i]); xf[i] = bf16_to_f32(x16[i]); }
    }
    std::vector<double> want(size_t(c.M * c.N));
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double s = bias[size_t(n)];
        for (int64_t k = 0; k < c.K; ++k)
          s += double(xf[size_t(m * c.K + k)]) * w[size_t(n * c.K + k)];
        want[size_t(m * c.N + n)] = s;
      }
    for (const IsaForm& form : isa_forms()) {
      form.use();
      std::vector<float> y(size_t(c.M * c.N), NAN);
      QuantLinearParams p;
      p.w = q.w;
      p.M = c.M;
      p.x = c.dt == DType::float32 ? static_cast<const void*>(xf.data()) : x16.data();
      p.x_dtype = c.dt;
      p.y = y.data();
      p.bias = bias.data();
      REQUIRE(quant_linear(p).ok());
      std::vector<double> got(y.begin(), y.end());
      CHECK(rel(got, want) < 1e-5, "%s int%d M=%lld K=%lld: %g", form.name().c_str(), c.bits,
            (long long)c.M, (long long)c.K, rel(got, want));
    }
  }
}

// Float activations on AMX-BF16 tiles (quant_float_x86_amx.cc, where this CPU has them): x held
// exactly as three bfloat16 parts, so the error is a float32 dot product's even when the elements
// of a row span 2^-20 .. 2^20: at most 4e-8 of the norm of the sums of |x w| measured, either
// path; two parts would leave 2^-16 of each element (1.5e-6 to 2.8e-6 measured), which the bound
// of 3e-7 catches. Shapes cross the kernel's edges: rows of x in blocks of 16 (one, two, an odd
// count of blocks, depth chunks, chunks of 256 rows), weight rows in strips of 32 and tasks of
// 128, units of depth between 32 and 256 (groups of 32 / 64 / 96 / 128 / 384, one scale a row),
// int8 and int4 with and without zero points. Rows of x outside [2^-100, 2^100] or with an
// infinity send the call to the other paths (after a first chunk was written, too); it must stay
// right, and the row with the infinity gives no finite output. The float tiles (use_amx 0) are
// held to the same bound.
TF_TEST(quant_linear_float_amx_matches_reference) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct C { int bits; int64_t M, N, K, gs; bool sym; };
  const C cases[] = {
      {4, 16, 33, 256, 32, false},  {4, 17, 100, 512, 128, false}, {4, 33, 129, 768, 384, true},
      {4, 8, 31, 4096, 0, false},   {4, 50, 65, 192, 96, false},   {4, 128, 40, 1024, 64, true},
      {4, 40, 300, 2048, 128, false}, {8, 8, 37, 256, 0, true},    {8, 20, 64, 512, 32, true},
      {8, 49, 33, 384, 128, true},  {8, 130, 50, 2048, 0, true},   {8, 9, 1, 64, 64, true},
      {4, 300, 40, 256, 64, false},  // two chunks of rows of x (256 + 44)
      {4, 16, 5, 32, 0, false},      // one step of depth (K = 32)
  };
  const bool amx = tf::amx_usable(tf::Amx::bf16) && tf::best_isa() == tf::Isa::avx512;
  for (const C& c : cases) {
    QW q = random_weight(rng, c.bits, c.N, c.K, c.gs, c.sym, false);
    const std::vector<double> w = dequant_ref(q.w);
    for (int mode = 0; mode < 5; ++mode) {
      std::vector<float> x(size_t(c.M * c.K));
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t k = 0; k < c.K; ++k) {
          const float r = rng.uniform(-1, 1);
          float v = r;
          if (mode == 1) v = std::ldexp(r, int(rng.below(41)) - 20);  // every part carries bits
          if (mode == 2 && m == c.M / 2) v = r * 1e-33f;  // one row below 2^-100
          if (mode == 3 && m == c.M - 1) v = r * 1e31f;   // one row above 2^100
          if (mode == 4 && m == 0 && k == c.K / 2) v = INFINITY;  // one row with an infinity
          x[size_t(m * c.K + k)] = v;
        }
      // the reference, and the norm of the sums of |x w| the error is held to
      std::vector<double> want(size_t(c.M * c.N));
      double dn = 0;
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t n = 0; n < c.N; ++n) {
          double s = 0, a = 0;
          for (int64_t k = 0; k < c.K; ++k) {
            const double t = double(x[size_t(m * c.K + k)]) * w[size_t(n * c.K + k)];
            s += t;
            a += std::fabs(t);
          }
          want[size_t(m * c.N + n)] = s;
          if (mode != 4 || m > 0) dn += a * a;
        }
      dn = std::sqrt(dn);
      for (int use_amx : {1, 0}) {
        tf::set_isa(tf::best_isa());
        tf::set_use_amx(use_amx);
        if (use_amx && amx) {
          // the tiles take this call exactly when every row of x suits them
          REQUIRE(quant_cpu::amx_float_applies(q.w, c.M));
          std::vector<uint16_t> xp(size_t(quant_cpu::amx_float_x_elems(c.M, c.K)) + 32);
          uint16_t* xa = quant_cpu::align64(xp.data());
          CHECK(quant_cpu::amx_float_pack_x(x.data(), c.K, c.M, c.K, 0, (c.M + 15) / 16, xa) ==
                    (mode < 2),
                "mode %d: rows that %s the tiles", mode, mode < 2 ? "suit" : "do not suit");
        }
        std::vector<float> y(size_t(c.M * c.N), NAN);
        QuantLinearParams p;
        p.w = q.w;
        p.M = c.M;
        p.x = x.data();
        p.x_dtype = DType::float32;
        p.y = y.data();
        REQUIRE(quant_linear(p).ok());
        double en = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          if (mode == 4 && int64_t(i) < c.N) {  // the row with the infinity: not finite
            CHECK(!std::isfinite(y[i]), "mode 4: a finite output from a row with an infinity");
            continue;
          }
          const double e = double(y[i]) - want[i];
          en += std::isnan(e) ? INFINITY : e * e;
        }
        CHECK(std::sqrt(en) <= 3e-7 * dn, "amx %d int%d M=%lld N=%lld K=%lld gs=%lld mode %d: %g",
              use_amx, c.bits, (long long)c.M, (long long)c.N, (long long)c.K, (long long)c.gs,
              mode, std::sqrt(en) / dn);
      }
    }
  }
}

// The AVX2 int4 / int8 GEMVs read masked codes as subnormal floats against x pre-scaled by a power
// of two that follows max |x| (quant_x86_avx2.cc, prep_x). Rows whose x spans 2^-40 .. 2^40, rows
// near the ends of the scaled range and past them (the scalar path), and a thread with
// subnormals read as zero (MXCSR.DAZ: the scalar path) all stay within float32 accumulation.
TF_TEST(quant_gemv_extreme_x) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t N = 13, K = 256;
  const int64_t kinds[4][2] = {{4, 32}, {4, 128}, {8, 32}, {8, 0}};  // bits, group size
  for (const auto& kind : kinds) {
    const int bits = int(kind[0]);
    const int64_t gs = kind[1];
    QW q = random_weight(rng, bits, N, K, gs, gs != 128, false);
    const std::vector<double> w = dequant_ref(q.w);
    for (int mode = 0; mode < 6; ++mode) {
      std::vector<float> x(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) {
        const float r = rng.uniform(-1, 1);
        switch (mode) {
          case 0: x[size_t(k)] = std::ldexp(r, int(rng.below(81)) - 40); break;  // wide range
          case 1: x[size_t(k)] = r * 1e29f; break;   // max |x| just below 2^100
          case 2: x[size_t(k)] = r * 1e-29f; break;  // near the low end
          case 3: x[size_t(k)] = r * 1e33f; break;   // past it (2^110): stored order
          case 4: x[size_t(k)] = r * 1e-36f; break;
          default: x[size_t(k)] = r; break;           // under DAZ
        }
      }
      double wn = 0, dn = 0;
      std::vector<double> want(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) {
        double s = 0, a = 0;
        for (int64_t k = 0; k < K; ++k) {
          s += double(x[size_t(k)]) * w[size_t(n * K + k)];
          a += std::fabs(double(x[size_t(k)]) * w[size_t(n * K + k)]);
        }
        want[size_t(n)] = s;
        wn += s * s;
        dn += a * a;
      }
      for (const IsaForm& form : isa_forms()) {
        form.use();
        std::vector<float> y;
        const QuantLinearParams p = gemv_params(q.w, x, y);
#if defined(__x86_64__) || defined(_M_X64)
        const unsigned csr = _mm_getcsr();
        const int threads = tf::threads();
        if (mode == 5) {  // one thread, so the GEMV runs here, under DAZ
          tf::set_threads(1);
          _mm_setcsr(csr | 0x40);
        }
        const bool ok = quant_linear(p).ok();
        _mm_setcsr(csr);
        tf::set_threads(threads);
        REQUIRE(ok);
#else
        REQUIRE(quant_linear(p).ok());
#endif
        double en = 0;
        for (int64_t n = 0; n < N; ++n) en += (y[size_t(n)] - want[size_t(n)]) * (y[size_t(n)] - want[size_t(n)]);
        // float32 sums of K terms: error against the sum of |terms| (cancellation-proof)
        const double err = std::sqrt(en / dn);
        CHECK(err < 1e-6, "%s int%d gs=%lld mode %d: %g (|y| %g)", form.name().c_str(), bits,
              (long long)gs, mode, err, std::sqrt(wn));
      }
    }
  }
}

// x with a nonzero mean (post-activation inputs) over a long K: the zero point (int4) and the
// int8 offset must be subtracted per weight, not folded out as z * sum(x), which cancels
// (1e-5 relative error at K = 4096-16384 when it was folded). Error against |y| itself.
TF_TEST(quant_gemv_nonzero_mean_x) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t N = 9, K = 8192;
  struct C { int bits; int64_t gs; bool sym; };
  // (long groups: one accumulator of the AVX-512 kernels must not gather every code's u x while
  // the other takes every z sum(x) off: int4 g0 / g256, int8 g0)
  const C cases[] = {{4, 128, false}, {4, 32, true},  {4, 64, false}, {4, 0, false},
                     {4, 256, true},  {8, 0, true},   {8, 32, true}};
  for (const C& c : cases) {
    QW q = random_weight(rng, c.bits, N, K, c.gs, c.sym, false);
    const std::vector<double> w = dequant_ref(q.w);
    std::vector<float> x(static_cast<size_t>(K));
    for (auto& v : x) v = 0.5f + std::fabs(rng.uniform(-1, 1));
    std::vector<double> want(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += double(x[size_t(k)]) * w[size_t(n * K + k)];
      want[size_t(n)] = acc;
    }
    for (const IsaForm& form : isa_forms()) {
      form.use();
      std::vector<float> y;
      const QuantLinearParams p = gemv_params(q.w, x, y);
      REQUIRE(quant_linear(p).ok());
      std::vector<double> got(y.begin(), y.end());
      CHECK(rel(got, want) < 2e-6, "%s int%d gs=%lld: %g", form.name().c_str(), c.bits,
            (long long)c.gs, rel(got, want));
    }
  }
}

// w with its strip layout (quant_pack_strips) in buf, or w unchanged when it has none.
QuantWeight with_strips(const QuantWeight& w, std::vector<uint8_t>& buf) {
  const int64_t bytes = quant_strips_bytes(w);
  if (bytes == 0) return w;
  buf.assign(size_t(bytes), 0xa5);
  QuantWeight ws = w;
  CHECK(quant_pack_strips(w, buf.data()).ok(), "quant_pack_strips failed");
  ws.strips = buf.data();
  return ws;
}

TF_TEST(quant_w8a8_exact_and_identical_across_isas) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  // (M, N, K, gs): the AVX2 blocks and, at the AVX-512 level, 1-3 rows of x read in place (8 / 4 /
  // 2 weight rows a pass with a tail), 4+ rows on packed 32-row strips (6-row micro-tiles with
  // 1-5 row tails, strips with 1-31 columns), groups of 4, 32, 48, 64, 128 and one per row, K
  // off every vector width (a group of 36 ends on a partial 64-byte step)
  struct Shape { int64_t M, N, K, gs; };
  const Shape shapes[] = {{1, 19, 192, 0},  {5, 19, 192, 0},  {1, 19, 192, 32}, {5, 19, 192, 32},
                          {1, 19, 192, 48}, {5, 19, 192, 48}, {2, 13, 256, 64}, {3, 11, 384, 128},
                          {4, 45, 128, 32}, {7, 33, 252, 36}, {13, 64, 96, 4},  {6, 31, 1000, 0},
                          {17, 40, 256, 128}, {2, 9, 100, 0}, {1, 3, 7, 0},    {8, 70, 512, 64},
                          // the strip layout: several strips, the last partial, 1-13 rows
                          {1, 97, 256, 0},  {3, 70, 512, 128}, {13, 65, 128, 32}, {2, 160, 64, 8},
                          // AMX tiles where the CPU has them (16+ rows, K and groups in 64s):
                          // 32-row blocks with a tail, strips with a partial last one
                          {16, 33, 128, 0}, {45, 70, 384, 128}, {33, 64, 256, 64}, {70, 40, 192, 0}};
  for (const Shape& sh : shapes) {
    const int64_t M = sh.M, N = sh.N, K = sh.K, gs = sh.gs;
    QW q = random_weight(rng, 8, N, K, gs, true, false);
    // extremes in every weight row: -128 and 127 at the start
    for (int64_t n = 0; n < N; ++n) { q.q8[size_t(n * K)] = -128; q.q8[size_t(n * K + 1)] = 127; }
    std::vector<float> x(size_t(M * K));
    for (auto& v : x) v = rng.uniform(-3, 3);
    const std::vector<double> want = int8_activation_ref(
        q.w, x, M, 2,
        [&](int64_t n, int64_t k, int64_t) { return int64_t(q.q8[size_t(n * K + k)]); });
    std::vector<float> first;
    // every level, and the AVX-512 one again without AMX (a no-op where the CPU has none)
    std::vector<std::pair<Isa, int>> runs;
    for (Isa isa : isa_levels()) runs.push_back({isa, 1});
    if (isa_supported(Isa::avx512)) runs.push_back({Isa::avx512, 0});
    for (const auto& run : runs) {
      const Isa isa = run.first;
      set_isa(isa);
      tf::set_use_amx(run.second);
      std::vector<uint8_t> strips;
      const QuantWeight ws = with_strips(q.w, strips);
      for (int64_t rows : {std::min<int64_t>(2, M), M})
      for (bool use_strips : {false, true}) {
        std::vector<float> y(size_t(rows * N), NAN);
        QuantLinearParams p;
        p.w = use_strips ? ws : q.w;
        p.M = rows;
        p.x = x.data();
        p.y = y.data();
        p.act = QuantActivation::int8;
        REQUIRE(quant_linear(p).ok());
        std::vector<double> got(y.begin(), y.end());
        std::vector<double> w2(want.begin(), want.begin() + rows * N);
        CHECK(rel(got, w2) < 1e-6, "%s amx=%d N=%lld K=%lld gs=%lld rows=%lld strips=%d: %g",
              isa_name(isa), run.second, (long long)N, (long long)K, (long long)gs, (long long)rows,
              int(use_strips), rel(got, w2));
        if (rows == M) {
          if (first.empty()) first = y;
          CHECK(std::memcmp(first.data(), y.data(), y.size() * 4) == 0,
                "%s amx=%d M=%lld N=%lld K=%lld gs=%lld strips=%d: not bitwise equal",
                isa_name(isa), run.second, (long long)M, (long long)N, (long long)K, (long long)gs, int(use_strips));
        }
      }
    }
  }
}

// W4A8 (int4 weights, int8 activations): exact integer sums per group against a float64 loop, and
// bitwise the same on every ISA, over the AVX2 blocks (4 x 2, the 8-row GEMV and 1-3 rows of x,
// groups of 32, 64, 128, 256, 512 and one per row, with z * xsum in float and above 8192 in
// int32) and off them (K not a multiple of 64, groups of 48, row and column tails), with
// the extreme codes 0 and 15, zero points 0..16 and activations of +-127.
TF_TEST(quant_w4a8_exact_and_identical_across_isas) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Shape { int64_t M, N, K, gs; bool sym; };
  const Shape shapes[] = {{1, 8, 64, 32, false},    {1, 19, 256, 128, true},
                          {7, 21, 192, 64, false},  {5, 17, 128, 0, false},
                          {6, 9, 384, 128, false},  {3, 11, 96, 48, false},
                          {2, 13, 100, 0, true},    {9, 33, 512, 32, true},
                          // 2-3 rows of x together (rows_i4 with MX > 1), groups of 32 / 64+
                          {2, 11, 256, 32, true},   {3, 12, 128, 32, false},
                          {2, 9, 192, 64, true},    {3, 7, 256, 128, true},
                          // 8-row GEMV blocks with the next block prefetched, a 1-row tail;
                          // groups of 256 / 512 (4-step 16-bit sums) and 8 groups + a tail
                          {1, 37, 640, 128, false}, {1, 29, 512, 32, false},
                          {1, 17, 1024, 256, false}, {1, 16, 2048, 512, true},
                          {2, 21, 576, 64, false},
                          // AVX-512: 8 groups a pass with tails (G = 20), groups of 192 (a lone
                          // 64-block each), 4 + 1 rows of x (the AVX2 blocks, then one row)
                          {1, 6, 1280, 64, false},  {2, 5, 1152, 192, true},
                          {3, 4, 2560, 128, false}, {5, 7, 640, 128, false},
                          // groups above 8192: z * xsum in int32, not in float
                          {1, 11, 16384, 0, false}, {1, 9, 8192, 0, false},
                          // the strip layout: several strips (the last partial), 4-row blocks
                          // with 1-3 row tails, groups of 8 and 40 (10 groups: g % 8 wraps)
                          {6, 97, 256, 32, false},  {9, 70, 128, 64, true},
                          {1, 33, 400, 40, false},  {4, 64, 64, 8, true},
                          // AMX tiles where the CPU has them (16+ rows, the strips, K and groups
                          // in 64s): 32-row blocks with a tail, a partial last strip, G > 8
                          {16, 33, 128, 0, false},  {45, 70, 384, 128, true},
                          {33, 64, 256, 64, false}, {20, 50, 1280, 128, false},
                          // groups of 32 past 16 rows (the strips on vpdpbusd): G = 10
                          {20, 45, 320, 32, false}, {33, 64, 128, 32, true}};
  for (const Shape& sh : shapes) {
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    QW q = random_weight(rng, 4, N, K, sh.gs, sh.sym, false);
    // the extreme codes at each row's start: 0 then 15
    for (int64_t n = 0; n < N; ++n) q.q4[size_t(n * K / 2)] = 0xf0;
    std::vector<float> x(size_t(M * K));
    for (auto& v : x) v = rng.uniform(-3, 3);
    const int64_t G = q.w.groups();
    const std::vector<double> want =
        int8_activation_ref(q.w, x, M, 3, [&](int64_t n, int64_t k, int64_t g) {
          const uint8_t b = q.q4[size_t((n * K + k) / 2)];
          const int z = q.w.zeros ? q.zeros[size_t(n * G + g)] : 8;
          return int64_t((k & 1) ? b >> 4 : b & 15) - z;
        });
    std::vector<float> first;
    // every level, and the AVX-512 one again without AMX (a no-op where the CPU has none)
    std::vector<std::pair<Isa, int>> runs;
    for (Isa isa : isa_levels()) runs.push_back({isa, 1});
    if (isa_supported(Isa::avx512)) runs.push_back({Isa::avx512, 0});
    for (const auto& run : runs) {
      const Isa isa = run.first;
      set_isa(isa);
      tf::set_use_amx(run.second);
      std::vector<uint8_t> strips;
      const QuantWeight ws = with_strips(q.w, strips);
      for (bool use_strips : {false, true}) {
      std::vector<float> y(size_t(M * N), NAN);
      QuantLinearParams p;
      p.w = use_strips ? ws : q.w;
      p.M = M;
      p.x = x.data();
      p.y = y.data();
      p.act = QuantActivation::int8;
      REQUIRE(quant_linear(p).ok());
      std::vector<double> got(y.begin(), y.end());
      CHECK(rel(got, want) < 1e-6, "%s amx=%d M=%lld N=%lld K=%lld gs=%lld strips=%d: %g",
            isa_name(isa), run.second, (long long)M, (long long)N, (long long)K,
            (long long)sh.gs, int(use_strips), rel(got, want));
      if (first.empty()) first = y;
      CHECK(std::memcmp(first.data(), y.data(), y.size() * 4) == 0,
            "%s amx=%d K=%lld gs=%lld strips=%d: not bitwise equal", isa_name(isa), run.second,
            (long long)K, (long long)sh.gs, int(use_strips));
      }
    }
  }
}

// int4 dequantization in lane order (the float prefill's dot path): every ISA that offers it
// writes element 64b + 8i + j of the stored order at 64b + 8j + i, bitwise float(u - z) * s (the
// generic dequant's formula: a code equal to its zero point is exactly 0); groups of 32,
// 64, 128 and one per row, with and without zero points, ranges of one and several 64-blocks
// (the AVX-512 kernel takes them two at a time and hands a lone last one to the AVX2 kernel).
// Several rows of x through the table's gemv_f32_rows (AVX-512: two rows of x and two weight
// rows a pass, K sliced past 4096 with the totals carried) give bitwise each row's gemv_f32
// result, and the float64 product: odd row counts (a lone last weight row and row of x), every
// group size the kernel specialises, symmetric and with zero points, and two slices of K.
TF_TEST(quant_gemv_rows_bitwise_row_by_row) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Shape { int64_t M, N, K, gs; bool sym; };
  const Shape shapes[] = {{2, 7, 256, 128, true},   {3, 5, 384, 0, false},
                          {5, 9, 4224, 128, false}, {2, 3, 512, 256, true},
                          {3, 6, 640, 32, false},   {4, 1, 4352, 64, true},
                          {2, 4, 8448, 0, true}};
  for (const Shape& sh : shapes) {
    QW q = random_weight(rng, 4, sh.N, sh.K, sh.gs, sh.sym, false);
    const std::vector<double> w = dequant_ref(q.w);
    std::vector<float> x(size_t(sh.M * sh.K));
    for (auto& v : x) v = rng.uniform(-1, 1);
    // from 3 rows on, row 1 has a lone outlier: prep_x leaves it to the stored order, and the
    // rows on either side of it still pair up
    if (sh.M >= 3) x[size_t(sh.K + 5)] = 1e4f;
    for (const IsaForm& form : tf_test::isa_forms()) {
      const Isa isa = form.use();
      const quant_cpu::Kernels& k = quant_cpu::kernels_for(isa);
      const int64_t xn = quant_cpu::prep_x_floats(sh.K);
      std::vector<float> xd_buf(size_t(sh.M * xn + 15));
      float* xd = quant_cpu::align64(xd_buf.data());
      std::vector<const float*> xs(size_t(sh.M)), xds(size_t(sh.M), nullptr);
      std::vector<float> rows(size_t(sh.M * sh.N), NAN), one(size_t(sh.M * sh.N), NAN);
      std::vector<float*> ys(size_t(sh.M));
      for (int64_t m = 0; m < sh.M; ++m) {
        xs[size_t(m)] = x.data() + m * sh.K;
        if (k.prep_x && k.prep_x(q.w, xs[size_t(m)], xd + m * xn)) xds[size_t(m)] = xd + m * xn;
        ys[size_t(m)] = rows.data() + m * sh.N;
        k.gemv_f32(q.w, xs[size_t(m)], xds[size_t(m)], 0, sh.N, one.data() + m * sh.N);
      }
      quant_cpu::gemv_rows(k, q.w, xs.data(), xds.data(), sh.M, 0, sh.N, ys.data());
      CHECK(std::memcmp(rows.data(), one.data(), rows.size() * 4) == 0,
            "%s M=%lld K=%lld gs=%lld: rows together differ from row by row", form.name().c_str(),
            (long long)sh.M, (long long)sh.K, (long long)sh.gs);
      std::vector<double> want(rows.size()), got(rows.begin(), rows.end());
      for (int64_t m = 0; m < sh.M; ++m)
        for (int64_t n = 0; n < sh.N; ++n) {
          double t = 0;
          for (int64_t e = 0; e < sh.K; ++e)
            t += double(x[size_t(m * sh.K + e)]) * w[size_t(n * sh.K + e)];
          want[size_t(m * sh.N + n)] = t;
        }
      CHECK(rel(got, want) < 1e-5, "%s M=%lld K=%lld gs=%lld: %g", form.name().c_str(),
            (long long)sh.M, (long long)sh.K, (long long)sh.gs, rel(got, want));
    }
  }
}

TF_TEST(quant_dequant_lanes_identical_across_isas) {
  tf_test::Rng rng(tf_test::case_seed());
  struct Shape { int64_t N, K, gs; bool sym; int64_t k0, k1; };
  const Shape shapes[] = {{3, 256, 32, false, 0, 256},  {2, 448, 64, true, 64, 448},
                          {5, 512, 128, false, 128, 512}, {1, 192, 0, false, 0, 192},
                          {4, 1024, 256, true, 0, 1024}, {2, 128, 32, true, 64, 128}};
  for (const Shape& sh : shapes) {
    QW q = random_weight(rng, 4, sh.N, sh.K, sh.gs, sh.sym, false);
    const int64_t kc = sh.k1 - sh.k0, G = q.w.groups();
    std::vector<float> first;
    for (Isa isa : tf_test::isa_levels()) {
      const quant_cpu::Kernels& k = quant_cpu::kernels_for(isa);
      if (!k.dequant_lanes) continue;
      std::vector<float> out(size_t(sh.N * kc), NAN);
      k.dequant_lanes(q.w, 0, sh.N, sh.k0, sh.k1, out.data(), kc);
      for (int64_t n = 0; n < sh.N; ++n)
        for (int64_t e = sh.k0; e < sh.k1; ++e) {
          const int64_t b = e / 64 * 64, i = (e - b) / 8, j = (e - b) % 8;
          const int64_t g = e / q.w.group();
          const double s = q.scales[size_t(n * G + g)];
          const int z = q.w.zeros ? q.zeros[size_t(n * G + g)] : 8;
          const int u = (q.q4[size_t((n * sh.K + e) / 2)] >> (e % 2 * 4)) & 15;
          const float want = float(u - z) * float(s);
          const float got = out[size_t(n * kc + (b + 8 * j + i) - sh.k0)];
          CHECK(got == want,
                "%s K=%lld gs=%lld n=%lld e=%lld: %g, want %g", isa_name(isa), (long long)sh.K,
                (long long)sh.gs, (long long)n, (long long)e, got, want);
        }
      if (first.empty()) first = out;
      CHECK(std::memcmp(first.data(), out.data(), out.size() * 4) == 0,
            "%s K=%lld gs=%lld: not bitwise the first ISA's", isa_name(isa), (long long)sh.K,
            (long long)sh.gs);
    }
  }
}

// W8A8's per-token quantizer: every ISA's vector form gives bitwise the codes and scale of the
// formula (IEEE division, round half to even), on odd lengths, exact ties and zero rows; a row
// with a NaN or an infinity gets a NaN scale (its outputs are NaN, not a finite guess).
TF_TEST(quant_activations_match_formula_on_every_isa) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  for (int64_t K :
       {int64_t(1), int64_t(7), int64_t(16), int64_t(33), int64_t(127), int64_t(4099)}) {
    const int64_t M = 4;
    std::vector<float> x(size_t(M * K));
    for (auto& v : x) v = rng.uniform(-5, 5);
    // row 1: exact halves of the scale (ties go to even), the max pinned at 127 * 0.25
    for (int64_t k = 0; k < K; ++k) x[size_t(K + k)] = 0.25f * (float(k % 255) - 127.0f + 0.5f);
    x[size_t(K)] = 127.0f * 0.25f;
    // row 2: a NaN somewhere (K >= 7) or an infinity (shorter rows); row 3: all zero
    x[size_t(2 * K + K / 2)] = K >= 7 ? NAN : INFINITY;
    for (int64_t k = 0; k < K; ++k) x[size_t(3 * K + k)] = 0.0f;
    std::vector<int8_t> want(x.size());
    std::vector<float> want_s(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) {
      float amax = 0.0f;
      bool finite = true;
      for (int64_t k = 0; k < K; ++k) {
        const float a = std::fabs(x[size_t(m * K + k)]);
        if (a > amax) amax = a;
        finite = finite && std::isfinite(a);
      }
      const float sc = !finite ? NAN : amax > 0.0f ? amax / 127.0f : 1.0f;
      want_s[size_t(m)] = sc;
      for (int64_t k = 0; k < K; ++k) {
        const float v = std::nearbyint(x[size_t(m * K + k)] / sc);
        want[size_t(m * K + k)] =
            std::isnan(v) ? int8_t(-127) : int8_t(v < -127 ? -127 : v > 127 ? 127 : v);
      }
    }
    for (Isa isa : isa_levels()) {
      set_isa(isa);
      std::vector<int8_t> q(x.size(), int8_t(99));
      std::vector<float> s(static_cast<size_t>(M), NAN);
      quant_activations(x.data(), M, K, q.data(), s.data());
      for (int64_t m = 0; m < M; ++m)
        CHECK(std::memcmp(&s[size_t(m)], &want_s[size_t(m)], 4) == 0 ||
                  (std::isnan(s[size_t(m)]) && std::isnan(want_s[size_t(m)])),
              "K=%lld row %lld scale %g, want %g", (long long)K, (long long)m, s[size_t(m)],
              want_s[size_t(m)]);
      int64_t bad = 0;
      for (size_t i = 0; i < q.size(); ++i) bad += q[i] != want[i];
      CHECK(bad == 0, "K=%lld: %lld codes differ", (long long)K, (long long)bad);
    }
  }
}

TF_TEST(quant_quantize_error_bound) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t R = 6, K = 128;
  std::vector<float> w(size_t(R * K));
  for (auto& v : w) v = rng.uniform(-2, 2);
  struct C { int bits; int64_t gs; bool sym; };
  const C cases[] = {{8, 0, true}, {8, 32, true}, {4, 32, false}, {4, 64, true}, {4, 0, false}};
  for (const C& c : cases) {
    const int64_t G = c.gs ? K / c.gs : 1;
    std::vector<int8_t> q8(size_t(R * K));
    std::vector<uint8_t> q4(size_t(R * K / 2)), zeros(size_t(R * G));
    std::vector<float> scales(size_t(R * G));
    void* q = c.bits == 8 ? static_cast<void*>(q8.data()) : q4.data();
    REQUIRE(quant_quantize(w.data(), R, K, c.bits, c.gs, c.sym, q, scales.data(),
                           c.sym ? nullptr : zeros.data()).ok());
    QuantWeight qw;
    qw.bits = c.bits;
    qw.N = R;
    qw.K = K;
    qw.group_size = c.gs;
    qw.q = q;
    qw.scales = scales.data();
    qw.zeros = c.sym ? nullptr : zeros.data();
    const std::vector<double> d = dequant_ref(qw);
    const int64_t gl = qw.group();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K; ++k) {
        const double s = scales[size_t(r * G + k / gl)];
        const double e = std::fabs(d[size_t(r * K + k)] - w[size_t(r * K + k)]);
        CHECK(e <= s * 0.5 * (1 + 1e-5), "int%d gs=%lld: |error| %g > s/2 = %g", c.bits,
              (long long)c.gs, e, s / 2);
      }
  }
  // bad arguments are a Status, never a crash
  float s;
  int8_t q;
  CHECK(!quant_quantize(w.data(), 1, 3, 4, 0, false, &q, &s, nullptr).ok());   // K odd, int4
  CHECK(!quant_quantize(w.data(), 1, 128, 3, 0, true, &q, &s, nullptr).ok());  // bits
  CHECK(!quant_quantize(w.data(), 1, 128, 8, 48, true, &q, &s, nullptr).ok()); // group
  QuantLinearParams p;
  p.w.bits = 4;
  p.w.N = 1;
  p.w.K = 64;
  p.w.group_size = 32;
  p.act = QuantActivation::int8;
  CHECK(!quant_linear(p).ok());  // int8 activations need int8 weights
}

// Groups at the ends of float32's range: magnitudes near FLT_MAX (the asymmetric zero point's
// -lo * 15 / (hi - lo) overflowed float32 and gave an infinite or 15x too large scale) and below
// ~1e-43 (the scale underflows to 0: stored as a zero group, never a zero scale).
TF_TEST(quant_quantize_extreme_ranges) {
  const float big[4] = {3.4e38f, -3.4e38f, 1.0f, 2.0f}, large[4] = {1e38f, -1e38f, 1.0f, 2.0f};
  for (const float* w : {big, large})
    for (bool sym : {false, true}) {
      uint8_t q[2] = {0, 0}, z = 0;
      float s = 0;
      REQUIRE(quant_quantize(w, 1, 4, 4, 4, sym, q, &s, sym ? nullptr : &z).ok());
      CHECK(std::isfinite(s) && s > 0 && s < 1e38f, "sym=%d: scale %g", int(sym), s);
      const int zp = sym ? 8 : z;
      for (int k = 0; k < 2; ++k) {  // the two extremes come back within half a step
        const int u = (q[k / 2] >> (4 * (k % 2))) & 15;
        const double back = double(s) * (u - zp);
        CHECK(std::fabs(back - w[k]) <= 0.5 * s * (1 + 1e-6), "sym=%d k=%d: %g back as %g",
              int(sym), k, double(w[k]), back);
      }
    }
  const float tiny[4] = {1e-45f, -1e-45f, 1e-44f, 0.0f};
  int8_t q8[4];
  float s = 0;
  REQUIRE(quant_quantize(tiny, 1, 4, 8, 0, true, q8, &s, nullptr).ok());
  CHECK(s == 1.0f && q8[0] == 0 && q8[2] == 0, "tiny group: scale %g, codes %d %d", s, q8[0],
        q8[2]);
}

TF_TEST(quant_unpack_formats_from_spec) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t N = 16, K = 64;
  std::vector<uint8_t> u(size_t(N * K));  // codes u[n, k]
  for (auto& v : u) v = uint8_t(rng.below(16));
  auto want4 = [&](std::vector<uint8_t>& out) {
    out.assign(size_t(N * K / 2), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        out[size_t((n * K + k) / 2)] |= uint8_t(u[size_t(n * K + k)] << ((k & 1) * 4));
  };
  std::vector<uint8_t> want;
  want4(want);
  // GPTQ: int32 [K/8, N], element (8r + i, n) in bits 4i of word (r, n)
  std::vector<uint32_t> gptq(size_t(K / 8 * N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      gptq[size_t((k / 8) * N + n)] |= uint32_t(u[size_t(n * K + k)]) << (4 * (k % 8));
  // AWQ: int32 [K, N/8], nibble i holds column [0,2,4,6,1,3,5,7][i] of its group of 8
  const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<uint32_t> awq(size_t(K * N / 8), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < N / 8; ++c)
      for (int i = 0; i < 8; ++i)
        awq[size_t(k * (N / 8) + c)] |= uint32_t(u[size_t((8 * c + order[i]) * K + k)]) << (4 * i);
  // q4_0: per block of 32 along K: 2 bytes of scale, then qs[j] = e[j] | e[j + 16] << 4
  std::vector<uint8_t> q40(size_t(N * K / 32 * 18), 0xee);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < K / 32; ++b)
      for (int j = 0; j < 16; ++j)
        q40[size_t((n * (K / 32) + b) * 18 + 2 + j)] =
            uint8_t(u[size_t(n * K + b * 32 + j)] | (u[size_t(n * K + b * 32 + j + 16)] << 4));
  for (auto [fmt, src] : {std::pair<QuantFormat, const void*>{QuantFormat::gptq, gptq.data()},
                          {QuantFormat::awq, awq.data()}, {QuantFormat::q4_0, q40.data()}}) {
    std::vector<uint8_t> got(want.size(), 0x77);
    REQUIRE(quant_unpack(fmt, src, N, K, got.data()).ok());
    CHECK(got == want, "format %d", int(fmt));
  }
  // q8_0: the 32 int8 after each scale
  std::vector<uint8_t> q80(size_t(N * K / 32 * 34));
  for (auto& v : q80) v = uint8_t(rng.below(256));
  std::vector<int8_t> got8(size_t(N * K));
  REQUIRE(quant_unpack(QuantFormat::q8_0, q80.data(), N, K, got8.data()).ok());
  bool same = true;
  for (int64_t i = 0; i < N * K; ++i)
    same = same && uint8_t(got8[size_t(i)]) == q80[size_t((i / 32) * 34 + 2 + i % 32)];
  CHECK(same);
  // act-order permutation: stored position j holds feature perm[j]
  std::vector<int32_t> perm(static_cast<size_t>(K));
  // 37 is coprime to 64: a permutation
  for (int64_t k = 0; k < K; ++k) perm[size_t(k)] = int32_t((k * 37 + 5) % K);
  std::vector<uint8_t> permuted(want.size());
  REQUIRE(quant_permute4(want.data(), N, K, perm.data(), permuted.data()).ok());
  bool ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < K; ++j) {
      const int64_t k = perm[size_t(j)];
      const int got = (permuted[size_t((n * K + j) / 2)] >> ((j & 1) * 4)) & 15;
      ok = ok && got == u[size_t(n * K + k)];
    }
  CHECK(ok);
  perm[3] = int32_t(K);
  CHECK(!quant_permute4(want.data(), N, K, perm.data(), permuted.data()).ok());
  CHECK(!quant_unpack(QuantFormat::gptq, gptq.data(), N, 60, want.data()).ok());
}
