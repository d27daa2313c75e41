// AVX2 + FMA + F16C sparse linear. Compiled with -mavx2 -mfma -mf16c (this file only) and picked
// at run time when cpuid reports all three. Layouts: tensorfuse/prune.h and prune_kernels.h.
//
// GEMV (M = 1, 2:4): per 8 kept values (16 columns), two 8-wide loads of the swizzled x (from
// L1), the 8 uint8 positions zero-extended into an index vector (vpmovzxbd from memory), one
// in-lane vpermilps per x load, a blend and one FMA. The weights are the only stream from
// memory: 8 values + 8 position bytes per 16 columns, 5/8 of the dense float32 bytes. Versions
// tried (bench/NOTES.md): lane-crossing vpermps on 16-column windows with 4-bit fields (slow on
// Zen 1: 3 uops each), 2-bit fields expanded with vpsrlvd (fewer bytes, but more shuffle-port
// uops: slower than the byte positions in a noisy microbenchmark).
// Panel (M >= 4, compute bound): 2 columns x 32 rows (or 4 x 16 for small M) of accumulators
// (8 ymm); each kept weight is one broadcast and 4 (2) FMAs against the x panel row its position
// selects. The FMAs take their x operand from L1, so loads, not FMAs, set the pace: 32-row panels
// halve the broadcasts and index decodes per FMA (M = 128: 1.46x the dense GEMM against 0.83x
// with 16-row panels, one noisy run).
#include "prune_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

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

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <DType DT>
void gemv_lanes(const float* x, const float* xs, const SparseView& w, int64_t n0, int64_t n1,
                float* y) {
  // value l of a word sits in group l / 2; with xs swizzled, groups 0, 2 are the halves of the
  // first load and groups 1, 3 of the second, so an in-lane vpermilps picks each value's x.
  // Four rows at a time: four weight streams in flight (one stream kept the prefetchers too
  // far behind: 6 GB/s on one thread against 16 for the dense GEMV's four), x loaded once.
  int64_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    int64_t base[4];
    __m256 acc[4];
    for (int r = 0; r < 4; ++r) {
      base[r] = (j + r) * w.Kc;
      acc[r] = _mm256_setzero_ps();
    }
    for (int64_t c = 0; c < w.words; ++c) {
      const __m256 xa = _mm256_loadu_ps(xs + c * 16);
      const __m256 xb = _mm256_loadu_ps(xs + c * 16 + 8);
      for (int r = 0; r < 4; ++r) {
        const __m256i idx = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.indices + base[r] + c * 8)));
        const __m256 xsel =
            _mm256_blend_ps(_mm256_permutevar_ps(xa, idx), _mm256_permutevar_ps(xb, idx), 0xCC);
        acc[r] = _mm256_fmadd_ps(load8<DT>(w.values, base[r] + c * 8), xsel, acc[r]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      float s = hsum(acc[r]);
      const uint8_t* idx = w.indices + base[r];
      for (int64_t v = w.words * 8; v < w.Kc; ++v)
        s += x[kept_col(idx, v, w.n, w.m)] * load_w(w.values, DT, base[r] + v);
      y[j + r] = s;
    }
  }
  for (; j < n1; ++j) {
    const int64_t base = j * w.Kc;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < w.words; ++c) {
      const __m256 xa = _mm256_loadu_ps(xs + c * 16);
      const __m256 xb = _mm256_loadu_ps(xs + c * 16 + 8);
      const __m256i idx = _mm256_cvtepu8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.indices + base + c * 8)));
      const __m256 xsel =
          _mm256_blend_ps(_mm256_permutevar_ps(xa, idx), _mm256_permutevar_ps(xb, idx), 0xCC);
      acc = _mm256_fmadd_ps(load8<DT>(w.values, base + c * 8), xsel, acc);
    }
    float s = hsum(acc);
    const uint8_t* idx = w.indices + base;
    for (int64_t v = w.words * 8; v < w.Kc; ++v)
      s += x[kept_col(idx, v, w.n, w.m)] * load_w(w.values, DT, base + v);
    y[j] = s;
  }
}

