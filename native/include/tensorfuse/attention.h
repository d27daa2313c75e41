// Fused scaled-dot-product attention on the CPU, in the FlashAttention style (Dao et al., 2022;
// FlashAttention-2, 2023): query rows are taken in blocks against tiles of keys, the scores of one
// tile live in a small per-thread buffer, softmax is the online form (running max and sum, the
// accumulator rescaled when the max grows), and the [Sq, Sk] score matrix never exists. When one
// head's queries are too few to keep every thread busy (KV-cache decode), the keys are split into
// chunks whose partial results are merged by log-sum-exp (flash-decoding, Dao et al., 2023).
#pragma once
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {

// Element (b, s, h, d) of q/k/v/out lives at base + b*strides[0] + s*strides[1] + h*strides[2] + d
// (elements, d contiguous): 'bshd' and 'bhsd' are just two stride orders. In varlen mode
// (cu_seqlens_q set) strides[0] is ignored and sequence b starts at row cu_seqlens[b].
struct AttentionParams {
  const void* q = nullptr;  // [B, Sq, Hq, D]
  const void* k = nullptr;  // [B, Sk, Hk, D]
  const void* v = nullptr;  // [B, Sk, Hk, D]
  void* out = nullptr;      // [B, Sq, Hq, D], same dtype as q
  DType dtype = DType::float32;  // q, k, v and out: float32, float16 or bfloat16
  int64_t q_strides[3] = {0, 0, 0};
  int64_t k_strides[3] = {0, 0, 0};
  int64_t v_strides[3] = {0, 0, 0};
  int64_t o_strides[3] = {0, 0, 0};
  int64_t batch = 0, heads_q = 0, heads_k = 0, seqlen_q = 0, seqlen_k = 0, head_dim = 0;

  // Log-sum-exp of each row's final scores (natural log), or null. lse(b, h, i) at
  // lse + b*lse_strides[0] + h*lse_strides[1] + i*lse_strides[2]; varlen: cu_seqlens_q[b]*lse_strides[2]
  // replaces the batch term. A row that sees no key gets -inf.
  float* lse = nullptr;
  int64_t lse_strides[3] = {0, 0, 0};

  float scale = 1.0f;
  bool causal = false;      // key j visible to query i iff j <= i + (Sk_b - Sq_b)   (bottom-right)
  int64_t window_left = -1;   // -1 = unbounded; else j >= i + (Sk_b - Sq_b) - window_left
  int64_t window_right = -1;  // -1 = unbounded; else j <= i + (Sk_b - Sq_b) + window_right
  float softcap = 0.0f;     // > 0: s = softcap * tanh(s / softcap), applied before bias and masks
  const float* alibi = nullptr;  // slopes [Hq] or [B, Hq]: s -= slope * |i + Sk_b - Sq_b - j|
  int64_t alibi_batch_stride = 0;
  // Additive float32 mask or boolean uint8 mask (1 = keep), broadcast over [B, Hq, Sq, Sk] through
  // strides (0 on broadcast dims). Not allowed with varlen.
  const void* mask = nullptr;
  DType mask_dtype = DType::float32;
  int64_t mask_strides[4] = {0, 0, 0, 0};
  const int32_t* seqlens_k = nullptr;    // [B]: only keys [0, seqlens_k[b]) of batch b exist
  const int32_t* cu_seqlens_q = nullptr; // [B+1] varlen offsets (with cu_seqlens_k)
  const int32_t* cu_seqlens_k = nullptr;
  int max_threads = 0;  // 0 = the whole pool
};

// Checks the parameters (sizes, head ratio, option ranges, varlen offsets) and runs.
Status attention(const AttentionParams& p);

constexpr int64_t kAttentionMaxHeadDim = 256;

}  // namespace tf
