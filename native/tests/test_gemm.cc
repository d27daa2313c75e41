// tf::gemm (include/tensorfuse/gemm.h) against a float64 triple loop, at every ISA level this CPU
// runs: odd sizes around the micro-tile (6 x 16) and the cache blocks (kMC 96, kKC 256, kNC 2048),
// both B layouts, every float dtype in and out, bias + activations, packed B reused, padded
// strides, thread caps. Inputs are random (seeded, see check.h) and rounded to their dtype first,
// so the reference sees exactly what the kernel sees; outputs start as NaN so a skipped element
// fails; padding is NaN too, so a read past a row's end poisons the result.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/gemm/gemm_kernels.h"
#include "check.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/gemm.h"

using namespace tf;

namespace {

constexpr DType kFloats[] = {DType::float32, DType::float16, DType::bfloat16};

using tf_test::isa_levels;
using tf_test::IsaGuard;
using tf_test::load;
using tf_test::store;

// A NaN of `dt` in every element of raw.
void fill_nan(std::vector<uint8_t>& raw, DType dt) {
  for (int64_t i = 0; i < int64_t(raw.size() / dtype_size(dt)); ++i) store(raw.data(), dt, i, NAN);
}

// rows x cols of dt with row stride ld; val holds the decoded values, dense.
struct Mat {
  DType dt = DType::float32;
  int64_t rows = 0, cols = 0, ld = 0;
  std::vector<uint8_t> raw;
  std::vector<double> val;
};

Mat random_mat(DType dt, int64_t rows, int64_t cols, int64_t ld, tf_test::Rng& rng) {
  Mat m;
  m.dt = dt, m.rows = rows, m.cols = cols, m.ld = ld;
  m.raw.resize(size_t(rows * ld) * dtype_size(dt) + 64);
  fill_nan(m.raw, dt);
  m.val.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      store(m.raw.data(), dt, r * ld + c, rng.uniform(-1.0f, 1.0f));
      m.val[size_t(r * cols + c)] = load(m.raw.data(), dt, r * ld + c);
    }
  return m;
}

double act_ref(double v, Activation act) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0 ? v : 0;
    case Activation::gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));  // erf form
    case Activation::silu: return v / (1.0 + std::exp(-v));
  }
  return v;
}

const char* act_name(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::silu: return "silu";
  }
  return "?";
}

struct Problem {
  int64_t M = 1, N = 1, K = 1;
  bool trans_b = false;
  DType a_dt = DType::float32, b_dt = DType::float32, c_dt = DType::float32;
  bool bias = false;
  Activation act = Activation::none;
  int64_t lda_pad = 0, ldb_pad = 0, ldc_pad = 0;
  int max_threads = 0;
};

// The inputs and the float64 answer of one problem.
struct Fixture {
  Problem p;
  Mat a, b;  // a: M x K; b: trans_b ? N x K : K x N
  std::vector<float> bias;
  std::vector<double> want;   // M x N
  std::vector<double> scale;  // M x N: sum_k |A(i,k) B(k,j)| + |bias[j]|, the error's yardstick
};

// want = act(A * op(B) + bias) in float64, from the decoded inputs.
void compute_want(Fixture& f) {
  const Problem& p = f.p;
  f.want.assign(size_t(p.M * p.N), 0.0);
  f.scale.assign(size_t(p.M * p.N), 0.0);
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t j = 0; j < p.N; ++j) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < p.K; ++k) {
        const double t = f.a.val[size_t(i * p.K + k)] *
                         (p.trans_b ? f.b.val[size_t(j * p.K + k)] : f.b.val[size_t(k * p.N + j)]);
        s += t;
        mag += std::fabs(t);
      }
      const double bias = p.bias ? double(f.bias[size_t(j)]) : 0.0;
      f.want[size_t(i * p.N + j)] = act_ref(s + bias, p.act);
      f.scale[size_t(i * p.N + j)] = mag + std::fabs(bias);
    }
}

Fixture make_fixture(const Problem& p, tf_test::Rng& rng) {
  Fixture f;
  f.p = p;
  f.a = random_mat(p.a_dt, p.M, p.K, p.K + p.lda_pad, rng);
  f.b = p.trans_b ? random_mat(p.b_dt, p.N, p.K, p.K + p.ldb_pad, rng)
                  : random_mat(p.b_dt, p.K, p.N, p.N + p.ldb_pad, rng);
  if (p.bias)
    for (int64_t j = 0; j < p.N; ++j) f.bias.push_back(rng.uniform(-1.0f, 1.0f));
  compute_want(f);
  return f;
}

