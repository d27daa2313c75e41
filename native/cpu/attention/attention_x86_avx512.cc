// AVX-512 attention pieces: the online softmax on 16-wide vectors, with the exponential of
// x86_avx512_math.h (the AVX2 one's operations on 16 lanes), and the per-head decode products
// (qk_dot, pv_accum) on 16-wide vectors: half the FMAs and, for a float16 / bfloat16 cache, half
// the widening instructions per key of the AVX2 kernels; the last D % 16 columns through masked
// loads. The key-major products (qk_keys / pv_keys) are the AVX2 table's (16-wide versions
// measured no faster: bench/NOTES.md, Zen 5). Where the CPU has AVX512-BF16, a bfloat16 K meets
// the bfloat16 q rows as stored in vdpbf16ps (qk_bf16). Build notes: common/x86_avx512.h.
#include "attention_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "../common/x86_avx512_bf16.h"
#include "../common/x86_avx512_math.h"
#include "attention_x86_prefetch.h"

namespace tf {
namespace attention_cpu {
namespace {

using x86::exp16_nonpos;

// exp(s - mx) over one row's tile in place, two 16-wide chains side by side (the polynomial is
// latency bound), the tail masked (lanes past n read as -inf: exp 0, not stored). Returns the
// row's sum.
TF_AVX512 float exp_row(float* row, int64_t n, float mx) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 e0 = exp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm));
    const __m512 e1 = exp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(row + j + 16), vm));
    _mm512_storeu_ps(row + j, e0);
    _mm512_storeu_ps(row + j + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const __m512 e = exp16_nonpos(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, row + j), vm));
    _mm512_mask_storeu_ps(row + j, m, e);
    s0 = _mm512_add_ps(s0, e);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// The AVX2 softmax_tile's three passes on 16-wide vectors: the new maxima, alpha for 16 rows per
// vector exp, then the exponentials and sums.
TF_AVX512 void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l,
                            float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const __m512 vninf = _mm512_set1_ps(ninf);
  for (int64_t r = 0; r < R; ++r) {  // alpha[r] holds the new maximum for now
    const float* row = s + r * lds;
    __m512 vmax = _mm512_set1_ps(m[r]);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    if (j < n) {
      const __mmask16 m = __mmask16((1u << (n - j)) - 1);
      vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vninf, m, row + j));
    }
    alpha[r] = _mm512_reduce_max_ps(vmax);
  }
  softmax_rescale_rows<16>(
      s, lds, R, n, m, l, alpha,
      [](float* d) TF_AVX512 { _mm512_store_ps(d, exp16_nonpos(_mm512_load_ps(d))); }, exp_row);
}

// Elements [i, i + 16) of a K / V row widened to float32, lanes outside `m` zero.
template <DType T>
TF_AVX512 inline __m512 ld16(const void* p, int64_t i, __mmask16 m) {
  if (T == DType::float32) return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i);
  if (T == DType::float16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TF_AVX512 inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// The R x NK dot products of a score tile (16-lane partial sums acc[r][t]) summed by the
// transposing tree (x86::lane_sums, ~3 ops per score, where a reduction per score took 8), times
// `scale` when Scale, and stored as R rows of NK scores from s + j0 (lds apart).
template <int R, int NK, bool Scale>
TF_AVX512 __attribute__((always_inline)) inline void store_scores(const __m512 (&acc)[R][NK],
                                                                 float scale, float* s,
                                                                 int64_t lds, int64_t j0) {
  constexpr int N = R * NK;
  __m512 flat[N];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) flat[r * NK + t] = acc[r][t];
  __m512 lo = x86::lane_sums<(N < 16 ? N : 16)>(flat);
  __m512 hi = N > 16 ? x86::lane_sums<(N > 16 ? N - 16 : 1)>(flat + 16) : lo;
  if (Scale) {
    lo = _mm512_mul_ps(lo, _mm512_set1_ps(scale));
    hi = _mm512_mul_ps(hi, _mm512_set1_ps(scale));
  }
  // row r's NK scores are lanes r * NK .. of (lo, hi): moved to lanes 0 .. NK - 1 by one
  // two-source permute (a store and a reload of them stalled on store forwarding)
  const __mmask16 row = __mmask16((1u << NK) - 1);
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i idx = _mm512_add_epi32(lanes, _mm512_set1_epi32(r * NK));
    _mm512_mask_storeu_ps(s + r * lds + j0, row, _mm512_permutex2var_ps(lo, idx, hi));
  }
}

