// int8 / int4 weights against float activations on AMX-BF16 tiles (Intel Advanced Matrix
// Extensions; Intel SDM vol. 1 ch. 18; the tile layout of common/x86_amx.h).
//
// TDPBF16PS multiplies bfloat16 pairs exactly and adds them in float32, so it is exact for
// operands that bfloat16 holds exactly. Both sides here are made so:
//   - a weight, (u - z) for int4 (-15..15) or q for int8 (-127..127), has at most 8 significant
//     bits: bfloat16 holds it exactly. The group's scale stays outside: it multiplies the
//     group's float32 sums afterwards, as the float GEMV does.
//   - x (float32) is split as x = x0 + x1 + x2 with x0 = x truncated to its top 16 bits,
//     x1 = (x - x0) truncated likewise and x2 = x - x0 - x1: each step is exact (x - x0 keeps the
//     low 16 bits of the significand, x2 at most 8), and each part is a bfloat16. The three
//     parts meet the same weight tile one after another.
// So every product is exact and the sums are float32 sums over 3 x 32 products per step, the
// error of a float32 dot product (the 1e-5 relative bound of linear holds with room). What is
// lost: parts below float32's normal range (AMX reads denormal inputs as zero), so rows whose
// largest |x| is below 2^-100 (or above 2^100, where a part could overflow) take the other
// paths, as do rows with an infinity or a NaN.
//
// Tiles (x86_amx.h): A = 16 weight rows x 32 k (dequantized per unit of depth into an L1
// buffer), B = one part of 16 rows of x as 16 k pairs x 16 rows (packed once per call, below),
// C^T = 16 weight rows x 16 rows of x. Per unit of depth (a group, or up to 256 k of it) the C
// tiles are stored and join float32 totals with the group's scales; the totals are transposed
// into y at the end.
#include "quant_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "../common/x86_amx.h"
#include "../common/x86_avx512_transpose.h"
#include "../common/x86_bf16_split.h"

namespace tf {
namespace quant_cpu {
namespace {

using x86::configure_tiles;
using x86::tile_barrier;
using x86::zero_c_tiles;

constexpr int64_t kStrip = 32;        // weight rows per pass: two A tiles
constexpr int64_t kTaskRows = kAmxFloatTaskRows;
constexpr int64_t kXBytesL2 = 768 << 10;  // x parts of one depth chunk, kept in L2

// bfloat16 of the integers -16..15 at the index v & 31 (the int4 codes less z, in two's
// complement words).
TF_AMX inline __m512i small_ints_bf16() {
  alignas(64) static const uint16_t table[32] = {
      0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0, 0x4100, 0x4110, 0x4120,
      0x4130, 0x4140, 0x4150, 0x4160, 0x4170, 0xc180, 0xc170, 0xc160, 0xc150, 0xc140, 0xc130,
      0xc120, 0xc110, 0xc100, 0xc0e0, 0xc0c0, 0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80};
  return _mm512_load_si512(table);
}

// The unit [k0, k0 + steps * 32) of weight rows [n, n + kStrip) as A tiles: step s, half h at
// a + (2 s + h) * 512, row r of the half at + 32 r (bfloat16 in k order); rows from n1 on are
// zero.
TF_AMX void dequant_unit(const QuantWeight& w, int64_t n, int64_t n1, int64_t k0, int64_t steps,
                         int64_t g, uint16_t* a) {
  const int64_t ldq = w.q_stride();
  const __m512i hi = x86::high_halves(), table = small_ints_bf16();
  const __m512i nib = _mm512_set1_epi32(0x000F000F);
  for (int64_t r = 0; r < kStrip; ++r) {
    uint16_t* dst = a + (r / 16) * 512 + (r % 16) * 32;
    if (n + r >= n1) {
      for (int64_t s = 0; s < steps; ++s)
        _mm512_store_si512(dst + s * 1024, _mm512_setzero_si512());
      continue;
    }
    if (w.bits == 4) {
      const uint8_t* src = static_cast<const uint8_t*>(w.q) + (n + r) * (ldq / 2) + k0 / 2;
      const __m512i z = _mm512_set1_epi16(short(zero_of(w, n + r, g)));
      for (int64_t s = 0; s < steps; ++s) {
        // byte i (elements 2i low, 2i + 1 high) -> dword i = (hi << 16) | lo, then less z in
        // each word, then the table
        const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(src + 16 * s)));
        const __m512i u = _mm512_ternarylogic_epi32(_mm512_slli_epi32(d, 12), d, nib, 0xA8);
        const __m512i v = _mm512_sub_epi16(u, z);
        _mm512_store_si512(dst + s * 1024, _mm512_permutexvar_epi16(v, table));
      }
    } else {
      const int8_t* src = static_cast<const int8_t*>(w.q) + (n + r) * ldq + k0;
      for (int64_t s = 0; s < steps; ++s) {
        const __m128i* p = reinterpret_cast<const __m128i*>(src + 32 * s);
        const __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p)));
        const __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p + 1)));
        _mm512_store_si512(dst + s * 1024,
                           _mm512_permutex2var_epi16(_mm512_castps_si512(f0), hi,
                                                     _mm512_castps_si512(f1)));
      }
    }
  }
}