// Tolerance of the relative-norm error against `scale`: float32 accumulation (about
// sqrt(K) * 2^-24, at most K * 2^-24), then one rounding to the output type (half an ulp:
// 2^-11 for fp16, 2^-8 for bf16 in the worst element).
double tolerance(DType c_dt) {
  switch (c_dt) {
    case DType::float16: return 1e-3;
    case DType::bfloat16: return 4e-3;
    default: return 1e-5;
  }
}

// Runs gemm on the fixture (with `packed` in place of B when given) and checks the result.
void run_and_check(const Fixture& f, const PackedB* packed, const char* label) {
  const Problem& p = f.p;
  const int64_t ldc = p.N + p.ldc_pad;
  std::vector<uint8_t> c(size_t(p.M * ldc) * dtype_size(p.c_dt) + 64);
  fill_nan(c, p.c_dt);
  const std::vector<uint8_t> c_before = c;

  GemmParams g;
  g.M = p.M, g.N = p.N, g.K = p.K;
  g.a = f.a.raw.data(), g.a_dtype = p.a_dt, g.lda = f.a.ld;
  g.b = f.b.raw.data(), g.b_dtype = p.b_dt, g.ldb = f.b.ld, g.trans_b = p.trans_b;
  g.packed_b = packed;
  g.c = c.data(), g.c_dtype = p.c_dt, g.ldc = ldc;
  g.bias = p.bias ? f.bias.data() : nullptr;
  g.act = p.act;
  g.max_threads = p.max_threads;
  const Status s = gemm(g);

  char what[256];
  std::snprintf(what, sizeof what,
                "%s isa=%s M=%lld N=%lld K=%lld trans_b=%d a=%s b=%s c=%s bias=%d act=%s "
                "pads=%lld/%lld/%lld threads=%d%s",
                label, isa_name(active_isa()), (long long)p.M, (long long)p.N, (long long)p.K,
                int(p.trans_b), dtype_name(p.a_dt), dtype_name(p.b_dt), dtype_name(p.c_dt),
                int(p.bias), act_name(p.act), (long long)p.lda_pad, (long long)p.ldb_pad,
                (long long)p.ldc_pad, p.max_threads, packed ? " packed" : "");
  REQUIRE(s.ok(), "%s: status %s: %s", what, status_code_name(s.code), s.message.c_str());

  std::vector<double> got(size_t(p.M * p.N));
  int64_t pad_touched = 0;
  const size_t esz = dtype_size(p.c_dt);
  for (int64_t i = 0; i < p.M; ++i) {
    for (int64_t j = 0; j < p.N; ++j)
      got[size_t(i * p.N + j)] = load(c.data(), p.c_dt, i * ldc + j);
    for (int64_t j = p.N; j < ldc; ++j) {
      const size_t at = size_t(i * ldc + j) * esz;
      pad_touched += std::memcmp(&c[at], &c_before[at], esz) != 0;
    }
  }
  const double err = tf_test::rel_norm_error(got, f.want, f.scale);
  CHECK(err <= tolerance(p.c_dt), "%s: relative error %.3g > %.3g", what, err, tolerance(p.c_dt));
  CHECK(pad_touched == 0, "%s: %lld elements written between N and ldc", what,
        (long long)pad_touched);
}

// The fixture at every ISA level.
void check_all_isas(const Fixture& f, const char* label) {
  IsaGuard guard;
  for (Isa isa : isa_levels()) {
    set_isa(isa);
    run_and_check(f, nullptr, label);
    if (isa != Isa::avx512) continue;
    // the AVX-512 level's other bfloat16 kernels: vdpbf16ps tiles (picked on AMD) and the
    // widened float32 path, with AMX off (no-ops where the CPU has neither)
    set_use_amx(0);
    for (int dot : {1, 0}) {
      set_fast_bf16_dot(dot);
      run_and_check(f, nullptr, label);
    }
    set_use_amx(-1);
    set_fast_bf16_dot(-1);
  }
}

}  // namespace