// Scores of R rows against NK keys (rows j0 .. j0 + NK of K): R * NK accumulators, one 16-wide
// step of D loading R q vectors and then each key's vector once for R FMAs (R + NK loads per
// R * NK FMAs: 10 per 24 at R = 4), the last D % 16 columns in one masked step; then
// store_scores.
template <DType T, int R, int NK>
TF_AVX512 inline void qk_tile(const float* q, int64_t ldq, const void* k, int64_t ldk, int64_t j0,
                              int64_t D, float* s, int64_t lds) {
  __m512 acc[R][NK];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) acc[r][t] = _mm512_setzero_ps();
  auto step = [&](int64_t d, __mmask16 m) TF_AVX512 __attribute__((always_inline)) {
    __m512 x[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      x[r] = _mm512_maskz_loadu_ps(m, q + r * ldq + d);
      TF_IN_REGISTER(x[r]);  // one load per q vector, not one per FMA
    }
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) {
      __m512 kv = ld16<T>(k, (j0 + t) * ldk + d, m);
      TF_IN_REGISTER(kv);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(x[r], kv, acc[r][t]);
    }
  };
  int64_t d = 0;
  for (; d + 16 <= D; d += 16) step(d, 0xFFFF);
  if (d < D) step(d, tail_mask(D - d));
  store_scores<R, NK, false>(acc, 1.0f, s, lds, j0);
}

// R rows against all n keys: tiles of NK keys (at most 24 accumulators: NK = 6 for four rows,
// 8 for two or three, 16 for one, 3 for five or six, 2 for seven or eight), the last n % NK keys
// in tiles of 8, 4, 2, 1; each tile asks for the same rows of the hint's next unit
// (prefetch_k_rows).
template <DType T, int R>
TF_AVX512 void qk_rows(const float* q, int64_t ldq, const void* k, int64_t ldk, int64_t n,
                       int64_t D, float* s, int64_t lds, const Prefetch& pf) {
  constexpr int NK = R == 4 ? 6 : R == 1 ? 16 : R <= 3 ? 8 : R <= 6 ? 3 : 2;
  const size_t esz = dtype_size(T);
  const int64_t row_bytes = D * int64_t(esz);
  int64_t j = 0;
  for (; j + NK <= n; j += NK) {
    prefetch_k_rows(pf, ldk, row_bytes, esz, j, NK);
    qk_tile<T, R, NK>(q, ldq, k, ldk, j, D, s, lds);
  }
  prefetch_k_rows(pf, ldk, row_bytes, esz, j, pf.k_rows - j);
  if (NK > 8 && j + 8 <= n) qk_tile<T, R, 8>(q, ldq, k, ldk, j, D, s, lds), j += 8;
  if (NK > 4 && j + 4 <= n) qk_tile<T, R, 4>(q, ldq, k, ldk, j, D, s, lds), j += 4;
  if (j + 2 <= n) qk_tile<T, R, 2>(q, ldq, k, ldk, j, D, s, lds), j += 2;
  if (j < n) qk_tile<T, R, 1>(q, ldq, k, ldk, j, D, s, lds);
}

template <DType T>
TF_AVX512 void qk_dot_t(const float* q, int64_t ldq, int64_t R, const void* k, int64_t ldk,
                        int64_t n, int64_t D, float* s, int64_t lds, const Prefetch& pf) {
  const Prefetch none;  // only the first pass of rows issues the hint
  for (int64_t r = 0; r < R;) {
    const Prefetch& h = r == 0 ? pf : none;
    const float* qr = q + r * ldq;
    float* sr = s + r * lds;
    switch (std::min<int64_t>(R - r, 8)) {
      case 1: qk_rows<T, 1>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 1; break;
      case 2: qk_rows<T, 2>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 2; break;
      case 3: qk_rows<T, 3>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 3; break;
      case 4: qk_rows<T, 4>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 4; break;
      case 5: qk_rows<T, 5>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 5; break;
      case 6: qk_rows<T, 6>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 6; break;
      case 7: qk_rows<T, 7>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 7; break;
      default: qk_rows<T, 8>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 8; break;
    }
  }
}

TF_AVX512 void qk_dot(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
                      int64_t n, int64_t D, float* s, int64_t lds, const Prefetch& pf) {
  switch (dt) {
    case DType::float16: return qk_dot_t<DType::float16>(q, ldq, R, k, ldk, n, D, s, lds, pf);
    case DType::bfloat16: return qk_dot_t<DType::bfloat16>(q, ldq, R, k, ldk, n, D, s, lds, pf);
    default: return qk_dot_t<DType::float32>(q, ldq, R, k, ldk, n, D, s, lds, pf);
  }
}

