// AVX2 + FMA + F16C sparse linear. Compiled with -mavx2 -mfma -mf16c (this file only) and picked
// at run time when cpuid reports all three. Layouts: tensorfuse/prune.h and prune_kernels.h.
//
// GEMV (M = 1, 2:4): per 8 kept values (16 columns, 4 groups) one FMA; the 8 matching x values
// come from the word's 16 columns of swizzled x (two 8-float loads shared by the rows in flight),
// each put in its value's slot by one vpshufb with a control from a 4 KiB table indexed by the
// row's pair ids, and one blend. Four rows at a time, their pair words interleaved so that the
// four cost one 8-byte load and one stream. The weights are the only stream from memory: 8 values
// + 2 bytes per 16 columns, 17/32 of the dense float32 bytes. Versions tried (bench/NOTES.md):
// lane-crossing vpermps on 16-column windows; in-lane vpermilps of swizzled x with the positions
// as index vector (computed, or from a table: the variable vpermilps is slow on Zen 1); a table
// of all 36 quadruples per 8 columns (a random L2 line fill per load); a table of every group's
// 6 pairs (four 8-byte loads per 8 values; 48 KiB, and with per-row pair words each row a second
// stream: 1.4x the dense GEMV against about 1.7x now); expanding the weights to 16 columns by
// the shuffle instead of x (same speed, but 0 * inf at pruned columns would give NaN).
#include "prune_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace tf {
namespace prune_cpu {
namespace {

template <DType DT>
inline __m256 load8(const void* p, int64_t i) {
  if (DT == DType::float16)
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  if (DT == DType::bfloat16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i))),
        16));
  return _mm256_loadu_ps(static_cast<const float*>(p) + i);
}

// One weight broadcast to 8 lanes.
template <DType DT>
inline __m256 bcast1(const void* p, int64_t i) {
  if (DT == DType::float16) return _mm256_set1_ps(_cvtsh_ss(static_cast<const uint16_t*>(p)[i]));
  if (DT == DType::bfloat16) {
    const uint32_t u = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
    return _mm256_castsi256_ps(_mm256_set1_epi32(int(u)));
  }
  return _mm256_broadcast_ss(static_cast<const float*>(p) + i);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// vpshufb controls of the M = 1 kernel, indexed by one 6-bit half of a pair word (pair ids a in
// bits 0-2, b in bits 3-5): c[h][a | b << 3] moves, in the low 128-bit lane, the two kept x
// values of a group with pair id a (the lane holds that group's 4 columns) into float slots
// 2h and 2h + 1, and in the high lane those of pair id b. The other slots are left to the blend.
struct XSelTable {
  alignas(32) uint8_t c[2][64][32];
  constexpr XSelTable() : c{} {
    constexpr int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
    for (int h = 0; h < 2; ++h)
      for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b)
          for (int lane = 0; lane < 2; ++lane)
            for (int s = 0; s < 2; ++s)
              for (int byte = 0; byte < 4; ++byte)
                c[h][a | (b << 3)][lane * 16 + (2 * h + s) * 4 + byte] =
                    uint8_t(kPairs[lane ? b : a][s] * 4 + byte);
  }
};
constexpr XSelTable kXSel;

// The 8 x values of a lane word, in the order of its 8 kept values: xa / xb are the word's 16
// columns of swizzled x ([g0 | g2] and [g1 | g3]); one shuffle each puts groups 0 / 2 in slots
// 0-1 / 4-5 and groups 1 / 3 in slots 2-3 / 6-7, and a blend joins them.
inline __m256 xsel(__m256i xa, __m256i xb, uint32_t pw) {
  const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(kXSel.c[0][pw & 63u]));
  const __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(kXSel.c[1][(pw >> 6) & 63u]));
  return _mm256_castsi256_ps(
      _mm256_blend_epi32(_mm256_shuffle_epi8(xa, c0), _mm256_shuffle_epi8(xb, c1), 0xcc));
}

// s plus the products of a row's last Kc % 8 values (those without a lane word) with x.
template <DType DT>
inline float tail_sum(const float* x, const SparseView& w, int64_t j, float s) {
  const uint8_t* idx = w.indices + j * w.Kc;
  for (int64_t v = w.words * 8; v < w.Kc; ++v)
    s += x[kept_col(idx, v, w.n, w.m)] * load_as_f32(w.values, DT, j * w.Kc + v);
  return s;
}

