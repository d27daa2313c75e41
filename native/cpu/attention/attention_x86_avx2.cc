// AVX2 + FMA + F16C attention pieces (compiled with -mavx2 -mfma -mf16c, this file only):
// the online softmax (through x86::exp8_nonpos of common/x86_avx2_math.h), and the few-row
// streaming products of decode, which widen float16/bfloat16 K and V rows in registers so the
// cache is read in its stored size.
#include "attention_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../common/x86_avx2_load.h"
#include "../common/x86_avx2_math.h"
#include "attention_x86_prefetch.h"

namespace tf {
namespace attention_cpu {
namespace {

using x86::exp8_nonpos;

using x86::hsum;
using x86::load1;
using x86::load8;

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(s - m_new) over one row's tile: the vector part, and the tail through the same vector exp
// padded with -inf (exp = 0). Returns the row's sum.
inline float exp_row(float* row, int64_t n, float mx) {
  const int64_t n8 = n & ~int64_t(7);
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n8; j += 16) {  // two chains side by side: the polynomial is latency bound
    __m256 e0 = _mm256_sub_ps(_mm256_loadu_ps(row + j), vm);
    __m256 e1 = _mm256_sub_ps(_mm256_loadu_ps(row + j + 8), vm);
    x86::exp8_nonpos_x2(&e0, &e1);
    _mm256_storeu_ps(row + j, e0);
    _mm256_storeu_ps(row + j + 8, e1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; j < n8; j += 8) {
    const __m256 e = exp8_nonpos(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
    _mm256_storeu_ps(row + j, e);
    s0 = _mm256_add_ps(s0, e);
  }
  float sum = hsum(_mm256_add_ps(s0, s1));
  if (n8 < n) {
    const float ninf = -std::numeric_limits<float>::infinity();
    alignas(32) float t[8];
    for (int64_t i = 0; i < 8; ++i) t[i] = n8 + i < n ? row[n8 + i] - mx : ninf;
    _mm256_store_ps(t, exp8_nonpos(_mm256_load_ps(t)));
    for (int64_t i = n8; i < n; ++i) {
      row[i] = t[i - n8];
      sum += t[i - n8];
    }
  }
  return sum;
}

// Three passes over the tile's rows: the new maxima here, then alpha = exp(m_old - m_new) for
// eight rows per vector exp and the exponentials and sums (softmax_rescale_rows,
// attention_kernels.h).
void softmax_tile(float* s, int64_t lds, int64_t R, int64_t n, float* m, float* l, float* alpha) {
  const int64_t n8 = n & ~int64_t(7);
  for (int64_t r = 0; r < R; ++r) {  // alpha[r] holds the new maximum for now
    const float* row = s + r * lds;
    __m256 vmax = _mm256_set1_ps(m[r]);
    for (int64_t j = 0; j < n8; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
    float mx = hmax(vmax);
    for (int64_t j = n8; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    alpha[r] = mx;
  }
  softmax_rescale_rows<8>(
      s, lds, R, n, m, l, alpha,
      [](float* d) { _mm256_store_ps(d, exp8_nonpos(_mm256_load_ps(d))); }, exp_row);
}

// Sums of 4 vectors, one per lane of the result: {hsum(a), hsum(b), hsum(c), hsum(d)}.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// The stored element type as a compile-time parameter, so the widening is not re-decided in the
// inner loops (a runtime switch there kept the compiler from unswitching them).
template <DType T>
inline __m256 ld8(const void* p, int64_t i) {
  return load8(p, T, i);
}
template <DType T>
inline float ld1(const void* p, int64_t i) {
  return load1(p, T, i);
}

// Scores of R rows (all in registers) against NK keys per pass: each widened K vector feeds
// every row, each q vector every key; R * NK accumulators + NK K vectors + one q vector fit the
// 16 ymm registers (a spill per iteration costs more than the arithmetic).
template <DType T, int R, int NK>
void qk_rows(const float* q, int64_t ldq, const void* k, int64_t ldk, int64_t n, int64_t D,
             float* s, int64_t lds, const Prefetch& pf) {
  const int64_t D8 = D & ~int64_t(7);
  const size_t esz = dtype_size(T);
  const int64_t row_bytes = D * int64_t(esz);
  int64_t j = 0;
  for (; j + NK <= n; j += NK) {
    prefetch_k_rows(pf, ldk, row_bytes, esz, j, NK);
    __m256 acc[R][NK];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < NK; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D8; d += 8) {
      __m256 kv[NK];
#pragma GCC unroll 8
      for (int t = 0; t < NK; ++t) kv[t] = ld8<T>(k, (j + t) * ldk + d);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m256 x = _mm256_loadu_ps(q + r * ldq + d);
        // Pins x in a register: GCC otherwise folds the load into each FMA, loading every q
        // vector NK times (loads, not FMAs, then bound the loop).
        TF_IN_REGISTER(x);
#pragma GCC unroll 8
        for (int t = 0; t < NK; ++t) acc[r][t] = _mm256_fmadd_ps(x, kv[t], acc[r][t]);
      }
    }
    // Horizontal sums four accumulators at a time (one hadd tree each): one hsum per
    // accumulator cost about a third of the FMAs at NK = 2.
    alignas(16) float sums[R * NK + 4];
    if constexpr (R * NK % 4 == 0) {
#pragma GCC unroll 16
      for (int i = 0; i < R * NK; i += 4)
        _mm_store_ps(sums + i, hsum4(acc[i / NK][i % NK], acc[(i + 1) / NK][(i + 1) % NK],
                                     acc[(i + 2) / NK][(i + 2) % NK],
                                     acc[(i + 3) / NK][(i + 3) % NK]));
    } else {
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < NK; ++t) sums[r * NK + t] = hsum(acc[r][t]);
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < NK; ++t) {
        float sum = sums[r * NK + t];
        for (int64_t d = D8; d < D; ++d) sum += q[r * ldq + d] * ld1<T>(k, (j + t) * ldk + d);
        s[r * lds + j + t] = sum;
      }
  }
  prefetch_k_rows(pf, ldk, row_bytes, esz, j, pf.k_rows - j);
  for (; j < n; ++j) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D8; d += 8) {
      const __m256 kv = ld8<T>(k, j * ldk + d);
      for (int r = 0; r < R; ++r)
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * ldq + d), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      float sum = hsum(acc[r]);
      for (int64_t d = D8; d < D; ++d) sum += q[r * ldq + d] * ld1<T>(k, j * ldk + d);
      s[r * lds + j] = sum;
    }
  }
}

