// W8A8 on AMX (Intel Advanced Matrix Extensions: Sapphire Rapids and later; Intel SDM vol. 1
// ch. 18, "Intel AMX"). TDPBSUD multiplies a tile of 16 rows x 64 signed bytes (A) by one of 16
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

TF_AMX void tile_i8(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                    int64_t n0, int64_t n1, float* c, int64_t ldc, PackStripI8 pack) {
  const int64_t K = w.K, G = w.groups(), gs = w.group(), blocks = (M + kRows - 1) / kRows;
  // x in tile order, zero rows past M: rows 4 KB apart (K = 4096) fell in one L1 set, and the
  // tile loads that read them ran the kernel at a sixth of the tiles' rate
  thread_local std::vector<int8_t> xa;
  thread_local std::vector<int32_t> xs;
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
  // the float totals of every block (32 x 32 each)
  thread_local std::vector<float> acc_buf;
  acc_buf.resize(size_t(blocks * kRows * kStrip + 16));
  float* acc =
      reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(acc_buf.data()) + 63) & ~uintptr_t(63));
  thread_local std::vector<uint8_t> own;  // a strip packed here when the weight has none
  const int64_t sbytes = quant_strip_bytes(w);
  configure_tiles();
  for (int64_t n = n0; n < n1; n += kStrip) {
    const uint8_t* p;
    if (w.strips && n % kStrip == 0) {
      p = w.strips + (n / kStrip) * sbytes;
    } else {
      own.resize(size_t(K * kStrip) + size_t(G * kStrip) * sizeof(float) + 64);
      uint8_t* o = reinterpret_cast<uint8_t*>(
          (reinterpret_cast<uintptr_t>(own.data()) + 63) & ~uintptr_t(63));
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

}  // namespace

bool amx_w8a8_applies(const QuantWeight& w, int64_t M) {
  return w.bits == 8 && w.K % 64 == 0 && w.group() % 64 == 0 && M >= kAmxMinRows &&
         amx_usable(Amx::int8);
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
bool tile_i8_amx(const QuantWeight&, const int8_t*, const int32_t*, int64_t, int64_t, int64_t,
                 float*, int64_t, PackStripI8) {
  return false;
}
}  // namespace quant_cpu
}  // namespace tf
#endif
