// The per-ISA pieces of fused attention (attention_generic.cc, attention_x86_avx2.cc fill one
// table each; the tiling, masking, online-softmax bookkeeping and split-K merge live once in
// attention_driver.cc).
// Blocks of many query rows use the GEMM engine's packing and micro-kernel (gemm_kernels.h) for
// Q K^T and P V; the few-row streaming path (decode) uses qk_dot and pv_accum below, which read
// K and V rows in their stored dtype and widen them in registers.
#pragma once
#include <algorithm>
#include <limits>
#include <cstdint>
#include <type_traits>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/dtype.h"

namespace tf {
namespace attention_cpu {

// The rows of the next (step, head) a streaming kernel requests while it computes this one: qk_dot
// asks for K, pv_accum for V, each spread over its own loop, so the cache is read at an even rate
// through the whole step (a burst stalls the core once the miss buffers are full, and memory then
// idles through the phase that requests nothing).
struct Prefetch {
  const void* k = nullptr;  // k_rows rows at the stride ldk of qk_dot
  const void* v = nullptr;  // v_rows rows at the stride ldv
  int64_t ldv = 0;
  int64_t k_rows = 0, v_rows = 0;
};

struct Kernels {
  Isa isa;
  // Online softmax over one tile, for rows r < R of s (row stride lds), columns [0, n):
  //   m_new = max(m[r], max_j s[r, j]);  s[r, j] = exp(s[r, j] - m_new);
  //   alpha[r] = exp(m[r] - m_new);  l[r] = l[r] * alpha[r] + sum_j s[r, j];  m[r] = m_new.
  // -inf scores (masked) give 0; a row whose max is still -inf keeps m = -inf, alpha = 1, l = 0.
  void (*softmax_tile)(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l,
                       float* alpha);
  // s[r * lds + j] = dot(q[r * ldq, 0:D], K[j, 0:D]) for r < R, j < n; K row j at k + j * ldk
  // in dtype dt. q float32. Prefetch hint (may be ignored): while key j is read, row j of pf.k
  // (stride ldk, j < k_rows) is requested.
  void (*qk_dot)(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
                 int64_t n, int64_t D, float* s, int64_t lds, const Prefetch& pf);
  // o[r * ldo + d] += sum_j p[r * ldp + j] * V[j, d] for r < R, d < D; V row j at v + j * ldv.
  // Prefetch hint (may be ignored): while columns [d, d + w) of V row j are read, the same
  // columns of row j of pf.v (stride pf.ldv, j < v_rows) are requested.
  void (*pv_accum)(const float* p, int64_t ldp, int64_t R, const void* v, DType dt, int64_t ldv,
                   int64_t n, int64_t D, float* o, int64_t ldo, const Prefetch& pf);
  // Optional (nullptr: the driver goes head by head with qk_dot / pv_accum). The same products
  // for nh heads of R rows each (R = 1 or 2), key by key and, inside a key, head by head (a few
  // keys of one head at a time: the order of address blocks, not of bytes), so a cache whose
  // heads of one key sit side by side ('bshd') is read front to back, which the hardware
  // prefetchers follow. Row i = h * R + r holds query r of head h; K row of (key j, head h) at
  // k + j * ldk + h * ldh (V likewise with ldv, ldh):
  //   qk_keys: s[i * lds + j] = dot(q[i * D, 0:D], K(j, h))
  //   pv_keys: o[i * ldo + d] += sum_j p[i * ldp + j] * V(j, h)[d]
  void (*qk_keys)(const float* q, int64_t R, int64_t nh, const void* k, DType dt, int64_t ldk,
                  int64_t ldh, int64_t n, int64_t D, float* s, int64_t lds);
  void (*pv_keys)(const float* p, int64_t ldp, int64_t R, int64_t nh, const void* v, DType dt,
                  int64_t ldv, int64_t ldh, int64_t n, int64_t D, float* o, int64_t ldo);
  // Optional (nullptr: qk_dot): qk_dot for a bfloat16 K against bfloat16 q rows as stored (q
  // unscaled; the D elements of row r at q + r * ldq), s = scale * dot.
  void (*qk_bf16)(const uint16_t* q, int64_t ldq, int64_t R, const void* k, int64_t ldk,
                  int64_t n, int64_t D, float scale, float* s, int64_t lds,
                  const Prefetch& pf) = nullptr;
  // Optional (all or none; nullptr: the float GEMM kernels on widened panels): the tiled path
  // for bfloat16 q, K and V (layouts in attention_x86_avx512.cc). pack_k_bf16: K rows [0, n)
  // as panels of 16 keys by pairs of D; pack_v_bf16: V rows [0, n) as panels of 16 columns by
  // pairs of keys; to_bf16_rows: float rows rounded to bfloat16 (an odd n padded with a zero);
  // tile_bf16: c[kMR x 16 np] (+)= scale * A B over `pairs` depth pairs, A row-major bfloat16
  // (lda), np (1-4) panels of B `stride` elements apart.
  void (*pack_k_bf16)(const void* k, int64_t ldk, int64_t n, int64_t D, uint16_t* dst) = nullptr;
  void (*pack_v_bf16)(const void* v, int64_t ldv, int64_t n, int64_t D, uint16_t* dst) = nullptr;
  void (*to_bf16_rows)(const float* s, int64_t lds, int64_t rows, int64_t n, uint16_t* dst,
                       int64_t ldd) = nullptr;
  void (*tile_bf16)(int64_t pairs, const uint16_t* a, int64_t lda, const uint16_t* b,
                    int64_t stride, int64_t np, float* c, int64_t ldc, bool accumulate,
                    float scale) = nullptr;
};

// Calls f(std::integral_constant<DType, T>{}) with T = dt (float16, bfloat16, else float32): the
// ISA files' kernels take the stored element type as a template parameter.
template <class F>
inline void with_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::float16: f(std::integral_constant<DType, DType::float16>{}); break;
    case DType::bfloat16: f(std::integral_constant<DType, DType::bfloat16>{}); break;
    default: f(std::integral_constant<DType, DType::float32>{}); break;
  }
}

