// AVX-512 GEMM micro-kernel: the 6 x 16 tile of gemm_kernels.h with one 16-wide vector per row,
// so the packed layouts (and every PackedB) are the AVX2 level's and so are packing and the GEMV
// (kernels_avx2()); and the small-M dot path on 16-wide vectors. Build notes:
// common/x86_avx512.h.
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>

#include "../common/x86_avx512.h"
#include "../common/x86_avx512_bf16.h"
#include "../common/x86_avx512_math.h"
#include "../common/x86_avx512_transpose.h"

namespace tf {
namespace gemm_cpu {
namespace {

// Six rows of 16 columns are only six accumulators, fewer than the FMAs in flight that two pipes
// of 4-cycle FMAs want (8), so even and odd k sum apart (12 chains) and meet at the end. Per two
// k: 2 B loads + 12 broadcasts for 12 FMAs. kRowA: A row-major (element (i, k) at a[i * lda + k])
// instead of a packed panel; the same FMAs in the same order, so both forms are bitwise equal.
template <bool kRowA>
TF_AVX512 void kernel_impl(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                           int64_t ldc, bool accumulate) {
  const int64_t ai = kRowA ? lda : 1;  // distance between rows of A
  const int64_t ak = kRowA ? 1 : kMR;  // distance between k steps
  __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, e4 = e0, e5 = e0;
  __m512 o0 = e0, o1 = e0, o2 = e0, o3 = e0, o4 = e0, o5 = e0;
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + kNR);
    const float* a1 = a + ak;
    e0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), b0, e0);
    o0 = _mm512_fmadd_ps(_mm512_set1_ps(a1[0]), b1, o0);
    e1 = _mm512_fmadd_ps(_mm512_set1_ps(a[ai]), b0, e1);
    o1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[ai]), b1, o1);
    e2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2 * ai]), b0, e2);
    o2 = _mm512_fmadd_ps(_mm512_set1_ps(a1[2 * ai]), b1, o2);
    e3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3 * ai]), b0, e3);
    o3 = _mm512_fmadd_ps(_mm512_set1_ps(a1[3 * ai]), b1, o3);
    e4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4 * ai]), b0, e4);
    o4 = _mm512_fmadd_ps(_mm512_set1_ps(a1[4 * ai]), b1, o4);
    e5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5 * ai]), b0, e5);
    o5 = _mm512_fmadd_ps(_mm512_set1_ps(a1[5 * ai]), b1, o5);
    a += 2 * ak;
    b += 2 * kNR;
  }
  if (k < kc) {
    const __m512 b0 = _mm512_loadu_ps(b);
    e0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), b0, e0);
    e1 = _mm512_fmadd_ps(_mm512_set1_ps(a[ai]), b0, e1);
    e2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2 * ai]), b0, e2);
    e3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3 * ai]), b0, e3);
    e4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4 * ai]), b0, e4);
    e5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5 * ai]), b0, e5);
  }
  const __m512 acc[kMR] = {_mm512_add_ps(e0, o0), _mm512_add_ps(e1, o1), _mm512_add_ps(e2, o2),
                           _mm512_add_ps(e3, o3), _mm512_add_ps(e4, o4), _mm512_add_ps(e5, o5)};
  for (int i = 0; i < kMR; ++i) {
    float* row = c + i * ldc;
    _mm512_storeu_ps(row, accumulate ? _mm512_add_ps(acc[i], _mm512_loadu_ps(row)) : acc[i]);
  }
}

TF_AVX512 void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                      bool accumulate) {
  kernel_impl<false>(kc, a, 0, b, c, ldc, accumulate);
}

TF_AVX512 void kernel_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                           int64_t ldc, bool accumulate) {
  kernel_impl<true>(kc, a, lda, b, c, ldc, accumulate);
}