// The C tiles of one unit (ct: tiles 0-3 stored, 16 x 16 float32 each; tile 2 h + q: weight
// rows 16 h.., x rows of block mb + q) joined to the totals: acc[i * lda + m] += s[i] * C.
TF_AMX inline void join_unit(const float* ct, const float* s, bool two, int64_t rows, int64_t mb,
                             float* acc, int64_t lda) {
  for (int64_t i = 0; i < std::min(rows, kStrip); ++i) {
    const int64_t h = i / 16, r = i % 16;
    const __m512 sv = _mm512_set1_ps(s[i]);
    float* a = acc + i * lda + 16 * mb;
    _mm512_store_ps(a, _mm512_fmadd_ps(sv, _mm512_load_ps(ct + (2 * h) * 256 + 16 * r),
                                       _mm512_load_ps(a)));
    if (two)
      _mm512_store_ps(a + 16, _mm512_fmadd_ps(sv, _mm512_load_ps(ct + (2 * h + 1) * 256 + 16 * r),
                                              _mm512_load_ps(a + 16)));
  }
}

// Rows [n0, n1) (at most kTaskRows) of the product for all M rows of x, into (or added to)
// y[m * ldy + (n - n0)]. Two loop orders (below): with one or two blocks of 16 rows of x, strip by
// strip; with more, unit by unit over all strips, so that each pair of x blocks meets every strip
// of a unit in turn (its B tiles read from L2 once a unit) and the strips are dequantized once.
TF_AMX void float_rows(const QuantWeight& w, const uint16_t* xp, int64_t M, int64_t n0,
                       int64_t n1, float* y, int64_t ldy, bool accumulate) {
  const int64_t K = w.K, gs = w.group(), KS = K / 32, MB = (M + 15) / 16;
  // (units of 256 where x is one or two blocks: fewer joins; else 128, so that a unit's B tiles
  // and A tiles stay in L1 together)
  const int64_t max_unit = MB <= 2 ? 256 : 128;
  const int64_t unit = 32 * std::gcd(gs / 32, max_unit / 32), steps = unit / 32;
  // depth chunks whose x parts (all blocks of x) stay in L2 while the strips pass
  const int64_t kc = std::min(K, std::max<int64_t>(1, kXBytesL2 / (MB * 16 * 3 * 2) / unit) * unit);
  const int64_t lda = MB * 16, rows = n1 - n0, strips = (rows + kStrip - 1) / kStrip;
  thread_local std::vector<float> acc_buf;
  thread_local std::vector<uint16_t> a_buf;
  acc_buf.assign(size_t(strips * kStrip * lda + 16), 0.0f);
  a_buf.resize(size_t(strips * steps * 1024 + 32));
  float* acc = align64(acc_buf.data());
  uint16_t* a = align64(a_buf.data());
  alignas(64) float ct[4 * 256];
  alignas(64) float sc[kTaskRows];
  const int64_t block = KS * 3 * 512;  // elements of one block of x's parts
  // C = strip t's unit (A at a + t * steps * 1024) x blocks mb, mb + 1 of x (depth k0..),
  // joined to the totals with the scales sc[t * kStrip ..]
  auto tiles = [&](int64_t t, int64_t mb, int64_t k0) TF_AMX {
    const bool two = mb + 1 < MB;
    const uint16_t* at = a + t * steps * 1024;
    const uint16_t* b0 = xp + mb * block + (k0 / 32) * 3 * 512;
    zero_c_tiles();
    for (int64_t s = 0; s < steps; ++s) {
      _tile_loadd(4, at + s * 1024, 64);
      _tile_loadd(5, at + s * 1024 + 512, 64);
      for (int p = 0; p < 3; ++p) {
        const uint16_t* b = b0 + (s * 3 + p) * 512;
        _tile_loadd(6, b, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (two) {
          _tile_loadd(7, b + block, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
    }
    _tile_stored(0, ct, 64);
    _tile_stored(2, ct + 512, 64);
    if (two) {
      _tile_stored(1, ct + 256, 64);
      _tile_stored(3, ct + 768, 64);
    }
    tile_barrier();
    join_unit(ct, sc + t * kStrip, two, rows - t * kStrip, mb, acc + t * kStrip * lda, lda);
  };
  // strip t's unit at k0 dequantized, with its scales
  auto prepare = [&](int64_t t, int64_t k0) TF_AMX {
    const int64_t g = k0 / gs, n = n0 + t * kStrip;
    dequant_unit(w, n, n1, k0, steps, g, a + t * steps * 1024);
    for (int64_t i = 0; i < kStrip; ++i)
      sc[t * kStrip + i] = n + i < n1 ? w.scales[(n + i) * w.s_stride() + g] : 0.0f;
    tile_barrier();
  };
  configure_tiles();
  if (MB <= 2) {
    // one pass of x blocks: strip by strip, its rows' codes read front to back (unit by unit
    // over 128 rows at once, the rows were more streams than the prefetchers follow: M = 16 ran
    // 20% slower)
    for (int64_t t = 0; t < strips; ++t)
      for (int64_t k0 = 0; k0 < K; k0 += unit) {
        prepare(t, k0);
        tiles(t, 0, k0);
      }
  } else {
    // unit by unit over every strip, each pair of x blocks meeting all strips in turn: its B
    // tiles come from L2 once a unit; the first pair dequantizes each strip just before its
    // tiles, so that the vector work overlaps the tile products
    for (int64_t c0 = 0; c0 < K; c0 += kc)
      for (int64_t k0 = c0; k0 < std::min(K, c0 + kc); k0 += unit)
        for (int64_t mb = 0; mb < MB; mb += 2)
          for (int64_t t = 0; t < strips; ++t) {
            if (mb == 0) prepare(t, k0);
            tiles(t, mb, k0);
          }
  }
  _tile_release();
  // y[m, i] (+)= acc[i, m], 16 x 16 blocks transposed
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int64_t cn = std::min<int64_t>(16, rows - i0);
    const __mmask16 cm = cn >= 16 ? __mmask16(0xffff) : __mmask16((1u << cn) - 1);
    for (int64_t m0 = 0; m0 < M; m0 += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; ++i) v[i] = _mm512_load_ps(acc + (i0 + i) * lda + m0);
      x86::transpose16(v);
      for (int64_t m = 0; m < 16 && m0 + m < M; ++m) {
        float* dst = y + (m0 + m) * ldy + i0;
        if (accumulate) v[m] = _mm512_add_ps(v[m], _mm512_maskz_loadu_ps(cm, dst));
        _mm512_mask_storeu_ps(dst, cm, v[m]);
      }
    }
  }
}

// Rows [m0, m0 + 16) of x (rows past M zero) as the parts' B tiles of block xp (K / 32 steps of
// three 1 KB tiles). false where a row does not suit (see the top of the file).
TF_AMX bool pack_block(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t m0,
                       uint16_t* xp) {
  for (int64_t m = m0; m < std::min(M, m0 + 16); ++m) {
    float b = 0.0f;
    if (!x86::finite_rows(x + m * ldx, ldx, 1, K, &b)) return false;
    if (b != 0.0f && (b < 0x1p-100f || b > 0x1p100f)) return false;
  }
  x86::split3_panel(x + m0 * ldx, ldx, std::min<int64_t>(16, M - m0), K, xp, 3 * 512, 512);
  return true;
}

}  // namespace

bool amx_float_usable(const QuantWeight& w) {
  return w.K % 32 == 0 && w.group() % 32 == 0 && w.q_stride() % 2 == 0 &&
         active_isa() == Isa::avx512 && amx_usable(Amx::bf16);
}

bool amx_float_applies(const QuantWeight& w, int64_t M) {
  // int4 in groups of 32 joins its C tiles every 96 products: the GEMV and the tiles of the
  // float path were ahead below 16 rows (quant_ticks, K = N = 4096, 2 threads, M = 8: 31 -> 24
  // MAC/tick, M = 12 even, M = 16 35 -> 44)
  const int64_t min_rows = w.bits == 4 && w.group() == 32 ? 16 : kAmxFloatMinRows;
  return M >= min_rows && amx_float_usable(w);
}

int64_t amx_float_x_elems(int64_t M, int64_t K) { return (M + 15) / 16 * (K / 32) * 3 * 512; }

bool amx_float_pack_x(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t mb0,
                      int64_t mb1, uint16_t* xp) {
  for (int64_t mb = mb0; mb < mb1; ++mb)
    if (!pack_block(x, ldx, M, K, 16 * mb, xp + mb * (K / 32) * 3 * 512)) return false;
  return true;
}

void amx_float_rows(const QuantWeight& w, const uint16_t* xp, int64_t M, int64_t n0, int64_t n1,
                    float* y, int64_t ldy, bool accumulate) {
  float_rows(w, xp, M, n0, n1, y, ldy, accumulate);
}

}  // namespace quant_cpu
}  // namespace tf

#else
namespace tf {
namespace quant_cpu {
bool amx_float_usable(const QuantWeight&) { return false; }
bool amx_float_applies(const QuantWeight&, int64_t) { return false; }
int64_t amx_float_x_elems(int64_t, int64_t) { return 0; }
bool amx_float_pack_x(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*) {
  return false;
}
void amx_float_rows(const QuantWeight&, const uint16_t*, int64_t, int64_t, int64_t, float*,
                    int64_t, bool) {}
}  // namespace quant_cpu
}  // namespace tf
#endif
