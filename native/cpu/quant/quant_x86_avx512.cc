// AVX-512 VNNI kernels for the integer paths of the quantized linear layer (W8A8 and W4A8), the
// float-activation GEMV (16-lane forms of the AVX2 table's; int8 also on three int8 digits of x
// through vpdpbusd) and the float prefill's int4 dequantization in lane order. Layouts:
// tensorfuse/quant.h; contracts: quant_kernels.h. The activation quantizer and the in-order
// dequantization are the AVX2 table's (quant_x86_avx2.cc).
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of four products into an
// int32 lane, with no 16-bit intermediate to saturate (Intel SDM, VPDPBUSD). Both W8A8 operands
// are signed, so one side is moved to unsigned by adding 128 (xor 0x80) and the excess taken off
// once per group: sum (w + 128) * x = sum w * x + 128 * sum x, with sum x per group of each row of
// x computed once per call (i8_rows_prepare). |sum (w + 128) * x| <= 255 * 128 * 65536 < 2^31 for
// the groups of at most kMaxI8Group that int8 activations take, so the int32 sums are exact. int4
// codes are unsigned already (0..15) and meet the int8 activations directly. Build notes:
// common/x86_avx512.h.
#include "quant_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "../common/x86_avx2_load.h"  // x86::hsum: the AVX2 table's lane order
#include "../common/x86_avx512.h"
#include "../common/x86_avx512_transpose.h"
#include "quant_rows.h"
#include "quant_x86_i4_parts.h"
#include "tensorfuse/scratch.h"

namespace tf {
namespace quant_cpu {
namespace {

constexpr int kScratchSlot = 3;  // not used by the callers of these kernels (MoE holds slot 2)

// acc + the dword sums of four u8 x s8 products (vpdpbusd). Through inline asm with GCC: its
// intrinsic made GCC 12 copy every accumulator to another register at every step of a loop (24
// moves per 12 vpdpbusd in the W8A8 micro-tile).
TF_AVX512 inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
#if defined(__GNUC__)
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, u8, s8);
#endif
}

// Lane l of the result = the sum of all 16 lanes of a[l], l < 8 (integer adds: exact in any
// order). Halves are folded pairwise: 512 -> 256 bits (two accumulators per register), 256 -> 128
// (four per register), then within 128-bit lanes.
TF_AVX512 inline __m256i reduce8(const __m512i* a) {
  __m512i b[4];
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], 0x44),
                            _mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], 0xee));
  // b[i]: 256-bit half h holds 8 partial sums of a[2i + h]
  const __m512i c0 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[0], b[1], 0x88),
                                      _mm512_shuffle_i32x4(b[0], b[1], 0xdd));
  const __m512i c1 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2], b[3], 0x88),
                                      _mm512_shuffle_i32x4(b[2], b[3], 0xdd));
  // c0: 128-bit lane j holds 4 partial sums of a[j]; c1 those of a[4 + j]
  const __m512i d =
      _mm512_add_epi32(_mm512_unpacklo_epi32(c0, c1), _mm512_unpackhi_epi32(c0, c1));
  const __m512i e = _mm512_add_epi32(d, _mm512_shuffle_epi32(d, _MM_PERM_BADC));
  // e: 128-bit lane j = [sum a[j], sum a[4 + j], (the same twice)]
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, e));
}

// Bytes [0, len) of p, the rest zero (len <= 64); a masked load reads nothing past len.
TF_AVX512 inline __m512i load_bytes(const void* p, int64_t len) {
  const __mmask64 m = len >= 64 ? ~__mmask64(0) : (__mmask64(1) << len) - 1;
  return _mm512_maskz_loadu_epi8(m, p);
}

// ---- W8A8, few rows of x (decode): weight rows read in place ----------------------------------

// MX rows of x against R = 8 / MX weight rows (R * MX lanes of one vector): per group, the
// products of every (row, x row) pair in one accumulator, reduced to one lane each by reduce8,
// the excess 128 * xsum taken off, then lane l = r * MX + i takes
// acc = fma(s[n + r, g], float(isum), acc), as the generic kernel does: bitwise its result.
template <int MX>
TF_AVX512 void rows_i8(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t m,
                       int64_t n, float* c, int64_t ldc) {
  constexpr int R = 8 / MX;
  const int64_t G = w.groups(), gs = w.group(), K = w.K;
  const int8_t* wr = static_cast<const int8_t*>(w.q) + n * K;
  const int8_t* xr = xq + m * K;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m256 facc = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m512i a[8];
    for (int l = 0; l < 8; ++l) a[l] = _mm512_setzero_si512();
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 64) {
      const int64_t len = std::min<int64_t>(64, (g + 1) * gs - k);
      __m512i xv[MX];
      for (int i = 0; i < MX; ++i) xv[i] = load_bytes(xr + i * K + k, len);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // the zero bytes past len become 128 here but meet zero activations
        const __m512i wu = _mm512_xor_si512(load_bytes(wr + r * K + k, len), flip);
        for (int i = 0; i < MX; ++i) a[r * MX + i] = dpbusd(a[r * MX + i], wu, xv[i]);
      }
    }
    alignas(32) int32_t ex[8] = {};
    alignas(32) float sv[8] = {};
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < MX; ++i) {
        ex[r * MX + i] = 128 * xsum[(m + i) * G + g];
        sv[r * MX + i] = w.scales[(n + r) * G + g];
      }
    const __m256i isum =
        _mm256_sub_epi32(reduce8(a), _mm256_load_si256(reinterpret_cast<const __m256i*>(ex)));
    facc = _mm256_fmadd_ps(_mm256_load_ps(sv), _mm256_cvtepi32_ps(isum), facc);
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, facc);
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < MX; ++i) c[(m + i) * ldc + n + r] = out[r * MX + i];
}

// ---- W8A8, many rows of x (prefill): weight strips packed for vpdpbusd --------------------------

constexpr int kStrip = 32;  // weight rows per packed strip: two vectors of 16 output columns
constexpr int kPMR = 6;     // rows of x per micro-tile: 12 int32 + 12 float accumulators

// Strip of weight rows [n, n + kStrip) (rows from n1 on as zeros): bytes
// p[(k / 4) * 128 + j * 4 + k % 4] = w[n + j][k] + 128, so one 64-byte load is the next 4 columns
// of 16 rows, as vpdpbusd lanes want them; scales sp[g * kStrip + j] = s[n + j, g] (0 past n1).
// 64 columns of 16 rows at a time by a dword transpose; the last K % 64 columns one word each.
TF_AVX512 void pack_strip_i8(const QuantWeight& w, int64_t n, int64_t n1, uint8_t* p, float* sp) {
  const int64_t K = w.K, G = w.groups(), quads = K / 4;
  const int8_t* base = static_cast<const int8_t*>(w.q);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int h = 0; h < kStrip / 16; ++h) {
    const int64_t r0 = n + 16 * h;
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
      __m512i a[16];
      for (int i = 0; i < 16; ++i)
        a[i] = r0 + i < n1 ? _mm512_loadu_si512(base + (r0 + i) * K + k) : _mm512_setzero_si512();
      x86::transpose16(a);
      uint8_t* dst = p + (k / 4) * (4 * kStrip) + 64 * h;
      for (int q = 0; q < 16; ++q)
        _mm512_storeu_si512(dst + q * 4 * kStrip, _mm512_xor_si512(a[q], flip));
    }
    for (int i = 0; i < 16; ++i) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(p) + 16 * h + i;
      for (int64_t q = k / 4; q < quads; ++q) {
        uint32_t v = 0;
        if (r0 + i < n1) std::memcpy(&v, base + (r0 + i) * K + 4 * q, 4);
        dst[q * kStrip] = v ^ 0x80808080u;
      }
    }
  }
  for (int j = 0; j < kStrip; ++j)
    for (int64_t g = 0; g < G; ++g)
      sp[g * kStrip + j] = n + j < n1 ? w.scales[(n + j) * G + g] : 0.0f;
}

// A strip read by few rows of x streams from memory at one 128-byte step per row of x: the lines
// kPrefetchStrip ahead are asked for early (quant_ticks, M = 1, in L3: see bench/NOTES.md).
constexpr int kPrefetchRows = 2;
constexpr int64_t kPrefetchStrip = 4096;

// The two lines of a strip step (32 rows x 4 bytes) kPrefetchStrip ahead of b.
TF_AVX512 inline void prefetch_strip_step(const uint8_t* b) {
  _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchStrip), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchStrip + 64), _MM_HINT_T0);
}