// 6 x 32 over two B panels: per k, 2 B loads + 6 broadcasts for 12 FMAs (the 6 x 16 tile: 7 loads
// for 6), and 12 accumulators are chains enough for two FMA pipes without splitting k. kRowA as
// in kernel_impl. In L2 on Zen 5 (one thread, 16 A micro-panels x 8 B panels of kc = 256): 91%
// of the FMA probe against 81% for two 6 x 16 calls.
template <bool kRowA>
TF_AVX512 void kernel2_impl(int64_t kc, const float* a, int64_t lda, const float* b,
                            const float* b2, float* c, int64_t ldc, bool accumulate) {
  const int64_t ai = kRowA ? lda : 1;
  const int64_t ak = kRowA ? 1 : kMR;
  // every loop over lo / hi unrolled: with the first one rolled GCC zeroed them on the stack with
  // rep stos at every call (3-4% of the prefill attention's time in this kernel, whose calls run
  // only 128 k deep)
  __m512 lo[kMR], hi[kMR];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += ak, b += kNR, b2 += kNR) {
    const __m512 v0 = _mm512_loadu_ps(b), v1 = _mm512_loadu_ps(b2);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * ai]);
      lo[i] = _mm512_fmadd_ps(av, v0, lo[i]);
      hi[i] = _mm512_fmadd_ps(av, v1, hi[i]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      lo[i] = _mm512_add_ps(lo[i], _mm512_loadu_ps(row));
      hi[i] = _mm512_add_ps(hi[i], _mm512_loadu_ps(row + kNR));
    }
    _mm512_storeu_ps(row, lo[i]);
    _mm512_storeu_ps(row + kNR, hi[i]);
  }
}

TF_AVX512 void kernel2(int64_t kc, const float* a, const float* b, const float* b2, float* c,
                       int64_t ldc, bool accumulate) {
  kernel2_impl<false>(kc, a, 0, b, b2, c, ldc, accumulate);
}

TF_AVX512 void kernel2_rows(int64_t kc, const float* a, int64_t lda, const float* b,
                            const float* b2, float* c, int64_t ldc, bool accumulate) {
  kernel2_impl<true>(kc, a, lda, b, b2, c, ldc, accumulate);
}

// 6 x 64 over four B panels (ps apart): per k, 4 B loads + 6 broadcasts for 24 FMAs, 29 of the
// 32 registers. Each output as in kernel2_impl (bitwise). Sapphire-Rapids-class Xeon, one thread,
// kc = 128 in L1, a standalone loop: 6 x 32 ran 81% of the FMA rate, 6 x 64 92%.
template <bool kRowA>
TF_AVX512 void kernel4_impl(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ps,
                            float* c, int64_t ldc, bool accumulate) {
  const int64_t ai = kRowA ? lda : 1;
  const int64_t ak = kRowA ? 1 : kMR;
  __m512 acc[kMR][4];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += ak, b += kNR) {
    __m512 v[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = _mm512_loadu_ps(b + j * ps);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * ai]);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, v[j], acc[i][j]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) {
    float* row = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512 t = acc[i][j];
      if (accumulate) t = _mm512_add_ps(t, _mm512_loadu_ps(row + j * kNR));
      _mm512_storeu_ps(row + j * kNR, t);
    }
  }
}

TF_AVX512 void kernel4(int64_t kc, const float* a, const float* b, int64_t ps, float* c,
                       int64_t ldc, bool accumulate) {
  kernel4_impl<false>(kc, a, 0, b, ps, c, ldc, accumulate);
}

TF_AVX512 void kernel4_rows(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ps,
                            float* c, int64_t ldc, bool accumulate) {
  kernel4_impl<true>(kc, a, lda, b, ps, c, ldc, accumulate);
}

// pack_a of gemm_kernels.h for float32 A (16-bit A: the AVX2 packer): a full panel of six rows
// x 8 k is six 8-wide loads paired into three zmm (rows 2i | 2i + 1), then each of the three
// output vectors (k-major: element (i, k) at k * 6 + i) is one two-source permute of the first
// two and one masked permute of the third. 18 operations per 48 elements, where the AVX2
// packer's 8 x 8 transpose and six-float copies took about 50 (pack_a was ~10% of a 2-thread
// 1024^3 GEMM). Short panels and the k tail as the scalar formula.
// [8 floats at lo | 8 floats at hi] (AVX512F only: no insertf32x8, which is DQ)
TF_AVX512 inline __m512 pair8(const float* lo, const float* hi) {
  const __m512d l = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(lo)));
  return _mm512_castpd_ps(_mm512_insertf64x4(l, _mm256_castps_pd(_mm256_loadu_ps(hi)), 1));
}

