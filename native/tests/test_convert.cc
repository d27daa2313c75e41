// tf::convert (include/tensorfuse/convert.h) against element-by-element scalar conversions, for
// every dtype pair and every ISA level this CPU runs: the vector paths (F16C, ...) must agree
// with the scalar ones bit for bit, on lengths around the vector widths, at unaligned addresses.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"

using namespace tf;

namespace {

constexpr DType kAll[] = {DType::float32, DType::float16, DType::bfloat16,
                          DType::int8,    DType::uint8,   DType::int32};

double ref_load(const uint8_t* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::float32: { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
    case DType::float16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return fp16_to_f32(h); }
    case DType::bfloat16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h); }
    case DType::int8: return int8_t(p[i]);
    case DType::uint8: return p[i];
    case DType::int32: { int32_t v; std::memcpy(&v, p + 4 * i, 4); return v; }
  }
  return 0;
}

// Integers: truncate toward zero, saturate, NaN -> 0 (convert.h).
double ref_to_int(double v, double lo, double hi) {
  if (std::isnan(v)) return 0;
  v = std::trunc(v);
  return v < lo ? lo : v > hi ? hi : v;
}

void ref_store(uint8_t* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::float32: { float f = float(v); std::memcpy(p + 4 * i, &f, 4); return; }
    case DType::float16: {
      const uint16_t h = f32_to_fp16(float(v));
      std::memcpy(p + 2 * i, &h, 2);
      return;
    }
    case DType::bfloat16: {
      const uint16_t h = f32_to_bf16(float(v));
      std::memcpy(p + 2 * i, &h, 2);
      return;
    }
    case DType::int8: p[i] = uint8_t(int8_t(ref_to_int(v, -128, 127))); return;
    case DType::uint8: p[i] = uint8_t(ref_to_int(v, 0, 255)); return;
    case DType::int32: {
      int32_t x = int32_t(ref_to_int(v, -2147483648.0, 2147483647.0));
      std::memcpy(p + 4 * i, &x, 4);
      return;
    }
  }
}

// Element i of src converted into dst. Float to float goes through float32 only (widening is
// exact; a NaN keeps its payload); anything with an integer side goes through double.
void ref_convert(const uint8_t* src, DType src_dt, uint8_t* dst, DType dst_dt, int64_t i) {
  if (src_dt == dst_dt) {  // a copy, NaN payloads and all
    std::memcpy(dst + i * dtype_size(dst_dt), src + i * dtype_size(src_dt), dtype_size(src_dt));
  } else if (dtype_is_float(src_dt) && dtype_is_float(dst_dt)) {
    float f;
    uint16_t h;
    switch (src_dt) {
      case DType::float16: std::memcpy(&h, src + 2 * i, 2); f = fp16_to_f32(h); break;
      case DType::bfloat16: std::memcpy(&h, src + 2 * i, 2); f = bf16_to_f32(h); break;
      default: std::memcpy(&f, src + 4 * i, 4); break;
    }
    switch (dst_dt) {
      case DType::float16: h = f32_to_fp16(f); std::memcpy(dst + 2 * i, &h, 2); break;
      case DType::bfloat16: h = f32_to_bf16(f); std::memcpy(dst + 2 * i, &h, 2); break;
      default: std::memcpy(dst + 4 * i, &f, 4); break;
    }
  } else {
    ref_store(dst, dst_dt, i, ref_load(src, src_dt, i));
  }
}

// n elements of `dt` as raw bytes: random values at several scales plus the special values.
std::vector<uint8_t> make_source(DType dt, int64_t n, tf_test::Rng& rng) {
  std::vector<uint8_t> out(size_t(n) * dtype_size(dt));
  const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, f32_from_bits(0x7f800001u),
                            65504.0f, 65520.0f, -70000.0f, 1e-7f, 1e-40f, 2.5f, -2.5f, 127.5f,
                            -128.9f, 255.5f, 3e9f, -3e9f};
  for (int64_t i = 0; i < n; ++i) {
    switch (dt) {
      case DType::float32: {
        float v;
        switch (rng.below(4)) {
          case 0: v = specials[rng.below(sizeof(specials) / sizeof(float))]; break;
          case 1: v = rng.uniform(-300.0f, 300.0f); break;
          case 2: v = f32_from_bits(rng.next_u32()); break;  // any pattern: NaNs, subnormals
          default: v = rng.uniform(-1.0f, 1.0f); break;
        }
        std::memcpy(&out[size_t(i) * 4], &v, 4);
        break;
      }
      case DType::float16:
      case DType::bfloat16: {
        const uint16_t h = uint16_t(rng.next_u32());
        std::memcpy(&out[size_t(i) * 2], &h, 2);
        break;
      }
      case DType::int8:
      case DType::uint8: out[size_t(i)] = uint8_t(rng.next_u32()); break;
      case DType::int32: {
        const int32_t v = rng.below(2) ? int32_t(rng.next_u32()) : int32_t(rng.below(600)) - 300;
        std::memcpy(&out[size_t(i) * 4], &v, 4);
        break;
      }
    }
  }
  return out;
}