// MR rows of x (from row m) against a packed strip; cols of its 32 columns stored. The float sums
// of the contract live in a local buffer of whole vectors between groups (with them in registers
// too, GCC shuffled the 12 int32 accumulators between register sets at every step: 24 moves per
// 12 vpdpbusd; kept in c itself, masked to cols, each group's load waited on the last group's
// masked store: W8A8 with groups of 32 at 3-6 rows of x ran 2-7x slower, quant_ticks) and are
// stored into c once, at the end.
template <int MR>
TF_AVX512 void strip_i8(const uint8_t* p, const float* sp, const int8_t* xq, const int32_t* xsum,
                        int64_t K, int64_t G, int64_t gs, int64_t m, float* c, int64_t ldc,
                        int cols) {
  const int8_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = xq + (m + i) * K;
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xffff)
                       : cols > 16 ? __mmask16((1u << (cols - 16)) - 1)
                                   : __mmask16(0);
  alignas(64) float local[MR][kStrip];
  for (int64_t g = 0; g < G; ++g) {
    __m512i a0[MR], a1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a0[i] = a1[i] = _mm512_setzero_si512();
    const uint8_t* b = p + g * gs * kStrip;
    const int64_t k1 = (g + 1) * gs;
    for (int64_t k = g * gs; k < k1; k += 4, b += 4 * kStrip) {
      if (MR <= kPrefetchRows) prefetch_strip_step(b);
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t x4;
        std::memcpy(&x4, xr[i] + k, 4);
        const __m512i xb = _mm512_set1_epi32(x4);
        a0[i] = dpbusd(a0[i], b0, xb);
        a1[i] = dpbusd(a1[i], b1, xb);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(sp + g * kStrip), s1 = _mm512_loadu_ps(sp + g * kStrip + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float* ci = local[i];
      const __m512i ex = _mm512_set1_epi32(128 * xsum[(m + i) * G + g]);
      const __m512 f0 = g ? _mm512_load_ps(ci) : _mm512_setzero_ps();
      const __m512 f1 = g ? _mm512_load_ps(ci + 16) : _mm512_setzero_ps();
      const __m512 i0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a0[i], ex));
      const __m512 i1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a1[i], ex));
      _mm512_store_ps(ci, _mm512_fmadd_ps(s0, i0, f0));
      _mm512_store_ps(ci + 16, _mm512_fmadd_ps(s1, i1, f1));
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + (m + i) * ldc, m0, _mm512_load_ps(local[i]));
    _mm512_mask_storeu_ps(c + (m + i) * ldc + 16, m1, _mm512_load_ps(local[i] + 16));
  }
}

// Rows [m, M) of x against one packed strip (cols of its 32 rows stored), kPMR at a time.
TF_AVX512 void strip_rows_i8(const uint8_t* p, const float* sp, const int8_t* xq,
                             const int32_t* xsum, int64_t K, int64_t G, int64_t gs, int64_t M,
                             float* c, int64_t ldc, int cols) {
  int64_t m = 0;
  for (; m + kPMR <= M; m += kPMR) strip_i8<kPMR>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols);
  switch (M - m) {
    case 5: strip_i8<5>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols); break;
    case 4: strip_i8<4>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols); break;
    case 3: strip_i8<3>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols); break;
    case 2: strip_i8<2>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols); break;
    case 1: strip_i8<1>(p, sp, xq, xsum, K, G, gs, m, c, ldc, cols); break;
    default: break;
  }
}

TF_AVX512 bool tile_i8_packed(const QuantWeight& w, const int8_t* xq, const int32_t* xsum,
                              int64_t M, int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const int64_t K = w.K, G = w.groups(), gs = w.group();
  const size_t pbytes = size_t(K) * kStrip, sbytes = size_t(G) * kStrip * sizeof(float);
  uint8_t* p = static_cast<uint8_t*>(scratch_get(kScratchSlot, pbytes + sbytes));
  if (!p) return false;
  float* sp = reinterpret_cast<float*>(p + pbytes);
  for (int64_t n = n0; n < n1; n += kStrip) {
    pack_strip_i8(w, n, n1, p, sp);
    const int cols = int(std::min<int64_t>(kStrip, n1 - n));
    strip_rows_i8(p, sp, xq, xsum, K, G, gs, M, c + n, ldc, cols);
  }
  return true;
}

// The weight's own strips (w.strips, built once by quant_pack_strips in the layout pack_strip_i8
// writes per call): every row count of x reads them, M = 1 included (16 rows per load and no
// reduction tree: the GEMV streams at the cache's speed).
static_assert(kStrip == kQuantStripRows, "one strip layout");
TF_AVX512 void strips_i8(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                         int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const int64_t K = w.K, G = w.groups(), gs = w.group(), bytes = quant_strip_bytes(w);
  for (int64_t n = n0; n < n1; n += kStrip) {
    const uint8_t* p = w.strips + (n / kStrip) * bytes;
    const float* sp = reinterpret_cast<const float*>(p + K * kStrip);
    const int cols = int(std::min<int64_t>(kStrip, n1 - n));
    strip_rows_i8(p, sp, xq, xsum, K, G, gs, M, c + n, ldc, cols);
  }
}

// Rows of x up to which the weight rows are read in place (each weight byte meets every row of x
// from registers); from here on a strip is packed once and reused by all of them.
constexpr int64_t kPackedFromRows = 4;
constexpr int64_t kDirectMinGroup = 128;

TF_AVX512 void tile_i8(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                       int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const auto avx2 = kernels_avx2()->tile_i8;
  const int64_t gs = w.group();
  if (!xsum || gs % 4 != 0) return avx2(w, xq, xsum, M, n0, n1, c, ldc);
  if (tile_i8_amx(w, xq, xsum, M, n0, n1, c, ldc, pack_strip_i8)) return;
  if (w.strips && n0 % kStrip == 0) return strips_i8(w, xq, xsum, M, n0, n1, c, ldc);
  if (M >= kPackedFromRows && tile_i8_packed(w, xq, xsum, M, n0, n1, c, ldc)) return;
  // Few rows: reduce8 per group and 8 weight rows costs more than the AVX2 block's tree below
  // groups of 128 (quant_ticks, one thread, weights in L2, M = 1, groups of 32: 8-13 MAC/tick
  // against 10-15; per row 34-46 against 23-26)
  if (gs < kDirectMinGroup) return avx2(w, xq, xsum, M, n0, n1, c, ldc);
  for (int64_t m = 0; m < M;) {
    const int mx = int(std::min<int64_t>(3, M - m));
    const int R = 8 / mx;
    int64_t n = n0;
    for (; n + R <= n1; n += R) {
      if (mx == 1) rows_i8<1>(w, xq, xsum, m, n, c, ldc);
      else if (mx == 2) rows_i8<2>(w, xq, xsum, m, n, c, ldc);
      else rows_i8<3>(w, xq, xsum, m, n, c, ldc);
    }
    if (n < n1) avx2(w, xq + m * w.K, nullptr, mx, n, n1, c + m * ldc, ldc);
    m += mx;
  }
}

// ---- W4A8 -------------------------------------------------------------------------------------

// One weight row against MX rows of x in prep_i4_x's order (per 64-block: its 32 even
// activations, then its 32 odd ones). A 64-byte load holds the codes of two 64-blocks; their low
// nibbles (the even elements of both blocks) and high nibbles (the odd ones) are regrouped by
// 128-bit lanes into one vector per block, [even | odd], which meets the block's 64 activations
// as they lie. Each group (a multiple of 64) sums into its own accumulator; every 8 groups,
// reduce8 gives their sums as the lanes of one vector, z * xsum is taken off and lane j takes
// a_j = fma(s[n, g], float(isum), a_j) for g = j mod 8: the contract's order, so bitwise the
// generic result.
// Bytes ahead of the current code line that row_i4 prefetches (quant_ticks, 2 threads, N = 16384,
// K = 4096, int4 groups of 128: none 31-40 MAC/tick, 2 KiB 32-38, 4 KiB 40-43, 8 KiB 39-44).
constexpr int64_t kPrefetchI4 = 8192;

