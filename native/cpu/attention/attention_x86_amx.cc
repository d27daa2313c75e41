// float32 (and float16) attention operands as bfloat16 parts for the AMX-BF16 tiles (Intel SDM
// vol. 1 ch. 18; the split and its error: common/x86_bf16_split.h): three parts of a float32,
// two of a float16. The driver (attention_driver.cc) multiplies them with
// gemm_cpu::amx_bf16x3_rows: S = Q K^T and O += P V as six tile products each for float32 (four
// and five for float16), float32-accurate; the rest of the tiles' rate over the FMA units pays
// for the extra products (bench/NOTES.md, "The Xeon again (session 24)"). Also here: the online
// softmax that writes P's parts directly.
#include "attention_kernels.h"

#include "tensorfuse/cpu_features.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "../common/x86_avx512_math.h"
#include "../common/x86_bf16_split.h"

namespace tf {
namespace attention_cpu {

bool amx_f32_usable() { return active_isa() == Isa::avx512 && amx_usable(Amx::bf16); }

TF_AVX512 bool amx_f32_split_rows(const float* s, int64_t lds, int64_t rows, int64_t n,
                                  uint16_t* dst, int64_t ldd, int64_t part) {
  float amax = 0.0f;
  if (!x86::finite_rows(s, lds, rows, n, &amax)) return false;
  x86::split3_rows(s, lds, rows, n, dst, ldd, part);
  return true;
}

namespace {

template <class T>
TF_AVX512 bool pack_k(const T* k, int64_t ldk, int64_t n, int64_t D, uint16_t* dst,
                      int64_t part) {
  float amax = 0.0f;
  if (!x86::finite_rows(k, ldk, n, D, &amax)) return false;
  const int64_t Dz = (D + 31) / 32 * 32;
  for (int64_t j = 0; j < n; j += 16)
    x86::split3_panel(k + j * ldk, ldk, std::min<int64_t>(16, n - j), D, dst + j * Dz, 512,
                      part);
  return true;
}

template <class T>
TF_AVX512 bool pack_v(const T* v, int64_t ldv, int64_t n, int64_t D, uint16_t* dst,
                      int64_t panel, int64_t part) {
  float amax = 0.0f;
  if (!x86::finite_rows(v, ldv, n, D, &amax)) return false;
  // V wholly below 2^-100 would lose its low parts to the tiles' denormal flush
  if (amax != 0.0f && amax < 0x1p-100f) return false;
  x86::split3_cols(v, ldv, n, D, (n + 31) / 32 * 32, dst, panel, part);
  return true;
}

}  // namespace

TF_AVX512 void amx_f32_softmax_split(float* s, int64_t lds, int64_t R, int64_t n, float* m,
                                     float* l, float* alpha, uint16_t* dst, int64_t ldd,
                                     int64_t part) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t nz = (n + 31) / 32 * 32;
  for (int64_t r = 0; r < R; ++r) {  // alpha[r] holds the new maximum for now
    const float* row = s + r * lds;
    __m512 vmax = _mm512_set1_ps(m[r]);
    for (int64_t j = 0; j < n; j += 16)
      vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(ninf, x86::lanes16(n - j), row + j));
    alpha[r] = _mm512_reduce_max_ps(vmax);
    if (alpha[r] == -std::numeric_limits<float>::infinity())  // all masked: no exp_row below
      for (int p = 0; p < 3; ++p) std::memset(dst + p * part + r * ldd, 0, size_t(nz) * 2);
  }
  const __m512i hi = x86::high_halves();
  // exp(row - mx), 32 at a time (lanes past n read as -inf: 0), split into the parts of row
  // (row - s) / lds; returns the row's sum of the float32 exponentials
  auto exp_row = [&](float* row, int64_t, float mx) TF_AVX512 {
    const __m512 vm = _mm512_set1_ps(mx);
    uint16_t* out = dst + (row - s) / lds * ldd;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 32) {
      const __m512 e0 = x86::exp16_nonpos(
          _mm512_sub_ps(_mm512_mask_loadu_ps(ninf, x86::lanes16(n - j), row + j), vm));
      const __m512 e1 = x86::exp16_nonpos(
          _mm512_sub_ps(_mm512_mask_loadu_ps(ninf, x86::lanes16(n - j - 16), row + j + 16), vm));
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
      __m512i a[3], b[3];
      x86::split3(e0, a);
      x86::split3(e1, b);
      for (int p = 0; p < 3; ++p)
        _mm512_storeu_si512(out + p * part + j, _mm512_permutex2var_epi16(a[p], hi, b[p]));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  };
  softmax_rescale_rows<16>(
      s, lds, R, n, m, l, alpha,
      [](float* d) TF_AVX512 { _mm512_store_ps(d, x86::exp16_nonpos(_mm512_load_ps(d))); },
      exp_row);
}

bool amx_f32_pack_k(const void* k, DType dt, int64_t ldk, int64_t n, int64_t D, uint16_t* dst,
                    int64_t part) {
  return dt == DType::float16 ? pack_k(static_cast<const uint16_t*>(k), ldk, n, D, dst, part)
                              : pack_k(static_cast<const float*>(k), ldk, n, D, dst, part);
}

bool amx_f32_pack_v(const void* v, DType dt, int64_t ldv, int64_t n, int64_t D, uint16_t* dst,
                    int64_t panel, int64_t part) {
  return dt == DType::float16
             ? pack_v(static_cast<const uint16_t*>(v), ldv, n, D, dst, panel, part)
             : pack_v(static_cast<const float*>(v), ldv, n, D, dst, panel, part);
}

}  // namespace attention_cpu
}  // namespace tf

#else
namespace tf {
namespace attention_cpu {
bool amx_f32_usable() { return false; }
bool amx_f32_split_rows(const float*, int64_t, int64_t, int64_t, uint16_t*, int64_t, int64_t) {
  return false;
}
void amx_f32_softmax_split(float*, int64_t, int64_t, int64_t, float*, float*, float*, uint16_t*,
                           int64_t, int64_t) {}
bool amx_f32_pack_k(const void*, DType, int64_t, int64_t, int64_t, uint16_t*, int64_t) {
  return false;
}
bool amx_f32_pack_v(const void*, DType, int64_t, int64_t, int64_t, uint16_t*, int64_t, int64_t) {
  return false;
}
}  // namespace attention_cpu
}  // namespace tf
#endif