// Runs every pair at every length through `convert`, offset by one element from the buffers'
// start (kernels use unaligned loads) with a guard band after the end.
void check_all_pairs(const char* isa) {
  tf_test::Rng rng(tf_test::case_seed());
  const int64_t lengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1027};
  for (DType src_dt : kAll) {
    for (DType dst_dt : kAll) {
      for (int64_t n : lengths) {
        const size_t ssz = dtype_size(src_dt), dsz = dtype_size(dst_dt);
        std::vector<uint8_t> src = make_source(src_dt, n + 1, rng);
        std::vector<uint8_t> want((size_t(n) + 9) * dsz, 0xa5), got((size_t(n) + 9) * dsz, 0xa5);
        for (int64_t i = 0; i < n; ++i)
          ref_convert(src.data() + ssz, src_dt, want.data() + dsz, dst_dt, i);
        convert(src.data() + ssz, src_dt, got.data() + dsz, dst_dt, n);
        // Buffer element 0 and the last 8 are guards; element i + 1 is output element i.
        int64_t at = -1;
        for (int64_t i = 0; i < int64_t(got.size() / dsz) && at < 0; ++i)
          if (std::memcmp(&got[size_t(i) * dsz], &want[size_t(i) * dsz], dsz) != 0) at = i;
        CHECK(at < 0, "isa %s: %s -> %s, n=%lld: first difference at element %lld%s", isa,
              dtype_name(src_dt), dtype_name(dst_dt), (long long)n, (long long)(at - 1),
              at == 0 || at > n ? " (a guard: write out of bounds)" : "");
      }
    }
  }
}

}  // namespace

TF_TEST(convert_every_pair_every_isa) {
  const Isa best = best_isa();
  int levels = 0;
  for (Isa isa : {Isa::generic, Isa::neon, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    REQUIRE(set_isa(isa));
    CHECK(active_isa() == isa);
    check_all_pairs(isa_name(isa));
    ++levels;
  }
  set_isa(best);
  CHECK(levels >= 1);
  std::printf("  (convert checked at %d ISA level(s), best %s)\n", levels, isa_name(best));
}

// The row helpers the kernels use, with the 16-bit types only (the vector paths' domain).
TF_TEST(convert_row_helpers_match_scalar) {
  tf_test::Rng rng(tf_test::case_seed());
  const Isa best = best_isa();
  for (Isa isa : {Isa::generic, Isa::neon, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    set_isa(isa);
    for (int64_t n : {1, 8, 13, 64, 1001}) {
      std::vector<float> f(size_t(n) + 1);
      for (auto& v : f) v = rng.below(8) ? rng.uniform(-7e4f, 7e4f) : f32_from_bits(rng.next_u32());
      std::vector<uint16_t> h(size_t(n) + 1), b(size_t(n) + 1);
      convert_from_f32(f.data() + 1, h.data() + 1, DType::float16, n);
      convert_from_f32(f.data() + 1, b.data() + 1, DType::bfloat16, n);
      std::vector<float> hf(size_t(n) + 1), bf(size_t(n) + 1);
      convert_to_f32(h.data() + 1, DType::float16, hf.data() + 1, n);
      convert_to_f32(b.data() + 1, DType::bfloat16, bf.data() + 1, n);
      int bad = 0;
      for (int64_t i = 1; i <= n; ++i) {
        bad += h[size_t(i)] != f32_to_fp16(f[size_t(i)]);
        bad += b[size_t(i)] != f32_to_bf16(f[size_t(i)]);
        bad += f32_bits(hf[size_t(i)]) != f32_bits(fp16_to_f32(h[size_t(i)]));
        bad += f32_bits(bf[size_t(i)]) != f32_bits(bf16_to_f32(b[size_t(i)]));
      }
      CHECK(bad == 0, "isa %s, n=%lld: %d mismatches", isa_name(isa), (long long)n, bad);
    }
  }
  set_isa(best);
}
