// AVX2 + FMA + F16C GEMM pieces. Compiled with -mavx2 -mfma -mf16c (this file only) and picked
// at run time when cpuid reports all three. Layouts: gemm_kernels.h.
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../common/x86_avx2_load.h"

namespace tf {
namespace gemm_cpu {
namespace {

using x86::hsum;
using x86::load1;
using x86::load8;

// In-register 8x8 transpose of float32 rows r[0..7].
inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void pack_a(const void* a, DType dt, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += kMR) {
    const int rows = int(mc - i0 < kMR ? mc - i0 : kMR);
    int64_t k = 0;
    if (rows == kMR) {
      // 8 k at a time: load 6 rows (+2 zero rows), transpose, store 8 k-columns of 6.
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < kMR; ++i) r[i] = load8(a, dt, (i0 + i) * lda + k);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r);
        float* d = dst + k * kMR;
        for (int kk = 0; kk < 8; ++kk) {
          alignas(32) float tmp[8];
          _mm256_store_ps(tmp, r[kk]);
          std::memcpy(d + kk * kMR, tmp, kMR * sizeof(float));
        }
      }
    }
    for (; k < kc; ++k)
      for (int i = 0; i < kMR; ++i)
        dst[k * kMR + i] = i < rows ? load1(a, dt, (i0 + i) * lda + k) : 0.0f;
    dst += kc * kMR;
  }
}

void pack_b(const void* b, DType dt, int64_t ldb, bool trans, int64_t kc, int64_t nc,
            float* dst) {
  if (!trans) {
    // Row k of B feeds row k of every panel: read each row once, left to right, so a block of
    // many panels streams through memory instead of touching one line per row 16 KiB apart.
    const int64_t full = nc / kNR;
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t jp = 0; jp < full; ++jp) {
        float* d = dst + jp * kc * kNR + k * kNR;
        _mm256_store_ps(d, load8(b, dt, k * ldb + jp * kNR));
        _mm256_store_ps(d + 8, load8(b, dt, k * ldb + jp * kNR + 8));
      }
    }
    if (full * kNR < nc) {
      const int cols = int(nc - full * kNR);
      float* d = dst + full * kc * kNR;
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < kNR; ++j)
          d[k * kNR + j] = j < cols ? load1(b, dt, k * ldb + full * kNR + j) : 0.0f;
    }
    return;
  }
  for (int64_t j0 = 0; j0 < nc; j0 += kNR) {
    const int cols = int(nc - j0 < kNR ? nc - j0 : kNR);
    {
      int64_t k = 0;
      if (cols == kNR) {
        // Two 8x8 transposes per 8 k: rows n of B become columns of the panel.
        for (; k + 8 <= kc; k += 8) {
          for (int half = 0; half < 2; ++half) {
            __m256 r[8];
            for (int j = 0; j < 8; ++j) r[j] = load8(b, dt, (j0 + half * 8 + j) * ldb + k);
            transpose8(r);
            for (int kk = 0; kk < 8; ++kk) _mm256_store_ps(dst + (k + kk) * kNR + half * 8, r[kk]);
          }
        }
      }
      for (; k < kc; ++k)
        for (int j = 0; j < kNR; ++j)
          dst[k * kNR + j] = j < cols ? load1(b, dt, (j0 + j) * ldb + k) : 0.0f;
    }
    dst += kc * kNR;
  }
}

// The 6x16 micro-kernel: 12 ymm accumulators, 2 B vectors, 1 broadcast per row per k.
// Per k: 12 FMAs against 2 loads + 6 broadcasts, so FMA throughput is the limit.
// kRowA: A is row-major (element (i, k) at a[i * lda + k]) instead of a packed panel; the six
// broadcasts then come from two row pointers (rows 0-2 and 3-5) indexed by lda and 2 * lda.
template <bool kRowA>
inline void kernel_impl(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                        int64_t ldc, bool accumulate) {
  const int64_t ai = kRowA ? lda : 1;  // distance between rows of A
  const int64_t ak = kRowA ? 1 : kMR;  // distance between k steps
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const float* a3 = a + 3 * ai;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + ai);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2 * ai);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a3 + ai);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a3 + 2 * ai);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += ak;
    a3 += ak;
    b += kNR;
  }
  __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  for (int i = 0; i < kMR; ++i) {
    float* row = c + i * ldc;
    __m256 v0 = acc[2 * i], v1 = acc[2 * i + 1];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, v0);
    _mm256_storeu_ps(row + 8, v1);
  }
}

void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  kernel_impl<false>(kc, a, 0, b, c, ldc, accumulate);
}

void kernel_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                 bool accumulate) {
  kernel_impl<true>(kc, a, lda, b, c, ldc, accumulate);
}