// One row of x: four weight rows at a time.
template <DType DT>
void gemv_lanes(const float* x, const float* xs, const SparseView& w, int64_t n0, int64_t n1,
                float* y) {
  auto tail = [&](int64_t j, float s) { return tail_sum<DT>(x, w, j, s); };
  auto xload = [xs](int64_t c, int half) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(xs + c * 16 + half * 8));
  };
  constexpr int64_t kEsz = DT == DType::float32 ? 4 : 2;
  const int64_t vs = w.Kc * kEsz;  // value byte stride between rows
  for (int64_t j = n0; j < n1;) {
    const char* vp = static_cast<const char*>(w.values) + j * vs;
    if (j % 4 == 0 && j + 4 <= n1) {
      // A whole block of 4 rows: their 4 pair words of a lane word are one 8-byte load, and the
      // 4 value streams share the x loads. One pointer per stream and named accumulators (an
      // array form kept them in memory and stored them every step).
      const uint16_t* pp = w.pairs + j * w.words;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t c = 0; c < w.words; ++c, vp += 8 * kEsz, pp += 4) {
        uint64_t p4;
        std::memcpy(&p4, pp, sizeof p4);
        const __m256i xa = xload(c, 0), xb = xload(c, 1);
        a0 = _mm256_fmadd_ps(load8<DT>(vp, 0), xsel(xa, xb, uint32_t(p4)), a0);
        a1 = _mm256_fmadd_ps(load8<DT>(vp + vs, 0), xsel(xa, xb, uint32_t(p4 >> 16)), a1);
        a2 = _mm256_fmadd_ps(load8<DT>(vp + 2 * vs, 0), xsel(xa, xb, uint32_t(p4 >> 32)), a2);
        a3 = _mm256_fmadd_ps(load8<DT>(vp + 3 * vs, 0), xsel(xa, xb, uint32_t(p4 >> 48)), a3);
      }
      y[j] = tail(j, hsum(a0));
      y[j + 1] = tail(j + 1, hsum(a1));
      y[j + 2] = tail(j + 2, hsum(a2));
      y[j + 3] = tail(j + 3, hsum(a3));
      j += 4;
    } else {
      // One row (the last, partial block of the weight, or a range cut inside a block).
      const uint16_t* pp = w.pairs + prune_pair_word_index(w.N, w.words, j, 0);
      const int64_t stride = prune_pair_word_index(w.N, w.words, j, 1) - (pp - w.pairs);
      __m256 acc = _mm256_setzero_ps();
      for (int64_t c = 0; c < w.words; ++c, vp += 8 * kEsz, pp += stride)
        acc = _mm256_fmadd_ps(load8<DT>(vp, 0), xsel(xload(c, 0), xload(c, 1), *pp), acc);
      y[j] = tail(j, hsum(acc));
      j += 1;
    }
  }
}

// General n:m (no lane layout) at M < 4: a scalar loop over the kept values, weights widened
// inline (the generic file's loader is a call per weight).
template <DType DT>
inline float wval(const void* p, int64_t i) {
  if (DT == DType::float16) return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
  if (DT == DType::bfloat16) {
    const uint32_t u = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(u))));
  }
  return static_cast<const float*>(p)[i];
}

template <DType DT>
void gemv_general_dt(const float* x, const SparseView& w, int64_t n0, int64_t n1, float* y) {
  for (int64_t j = n0; j < n1; ++j) {
    const uint8_t* idx = w.indices + j * w.Kc;
    const int64_t base = j * w.Kc;
    float s = 0.0f;
    for (int64_t v = 0; v < w.Kc; ++v) s += x[kept_col(idx, v, w.n, w.m)] * wval<DT>(w.values, base + v);
    y[j] = s;
  }
}