TF_AVX512 void pack_a(const void* a, DType dt, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  if (dt != DType::float32) return kernels_avx2()->pack_a(a, dt, lda, mc, kc, dst);
  const float* af = static_cast<const float*>(a);
  // output lane p = 16 v + l holds (i, c) = (p % 6, p / 6): row pair z = i / 2 at index
  // (i % 2) * 8 + c; idx01 reads pairs 0 and 1 (indices 0-31 over both), idx2 and m2 pair 2
  alignas(64) int32_t idx01[3][16], idx2[3][16];
  __mmask16 m2[3] = {0, 0, 0};
  for (int v = 0; v < 3; ++v)
    for (int l = 0; l < 16; ++l) {
      const int p = 16 * v + l, i = p % 6, c = p / 6, at = (i % 2) * 8 + c;
      idx01[v][l] = i < 4 ? (i / 2) * 16 + at : 0;
      idx2[v][l] = i >= 4 ? at : 0;
      if (i >= 4) m2[v] = __mmask16(m2[v] | (1u << l));
    }
  __m512i i01[3], i2[3];
  for (int v = 0; v < 3; ++v) {
    i01[v] = _mm512_load_si512(idx01[v]);
    i2[v] = _mm512_load_si512(idx2[v]);
  }
  for (int64_t i0 = 0; i0 < mc; i0 += kMR) {
    const int64_t rows = std::min<int64_t>(kMR, mc - i0);
    const float* r = af + i0 * lda;
    int64_t k = 0;
    if (rows == kMR) {
      for (; k + 8 <= kc; k += 8) {
        const __m512 z0 = pair8(r + k, r + lda + k);
        const __m512 z1 = pair8(r + 2 * lda + k, r + 3 * lda + k);
        const __m512 z2 = pair8(r + 4 * lda + k, r + 5 * lda + k);
        float* d = dst + k * kMR;
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) {
          const __m512 from01 = _mm512_permutex2var_ps(z0, i01[v], z1);
          _mm512_storeu_ps(d + 16 * v, _mm512_mask_permutexvar_ps(from01, m2[v], i2[v], z2));
        }
      }
    }
    for (; k < kc; ++k)
      for (int64_t i = 0; i < kMR; ++i) dst[k * kMR + i] = i < rows ? r[i * lda + k] : 0.0f;
    dst += kc * kMR;
  }
}

// pack_b of gemm_kernels.h for float32 B on 16-wide vectors (16-bit B: the AVX2 packer). Stored
// [N, K] (trans): 16 rows of B x 16 k per 16 x 16 transpose (64 shuffles per 256 elements; four
// 8 x 8 ymm transposes: 96), the k tail and rows past N through masked loads / zeros; [K, N]:
// each row of B copied into every panel, the last panel masked.
TF_AVX512 void pack_b(const void* b, DType dt, int64_t ldb, bool trans, int64_t kc, int64_t nc,
                      float* dst) {
  if (dt != DType::float32) return kernels_avx2()->pack_b(b, dt, ldb, trans, kc, nc, dst);
  const float* bf = static_cast<const float*>(b);
  if (!trans) {
    const int64_t full = nc / kNR, rem = nc - full * kNR;
    const __mmask16 tail = __mmask16((1u << rem) - 1);
    for (int64_t k = 0; k < kc; ++k) {
      const float* row = bf + k * ldb;
      for (int64_t jp = 0; jp < full; ++jp)
        _mm512_storeu_ps(dst + jp * kc * kNR + k * kNR, _mm512_loadu_ps(row + jp * kNR));
      if (rem)
        _mm512_storeu_ps(dst + full * kc * kNR + k * kNR,
                        _mm512_maskz_loadu_ps(tail, row + full * kNR));
    }
    return;
  }
  for (int64_t j0 = 0; j0 < nc; j0 += kNR, dst += kc * kNR) {
    const int cols = int(std::min<int64_t>(kNR, nc - j0));
    for (int64_t k = 0; k < kc; k += 16) {
      const int kn = int(std::min<int64_t>(16, kc - k));
      const __mmask16 m = __mmask16((1u << kn) - 1);
      __m512 r[16];
      for (int j = 0; j < 16; ++j)
        r[j] = j < cols ? _mm512_maskz_loadu_ps(m, bf + (j0 + j) * ldb + k) : _mm512_setzero_ps();
      x86::transpose16(r);
      for (int kk = 0; kk < kn; ++kk) _mm512_storeu_ps(dst + (k + kk) * kNR, r[kk]);
    }
  }
}