// GS: the group size when known at compile time (0: w.group()).
// XW: x is in xw_order's layout (groups of 128 and more), where the low nibbles of a 64-byte
// load meet the next 64 bytes of x and the high nibbles the 64 after, with no shuffle.
template <int MX, int GS, bool XW>
TF_AVX512 void row_i4(const QuantWeight& w, const int8_t* xl, const int32_t* xsum, int64_t n,
                      float* c, int64_t ldc) {
  const int64_t G = w.groups(), gs = GS > 0 ? GS : w.group(), K = w.K, lds = w.s_stride();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.q_stride() / 2);
  const float* s = w.scales + n * lds;
  const uint8_t* z = w.zeros ? w.zeros + n * lds : nullptr;
  const bool z_in_float = gs <= 8192;  // 15 * 127 * 8192 < 2^24: float(dp) and z * xsum exact
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m256 acc[MX];
  for (int i = 0; i < MX; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t g0 = 0; g0 < G; g0 += 8) {
    const int ng = int(std::min<int64_t>(8, G - g0));
    __m512i a[MX][8];
    for (int i = 0; i < MX; ++i)
      for (int j = 0; j < 8; ++j) a[i][j] = _mm512_setzero_si512();
    // unrolled so that a[i][j] are registers (a loop over j left them in memory: 2x slower)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      if (j >= ng) break;
      const int64_t k1 = (g0 + j + 1) * gs;
      int64_t k = (g0 + j) * gs;
      // a group's sum in T chains per row of x (two products per step each): one chain of
      // dependent vpdpbusd ran at their latency, not their throughput
      constexpr int T = MX == 1 ? 4 : 2;
      __m512i t[MX][T];
      for (int i = 0; i < MX; ++i)
        for (int u = 0; u < T; ++u) t[i][u] = _mm512_setzero_si512();
      auto step = [&](int64_t kk, int u) TF_AVX512 {
        // rows lie back to back: the line kPrefetchI4 bytes ahead, which a one-row stream
        // would otherwise wait for (the hardware prefetcher ramps up too late on 2 KiB rows)
        _mm_prefetch(reinterpret_cast<const char*>(q + kk / 2 + kPrefetchI4), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(q + kk / 2);
        const __m512i lo = _mm512_and_si512(v, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        const __m512i b0 = XW ? lo : _mm512_shuffle_i64x2(lo, hi, 0x44);
        const __m512i b1 = XW ? hi : _mm512_shuffle_i64x2(lo, hi, 0xee);
        for (int i = 0; i < MX; ++i) {
          const int8_t* x = xl + i * K + kk;
          t[i][u] = dpbusd(t[i][u], b0, _mm512_loadu_si512(x));
          t[i][u + 1] = dpbusd(t[i][u + 1], b1, _mm512_loadu_si512(x + 64));
        }
      };
      if (T == 4 && (GS == 0 || GS >= 256))
        for (; k + 256 <= k1; k += 256) {
          step(k, 0);
          step(k + 128, T - 2);
        }
      if (GS == 0 || GS >= 128)
        for (; k + 128 <= k1; k += 128) step(k, 0);
      // a last lone 64-block (groups of 64 + 128i)
      if (!XW && (GS == 0 || GS % 128 == 64) && k < k1) {
        const __m512i v =
            _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k / 2)));
        const __m512i lo = _mm512_and_si512(v, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        const __m512i b0 = _mm512_shuffle_i64x2(lo, hi, 0x44);
        for (int i = 0; i < MX; ++i)
          t[i][0] = dpbusd(t[i][0], b0, _mm512_loadu_si512(xl + i * K + k));
      }
      for (int i = 0; i < MX; ++i) {
        __m512i sum = _mm512_add_epi32(t[i][0], t[i][1]);
        if (T == 4) sum = _mm512_add_epi32(sum, _mm512_add_epi32(t[i][T - 2], t[i][T - 1]));
        a[i][j] = sum;
      }
    }
    const __mmask8 live = __mmask8((1u << ng) - 1);
    const __m256 sv = _mm256_maskz_loadu_ps(live, s + g0);
    const __m256i zv = z ? _mm256_cvtepu8_epi32(_mm_maskz_loadu_epi8(__mmask16(live), z + g0))
                         : _mm256_set1_epi32(8);
    for (int i = 0; i < MX; ++i) {
      const __m256i dp = reduce8(a[i]);
      const __m256i xs = _mm256_maskz_loadu_epi32(live, xsum + i * G + g0);
      const __m256 isum =
          z_in_float ? _mm256_fnmadd_ps(_mm256_cvtepi32_ps(zv), _mm256_cvtepi32_ps(xs),
                                        _mm256_cvtepi32_ps(dp))
                     : _mm256_cvtepi32_ps(_mm256_sub_epi32(dp, _mm256_mullo_epi32(zv, xs)));
      acc[i] = _mm256_mask3_fmadd_ps(sv, isum, acc[i], live);
    }
  }
  for (int i = 0; i < MX; ++i) c[i * ldc + n] = x86::hsum(acc[i]);
}

// prep_i4_x's order (per 64-block: 32 even, 32 odd) -> row_i4's XW order (per 128 elements: the
// even 32 of both blocks, then the odd 32 of both). K % 128 == 0.
void xw_order(const int8_t* xl, int64_t K, int8_t* xw) {
  for (int64_t b = 0; b < K; b += 128) {
    std::memcpy(xw + b, xl + b, 32);
    std::memcpy(xw + b + 32, xl + b + 64, 32);
    std::memcpy(xw + b + 64, xl + b + 32, 32);
    std::memcpy(xw + b + 96, xl + b + 96, 32);
  }
}

// Every dword of 128-bit lane L: the sum of lane L's four dwords.
TF_AVX512 inline __m512i lane_sums(__m512i a) {
  a = _mm512_add_epi32(a, _mm512_shuffle_epi32(a, _MM_PERM_BADC));
  return _mm512_add_epi32(a, _mm512_shuffle_epi32(a, _MM_PERM_CDAB));
}

// Groups of 32, x in xw_order (K % 128 == 0): one 64-byte load is four groups, and after its
// two vpdpbusd each group's products sit in its own 128-bit lane (the low nibbles of a block's
// first 16 bytes are the even elements of its first group, met by the first 16 bytes of that
// block's even activations, and so on). Eight groups (two loads) are then reduced by two
// in-lane folds per vector, a blend and one permute, not by a tree per group; the rest as in
// row_i4, bitwise the same sums.
template <int MX>
TF_AVX512 void row_i4_g32(const QuantWeight& w, const int8_t* xw, const int32_t* xsum, int64_t n,
                          float* c, int64_t ldc) {
  const int64_t G = w.groups(), K = w.K, lds = w.s_stride();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.q_stride() / 2);
  const float* s = w.scales + n * lds;
  const uint8_t* z = w.zeros ? w.zeros + n * lds : nullptr;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  __m256 acc[MX];
  for (int i = 0; i < MX; ++i) acc[i] = _mm256_setzero_ps();
  // the products of the 4 groups from element k, in the 128-bit lanes of one vector per row of x
  auto four = [&](int64_t k, __m512i* out) TF_AVX512 {
    _mm_prefetch(reinterpret_cast<const char*>(q + k / 2 + kPrefetchI4), _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(q + k / 2);
    const __m512i lo = _mm512_and_si512(v, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    for (int i = 0; i < MX; ++i) {
      const int8_t* x = xw + i * K + k;
      out[i] = dpbusd(dpbusd(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x)), hi,
                      _mm512_loadu_si512(x + 64));
    }
  };
  for (int64_t g0 = 0; g0 < G; g0 += 8) {
    const int ng = int(std::min<int64_t>(8, G - g0));  // 8, or 4 at the end (K % 256 == 128)
    __m512i a[MX], b[MX];
    four(g0 * 32, a);
    if (ng == 8) four(g0 * 32 + 128, b);
    const __mmask8 live = __mmask8((1u << ng) - 1);
    const __m256 sv = _mm256_maskz_loadu_ps(live, s + g0);
    const __m256i zv = z ? _mm256_cvtepu8_epi32(_mm_maskz_loadu_epi8(__mmask16(live), z + g0))
                         : _mm256_set1_epi32(8);
    for (int i = 0; i < MX; ++i) {
      // lane L: dword 0 the sum of group L, dword 1 that of group 4 + L; then in group order
      const __m512i ab = _mm512_mask_blend_epi32(
          0x2222, lane_sums(a[i]), ng == 8 ? lane_sums(b[i]) : _mm512_setzero_si512());
      const __m256i dp = _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, ab));
      const __m256i xs = _mm256_maskz_loadu_epi32(live, xsum + i * G + g0);
      // groups of 32: 15 * 127 * 32 < 2^24, so float(dp) and z * xsum are exact
      const __m256 isum = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(zv), _mm256_cvtepi32_ps(xs),
                                           _mm256_cvtepi32_ps(dp));
      acc[i] = _mm256_mask3_fmadd_ps(sv, isum, acc[i], live);
    }
  }
  for (int i = 0; i < MX; ++i) c[i * ldc + n] = x86::hsum(acc[i]);
}

// W4A8 on the weight's own strips (tensorfuse/quant.h): MR rows of x (from row m) against 32
// weight rows. Per 8 columns two 64-byte loads (rows 0-15, 16-31); their low nibbles meet
// x[k..k+3] broadcast to every lane and their high nibbles x[k+4..k+7], so the lanes are output
// rows and nothing is reduced across lanes. Per group isum = dot - z * xsum (int32, exact), and
// the contract's eight float partials per row (part[i][g % 8], one lane per weight row) take
// fma(s, float(isum), .); summed in its order at the end: bitwise the generic result.
template <int MR>
TF_AVX512 void strip_i4(const uint8_t* p, const float* sp, const int32_t* zp, const int8_t* xq,
                        const int32_t* xsum, int64_t K, int64_t G, int64_t gs, int64_t m,
                        float* c, int64_t ldc, int cols) {
  const int8_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = xq + (m + i) * K;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  alignas(64) float part[MR][8][kStrip];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < kStrip; ++l) part[i][j][l] = 0.0f;
  for (int64_t g = 0; g < G; ++g) {
    __m512i a0[MR], a1[MR], h0[MR], h1[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) a0[i] = a1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
    const uint8_t* b = p + g * gs * (kStrip / 2);
    const int64_t k1 = (g + 1) * gs;
    for (int64_t k = g * gs; k < k1; k += 8, b += 4 * kStrip) {
      if (MR <= kPrefetchRows) prefetch_strip_step(b);
      const __m512i v0 = _mm512_loadu_si512(b), v1 = _mm512_loadu_si512(b + 64);
      const __m512i l0 = _mm512_and_si512(v0, low4), l1 = _mm512_and_si512(v1, low4);
      const __m512i u0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4);
      const __m512i u1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low4);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        int32_t lo4, hi4;
        std::memcpy(&lo4, xr[i] + k, 4);
        std::memcpy(&hi4, xr[i] + k + 4, 4);
        const __m512i xa = _mm512_set1_epi32(lo4), xb = _mm512_set1_epi32(hi4);
        a0[i] = dpbusd(a0[i], l0, xa);
        a1[i] = dpbusd(a1[i], l1, xa);
        h0[i] = dpbusd(h0[i], u0, xb);
        h1[i] = dpbusd(h1[i], u1, xb);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
      join_group_i4(_mm512_add_epi32(a0[i], h0[i]), _mm512_add_epi32(a1[i], h1[i]),
                    zp + g * kStrip, sp + g * kStrip, xsum[(m + i) * G + g], part[i][g % 8]);
  }
  for (int i = 0; i < MR; ++i) store_parts_i4(part[i], cols, c + (m + i) * ldc);
}