// y[n] = dot(x, B[n, :]) for B stored [N, K]: 4 rows at a time share each x load, two
// accumulators per row hide the FMA latency. Memory bound: B is read exactly once.
void gemv_t(const float* x, const void* b, DType dt, int64_t ldb, int64_t K, int64_t n0,
            int64_t n1, float* y) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    __m256 s[8];
    for (int i = 0; i < 8; ++i) s[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < 4; ++r) {
        s[2 * r] = _mm256_fmadd_ps(x0, load8(b, dt, (n + r) * ldb + k), s[2 * r]);
        s[2 * r + 1] = _mm256_fmadd_ps(x1, load8(b, dt, (n + r) * ldb + k + 8), s[2 * r + 1]);
      }
    }
    for (; k + 8 <= K; k += 8) {
      const __m256 x0 = _mm256_loadu_ps(x + k);
      for (int r = 0; r < 4; ++r)
        s[2 * r] = _mm256_fmadd_ps(x0, load8(b, dt, (n + r) * ldb + k), s[2 * r]);
    }
    for (int r = 0; r < 4; ++r) {
      float t = hsum(_mm256_add_ps(s[2 * r], s[2 * r + 1]));
      for (int64_t kk = k; kk < K; ++kk) t += x[kk] * load1(b, dt, (n + r) * ldb + kk);
      y[n + r] = t;
    }
  }
  for (; n < n1; ++n) {
    __m256 s0 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8(b, dt, n * ldb + k), s0);
    float t = hsum(s0);
    for (; k < K; ++k) t += x[k] * load1(b, dt, n * ldb + k);
    y[n] = t;
  }
}

// y[n0:n1] = sum_k x[k] * B[k, n0:n1] for B stored [K, N]: four rows of B stream at once,
// y stays in L1 (the driver keeps n1 - n0 small).
void gemv_n(const float* x, const void* b, DType dt, int64_t ldb, int64_t K, int64_t n0,
            int64_t n1, float* y) {
  for (int64_t n = n0; n < n1; ++n) y[n] = 0.0f;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const __m256 x0 = _mm256_set1_ps(x[k]), x1 = _mm256_set1_ps(x[k + 1]);
    const __m256 x2 = _mm256_set1_ps(x[k + 2]), x3 = _mm256_set1_ps(x[k + 3]);
    int64_t n = n0;
    for (; n + 8 <= n1; n += 8) {
      __m256 acc = _mm256_loadu_ps(y + n);
      acc = _mm256_fmadd_ps(x0, load8(b, dt, k * ldb + n), acc);
      acc = _mm256_fmadd_ps(x1, load8(b, dt, (k + 1) * ldb + n), acc);
      acc = _mm256_fmadd_ps(x2, load8(b, dt, (k + 2) * ldb + n), acc);
      acc = _mm256_fmadd_ps(x3, load8(b, dt, (k + 3) * ldb + n), acc);
      _mm256_storeu_ps(y + n, acc);
    }
    for (; n < n1; ++n)
      y[n] += x[k] * load1(b, dt, k * ldb + n) + x[k + 1] * load1(b, dt, (k + 1) * ldb + n) +
              x[k + 2] * load1(b, dt, (k + 2) * ldb + n) + x[k + 3] * load1(b, dt, (k + 3) * ldb + n);
  }
  for (; k < K; ++k)
    for (int64_t n = n0; n < n1; ++n) y[n] += x[k] * load1(b, dt, k * ldb + n);
}

void gemv(const float* x, const void* b, DType dt, int64_t ldb, bool trans, int64_t K, int64_t n0,
          int64_t n1, float* y) {
  if (trans) gemv_t(x, b, dt, ldb, K, n0, n1, y);
  else gemv_n(x, b, dt, ldb, K, n0, n1, y);
}

// Tile of R rows of x against C rows of B, 8 k per step: R*C accumulators, R + C loads per
// R*C FMAs (3 x 4: 7 loads per 12 FMAs, inside Zen's load budget). The R x vectors are loaded
// first and each B vector right before its R FMAs, so 3 x 4 needs 12 + 3 + 1 registers: loading
// the 4 B vectors first needed 17, and GCC kept one accumulator on the stack, a store-to-load
// round trip in every step's dependency chain (~25% of the tile's samples; M = 8 ran at ~50% of
// the peak). B's dtype is a template parameter so the loop holds no dtype switch.
template <int R, int C, DType DT>
inline void dot_tile(const float* x, int64_t ldx, const void* b, int64_t ldb, int64_t k0,
                     int64_t k1, float* c, int64_t ldc, bool accumulate) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q) acc[r][q] = _mm256_setzero_ps();
  int64_t k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + k);
    for (int q = 0; q < C; ++q) {
      const __m256 bv = load8(b, DT, q * ldb + k);
      for (int r = 0; r < R; ++r) acc[r][q] = _mm256_fmadd_ps(xv[r], bv, acc[r][q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < C; ++q) {
      float t = hsum(acc[r][q]);
      for (int64_t kk = k; kk < k1; ++kk) t += x[r * ldx + kk] * load1(b, DT, q * ldb + kk);
      c[r * ldc + q] = accumulate ? c[r * ldc + q] + t : t;
    }
}

template <DType DT>
void dot_t_impl(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb, int64_t k0,
                int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc, bool accumulate) {
  const size_t esz = dtype_size(DT);
  auto brow = [&](int64_t n) { return static_cast<const char*>(b) + esz * size_t(n * ldb); };
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    int64_t m = 0;
    for (; m + 3 <= M; m += 3)
      dot_tile<3, 4, DT>(x + m * ldx, ldx, brow(n), ldb, k0, k1, c + m * ldc + n, ldc, accumulate);
    for (; m < M; ++m)
      dot_tile<1, 4, DT>(x + m * ldx, ldx, brow(n), ldb, k0, k1, c + m * ldc + n, ldc, accumulate);
  }
  for (; n < n1; ++n) {
    int64_t m = 0;
    for (; m + 3 <= M; m += 3)
      dot_tile<3, 1, DT>(x + m * ldx, ldx, brow(n), ldb, k0, k1, c + m * ldc + n, ldc, accumulate);
    for (; m < M; ++m)
      dot_tile<1, 1, DT>(x + m * ldx, ldx, brow(n), ldb, k0, k1, c + m * ldc + n, ldc, accumulate);
  }
}