// Elements [i, i + 16) of a row of B of type T widened to float32, lanes outside m zero.
template <DType T>
TF_AVX512 inline __m512 load_b(const void* b, int64_t i, __mmask16 m) {
  if (T == DType::float32) return _mm512_maskz_loadu_ps(m, static_cast<const float*>(b) + i);
  const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(b) + i);
  if (T == DType::float16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Small M against B stored [N, K] (dot_t of gemm_kernels.h), B of type T widened in registers:
// R rows of x against C rows of B, 16 k per step (the last step masked, so no scalar tail):
// R * C accumulators, R + C loads per R * C FMAs (4 x 6: 10 loads per 24 FMAs, 29 of the 32
// registers).
template <DType T, int R, int C>
TF_AVX512 void dot_tile(const float* x, int64_t ldx, const void* b, int64_t ldb, int64_t k0,
                        int64_t k1, float* c, int64_t ldc, bool accumulate, const char* pf) {
  // every loop over acc fully unrolled (#pragma GCC unroll): with one left rolled GCC 12 kept
  // acc in memory and stored all R x C accumulators at every step of the k loop
  __m512 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int q = 0; q < C; ++q) acc[r][q] = _mm512_setzero_ps();
  int64_t k = k0;
  for (; k + 16 <= k1; k += 16) {
    __m512 xv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      xv[r] = _mm512_loadu_ps(x + r * ldx + k);
      if (C > 1) __asm__("" : "+v"(xv[r]));  // likewise one load of x for all C (4 x 2 tiles)
    }
    // one row of the next tile of B asked for as this pass runs (dot_rows)
    if (pf) _mm_prefetch(pf + (k - k0) * int64_t(dtype_size(T)), _MM_HINT_T0);
#pragma GCC unroll 6
    for (int q = 0; q < C; ++q) {
      __m512 bv = load_b<T>(b, q * ldb + k, 0xFFFF);
      // one load of each B vector for all R rows: with 2 or 3 rows GCC folded it into every FMA
      // as a memory operand (3 x 6 tiles: 18 loads of B per step, not 6; M = 3 ran slower than 4)
      if (R > 1) __asm__("" : "+v"(bv));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][q] = _mm512_fmadd_ps(xv[r], bv, acc[r][q]);
    }
  }
  if (k < k1) {
    const __mmask16 m = __mmask16((1u << (k1 - k)) - 1);
    __m512 xv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) xv[r] = _mm512_maskz_loadu_ps(m, x + r * ldx + k);
#pragma GCC unroll 6
    for (int q = 0; q < C; ++q) {
      const __m512 bv = load_b<T>(b, q * ldb + k, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][q] = _mm512_fmadd_ps(xv[r], bv, acc[r][q]);
    }
  }
  // the R x C sums, row-major, 16 to a vector (a transposing tree: about 3 ops per sum where
  // one _mm512_reduce_add_ps each took 8 and was a quarter of a 512-deep tile), then each row of
  // c by one masked load and store
  alignas(64) float sums[32];
  __m512 flat[R * C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int q = 0; q < C; ++q) flat[r * C + q] = acc[r][q];
  _mm512_store_ps(sums, x86::lane_sums<(R * C < 16 ? R * C : 16)>(flat));
  if (R * C > 16)
    _mm512_store_ps(sums + 16, x86::lane_sums<(R * C > 16 ? R * C - 16 : 1)>(flat + 16));
  const __mmask16 row_mask = __mmask16((1u << C) - 1);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    __m512 t = _mm512_maskz_loadu_ps(row_mask, sums + r * C);
    if (accumulate) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(row_mask, c + r * ldc));
    _mm512_mask_storeu_ps(c + r * ldc, row_mask, t);
  }
}

// Rows of x in tiles of 4 against C rows of B. With many rows of x (moe.ffn's DeepSeek-like expert
// tiles: 14-35 rows) each C-row tile of B comes from memory in the first pass, which then waits on
// it with the FMAs idle, and from L1 in the others: so pass g also asks for row g of the next tile
// (rows C + g on from b, a line per 16 k), which the next tile's first pass then finds in cache.
// Rows past the end of B are only asked for (a prefetch never faults). Node, DeepSeek-like layer,
// 2 threads, alternated: 24-27 -> 21-23 ms (0.62-0.69 -> 0.72-0.76x the dense GEMM); `linear`
// K = N = 4096 at 24-48 rows 2-4% faster, at 12 rows 5% slower (three passes cover half a tile):
// hence from 16 rows (bench/NOTES.md, "Zen 5, session 20").
constexpr int64_t kDotPrefetchRows = 16;

