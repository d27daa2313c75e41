// W8A8 and W4A8 on AMX (Intel Advanced Matrix Extensions: Sapphire Rapids and later; Intel SDM
// vol. 1 ch. 18, "Intel AMX"). (W4A8: below, at its kernels.) TDPBSUD multiplies a tile of 16 rows x 64 signed bytes (A) by one of 16
// rows x 64 unsigned bytes holding 4 consecutive k of 16 columns each (B), into 16 x 16 int32
// sums (C): 16K products per instruction, exact. The AVX-512 table's packed weight strips
// (quant_x86_avx512.cc, pack_strip_i8 / w.strips: 4 k of 32 weight rows per 128 bytes, w + 128 as
// unsigned bytes) are B as stored, two tiles per strip at a 128-byte stride; the rows of xq are A
// as stored. So a strip meets 32 rows of x in four C tiles per 64 k, and each group's int32 sums,
// less 128 times the group's sum of x (the +128 of the weight bytes), join the float totals with
// the group's scale by the same FMA as strip_i8: bitwise the AVX-512 result.
//
// Linux only (the tile state is asked of the kernel: cpu_features.h, amx_usable); elsewhere, or
// where that fails, the strips take vpdpbusd as before.
#include "quant_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/x86_amx.h"
#include "quant_x86_i4_parts.h"

namespace tf {
namespace quant_cpu {
namespace {

constexpr int kStrip = 32;  // quant_x86_avx512.cc's strip: 32 weight rows
constexpr int kRows = 32;   // rows of x per pass: two A tiles

using x86::configure_tiles;
using x86::tile_barrier;
using x86::zero_c_tiles;

// The four C tiles of one 32-row block stored into `to` (4 x 16 x 16 int32).
TF_AMX inline void tiles_store(int32_t* to) {
  _tile_stored(0, to, 64);
  _tile_stored(1, to + 256, 64);
  _tile_stored(2, to + 512, 64);
  _tile_stored(3, to + 768, 64);
  tile_barrier();
}

// k in [k0, k1) of 32 rows of x (xa: per 64 k, the 32 rows' 64 bytes, two A tiles of 1 KB)
// against a strip, into the C tiles.
// Each 64 k also asks for `per` lines of the next strip into L2 from *ahead on (up to end).
TF_AMX inline void tiles_run(const uint8_t* p, const int8_t* xa, int64_t k0, int64_t k1,
                             const uint8_t*& ahead, const uint8_t* end, int per) {
  for (int64_t k = k0; k < k1; k += 64) {
    for (int l = 0; l < per && ahead < end; ++l, ahead += 64)
      _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T1);
    const uint8_t* b = p + (k / 4) * (4 * kStrip);
    const int8_t* a = xa + k * kRows;
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a + 1024, 64);
    _tile_loadd(6, b, 4 * kStrip);
    _tile_loadd(7, b + 64, 4 * kStrip);
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    _tile_dpbsud(2, 5, 6);
    _tile_dpbsud(3, 5, 7);
  }
}

// Group g's sums of one block (ct: its four C tiles stored) joined to the float totals acc
// (32 x 32) with the group's scales, as strip_i8 does.
TF_AMX void group_epilogue(const int32_t* ct, const float* sp, const int32_t* xs, int64_t G,
                           int64_t g, int rows, float* acc) {
  const __m512 s0 = _mm512_loadu_ps(sp + g * kStrip), s1 = _mm512_loadu_ps(sp + g * kStrip + 16);
  for (int i = 0; i < rows; ++i) {
    const int32_t* c0 = ct + (i / 16) * 512 + (i % 16) * 16;
    const __m512i ex = _mm512_set1_epi32(128 * xs[i * G + g]);
    const __m512 i0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(c0), ex));
    const __m512 i1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(c0 + 256), ex));
    float* a = acc + i * kStrip;
    const __m512 f0 = g ? _mm512_load_ps(a) : _mm512_setzero_ps();
    const __m512 f1 = g ? _mm512_load_ps(a + 16) : _mm512_setzero_ps();
    _mm512_store_ps(a, _mm512_fmadd_ps(s0, i0, f0));
    _mm512_store_ps(a + 16, _mm512_fmadd_ps(s1, i1, f1));
  }
}