// MX (2..4) rows of x against WR (1 or 2) weight rows j.. whose pair words of lane word c are
// pp[c * ps + r]: each weight row's values and shuffle controls are loaded once per word for
// all MX rows of x, which then cost two shuffles, a blend and an FMA each.
template <DType DT, int WR, int MX>
void rows_mx(const float* const* x, const float* const* xs, const SparseView& w, int64_t j,
             const uint16_t* pp, int64_t ps, float* y, int64_t ldy) {
  constexpr int64_t kEsz = DT == DType::float32 ? 4 : 2;
  const int64_t vs = w.Kc * kEsz;
  const char* vp = static_cast<const char*>(w.values) + j * vs;
  __m256 a[WR][MX];
#pragma GCC unroll 2
  for (int r = 0; r < WR; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < MX; ++m) a[r][m] = _mm256_setzero_ps();
  for (int64_t c = 0; c < w.words; ++c, vp += 8 * kEsz, pp += ps) {
    __m256i c0[WR], c1[WR];
    __m256 v[WR];
#pragma GCC unroll 2
    for (int r = 0; r < WR; ++r) {
      const uint32_t pw = pp[r];
      c0[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kXSel.c[0][pw & 63u]));
      c1[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kXSel.c[1][(pw >> 6) & 63u]));
      v[r] = load8<DT>(vp + r * vs, 0);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MX; ++m) {
      const __m256i xa = _mm256_load_si256(reinterpret_cast<const __m256i*>(xs[m] + c * 16));
      const __m256i xb = _mm256_load_si256(reinterpret_cast<const __m256i*>(xs[m] + c * 16 + 8));
#pragma GCC unroll 2
      for (int r = 0; r < WR; ++r) {
        const __m256 xv = _mm256_castsi256_ps(_mm256_blend_epi32(
            _mm256_shuffle_epi8(xa, c0[r]), _mm256_shuffle_epi8(xb, c1[r]), 0xcc));
        a[r][m] = _mm256_fmadd_ps(v[r], xv, a[r][m]);
      }
    }
  }
  for (int r = 0; r < WR; ++r)
    for (int m = 0; m < MX; ++m) y[m * ldy + j + r] = tail_sum<DT>(x[m], w, j + r, hsum(a[r][m]));
}

// MX rows of x over weight rows [n0, n1): pairs of rows inside whole 4-row blocks of the pair
// words, single rows elsewhere.
template <DType DT, int MX>
void gemv_lanes_mx(const float* const* x, const float* const* xs, const SparseView& w, int64_t n0,
                   int64_t n1, float* y, int64_t ldy) {
  for (int64_t j = n0; j < n1;) {
    const int64_t b0 = j / 4 * 4;
    if (b0 + 4 <= w.N && j + 2 <= n1 && (j - b0) % 2 == 0) {
      rows_mx<DT, 2, MX>(x, xs, w, j, w.pairs + b0 * w.words + (j - b0), 4, y, ldy);
      j += 2;
    } else {
      const int64_t i0 = prune_pair_word_index(w.N, w.words, j, 0);
      const int64_t ps = prune_pair_word_index(w.N, w.words, j, 1) - i0;
      rows_mx<DT, 1, MX>(x, xs, w, j, w.pairs + i0, ps, y, ldy);
      j += 1;
    }
  }
}

template <DType DT>
void gemv_lanes_rows(const float* const* x, const float* const* xs, int64_t M, const SparseView& w,
                     int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for (int64_t m = 0; m < M; m += kGemvRows) {
    switch (std::min<int64_t>(kGemvRows, M - m)) {
      case 1: gemv_lanes<DT>(x[m], xs[m], w, n0, n1, y + m * ldy); break;
      case 2: gemv_lanes_mx<DT, 2>(x + m, xs + m, w, n0, n1, y + m * ldy, ldy); break;
      case 3: gemv_lanes_mx<DT, 3>(x + m, xs + m, w, n0, n1, y + m * ldy, ldy); break;
      default: gemv_lanes_mx<DT, 4>(x + m, xs + m, w, n0, n1, y + m * ldy, ldy); break;
    }
  }
}

