// The fused expert layer. Work is split into tasks (expert, row tile, F chunk):
//   1. gather the tile's rows of x (float32) into thread scratch;
//   2. for each kFSub columns of the F chunk: G = act(X w1^T) (activation in the GEMM epilogue),
//      U = X w3^T, H = G * U, and Y += H w2[:, chunk]^T, all on the GEMM engine on this thread;
//   3. the tile's Y rows go to this chunk's partial rows.
// A final pass per token sums, for each choice j in order, weight * (sum over chunks of the
// partial row): no atomics, and the result depends on neither the thread count nor the
// scheduling. Nothing of size [rows, F] exists beyond one [tile, kFSub] pair per thread; the
// partial rows are [chunks, rows, D] with chunks > 1 only when there are too few (expert, tile)
// tasks to keep the threads busy (decode, few experts hit).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "moe_internal.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {
namespace {

constexpr int64_t kRowTile = 128;  // rows per task: the GEMM engine's small-M path (<= 256)
constexpr int64_t kFSub = 256;     // F columns per inner step: G, U tiles of kRowTile x kFSub
constexpr int64_t kTargetTasks = 16;
constexpr int64_t kMinFChunk = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Task {
  int64_t e, r0, r1;  // expert, rows [r0, r1) of order
  int64_t f0, f1;     // F chunk
  int64_t chunk;
};

}  // namespace