// Every (M, N, K) in {1, 7, 33, 127, 300}^3, both B layouts, float32, no epilogue: the blocking
// and edge-tile logic (M = 1 is the GEMV path; 127, 300 cross kMC; 300 crosses kKC).
TF_TEST(gemm_shapes_f32) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t sizes[] = {1, 7, 33, 127, 300};
  for (int64_t M : sizes)
    for (int64_t N : sizes)
      for (int64_t K : sizes)
        for (bool trans_b : {false, true}) {
          Problem p;
          p.M = M, p.N = N, p.K = K, p.trans_b = trans_b;
          check_all_isas(make_fixture(p, rng), "shapes");
        }
}

// Shapes with enough tiles for the AVX-512 level's tiles of 2 * kMC rows (the last one short),
// with odd sizes across kKC, padded strides, both B layouts, 1 and 2 threads, a bias.
TF_TEST(gemm_wide_tiles) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t shapes[][3] = {{401, 523, 517}, {193, 1100, 257}, {769, 260, 33}};
  for (auto& s : shapes)
    for (bool trans_b : {false, true})
      for (int threads : {1, 2}) {
        Problem p;
        p.M = s[0], p.N = s[1], p.K = s[2], p.trans_b = trans_b;
        p.lda_pad = rng.below(3) * 3, p.ldb_pad = rng.below(3) * 5, p.ldc_pad = rng.below(2) * 2;
        p.bias = rng.below(2) == 1;
        p.max_threads = threads;
        check_all_isas(make_fixture(p, rng), "wide tiles");
      }
}

// The rows path (float32 B stored [N, K]: 16 <= M <= 48, and up to 128 where the ISA pairs
// panels): whole 16-row panels of x with and without the dot_t remainder rows, panels in pairs
// and a lone last one, N around the 12-row groups and the task split, K across the 256-deep
// slices, padded strides, bias and activations, a 16-bit output, thread caps; 129 rows is past
// it (the blocked path).
TF_TEST(gemm_rows_path) {
  tf_test::Rng rng(tf_test::case_seed());
  for (int64_t M : {16, 17, 31, 32, 45, 48, 61, 64, 100, 128, 129})
    for (int64_t N : {1, 11, 12, 13, 49, 100})
      for (int64_t K : {1, 7, 256, 257, 600}) {
        Problem p;
        p.M = M, p.N = N, p.K = K, p.trans_b = true;
        p.lda_pad = rng.below(3) * 3, p.ldb_pad = rng.below(3) * 5, p.ldc_pad = rng.below(2) * 2;
        p.bias = rng.below(2) == 1;
        p.act = rng.below(2) == 1 ? Activation::gelu : Activation::none;
        p.c_dt = rng.below(4) == 0 ? DType::bfloat16 : DType::float32;
        p.max_threads = int(rng.below(3));
        check_all_isas(make_fixture(p, rng), "rows path");
      }
}

// Few rows against B stored [K, N] (2 <= M <= 16 on the AVX2 / AVX-512 tables: gemv_n_rows, B
// read row by row into per-chunk partials): rows of x in and past the 4-row passes, N around
// the 8 / 16-wide vectors and the column blocks, K around the 4-row steps and the 256-deep
// chunks, padded strides, bias and activations, 16-bit A, B and output, thread caps.
TF_TEST(gemm_few_rows_b_kn) {
  tf_test::Rng rng(tf_test::case_seed());
  for (int64_t M : {2, 3, 5, 8, 13, 16})
    for (int64_t N : {1, 15, 17, 1030})
      for (int64_t K : {1, 3, 4, 7, 257, 600}) {
        Problem p;
        p.M = M, p.N = N, p.K = K, p.trans_b = false;
        p.lda_pad = rng.below(3) * 3, p.ldb_pad = rng.below(3) * 5, p.ldc_pad = rng.below(2) * 2;
        p.bias = rng.below(2) == 1;
        p.act = rng.below(2) == 1 ? Activation::gelu : Activation::none;
        p.c_dt = rng.below(4) == 0 ? DType::bfloat16 : DType::float32;
        p.a_dt = rng.below(4) == 0 ? DType::float16 : DType::float32;
        const int64_t bt = rng.below(4);  // B widened in registers too
        p.b_dt = bt == 0 ? DType::float16 : bt == 1 ? DType::bfloat16 : DType::float32;
        p.max_threads = int(rng.below(3));
        check_all_isas(make_fixture(p, rng), "few rows, B [K, N]");
      }
}

