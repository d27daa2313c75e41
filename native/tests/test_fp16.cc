// Scalar fp16 / bf16 <-> float32 (include/tensorfuse/fp16.h) against references written from
// the format definitions (IEEE 754-2008 3.6 binary16; bfloat16 = the top half of binary32), not
// from the bit tricks the implementation uses: values by ldexp, rounding by comparing distances.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>

#include "check.h"
#include "tensorfuse/fp16.h"

using namespace tf;

namespace {

// Value of a finite binary16 pattern: (-1)^s * m * 2^-24 (subnormal) or (1024 + m) * 2^(e - 25).
double fp16_value(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(1024 + m), e - 25);
  return (h & 0x8000) ? -v : v;
}

// Magnitude used for rounding: 0x7c00 counts as 2^16, the next binade's first value, so that
// "round to nearest, ties to even, then overflow" falls out of the same comparison (IEEE 754
// 4.3.1: a result that rounds beyond the largest finite number with unbounded exponent is inf).
double fp16_magnitude(uint16_t h) { return h == 0x7c00 ? 65536.0 : fp16_value(h); }

// Nearest binary16 to finite-or-infinite f, ties to the even pattern: a binary search over the
// positive patterns (ordered like their values), then a comparison of the two neighbours.
uint16_t fp16_round_ref(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(double(f));
  if (a >= 65536.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7c00;  // invariant: magnitude(lo) <= a < magnitude(hi)
  while (hi - lo > 1) {
    const uint16_t mid = uint16_t((lo + hi) / 2);
    if (fp16_magnitude(mid) <= a) lo = mid; else hi = mid;
  }
  const double d_lo = a - fp16_magnitude(lo), d_hi = fp16_magnitude(hi) - a;
  const uint16_t pick = d_lo < d_hi ? lo : d_hi < d_lo ? hi : ((lo & 1) ? hi : lo);
  return sign | pick;
}

// Nearest bfloat16: keep the top 16 bits, round the dropped 16 to nearest, ties to even.
uint16_t bf16_round_ref(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t upper = u >> 16, rem = u & 0xffffu;
  const bool up = rem > 0x8000u || (rem == 0x8000u && (upper & 1u));
  return uint16_t(upper + (up ? 1u : 0u));  // a carry into the exponent is the right answer
}

bool is_nan_f32(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

// The NaN f32_to_fp16 must give for NaN bits u: sign kept, quiet bit set, top payload bits kept
// (what F16C's vcvtps2ph does, Intel SDM vol. 2, VCVTPS2PH).
uint16_t fp16_nan_of(uint32_t u) {
  return uint16_t(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
}

// One f32 -> fp16 conversion checked against the reference (NaN handled apart).
void check_to_fp16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t got = f32_to_fp16(f);
  const uint16_t want = is_nan_f32(u) ? fp16_nan_of(u) : fp16_round_ref(f);
  CHECK(got == want, "f32 0x%08x (%.9g): got 0x%04x, want 0x%04x", u, double(f), got, want);
}

void check_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t got = f32_to_bf16(f);
  const uint16_t want = is_nan_f32(u) ? uint16_t((u >> 16) | 0x40u) : bf16_round_ref(f);
  CHECK(got == want, "f32 0x%08x (%.9g): got 0x%04x, want 0x%04x", u, double(f), got, want);
}

}  // namespace

// Every binary16 pattern decodes to its value, and back to itself (NaNs to their quiet form).
TF_TEST(fp16_all_patterns_round_trip) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float f = fp16_to_f32(h);
    const uint32_t fb = f32_bits(f);
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    const bool inf = (h & 0x7fff) == 0x7c00;
    if (nan) {
      const uint32_t want =
          (uint32_t(h & 0x8000) << 16) | 0x7fc00000u | (uint32_t(h & 0x3ff) << 13);
      CHECK(fb == want, "fp16 0x%04x -> f32 0x%08x, want 0x%08x", h, fb, want);
      CHECK(f32_to_fp16(f) == (h | 0x200), "fp16 NaN 0x%04x came back as 0x%04x", h,
            f32_to_fp16(f));
    } else if (inf) {
      CHECK(std::isinf(f) && std::signbit(f) == bool(h & 0x8000), "fp16 0x%04x -> %g", h,
            double(f));
      CHECK(f32_to_fp16(f) == h);
    } else {
      CHECK(double(f) == fp16_value(h) && std::signbit(f) == bool(h & 0x8000),
            "fp16 0x%04x -> %.9g, want %.9g", h, double(f), fp16_value(h));
      CHECK(f32_to_fp16(f) == h, "fp16 0x%04x came back as 0x%04x", h, f32_to_fp16(f));
    }
  }
}