constexpr int kI4StripRows = 4;  // rows of x per strip_i4 call: 16 int32 accumulators

TF_AVX512 void strips_i4(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                         int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const int64_t K = w.K, G = w.groups(), gs = w.group(), bytes = quant_strip_bytes(w);
  for (int64_t n = n0; n < n1; n += kStrip) {
    const uint8_t* p = w.strips + (n / kStrip) * bytes;
    const float* sp = reinterpret_cast<const float*>(p + K / 2 * kStrip);
    const int32_t* zp = reinterpret_cast<const int32_t*>(sp + G * kStrip);
    const int cols = int(std::min<int64_t>(kStrip, n1 - n));
    float* cn = c + n;
    int64_t m = 0;
    for (; m + kI4StripRows <= M; m += kI4StripRows)
      strip_i4<kI4StripRows>(p, sp, zp, xq, xsum, K, G, gs, m, cn, ldc, cols);
    switch (M - m) {
      case 3: strip_i4<3>(p, sp, zp, xq, xsum, K, G, gs, m, cn, ldc, cols); break;
      case 2: strip_i4<2>(p, sp, zp, xq, xsum, K, G, gs, m, cn, ldc, cols); break;
      case 1: strip_i4<1>(p, sp, zp, xq, xsum, K, G, gs, m, cn, ldc, cols); break;
      default: break;
    }
  }
}

// Rows of x up to which row_i4 takes them together; more go to the AVX2 tile's 4 x 2 blocks (the
// first multiple of 4 of them).
constexpr int kI4MaxRows = 3;

TF_AVX512 void tile_i4(const QuantWeight& w, const int8_t* xq, const int8_t* xl,
                       const int32_t* xsum, int64_t M, int64_t n0, int64_t n1, float* c,
                       int64_t ldc) {
  const auto avx2 = kernels_avx2()->tile_i4;
  const int64_t gs = w.group(), K = w.K, G = w.groups();
  const bool g32 = gs == 32 && K % 128 == 0;
  if (w.strips && xsum && n0 % kStrip == 0) {
    if (tile_i4_amx(w, xq, xsum, M, n0, n1, c, ldc)) return;
    return strips_i4(w, xq, xsum, M, n0, n1, c, ldc);
  }
  if (!xl || (gs % 64 != 0 && !g32)) return avx2(w, xq, xl, xsum, M, n0, n1, c, ldc);
  int64_t m = 0;
  if (M > kI4MaxRows) {
    m = M / 4 * 4;
    avx2(w, xq, xl, xsum, m, n0, n1, c, ldc);
  }
  const int64_t rest = M - m;
  const int8_t* x = xl + m * K;
  const int32_t* xs = xsum + m * G;
  float* cm = c + m * ldc;
  // Groups of 128 and more: x once more per call in xw_order (rest * K bytes), so that the
  // weight rows need no shuffle (quant_ticks: see bench/NOTES.md, Zen 5, item 3).
  int8_t* xw = gs % 128 == 0 || g32
                    ? static_cast<int8_t*>(scratch_get(kScratchSlot, size_t(rest * K)))
                    : nullptr;
  if (xw)
    for (int64_t i = 0; i < rest; ++i) xw_order(x + i * K, K, xw + i * K);
  else if (g32)
    return avx2(w, xq + m * K, x, xs, rest, n0, n1, cm, ldc);
  if (g32) {
    for (int64_t n = n0; n < n1; ++n) {
      if (rest == 1) row_i4_g32<1>(w, xw, xs, n, cm, ldc);
      else if (rest == 2) row_i4_g32<2>(w, xw, xs, n, cm, ldc);
      else if (rest == 3) row_i4_g32<3>(w, xw, xs, n, cm, ldc);
    }
    return;
  }
  auto run = [&](auto mx_const, auto gs_const) {
    constexpr int MX = decltype(mx_const)::value, GS = decltype(gs_const)::value;
    if (xw && (GS == 0 || GS % 128 == 0))
      for (int64_t n = n0; n < n1; ++n) row_i4<MX, GS, true>(w, xw, xs, n, cm, ldc);
    else
      for (int64_t n = n0; n < n1; ++n) row_i4<MX, GS, false>(w, x, xs, n, cm, ldc);
  };
  auto by_gs = [&](auto mx_const) {
    switch (gs) {
      case 64: return run(mx_const, std::integral_constant<int, 64>{});
      case 128: return run(mx_const, std::integral_constant<int, 128>{});
      case 256: return run(mx_const, std::integral_constant<int, 256>{});
      default: return run(mx_const, std::integral_constant<int, 0>{});
    }
  };
  if (rest == 1) by_gs(std::integral_constant<int, 1>{});
  else if (rest == 2) by_gs(std::integral_constant<int, 2>{});
  else if (rest == 3) by_gs(std::integral_constant<int, 3>{});
}

// ---- float activations, int4 / int8 GEMV: the AVX2 kernels' subnormal trick on 16 lanes -------

// prep_x for this table. int4 with K % 128 == 0 and groups of 32, 64 or a multiple of 128, int8
// with K % 64 == 0 and groups of 32 or a multiple of 64: x in the order of one 64-byte load of
// codes (L = 128 int4 / 64 int8 weights; 16 dwords of P = 8 / 4 weights), the scaling of the
// AVX2 prep_x (quant_x86_avx2.cc explains the subnormal arithmetic):
//   xd[L B + 16j + i] = x[L B + P i + j] 2^(149 - place_j - S)
// (place_j = 4 (j mod 3) for nibbles, 8 min(j, 2) for bytes), xd[K] = 2^S and xd[K + 1] = 1
// (this layout), and after the tail the lane sums that take the zero point off per lane:
//   xd[K + kPrepXTail + 16B + i] = sum_j x[L B + P i + j] 2^-S   (rounded once, from double)
// Otherwise the AVX2 prep_x, with xd[K + 1] = 0.
constexpr float kWideLanes = 1.0f;
// Where subnormal inputs are slow (fast_subnormals(), Intel), int4 takes the same lanes with
// normal codes (the AVX2 prep_x says how: 2^23's exponent or'ed in, one vpternlogd per 16
// weights, and 2^23 + z c_j subtracted per weight): xd[L B + 16j + i] = x[L B + P i + j] 2^-place_j,
// xd[K] = 1, xd[K + 1] = kWideNormalLanes, no lane sums. The zero point then comes off per weight
// (exact), so rows with an outlier need not leave for the AVX2 order.
constexpr float kWideNormalLanes = 4.0f;

// ---- float activations, int8 GEMV on VNNI: x as three int8 digits -----------------------------
//
// With int8 codes the float GEMV spends ~12 vector operations per 64 weights (offset, shift, four
// masks, four FMAs, the offset off); vpdpbusd takes 64 products in one. So x is written as
//   x[k] = sx (d0[k] + d1[k] / 254 + d2[k] / 254^2),  sx = max|x| / 127, each digit in [-127, 127]
// (d0 = round(x / sx), then each residual, within half a unit, times 254 and rounded), which holds
// x to within sx / (2 254^2) = 6.1e-8 max|x| per element, float32's own rounding of an element
// near the row's largest. Each digit row meets the codes in exact int32 dot products (the codes +
// 128 as the unsigned side; the excess, 128 times the digits' sum in each dword lane over a group,
// is the lane's start value, so every lane ends at its exact sum of code x digit), and per group
// and lane float(a0) + (float(a1) / 254 + float(a2) / 254^2) joins the row's total with the
// group's scale. About 5 operations per 64 weights a row (load with the offset, three vpdpbusd,
// the digit loads shared by four rows) where the float path takes 12.
//
// Layout in xd (prep_x_floats(K) floats): bytes [192 b, 192 b + 192) for the 64-block b: its d0,
// d1 and d2 (64 each, stored order); xd[K] = sx, xd[K + 1] = kDigitLanes; from xd + K +
// kPrepXTail the start values, int32 [G][3][16] (lane i of digit d in group g: -128 times the sum
// of that digit over the bytes 4i..4i+3 of every 64-block of the group).
constexpr float kDigitLanes = 2.0f;
constexpr double kDigitBase = 254.0;
// Rows of x whose largest element stands far above the rest (an outlier channel) lose relative
// accuracy on both AVX-512 paths in the outputs the outlier does not reach (a weight column near
// zero there): the digits hold x only to within 6.1e-8 of max|x|, and the 16-lane float GEMV's
// lane sums carry the zero point (or int8's 128) times the outlier. Unless at least a quarter of
// the row lies within a factor kMaxPeakRatio of max|x|, prep_x leaves the row to the AVX2 order.
// With that quarter, rms(x) >= max|x| / (2 kMaxPeakRatio), so the digits' error stays under
// 6.1e-8 * 32 / sqrt(3) = 1.1e-6 of rms(x) per element, about the float path's own error (7.6e-7
// relative at K = 4096); Gaussian rows (max|x| ~ 4 sigma, 80% above max / 16) measure 1.6e-7.
// (rms alone does not tell: one outlier is at most sqrt(K) rms.)
constexpr int kMaxPeakRatio = 16;