// Every block of x against one strip, group by group. (Depth in chunks of 512 over all blocks,
// so that the strip's chunk stayed in L1 while the blocks of x streamed from L2, the C tiles
// stored and reloaded between chunks, measured no faster: K = N = 4096, M = 128, 2.52 against
// 2.47 ms.)
TF_AMX void strip_all(const uint8_t* p, const float* sp, const int8_t* xa, const int32_t* xs,
                      int64_t M, int64_t K, int64_t G, int64_t gs, int cols, float* c,
                      int64_t ldc, float* acc, const uint8_t* next, int64_t next_bytes) {
  const int64_t blocks = (M + kRows - 1) / kRows;
  // the next strip (null: none) asked into L2 evenly over this one's steps: a strip's first
  // block otherwise waited on memory at each tile load (the hardware prefetcher does not
  // follow them): K = N = 4096, M = 128, 2 threads 2.28-2.38 -> 2.10-2.23 ms, 1 thread 3.4 -> 3.0
  const uint8_t* ahead = next;
  const uint8_t* end = next ? next + next_bytes : nullptr;
  const int per = next ? int((next_bytes / 64 + blocks * (K / 64) - 1) / (blocks * (K / 64))) : 0;
  alignas(64) int32_t ct[4 * 256];
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < G; ++g) {
      zero_c_tiles();
      tiles_run(p, xa + b * kRows * K, g * gs, (g + 1) * gs, ahead, end, per);
      tiles_store(ct);
      const int rows = int(std::min<int64_t>(kRows, M - b * kRows));
      group_epilogue(ct, sp, xs + b * kRows * G, G, g, rows, acc + b * kRows * kStrip);
    }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xffff)
                       : cols > 16 ? __mmask16((1u << (cols - 16)) - 1)
                                   : __mmask16(0);
  for (int64_t i = 0; i < M; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_load_ps(acc + i * kStrip));
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_load_ps(acc + i * kStrip + 16));
  }
}

// x in tile order into xa (per 64 k, the 32 rows of a block, 64 bytes each), zero rows past M,
// and its group sums into xs (zero past M): rows 4 KB apart (K = 4096) fell in one L1 set, and
// the tile loads that read them ran the kernel at a sixth of the tiles' rate.
void pack_x(const int8_t* xq, const int32_t* xsum, int64_t M, int64_t K, int64_t G,
            std::vector<int8_t>& xa, std::vector<int32_t>& xs) {
  const int64_t blocks = (M + kRows - 1) / kRows;
  xa.resize(size_t(blocks * kRows * K));
  xs.assign(size_t(blocks * kRows * G), 0);
  if (M % kRows)  // the last block's rows past M
    for (int64_t k = 0; k < K; k += 64)
      std::memset(xa.data() + (blocks - 1) * kRows * K + k * kRows + (M % kRows) * 64, 0,
                  size_t(kRows - M % kRows) * 64);
  for (int64_t m = 0; m < M; ++m) {
    int8_t* dst = xa.data() + (m / kRows) * kRows * K + (m % kRows) * 64;
    for (int64_t k = 0; k < K; k += 64) std::memcpy(dst + k * kRows, xq + m * K + k, 64);
  }
  std::memcpy(xs.data(), xsum, size_t(M * G) * sizeof(int32_t));
}

