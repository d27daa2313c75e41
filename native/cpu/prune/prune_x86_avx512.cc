// AVX-512 pieces of the 2:4 sparse linear, on the lane words (tensorfuse/prune.h):
//
// GEMV (M = 1..7): two lane words (16 kept values, 32 columns) per step and weight row. Their 32
// position bits become a vpermt2ps index (value l: column (l / 2) * 4 + position) by one shift
// and one ternary-logic op, and vpermt2ps picks the 16 x values from the 32 columns in two
// registers: one FMA per 16 values, x read in place (no swizzled copy, no shuffle table). The
// AVX2 GEMV (one FMA per 8 values and row, one accumulator per row) ran into the FMA latency
// chain at about 30 GB/s on this Zen 5 while the dense GEMV streams 43; here two chains per row.
//
// Panel (M >= 8, float32 weights): the AVX2 panel micro-kernel (prune_x86_avx2.cc) with 16-wide
// vectors, so a 32-row x panel is two loads per kept weight instead of four. The general n:m panel
// and 16-bit panels are the AVX2 table's. Layouts: prune_kernels.h; build notes:
// common/x86_avx512.h.
#include "prune_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../common/x86_avx512.h"

namespace tf {
namespace prune_cpu {
namespace {

template <DType DT>
TF_AVX512 inline __m512 load16(const char* p) {
  if (DT == DType::float16)
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  if (DT == DType::bfloat16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
}

// 8 values in the low lanes, zeros above.
template <DType DT>
TF_AVX512 inline __m512 load8(const char* p) {
  if (DT == DType::float16)
    return _mm512_zextps256_ps512(
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  if (DT == DType::bfloat16)
    return _mm512_zextps256_ps512(_mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16)));
  return _mm512_zextps256_ps512(_mm256_loadu_ps(reinterpret_cast<const float*>(p)));
}

// vpermt2ps index of the 16 kept values of two lane words (bits: the first word in the low half):
// value l sits in column (l / 2) * 4 + (its 2 position bits) of the words' 32 columns (bit 4
// picks the second register).
TF_AVX512 inline __m512i lane_index(uint32_t bits) {
  const __m512i shifts =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base =
      _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  const __m512i pos = _mm512_srlv_epi32(_mm512_set1_epi32(int(bits)), shifts);
  return _mm512_ternarylogic_epi32(pos, _mm512_set1_epi32(3), base, 0xEA);  // (pos & 3) | base
}

TF_AVX512 inline __m512i pair_index(const uint16_t* lp) {
  uint32_t bits;
  std::memcpy(&bits, lp, sizeof bits);
  return lane_index(bits);
}

// s plus the products of a row's last Kc % 8 values (those without a lane word) with x.
inline float tail_sum(const float* x, const SparseView& w, int64_t j, float s) {
  const uint8_t* idx = w.indices + j * w.Kc;
  for (int64_t v = w.words * 8; v < w.Kc; ++v)
    s += x[kept_col(idx, v, w.n, w.m)] * load_as_f32(w.values, w.dt, j * w.Kc + v);
  return s;
}

// WR weight rows (j ..) against MX rows of x: per step (two lane words) each weight row's index
// and 16 values are loaded once for the MX rows of x, which then cost one vpermt2ps and one FMA
// each. Two accumulator chains per (row, row of x): even and odd steps.
template <DType DT, int WR, int MX>
TF_AVX512 void gemv_rows(const float* const* x, const SparseView& w, int64_t j, float* y,
                         int64_t ldy) {
  constexpr int64_t kEsz = DT == DType::float32 ? 4 : 2;
  const int64_t vs = w.Kc * kEsz;
  const char* vp = static_cast<const char*>(w.values) + j * vs;
  const uint16_t* lp = w.lanes + j * w.words;
  const int64_t ls = w.words;
  constexpr int H = MX <= 2 ? 2 : 1;  // accumulator chains per (row, row of x)
  // every loop over a fully unrolled: with one left rolled GCC 12 keeps the accumulators in
  // memory and stores them all at every step (kernels/x86 notes in bench/NOTES.md, session 13)
  __m512 a[H][WR][MX];
#pragma GCC unroll 2
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int r = 0; r < WR; ++r)
#pragma GCC unroll 4
      for (int m = 0; m < MX; ++m) a[h][r][m] = _mm512_setzero_ps();
  auto step = [&](int h, int64_t c) TF_AVX512 {
    __m512i idx[WR];
    __m512 v[WR];
#pragma GCC unroll 8
    for (int r = 0; r < WR; ++r) {
      idx[r] = pair_index(lp + r * ls + c);
      v[r] = load16<DT>(vp + r * vs + c * 8 * kEsz);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MX; ++m) {
      const __m512 xa = _mm512_loadu_ps(x[m] + c * 16);
      const __m512 xb = _mm512_loadu_ps(x[m] + c * 16 + 16);
#pragma GCC unroll 8
      for (int r = 0; r < WR; ++r)
        a[h][r][m] =
            _mm512_fmadd_ps(v[r], _mm512_permutex2var_ps(xa, idx[r], xb), a[h][r][m]);
    }
  };
  int64_t c = 0;
  for (; c + 4 <= w.words; c += 4) {
    step(0, c);
    step(H - 1, c + 2);
  }
  if (c + 2 <= w.words) {
    step(0, c);
    c += 2;
  }
  if (c < w.words) {
    // one last word: 8 values in the low lanes, the x lanes above them zeroed (never 0 * inf)
#pragma GCC unroll 8
    for (int r = 0; r < WR; ++r) {
      const __m512i idx = lane_index(lp[r * ls + c]);  // lanes 0-7 index the word's 16 columns
      const __m512 v = load8<DT>(vp + r * vs + c * 8 * kEsz);
#pragma GCC unroll 4
      for (int m = 0; m < MX; ++m) {
        const __m512 xv = _mm512_maskz_permutexvar_ps(0xFF, idx, _mm512_loadu_ps(x[m] + c * 16));
        a[H - 1][r][m] = _mm512_fmadd_ps(v, xv, a[H - 1][r][m]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < WR; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < MX; ++m) {
      const __m512 sum = H == 2 ? _mm512_add_ps(a[0][r][m], a[H - 1][r][m]) : a[0][r][m];
      y[m * ldy + j + r] = tail_sum(x[m], w, j + r, _mm512_reduce_add_ps(sum));
    }
}

template <DType DT, int MX>
TF_AVX512 void gemv_mx(const float* const* x, const SparseView& w, int64_t n0, int64_t n1,
                       float* y, int64_t ldy) {
  constexpr int WR = 4;
  int64_t j = n0;
  for (; j + WR <= n1; j += WR) gemv_rows<DT, WR, MX>(x, w, j, y, ldy);
  for (; j < n1; ++j) gemv_rows<DT, 1, MX>(x, w, j, y, ldy);
}

template <DType DT>
TF_AVX512 void gemv_dt(const float* const* x, int64_t M, const SparseView& w, int64_t n0,
                       int64_t n1, float* y, int64_t ldy) {
  for (int64_t m = 0; m < M; m += 4) {
    switch (std::min<int64_t>(4, M - m)) {
      case 1: gemv_mx<DT, 1>(x + m, w, n0, n1, y + m * ldy, ldy); break;
      case 2: gemv_mx<DT, 2>(x + m, w, n0, n1, y + m * ldy, ldy); break;
      case 3: gemv_mx<DT, 3>(x + m, w, n0, n1, y + m * ldy, ldy); break;
      default: gemv_mx<DT, 4>(x + m, w, n0, n1, y + m * ldy, ldy); break;
    }
  }
}

// 2:4 with lane words: the kernels above (x in place; the swizzled copies are not read); any
// other n:m: the AVX2 table's scalar loop.
TF_AVX512 void gemv(const float* const* x, const float* const* xs, int64_t M, const SparseView& w,
                    int64_t n0, int64_t n1, float* y, int64_t ldy) {
  if (!w.lanes) return kernels_avx2()->gemv(x, xs, M, w, n0, n1, y, ldy);
  switch (w.dt) {
    case DType::float16: return gemv_dt<DType::float16>(x, M, w, n0, n1, y, ldy);
    case DType::bfloat16: return gemv_dt<DType::bfloat16>(x, M, w, n0, n1, y, ldy);
    default: return gemv_dt<DType::float32>(x, M, w, n0, n1, y, ldy);
  }
}

// NC columns (j0 ..) x PR rows (PR / 16 vectors) over lane words [c0, c1): each kept weight is
// one broadcast and PR / 16 FMAs against the x panel row its position selects (from L1). Per
// word, the NC columns' 8 values are copied to the stack (broadcasts then address them by a
// constant offset, no pointer per column), and a value's x row is (l / 2) * 4 + position rows
// in: the position bits shifted straight to a byte offset and masked (2 integer ops).
template <int PR, int NC>
TF_AVX512 void panel_cols(const float* xt, const SparseView& w, int64_t c0, int64_t c1,
                          int64_t j0, float* ct, bool accumulate) {
  constexpr int kV = PR / 16;
  constexpr int kRowShift = PR == 64 ? 8 : PR == 32 ? 7 : 6;  // log2(PR * 4): bytes per x row
  static_assert(4 << kRowShift == PR * 16, "PR is 16, 32 or 64");
  __m512 a[NC][kV];  // (every loop over a unrolled, as in gemv_rows)
#pragma GCC unroll 8
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm512_loadu_ps(ct + q * PR + 16 * v) : _mm512_setzero_ps();
  const uint16_t* lp = w.lanes + j0 * w.words + c0;
  const int64_t lstride = w.words;
  const float* vp = static_cast<const float*>(w.values) + j0 * w.Kc + c0 * 8;
  const int64_t vstride = w.Kc;
  const char* xc = reinterpret_cast<const char*>(xt + c0 * 16 * PR);
  alignas(32) float wbuf[NC][8];
  for (int64_t c = c0; c < c1; ++c, ++lp, vp += 8, xc += 16 * PR * 4) {
    uint32_t word[NC];
#pragma GCC unroll 8
    for (int q = 0; q < NC; ++q) {
      word[q] = lp[q * lstride];
      _mm256_store_ps(wbuf[q], _mm256_loadu_ps(vp + q * vstride));
    }
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
      const char* xg = xc + (l >> 1) * 4 * (PR * 4);  // the value's group of 4 x rows
#pragma GCC unroll 8
      for (int q = 0; q < NC; ++q) {
        const int sh = kRowShift - 2 * l;  // position bits of value l -> byte offset
        const uint32_t off = (sh >= 0 ? word[q] << sh : word[q] >> -sh) & (3u << kRowShift);
        const float* xr = reinterpret_cast<const float*>(xg + off);
        const __m512 b = _mm512_set1_ps(wbuf[q][l]);
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v)
          a[q][v] = _mm512_fmadd_ps(b, _mm512_loadu_ps(xr + 16 * v), a[q][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) _mm512_storeu_ps(ct + q * PR + 16 * v, a[q][v]);
}

// 64-row panels: 6 columns x 4 vectors; 32-row: 6 x 2; 16-row: 8 x 1 (24, 12 and 8
// accumulators, enough chains for two FMA pipes).
template <int PR>
TF_AVX512 void panel_dt(const float* xt, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
                        int64_t n1, float* ct, bool accumulate) {
  constexpr int NC = PR == 16 ? 8 : PR == 64 ? 4 : 6;
  int64_t j = n0;
  for (; j + NC <= n1; j += NC)
    panel_cols<PR, NC>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
  for (; j < n1; ++j) panel_cols<PR, 1>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
}

TF_AVX512 void panel(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1,
                     int64_t n0, int64_t n1, float* ct, bool accumulate) {
  if (w.dt == DType::float32 && pr == 64)
    return panel_dt<64>(xt, w, c0, c1, n0, n1, ct, accumulate);
  if (w.dt == DType::float32 && pr == 32)
    return panel_dt<32>(xt, w, c0, c1, n0, n1, ct, accumulate);
  if (w.dt == DType::float32 && pr == 16)
    return panel_dt<16>(xt, w, c0, c1, n0, n1, ct, accumulate);
  kernels_avx2()->panel(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.gemv = gemv;
  k.panel = panel;
  k.max_pr_f32 = 64;
  return k;
}

}  // namespace

const Kernels* kernels_avx512() {
  if (!kernels_avx2()) return nullptr;
  static const Kernels table = make_table();
  return &table;
}

}  // namespace prune_cpu
}  // namespace tf

#else
namespace tf {
namespace prune_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace prune_cpu
}  // namespace tf
#endif
