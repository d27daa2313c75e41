// AVX2 + FMA + F16C sparse linear. Compiled with -mavx2 -mfma -mf16c (this file only) and picked
// at run time when cpuid reports all three. Layouts: tensorfuse/prune.h and prune_kernels.h.
//
// GEMV (M = 1, 2:4): per 8 kept values (16 columns, 4 groups) one FMA; the 8 matching x values
// are four 8-byte loads from a pair table of x (all 6 position pairs of every group,
// prune_kernels.h) picked by the row's 3-bit pair ids, packed in one uint16 per 8 values. Four
// rows at a time; they walk the 48 KiB table in the same order and share its lines. The weights
// are the only stream from memory: 8 values + 2 bytes per 16 columns, 17/32 of the dense float32
// bytes. Versions tried (bench/NOTES.md, A/B by process CPU time on a shared box): lane-crossing
// vpermps on 16-column windows (3 uops each on Zen 1); in-lane vpermilps of a swizzled x with the
// positions as index vector (shuffle-port bound); a table of all 36 quadruples per 8 columns (two
// 16-byte loads, but 295 KiB: a random L2 line fill per load); alternating the last two; a
// K-chunked quadruple table kept in L1 (cuts every row's value stream into 512-byte pieces).
#include "prune_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

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

template <DType DT>
void gemv_lanes(const float* x, const float* xq, const SparseView& w, int64_t n0, int64_t n1,
                float* y) {
  // The 8 x values of word c: four 8-byte loads from the pair table, picked by the 3-bit fields
  // of the row's pair word pw.
  auto xsel = [xq](uint32_t pw, int64_t c) {
    const float* g0 = xq + c * 48;  // 4 groups x 6 pairs x 2 floats per word
    __m128 lo = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(g0 + (pw & 7u) * 2)));
    lo = _mm_loadh_pi(lo, reinterpret_cast<const __m64*>(g0 + 12 + ((pw >> 3) & 7u) * 2));
    __m128 hi =
        _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(g0 + 24 + ((pw >> 6) & 7u) * 2)));
    hi = _mm_loadh_pi(hi, reinterpret_cast<const __m64*>(g0 + 36 + ((pw >> 9) & 7u) * 2));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  };
  auto tail = [&](int64_t j, float s) {
    const uint8_t* idx = w.indices + j * w.Kc;
    for (int64_t v = w.words * 8; v < w.Kc; ++v)
      s += x[kept_col(idx, v, w.n, w.m)] * load_as_f32(w.values, DT, j * w.Kc + v);
    return s;
  };
  constexpr int64_t kEsz = DT == DType::float32 ? 4 : 2;
  const uint16_t* pairs = reinterpret_cast<const uint16_t*>(w.pairs);
  const int64_t ps = w.words;         // pair-word stride between rows
  const int64_t vs = w.Kc * kEsz;     // value byte stride between rows
  int64_t j = n0;
  // Four rows at a time (four weight streams in flight), one pointer per stream and explicit
  // accumulators: an array form kept them in memory and stored them every step.
  for (; j + 4 <= n1; j += 4) {
    const uint16_t* pp = pairs + j * ps;
    const char* vp = static_cast<const char*>(w.values) + j * vs;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t c = 0; c < w.words; ++c, vp += 8 * kEsz) {
      a0 = _mm256_fmadd_ps(load8<DT>(vp, 0), xsel(pp[c], c), a0);
      a1 = _mm256_fmadd_ps(load8<DT>(vp + vs, 0), xsel(pp[ps + c], c), a1);
      a2 = _mm256_fmadd_ps(load8<DT>(vp + 2 * vs, 0), xsel(pp[2 * ps + c], c), a2);
      a3 = _mm256_fmadd_ps(load8<DT>(vp + 3 * vs, 0), xsel(pp[3 * ps + c], c), a3);
    }
    y[j] = tail(j, hsum(a0));
    y[j + 1] = tail(j + 1, hsum(a1));
    y[j + 2] = tail(j + 2, hsum(a2));
    y[j + 3] = tail(j + 3, hsum(a3));
  }
  for (; j < n1; ++j) {
    const uint16_t* pp = pairs + j * ps;
    const char* vp = static_cast<const char*>(w.values) + j * vs;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < w.words; ++c, vp += 8 * kEsz)
      acc = _mm256_fmadd_ps(load8<DT>(vp, 0), xsel(pp[c], c), acc);
    y[j] = tail(j, hsum(acc));
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

void gemv_general(const float* x, const SparseView& w, int64_t n0, int64_t n1, float* y) {
  switch (w.dt) {
    case DType::float16: return gemv_general_dt<DType::float16>(x, w, n0, n1, y);
    case DType::bfloat16: return gemv_general_dt<DType::bfloat16>(x, w, n0, n1, y);
    default: return gemv_general_dt<DType::float32>(x, w, n0, n1, y);
  }
}

void gemv(const float* x, const float* xq, const SparseView& w, int64_t n0, int64_t n1, float* y) {
  if (!w.pairs || !xq) return gemv_general(x, w, n0, n1, y);
  switch (w.dt) {
    case DType::float16: return gemv_lanes<DType::float16>(x, xq, w, n0, n1, y);
    case DType::bfloat16: return gemv_lanes<DType::bfloat16>(x, xq, w, n0, n1, y);
    default: return gemv_lanes<DType::float32>(x, xq, w, n0, n1, y);
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
  __m256 a[NC][kV];
  for (int q = 0; q < NC; ++q)
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
  for (int q = 0; q < NC; ++q)
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
  __m256 a[NC][kV];
  for (int q = 0; q < NC; ++q)
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm256_loadu_ps(ct + q * PR + 8 * v) : _mm256_setzero_ps();
  const uint8_t* ip = w.indices + j0 * w.Kc;
  const int64_t base = j0 * w.Kc;
  for (int64_t g = g0; g < g1; ++g) {
    const float* xg = xt + g * w.m * PR;
    for (int i = 0; i < w.n; ++i) {
      const int64_t v = g * w.n + i;
      for (int q = 0; q < NC; ++q) {
        const float* xr = xg + int64_t(ip[q * w.Kc + v]) * PR;
        const __m256 b = bcast1<DT>(w.values, base + q * w.Kc + v);
        for (int u = 0; u < kV; ++u) a[q][u] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xr + 8 * u), a[q][u]);
      }
    }
  }
  for (int q = 0; q < NC; ++q)
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

const Kernels kAvx2 = {Isa::avx2, gemv, panel, panel_general};

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
