// Quantized linear layers: y[M, N] = x[M, K] @ dequantize(W)^T (+ bias), W int8 or int4, never
// dequantized into a whole float weight buffer. Layouts are those of the public QTensor
// (API.md), row-major over the N output rows:
//   int8: q int8 [N, K];                 w[n, k] = q[n, k] * s[n, g]
//   int4: q uint8 [N, K/2] (element 2i in the low nibble of byte i);
//         w[n, k] = (u[n, k] - z[n, g]) * s[n, g], z = 8 when zeros is null (symmetric)
//   g = k / group (group = K when group_size is 0); scales float32 [N, K/group].
// Act-order (GPTQ gIdx) weights are stored with their K axis permuted so groups are contiguous;
// `perm` then maps the stored position j to the input feature perm[j] (x is gathered once).
#pragma once
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {

struct QuantWeight {
  int bits = 8;                   // 8 or 4
  int64_t N = 0, K = 0;
  int64_t group_size = 0;         // 0 = one scale per row (a group of K)
  const void* q = nullptr;        // int8 [N, K] or uint8 [N, K/2]
  const float* scales = nullptr;  // [N, K/group]
  const uint8_t* zeros = nullptr; // int4 only, [N, K/group]; null = symmetric (z = 8)
  const int32_t* perm = nullptr;  // [K] or null (identity)
  // Row strides of a view of a column run of a larger weight (quant_cpu rows_gemv): codes in
  // elements (0: K), scales / zeros in groups (0: groups()). Only gemv_f32 reads them.
  int64_t ldq = 0, lds = 0;
  // Optional: the same weight in the strip layout of quant_pack_strips (below), read instead of
  // q by the integer tiles of an ISA that offers them (quant_strips_wanted); null: q is read.
  const uint8_t* strips = nullptr;
  int64_t groups() const { return group_size > 0 ? K / group_size : 1; }
  int64_t group() const { return group_size > 0 ? group_size : K; }
  int64_t q_stride() const { return ldq > 0 ? ldq : K; }
  int64_t s_stride() const { return lds > 0 ? lds : groups(); }
};

// The strip layout of the int8-activation paths (W8A8, W4A8): output rows in strips of
// kQuantStripRows (the last one padded with zero rows), so that one 64-byte load holds 16 rows x 4
// columns, the lanes of one vpdpbusd (Intel SDM, VPDPBUSD: unsigned bytes x signed bytes, four
// products summed per int32 lane). Strip t (rows n = 32t + j, j < 32) is quant_strip_bytes(w)
// bytes at strips + t * quant_strip_bytes(w), in this order:
//   int8 codes, K * 32 bytes: byte (k / 4) * 128 + 4j + k % 4 = q[n, k] + 128 (unsigned)
//   int4 codes, K * 16 bytes: byte (k / 8) * 128 + 4j + b (b < 4) holds u[n, 8(k / 8) + b] in its
//     low nibble and u[n, 8(k / 8) + 4 + b] in its high one
//   scales, G * 32 float32: [g * 32 + j] = s[n, g] (0 for padding rows)
//   int4 only, zero points, G * 32 int32: [g * 32 + j] = z[n, g] (8 when symmetric)
// Offered when K and the group are multiples of 8 (and the weight is not a strided view).
constexpr int64_t kQuantStripRows = 32;
int64_t quant_strip_bytes(const QuantWeight& w);           // 0: this weight has no strip layout
int64_t quant_strips_bytes(const QuantWeight& w);          // all strips: ceil(N / 32) of them
bool quant_strips_wanted();  // the active ISA reads strips (and TENSORFUSE_QUANT_STRIPS != 0)
Status quant_pack_strips(const QuantWeight& w, uint8_t* out, int max_threads = 0);

// int8: x quantized per row as quant_activations does, then int32 sums per group: W8A8 with int8
// weights, W4A8 with int4 ones (u - z times the int8 activation).
enum class QuantActivation : int { float_ = 0, int8 = 1 };

struct QuantLinearParams {
  QuantWeight w;
  int64_t M = 0;
  const void* x = nullptr;  // [M, K] float32 / float16 / bfloat16, row stride K
  DType x_dtype = DType::float32;
  void* y = nullptr;        // [M, N] in y_dtype, row stride N
  DType y_dtype = DType::float32;
  const float* bias = nullptr;  // [N] or null
  QuantActivation act = QuantActivation::float_;
  int max_threads = 0;
};

// Checks sizes and the activation/bits combination; the caller has checked buffer lengths.
Status quant_linear(const QuantLinearParams& p);

// Quantizes rows of w (float32 [R, K]) per API.md: int8 symmetric (q = round(w / s),
// s = max|w| / 127), int4 symmetric (u = round(w / s) + 8, s = max|w| / 7) or int4 asymmetric
// (u = round(w / s) + z in [0, 15]); round half to even; an all-zero group gets s = 1.
// q/scales/zeros sized as QuantWeight; zeros null unless int4 asymmetric.
Status quant_quantize(const float* w, int64_t R, int64_t K, int bits, int64_t group_size,
                      bool symmetric, void* q, float* scales, uint8_t* zeros, int max_threads = 0);

// w float32 [N, K] (K in the original input-feature order: perm is undone).
Status quant_dequantize(const QuantWeight& w, float* out, int max_threads = 0);

// Checkpoint weights -> the QTensor layout above (lib/ops/quant.ts checks the rest):
//   gptq: src int32 [K/8, N], element (k, n) in bits 4 (k % 8) of src[(k / 8) * N + n] -> uint8
//         [N, K/2]; awq: src int32 [K, N/8], column n in nibble [0,4,1,5,2,6,3,7][n % 8] of
//         src[k * N/8 + n / 8] -> uint8 [N, K/2]; q4_0 / q8_0: GGUF blocks of 32 along K
//         (18 / 34 bytes, the f16 scale skipped) -> uint8 [N, K/2] / int8 [N, K].
enum class QuantFormat : int { gptq = 0, awq = 1, q4_0 = 2, q8_0 = 3 };
Status quant_unpack(QuantFormat format, const void* src, int64_t N, int64_t K, void* dst,
                    int max_threads = 0);
// int4 rows [N, K/2]: stored position j of dst takes input feature perm[j] of src (act-order).
Status quant_permute4(const uint8_t* src, int64_t N, int64_t K, const int32_t* perm, uint8_t* dst,
                      int max_threads = 0);

// Activation quantization of W8A8, per row of x (float32 [M, K]): s = max|x| / 127 (1 when the
// row is all zeros), q = round_half_even(x / s) in [-127, 127]. Shared by every ISA so the
// integer sums are identical.
void quant_activations(const float* x, int64_t M, int64_t K, int8_t* q, float* s);

}  // namespace tf