// Passes 2 and 3 of the x86 softmax_tile (pass 1 left each row's new maximum in alpha[r]): for
// blocks of W rows, d = exp(m_old - m_new) by one vector exp (exp_block(d): W floats in place;
// one exp per row left a serial chain of ~40 cycles per row on Zen 1), then each row's
// exponentials and sum (exp_row(row, n, m_new) returns the sum) and the running m, l; a row
// still all -inf is zeroed with alpha 1.
// Always inlined, so that in a TF_AVX512 caller exp_block / exp_row inline too (a function
// without the target attribute cannot inline them).
#if defined(__GNUC__) || defined(__clang__)
#define TF_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TF_ALWAYS_INLINE inline
#endif
template <int W, class ExpBlock, class ExpRow>
TF_ALWAYS_INLINE void softmax_rescale_rows(float* s, int64_t lds, int64_t R, int64_t n, float* m,
                                           float* l, float* alpha, ExpBlock&& exp_block,
                                           ExpRow&& exp_row) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t r0 = 0; r0 < R; r0 += W) {
    alignas(64) float d[W];
    const int64_t c = std::min<int64_t>(W, R - r0);
    // m_old - m_new <= 0; a row that is still all -inf gets 0 here (alpha 1 below)
    for (int64_t i = 0; i < W; ++i)
      d[i] = i < c && alpha[r0 + i] != ninf ? m[r0 + i] - alpha[r0 + i] : 0.0f;
    exp_block(d);
    for (int64_t i = 0; i < c; ++i) {
      const int64_t r = r0 + i;
      const float mx = alpha[r];
      float* row = s + r * lds;
      if (mx == ninf) {
        for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
        alpha[r] = 1.0f;
        continue;
      }
      const float sum = exp_row(row, n, mx);
      alpha[r] = d[i];
      l[r] = l[r] * d[i] + sum;
      m[r] = mx;
    }
  }
}

// float32 (or float16) q, K, V on AMX-BF16 tiles (attention_x86_amx.cc), each operand as
// three bfloat16 parts (common/x86_bf16_split.h; part p of a layout at dst + p * part),
// multiplied by gemm_cpu::amx_bf16x3_rows. amx_f32_usable: the AVX-512 table is active and
// amx_usable(bf16).
// amx_f32_split_rows: rows x n floats (lds apart) as row-major parts (ldd apart, zero from n up
//   to a multiple of 32); false (nothing written) where one is not finite.
// amx_f32_pack_k: K rows [0, n) (dtype dt: float32 or float16) as B panels of 16 keys
//   (round_up(D, 32) depth each, zero past D and past n), panel j / 16 at
//   dst + j * round_up(D, 32); false where K is not finite.
// amx_f32_pack_v: V rows [0, n) as B panels of 16 columns by pairs of keys (`panel` elements
//   apart, round_up(n, 32) keys written, zero past n); false where V is not finite or all of
//   it is below 2^-100 in magnitude (and not zero).
bool amx_f32_usable();
bool amx_f32_split_rows(const float* s, int64_t lds, int64_t rows, int64_t n, uint16_t* dst,
                        int64_t ldd, int64_t part);
// amx_f32_softmax_split: Kernels::softmax_tile whose probabilities go straight to parts (the
//   rows of amx_f32_split_rows: row r at dst + r * ldd, zero from n up to a multiple of 32; a
//   row still all masked gets zeros), s left as scratch.
void amx_f32_softmax_split(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l,
                           float* alpha, uint16_t* dst, int64_t ldd, int64_t part);
bool amx_f32_pack_k(const void* k, DType dt, int64_t ldk, int64_t n, int64_t D, uint16_t* dst,
                    int64_t part);
bool amx_f32_pack_v(const void* v, DType dt, int64_t ldv, int64_t n, int64_t D, uint16_t* dst,
                    int64_t panel, int64_t part);

const Kernels& kernels_generic();
const Kernels* kernels_avx2();    // nullptr when not compiled in
const Kernels* kernels_avx512();  // nullptr when not compiled in
const Kernels* kernels_neon();  // nullptr off arm64
const Kernels& kernels_for(Isa isa);

}  // namespace attention_cpu
}  // namespace tf