// Every combination of float dtypes for A, B and C, with padded strides and thread caps.
TF_TEST(gemm_dtypes) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t shapes[][3] = {{33, 127, 300}, {1, 300, 127}, {300, 33, 7}, {7, 17, 257}};
  for (auto& s : shapes)
    for (DType a : kFloats)
      for (DType b : kFloats)
        for (DType c : kFloats)
          for (bool trans_b : {false, true}) {
            Problem p;
            p.M = s[0], p.N = s[1], p.K = s[2], p.trans_b = trans_b;
            p.a_dt = a, p.b_dt = b, p.c_dt = c;
            p.lda_pad = rng.below(3) * 3, p.ldb_pad = rng.below(3) * 5;
            p.ldc_pad = rng.below(2) * 2;
            p.max_threads = int(rng.below(3));
            check_all_isas(make_fixture(p, rng), "dtypes");
          }
}

// bfloat16 A and B from 32 rows (on AVX512-BF16: the vdpbf16ps tiles; linear up to 1024 rows
// with x packed by pairs of k and the weight read in place, past that and matmul B packed):
// odd K (the rank-1 last k, K = 1 alone), K past one 512-deep slice, N past one 1024-column
// block and off the 64-column tiles, M off the 6-row micro-panels and the 96-row tiles, both B
// layouts, the epilogue, every output dtype.
TF_TEST(gemm_bf16_tiles) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t shapes[][3] = {{32, 64, 2}, {33, 17, 1}, {97, 1100, 515}, {200, 63, 1030},
                               {41, 130, 7}, {260, 70, 1030}, {1030, 40, 67},
                               // K in steps of 32 (AMX's weight-rows path for linear): weight
                               // blocks of 32 with a short last one, 16-row panels of x with tails
                               {45, 70, 96}, {130, 33, 256}, {16, 100, 64}, {77, 64, 1024}};
  for (auto& s : shapes)
    for (bool trans_b : {false, true}) {
      Problem p;
      p.M = s[0], p.N = s[1], p.K = s[2], p.trans_b = trans_b;
      p.a_dt = p.b_dt = DType::bfloat16;
      p.c_dt = kFloats[rng.below(3)];
      p.bias = rng.below(2) == 1;
      p.act = rng.below(2) == 1 ? Activation::gelu : Activation::none;
      p.lda_pad = rng.below(3) * 3, p.ldb_pad = rng.below(3) * 5;
      p.ldc_pad = rng.below(2) * 2;
      p.max_threads = int(rng.below(3));
      check_all_isas(make_fixture(p, rng), "bf16 tiles");
    }
}

// Bias and each activation, in the blocked path and the GEMV path, with 16-bit outputs too.
TF_TEST(gemm_epilogue) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t shapes[][3] = {{7, 33, 127}, {1, 127, 33}, {127, 300, 1}, {33, 7, 300}};
  for (auto& s : shapes)
    for (bool bias : {false, true})
      for (Activation act :
           {Activation::none, Activation::relu, Activation::gelu, Activation::silu})
        for (DType c : kFloats) {
          Problem p;
          p.M = s[0], p.N = s[1], p.K = s[2], p.bias = bias, p.act = act, p.c_dt = c;
          p.trans_b = rng.below(2) == 1;
          check_all_isas(make_fixture(p, rng), "epilogue");
        }
}

// K = 0: C = act(bias) everywhere; M = 0 or N = 0: nothing is written.
TF_TEST(gemm_empty_sizes) {
  IsaGuard guard;
  for (Isa isa : isa_levels()) {
    set_isa(isa);
    Problem p;
    p.M = 5, p.N = 19, p.K = 0, p.bias = true, p.act = Activation::gelu;
    tf_test::Rng rng(tf_test::case_seed());
    run_and_check(make_fixture(p, rng), nullptr, "K=0");
    float c = NAN, a = 1, b = 1;
    GemmParams g;
    g.M = 0, g.N = 1, g.K = 1, g.a = &a, g.lda = 1, g.b = &b, g.ldb = 1, g.c = &c, g.ldc = 1;
    CHECK(gemm(g).ok() && std::isnan(c), "M=0 wrote the output");
    g.M = 1, g.N = 0;
    CHECK(gemm(g).ok() && std::isnan(c), "N=0 wrote the output");
  }
}