TF_AMX void tile_i8(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                    int64_t n0, int64_t n1, float* c, int64_t ldc, PackStripI8 pack) {
  const int64_t K = w.K, G = w.groups(), gs = w.group(), blocks = (M + kRows - 1) / kRows;
  thread_local std::vector<int8_t> xa;
  thread_local std::vector<int32_t> xs;
  pack_x(xq, xsum, M, K, G, xa, xs);
  // the float totals of every block (32 x 32 each)
  thread_local std::vector<float> acc_buf;
  acc_buf.resize(size_t(blocks * kRows * kStrip + 16));
  float* acc = align64(acc_buf.data());
  thread_local std::vector<uint8_t> own;  // a strip packed here when the weight has none
  const int64_t sbytes = quant_strip_bytes(w);
  configure_tiles();
  for (int64_t n = n0; n < n1; n += kStrip) {
    const uint8_t* p;
    if (w.strips && n % kStrip == 0) {
      p = w.strips + (n / kStrip) * sbytes;
    } else {
      own.resize(size_t(K * kStrip) + size_t(G * kStrip) * sizeof(float) + 64);
      uint8_t* o = align64(own.data());
      pack(w, n, n1, o, reinterpret_cast<float*>(o + K * kStrip));
      p = o;
    }
    const float* sp = reinterpret_cast<const float*>(p + K * kStrip);
    const int cols = int(std::min<int64_t>(kStrip, n1 - n));
    const bool next = w.strips && n % kStrip == 0 && n + kStrip < n1;
    strip_all(p, sp, xa.data(), xs.data(), M, K, G, gs, cols, c + n, ldc, acc,
              next ? p + sbytes : nullptr, sbytes);
  }
  _tile_release();
}

// ---- W4A8 ------------------------------------------------------------------------------------
//
// The int4 strips (tensorfuse/quant.h: per 8 k, 128 bytes, byte 4j + b holding u[j, 8o + b] low
// and u[j, 8o + 4 + b] high) are B tiles once their nibbles are apart: the low nibbles of a
// 64-byte half (weight rows 16h..16h + 15) are the B row of the depth quad 8o..8o + 3, the high
// nibbles that of 8o + 4..8o + 7. So each strip is unpacked once into tile order (two 1 KB B
// tiles per 64 k, codes 0..15 as unsigned bytes) and meets every block of x in TDPBSUD; per
// group isum = dot - z * xsum (int32, exact) joins the contract's eight float partials as
// strip_i4 does (quant_x86_avx512.cc): bitwise the AVX-512 result.

// Strip p's codes unpacked into ub: per 64 k, tile h (weight rows 16h..) at ub + (2 s + h) * 1024.
TF_AMX void unpack_strip_i4(const uint8_t* p, int64_t K, uint8_t* ub) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int64_t s = 0; s < K / 64; ++s)
    for (int o = 0; o < 8; ++o) {
      const uint8_t* src = p + (8 * s + o) * 128;
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_loadu_si512(src + 64 * h);
        uint8_t* dst = ub + (2 * s + h) * 1024 + 2 * o * 64;
        _mm512_store_si512(dst, _mm512_and_si512(v, low4));
        _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
      }
    }
}