template <DType T>
void qk_dot_t(const float* q, int64_t ldq, int64_t R, const void* k, int64_t ldk, int64_t n,
              int64_t D, float* s, int64_t lds, const Prefetch& pf) {
  // Rows in passes of at most 4 (shapes that keep everything in registers); only the first pass
  // issues the prefetch hint.
  const Prefetch none;
  for (int64_t r = 0; r < R;) {
    const Prefetch& h = r == 0 ? pf : none;
    const float* qr = q + r * ldq;
    float* sr = s + r * lds;
    switch (R - r) {
      case 1: qk_rows<T, 1, 8>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 1; break;
      case 2: qk_rows<T, 2, 4>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 2; break;
      case 3: qk_rows<T, 3, 3>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 3; break;
      default: qk_rows<T, 4, 3>(qr, ldq, k, ldk, n, D, sr, lds, h); r += 4; break;
    }
  }
}

void qk_dot(const float* q, int64_t ldq, int64_t R, const void* k, DType dt, int64_t ldk,
            int64_t n, int64_t D, float* s, int64_t lds, const Prefetch& pf) {
  with_dtype(dt, [&](auto t) {
    qk_dot_t<decltype(t)::value>(q, ldq, R, k, ldk, n, D, s, lds, pf);
  });
}

// R rows x C vectors (8C columns) of o held in registers over all n keys; each widened V
// vector feeds every row. R * C accumulators + C vectors of V + one broadcast fit the 16 ymm
// registers (R = 1 folds the V loads into the FMAs).
template <DType T, int R, int C>
void pv_cols(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n, int64_t d,
             float* o, int64_t ldo, const Prefetch& pf) {
  const int64_t esz = int64_t(dtype_size(T));
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_loadu_ps(o + r * ldo + d + 8 * c);
  for (int64_t j = 0; j < n; ++j) {
    prefetch_v_cols(pf, j, d * esz, (d + 8 * C) * esz, esz);
    __m256 vv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) vv[c] = ld8<T>(v, j * ldv + d + 8 * c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 pj = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(pj, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(o + r * ldo + d + 8 * c, acc[r][c]);
}

// R (2..4) rows x 16 columns with named accumulators: GCC kept an array of eight accumulators
// in registers but also stored it to the stack on every key (store-bound), these it does not.
template <DType T, int R>
void pv_cols16(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n, int64_t d,
               float* o, int64_t ldo, const Prefetch& pf) {
  static_assert(R >= 2 && R <= 4, "rows");
  const int64_t esz = int64_t(dtype_size(T));
  const __m256 z = _mm256_setzero_ps();
  __m256 a00 = _mm256_loadu_ps(o + d), a01 = _mm256_loadu_ps(o + d + 8);
  __m256 a10 = _mm256_loadu_ps(o + ldo + d), a11 = _mm256_loadu_ps(o + ldo + d + 8);
  __m256 a20 = R > 2 ? _mm256_loadu_ps(o + 2 * ldo + d) : z;
  __m256 a21 = R > 2 ? _mm256_loadu_ps(o + 2 * ldo + d + 8) : z;
  __m256 a30 = R > 3 ? _mm256_loadu_ps(o + 3 * ldo + d) : z;
  __m256 a31 = R > 3 ? _mm256_loadu_ps(o + 3 * ldo + d + 8) : z;
  for (int64_t j = 0; j < n; ++j) {
    prefetch_v_cols(pf, j, d * esz, (d + 16) * esz, esz);
    const __m256 v0 = ld8<T>(v, j * ldv + d), v1 = ld8<T>(v, j * ldv + d + 8);
    __m256 pj = _mm256_broadcast_ss(p + j);
    a00 = _mm256_fmadd_ps(pj, v0, a00);
    a01 = _mm256_fmadd_ps(pj, v1, a01);
    pj = _mm256_broadcast_ss(p + ldp + j);
    a10 = _mm256_fmadd_ps(pj, v0, a10);
    a11 = _mm256_fmadd_ps(pj, v1, a11);
    if (R > 2) {
      pj = _mm256_broadcast_ss(p + 2 * ldp + j);
      a20 = _mm256_fmadd_ps(pj, v0, a20);
      a21 = _mm256_fmadd_ps(pj, v1, a21);
    }
    if (R > 3) {
      pj = _mm256_broadcast_ss(p + 3 * ldp + j);
      a30 = _mm256_fmadd_ps(pj, v0, a30);
      a31 = _mm256_fmadd_ps(pj, v1, a31);
    }
  }
  _mm256_storeu_ps(o + d, a00);
  _mm256_storeu_ps(o + d + 8, a01);
  _mm256_storeu_ps(o + ldo + d, a10);
  _mm256_storeu_ps(o + ldo + d + 8, a11);
  if (R > 2) {
    _mm256_storeu_ps(o + 2 * ldo + d, a20);
    _mm256_storeu_ps(o + 2 * ldo + d + 8, a21);
  }
  if (R > 3) {
    _mm256_storeu_ps(o + 3 * ldo + d, a30);
    _mm256_storeu_ps(o + 3 * ldo + d + 8, a31);
  }
}

// R rows: 64 (R = 1) or 16 (R >= 2) columns per pass over the keys, then 8, then single ones.
template <DType T, int R>
void pv_rows(const float* p, int64_t ldp, const void* v, int64_t ldv, int64_t n, int64_t D,
             float* o, int64_t ldo, const Prefetch& pf) {
  int64_t d = 0;
  if (R == 1)
    for (; d + 64 <= D; d += 64) pv_cols<T, 1, 8>(p, ldp, v, ldv, n, d, o, ldo, pf);
  else
    for (; d + 16 <= D; d += 16) pv_cols16<T, (R < 2 ? 2 : R)>(p, ldp, v, ldv, n, d, o, ldo, pf);
  for (; d + 8 <= D; d += 8) pv_cols<T, R, 1>(p, ldp, v, ldv, n, d, o, ldo, pf);
  // the last D % 8 columns (read one at a time) request nothing: a line starting there is missed
  for (; d < D; ++d)
    for (int r = 0; r < R; ++r) {
      float acc = o[r * ldo + d];
      for (int64_t j = 0; j < n; ++j) acc += p[r * ldp + j] * ld1<T>(v, j * ldv + d);
      o[r * ldo + d] = acc;
    }
}

template <DType T>
void pv_accum_t(const float* p, int64_t ldp, int64_t R, const void* v, int64_t ldv, int64_t n,
                int64_t D, float* o, int64_t ldo, const Prefetch& pf) {
  // Rows in passes of at most 4; only the first pass issues the prefetch hint.
  const Prefetch none;
  for (int64_t r = 0; r < R;) {
    const Prefetch& h = r == 0 ? pf : none;
    const float* pr = p + r * ldp;
    float* orow = o + r * ldo;
    switch (R - r) {
      case 1: pv_rows<T, 1>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 1; break;
      case 2: pv_rows<T, 2>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 2; break;
      case 3: pv_rows<T, 3>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 3; break;
      default: pv_rows<T, 4>(pr, ldp, v, ldv, n, D, orow, ldo, h); r += 4; break;
    }
  }
}

void pv_accum(const float* p, int64_t ldp, int64_t R, const void* v, DType dt, int64_t ldv,
              int64_t n, int64_t D, float* o, int64_t ldo, const Prefetch& pf) {
  with_dtype(dt, [&](auto t) {
    pv_accum_t<decltype(t)::value>(p, ldp, R, v, ldv, n, D, o, ldo, pf);
  });
}

// Key-major streaming (Kernels::qk_keys / pv_keys): each key's K (then V) rows of all the
// item's heads are read in address order, the hardware stream following (16-bit caches also
// ask for their rows a few keys ahead: prefetch_key_block).
// R rows of one head share every K / V vector load.
// Four keys per head at a time where they fit (one accumulator per (row, key), summed four at a
// time; each q vector feeds four keys), then key by key. The four keys' rows are four
// sequential streams.
template <DType T, int R>
void qk_keys_t(const float* q, int64_t nh, const void* k, int64_t ldk, int64_t ldh, int64_t n,
               int64_t D, float* s, int64_t lds) {
  const int64_t D16 = D & ~int64_t(15), D8 = D & ~int64_t(7);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t kb = j * ldk + h * ldh;
      prefetch_key_block(k, ldk, ldh, D, dtype_size(T), j, h, n);
      const float* qh = q + h * R * D;
      __m256 a[R][4];
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < 4; ++t) a[r][t] = _mm256_setzero_ps();
      for (int64_t d = 0; d < D8; d += 8) {
        __m256 kv[4];
        for (int t = 0; t < 4; ++t) kv[t] = ld8<T>(k, kb + t * ldk + d);
        for (int r = 0; r < R; ++r) {
          const __m256 x = _mm256_loadu_ps(qh + r * D + d);
          for (int t = 0; t < 4; ++t) a[r][t] = _mm256_fmadd_ps(x, kv[t], a[r][t]);
        }
      }
      for (int r = 0; r < R; ++r) {
        alignas(16) float sums[4];
        _mm_store_ps(sums, hsum4(a[r][0], a[r][1], a[r][2], a[r][3]));
        for (int t = 0; t < 4; ++t) {
          float sum = sums[t];
          for (int64_t e = D8; e < D; ++e) sum += qh[r * D + e] * ld1<T>(k, kb + t * ldk + e);
          s[(h * R + r) * lds + j + t] = sum;
        }
      }
    }
  for (; j < n; ++j) {
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t kb = j * ldk + h * ldh;
      const float* qh = q + h * R * D;
      __m256 a[R][2];
      for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = _mm256_setzero_ps();
      int64_t d = 0;
      for (; d < D16; d += 16) {  // two accumulators per row: a dot of D = 128 is 16 FMAs deep
        const __m256 k0 = ld8<T>(k, kb + d), k1 = ld8<T>(k, kb + d + 8);
        for (int r = 0; r < R; ++r) {
          a[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(qh + r * D + d), k0, a[r][0]);
          a[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(qh + r * D + d + 8), k1, a[r][1]);
        }
      }
      for (; d < D8; d += 8) {
        const __m256 k0 = ld8<T>(k, kb + d);
        for (int r = 0; r < R; ++r)
          a[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(qh + r * D + d), k0, a[r][0]);
      }
      for (int r = 0; r < R; ++r) {
        float sum = hsum(_mm256_add_ps(a[r][0], a[r][1]));
        for (int64_t e = D8; e < D; ++e) sum += qh[r * D + e] * ld1<T>(k, kb + e);
        s[(h * R + r) * lds + j] = sum;
      }
    }
  }
}

