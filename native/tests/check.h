// The C++ checks' tiny framework: TF_TEST registers a case, CHECK records a failure and goes on,
// REQUIRE records one and leaves the case. Dependency-free on purpose (no gtest to download: the
// build machines have no network). The runner is test_main.cc.
//
//   TF_TEST(fp16_round_trip) {
//     CHECK(f32_to_fp16(1.0f) == 0x3c00, "got 0x%04x", f32_to_fp16(1.0f));
//   }
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/dtype.h"
#include "tensorfuse/fp16.h"

namespace tf_test {

using TestFn = void (*)();

// Adds a case to the registry (static initialisation, see TF_TEST).
struct Registrar {
  Registrar(const char* name, TestFn fn);
};

// Records a failed check of the running case. fmt/...: printf-style detail after one leading
// space (the macros prepend it, which keeps -Wformat quiet when the detail is left out).
void fail(const char* file, int line, const char* expr, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
// Counts a passed check (for the summary; cheap enough for exhaustive loops).
void pass();
// Failures of the running case so far.
int failures();

// The run's seed (TENSORFUSE_TEST_SEED, or from the clock) mixed with the running case's name,
// so a case sees the same data whichever cases run before it.
uint64_t case_seed();

// splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014):
// the same stream on every platform, unlike std::uniform_real_distribution.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t next_u32() { return uint32_t(next() >> 32); }
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) * 0x1p-24f; }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
};

// ||got - want||_2 / ||scale||_2 (the absolute norm when scale is all zeros); a NaN or inf in got
// gives infinity, so it never passes a tolerance. scale = want is the plain relative norm; for
// sums, scale = the sum of magnitudes (sum |a_k b_k|) keeps the measure meaningful when terms
// cancel, since float32 accumulation error is bounded relative to it (Higham, "Accuracy and
// Stability of Numerical Algorithms", 2nd ed., 3.1), not relative to the result.
inline double rel_norm_error(const std::vector<double>& got, const std::vector<double>& want,
                             const std::vector<double>& scale) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = got[i] - want[i];
    num += d * d;
    den += scale[i] * scale[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Element i of raw float32 / float16 / bfloat16 bytes: store rounds v to dt (fp16.h's reference
// conversions), load widens it back exactly. Raw bytes, so padded and strided buffers work too.
inline void store(uint8_t* p, tf::DType dt, int64_t i, float v) {
  uint16_t h;
  switch (dt) {
    case tf::DType::float16: h = tf::f32_to_fp16(v); std::memcpy(p + 2 * i, &h, 2); break;
    case tf::DType::bfloat16: h = tf::f32_to_bf16(v); std::memcpy(p + 2 * i, &h, 2); break;
    default: std::memcpy(p + 4 * i, &v, 4); break;
  }
}

inline double load(const uint8_t* p, tf::DType dt, int64_t i) {
  uint16_t h;
  float f;
  switch (dt) {
    case tf::DType::float16: std::memcpy(&h, p + 2 * i, 2); return tf::fp16_to_f32(h);
    case tf::DType::bfloat16: std::memcpy(&h, p + 2 * i, 2); return tf::bf16_to_f32(h);
    default: std::memcpy(&f, p + 4 * i, 4); return f;
  }
}

// The ISA levels this CPU runs (generic first): the kernel checks run at each in turn.
inline std::vector<tf::Isa> isa_levels() {
  std::vector<tf::Isa> out;
  for (tf::Isa isa : {tf::Isa::generic, tf::Isa::neon, tf::Isa::avx2, tf::Isa::avx512})
    if (tf::isa_supported(isa)) out.push_back(isa);
  return out;
}

// An ISA level with one of the x86 kernel forms that tf::fast_subnormals() picks between.
struct IsaForm {
  tf::Isa isa;
  int fast_subnormals;  // 1 / 0, -1: the vendor's choice (one form only: arm64, generic)
  // sets both; returns the level
  tf::Isa use() const {
    tf::set_isa(isa);
    tf::set_fast_subnormals(fast_subnormals);
    return isa;
  }
  std::string name() const {
    return std::string(tf::isa_name(isa)) +
           (fast_subnormals == 1 ? "/subnormal" : fast_subnormals == 0 ? "/normal" : "");
  }
};
// isa_levels(), each x86 SIMD level twice: the kernels that read codes as subnormal floats (as on
// AMD) and those with normal codes (as on Intel), whatever this CPU's vendor.
inline std::vector<IsaForm> isa_forms() {
  std::vector<IsaForm> out;
  for (tf::Isa isa : isa_levels()) {
    if (isa == tf::Isa::avx2 || isa == tf::Isa::avx512) {
      out.push_back({isa, 1});
      out.push_back({isa, 0});
    } else {
      out.push_back({isa, -1});
    }
  }
  return out;
}

// Restores the best ISA (and the vendor's kernel forms) when a case ends, REQUIRE's early return
// included.
struct IsaGuard {
  ~IsaGuard() {
    tf::set_isa(tf::best_isa());
    tf::set_fast_subnormals(-1);
    tf::set_fast_bf16_dot(-1);
    tf::set_use_amx(-1);
  }
};

}  // namespace tf_test

#define TF_TEST(name)                                                   \
  static void tf_test_##name();                                         \
  static ::tf_test::Registrar tf_test_reg_##name(#name, tf_test_##name); \
  static void tf_test_##name()

// CHECK(cond) or CHECK(cond, "fmt", args...): a failure is printed with file:line and the case
// goes on. The " " prefix lets the format be omitted.
#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (cond)                                                                \
      ::tf_test::pass();                                                     \
    else                                                                     \
      ::tf_test::fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);            \
  } while (0)

// As CHECK, but leaves the case on failure (for checks later code depends on).
#define REQUIRE(cond, ...)                                                   \
  do {                                                                       \
    if (cond) {                                                              \
      ::tf_test::pass();                                                     \
    } else {                                                                 \
      ::tf_test::fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);            \
      return;                                                                \
    }                                                                        \
  } while (0)