// A B packed once serves many A's (the weight case), across ISA levels (gemm falls back to the
// kernels the pack was made for), and across the kNC = 2048 column block.
TF_TEST(gemm_pack_b_reuse) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  struct Shape { int64_t N, K; bool trans_b; DType b_dt; };
  const Shape shapes[] = {{300, 300, false, DType::float32}, {127, 33, true, DType::float16},
                          {2100, 40, true, DType::bfloat16}, {17, 257, false, DType::float32}};
  for (const Shape& s : shapes) {
    for (Isa pack_isa : isa_levels()) {
      Problem p;  // M is set per use below
      p.N = s.N, p.K = s.K, p.trans_b = s.trans_b, p.b_dt = s.b_dt, p.bias = true;
      p.act = Activation::silu;
      Fixture f = make_fixture(p, rng);
      set_isa(pack_isa);
      std::unique_ptr<PackedB, void (*)(PackedB*)> packed(nullptr, [](PackedB*) {});
      const Status st = gemm_pack_b(f.b.raw.data(), s.b_dt, f.b.ld, s.trans_b, s.K, s.N, &packed);
      REQUIRE(st.ok(), "gemm_pack_b: %s", st.message.c_str());
      CHECK(packed_b_bytes(packed.get()) >= int64_t(s.N * s.K * 4));
      for (int64_t M : {1, 7, 300}) {
        // A fresh A for each M, all against the same packed B.
        Fixture g = f;
        g.p.M = M;
        g.p.a_dt = M == 7 ? DType::bfloat16 : DType::float32;
        g.a = random_mat(g.p.a_dt, M, s.K, s.K, rng);
        compute_want(g);
        for (Isa run_isa : isa_levels()) {
          set_isa(run_isa);
          const std::string label = std::string("packed under ") + isa_name(pack_isa);
          run_and_check(g, packed.get(), label.c_str());
        }
      }
    }
  }
}

// Bad arguments come back as a Status with the right code, never as a crash.
// The optional row-major-A micro-kernel (attention's P V reads P in place): every ISA that has
// one matches a float64 loop and, bitwise, its packed kernel on the same A (same FMA order), for
// depths 1, 7, 33, 127, overwrite and accumulate, with NaN in the columns past kc of each A row.
TF_TEST(gemm_kernel_rows_matches_packed_kernel) {
  tf_test::Rng rng(tf_test::case_seed());
  using gemm_cpu::kMR;
  using gemm_cpu::kNR;
  for (Isa isa : isa_levels()) {
    const gemm_cpu::Kernels& k = gemm_cpu::kernels_for(isa);
    if (!k.kernel_rows) continue;
    for (int64_t kc : {int64_t(1), int64_t(7), int64_t(33), int64_t(127)}) {
      const int64_t lda = kc + 5, ldc = kNR + 3;
      std::vector<float> a(size_t(kMR * lda), NAN), apan(size_t(kMR * kc)), b(size_t(kc * kNR));
      for (int64_t i = 0; i < kMR; ++i)
        for (int64_t kk = 0; kk < kc; ++kk) {
          a[size_t(i * lda + kk)] = rng.uniform(-1, 1);
          apan[size_t(kk * kMR + i)] = a[size_t(i * lda + kk)];
        }
      for (auto& v : b) v = rng.uniform(-1, 1);
      // 32-byte aligned B panel, as the packed layout promises
      std::unique_ptr<float[]> bal(new float[b.size() + 8]);
      float* bp = bal.get() + (8 - (reinterpret_cast<uintptr_t>(bal.get()) / 4) % 8) % 8;
      std::memcpy(bp, b.data(), b.size() * 4);
      for (bool acc : {false, true}) {
        std::vector<float> c0(size_t(kMR * ldc)), c1;
        for (auto& v : c0) v = rng.uniform(-1, 1);
        c1 = c0;
        const std::vector<float> cin = c0;
        k.kernel(kc, apan.data(), bp, c0.data(), ldc, acc);
        k.kernel_rows(kc, a.data(), lda, bp, c1.data(), ldc, acc);
        double err = 0, ref = 0;
        for (int64_t i = 0; i < kMR; ++i)
          for (int64_t j = 0; j < kNR; ++j) {
            double want = acc ? cin[size_t(i * ldc + j)] : 0.0;
            for (int64_t kk = 0; kk < kc; ++kk)
              want += double(a[size_t(i * lda + kk)]) * b[size_t(kk * kNR + j)];
            err += std::pow(c1[size_t(i * ldc + j)] - want, 2);
            ref += want * want;
          }
        CHECK(std::memcmp(c0.data(), c1.data(), c0.size() * 4) == 0, "kc=%lld acc=%d: not bitwise",
              (long long)kc, int(acc));
        CHECK(std::sqrt(err / ref) < 1e-6, "kc=%lld acc=%d: rel err %g", (long long)kc, int(acc),
              std::sqrt(err / ref));
      }
      // kernel2_rows against kernel2: the same two B panels (the second one after the first)
      if (!k.kernel2_rows) continue;
      std::unique_ptr<float[]> bal2(new float[2 * b.size() + 16]);
      float* bp2 = bal2.get() + (16 - (reinterpret_cast<uintptr_t>(bal2.get()) / 4) % 16) % 16;
      for (size_t i = 0; i < 2 * b.size(); ++i) bp2[i] = rng.uniform(-1, 1);
      for (bool acc : {false, true}) {
        const int64_t ld2 = 2 * kNR + 1;
        std::vector<float> c0(size_t(kMR * ld2)), c1;
        for (auto& v : c0) v = rng.uniform(-1, 1);
        c1 = c0;
        k.kernel2(kc, apan.data(), bp2, bp2 + kc * kNR, c0.data(), ld2, acc);
        k.kernel2_rows(kc, a.data(), lda, bp2, bp2 + kc * kNR, c1.data(), ld2, acc);
        CHECK(std::memcmp(c0.data(), c1.data(), c0.size() * 4) == 0,
              "kernel2_rows kc=%lld acc=%d: not bitwise kernel2", (long long)kc, int(acc));
      }
      // kernel4 / kernel4_rows against kernel2 twice: four panels ps apart (ps past kc * kNR)
      if (!k.kernel4) continue;
      const int64_t ps = kc * kNR + 16;
      std::unique_ptr<float[]> bal4(new float[size_t(4 * ps) + 16]);
      float* bp4 = bal4.get() + (16 - (reinterpret_cast<uintptr_t>(bal4.get()) / 4) % 16) % 16;
      for (int64_t i = 0; i < 4 * ps; ++i) bp4[i] = rng.uniform(-1, 1);
      for (bool acc : {false, true}) {
        const int64_t ld4 = 4 * kNR + 3;
        std::vector<float> c0(size_t(kMR * ld4)), c1, c2;
        for (auto& v : c0) v = rng.uniform(-1, 1);
        c1 = c2 = c0;
        k.kernel2(kc, apan.data(), bp4, bp4 + ps, c0.data(), ld4, acc);
        k.kernel2(kc, apan.data(), bp4 + 2 * ps, bp4 + 3 * ps, c0.data() + 2 * kNR, ld4, acc);
        k.kernel4(kc, apan.data(), bp4, ps, c1.data(), ld4, acc);
        k.kernel4_rows(kc, a.data(), lda, bp4, ps, c2.data(), ld4, acc);
        CHECK(std::memcmp(c0.data(), c1.data(), c0.size() * 4) == 0,
              "kernel4 kc=%lld acc=%d: not bitwise kernel2", (long long)kc, int(acc));
        CHECK(std::memcmp(c0.data(), c2.data(), c0.size() * 4) == 0,
              "kernel4_rows kc=%lld acc=%d: not bitwise kernel2", (long long)kc, int(acc));
      }
    }
  }
}