// Keys [j, n) in blocks of KB per head, each 8 columns of o held in registers across a block
// (o loaded and stored once per block); returns the first key not done (n - j < KB left).
template <DType T, int R, int KB>
int64_t pv_keys_blocks(const float* p, int64_t ldp, int64_t nh, const void* v, int64_t ldv,
                       int64_t ldh, int64_t j, int64_t n, int64_t D, float* o, int64_t ldo) {
  const int64_t D8 = D & ~int64_t(7);
  for (; j + KB <= n; j += KB)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t vb = j * ldv + h * ldh;
      if (KB == 4) prefetch_key_block(v, ldv, ldh, D, dtype_size(T), j, h, n);
      float* oh = o + h * R * ldo;
      __m256 pr[R][KB];
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < KB; ++t) pr[r][t] = _mm256_set1_ps(p[(h * R + r) * ldp + j + t]);
      int64_t d = 0;
      for (; d < D8; d += 8) {
        __m256 acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm256_loadu_ps(oh + r * ldo + d);
        for (int t = 0; t < KB; ++t) {
          const __m256 vv = ld8<T>(v, vb + t * ldv + d);
          for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(pr[r][t], vv, acc[r]);
        }
        for (int r = 0; r < R; ++r) _mm256_storeu_ps(oh + r * ldo + d, acc[r]);
      }
      for (; d < D; ++d)
        for (int t = 0; t < KB; ++t) {
          const float vd = ld1<T>(v, vb + t * ldv + d);
          for (int r = 0; r < R; ++r) oh[r * ldo + d] += p[(h * R + r) * ldp + j + t] * vd;
        }
    }
  return j;
}