template <DType T, int C>
TF_AVX512 void dot_rows(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb,
                        int64_t k0, int64_t k1, float* c, int64_t ldc, bool accumulate) {
  // addresses as integers: the rows asked for may lie past the end of B's allocation
  const uintptr_t esz = dtype_size(T), next = uintptr_t(b) + esz * uintptr_t(C * ldb + k0);
  const auto pf = [&](int64_t g) {
    return M >= kDotPrefetchRows ? reinterpret_cast<const char*>(next + esz * uintptr_t(g * ldb))
                                 : nullptr;
  };
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    dot_tile<T, 4, C>(x + m * ldx, ldx, b, ldb, k0, k1, c + m * ldc, ldc, accumulate, pf(m / 4));
  switch (M - m) {
    case 3:
      return dot_tile<T, 3, C>(x + m * ldx, ldx, b, ldb, k0, k1, c + m * ldc, ldc, accumulate,
                               pf(m / 4));
    case 2:
      return dot_tile<T, 2, C>(x + m * ldx, ldx, b, ldb, k0, k1, c + m * ldc, ldc, accumulate,
                               pf(m / 4));
    case 1:
      return dot_tile<T, 1, C>(x + m * ldx, ldx, b, ldb, k0, k1, c + m * ldc, ldc, accumulate,
                               pf(m / 4));
    default: return;
  }
}

template <DType T>
TF_AVX512 void dot_t_impl(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb,
                          int64_t k0, int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc,
                          bool accumulate) {
  const size_t esz = dtype_size(T);
  const auto brow = [&](int64_t n) {
    return static_cast<const char*>(b) + esz * size_t(n * ldb);
  };
  int64_t n = n0;
  // 6 columns a tile; 8 left over take two tiles of 4 rather than 6 and 2, whose 8 accumulators
  // leave the FMAs waiting on their latency (24 rows, K = 1024, in L2: the 32 columns of a moe.ffn
  // dot call 42-45 -> 46-49 MAC/tick, 8 columns 33-36 -> 42-44). (Tiles of 3 for 5 = 3 + 2 or
  // 7 = 4 + 3 measured 20-40% slower than 4 + 1 and 6 + 1.)
  const int64_t cols = n1 - n0;
  const int64_t sixes = cols % 6 == 2 && cols >= 8 ? (cols - 8) / 6 : cols / 6;
  for (int64_t i = 0; i < sixes; ++i, n += 6)
    dot_rows<T, 6>(x, ldx, M, brow(n), ldb, k0, k1, c + n, ldc, accumulate);
  if (n1 - n == 8) {
    dot_rows<T, 4>(x, ldx, M, brow(n), ldb, k0, k1, c + n, ldc, accumulate);
    n += 4;
  }
  // the last 1-5 columns in as few tiles as possible (a 1-column tile loads 5 vectors per 4 FMAs)
  if (n + 4 <= n1) {
    dot_rows<T, 4>(x, ldx, M, brow(n), ldb, k0, k1, c + n, ldc, accumulate);
    n += 4;
  }
  if (n + 2 <= n1) {
    dot_rows<T, 2>(x, ldx, M, brow(n), ldb, k0, k1, c + n, ldc, accumulate);
    n += 2;
  }
  if (n < n1) dot_rows<T, 1>(x, ldx, M, brow(n), ldb, k0, k1, c + n, ldc, accumulate);
}

// 16-bit B widened in registers here too (it was the AVX2 kernel's: float16 / bfloat16 `linear`
// at 2-8 rows, K = N = 4096, ran 1.2-2.4 ms where the float32 weight, twice the bytes, took
// 1.4-2.7).
TF_AVX512 void dot_t(const float* x, int64_t ldx, int64_t M, const void* b, DType dt,
                     int64_t ldb, int64_t k0, int64_t k1, int64_t n0, int64_t n1, float* c,
                     int64_t ldc, bool accumulate) {
  switch (dt) {
    case DType::float16:
      return dot_t_impl<DType::float16>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
    case DType::bfloat16:
      return dot_t_impl<DType::bfloat16>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
    default:
      return dot_t_impl<DType::float32>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
  }
}

