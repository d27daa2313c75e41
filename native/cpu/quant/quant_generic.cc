// Portable scalar quantized kernels: the path every fast kernel is tested against. Written for
// clarity, one output at a time, in the order the table's contract states.
#include <algorithm>
#include <cmath>
#include <limits>

#include "quant_kernels.h"

namespace tf {
namespace quant_cpu {
namespace {

// Sums in double: this is also the GEMV of ISAs without a vector path (arm64 runs it), and a
// float sum over one row of K = 8192 terms already drifts by ~3e-6 when x has a nonzero mean.
void gemv_f32(const QuantWeight& w, const float* x, const float*, int64_t n0, int64_t n1,
              float* y) {
  const int64_t G = w.groups(), gs = w.group();
  for (int64_t n = n0; n < n1; ++n) {
    double acc = 0.0;
    for (int64_t g = 0; g < G; ++g) {
      double dot = 0.0;
      if (w.bits == 8) {
        const int8_t* q = static_cast<const int8_t*>(w.q) + n * w.q_stride();
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k) dot += double(q[k]) * x[k];
      } else {
        const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.q_stride() / 2);
        const int z = zero_of(w, n, g);
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k) dot += double(int(nibble(q, k)) - z) * x[k];
      }
      acc += double(w.scales[n * w.s_stride() + g]) * dot;
    }
    y[n] = float(acc);
  }
}

void tile_i8(const QuantWeight& w, const int8_t* xq, const int32_t*, int64_t M, int64_t n0,
             int64_t n1, float* c, int64_t ldc) {
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* xr = xq + m * K;
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* q = static_cast<const int8_t*>(w.q) + n * K;
      float acc = 0.0f;
      for (int64_t g = 0; g < G; ++g) {
        int32_t isum = 0;
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k) isum += int32_t(xr[k]) * int32_t(q[k]);
        acc = std::fma(w.scales[n * G + g], float(isum), acc);  // fused on every ISA
      }
      c[m * ldc + n] = acc;
    }
  }
}

void tile_i4(const QuantWeight& w, const int8_t* xq, const int8_t*, const int32_t*, int64_t M,
             int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* xr = xq + m * K;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.q_stride() / 2);
      float a[8] = {};
      for (int64_t g = 0; g < G; ++g) {
        const int32_t z = zero_of(w, n, g);
        int32_t isum = 0;
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k)
          isum += (int32_t(nibble(q, k)) - z) * int32_t(xr[k]);
        a[g % 8] = std::fma(w.scales[n * w.s_stride() + g], float(isum), a[g % 8]);
      }
      c[m * ldc + n] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    }
  }
}

float quant_row_i8(const float* x, int64_t K, int8_t* q) {
  float amax = 0.0f;
  bool nan = false;
  for (int64_t k = 0; k < K; ++k) {
    amax = std::max(amax, std::fabs(x[k]));
    nan |= std::isnan(x[k]);
  }
  const float sc = nan || std::isinf(amax) ? std::numeric_limits<float>::quiet_NaN()
                   : amax > 0.0f          ? amax / 127.0f
                                          : 1.0f;
  for (int64_t k = 0; k < K; ++k) {
    const float v = std::nearbyint(x[k] / sc);
    q[k] = int8_t(std::min(127.0f, std::max(-127.0f, v)));
  }
  return sc;
}

void dequant(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1, float* out,
             int64_t ldo) {
  const int64_t G = w.groups(), gs = w.group();
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ldo;
    if (w.bits == 8) {
      const int8_t* q = static_cast<const int8_t*>(w.q) + n * w.K;
      for (int64_t k = k0; k < k1; ++k) o[k - k0] = float(q[k]) * w.scales[n * G + k / gs];
    } else {
      const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.K / 2);
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t g = k / gs;
        o[k - k0] = float(int(nibble(q, k)) - int(zero_of(w, n, g))) * w.scales[n * G + g];
      }
    }
  }
}

const Kernels kGeneric = {Isa::generic, gemv_f32, nullptr, tile_i8,          tile_i4,
                          quant_row_i8, dequant,  nullptr, /*whole range*/ false};

}  // namespace

const Kernels& kernels_generic() { return kGeneric; }

const Kernels& kernels_for(Isa isa) {
  const Kernels* k = nullptr;
  if (isa == Isa::avx512) k = kernels_avx512();
  if (!k && isa_has_avx2(isa)) k = kernels_avx2();
  return k ? *k : kGeneric;
}

}  // namespace quant_cpu
}  // namespace tf