void gemv(const float* const* x, const float* const* xs, int64_t M, const SparseView& w, int64_t n0,
          int64_t n1, float* y, int64_t ldy) {
  if (!w.pairs || !xs || !xs[0]) {
    for (int64_t m = 0; m < M; ++m) {
      float* ym = y + m * ldy;
      switch (w.dt) {
        case DType::float16: gemv_general_dt<DType::float16>(x[m], w, n0, n1, ym); break;
        case DType::bfloat16: gemv_general_dt<DType::bfloat16>(x[m], w, n0, n1, ym); break;
        default: gemv_general_dt<DType::float32>(x[m], w, n0, n1, ym); break;
      }
    }
    return;
  }
  switch (w.dt) {
    case DType::float16: return gemv_lanes_rows<DType::float16>(x, xs, M, w, n0, n1, y, ldy);
    case DType::bfloat16: return gemv_lanes_rows<DType::bfloat16>(x, xs, M, w, n0, n1, y, ldy);
    default: return gemv_lanes_rows<DType::float32>(x, xs, M, w, n0, n1, y, ldy);
  }
}

// Panel (M >= 4, compute bound): NC columns x PR rows of accumulators (2 x 32, 4 x 16 or 4 x 8:
// 8, 8 or 4 ymm); each kept weight is one broadcast and PR / 8 FMAs against the x panel row its
// position selects, the FMAs taking x straight from L1. Loads, not FMAs, set the pace on Zen 1, so
// 32-row panels (half the broadcasts and index decodes per FMA) took M = 128 from 0.83x the dense
// GEMM with 16-row panels to about 1.5x (bench/NOTES.md).
// NC columns (j0 ..) x PR rows (kV vectors) over lane words [c0, c1).
template <DType DT, int PR, int NC>
inline void panel_cols(const float* xt, const SparseView& w, int64_t c0, int64_t c1, int64_t j0,
                       float* ct, bool accumulate) {
  constexpr int kV = PR / 8;
  // every loop over a fully unrolled: with one left rolled GCC 12 keeps the accumulators in
  // memory and stores them all at every step (bench/NOTES.md, Zen 5 session 13)
  __m256 a[NC][kV];
#pragma GCC unroll 4
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm256_loadu_ps(ct + q * PR + 8 * v) : _mm256_setzero_ps();
  // One pointer per stream, advanced per word, columns q at fixed strides from it (few general
  // registers: an earlier form kept base + c * 8 per column and spilled them in the hot loop).
  constexpr int64_t kEsz = DT == DType::float32 ? 4 : 2;
  const uint16_t* lp = w.lanes + j0 * w.words + c0;
  const int64_t lstride = w.words;
  const char* vp = static_cast<const char*>(w.values) + (j0 * w.Kc + c0 * 8) * kEsz;
  const int64_t vstride = w.Kc * kEsz;
  alignas(32) float wbuf[NC][8];
  const float* xc = xt + c0 * 16 * PR;
  for (int64_t c = c0; c < c1; ++c, ++lp, vp += 8 * kEsz, xc += 16 * PR) {
    uint32_t word[NC];
    const float* wv[NC];
#pragma GCC unroll 4
    for (int q = 0; q < NC; ++q) {
      word[q] = lp[q * lstride];
      if (DT == DType::float32) {
        wv[q] = reinterpret_cast<const float*>(vp + q * vstride);
      } else {
        _mm256_store_ps(wbuf[q], load8<DT>(vp + q * vstride, 0));
        wv[q] = wbuf[q];
      }
    }
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
#pragma GCC unroll 4
      for (int q = 0; q < NC; ++q) {
        const float* xr = xc + ((l >> 1) * 4 + (word[q] & 3u)) * PR;
        word[q] >>= 2;
        const __m256 b = _mm256_broadcast_ss(wv[q] + l);
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) a[q][v] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xr + 8 * v), a[q][v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) _mm256_storeu_ps(ct + q * PR + 8 * v, a[q][v]);
}

// PR = 32: 2 columns x 4 vectors; PR = 16: 4 columns x 2 vectors (8 accumulators either way).
template <DType DT, int PR>
void panel_dt(const float* xt, const SparseView& w, int64_t c0, int64_t c1, int64_t n0, int64_t n1,
              float* ct, bool accumulate) {
  constexpr int NC = PR == 32 ? 2 : 4;  // PR = 8: 4 columns x 1 vector
  int64_t j = n0;
  for (; j + NC <= n1; j += NC) panel_cols<DT, PR, NC>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
  for (; j < n1; ++j) panel_cols<DT, PR, 1>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
}