// Every block of x against one unpacked strip, group by group.
TF_AMX void strip_all_i4(const uint8_t* ub, const float* sp, const int32_t* zp, const int8_t* xa,
                         const int32_t* xs, int64_t M, int64_t K, int64_t G, int64_t gs, int cols,
                         float* c, int64_t ldc) {
  const int64_t blocks = (M + kRows - 1) / kRows;
  alignas(64) int32_t ct[4 * 256];
  alignas(64) float part[kRows][8][kStrip];
  for (int64_t b = 0; b < blocks; ++b) {
    const int rows = int(std::min<int64_t>(kRows, M - b * kRows));
    std::memset(part, 0, sizeof(part));
    const int8_t* x = xa + b * kRows * K;
    for (int64_t g = 0; g < G; ++g) {
      zero_c_tiles();
      for (int64_t k = g * gs; k < (g + 1) * gs; k += 64) {
        const uint8_t* bt = ub + (k / 64) * 2048;
        _tile_loadd(4, x + k * kRows, 64);
        _tile_loadd(5, x + k * kRows + 1024, 64);
        _tile_loadd(6, bt, 64);
        _tile_loadd(7, bt + 1024, 64);
        _tile_dpbsud(0, 4, 6);
        _tile_dpbsud(1, 4, 7);
        _tile_dpbsud(2, 5, 6);
        _tile_dpbsud(3, 5, 7);
      }
      tiles_store(ct);
      for (int i = 0; i < rows; ++i) {
        // tile 2 (i / 16) + h: rows of x 16 (i / 16).., weight rows 16 h..
        const int32_t* c0 = ct + (i / 16) * 512 + (i % 16) * 16;
        join_group_i4(_mm512_load_si512(c0), _mm512_load_si512(c0 + 256), zp + g * kStrip,
                      sp + g * kStrip, xs[(b * kRows + i) * G + g], part[i][g % 8]);
      }
    }
    for (int i = 0; i < rows; ++i) store_parts_i4(part[i], cols, c + (b * kRows + i) * ldc);
  }
}

TF_AMX void tile_i4(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                    int64_t n0, int64_t n1, float* c, int64_t ldc) {
  const int64_t K = w.K, G = w.groups(), gs = w.group(), sbytes = quant_strip_bytes(w);
  thread_local std::vector<int8_t> xa;
  thread_local std::vector<int32_t> xs;
  thread_local std::vector<uint8_t> ub_buf;
  pack_x(xq, xsum, M, K, G, xa, xs);
  ub_buf.resize(size_t(K * kStrip) + 64);
  uint8_t* ub = align64(ub_buf.data());
  configure_tiles();
  for (int64_t n = n0; n < n1; n += kStrip) {
    const uint8_t* p = w.strips + (n / kStrip) * sbytes;
    const float* sp = reinterpret_cast<const float*>(p + K / 2 * kStrip);
    const int32_t* zp = reinterpret_cast<const int32_t*>(sp + G * kStrip);
    unpack_strip_i4(p, K, ub);
    tile_barrier();
    const int cols = int(std::min<int64_t>(kStrip, n1 - n));
    strip_all_i4(ub, sp, zp, xa.data(), xs.data(), M, K, G, gs, cols, c + n, ldc);
  }
  _tile_release();
}

}  // namespace

bool amx_w8a8_applies(const QuantWeight& w, int64_t M) {
  return w.K % 64 == 0 && w.group() % 64 == 0 && M >= kAmxMinRows && amx_usable(Amx::int8) &&
         (w.bits == 8 || w.strips);
}

bool tile_i4_amx(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                 int64_t n0, int64_t n1, float* c, int64_t ldc) {
  if (w.bits != 4 || !xsum || !w.strips || n0 % kStrip != 0 || !amx_w8a8_applies(w, M))
    return false;
  tile_i4(w, xq, xsum, M, n0, n1, c, ldc);
  return true;
}

bool tile_i8_amx(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                 int64_t n0, int64_t n1, float* c, int64_t ldc, PackStripI8 pack) {
  if (!xsum || !amx_w8a8_applies(w, M)) return false;
  tile_i8(w, xq, xsum, M, n0, n1, c, ldc, pack);
  return true;
}

}  // namespace quant_cpu
}  // namespace tf

#else
namespace tf {
namespace quant_cpu {
bool amx_w8a8_applies(const QuantWeight&, int64_t) { return false; }
bool tile_i4_amx(const QuantWeight&, const int8_t*, const int32_t*, int64_t, int64_t, int64_t,
                 float*, int64_t) {
  return false;
}
bool tile_i8_amx(const QuantWeight&, const int8_t*, const int32_t*, int64_t, int64_t, int64_t,
                 float*, int64_t, PackStripI8) {
  return false;
}
}  // namespace quant_cpu
}  // namespace tf
#endif