// int8 codes whose rows this path takes: K in whole 64-blocks, one scale per row or groups of 128
// or more in whole blocks (the start values of G groups fit the K / 2 floats after the tail), and
// lanes that stay within int32: after any part of a group a lane holds the sum of q d over the
// digits seen minus 128 times the digits not yet seen (its start value is -128 times them all),
// at most 128 x 127 x group / 16 in magnitude: under 2^31 for groups up to 2^20.
inline bool digits_fit(const QuantWeight& w) {
  const int64_t gs = w.group();
  return w.bits == 8 && w.K % 64 == 0 && w.K >= 128 && gs % 64 == 0 && gs >= 128 &&
         gs <= (int64_t(1) << 20);
}

// What prep_x reads of a row of x first: its largest magnitude, whether it is finite, and whether
// at least a quarter of it lies within a factor kMaxPeakRatio of that largest (no lone outlier).
struct RowStats {
  float big = 0.0f;
  bool finite = true, bulk = false;
};
TF_AVX512 RowStats row_stats(const float* x, int64_t K) {
  // the largest magnitude, and x * 0 summed: NaN when any element is an infinity or a NaN
  __m512 big16 = _mm512_setzero_ps(), bad = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = __mmask16(K - k >= 16 ? 0xffff : (1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + k);
    big16 = _mm512_max_ps(big16, _mm512_abs_ps(v));
    bad = _mm512_add_ps(bad, _mm512_mul_ps(v, _mm512_setzero_ps()));
  }
  RowStats st;
  st.big = _mm512_reduce_max_ps(big16);
  st.finite = !std::isnan(_mm512_reduce_add_ps(bad));
  if (!st.finite || st.big == 0.0f) return st;
  const __m512 floor = _mm512_set1_ps(st.big / float(kMaxPeakRatio));
  int64_t bulk = 0;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = __mmask16(K - k >= 16 ? 0xffff : (1u << (K - k)) - 1);
    bulk += __builtin_popcount(
        _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + k)), floor, _CMP_GE_OQ));
  }
  st.bulk = 4 * bulk >= K;
  return st;
}

// x (float32 [K], finite, max|x| = big in [2^-100, 2^100]) as digits.
TF_AVX512 void prep_i8_digits(const QuantWeight& w, const float* x, float big, float* xd) {
  const int64_t K = w.K, gs = w.group(), G = w.groups();
  // digits in double (each step exact but for its one rounding to an integer: nearest even, as
  // std::nearbyint), and per group the dword lane sums of each digit (vpdpbusd with ones)
  int8_t* dg = reinterpret_cast<int8_t*>(xd);
  int32_t* start = reinterpret_cast<int32_t*>(xd + K + kPrepXTail);
  const __m512d inv = _mm512_set1_pd(127.0 / double(big)), base = _mm512_set1_pd(kDigitBase);
  const __m512i ones = _mm512_set1_epi8(1);
  constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t g = 0; g < G; ++g) {
    __m512i sum[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int64_t b = g * gs; b < (g + 1) * gs; b += 64) {
      int8_t* o = dg + 3 * b;
      for (int i = 0; i < 64; i += 8) {
        const __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + b + i)), inv);
        const __m512d d0 = _mm512_roundscale_pd(v, kNear);
        const __m512d r = _mm512_mul_pd(_mm512_sub_pd(v, d0), base);
        const __m512d d1 = _mm512_roundscale_pd(r, kNear);
        const __m512d d2 = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_sub_pd(r, d1), base), kNear);
        const __m512d d[3] = {d0, d1, d2};
        for (int j = 0; j < 3; ++j)
          _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 64 * j + i),
                           _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(d[j])));
      }
      for (int j = 0; j < 3; ++j) sum[j] = dpbusd(sum[j], ones, _mm512_loadu_si512(o + 64 * j));
    }
    for (int j = 0; j < 3; ++j)
      _mm512_storeu_si512(start + (g * 3 + j) * 16,
                          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum[j], 7)));
  }
  xd[K] = float(double(big) / 127.0);
  xd[K + 1] = kDigitLanes;
}

TF_AVX512 bool prep_x(const QuantWeight& w, const float* x, float* xd) {
  const int64_t gs = w.group(), K = w.K;
  const bool i4 = w.bits == 4;
  const int64_t L = i4 ? 128 : 64, P = i4 ? 8 : 4;
  const bool fits = i4 ? K % 128 == 0 && (gs == 32 || gs == 64 || gs % 128 == 0)
                       : K % 64 == 0 && (gs == 32 || gs % 64 == 0);
  auto avx2_order = [&] { return kernels_avx2()->prep_x(w, x, xd); };
  if (!fits) return avx2_order();
  const RowStats st = row_stats(x, K);
  if (!st.finite) return false;
  const float big = st.big;
  int e = 0;
  if (big > 0.0f) std::frexp(big, &e);
  if (e < -100 || e > 100) return false;
  if (!fast_subnormals()) {
    if (!i4) return big > 0.0f && st.bulk && digits_fit(w) ? (prep_i8_digits(w, x, big, xd), true)
                                                           : avx2_order();
    for (int64_t b = 0; b < K; b += L)
      for (int j = 0; j < P; ++j) {
        const float sc = std::ldexp(1.0f, -4 * (j % 3));
        for (int i = 0; i < 16; ++i) xd[b + 16 * j + i] = x[b + P * i + j] * sc;
      }
    xd[K] = 1.0f;
    xd[K + 1] = kWideNormalLanes;
    return true;
  }
  // A row with a lone outlier takes the AVX2 order (the zero point off per weight): neither the
  // digits nor these lanes, whose sums would carry z (int4) or 128 (int8 offset binary) times the
  // outlier against the much smaller products of the outputs it does not reach (a weight column
  // near zero there; K = 512, one element 1e4: 8.5e-5 relative error for int8, 6.1e-5 for int4
  // groups of 128, where the AVX2 order gives 8.6e-8 and 4.5e-8).
  if (big > 0.0f && !st.bulk) return avx2_order();
  if (!i4 && big > 0.0f && digits_fit(w)) {
    prep_i8_digits(w, x, big, xd);
    return true;
  }
  const int S = e + 24;
  double sc[8];
  for (int j = 0; j < P; ++j)
    sc[j] = std::ldexp(1.0, 149 - (i4 ? 4 * (j % 3) : 8 * std::min(j, 2)) - S);
  const double unit = std::ldexp(1.0, -S);
  float* lane_sums = xd + K + kPrepXTail;
  for (int64_t b = 0; b < K; b += L) {
    for (int j = 0; j < P; ++j)
      for (int i = 0; i < 16; ++i) xd[b + 16 * j + i] = float(double(x[b + P * i + j]) * sc[j]);
    for (int i = 0; i < 16; ++i) {
      double t = 0.0;
      for (int j = 0; j < P; ++j) t += double(x[b + P * i + j]);
      lane_sums[b / P + i] = float(t * unit);
    }
  }
  xd[K] = std::ldexp(1.0f, S);
  xd[K + 1] = kWideLanes;
  return true;
}

// Pins a value to a register: without it GCC folds a vector load into every instruction that
// reads it (a memory operand each), so rows meant to share one load of x load it once a row.
template <typename V>
TF_AVX512 inline void keep_in_register(V& v) {
  __asm__("" : "+v"(v));
}

// The 64 bytes at load l of the rows rows after these (next: the first of them; null: none).
// (The empty volatile asm is a side effect: GCC otherwise finds a function of prefetches only
// pure and drops every call.)
TF_AVX512 inline void prefetch_next_rows(const uint8_t* next, int64_t ldq, int rows, int64_t l) {
  __asm__ volatile("");
  if (!next) return;
  for (int r = 0; r < rows; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(next + r * ldq + l * 64), _MM_HINT_T0);
}

