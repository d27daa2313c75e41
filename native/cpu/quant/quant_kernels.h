// The per-ISA pieces of the quantized linear layer (quant_generic.cc, quant_x86_avx2.cc fill one
// table each; quant_driver.cc does threading, activation preparation, the prefill tiling and the
// epilogue).
// Layouts: tensorfuse/quant.h. Every function computes rows [n0, n1) of the weight.
#pragma once
#include <cstdint>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/quant.h"

namespace tf {
namespace quant_cpu {

// Floats prep_x may write after the K of x (the ISA's own constants for its GEMV).
constexpr int64_t kPrepXTail = 8;
// xd[K + 1] after an x86 prep_x: which lane form it wrote (the AVX-512 table adds its own).
constexpr float kSubnormalLanes = 0.0f;  // AVX2 lanes, codes read as subnormal floats
constexpr float kNormalLanes = 3.0f;     // AVX2 lanes, codes with 2^23's exponent (int4 only)
// Floats of prep_x's output for K columns: x reordered, the tail, then up to K / 2 more (sums of
// x over each lane of 4 or 8 weights, for an ISA that takes the zero point off per lane, or the
// per-group start values of an integer GEMV on digits of x).
// Rounded up to whole 64-byte lines, so the rows of x prepared one after another in a buffer
// that starts on 64 bytes all do (a 64-byte load of x that crosses a line is two loads: the
// AVX-512 GEMV with four rows of x ran at half speed on rows 24,608 bytes apart).
constexpr int64_t prep_x_floats(int64_t K) { return (K + kPrepXTail + K / 2 + 15) / 16 * 16; }
// p rounded up to 64 bytes (its buffer wants 63 bytes of slack: 15 floats, 31 uint16).
template <typename T>
inline T* align64(T* p) {
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

struct Kernels {
  Isa isa;
  // Float activations, one row x (float32 [K], stored K order):
  //   int8: y[n] = sum_g s[n, g] * dot(q[n, g], x[g])
  //   int4: y[n] = sum_g s[n, g] * dot(u[n, g] - z[n, g], x[g])
  //   (z, and int8's offset where an ISA reads offset binary, subtracted per weight or per lane of
  //   4-8 weights; never folded out as z * sum(x) over a group or a row: that cancels badly when
  //   x has a nonzero mean)
  // xd: x in the ISA's own lane order, from prep_x (prep_x_floats(K); null when prep_x is null
  // or declined);
  void (*gemv_f32)(const QuantWeight& w, const float* x, const float* xd, int64_t n0, int64_t n1,
                   float* y);
  // Optional: writes x (float32 [K]) into xd (prep_x_floats(K)) in the order and scaling
  // the GEMV wants for w's bits, and returns false when this weight's shape (or x: inf, NaN, an
  // extreme range) does not suit that kernel. nullptr: no reordering.
  bool (*prep_x)(const QuantWeight& w, const float* x, float* xd);
  // W8A8, rows [0, M) of xq (int8 [M, K], values in [-127, 127]):
  //   c[m * ldc + n] = sum_g s[n, g] * float(isum_g), isum_g = sum over group g of xq * q (int32,
  //   exact), the groups added in order with std::fma (never left to -ffp-contract): the result
  //   is bitwise the same on every ISA. xsum[m * G + g]: sum over group g of xq (exact; null when
  //   not prepared): an ISA that moves one operand to unsigned bytes (+128) takes 128 * xsum off.
  void (*tile_i8)(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                  int64_t n0, int64_t n1, float* c, int64_t ldc);
  // W4A8 (int4 weights, x quantized as for W8A8), rows [0, M) of xq (int8 [M, K], stored order):
  //   isum_g = sum over group g of (u - z) * xq (int32, exact); eight float partial sums, group g
  //   joining a_(g mod 8) = std::fma(s[n, g], float(isum_g), a_(g mod 8)) in the order of g, then
  //   c[m * ldc + n] = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) (a vector's hsum order):
  //   bitwise the same on every ISA, and one vector FMA per 8 groups where the lanes are groups.
  //   xl: xq in the nibble order of prep_i4_x (null when K % 64 != 0); xsum[m * G + g]: sum over
  //   group g of xq (exact), so an ISA may take sum u * xq - z * xsum (integers: no cancellation).
  void (*tile_i4)(const QuantWeight& w, const int8_t* xq, const int8_t* xl, const int32_t* xsum,
                  int64_t M, int64_t n0, int64_t n1, float* c, int64_t ldc);
  // W8A8's per-token activation quantizer, one row: s = max|x| / 127 (1 where x is all zero),
  // q[k] = clamp(nearbyint(x[k] / s), -127, 127); returns s. A row with a NaN or an infinity has
  // no scale: s = NaN, so every output of that row is NaN (never a finite guess); its codes are
  // then all -127 (a NaN quotient, clamped as std::max / std::min order it). Bitwise the same
  // result on every ISA (an IEEE division, round to nearest even).
  float (*quant_row_i8)(const float* x, int64_t K, int8_t* q);
  // Dequantizes rows [n0, n1) and stored columns [k0, k1) into out[(n - n0) * ldo + (k - k0)].
  void (*dequant)(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                  float* out, int64_t ldo);
  // Optional (nullptr: not offered): int4 with K % 64 == 0 and groups of 32 or a multiple of 64,
  // k0 and k1 multiples of 64. As dequant (bitwise: (u - z) s), but each 64-block in the lane
  // int4 order of prep_x: element 64b + 8i + j goes to position 64b + 8j + i. A dot product with x
  // reordered the same way is unchanged, and the nibbles need no shuffle (prefill's dot path).
  void (*dequant_lanes)(const QuantWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                        float* out, int64_t ldo);
  // true: tile_i8 blocks the weight rows itself (it packs them for all rows of x), so a caller
  // hands it the whole range; false (the default): callers cut ranges to about half of L2.
  bool tile_i8_whole_range;
  // true: tile_i8 / tile_i4 read w.strips (tensorfuse/quant.h) when present and their range
  // starts on a strip (n0 % kQuantStripRows == 0); callers then hand them whole strips.
  bool reads_strips = false;
  // Optional (nullptr: gemv_f32 row by row, see gemv_rows): M rows of x at once, x[m] / xd[m] as
  // gemv_f32's x / xd and its outputs y[m][n] for n in [n0, n1); each row's result bitwise
  // gemv_f32's, so the grouping of rows never changes an output.
  void (*gemv_f32_rows)(const QuantWeight& w, const float* const* x, const float* const* xd,
                        int64_t M, int64_t n0, int64_t n1, float* const* y) = nullptr;
};

// W8A8 on AMX tiles (quant_x86_amx.cc): Kernels::tile_i8's contract for rows [n0, n1), bitwise
// the AVX-512 table's result, over that table's packed strips (w.strips, or `pack` into a
// buffer: quant_x86_avx512.cc's pack_strip_i8). false (nothing written) where AMX-INT8 is absent
// or off (use_amx()), K or the group size is not a multiple of 64, or M < kAmxMinRows.
using PackStripI8 = void (*)(const QuantWeight& w, int64_t n, int64_t n1, uint8_t* p, float* sp);
constexpr int64_t kAmxMinRows = 16;
// amx_w8a8_applies: the integer tiles take this call (int8; int4 with its strips, W4A8).
bool amx_w8a8_applies(const QuantWeight& w, int64_t M);
bool tile_i8_amx(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                 int64_t n0, int64_t n1, float* c, int64_t ldc, PackStripI8 pack);
// W4A8 on AMX-INT8: Kernels::tile_i4's contract for rows [n0, n1) (n0 on a strip), bitwise the
// AVX-512 strips' result, from the weight's int4 strips (w.strips) unpacked per strip into tile
// order. false (nothing written) where the weight has no strips or amx_w8a8_applies says no.
bool tile_i4_amx(const QuantWeight& w, const int8_t* xq, const int32_t* xsum, int64_t M,
                 int64_t n0, int64_t n1, float* c, int64_t ldc);

// Float activations on AMX-BF16 tiles (quant_float_x86_amx.cc): rows [n0, n1) (at most
// kAmxFloatTaskRows) of x @ dequant(W)^T for all M rows of x, into y[m * ldy + (n - n0)] (added
// to it when accumulate), with x held exactly as three bfloat16 parts and the weights exactly as
// bfloat16 (float32 sums, the scales applied per group: a float32 dot product's error). W may be
// a view of a column run (q_stride / s_stride; whole groups). amx_float_usable: AMX-BF16 usable
// (use_amx()), the AVX-512 level active, K and the group in whole steps of 32;
// amx_float_applies: that and M >= kAmxFloatMinRows. amx_float_pack_x: blocks [mb0, mb1) of 16
// rows of x (float32 rows ldx apart, K each, stored order) packed into xp
// (amx_float_x_elems(M, K) in all); false where a row of those holds an infinity or a NaN, or its
// largest |x| is outside [2^-100, 2^100] (and not 0): bfloat16 parts would lose it, so the caller
// takes another path. From kAmxFloatMinRows rows of x (quant_ticks, Xeon with AMX, K = N =
// 4096, 2 threads, MAC/tick on the tiles against the GEMV or float tiles they replace: M = 4 int4
// 26 against 36, M = 8 int4 groups of 128 49 against 33, int8 51 against 29; M = 16 93 against
// 35; M = 128 146 against 51).
constexpr int64_t kAmxFloatMinRows = 8;
constexpr int64_t kAmxFloatTaskRows = 128;
bool amx_float_usable(const QuantWeight& w);
bool amx_float_applies(const QuantWeight& w, int64_t M);
int64_t amx_float_x_elems(int64_t M, int64_t K);
bool amx_float_pack_x(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t mb0,
                      int64_t mb1, uint16_t* xp);
void amx_float_rows(const QuantWeight& w, const uint16_t* xp, int64_t M, int64_t n0, int64_t n1,
                    float* y, int64_t ldy, bool accumulate);

const Kernels& kernels_generic();
const Kernels* kernels_avx2();    // nullptr when not compiled in
const Kernels* kernels_avx512();  // nullptr when not compiled in
const Kernels& kernels_for(Isa isa);

// W4A8's nibble order for int8 activations (K % 64 == 0): within each 64-block, the 32 even
// elements, then the 32 odd ones, xl[64b + j] = xq[64b + 2j] and xl[64b + 32 + j] = xq[64b + 2j + 1]
// (j < 32), matching the low and the high nibbles of the block's 32 code bytes as they lie.
inline void prep_i4_x(const int8_t* xq, int64_t K, int8_t* xl) {
  for (int64_t b = 0; b < K; b += 64)
    for (int j = 0; j < 32; ++j) {
      xl[b + j] = xq[b + 2 * j];
      xl[b + 32 + j] = xq[b + 2 * j + 1];
    }
}

// Rows [n0, n1) of y[m] = x[m] @ dequant(W)^T for m < M, through the table's gemv_f32_rows when
// it has one.
inline void gemv_rows(const Kernels& k, const QuantWeight& w, const float* const* x,
                      const float* const* xd, int64_t M, int64_t n0, int64_t n1, float* const* y) {
  if (k.gemv_f32_rows) return k.gemv_f32_rows(w, x, xd, M, n0, n1, y);
  for (int64_t m = 0; m < M; ++m) k.gemv_f32(w, x[m], xd[m], n0, n1, y[m]);
}

// Helpers shared by the ISA files.
inline uint8_t nibble(const uint8_t* row, int64_t k) {
  return uint8_t((row[k >> 1] >> ((k & 1) * 4)) & 0x0f);
}
inline uint8_t zero_of(const QuantWeight& w, int64_t n, int64_t g) {
  return w.zeros ? w.zeros[n * w.s_stride() + g] : uint8_t(8);
}

}  // namespace quant_cpu
}  // namespace tf