TF_TEST(gemm_argument_errors) {
  float a[4] = {}, b[4] = {}, c[4] = {};
  GemmParams g;
  g.M = 2, g.N = 2, g.K = 2, g.a = a, g.lda = 2, g.b = b, g.ldb = 2, g.c = c, g.ldc = 2;
  CHECK(gemm(g).ok());
  GemmParams bad = g;
  bad.a_dtype = DType::int8;
  CHECK(gemm(bad).code == StatusCode::dtype);
  bad = g;
  bad.ldc = 1;
  CHECK(gemm(bad).code == StatusCode::arg);
  bad = g;
  bad.M = -1;
  CHECK(gemm(bad).code == StatusCode::shape);
  bad = g;
  bad.b = nullptr;
  CHECK(gemm(bad).code == StatusCode::arg);
  std::unique_ptr<PackedB, void (*)(PackedB*)> packed(nullptr, [](PackedB*) {});
  REQUIRE(gemm_pack_b(b, DType::float32, 2, false, 2, 2, &packed).ok());
  bad = g;
  bad.packed_b = packed.get();
  bad.N = 1;
  CHECK(gemm(bad).code == StatusCode::shape, "a packed B used for another shape");
  CHECK(gemm_pack_b(b, DType::int32, 2, false, 2, 2, &packed).code == StatusCode::dtype);
  CHECK(gemm_pack_b(b, DType::float32, 2, false, 0, 2, &packed).code == StatusCode::shape);
}