// load(l, side) for l in [l0, l1), side (a std::integral_constant: 0, 1) alternating from load to
// load: the accumulator that takes each load's zero point off.
template <class F>
TF_AVX512 __attribute__((always_inline)) inline void loads_alternating(int64_t l0, int64_t l1,
                                                                       F&& load) {
  int64_t l = l0;
  for (; l + 2 <= l1; l += 2) {
    load(l, std::integral_constant<int, 0>{});
    load(l + 1, std::integral_constant<int, 1>{});
  }
  if (l < l1) load(l, std::integral_constant<int, 0>{});
}

// R weight rows (1-3: they share every load of x, which bounds one row alone) from row n, against
// MX rows of x (xd[i], outputs y[i][n + r]; MX = 2 with R = 2 in gemv_f32_rows). Per 64-byte
// load of a row (128 weights) three sources (v, v >> 12, v >> 24), then per nibble place j a
// vpand and an FMA with xd's 16 lanes: a lane gathers sum_j u_j x_j 2^-S, and one FNMADD of
// z times the lane's x sum (prep_x) leaves sum_j (u_j - z) x_j 2^-S. The zero point comes off
// per 8 weights, not per group: a lane's sums stay within about 16 z max|x| of its result, where
// folding z * sum(x) over a whole group or row would cancel badly for x with a nonzero mean.
// Scale and zero point per lane: groups of 32 own a 128-bit lane each, of 64 a 256-bit half,
// larger groups the whole vector. Two accumulators a row, scaled into the total once per group
// (per load for groups below 128).
// The rows of x share each row's code vectors (one load, two shifts and eight vpand per 128
// weights for all of them), then each takes its own eight FMAs. Each (weight row, x row) pair
// runs the same operations in the same order for any R and MX: bitwise one row against one.
// Loads [lb, le) only (le = -1: to the end; both on scale boundaries): a pass that does not start
// at 0 takes its totals from `carry` (R * MX vectors), one that ends early leaves them there and
// writes no y, so rows of x that do not fit L1 together run a slice of K at a time, bitwise the
// same sums in the same order.
// NORMAL: codes and zero points with 2^23's exponent (kWideNormalLanes), no lane sums.
template <int GS, int R, int MX, bool NORMAL = false>
TF_AVX512 void rows_i4_wide(const QuantWeight& w, int64_t n, const float* const* xd,
                            float* const* y, int64_t lb = 0, int64_t le = -1,
                            float* carry = nullptr) {
  const int64_t gs = GS > 0 ? GS : w.group(), loads = w.K / 128, ldq = w.q_stride() / 2;
  if (le < 0) le = loads;
  const int64_t step = gs <= 64 ? 1 : gs / 128;  // loads per scale
  const int64_t lds = w.s_stride();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * ldq;
  const float* s[R];
  const uint8_t* z[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    s[r] = w.scales + (n + r) * lds;
    z[r] = w.zeros ? w.zeros + (n + r) * lds : nullptr;
  }
  const uint8_t* next = n + R < w.N ? q + R * ldq : nullptr;
  const bool next_pair = n + 2 * R <= w.N;  // all R rows after these exist
  const __m512i quads = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 tot[R][MX];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < MX; ++i)
      tot[r][i] = lb > 0 ? _mm512_loadu_ps(carry + (r * MX + i) * 16) : _mm512_setzero_ps();
  // the zero points of 16 groups at a time as floats (8 when symmetric), so a group of 128 or
  // more takes two broadcasts a row (where a byte load, a conversion and a test per group were a
  // fifth of the loop's operations at groups of 128), and a load of groups of 32 / 64 one
  // permute of them as of its scales
  alignas(64) float zf[R][16];  // groups [zb, zb + 16)
  int64_t zb = 0;
  for (int64_t l0 = lb; l0 < le; l0 += step) {
    const int64_t g = gs == 32 ? 4 * l0 : gs == 64 ? 2 * l0 : l0 / step;  // first group
    if (g % 16 == 0 || l0 == lb) {
      zb = g;
      const __mmask16 zm = __mmask16(w.groups() - g >= 16 ? 0xffff : (1u << (w.groups() - g)) - 1);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        _mm512_store_ps(zf[r], z[r] ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                          _mm_maskz_loadu_epi8(zm, z[r] + g)))
                                    : _mm512_set1_ps(8.0f));
    }
    // zero point and scale per lane for this load (groups of 32 / 64) or group
    __m512 sv[R], zv[R], zc[R][3];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      if (gs == 32 || gs == 64) {
        const __m512i idx = gs == 32 ? quads : halves;
        const __mmask8 mask = __mmask8((1u << (gs == 32 ? 4 : 2)) - 1);
        sv[r] = _mm512_permutexvar_ps(
            idx, _mm512_castps128_ps512(_mm_maskz_loadu_ps(mask, s[r] + g)));
        zv[r] = _mm512_permutexvar_ps(
            idx, _mm512_castps128_ps512(_mm_maskz_loadu_ps(mask, zf[r] + (g - zb))));
      } else {
        sv[r] = _mm512_set1_ps(s[r][g]);
        zv[r] = _mm512_set1_ps(zf[r][g - zb]);
      }
      // NORMAL: 2^23 + z 16^p at the three places (exact)
#pragma GCC unroll 3
      for (int p = 0; p < 3 && NORMAL; ++p)
        zc[r][p] = _mm512_fmadd_ps(zv[r], _mm512_set1_ps(float(1 << (4 * p))),
                                   _mm512_set1_ps(8388608.0f));
    }
    // the two accumulators of each (weight row, x row) pair
    __m512 a0[R][MX], a1[R][MX];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int i = 0; i < MX; ++i) a0[r][i] = a1[r][i] = _mm512_setzero_ps();
    // one load; its zero point comes off accumulator SIDE, alternating from load to load, so
    // that neither accumulator drifts by more than about one load's sum of u x over a long group.
    // always_inline (and on loads_alternating): inlined late, after GCC's scalar replacement,
    // the lambda left the accumulators in memory (with MX = 2-4: a store and a reload of each
    // at every load)
    auto load = [&](int64_t l, auto side) TF_AVX512 __attribute__((always_inline)) {
      constexpr int SIDE = decltype(side)::value;
      prefetch_next_rows(next, ldq, next_pair ? R : 1, l);
      __m512i src[R][3];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m512i v = _mm512_loadu_si512(q + r * ldq + l * 64);
        keep_in_register(v);
        src[r][0] = v;
        src[r][1] = _mm512_srli_epi32(v, 12);
        src[r][2] = _mm512_srli_epi32(v, 24);
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i m = _mm512_set1_epi32(int(0xfu << (4 * (j % 3))));
        __m512 code[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          if (NORMAL)  // (src & m) | 2^23, less 2^23 + z 16^p: (u - z) 16^p
            code[r] = _mm512_sub_ps(
                _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
                    src[r][j / 3], m, _mm512_set1_epi32(0x4b000000), 0xea)),
                zc[r][j % 3]);
          else
            code[r] = _mm512_castsi512_ps(_mm512_and_si512(src[r][j / 3], m));
          if (MX > 1) keep_in_register(code[r]);  // one vpand for every row of x
        }
#pragma GCC unroll 4
        for (int i = 0; i < MX; ++i) {
          __m512 xv = _mm512_loadu_ps(xd[i] + l * 128 + 16 * j);
          keep_in_register(xv);
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            if (j & 1)  // (a reference to either would keep the arrays in memory)
              a1[r][i] = _mm512_fmadd_ps(code[r], xv, a1[r][i]);
            else
              a0[r][i] = _mm512_fmadd_ps(code[r], xv, a0[r][i]);
          }
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < MX && !NORMAL; ++i) {
        const __m512 xs = _mm512_loadu_ps(xd[i] + w.K + kPrepXTail + l * 16);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          if (SIDE)
            a1[r][i] = _mm512_fnmadd_ps(zv[r], xs, a1[r][i]);
          else
            a0[r][i] = _mm512_fnmadd_ps(zv[r], xs, a0[r][i]);
        }
      }
    };
    loads_alternating(l0, l0 + step, load);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int i = 0; i < MX; ++i)
        tot[r][i] = _mm512_fmadd_ps(sv[r], _mm512_add_ps(a0[r][i], a1[r][i]), tot[r][i]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < MX; ++i) {
      if (le < loads)
        _mm512_storeu_ps(carry + (r * MX + i) * 16, tot[r][i]);
      else
        y[i][n + r] = _mm512_reduce_add_ps(tot[r][i]) * xd[i][w.K];
    }
}

