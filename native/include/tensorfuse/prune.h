// Structured (N:M) pruning: masks, the compressed format and the sparse linear kernel.
//
// Compressed N:M format (public, lib/ops/prune.ts SparseTensor): a weight w [N, K] with at most
// n nonzeros in every group of m consecutive elements along K is stored as
//   values  [N, Kc] (Kc = K * n / m) in the weight's dtype, the kept elements in order, and
//   indices [N, Kc] uint8, the position (0..m-1) of each kept value inside its group,
//           strictly increasing within a group.
// Kernel layout of 2:4 (internal, built from indices by prune_lanes): 8 consecutive kept values
// of a row cover exactly 16 columns (4 groups). One uint16 "lane word" per such chunk holds 8
// 2-bit fields, field l = the in-group position of value l (so value l sits at column
// 16c + 4 * (l / 2) + field). 2 bits per value instead of 8: with float32 values a row reads
// 4.25 bytes per 2 columns, 53% of the dense bytes. A row's last Kc % 8 values have no word;
// kernels read their indices instead. Other n:m patterns run the general path on indices.
// The same buffer then holds, after those N * words lane words, N * words "pair words" for the
// M = 1 kernel, each the 4 pair ids (0..5) of a word's groups: pair(p0 < p1) indexes (0,1) (0,2)
// (0,3) (1,2) (1,3) (2,3); bits 0-2 / 3-5 hold groups 0 / 2 of the word, bits 6-8 / 9-11 groups
// 1 / 3 (the halves of x that one shuffle reads, prune_kernels.h). They are interleaved by blocks
// of 4 rows so that the 4 rows the kernel walks together cost one stream and one load per word:
// row j's word c sits at 4 * b * words + c * wb + (j - 4 * b), b = j / 4, wb = min(4, N - 4 * b).
#pragma once
#include <cstdint>

#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {

// True when (n, m) has the lane layout above (the fast path).
inline bool prune_has_lanes(int n, int m) { return n == 2 && m == 4; }
// Lane words of one row: floor(Kc / 8). The lanes buffer holds 2 * N * words uint16.
inline int64_t prune_lane_words(int64_t K, int n, int m) { return (K / m * n) / 8; }
// Combination id of the in-group positions p0 < p1 of 2:4: 0..5.
inline int prune_pair_id(int p0, int p1) { return p0 == 0 ? p1 - 1 : p0 == 1 ? p1 + 1 : 5; }
// Index of row j's pair word c among the N * words pair words (layout above).
inline int64_t prune_pair_word_index(int64_t N, int64_t words, int64_t j, int64_t c) {
  const int64_t b0 = j / 4 * 4, wb = N - b0 < 4 ? N - b0 : 4;
  return b0 * words + c * wb + (j - b0);
}

// Checks n, m and K (1 <= n < m <= 255, K % m == 0).
Status prune_check_nm(int64_t K, int n, int m);

struct SparseLinearParams {
  int64_t M = 0, N = 0, K = 0;
  int n = 2, m = 4;
  const void* x = nullptr;          // [M, K], float32 or w_dtype
  DType x_dtype = DType::float32;
  const void* values = nullptr;     // [N, Kc], float32, float16 or bfloat16
  DType w_dtype = DType::float32;
  const uint8_t* indices = nullptr; // [N, Kc]
  const uint16_t* lanes = nullptr;  // [2, N, prune_lane_words] or null (then the general path)
  void* out = nullptr;              // [M, N]
  DType out_dtype = DType::float32;
  const float* bias = nullptr;      // [N] or null
  int max_threads = 0;              // 0 = the whole pool
};

// out = x @ decompress(w)^T (+ bias), float32 accumulation, reading only the kept weights.
// Deterministic for a given ISA level (every output is summed by one thread in a fixed order).
Status sparse_linear(const SparseLinearParams& p);

// Builds the lane and pair words [2, N, prune_lane_words] from indices; ERR_ARG if an index is >= m or the
// indices of a group do not increase. With lanes == nullptr it only validates.
Status prune_lanes(const uint8_t* indices, int64_t N, int64_t K, int n, int m, uint16_t* lanes);

// scores [N, K] float32 = |w| (norms == nullptr) or |w| * norms[k] (Wanda).
Status prune_score(const void* w, DType dt, const float* norms, int64_t N, int64_t K, float* out);

// In every group of m along K keeps the n elements of highest score (scores float32 [N, K], or
// |w| when null; ties to the lower index; NaN scores rank lowest). w_out [N, K] in dt gets the
// kept values and +0 elsewhere; mask [N, K] gets 1 / 0.
Status prune_nm(const void* w, DType dt, const float* scores, int64_t N, int64_t K, int n, int m,
                void* w_out, uint8_t* mask);

// w [N, K] -> values, indices. An element counts as kept when its bits are not +0 (so -0 and NaN
// survive the round trip); a group with fewer than n of them is filled with its first zero
// positions. ERR_ARG (message naming row and group) when a group has more than n.
Status prune_compress(const void* w, DType dt, int64_t N, int64_t K, int n, int m, void* values,
                      uint8_t* indices);

// values, indices -> w [N, K] (+0 in the pruned positions). Indices should be valid (prune_lanes);
// a position >= m is read as m - 1, so no write leaves its group.
Status prune_decompress(const void* values, const uint8_t* indices, DType dt, int64_t N, int64_t K,
                        int n, int m, void* out);

// Channel importance, float64: axis 0: out[i] = sum_j |w[i, j]|^p * (colw ? colw[j] : 1);
// axis 1: out[j] = sum_i |w[i, j]|^p. p is 1 or 2 (no square root). Sums run in index order
// whatever the threads, so results are deterministic.
Status prune_norms(const void* w, DType dt, int64_t rows, int64_t cols, int axis, int p,
                   const float* colw, double* out);

// Physical removal: out = src[kept, :] (axis 0) or src[:, kept] (axis 1); src [rows, cols] in dt.
Status prune_gather(const void* src, DType dt, int64_t rows, int64_t cols, int axis,
                    const int32_t* kept, int64_t n_kept, void* out);

}  // namespace tf