// ---- bfloat16 K on AVX512-BF16: decode Q K^T by vdpbf16ps ------------------------------------
//
// A bfloat16 query is itself bfloat16, so Q K^T can take q and K as stored in vdpbf16ps
// (common/x86_avx512_bf16.h: two products a lane, exact, float32 sums): 32 products per
// instruction, with no widening of K, where the float path takes two FMAs and two widening steps.
// The softmax scale multiplies the finished dot products (the float path scales q first: one
// rounding either way). Called only where cpu_features() reports avx512bf16. (The prefill tiles'
// bfloat16 panels and micro-tile are the header's, shared with the GEMM.)

// qk_tile on bfloat16 q and K: one 32-element step of D a vdpbf16ps per (row, key); the last D % 32
// elements in one masked step (lanes past D read as zero on both sides). Scores times `scale`.
template <int R, int NK>
TF_AVX512BF16 inline void qk_tile_bf16(const uint16_t* q, int64_t ldq, const uint16_t* k,
                                       int64_t ldk, int64_t j0, int64_t D, float scale, float* s,
                                       int64_t lds) {
  __m512 acc[R][NK];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) acc[r][t] = _mm512_setzero_ps();
  auto step = [&](int64_t d, __mmask32 m) TF_AVX512BF16 __attribute__((always_inline)) {
    __m512i x[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      x[r] = _mm512_maskz_loadu_epi16(m, q + r * ldq + d);
      TF_IN_REGISTER(x[r]);
    }
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) {
      __m512i kv = _mm512_maskz_loadu_epi16(m, k + (j0 + t) * ldk + d);
      TF_IN_REGISTER(kv);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)x[r], (__m512bh)kv);
    }
  };
  int64_t d = 0;
  for (; d + 32 <= D; d += 32) step(d, __mmask32(0xFFFFFFFFu));
  if (d < D) step(d, x86::mask32(D - d));
  store_scores<R, NK, true>(acc, scale, s, lds, j0);
}

// qk_rows on bfloat16 q and K (the same tiles and prefetch hint).
template <int R>
TF_AVX512BF16 void qk_rows_bf16(const uint16_t* q, int64_t ldq, const uint16_t* k, int64_t ldk,
                                int64_t n, int64_t D, float scale, float* s, int64_t lds,
                                const Prefetch& pf) {
  constexpr int NK = R == 4 ? 6 : R == 1 ? 16 : R <= 3 ? 8 : R <= 6 ? 3 : 2;
  const int64_t row_bytes = D * 2;
  int64_t j = 0;
  for (; j + NK <= n; j += NK) {
    prefetch_k_rows(pf, ldk, row_bytes, 2, j, NK);
    qk_tile_bf16<R, NK>(q, ldq, k, ldk, j, D, scale, s, lds);
  }
  prefetch_k_rows(pf, ldk, row_bytes, 2, j, pf.k_rows - j);
  if (NK > 8 && j + 8 <= n) qk_tile_bf16<R, 8>(q, ldq, k, ldk, j, D, scale, s, lds), j += 8;
  if (NK > 4 && j + 4 <= n) qk_tile_bf16<R, 4>(q, ldq, k, ldk, j, D, scale, s, lds), j += 4;
  if (j + 2 <= n) qk_tile_bf16<R, 2>(q, ldq, k, ldk, j, D, scale, s, lds), j += 2;
  if (j < n) qk_tile_bf16<R, 1>(q, ldq, k, ldk, j, D, scale, s, lds);
}

TF_AVX512BF16 void qk_bf16(const uint16_t* q, int64_t ldq, int64_t R, const void* kp, int64_t ldk,
                           int64_t n, int64_t D, float scale, float* s, int64_t lds,
                           const Prefetch& pf) {
  const Prefetch none;  // only the first pass of rows issues the hint
  const uint16_t* k = static_cast<const uint16_t*>(kp);
  for (int64_t r = 0; r < R;) {
    const Prefetch& h = r == 0 ? pf : none;
    const uint16_t* qr = q + r * ldq;
    float* sr = s + r * lds;
    switch (std::min<int64_t>(R - r, 8)) {
      case 1: qk_rows_bf16<1>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 1; break;
      case 2: qk_rows_bf16<2>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 2; break;
      case 3: qk_rows_bf16<3>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 3; break;
      case 4: qk_rows_bf16<4>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 4; break;
      case 5: qk_rows_bf16<5>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 5; break;
      case 6: qk_rows_bf16<6>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 6; break;
      case 7: qk_rows_bf16<7>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 7; break;
      default: qk_rows_bf16<8>(qr, ldq, k, ldk, n, D, scale, sr, lds, h); r += 8; break;
    }
  }
}