// int8 as rows_i4_wide, on R = 1, 2 or 4 rows: per 64-byte load of a row (64 weights) one vpxor
// to offset binary (u = q + 128) and one shift (byte 3 to place 256^2), per byte place j a vpand
// and an FMA, 128 times the lane's x sum off per load. Groups of 32 own a 256-bit half, larger
// groups the whole vector (one scale per row: gs = K).
template <int GS, int R>
TF_AVX512 void rows_i8_wide(const QuantWeight& w, int64_t n, const float* xd, float* y) {
  const int64_t gs = GS > 0 ? GS : w.group(), loads = w.K / 64, ldq = w.q_stride();
  const int64_t step = gs <= 32 ? 1 : gs / 64;  // loads per scale
  const float* lane_sums = xd + w.K + kPrepXTail;
  const int64_t lds = w.s_stride();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * ldq;
  const float* s[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) s[r] = w.scales + (n + r) * lds;
  const uint8_t* next = n + R < w.N ? q + R * ldq : nullptr;
  const bool next_pair = n + 2 * R <= w.N;
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512 offset = _mm512_set1_ps(128.0f);
  __m512 tot[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) tot[r] = _mm512_setzero_ps();
  for (int64_t l0 = 0; l0 < loads; l0 += step) {
    __m512 sv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      sv[r] = gs == 32 ? _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_maskz_loadu_ps(
                                                           __mmask8(3), s[r] + 2 * l0)))
                       : _mm512_set1_ps(s[r][l0 / step]);
    // two arrays, not a[R][2]: at R = 4 (512 bytes) GCC kept that one in memory (a store and a
    // reload of every accumulator at every load)
    __m512 a0[R], a1[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
    // one load, the offset off accumulator SIDE (as rows_i4_wide)
    auto load = [&](int64_t l, auto side) TF_AVX512 __attribute__((always_inline)) {  // (as above)
      constexpr int SIDE = decltype(side)::value;
      prefetch_next_rows(next, ldq, next_pair ? R : 1, l);
      const float* xb = xd + l * 64;
      __m512i src[R][2];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m512i v = _mm512_xor_si512(_mm512_loadu_si512(q + r * ldq + l * 64), flip);
        keep_in_register(v);
        src[r][0] = v;
        src[r][1] = _mm512_srli_epi32(v, 8);
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512i m = _mm512_set1_epi32(int(0xffu << (8 * std::min(j, 2))));
        __m512 xv = _mm512_loadu_ps(xb + 16 * j);
        keep_in_register(xv);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m512 code = _mm512_castsi512_ps(_mm512_and_si512(src[r][j == 3 ? 1 : 0], m));
          if (j & 1)
            a1[r] = _mm512_fmadd_ps(code, xv, a1[r]);
          else
            a0[r] = _mm512_fmadd_ps(code, xv, a0[r]);
        }
      }
      const __m512 xs = _mm512_loadu_ps(lane_sums + l * 16);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        if (SIDE)
          a1[r] = _mm512_fnmadd_ps(offset, xs, a1[r]);
        else
          a0[r] = _mm512_fnmadd_ps(offset, xs, a0[r]);
      }
    };
    loads_alternating(l0, l0 + step, load);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      tot[r] = _mm512_fmadd_ps(sv[r], _mm512_add_ps(a0[r], a1[r]), tot[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[n + r] = _mm512_reduce_add_ps(tot[r]) * xd[w.K];
}

// The line kAheadLoads loads past load l of each of `rows` rows from q (ldq apart), or past the
// pass's end the same line of the rows after them (next, null at the weight's end). Against the
// previous rows' prefetch of the next rows at the same load (which rows_i4_wide / rows_i8_wide
// keep), kernel_ticks int8, K = 4096, one thread: weights in L2 37-39 -> 47-48 MAC/tick;
// quant_ticks 2 threads from memory (128 MB) 22-25 -> 26-28, in L3 within the noise.
constexpr int64_t kAheadLoads = 16;
TF_AVX512 inline void prefetch_ahead(const uint8_t* q, const uint8_t* next, int64_t ldq, int rows,
                                     int64_t loads, int64_t l) {
  __asm__ volatile("");  // a side effect (prefetch_next_rows says why)
  int64_t la = l + kAheadLoads;
  if (la >= loads) {
    if (!next) return;
    q = next;
    la -= loads;
    if (la >= loads) return;
  }
  for (int r = 0; r < rows; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(q + r * ldq + la * 64), _MM_HINT_T0);
}

// R rows (1, 2 or 4: they share every load of the digits) from row n on the digits of x (layout
// and arithmetic: prep_i8_digits above).
template <int R>
TF_AVX512 void rows_i8_digits(const QuantWeight& w, int64_t n, const float* xd, float* y) {
  const int64_t gs = w.group(), per = gs / 64, loads = w.K / 64, ldq = w.q_stride();
  const int64_t lds = w.s_stride();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * ldq;
  const int8_t* dg = reinterpret_cast<const int8_t*>(xd);
  const int32_t* start = reinterpret_cast<const int32_t*>(xd + w.K + kPrepXTail);
  const float* s[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) s[r] = w.scales + (n + r) * lds;
  const uint8_t* next = n + R < w.N ? q + R * ldq : nullptr;
  const bool next_pair = n + 2 * R <= w.N;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512 r1 = _mm512_set1_ps(float(1.0 / kDigitBase));
  const __m512 r2 = _mm512_set1_ps(float(1.0 / (kDigitBase * kDigitBase)));
  __m512 tot[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) tot[r] = _mm512_setzero_ps();
  for (int64_t g = 0, l0 = 0; l0 < loads; ++g, l0 += per) {
    __m512i a[R][3];
#pragma GCC unroll 3
    for (int d = 0; d < 3; ++d) {
      const __m512i c = _mm512_loadu_si512(start + (g * 3 + d) * 16);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) a[r][d] = c;
    }
    for (int64_t l = l0; l < l0 + per; ++l) {
      prefetch_ahead(q, next, ldq, next_pair ? R : 1, loads, l);
      __m512i x0 = _mm512_loadu_si512(dg + 192 * l), x1 = _mm512_loadu_si512(dg + 192 * l + 64),
              x2 = _mm512_loadu_si512(dg + 192 * l + 128);
      keep_in_register(x0);
      keep_in_register(x1);
      keep_in_register(x2);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i v = _mm512_xor_si512(_mm512_loadu_si512(q + r * ldq + l * 64), flip);
        a[r][0] = dpbusd(a[r][0], v, x0);
        a[r][1] = dpbusd(a[r][1], v, x1);
        a[r][2] = dpbusd(a[r][2], v, x2);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r][2]), r2,
                                       _mm512_mul_ps(_mm512_cvtepi32_ps(a[r][1]), r1));
      tot[r] = _mm512_fmadd_ps(_mm512_set1_ps(s[r][g]),
                               _mm512_add_ps(_mm512_cvtepi32_ps(a[r][0]), t), tot[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[n + r] = _mm512_reduce_add_ps(tot[r]) * xd[w.K];
}

TF_AVX512 void gemv_f32(const QuantWeight& w, const float* x, const float* xd, int64_t n0,
                        int64_t n1, float* y) {
  if (xd && w.bits == 8 && xd[w.K + 1] == kDigitLanes) {
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) rows_i8_digits<4>(w, n, xd, y);
    for (; n + 2 <= n1; n += 2) rows_i8_digits<2>(w, n, xd, y);
    if (n < n1) rows_i8_digits<1>(w, n, xd, y);
    return;
  }
  // DAZ set: subnormal weights read as zero, so the stored-order path (as the AVX2 table)
  const bool normal = xd && xd[w.K + 1] == kWideNormalLanes;
  if (!xd || !(normal || (xd[w.K + 1] == kWideLanes && !(_mm_getcsr() & 0x40))))
    return kernels_avx2()->gemv_f32(w, x, xd, n0, n1, y);
  auto run = [&](auto gs_const) {
    constexpr int GS = decltype(gs_const)::value;
    const float* const xds[1] = {xd};
    float* const ys[1] = {y};
    if (normal) {  // int4 only (prep_x); two rows a pass: three zero points a row at three places
      int64_t n = n0;
      for (; n + 2 <= n1; n += 2) rows_i4_wide<GS, 2, 1, true>(w, n, xds, ys);
      if (n < n1) rows_i4_wide<GS, 1, 1, true>(w, n, xds, ys);
      return;
    }
    int64_t n = n0;
    if (w.bits == 8) {
      // int8 loads x once per 64 weights: four rows share it (kernel alone, one thread in L2:
      // g0 17-21 -> 27-29 MAC/tick, g128 19-20 -> 23-26), except with groups of 32, whose
      // per-load scale permutes then spill (15-22)
      constexpr int R8 = GS == 32 ? 2 : 4;
      for (; n + R8 <= n1; n += R8) rows_i8_wide<GS, R8>(w, n, xd, y);
      for (; n + 2 <= n1; n += 2) rows_i8_wide<GS, 2>(w, n, xd, y);
      if (n < n1) rows_i8_wide<GS, 1>(w, n, xd, y);
      return;
    }
    // three rows a pass where the scales need no per-load permutes (groups of 32 then spill):
    // quant_ticks 2 threads, K = N = 4096 in L3: g0 38-40 -> 48-54 MAC/tick, g128 42-47 -> 46-50
    constexpr int R4 = GS == 32 ? 2 : 3;
    for (; n + R4 <= n1; n += R4) rows_i4_wide<GS, R4, 1>(w, n, xds, ys);
    for (; n + 2 <= n1; n += 2) rows_i4_wide<GS, 2, 1>(w, n, xds, ys);
    if (n < n1) rows_i4_wide<GS, 1, 1>(w, n, xds, ys);
  };
  switch (w.group()) {
    case 32: return run(std::integral_constant<int, 32>{});
    case 64: return run(std::integral_constant<int, 64>{});
    case 128: return run(std::integral_constant<int, 128>{});
    case 256: return run(std::integral_constant<int, 256>{});
    default: return run(std::integral_constant<int, 0>{});
  }
}