void dot_t(const float* x, int64_t ldx, int64_t M, const void* b, DType dt, int64_t ldb, int64_t k0,
           int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc, bool accumulate) {
  switch (dt) {
    case DType::float16:
      return dot_t_impl<DType::float16>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
    case DType::bfloat16:
      return dot_t_impl<DType::bfloat16>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
    default:
      return dot_t_impl<DType::float32>(x, ldx, M, b, ldb, k0, k1, n0, n1, c, ldc, accumulate);
  }
}

// gemv_n_rows (gemm_kernels.h) on 8-wide vectors: MR (1-2) rows of x against KR (4 or 1) rows of
// B, their MR x KR values broadcast once (8 of the 16 registers), each 8 columns one load of
// each row of B (widened) and, per row of x, a load and a store of y around KR FMAs in k order.
template <DType DT, int MR, int KR>
void nrows_tile(const float* x, int64_t ldx, const void* b, int64_t ldb, int64_t c0, int64_t c1,
                float* y, int64_t ldy) {
  __m256 xb[MR][KR];
  for (int r = 0; r < MR; ++r)
    for (int kk = 0; kk < KR; ++kk) xb[r][kk] = _mm256_set1_ps(x[r * ldx + kk]);
  int64_t n = c0;
  for (; n + 8 <= c1; n += 8) {
    __m256 bv[KR];
    for (int kk = 0; kk < KR; ++kk) bv[kk] = load8(b, DT, kk * ldb + n);
    for (int r = 0; r < MR; ++r) {
      __m256 acc = _mm256_loadu_ps(y + r * ldy + n);
      for (int kk = 0; kk < KR; ++kk) acc = _mm256_fmadd_ps(xb[r][kk], bv[kk], acc);
      _mm256_storeu_ps(y + r * ldy + n, acc);
    }
  }
  for (; n < c1; ++n)
    for (int r = 0; r < MR; ++r) {
      float acc = y[r * ldy + n];
      for (int kk = 0; kk < KR; ++kk)
        acc = std::fma(x[r * ldx + kk], load1(b, DT, kk * ldb + n), acc);
      y[r * ldy + n] = acc;
    }
}

template <DType DT, int KR>
void nrows_pass(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb, int64_t c0,
                int64_t c1, float* y, int64_t ldy) {
  int64_t m = 0;
  for (; m + 2 <= M; m += 2)
    nrows_tile<DT, 2, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
  if (m < M) nrows_tile<DT, 1, KR>(x + m * ldx, ldx, b, ldb, c0, c1, y + m * ldy, ldy);
}

// Column blocks of at most 64 KiB of y, as the AVX-512 table's.
template <DType DT>
void gemv_n_rows_t(const float* x, int64_t ldx, int64_t M, const void* b, int64_t ldb, int64_t K,
                   int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const size_t esz = dtype_size(DT);
  const auto row = [&](int64_t k) { return static_cast<const char*>(b) + esz * size_t(k * ldb); };
  const int64_t nb = std::max<int64_t>(64, (int64_t(64) << 10) / (4 * M) / 8 * 8);
  for (int64_t c0 = n0; c0 < n1; c0 += nb) {
    const int64_t c1 = std::min(n1, c0 + nb);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) nrows_pass<DT, 4>(x + k, ldx, M, row(k), ldb, c0, c1, y, ldy);
    for (; k < K; ++k) nrows_pass<DT, 1>(x + k, ldx, M, row(k), ldb, c0, c1, y, ldy);
  }
}

void gemv_n_rows(const float* x, int64_t ldx, int64_t M, const void* b, DType dt, int64_t ldb,
                 int64_t K, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  switch (dt) {
    case DType::float16: return gemv_n_rows_t<DType::float16>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
    case DType::bfloat16:
      return gemv_n_rows_t<DType::bfloat16>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
    default: return gemv_n_rows_t<DType::float32>(x, ldx, M, b, ldb, K, n0, n1, y, ldy);
  }
}

const Kernels kAvx2 = {Isa::avx2, pack_a, pack_b,  kernel,  kernel_rows,
                       gemv,      dot_t,  nullptr, nullptr, gemv_n_rows};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace gemm_cpu
}  // namespace tf

#else
namespace tf {
namespace gemm_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace gemm_cpu
}  // namespace tf
#endif