// gemv_n_rows: MR rows of x (from x, row stride ldx) against KR rows of B (from b, elements of
// type T) over columns [c0, c1): the MR x KR values of x broadcast once, each 16 columns one
// load of each row of B (widened) and, per row of x, one load and one store of y around KR FMAs
// (in k order: the M = 1 GEMV's summation order).
template <DType T, int MR, int KR>
TF_AVX512 void nrows_tile(const float* x, int64_t ldx, const void* b, int64_t ldb, int64_t c0,
                          int64_t c1, float* y, int64_t ldy) {
  __m512 xb[MR][KR];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int kk = 0; kk < KR; ++kk) xb[r][kk] = _mm512_set1_ps(x[r * ldx + kk]);
  auto step = [&](int64_t n, __mmask16 m) TF_AVX512 __attribute__((always_inline)) {
    __m512 bv[KR];
#pragma GCC unroll 4
    for (int kk = 0; kk < KR; ++kk) {
      bv[kk] = load_b<T>(b, kk * ldb + n, m);
      if (MR > 1) __asm__("" : "+v"(bv[kk]));  // one load for every row of x (as dot_tile)
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      __m512 acc = _mm512_maskz_loadu_ps(m, y + r * ldy + n);
#pragma GCC unroll 4
      for (int kk = 0; kk < KR; ++kk) acc = _mm512_fmadd_ps(xb[r][kk], bv[kk], acc);
      _mm512_mask_storeu_ps(y + r * ldy + n, m, acc);
    }
  };
  int64_t n = c0;
  for (; n + 16 <= c1; n += 16) step(n, 0xFFFF);
  if (n < c1) step(n, __mmask16((1u << (c1 - n)) - 1));
}

// Column blocks of at most kNRowsYBytes of y (all M rows; in L1-L2) while every row of B passes
// over them; in each block, four rows of B at a time against four rows of x at a time. (gemm
// loop, K = N = 4096, 2 threads, 24 / 64 / 128 KiB: M = 8 3.37-3.51 / 2.62-3.72 / 2.74-3.01 ms,
// M = 16 5.0-5.5 / 4.8-5.0 / 4.8: longer runs of each row of B against more y traffic.)
constexpr int64_t kNRowsYBytes = 64 << 10;

template <DType T, int KR>
TF_AVX512 void nrows_pass(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb,
                          int64_t c0, int64_t c1, float* y, int64_t ldy) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    nrows_tile<T, 4, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
  switch (M - m) {
    case 3: return nrows_tile<T, 3, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
    case 2: return nrows_tile<T, 2, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
    case 1: return nrows_tile<T, 1, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
    default: return;
  }
}

template <DType T>
TF_AVX512 void gemv_n_rows_t(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb,
                             int64_t K, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const size_t esz = dtype_size(T);
  const auto row = [&](int64_t k) { return static_cast<const char*>(b) + esz * size_t(k * ldb); };
  const int64_t nb = std::max<int64_t>(64, kNRowsYBytes / (4 * M) / 16 * 16);
  for (int64_t c0 = n0; c0 < n1; c0 += nb) {
    const int64_t c1 = std::min(n1, c0 + nb);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) nrows_pass<T, 4>(x + k, ldx, M, row(k), ldb, c0, c1, y, ldy);
    for (; k < K; ++k) nrows_pass<T, 1>(x + k, ldx, M, row(k), ldb, c0, c1, y, ldy);
  }
}

TF_AVX512 void gemv_n_rows(const float* x, int64_t ldx, int64_t M, const void* b, DType dt,
                           int64_t ldb, int64_t K, int64_t n0, int64_t n1, float* y,
                           int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  switch (dt) {
    case DType::float16: return gemv_n_rows_t<DType::float16>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
    case DType::bfloat16:
      return gemv_n_rows_t<DType::bfloat16>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
    default: return gemv_n_rows_t<DType::float32>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
  }
}

// B for the bfloat16 tile: stored [N, K] (trans) or [K, N], as pack_b's two cases.
TF_AVX512BF16 void pack_b_bf16(const void* b, int64_t ldb, bool trans, int64_t kc, int64_t nc,
                               uint16_t* dst) {
  if (trans)
    x86::pack_pairs_of_rows(b, ldb, nc, kc, dst);
  else
    x86::pack_pairs_of_cols(b, ldb, kc, nc, dst);
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.pack_a = pack_a;
  k.pack_b = pack_b;
  k.kernel = kernel;
  k.kernel_rows = kernel_rows;
  k.kernel2 = kernel2;
  k.kernel2_rows = kernel2_rows;
  k.kernel4 = kernel4;
  k.kernel4_rows = kernel4_rows;
  k.dot_t = dot_t;
  k.gemv_n_rows = gemv_n_rows;
  if (cpu_features().avx512bf16) {
    k.pack_b_bf16 = pack_b_bf16;
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

}  // namespace gemm_cpu
}  // namespace tf

#else
namespace tf {
namespace gemm_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace gemm_cpu
}  // namespace tf
#endif