// Rows of x together (Kernels::gemv_f32_rows): int4 weights with every row of x in this table's
// lane order run two rows of x and two weight rows per pass (rows_i4_wide<GS, 2, 2>: each code
// vector unpacked once for both rows of x, each x vector loaded once for both weight rows).
// quant_ticks, K = 4096, int4 groups of 32 / 128 / per row, MAC/tick: one thread in L2 (N = 256)
// M = 2 22-28 -> 25-32, 2 threads in L3 (N = 4096) M = 2-3 41-60 -> 53-72. Four or three rows of
// x on one weight row (R = 1) ran slower than row by row (21-26 against 27 in L2): 37 loads per
// 36 FMAs. Both rows' x stay in L1 through a slice of K of at most kSliceBytes (the whole of
// K = 4096; slices of 8 / 16 KiB there were 0-20% slower), their totals carried between slices.
// Anything else row by row.
constexpr int64_t kSliceBytes = 32 << 10;
TF_AVX512 void gemv_f32_rows(const QuantWeight& w, const float* const* x, const float* const* xd,
                             int64_t M, int64_t n0, int64_t n1, float* const* y) {
  constexpr int MX = 2;
  const int64_t gs = w.group(), step = gs <= 64 ? 1 : gs / 128, loads = w.K / 128;
  const int64_t slice_bytes = step * 128 * int64_t(sizeof(float)) * MX;  // one scale's loads
  // the lane form prep_x writes on this CPU (rows in another form go one by one)
  const bool normal = !fast_subnormals();
  const float form = normal ? kWideNormalLanes : kWideLanes;
  const bool fits =
      w.bits == 4 && slice_bytes <= kSliceBytes && (normal || !(_mm_getcsr() & 0x40));
  // the rows in this table's lane order go in pairs (prep_x declines some: an outlier, inf)
  constexpr int64_t kBatch = 64;
  const float* px[kBatch];
  const float* pxd[kBatch];
  float* py[kBatch];
  int64_t np = 0;
  for (int64_t m = 0; m < M; ++m) {
    if (fits && np < kBatch && xd[m] && xd[m][w.K + 1] == form) {
      px[np] = x[m], pxd[np] = xd[m], py[np++] = y[m];
    } else {
      gemv_f32(w, x[m], xd[m], n0, n1, y[m]);
    }
  }
  float* carry = np >= MX ? static_cast<float*>(scratch_get(
                                kScratchSlot, size_t((n1 - n0) * MX * 16) * sizeof(float)))
                          : nullptr;
  if (!carry) {
    for (int64_t i = 0; i < np; ++i) gemv_f32(w, px[i], pxd[i], n0, n1, py[i]);
    return;
  }
  const int64_t sl = kSliceBytes / slice_bytes * step;  // loads a slice
  auto run = [&](auto gs_const, auto normal_const) {
    constexpr int GS = decltype(gs_const)::value;
    constexpr bool NM = decltype(normal_const)::value;
    constexpr int R = GS == 32 ? 1 : 2;  // groups of 32 spill with two (as in gemv_f32)
    int64_t i = 0;
    for (; i + MX <= np; i += MX)
      for (int64_t lb = 0; lb < loads; lb += sl) {
        const int64_t le = std::min(loads, lb + sl);
        int64_t n = n0;
        for (; n + R <= n1; n += R)
          rows_i4_wide<GS, R, MX, NM>(w, n, pxd + i, py + i, lb, le, carry + (n - n0) * MX * 16);
        for (; n < n1; ++n)
          rows_i4_wide<GS, 1, MX, NM>(w, n, pxd + i, py + i, lb, le, carry + (n - n0) * MX * 16);
      }
    if (i < np) gemv_f32(w, px[i], pxd[i], n0, n1, py[i]);
  };
  auto by_group = [&](auto normal_const) {
    switch (gs) {
      case 32: return run(std::integral_constant<int, 32>{}, normal_const);
      case 64: return run(std::integral_constant<int, 64>{}, normal_const);
      case 128: return run(std::integral_constant<int, 128>{}, normal_const);
      case 256: return run(std::integral_constant<int, 256>{}, normal_const);
      default: return run(std::integral_constant<int, 0>{}, normal_const);
    }
  };
  if (normal)
    by_group(std::true_type{});
  else
    by_group(std::false_type{});
}

// ---- float prefill: int4 dequantized in the AVX2 lane order -----------------------------------

// As the AVX2 table's dequant_lanes (quant_kernels.h: element 64b + 8i + j at 64b + 8j + i), the
// same formula per element ((float(u 16^j) 16^-j - z) s), so bitwise its output, two
// 64-blocks per 64-byte load: nibble j of the 16 dwords is element 8i + j of both blocks (lanes
// 0-7 the first, 8-15 the second); values j and j + 1 are regrouped by 256-bit halves into one
// 16-float store per block. A last lone 64-block goes to the AVX2 kernel.
TF_AVX512 void dequant_lanes(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                             float* out, int64_t ldo) {
  const auto avx2 = kernels_avx2()->dequant_lanes;
  const int64_t G = w.groups(), gs = w.group();
  const __m512i quads = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.K / 2);
    const float* s = w.scales + n * G;
    const uint8_t* z = w.zeros ? w.zeros + n * G : nullptr;
    float* o = out + (n - n0) * ldo - k0;
    // the next row's codes of this range asked for now: each row's run is a short stream (512
    // bytes for a 1024-deep slice) that the hardware prefetcher meets cold
    if (n + 1 < n1)
      for (int64_t b = k0 / 2; b < k1 / 2; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(q + w.K / 2 + b), _MM_HINT_T0);
    int64_t k = k0;
    for (; k + 128 <= k1; k += 128) {
      const __m512i v = _mm512_loadu_si512(q + k / 2);
      __m512 sv, zv;
      if (gs == 32) {
        const int64_t g = k / 32;
        sv = _mm512_permutexvar_ps(quads, _mm512_castps128_ps512(_mm_loadu_ps(s + g)));
        if (z) {
          int32_t z4;
          std::memcpy(&z4, z + g, 4);
          zv = _mm512_cvtepi32_ps(
              _mm512_permutexvar_epi32(quads, _mm512_cvtepu8_epi32(_mm_cvtsi32_si128(z4))));
        } else {
          zv = _mm512_set1_ps(8.0f);
        }
      } else {
        // lanes 0-7 one block's group, 8-15 the next's (insertf64x4: AVX-512 F, not DQ)
        auto halves = [&](float lo, float hi) TF_AVX512 {
          return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(lo)),
                                                     _mm256_castps_pd(_mm256_set1_ps(hi)), 1));
        };
        const int64_t ga = k / gs, gb = (k + 64) / gs;
        sv = halves(s[ga], s[gb]);
        zv = z ? halves(float(z[ga]), float(z[gb])) : _mm512_set1_ps(8.0f);
      }
      auto value = [&](int j) TF_AVX512 {
        const __m512i m = j < 7 ? _mm512_and_si512(v, _mm512_set1_epi32(int(0xfu << (4 * j))))
                                : _mm512_srli_epi32(v, 28);
        const __m512 uz = _mm512_fmsub_ps(
            _mm512_cvtepi32_ps(m), _mm512_set1_ps(j < 7 ? 1.0f / float(1 << (4 * j)) : 1.0f), zv);
        return _mm512_mul_ps(uz, sv);
      };
#pragma GCC unroll 4
      for (int j = 0; j < 8; j += 2) {
        const __m512 a = value(j), b = value(j + 1);
        _mm512_storeu_ps(o + k + 8 * j, _mm512_shuffle_f32x4(a, b, 0x44));
        _mm512_storeu_ps(o + k + 64 + 8 * j, _mm512_shuffle_f32x4(a, b, 0xee));
      }
    }
    if (k < k1) avx2(w, n, n + 1, k, k1, out + (n - n0) * ldo + (k - k0), ldo);
  }
}

Kernels make_table() {
  Kernels k = *kernels_avx2();
  k.isa = Isa::avx512;
  k.tile_i8 = tile_i8;
  k.tile_i8_whole_range = true;
  k.tile_i4 = tile_i4;
  k.dequant_lanes = dequant_lanes;
  k.prep_x = prep_x;
  k.gemv_f32 = gemv_f32;
  k.gemv_f32_rows = gemv_f32_rows;
  k.reads_strips = true;
  return k;
}

}  // namespace

const Kernels* kernels_avx512() {
  if (!kernels_avx2()) return nullptr;
  static const Kernels table = make_table();
  return &table;
}

}  // namespace quant_cpu
}  // namespace tf

#else
namespace tf {
namespace quant_cpu {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace quant_cpu
}  // namespace tf
#endif