// The cases worth naming, as documentation of the rounding rules.
TF_TEST(fp16_named_cases) {
  struct Case { float f; uint16_t want; const char* why; };
  const Case cases[] = {
      {0.0f, 0x0000, "zero"},
      {-0.0f, 0x8000, "negative zero keeps its sign"},
      {1.0f, 0x3c00, "one"},
      {65504.0f, 0x7bff, "largest finite"},
      {65519.99f, 0x7bff, "just below the overflow midpoint"},
      {65520.0f, 0x7c00, "the midpoint 65520 ties to even: inf"},
      {1e9f, 0x7c00, "overflow to inf"},
      {-1e9f, 0xfc00, "negative overflow to -inf"},
      {std::numeric_limits<float>::infinity(), 0x7c00, "inf"},
      {0x1p-14f, 0x0400, "smallest normal"},
      {0x1p-14f - 0x1p-25f, 0x0400, "tie between largest subnormal and smallest normal: even"},
      {0x1p-24f, 0x0001, "smallest subnormal"},
      {0x1p-25f, 0x0000, "half the smallest subnormal ties to even zero"},
      {0x1.000002p-25f, 0x0001, "just above half rounds up"},
      {0x1.8p-24f, 0x0002, "1.5 subnormal units tie to even 2"},
      {0x1.4p-23f, 0x0002, "2.5 subnormal units tie to even 2"},
      {1.0f + 0x1p-11f, 0x3c00, "tie at 1 + half ulp: even 1.0"},
      {1.0f + 3 * 0x1p-11f, 0x3c02, "tie at 1 + 1.5 ulp: even"},
      {FLT_MIN, 0x0000, "float normals below 2^-25 flush to zero by rounding"},
      {FLT_TRUE_MIN, 0x0000, "float subnormal"},
  };
  for (const Case& c : cases) {
    const uint16_t got = f32_to_fp16(c.f);
    CHECK(got == c.want, "%s: f32_to_fp16(%.9g) = 0x%04x, want 0x%04x", c.why, double(c.f), got,
          c.want);
    CHECK(fp16_round_ref(c.f) == c.want, "reference disagrees on '%s'", c.why);
  }
  // NaN stays NaN, even when its payload sits only in the bits that are dropped.
  CHECK(f32_to_fp16(f32_from_bits(0x7f800001u)) == 0x7e00);
  CHECK(f32_to_fp16(f32_from_bits(0xffc00000u)) == 0xfe00);
  CHECK(std::isnan(fp16_to_f32(0x7c01)));
}

// f32 -> fp16 on every fp16 value, every midpoint and their float neighbours (where rounding
// decisions are made), a stride through all 2^32 float patterns, and random patterns.
TF_TEST(fp16_rounding_against_reference) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float v = float(fp16_value(uint16_t(h)));
    const float mid = float((fp16_magnitude(uint16_t(h)) + fp16_magnitude(uint16_t(h + 1))) / 2);
    for (float f : {v, mid, std::nextafter(v, 0.0f), std::nextafter(v, INFINITY),
                    std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      check_to_fp16(f);
      check_to_fp16(-f);
    }
  }
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 65521)
    check_to_fp16(f32_from_bits(uint32_t(u)));
  tf_test::Rng rng(tf_test::case_seed());
  for (int i = 0; i < 1000000; ++i) check_to_fp16(f32_from_bits(rng.next_u32()));
}

// Every bfloat16 pattern decodes to the float with the same top half, and back to itself.
TF_TEST(bf16_all_patterns_round_trip) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float f = bf16_to_f32(h);
    CHECK(f32_bits(f) == uint32_t(h) << 16, "bf16 0x%04x -> 0x%08x", h, f32_bits(f));
    const bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
    const uint16_t want = nan ? uint16_t(h | 0x40) : h;
    CHECK(f32_to_bf16(f) == want, "bf16 0x%04x came back as 0x%04x", h, f32_to_bf16(f));
  }
}

TF_TEST(bf16_named_cases_and_rounding) {
  struct Case { uint32_t f; uint16_t want; const char* why; };
  const Case cases[] = {
      {0x3f800000u, 0x3f80, "one"},
      {0x3f808000u, 0x3f80, "tie, even below"},
      {0x3f818000u, 0x3f82, "tie, odd below: up"},
      {0x3f808001u, 0x3f81, "above the tie"},
      {0x7f7f7fffu, 0x7f7f, "largest bf16 below the overflow midpoint"},
      {0x7f7f8000u, 0x7f80, "overflow midpoint ties to even: inf"},
      {0x7f7fffffu, 0x7f80, "FLT_MAX overflows to inf"},
      {0xff7fffffu, 0xff80, "-FLT_MAX overflows to -inf"},
      {0x7f800000u, 0x7f80, "inf"},
      {0x00008000u, 0x0000, "subnormal tie, even zero"},
      {0x00018000u, 0x0002, "subnormal tie, odd below: up"},
      {0x007fffffu, 0x0080, "largest float subnormal rounds up to the smallest normal"},
      {0x7f800001u, 0x7fc0, "NaN with a low payload stays NaN (not inf)"},
      {0xff800001u, 0xffc0, "negative NaN"},
  };
  for (const Case& c : cases) {
    const uint16_t got = f32_to_bf16(f32_from_bits(c.f));
    CHECK(got == c.want, "%s: f32_to_bf16(0x%08x) = 0x%04x, want 0x%04x", c.why, c.f, got, c.want);
  }
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4093)
    check_to_bf16(f32_from_bits(uint32_t(u)));
  tf_test::Rng rng(tf_test::case_seed());
  for (int i = 0; i < 1000000; ++i) check_to_bf16(f32_from_bits(rng.next_u32()));
}