// General n:m (no lane layout): the scalar loop, vectorised over 8 rows of output at a time would
// need a gather per value; these shapes are for correctness, 2:4 is the fast one.
void gemv_general(const float* x, const SparseView& w, int64_t n0, int64_t n1, float* y) {
  for (int64_t j = n0; j < n1; ++j) {
    const uint8_t* idx = w.indices + j * w.Kc;
    const int64_t base = j * w.Kc;
    float s = 0.0f;
    for (int64_t v = 0; v < w.Kc; ++v) s += x[kept_col(idx, v, w.n, w.m)] * load_w(w.values, w.dt, base + v);
    y[j] = s;
  }
}

void gemv(const float* x, const float* xs, const SparseView& w, int64_t n0, int64_t n1, float* y) {
  if (!w.lanes || !xs) return gemv_general(x, w, n0, n1, y);
  switch (w.dt) {
    case DType::float16: return gemv_lanes<DType::float16>(x, xs, w, n0, n1, y);
    case DType::bfloat16: return gemv_lanes<DType::bfloat16>(x, xs, w, n0, n1, y);
    default: return gemv_lanes<DType::float32>(x, xs, w, n0, n1, y);
  }
}

// NC columns (j0 ..) x PR rows (kV vectors) over lane words [c0, c1).
template <DType DT, int PR, int NC>
inline void panel_cols(const float* xt, const SparseView& w, int64_t c0, int64_t c1, int64_t j0,
                       float* ct, bool accumulate) {
  constexpr int kV = PR / 8;
  __m256 a[NC][kV];
  for (int q = 0; q < NC; ++q)
    for (int v = 0; v < kV; ++v)
      a[q][v] = accumulate ? _mm256_loadu_ps(ct + q * PR + 8 * v) : _mm256_setzero_ps();
  const uint16_t* lw[NC];
  int64_t base[NC];
  for (int q = 0; q < NC; ++q) {
    lw[q] = w.lanes + (j0 + q) * w.words;
    base[q] = (j0 + q) * w.Kc;
  }
  alignas(32) float wbuf[NC][8];
  for (int64_t c = c0; c < c1; ++c) {
    uint32_t word[NC];
    const float* wv[NC];
    for (int q = 0; q < NC; ++q) {
      word[q] = lw[q][c];
      if (DT == DType::float32) {
        wv[q] = static_cast<const float*>(w.values) + base[q] + c * 8;
      } else {
        _mm256_store_ps(wbuf[q], load8<DT>(w.values, base[q] + c * 8));
        wv[q] = wbuf[q];
      }
    }
    const float* xc = xt + c * 16 * PR;
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
#pragma GCC unroll 4
      for (int q = 0; q < NC; ++q) {
        const float* xr = xc + ((l >> 1) * 4 + ((word[q] >> (2 * l)) & 3u)) * PR;
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
  constexpr int NC = PR == 32 ? 2 : 4;
  int64_t j = n0;
  for (; j + NC <= n1; j += NC) panel_cols<DT, PR, NC>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
  for (; j < n1; ++j) panel_cols<DT, PR, 1>(xt, w, c0, c1, j, ct + (j - n0) * PR, accumulate);
}

template <DType DT>
void panel_pr(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
              int64_t n1, float* ct, bool accumulate) {
  if (pr == 32) panel_dt<DT, 32>(xt, w, c0, c1, n0, n1, ct, accumulate);
  else panel_dt<DT, 16>(xt, w, c0, c1, n0, n1, ct, accumulate);
}

void panel(const float* xt, int pr, const SparseView& w, int64_t c0, int64_t c1, int64_t n0,
           int64_t n1, float* ct, bool accumulate) {
  switch (w.dt) {
    case DType::float16: return panel_pr<DType::float16>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
    case DType::bfloat16: return panel_pr<DType::bfloat16>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
    default: return panel_pr<DType::float32>(xt, pr, w, c0, c1, n0, n1, ct, accumulate);
  }
}

const Kernels kAvx2 = {Isa::avx2, gemv, panel};

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