Status moe_ffn(const MoeFfnParams& p) {
  const MoeRoutingView& r = p.r;
  TF_RETURN_IF_ERROR(moe_check_routing(r));
  if (!dtype_is_float(p.dtype)) return Status(StatusCode::dtype, "moe.ffn: x and weights must be float");
  const int64_t D = p.D, F = p.F, T = r.T;
  const size_t esz = dtype_size(p.dtype);
  if (T == 0 || D == 0) return Status::Ok();
  if (r.rows == 0 || F == 0) {
    std::memset(p.out, 0, size_t(T) * size_t(D) * esz);
    return Status::Ok();
  }

  // Row tiles: each expert's rows cut into near-equal tiles of at most kRowTile.
  std::vector<Task> tiles;
  for (int64_t e = 0; e < r.E; ++e) {
    const int64_t n = r.offsets[e + 1] - r.offsets[e];
    if (n == 0) continue;
    const int64_t nt = ceil_div(n, kRowTile), per = ceil_div(n, nt);
    for (int64_t i = 0; i < nt; ++i) {
      const int64_t a = r.offsets[e] + i * per, b = std::min<int64_t>(r.offsets[e + 1], a + per);
      if (a < b) tiles.push_back({e, a, b, 0, 0, 0});
    }
  }
  // F chunks: enough that tiles x chunks reaches kTargetTasks (a constant, so the result does
  // not depend on the thread count), chunks a multiple of 16 columns and at least kMinFChunk.
  int64_t n_chunks = std::min(ceil_div(kTargetTasks, int64_t(tiles.size())), std::max<int64_t>(1, F / kMinFChunk));
  const int64_t fchunk = ceil_div(ceil_div(F, n_chunks), 16) * 16;
  n_chunks = ceil_div(F, fchunk);
  std::vector<Task> tasks;
  tasks.reserve(tiles.size() * size_t(n_chunks));
  for (const Task& t : tiles)
    for (int64_t c = 0; c < n_chunks; ++c)
      tasks.push_back({t.e, t.r0, t.r1, c * fchunk, std::min(F, (c + 1) * fchunk), c});
  // Larger tiles first, so a big one never starts last.
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const Task& a, const Task& b) { return (a.r1 - a.r0) > (b.r1 - b.r0); });

  const size_t rows_d = size_t(r.rows) * size_t(D);
  float* partial = static_cast<float*>(aligned_alloc64(size_t(n_chunks) * rows_d * sizeof(float)));
  if (!partial) return Status(StatusCode::oom, "moe.ffn: out of memory for the expert outputs");
  struct Freer {
    float* p;
    ~Freer() { aligned_free64(p); }
  } freer{partial};

  const moe_cpu::Kernels& kern = moe_cpu::kernels();
  const char* xb = static_cast<const char*>(p.x);
  const size_t w13_expert = size_t(F) * size_t(D) * esz;  // bytes of one expert's w1 / w3 / w2
  std::mutex err_mu;
  Status err;
  std::atomic<bool> failed{false};
  auto fail_with = [&](const Status& s) {
    std::lock_guard<std::mutex> lock(err_mu);
    if (err.ok()) err = s;
    failed.store(true);
  };

  // The GEMM engine keeps its packing buffers in scratch slots 0 and 1; ours are in slot 2.
  parallel_for(int64_t(tasks.size()), [&](int64_t ti, int) {
    if (failed.load()) return;
    const Task& tk = tasks[size_t(ti)];
    const int64_t M = tk.r1 - tk.r0;
    const int64_t fsub = std::min(kFSub, tk.f1 - tk.f0);
    const size_t need = (size_t(M) * size_t(D) * 2 + size_t(M) * size_t(fsub) * 2) * sizeof(float);
    float* xg = static_cast<float*>(scratch_get(2, need));
    if (!xg) return fail_with(Status(StatusCode::oom, "moe.ffn: out of memory for scratch"));
    float* ytmp = xg + size_t(M) * size_t(D);
    float* g = ytmp + size_t(M) * size_t(D);
    float* u = g + size_t(M) * size_t(fsub);
    for (int64_t i = 0; i < M; ++i) {
      const int64_t t = r.order[tk.r0 + i] / r.top_k;
      const char* src = xb + size_t(t) * size_t(D) * esz;
      if (p.dtype == DType::float32) std::memcpy(xg + i * D, src, size_t(D) * sizeof(float));
      else convert_to_f32(src, p.dtype, xg + i * D, D);
    }
    const char* w1e = static_cast<const char*>(p.w1) + size_t(tk.e) * w13_expert;
    const char* w3e = p.w3 ? static_cast<const char*>(p.w3) + size_t(tk.e) * w13_expert : nullptr;
    const char* w2e = static_cast<const char*>(p.w2) + size_t(tk.e) * w13_expert;
    float* y = partial + size_t(tk.chunk) * rows_d + size_t(tk.r0) * size_t(D);
    for (int64_t fs = tk.f0; fs < tk.f1; fs += kFSub) {
      const int64_t nf = std::min(kFSub, tk.f1 - fs);
      GemmParams q;
      q.M = M;
      q.K = D;
      q.N = nf;
      q.a = xg;
      q.lda = D;
      q.b_dtype = p.dtype;
      q.ldb = D;
      q.trans_b = true;
      q.ldc = nf;
      q.max_threads = 1;
      q.b = w1e + size_t(fs) * size_t(D) * esz;
      q.c = g;
      q.act = p.act;
      Status s = gemm(q);
      if (s.ok() && w3e) {
        q.b = w3e + size_t(fs) * size_t(D) * esz;
        q.c = u;
        q.act = Activation::none;
        s = gemm(q);
        if (s.ok()) kern.mul(g, u, M * nf);
      }
      if (!s.ok()) return fail_with(s);
      // Y (+)= H w2[:, fs:fs+nf]^T: w2 is [D, F], so B = rows of w2 from column fs, ldb = F.
      GemmParams q2;
      q2.M = M;
      q2.K = nf;
      q2.N = D;
      q2.a = g;
      q2.lda = nf;
      q2.b = w2e + size_t(fs) * esz;
      q2.b_dtype = p.dtype;
      q2.ldb = F;
      q2.trans_b = true;
      q2.c = fs == tk.f0 ? y : ytmp;
      q2.ldc = D;
      q2.max_threads = 1;
      s = gemm(q2);
      if (!s.ok()) return fail_with(s);
      if (fs != tk.f0) kern.axpy(1.0f, ytmp, y, M * D);
    }
  });
  if (failed.load()) return err;

  // out[t] = sum_j w[t, j] * sum_c partial[c][row(t, j)], j and c ascending.
  const std::vector<int64_t> rows = moe_cpu::slot_rows(r);
  const int64_t chunk = std::max<int64_t>(1, 8192 / D);
  std::atomic<bool> oom{false};
  parallel_for(ceil_div(T, chunk), [&](int64_t c, int) {
    float* acc = static_cast<float*>(scratch_get(2, size_t(D) * 2 * sizeof(float)));
    if (!acc) { oom.store(true); return; }
    float* sum = acc + D;
    const int64_t t1 = std::min(T, (c + 1) * chunk);
    for (int64_t t = c * chunk; t < t1; ++t) {
      std::fill(acc, acc + D, 0.0f);
      for (int64_t j = 0; j < r.top_k; ++j) {
        const int64_t row = rows[size_t(t * r.top_k + j)];
        if (row < 0) continue;
        const float* src = partial + size_t(row) * size_t(D);
        if (n_chunks > 1) {
          std::memcpy(sum, src, size_t(D) * sizeof(float));
          for (int64_t k = 1; k < n_chunks; ++k) kern.axpy(1.0f, src + size_t(k) * rows_d, sum, D);
          src = sum;
        }
        kern.axpy(r.weights[t * r.top_k + j], src, acc, D);
      }
      char* dst = static_cast<char*>(p.out) + size_t(t) * size_t(D) * esz;
      if (p.dtype == DType::float32) std::memcpy(dst, acc, size_t(D) * sizeof(float));
      else convert_from_f32(acc, dst, p.dtype, D);
    }
  });
  if (oom.load()) return Status(StatusCode::oom, "moe.ffn: out of memory for scratch");
  return Status::Ok();
}

}  // namespace tf