template <DType DT>
void panel_pr(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
              int64_t n1, float* ct, bool accumulate) {
  if (pr == 32) panel_dt<DT, 32>(xt, w, c0, c1, n0, n1, ct, accumulate);
  else if (pr == 16) panel_dt<DT, 16>(xt, w, c0, c1, n0, n1, ct, accumulate);
  else panel_dt<DT, 8>(xt, w, c0, c1, n0, n1, ct, accumulate);
}

void panel(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
           int64_t n1, float* ct, bool accumulate) {
  switch (w.dt) {
    case DType::float16: return panel_pr<DType::float16>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
    case DType::bfloat16: return panel_pr<DType::bfloat16>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
    default: return panel_pr<DType::float32>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
  }
}

// Any n:m: the panel micro-kernel with each value's column from its index byte (the group is
// shared by the NC columns, so one multiply per value); weights broadcast from scalars.
template <DType DT, int PR, int NC>
inline void panel_general_cols(const float* xt, const SparseView& w, int64_t g0, int64_t g1,
                               int64_t j0, float* ct, bool accumulate) {
  constexpr int kV = PR / 8;
  // every loop over a fully unrolled: with one left rolled GCC 12 keeps the accumulators in
  // memory and stores them all at every step (bench/NOTES.md, Zen 5 session 13)
  __m256 a[NC][kV];
#pragma GCC unroll 4
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm256_loadu_ps(ct + q * PR + 8 * v) : _mm256_setzero_ps();
  const uint8_t* ip = w.indices + j0 * w.Kc;
  const int64_t base = j0 * w.Kc;
  for (int64_t g = g0; g < g1; ++g) {
    const float* xg = xt + g * w.m * PR;
    for (int i = 0; i < w.n; ++i) {
      const int64_t v = g * w.n + i;
      for (int q = 0; q < NC; ++q) {
        const float* xr = xg + kept_pos(ip[q * w.Kc + v], w.m) * PR;
        const __m256 b = bcast1<DT>(w.values, base + q * w.Kc + v);
        for (int u = 0; u < kV; ++u) a[q][u] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xr + 8 * u), a[q][u]);
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < NC; ++q)
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) _mm256_storeu_ps(ct + q * PR + 8 * v, a[q][v]);
}

template <DType DT, int PR>
void panel_general_dt(const float* xt, const SparseView& w, int64_t g0, int64_t g1, int64_t n0,
                      int64_t n1, float* ct, bool accumulate) {
  constexpr int NC = PR == 32 ? 2 : 4;
  int64_t j = n0;
  for (; j + NC <= n1; j += NC)
    panel_general_cols<DT, PR, NC>(xt, w, g0, g1, j, ct + (j - n0) * PR, accumulate);
  for (; j < n1; ++j) panel_general_cols<DT, PR, 1>(xt, w, g0, g1, j, ct + (j - n0) * PR, accumulate);
}

template <DType DT>
void panel_general_pr(const float* xt, int pr, const SparseView& w, int64_t g0, int64_t g1,
                      int64_t n0, int64_t n1, float* ct, bool accumulate) {
  if (pr == 32) panel_general_dt<DT, 32>(xt, w, g0, g1, n0, n1, ct, accumulate);
  else if (pr == 16) panel_general_dt<DT, 16>(xt, w, g0, g1, n0, n1, ct, accumulate);
  else panel_general_dt<DT, 8>(xt, w, g0, g1, n0, n1, ct, accumulate);
}

void panel_general(const float* xt, int pr, const SparseView& w, int64_t g0, int64_t g1,
                   int64_t n0, int64_t n1, float* ct, bool accumulate) {
  switch (w.dt) {
    case DType::float16: return panel_general_pr<DType::float16>(xt, pr, w, g0, g1, n0, n1, ct, accumulate);
    case DType::bfloat16: return panel_general_pr<DType::bfloat16>(xt, pr, w, g0, g1, n0, n1, ct, accumulate);
    default: return panel_general_pr<DType::float32>(xt, pr, w, g0, g1, n0, n1, ct, accumulate);
  }
}

const Kernels kAvx2 = {Isa::avx2, gemv, panel, panel_general, 32};

}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace prune_cpu
}  // namespace tf

#else
namespace tf {
namespace prune_cpu {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace prune_cpu
}  // namespace tf
#endif
