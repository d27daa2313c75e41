// The GEMM engine: C[M, N] = A[M, K] * op(B) (+ bias, activation), float32 accumulation.
// A and B may be float32, float16 or bfloat16 (widened while packing); C may be any of the three
// (float32 accumulators are rounded once at the end). Attention, MoE and the quantized kernels
// reuse it through this header: gemm() for a one-off product, gemm_pack_b() when the same B
// (a weight) is multiplied many times.
#pragma once
#include <cstdint>
#include <memory>
#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {

enum class Activation : int { none = 0, relu = 1, gelu = 2, silu = 3 };  // gelu: erf form

struct PackedB;  // B widened to float32 and laid out in the micro-kernel's panel order

struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  const void* a = nullptr;   // [M, K], row stride lda (elements)
  DType a_dtype = DType::float32;
  int64_t lda = 0;
  const void* b = nullptr;   // trans_b ? [N, K] row stride ldb : [K, N] row stride ldb
  DType b_dtype = DType::float32;
  int64_t ldb = 0;
  bool trans_b = false;
  const PackedB* packed_b = nullptr;  // when set, b/b_dtype/ldb/trans_b are ignored
  void* c = nullptr;         // [M, N], row stride ldc
  DType c_dtype = DType::float32;
  int64_t ldc = 0;
  // Epilogue, applied once to the finished float32 sum: c = act(sum + bias[n]).
  const float* bias = nullptr;  // [N] or null
  Activation act = Activation::none;
  int max_threads = 0;          // 0 = the whole pool
};

Status gemm(const GemmParams& p);

// Packs B once for repeated use (weights). trans_b as in GemmParams. The panel layout is the
// same for every ISA level, so a PackedB stays valid when the level changes.
Status gemm_pack_b(const void* b, DType b_dtype, int64_t ldb, bool trans_b, int64_t K, int64_t N,
                   std::unique_ptr<PackedB, void (*)(PackedB*)>* out);
int64_t packed_b_bytes(const PackedB* pb);

}  // namespace tf
