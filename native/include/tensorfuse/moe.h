// Mixture of experts on the CPU: routing (softmax / sigmoid scores, selection bias, grouped top-k,
// capacity), the vLLM block alignment, dispatch / combine, and the fused expert layer (gather ->
// w1 / w3 -> activation -> w2 -> weighted sum) on the GEMM engine. API.md "Mixture of experts"
// is the contract; lib/reference/moe.ts the float64 truth.
//
// Slots: slot s = t * top_k + j is choice j of token t. A Routing's `order` lists the kept slots
// grouped by expert (ascending slot within an expert); `offsets[e]..offsets[e + 1]` is expert e's
// run in it, and "row r" of a dispatched tensor is the slot order[r]. Every count that can reach
// T * top_k * D is an int64_t.
#pragma once
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/gemm.h"
#include "tensorfuse/status.h"

namespace tf {

enum class MoeScoring : int { softmax = 0, sigmoid = 1 };

struct MoeRouteParams {
  int64_t T = 0, E = 0;
  int top_k = 1;                      // 1..8, <= E
  const float* logits = nullptr;      // [T, E]
  MoeScoring scoring = MoeScoring::softmax;
  bool normalize = true;
  const float* bias = nullptr;        // [E] or null: added for selection only
  int64_t groups = 0;                 // 0 = no grouping; else divides E
  int64_t group_top_k = 0;            // groups kept, 1..groups
  float scale = 1.0f;
  double capacity_factor = 0.0;       // <= 0: no capacity limit
  // Outputs (caller-allocated):
  float* weights = nullptr;           // [T, top_k]
  int32_t* experts = nullptr;         // [T, top_k]
  int32_t* counts = nullptr;          // [E]
  int32_t* offsets = nullptr;         // [E + 1]
  int32_t* order = nullptr;           // [T * top_k] (the first T * top_k - dropped are written)
  int64_t dropped = 0;
  double aux_loss = 0.0;
  double z_loss = 0.0;
};
Status moe_route(MoeRouteParams& p);

// vLLM moe_align_block_size: experts [n_slots] (-1 = dropped, skipped). sorted_ids gets each
// expert's slots ascending, padded to a multiple of block with the sentinel n_slots; expert_ids
// one expert per block. Sizes first (moe_align_size), then the fill.
Status moe_align_size(const int32_t* experts, int64_t n_slots, int64_t E, int64_t block,
                      int64_t* padded);
Status moe_align(const int32_t* experts, int64_t n_slots, int64_t E, int64_t block,
                 int32_t* sorted_ids, int32_t* expert_ids);

// The routing tables every consumer needs, checked once (a Routing may come from the user).
struct MoeRoutingView {
  int64_t T = 0, top_k = 0, E = 0;
  int64_t rows = 0;                 // kept slots = offsets[E]
  const float* weights = nullptr;   // [T, top_k]
  const int32_t* offsets = nullptr; // [E + 1]
  const int32_t* order = nullptr;   // [rows]
};
// Checks offsets (monotone, from 0 to rows) and order (slot ids in range, each at most once).
Status moe_check_routing(const MoeRoutingView& r);

// out[r, :] = x[order[r] / top_k, :] for r < rows. x [T, D], out [rows, D], any element size.
Status moe_dispatch(const MoeRoutingView& r, const void* x, size_t elem_size, int64_t D, void* out);
// out[t, :] = sum_j weights[t, j] * y[row of slot (t, j), :] (dropped slots skipped, j ascending).
// y [rows, D], out [T, D], both of dtype dt (float32 accumulation).
Status moe_combine(const MoeRoutingView& r, const void* y, DType dt, int64_t D, void* out);

// A quantized expert weight [E, N, K] (tensorfuse/quant.h layouts, stacked: expert e's rows are
// rows e * N .. e * N + N - 1): its codes are the weight pointer of MoeFfnParams, the rest here.
// bits 0: the weight is float in the params' dtype.
struct MoeQuant {
  int bits = 0;                    // 0 (float), 8 or 4
  int64_t group_size = 0;          // 0 = one scale per row; else divides K
  const float* scales = nullptr;   // [E, N, K / group]
  const uint8_t* zeros = nullptr;  // int4 asymmetric: [E, N, K / group]; null = symmetric
  // Optional: the stacked weight (E * N rows) in quant_pack_strips' layout, N a multiple of
  // kQuantStripRows so each expert starts on a strip; the int8-activation path reads it.
  const uint8_t* strips = nullptr;
};

struct MoeFfnParams {
  MoeRoutingView r;
  int64_t D = 0, F = 0;
  DType dtype = DType::float32;   // x, out and every float weight
  const void* x = nullptr;        // [T, D]
  const void* w1 = nullptr;       // [E, F, D]
  const void* w3 = nullptr;       // [E, F, D] or null
  const void* w2 = nullptr;       // [E, D, F]
  MoeQuant q1, q3, q2;            // per weight: float (bits 0) or int8 / int4 codes
  Activation act = Activation::silu;
  // Quantized experts only: when the call routes at most 64 rows in all (decode, small batches),
  // each row entering a quantized matrix (x, then H before w2) is quantized per row to int8 as
  // quant_linear's int8 activations do, and the products run on the integer kernels (W8A8 /
  // W4A8). Larger calls keep float activations. ERR_UNSUPPORTED for groups above 65536.
  bool int8_activations = false;
  void* out = nullptr;            // [T, D]
};
// The fused expert layer: out[t] = sum_j w[t, j] * w2_e (act(w1_e x_t) * (w3_e x_t)), a
// quantized weight standing for its dequantized float32 values (never materialised whole).
Status moe_ffn(const MoeFfnParams& p);

}  // namespace tf