// R rows x C vectors (16C columns from d, the last vector masked by `last`) of o in registers
// over all n keys; each widened V vector feeds every row.
template <DType T, int R, int C>
TF_AVX512 void pv_cols(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n,
                       int64_t d, __mmask16 last, float* o, int64_t ldo, const Prefetch& pf) {
  const int64_t esz = int64_t(dtype_size(T));
  const int64_t cols = 16 * (C - 1) + __builtin_popcount(last);
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      acc[r][c] = _mm512_maskz_loadu_ps(c == C - 1 ? last : 0xFFFF, o + r * ldo + d + 16 * c);
  for (int64_t j = 0; j < n; ++j) {
    prefetch_v_cols(pf, j, d * esz, (d + cols) * esz, esz);
    __m512 vv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      vv[c] = ld16<T>(v, j * ldv + d + 16 * c, c == C - 1 ? last : __mmask16(0xFFFF));
      // one load for all R rows: with 2 or 3 GCC folded it into each row's FMA (2-3 loads)
      if (R > 1) TF_IN_REGISTER(vv[c]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(pj, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      _mm512_mask_storeu_ps(o + r * ldo + d + 16 * c, c == C - 1 ? last : 0xFFFF, acc[r][c]);
}

// R rows: 128 (R = 1) or 64 (R >= 2) columns per pass over the keys, then 16, the last masked.
template <DType T, int R>
TF_AVX512 void pv_rows(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n,
                       int64_t D, float* o, int64_t ldo, const Prefetch& pf) {
  constexpr int C = R == 1 ? 8 : R <= 4 ? 4 : 2;
  int64_t d = 0;
  for (; d + 16 * C <= D; d += 16 * C) pv_cols<T, R, C>(p, ldp, v, ldv, n, d, 0xFFFF, o, ldo, pf);
  for (; d < D; d += 16) pv_cols<T, R, 1>(p, ldp, v, ldv, n, d, tail_mask(D - d), o, ldo, pf);
}

template <DType T>
TF_AVX512 void pv_accum_t(const float* p, int64_t ldp, int64_t R, const void* v, int64_t ldv,
                          int64_t n, int64_t D, float* o, int64_t ldo, const Prefetch& pf) {
  const Prefetch none;  // only the first pass of rows issues the hint
  for (int64_t r = 0; r < R;) {
    const Prefetch& h = r == 0 ? pf : none;
    const float* pr = p + r * ldp;
    float* orow = o + r * ldo;
    switch (std::min<int64_t>(R - r, 8)) {
      case 1: pv_rows<T, 1>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 1; break;
      case 2: pv_rows<T, 2>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 2; break;
      case 3: pv_rows<T, 3>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 3; break;
      case 4: pv_rows<T, 4>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 4; break;
      case 5: pv_rows<T, 5>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 5; break;
      case 6: pv_rows<T, 6>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 6; break;
      case 7: pv_rows<T, 7>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 7; break;
      default: pv_rows<T, 8>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 8; break;
    }
  }
}

TF_AVX512 void pv_accum(const float* p, int64_t ldp, int64_t R, const void* v, DType dt,
                        int64_t ldv, int64_t n, int64_t D, float* o, int64_t ldo,
                        const Prefetch& pf) {
  switch (dt) {
    case DType::float16: return pv_accum_t<DType::float16>(p, ldp, R, v, ldv, n, D, o, ldo, pf);
    case DType::bfloat16: return pv_accum_t<DType::bfloat16>(p, ldp, R, v, ldv, n, D, o, ldo, pf);
    default: return pv_accum_t<DType::float32>(p, ldp, R, v, ldv, n, D, o, ldo, pf);
  }
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.softmax_tile = softmax_tile;
  k.qk_dot = qk_dot;
  k.pv_accum = pv_accum;
  if (cpu_features().avx512bf16) {
    k.qk_bf16 = qk_bf16;
    k.pack_k_bf16 = x86::pack_pairs_of_rows;
    k.pack_v_bf16 = x86::pack_pairs_of_cols;
    k.to_bf16_rows = x86::to_bf16_rows;
    k.tile_bf16 = x86::tile_bf16;
  }
  return k;
}

}  // namespace

const Kernels* kernels_avx512() {
  if (!kernels_avx2()) return nullptr;
  static const Kernels table = make_table();
  return &table;
}

}  // namespace attention_cpu
}  // namespace tf

#else
namespace tf {
namespace attention_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace attention_cpu
}  // namespace tf
#endif