// Four keys per head at a time (per key, the o update is store bound), then single keys.
template <DType T, int R>
void pv_keys_t(const float* p, int64_t ldp, int64_t nh, const void* v, int64_t ldv, int64_t ldh,
               int64_t n, int64_t D, float* o, int64_t ldo) {
  const int64_t j = pv_keys_blocks<T, R, 4>(p, ldp, nh, v, ldv, ldh, 0, n, D, o, ldo);
  pv_keys_blocks<T, R, 1>(p, ldp, nh, v, ldv, ldh, j, n, D, o, ldo);
}

void qk_keys(const float* q, int64_t R, int64_t nh, const void* k, DType dt, int64_t ldk,
             int64_t ldh, int64_t n, int64_t D, float* s, int64_t lds) {
  with_dtype(dt, [&](auto t) {
    constexpr DType T = decltype(t)::value;
    switch (R) {
      case 1: qk_keys_t<T, 1>(q, nh, k, ldk, ldh, n, D, s, lds); break;
      default: qk_keys_t<T, 2>(q, nh, k, ldk, ldh, n, D, s, lds); break;
    }
  });
}

void pv_keys(const float* p, int64_t ldp, int64_t R, int64_t nh, const void* v, DType dt,
             int64_t ldv, int64_t ldh, int64_t n, int64_t D, float* o, int64_t ldo) {
  with_dtype(dt, [&](auto t) {
    constexpr DType T = decltype(t)::value;
    switch (R) {
      case 1: pv_keys_t<T, 1>(p, ldp, nh, v, ldv, ldh, n, D, o, ldo); break;
      default: pv_keys_t<T, 2>(p, ldp, nh, v, ldv, ldh, n, D, o, ldo); break;
    }
  });
}

const Kernels kAvx2 = {Isa::avx2, softmax_tile, qk_dot, pv_accum, qk_keys, pv_keys};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace attention_cpu
}  // namespace tf

#else

namespace tf {
namespace attention_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace attention_cpu
}  // namespace tf

#endif
