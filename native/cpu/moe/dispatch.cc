// MoE data movement: the routing check, align (vLLM), dispatch (gather rows in routing order)
// and combine (the weighted sum back per token). Combine is partitioned by token, each token
// summing its own slots in choice order, so it needs no atomics and is deterministic.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "moe_internal.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {

Status moe_check_routing(const MoeRoutingView& r) {
  if (r.T < 0 || r.top_k < 1 || r.E < 1) return Status(StatusCode::shape, "argument 'r': bad T, topK or E");
  const int64_t n_slots = r.T * r.top_k;
  if (r.offsets[0] != 0) return Status(StatusCode::arg, "argument 'r.offsets': offsets[0] must be 0");
  for (int64_t e = 0; e < r.E; ++e)
    if (r.offsets[e + 1] < r.offsets[e])
      return Status(StatusCode::arg, "argument 'r.offsets': offsets must be non-decreasing");
  if (r.offsets[r.E] != r.rows)
    return Status(StatusCode::arg, "argument 'r.offsets': offsets[E] must equal the length of r.order");
  if (r.rows > n_slots) return Status(StatusCode::arg, "argument 'r.order': longer than T * topK");
  std::vector<uint8_t> seen(size_t(n_slots), 0);
  for (int64_t i = 0; i < r.rows; ++i) {
    const int64_t s = r.order[i];
    if (s < 0 || s >= n_slots)
      return Status(StatusCode::arg, "argument 'r.order': holds a slot id outside [0, T * topK)");
    if (seen[size_t(s)]) return Status(StatusCode::arg, "argument 'r.order': holds a slot id twice");
    seen[size_t(s)] = 1;
  }
  return Status::Ok();
}

namespace moe_cpu {

std::vector<int64_t> slot_rows(const MoeRoutingView& r) {
  std::vector<int64_t> rows(size_t(r.T * r.top_k), -1);
  for (int64_t i = 0; i < r.rows; ++i) rows[size_t(r.order[i])] = i;
  return rows;
}

}  // namespace moe_cpu

Status moe_align_size(const int32_t* experts, int64_t n_slots, int64_t E, int64_t block,
                      int64_t* padded) {
  if (E < 1 || block < 1) return Status(StatusCode::arg, "moe.align: numExperts and blockSize must be >= 1");
  std::vector<int64_t> cnt(size_t(E), 0);
  for (int64_t s = 0; s < n_slots; ++s) {
    const int32_t e = experts[s];
    if (e < -1 || e >= E)
      return Status(StatusCode::arg, "moe.align: argument 'experts' holds an id outside [-1, numExperts)");
    if (e >= 0) ++cnt[size_t(e)];
  }
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += (cnt[size_t(e)] + block - 1) / block * block;
  *padded = total;
  return Status::Ok();
}

Status moe_align(const int32_t* experts, int64_t n_slots, int64_t E, int64_t block,
                 int32_t* sorted_ids, int32_t* expert_ids) {
  int64_t total = 0;
  TF_RETURN_IF_ERROR(moe_align_size(experts, n_slots, E, block, &total));
  std::vector<int64_t> cnt(size_t(E), 0), pos(size_t(E), 0);
  for (int64_t s = 0; s < n_slots; ++s)
    if (experts[s] >= 0) ++cnt[size_t(experts[s])];
  int64_t at = 0;
  for (int64_t e = 0; e < E; ++e) {
    pos[size_t(e)] = at;
    const int64_t padded = (cnt[size_t(e)] + block - 1) / block * block;
    for (int64_t i = 0; i < padded; ++i) sorted_ids[at + i] = int32_t(n_slots);
    for (int64_t b = 0; b < padded / block; ++b) expert_ids[at / block + b] = int32_t(e);
    at += padded;
  }
  for (int64_t s = 0; s < n_slots; ++s)
    if (experts[s] >= 0) sorted_ids[pos[size_t(experts[s])]++] = int32_t(s);
  return Status::Ok();
}

Status moe_dispatch(const MoeRoutingView& r, const void* x, size_t elem_size, int64_t D, void* out) {
  TF_RETURN_IF_ERROR(moe_check_routing(r));
  if (r.rows == 0 || D == 0) return Status::Ok();
  const size_t row_bytes = size_t(D) * elem_size;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 16) / int64_t(row_bytes));
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(out);
  parallel_for((r.rows + chunk - 1) / chunk, [&](int64_t c, int) {
    const int64_t i1 = std::min(r.rows, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < i1; ++i) {
      const int64_t t = r.order[i] / r.top_k;
      std::memcpy(dst + size_t(i) * row_bytes, src + size_t(t) * row_bytes, row_bytes);
    }
  });
  return Status::Ok();
}

Status moe_combine(const MoeRoutingView& r, const void* y, DType dt, int64_t D, void* out) {
  TF_RETURN_IF_ERROR(moe_check_routing(r));
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "moe.combine: y must be a float tensor");
  if (r.T == 0 || D == 0) return Status::Ok();
  const std::vector<int64_t> rows = moe_cpu::slot_rows(r);
  const size_t esz = dtype_size(dt);
  const int64_t chunk = std::max<int64_t>(1, 8192 / D);
  std::atomic<bool> oom{false};
  parallel_for((r.T + chunk - 1) / chunk, [&](int64_t c, int) {
    float* acc = static_cast<float*>(scratch_get(0, size_t(D) * 2 * sizeof(float)));
    if (!acc) { oom.store(true); return; }
    float* tmp = acc + D;
    const int64_t t1 = std::min(r.T, (c + 1) * chunk);
    for (int64_t t = c * chunk; t < t1; ++t) {
      std::fill(acc, acc + D, 0.0f);
      for (int64_t j = 0; j < r.top_k; ++j) {
        const int64_t row = rows[size_t(t * r.top_k + j)];
        if (row < 0) continue;
        const char* src = static_cast<const char*>(y) + size_t(row) * size_t(D) * esz;
        const float* v = reinterpret_cast<const float*>(src);
        if (dt != DType::float32) {
          convert_to_f32(src, dt, tmp, D);
          v = tmp;
        }
        moe_cpu::axpy(r.weights[t * r.top_k + j], v, acc, D);
      }
      char* dst = static_cast<char*>(out) + size_t(t) * size_t(D) * esz;
      if (dt == DType::float32) std::memcpy(dst, acc, size_t(D) * sizeof(float));
      else convert_from_f32(acc, dst, dt, D);
    }
  });
  if (oom.load()) return Status(StatusCode::oom, "moe.combine: out of memory for scratch");
  return Status::Ok();
}

}  // namespace tf
