// The fused expert layer. Work is split into tasks (expert, row tile of <= kRowTile rows, or
// kWideRowTile with AVX-512, F chunk), each on one thread with the GEMM engine's micro-kernel
// table (gemm_kernels.h):
//   1. gather the tile's rows of x (as float32) and pack them once as A panels for all of D;
//   2. per step of kFSub columns of the F chunk: G = X w1^T and U = X w3^T over 16-row panels of
//      w1 / w3 packed as B; H = act(G) * U (vectorised GLU), packed as the A of the next product;
//   3. Y (+)= H w2[:, step]^T over 16-row panels of w2, written straight into the tile's rows.
// Tiles of <= kFewRows rows skip the packing: dot products straight from the weight rows (at 24
// rows a packed 16-row panel would feed only 4 micro-tiles). Larger tiles of float32 weights,
// where the GEMM table pairs panels (kernel2_rows), take the rows engine of gemm_rows.h instead
// of steps 1-3: weights read in place, the tile's rows (then H's) packed once as x^T panels.
// A final pass per token sums weight * row for its choices in order (and the F chunks, when
// there are several): no atomics, and the result depends on neither the thread count nor the
// scheduling. Nothing of size
// [rows, F] exists beyond one [tile, kFSub] G / U / H per thread; the expert rows are
// [chunks, rows, D] float32 with chunks > 1 only when (expert, tile) pairs are too few to keep
// the threads busy (decode).
//
// Quantized experts (int8 / int4, all three weights; each may have its own bits and groups) keep
// the same tasks, and read the weights through the quant family's per-ISA kernels:
//   tiles of <= kQGemvMaxM rows (decode): the quantized GEMV (quant_rows.h), each weight row
//     streamed once for the tile's rows; x is prepared once per token before the tasks (the
//     lane order of prep_x). When such rows are few in all (decode, up
//     to kQDecodeRows) they run in two phases after the fused tasks: H [rows, F] with w1 / w3
//     rows spread over the threads by F chunk, then w2 rows spread by D chunk, each w2 row read
//     whole with H prepared once. Otherwise they stay in the fused tasks and read w2 in column
//     runs of their F chunk (chunk boundaries then sit on w2's group boundaries, and on 64
//     columns for int4 and 32 for int8, the lane blocks of prep_x);
//   larger tiles: the float paths above with each weight panel dequantized first (dequant into
//     a panel in thread scratch, then dot_t on it, or pack_b from it for the micro-kernel); where
//     the CPU has AMX-BF16, the quant family's tiles instead (amx_task below: x and H as three
//     exact bfloat16 parts, the weights dequantized to bfloat16 per unit of depth).
// With int8 activations every tile takes the two phases instead, on the integer kernels (W8A8 /
// W4A8; the strip layout where the ISA reads one), in batches of about kInt8BatchRows rows.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "../gemm/gemm_kernels.h"
#include "../gemm/gemm_rows.h"
#include "../quant/quant_kernels.h"
#include "../quant/quant_rows.h"
#include "moe_internal.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/quant.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {
namespace {

using gemm_cpu::kKC;
using gemm_cpu::kMR;
using gemm_cpu::kNR;

constexpr int64_t kRowTile = 96;   // rows per task: packed X slices of kRowTile x kKC (96 KiB) in L2
// With the AVX-512 GEMM table (CPUs with 1 MiB L2 or more): an expert's packed weight panels are
// packed once per row tile, so fewer, larger tiles pack (and stream) them less often (Mixtral-
// like shape on Zen 5: 11% faster than 96).
constexpr int64_t kWideRowTile = 192;
constexpr int64_t kFSub = 256;     // F columns per inner step (a multiple of kNR, <= kKC): G, U, H
constexpr int64_t kFewRows = 48;   // tiles this small take the long-run variant:
constexpr int64_t kFewKC = 1024;   //   slices of D up to 1024 deep,
constexpr int64_t kFewFSub = 512;  //   F steps of 512
constexpr int64_t kRowsFSub = 240;  // the rows variant: F columns per step (whole strips of 6)
constexpr int64_t kBf16MinRows = 8;  // bfloat16 tiles from this many rows (bf16_gu)
constexpr int64_t kDotN = 32;      // the dot variant: output columns per call
constexpr int64_t kDotK = 1024;    //   and depth per call
constexpr int64_t kTargetTasks = 16;
constexpr int64_t kMinFChunk = 64;
// Quantized experts: tiles of up to this many rows take the GEMV, one pass over an L2-resident
// block of weight rows per row of x (quant_rows.h), instead of a dequantized panel. With the
// experts streaming from memory the GEMV stays ahead up to 16-20 rows (Zen 5, Node, alternated
// builds against 2: Mixtral-like int4 / int8 decode T = 4 1.5-1.7x faster, T = 8-40 1.3-1.4x;
// DeepSeek-like T = 16-64 1.2-1.4x, T = 128-384 the same; also with the AVX2 kernels; 64 rows:
// slower at T = 128), where quant_linear, its weights in cache, switches at 3 rows.
constexpr int64_t kQGemvMaxM = 16;
constexpr int64_t kQDecodeRows = 64;  // GEMV tile rows (in all) that take the two decode phases
// int8 activations: the phases run over batches of whole row tiles of about this many rows, so
// their [rows, F] buffers stay bounded whatever T is (H is whole per row before w2 quantizes it).
constexpr int64_t kInt8BatchRows = 256;
constexpr int64_t kQRowChunk = 64;    // least w2 rows per task in the second decode phase

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Expert e of a stacked quantized weight [E, N, K].
QuantWeight expert_quant(const void* codes, const MoeQuant& mq, int64_t e, int64_t N, int64_t K) {
  QuantWeight w;
  w.bits = mq.bits;
  w.N = N;
  w.K = K;
  w.group_size = mq.group_size;
  const int64_t G = w.groups(), row_bytes = mq.bits == 8 ? K : K / 2;
  w.q = static_cast<const uint8_t*>(codes) + size_t(e) * size_t(N) * size_t(row_bytes);
  w.scales = mq.scales + size_t(e) * size_t(N) * size_t(G);
  w.zeros = mq.zeros ? mq.zeros + size_t(e) * size_t(N) * size_t(G) : nullptr;
  if (mq.strips && N % kQuantStripRows == 0)
    w.strips = mq.strips + size_t(e) * size_t(N / kQuantStripRows) * size_t(quant_strip_bytes(w));
  return w;
}

Status check_quant(const MoeQuant& q, int64_t K, const char* name) {
  const std::string where = std::string("moe.ffn: argument 'w.") + name + "': ";
  if (q.bits != 8 && q.bits != 4) return Status(StatusCode::arg, where + "bits must be 8 or 4");
  if (q.group_size < 0 || (q.group_size > 0 && K % q.group_size != 0))
    return Status(StatusCode::arg, where + "groupSize must be 0 or divide K");
  if (q.bits == 4 && K % 2 != 0) return Status(StatusCode::shape, where + "K must be even for int4");
  if (q.bits == 8 && q.zeros) return Status(StatusCode::arg, where + "int8 weights are symmetric");
  if (!q.scales) return Status(StatusCode::arg, where + "null scales");
  return Status::Ok();
}

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
  const bool quant = p.q1.bits != 0;
  if ((p.q2.bits != 0) != quant || (p.w3 && (p.q3.bits != 0) != quant))
    return Status(StatusCode::unsupported,
                  "moe.ffn: expert weights must be all float or all quantized (QTensor)");
  if (quant) {
    TF_RETURN_IF_ERROR(check_quant(p.q1, D, "w1"));
    if (p.w3) TF_RETURN_IF_ERROR(check_quant(p.q3, D, "w3"));
    TF_RETURN_IF_ERROR(check_quant(p.q2, F, "w2"));
    if (p.int8_activations)
      for (const auto& [q, K] : {std::make_pair(p.q1, D), std::make_pair(p.q3, D), std::make_pair(p.q2, F)})
        if (q.bits != 0 && (q.group_size > 0 ? q.group_size : K) > quant_cpu::kMaxI8Group)
          return Status(StatusCode::unsupported,
                        "moe.ffn: int8 activations need groups of at most 65536 (int32 sums)");
  } else if (p.int8_activations) {
    return Status(StatusCode::arg, "moe.ffn: int8 activations need quantized (QTensor) experts");
  }
  const size_t esz = dtype_size(p.dtype);
  if (T == 0 || D == 0) return Status::Ok();
  if (r.rows == 0 || F == 0) {
    std::memset(p.out, 0, size_t(T) * size_t(D) * esz);
    return Status::Ok();
  }

  // Row tiles: each expert's rows cut into near-equal tiles of at most kRowTile.
  const int64_t row_tile = gemm_cpu::kernels_for(active_isa()).kernel2 ? kWideRowTile : kRowTile;
  std::vector<Task> tiles;
  for (int64_t e = 0; e < r.E; ++e) {
    const int64_t n = r.offsets[e + 1] - r.offsets[e];
    if (n == 0) continue;
    const int64_t nt = ceil_div(n, row_tile), per = ceil_div(n, nt);
    for (int64_t i = 0; i < nt; ++i) {
      const int64_t a = r.offsets[e] + i * per, b = std::min<int64_t>(r.offsets[e + 1], a + per);
      if (a < b) tiles.push_back({e, a, b, 0, 0, 0});
    }
  }
  // F chunks: enough that tiles x chunks reaches kTargetTasks (a constant, so the result does
  // not depend on the thread count), chunks a multiple of 16 columns and at least kMinFChunk.
  // Quantized w2: chunks are column runs of its rows, on its group boundaries (int4: on the
  // 64 / 32-column blocks of the lane order too), so the GEMV can take each run as a weight.
  int64_t align = 16;
  if (quant && p.q2.group_size > 0) align = std::lcm(align, p.q2.group_size);
  align = std::lcm(align, int64_t(quant && p.q2.bits == 4 ? 64 : 32));
  int64_t n_chunks = std::min(ceil_div(kTargetTasks, int64_t(tiles.size())), std::max<int64_t>(1, F / kMinFChunk));
  const int64_t fchunk = std::min(F, ceil_div(ceil_div(F, n_chunks), align) * align);
  n_chunks = ceil_div(F, fchunk);
  // Quantized decode: when the GEMV tiles hold few rows in all, they leave the fused tasks for
  // two phases of their own (after them): H of their rows over all of F, the rows of w1 / w3 spread
  // over the threads by F chunk, then Y with the rows of w2 spread by D chunk, so that every w2
  // row is read whole (in the fused tasks it is read in column runs of one chunk, 1.2-2x slower).
  std::vector<Task> dtiles;
  int64_t drows = 0;
  // With int8 activations every tile takes the two phases (on the integer kernels), in batches
  // of kInt8BatchRows rows; H is then whole per row before it is quantized for w2.
  const bool int8_act = quant && p.int8_activations;
  if (int8_act) {
    dtiles.swap(tiles);
    drows = r.rows;
  } else if (quant) {
    for (const Task& t : tiles)
      if (t.r1 - t.r0 <= kQGemvMaxM) drows += t.r1 - t.r0;
    if (drows > kQDecodeRows) drows = 0;
    if (drows > 0) {
      std::vector<Task> rest;
      for (const Task& t : tiles) (t.r1 - t.r0 <= kQGemvMaxM ? dtiles : rest).push_back(t);
      tiles.swap(rest);
    }
  }
  std::vector<Task> tasks;
  tasks.reserve(tiles.size() * size_t(n_chunks));
  for (const Task& t : tiles)
    for (int64_t c = 0; c < n_chunks; ++c)
      tasks.push_back({t.e, t.r0, t.r1, c * fchunk, std::min(F, (c + 1) * fchunk), c});
  // Larger tiles first, so a big one never starts last.
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const Task& a, const Task& b) { return (a.r1 - a.r0) > (b.r1 - b.r0); });

  // the expert rows' outputs, kept between calls (CallerBuffer: a fresh block per call faulted)
  const size_t rows_d = size_t(r.rows) * size_t(D);
  CallerBuffer partial_buffer(size_t(n_chunks) * rows_d * sizeof(float));
  float* partial = static_cast<float*>(partial_buffer.get());
  if (!partial) return Status(StatusCode::oom, "moe.ffn: out of memory for the expert outputs");

  const moe_cpu::Kernels& kern = moe_cpu::kernels();
  const gemm_cpu::Kernels& gk = gemm_cpu::kernels_for(active_isa());
  const quant_cpu::Kernels& qk = quant_cpu::kernels_for(active_isa());
  // The few-rows variant: the GEMM engine's dot kernel (it widens 16-bit weights as it loads).
  auto dot_fn = [&](const float* x, int64_t ldx, int64_t M, const char* w, int64_t ldw, int64_t k0,
                    int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc, bool acc) {
    gk.dot_t(x, ldx, M, w, p.dtype, ldw, k0, k1, n0, n1, c, ldc, acc);
  };
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

  // Quantized GEMV tiles: x prepared once per token they hold, before the tasks: float32 (x
  // itself when it is float32) and, for quantized w1 / w3, the lane order.
  std::vector<int64_t> tok_slot;
  std::vector<quant_cpu::RowPrep> prep1, prep3;
  std::vector<float> tok_buf;
  if (quant) {
    tok_slot.assign(size_t(T), -1);
    int64_t n_tok = 0;
    for (const std::vector<Task>* list : {&dtiles, &tiles})
      for (const Task& t : *list)
        if (t.r1 - t.r0 <= kQGemvMaxM && !int8_act)
          for (int64_t i = t.r0; i < t.r1; ++i) {
            int64_t& slot = tok_slot[size_t(r.order[i] / r.top_k)];
            if (slot < 0) slot = n_tok++;
          }
    const QuantWeight w1q = expert_quant(p.w1, p.q1, 0, F, D);
    const QuantWeight w3q = p.w3 ? expert_quant(p.w3, p.q3, 0, F, D) : QuantWeight();
    const int64_t nx = p.dtype == DType::float32 ? 0 : D, n1 = quant_cpu::rows_prep_floats(w1q, D);
    const int64_t n3 = p.w3 ? quant_cpu::rows_prep_floats(w3q, D) : 0, per = nx + n1 + n3;
    tok_buf.resize(size_t(n_tok) * size_t(per));
    prep1.resize(size_t(n_tok));
    prep3.resize(size_t(n_tok));
    std::vector<int64_t> tok_of(static_cast<size_t>(n_tok));
    for (int64_t t = 0; t < T; ++t)
      if (tok_slot[size_t(t)] >= 0) tok_of[size_t(tok_slot[size_t(t)])] = t;
    parallel_for(n_tok, [&](int64_t s, int) {
      float* buf = tok_buf.data() + s * per;
      const char* src = xb + size_t(tok_of[size_t(s)]) * size_t(D) * esz;
      const float* xf = reinterpret_cast<const float*>(src);
      if (nx) {
        convert_to_f32(src, p.dtype, buf, D);
        xf = buf;
      }
      prep1[size_t(s)] = quant_cpu::rows_prepare(qk, w1q, 0, D, xf, buf + nx);
      if (p.w3) prep3[size_t(s)] = quant_cpu::rows_prepare(qk, w3q, 0, D, xf, buf + nx + n1);
    });
  }

  // The decode phases' row order: tile di's rows start at hoff[di] of [drows, ...] buffers.
  std::vector<int64_t> hoff(dtiles.size());
  for (size_t i = 0, at = 0; i < dtiles.size(); ++i) {
    hoff[i] = int64_t(at);
    at += size_t(dtiles[i].r1 - dtiles[i].r0);
  }
  // The second phase's D chunks: enough (tile, chunk) tasks for the threads, 8-column aligned.
  auto d_chunks = [&](int64_t* n_dch, int64_t* dchunk) {
    *n_dch = std::min(ceil_div(kTargetTasks, int64_t(dtiles.size())), std::max<int64_t>(1, D / kQRowChunk));
    *dchunk = ceil_div(ceil_div(D, *n_dch), 32) * 32;  // (32: whole strips for w2's rows)
    *n_dch = ceil_div(D, *dchunk);
  };
  // Zeroes chunks 1.. of a tile's expert rows over columns [d0, d1) (the phases write chunk 0).
  auto zero_other_chunks = [&](const Task& t, int64_t d0, int64_t d1) {
    float* y = partial + size_t(t.r0) * size_t(D);
    for (int64_t c = 1; c < n_chunks; ++c)
      for (int64_t i = 0; i < t.r1 - t.r0; ++i)
        std::memset(y + size_t(c) * rows_d + size_t(i) * size_t(D) + d0, 0, size_t(d1 - d0) * sizeof(float));
  };

  // The two decode phases (see dtiles above). H: [drows, F] float32, the GEMV tiles' rows in turn.
  auto decode_phases = [&]() -> Status {
    std::vector<float> hbuf(size_t(drows) * size_t(F));
    std::atomic<bool> oom{false};
    auto preps = [&](const Task& t, quant_cpu::RowPrep* x1, quant_cpu::RowPrep* x3) {
      for (int64_t i = 0; i < t.r1 - t.r0; ++i) {
        const size_t s = size_t(tok_slot[size_t(r.order[t.r0 + i] / r.top_k)]);
        x1[i] = prep1[s];
        x3[i] = prep3[s];
      }
    };
    // 1. H = act(X w1^T) * (X w3^T), tasks (tile, F chunk).
    parallel_for(int64_t(dtiles.size()) * n_chunks, [&](int64_t ti, int) {
      const size_t di = size_t(ti / n_chunks);
      const Task& t = dtiles[di];
      const int64_t M = t.r1 - t.r0, f0 = (ti % n_chunks) * fchunk, f1 = std::min(F, f0 + fchunk), nf = f1 - f0;
      quant_cpu::RowPrep x1[kQGemvMaxM], x3[kQGemvMaxM];
      preps(t, x1, x3);
      float* h = hbuf.data() + size_t(hoff[di]) * size_t(F);
      quant_cpu::rows_gemv(qk, expert_quant(p.w1, p.q1, t.e, F, D), x1, M, f0, f1, 0, D, h + f0, F, false);
      float* u = nullptr;
      if (p.w3) {
        u = static_cast<float*>(scratch_get(2, size_t(M * nf) * sizeof(float)));
        if (!u) { oom.store(true); return; }
        quant_cpu::rows_gemv(qk, expert_quant(p.w3, p.q3, t.e, F, D), x3, M, f0, f1, 0, D, u, nf, false);
      }
      for (int64_t i = 0; i < M; ++i) kern.glu(p.act, h + i * F + f0, u ? u + i * nf : nullptr, nf);
    });
    if (oom.load()) return Status(StatusCode::oom, "moe.ffn: out of memory for scratch");
    // 2. H rows prepared once for w2 (the lane order), then Y = H w2^T, tasks
    //    (tile, D chunk), into chunk 0 of the expert rows (the other chunks zeroed).
    const QuantWeight w2any = expert_quant(p.w2, p.q2, 0, D, F);
    const int64_t pf = quant_cpu::rows_prep_floats(w2any, F);
    std::vector<float> hprep_buf(size_t(drows) * size_t(pf));
    std::vector<quant_cpu::RowPrep> hprep(static_cast<size_t>(drows));
    parallel_for(drows, [&](int64_t i, int) {
      hprep[size_t(i)] = quant_cpu::rows_prepare(qk, w2any, 0, F, hbuf.data() + size_t(i) * size_t(F),
                                                 hprep_buf.data() + size_t(i) * size_t(pf));
    });
    int64_t n_dch, dchunk;
    d_chunks(&n_dch, &dchunk);
    parallel_for(int64_t(dtiles.size()) * n_dch, [&](int64_t ti, int) {
      const size_t di = size_t(ti / n_dch);
      const Task& t = dtiles[di];
      const int64_t M = t.r1 - t.r0, d0 = (ti % n_dch) * dchunk, d1 = std::min(D, d0 + dchunk);
      float* y = partial + size_t(t.r0) * size_t(D);
      quant_cpu::rows_gemv(qk, expert_quant(p.w2, p.q2, t.e, D, F), &hprep[size_t(hoff[di])], M, d0, d1, 0, F,
                           y + d0, D, false);
      zero_other_chunks(t, d0, d1);
    });
    return Status::Ok();
  };

  // The same two phases with int8 activations (int8_act): every row of x quantized once (whole
  // D, quant_row_i8) and prepared for w1 / w3 (i8_rows_prepare); H by F chunk on the integer
  // kernels (i8_rows_gemv), scaled by the row's scale, then the GLU; H quantized per row (whole
  // F, which is why this mode takes only the phases) and prepared for w2; Y by D chunk.
  auto decode_phases_int8 = [&]() -> Status {
    struct Rows {  // int8 rows in phase order, prepared for one or two weights
      std::vector<int8_t> q, l1, l2;
      std::vector<int32_t> sum1, sum2;
      std::vector<float> s;
      int64_t K = 0, G1 = 0, G2 = 0;
      void size(int64_t n, int64_t k, const QuantWeight& a, const QuantWeight* b) {
        K = k;
        q.resize(size_t(n * k));
        s.resize(size_t(n));
        G1 = quant_cpu::i8_rows_sums(a);
        sum1.resize(size_t(n * G1));
        if (quant_cpu::i8_rows_lane_order(a)) l1.resize(size_t(n * k));
        if (b) {
          G2 = quant_cpu::i8_rows_sums(*b);
          sum2.resize(size_t(n * G2));
          if (quant_cpu::i8_rows_lane_order(*b)) l2.resize(size_t(n * k));
        }
      }
      // Row i quantized from xf and prepared for a (and b).
      void fill(const quant_cpu::Kernels& qk, int64_t i, const float* xf, const QuantWeight& a,
                const QuantWeight* b) {
        int8_t* qi = q.data() + i * K;
        s[size_t(i)] = qk.quant_row_i8(xf, K, qi);
        quant_cpu::i8_rows_prepare(a, qi, 1, l1.empty() ? nullptr : l1.data() + i * K, sum1.data() + i * G1);
        if (b) quant_cpu::i8_rows_prepare(*b, qi, 1, l2.empty() ? nullptr : l2.data() + i * K, sum2.data() + i * G2);
      }
      // y rows [o, o + M) over weight rows [n0, n1) of w (prepared as the first or second weight).
      void gemv(const quant_cpu::Kernels& qk, const QuantWeight& w, bool second, int64_t o, int64_t M,
                int64_t n0, int64_t n1, float* c, int64_t ldc) const {
        const std::vector<int8_t>& l = second ? l2 : l1;
        const int32_t* sum = second ? sum2.data() + o * G2 : sum1.data() + o * G1;
        quant_cpu::i8_rows_gemv(qk, w, q.data() + o * K, l.empty() ? nullptr : l.data() + o * K, sum,
                                s.data() + o, M, n0, n1, c, ldc);
      }
    };
    const QuantWeight w1q = expert_quant(p.w1, p.q1, 0, F, D);
    const QuantWeight w3q = p.w3 ? expert_quant(p.w3, p.q3, 0, F, D) : QuantWeight();
    const QuantWeight w2q = expert_quant(p.w2, p.q2, 0, D, F);
    std::vector<int64_t> slot_of(static_cast<size_t>(drows));  // phase row -> routing-order row
    for (size_t di = 0; di < dtiles.size(); ++di)
      for (int64_t i = dtiles[di].r0; i < dtiles[di].r1; ++i) slot_of[size_t(hoff[di] + i - dtiles[di].r0)] = i;
    std::atomic<bool> oom{false};
    Rows xr;
    xr.size(drows, D, w1q, p.w3 ? &w3q : nullptr);
    parallel_for(drows, [&](int64_t i, int) {
      const char* src = xb + size_t(r.order[size_t(slot_of[size_t(i)])] / r.top_k) * size_t(D) * esz;
      const float* xf = reinterpret_cast<const float*>(src);
      if (p.dtype != DType::float32) {
        float* buf = static_cast<float*>(scratch_get(2, size_t(D) * sizeof(float)));
        if (!buf) { oom.store(true); return; }
        convert_to_f32(src, p.dtype, buf, D);
        xf = buf;
      }
      xr.fill(qk, i, xf, w1q, p.w3 ? &w3q : nullptr);
    });
    if (oom.load()) return Status(StatusCode::oom, "moe.ffn: out of memory for scratch");
    // 1. H = act(X w1^T) * (X w3^T), tasks (tile, F chunk); U in scratch at H's columns.
    std::vector<float> hbuf(size_t(drows) * size_t(F));
    parallel_for(int64_t(dtiles.size()) * n_chunks, [&](int64_t ti, int) {
      const size_t di = size_t(ti / n_chunks);
      const Task& t = dtiles[di];
      const int64_t M = t.r1 - t.r0, o = hoff[di];
      const int64_t f0 = (ti % n_chunks) * fchunk, f1 = std::min(F, f0 + fchunk), nf = f1 - f0;
      float* h = hbuf.data() + size_t(o) * size_t(F);
      xr.gemv(qk, expert_quant(p.w1, p.q1, t.e, F, D), false, o, M, f0, f1, h, F);
      float* u = nullptr;
      if (p.w3) {
        u = static_cast<float*>(scratch_get(2, size_t(M * F) * sizeof(float)));
        if (!u) { oom.store(true); return; }
        xr.gemv(qk, expert_quant(p.w3, p.q3, t.e, F, D), true, o, M, f0, f1, u, F);
      }
      for (int64_t i = 0; i < M; ++i) kern.glu(p.act, h + i * F + f0, u ? u + i * F + f0 : nullptr, nf);
    });
    if (oom.load()) return Status(StatusCode::oom, "moe.ffn: out of memory for scratch");
    // 2. H rows quantized (whole F) and prepared for w2, then Y = H w2^T by (tile, D chunk).
    Rows hr;
    hr.size(drows, F, w2q, nullptr);
    parallel_for(drows, [&](int64_t i, int) { hr.fill(qk, i, hbuf.data() + size_t(i) * size_t(F), w2q, nullptr); });
    int64_t n_dch, dchunk;
    d_chunks(&n_dch, &dchunk);
    parallel_for(int64_t(dtiles.size()) * n_dch, [&](int64_t ti, int) {
      const size_t di = size_t(ti / n_dch);
      const Task& t = dtiles[di];
      const int64_t d0 = (ti % n_dch) * dchunk, d1 = std::min(D, d0 + dchunk);
      hr.gemv(qk, expert_quant(p.w2, p.q2, t.e, D, F), false, hoff[di], t.r1 - t.r0, d0, d1,
              partial + size_t(t.r0) * size_t(D), D);
      zero_other_chunks(t, d0, d1);
    });
    return Status::Ok();
  };

  // Per task, in thread scratch slot 2 (floats): x rows gathered [M, D]; the same packed as GEMM
  // A panels for every kKC slice of D [m_pad, D]; G and U [m_pad, kFSub]; H packed as A panels
  // [m_pad, kFSub]; three B panels (w1, w3, w2) of kKC x kNR.
  // Quantized experts on AMX-BF16 (quant_float_x86_amx.cc), for tiles past the GEMV: x's rows as
  // three exact bfloat16 parts once a task, then per F step G and U on the w1 / w3 rows, the GLU,
  // H's parts, and Y (+)= H w2[:, step]^T on w2's rows viewed over the step's columns (F steps
  // on w2's groups). false: a row of x or of H that the parts cannot hold (quant_kernels.h);
  // the task then takes the paths below, which write y whole from their first step on.
  auto w2_view = [&](const QuantWeight& w2, int64_t fs, int64_t nf) {
    QuantWeight v = w2;
    v.K = nf;
    v.ldq = w2.q_stride();
    v.lds = w2.s_stride();
    v.q = static_cast<const uint8_t*>(w2.q) + (w2.bits == 8 ? fs : fs / 2);
    if (w2.group_size > 0) {
      v.scales = w2.scales + fs / w2.group_size;
      if (w2.zeros) v.zeros = w2.zeros + fs / w2.group_size;
    }
    v.strips = nullptr;
    return v;
  };
  const QuantWeight w2any = quant ? expert_quant(p.w2, p.q2, 0, D, F) : QuantWeight();
  const bool amx_q = quant && !int8_act &&
                     quant_cpu::amx_float_usable(expert_quant(p.w1, p.q1, 0, F, D)) &&
                     (!p.w3 || quant_cpu::amx_float_usable(expert_quant(p.w3, p.q3, 0, F, D))) &&
                     F % 32 == 0 && kFSub % 32 == 0 && kFewFSub % 32 == 0 &&
                     (p.q2.group_size == 0 ||
                      (kFSub % p.q2.group_size == 0 && kFewFSub % p.q2.group_size == 0)) &&
                     quant_cpu::amx_float_usable(w2_view(w2any, 0, 32));
  auto amx_task = [&](const Task& tk, int64_t M, const float* xg, float* g, float* u,
                      int64_t fsub, float* y, const QuantWeight& w1q, const QuantWeight& w3q,
                      const QuantWeight& w2q) {
    const int64_t mb = ceil_div(M, 16);
    thread_local std::vector<uint16_t> xa_buf, ha_buf;
    xa_buf.resize(size_t(quant_cpu::amx_float_x_elems(M, D)) + 32);
    ha_buf.resize(size_t(quant_cpu::amx_float_x_elems(M, fsub)) + 32);
    uint16_t* xa = quant_cpu::align64(xa_buf.data());
    uint16_t* ha = quant_cpu::align64(ha_buf.data());
    if (!quant_cpu::amx_float_pack_x(xg, D, M, D, 0, mb, xa)) return false;
    constexpr int64_t kRows = quant_cpu::kAmxFloatTaskRows;
    for (int64_t fs = tk.f0; fs < tk.f1; fs += fsub) {
      const int64_t nf = std::min(fsub, tk.f1 - fs);
      for (int wi = 0; wi < (p.w3 ? 2 : 1); ++wi) {
        float* out = wi ? u : g;
        for (int64_t n0 = fs; n0 < fs + nf; n0 += kRows)
          quant_cpu::amx_float_rows(wi ? w3q : w1q, xa, M, n0, std::min(fs + nf, n0 + kRows),
                                    out + (n0 - fs), fsub, false);
      }
      for (int64_t i = 0; i < M; ++i)
        kern.glu(p.act, g + i * fsub, p.w3 ? u + i * fsub : nullptr, nf);
      // (at a later step too: the paths below write y from their first step on)
      if (!quant_cpu::amx_float_pack_x(g, fsub, M, nf, 0, mb, ha)) return false;
      const QuantWeight w2v = w2_view(w2q, fs, nf);
      for (int64_t d0 = 0; d0 < D; d0 += kRows)
        quant_cpu::amx_float_rows(w2v, ha, M, d0, std::min(D, d0 + kRows), y + d0, D,
                                  fs > tk.f0);
    }
    return true;
  };
  parallel_for(int64_t(tasks.size()), [&](int64_t ti, int) {
    if (failed.load()) return;
    const Task& tk = tasks[size_t(ti)];
    const int64_t M = tk.r1 - tk.r0, m_pad = ceil_div(M, kMR) * kMR;
    // Few rows: deeper slices and wider F steps, so each weight row is read in longer runs (the
    // packing of B is then the larger cost and it streams from memory).
    const bool few = m_pad <= kFewRows;
    const bool qgemv = quant && M <= kQGemvMaxM;
    // float32 weights past the few-rows variant, where the GEMM table pairs panels: the rows
    // engine (gemm_rows.h), each weight read in place as the micro-kernel's A against the
    // tile's rows packed once as x^T panels, instead of packing every weight panel (Mixtral-like
    // layer, Node, 3 alternated rounds: 74-83 -> 67-83 ms, 0.83-0.90 -> 0.93-1.02x the dense
    // GEMM; `linear` on its expert shapes 10-30% faster, bench/NOTES.md "Zen 5, session 20")
    const bool rows_mode = !few && !quant && p.dtype == DType::float32 && gk.kernel2_rows &&
                           gk.kernel_rows && M >= gemm_cpu::kRowsMinM;
    const int64_t kcx = few ? std::min(D, kFewKC) : kKC;
    const int64_t fsub = qgemv ? fchunk : few ? kFewFSub : rows_mode ? kRowsFSub : kFSub;
    const int64_t P = M / kNR, mp = P * kNR, d_strips = D / kMR;  // rows variant
    const size_t ct_fsub = rows_mode ? size_t(fsub / kMR * P * gemm_cpu::kRowsTile) : 0;
    const size_t ct_d = rows_mode ? size_t(d_strips * P * gemm_cpu::kRowsTile) : 0;
    const QuantWeight w1q = quant ? expert_quant(p.w1, p.q1, tk.e, F, D) : QuantWeight();
    const QuantWeight w3q = quant && p.w3 ? expert_quant(p.w3, p.q3, tk.e, F, D) : QuantWeight();
    const QuantWeight w2q = quant ? expert_quant(p.w2, p.q2, tk.e, D, F) : QuantWeight();
    // Quantized: a dequantized weight panel (dot: kDotN rows x kDotK; packed: kNR rows x the
    // slice), or the prepared H rows of a GEMV tile.
    const int64_t panel = !quant ? 0
                          : qgemv ? m_pad * quant_cpu::rows_prep_floats(w2q, fsub)
                                  : std::max(kDotN * std::max(kDotK, fsub), int64_t(kNR) * std::max(kcx, fsub));
    // bfloat16 x and experts where the GEMM table has the bfloat16 tile (AVX512-BF16): G and U
    // as G^T = w1 X^T (x packed by pairs of D, the weight rows read in place: gemm_driver's
    // bf16_rows_path), H and w2 as before (H stays float32).
    // On AMX (D % 32 == 0) the same x panels are the B tiles and the weight rows the A tiles
    // (gemm_kernels.h amx_bf16_wrows), G / U written straight.
    const bool amx_gu = p.dtype == DType::bfloat16 && D % 32 == 0 && amx_usable(Amx::bf16);
    const bool bf16_gu = !quant && p.dtype == DType::bfloat16 && gk.tile_bf16 &&
                         (fast_bf16_dot() || amx_gu) && D % 2 == 0 && M >= kBf16MinRows;
    const int64_t mp16 = ceil_div(M, kNR) * kNR;
    const size_t xh_floats = bf16_gu ? size_t(mp16) * size_t(D) / 2 : 0;
    const size_t cth_floats = bf16_gu ? size_t(fsub) * size_t(mp16) : 0;
    // Every buffer starts on 64 bytes: the micro-kernel loads its B panel with aligned loads.
    const size_t sizes[14] = {size_t(M) * size_t(D), size_t(m_pad) * size_t(D), size_t(m_pad) * size_t(fsub),
                             size_t(m_pad) * size_t(fsub), size_t(m_pad) * size_t(fsub),
                             2 * size_t(std::max(kcx, fsub)) * kNR,
                             2 * size_t(std::max(kcx, fsub)) * kNR,
                             2 * size_t(std::max(kcx, fsub)) * kNR, size_t(panel),
                             ct_fsub, ct_fsub, ct_d, xh_floats, cth_floats};
    size_t at[14], total = 0;
    for (int i = 0; i < 14; ++i) {
      at[i] = total;
      total += (sizes[i] + 15) / 16 * 16;
    }
    float* base = static_cast<float*>(scratch_get(2, total * sizeof(float)));
    if (!base) return fail_with(Status(StatusCode::oom, "moe.ffn: out of memory for scratch"));
    float* xg = base + at[0];
    float* apx = base + at[1];
    float* g = base + at[2];
    float* u = base + at[3];
    float* hp = base + at[4];
    float* b1 = base + at[5];
    float* b3 = base + at[6];
    float* b2 = base + at[7];
    float* pq = base + at[8];
    float* ctg = base + at[9];
    float* ctu = base + at[10];
    float* cty = base + at[11];
    uint16_t* xh = reinterpret_cast<uint16_t*>(base + at[12]);  // x by pairs of D (bf16_gu)
    float* cth = base + at[13];                                // G^T / U^T of an F step
    float* y = partial + size_t(tk.chunk) * rows_d + size_t(tk.r0) * size_t(D);
    if (qgemv) {
      // Decode: every weight row streamed once for the tile's rows, through the quantized GEMV.
      quant_cpu::RowPrep x1[kQGemvMaxM], x3[kQGemvMaxM], h[kQGemvMaxM];
      for (int64_t i = 0; i < M; ++i) {
        const size_t s = size_t(tok_slot[size_t(r.order[tk.r0 + i] / r.top_k)]);
        x1[i] = prep1[s];
        x3[i] = prep3[s];
      }
      const int64_t pf = quant_cpu::rows_prep_floats(w2q, fsub);
      for (int64_t fs = tk.f0; fs < tk.f1; fs += fsub) {
        const int64_t nf = std::min(fsub, tk.f1 - fs);
        quant_cpu::rows_gemv(qk, w1q, x1, M, fs, fs + nf, 0, D, g, fsub, false);
        if (p.w3) quant_cpu::rows_gemv(qk, w3q, x3, M, fs, fs + nf, 0, D, u, fsub, false);
        for (int64_t i = 0; i < M; ++i) {
          kern.glu(p.act, g + i * fsub, p.w3 ? u + i * fsub : nullptr, nf);
          h[i] = quant_cpu::rows_prepare(qk, w2q, fs, fs + nf, g + i * fsub, pq + i * pf);
        }
        quant_cpu::rows_gemv(qk, w2q, h, M, 0, D, fs, fs + nf, y, D, fs > tk.f0);
      }
      return;
    }
    // 1. gather and pack x: slice pc of D at apx + m_pad * pc, panels of kMR rows x kc (with
    //    bf16_gu: the rows as stored, packed by pairs of D into xh)
    for (int64_t i = 0; i < M; ++i) {
      const int64_t t = r.order[tk.r0 + i] / r.top_k;
      const char* src = xb + size_t(t) * size_t(D) * esz;
      if (bf16_gu) std::memcpy(reinterpret_cast<uint16_t*>(xg) + i * D, src, size_t(D) * 2);
      else if (p.dtype == DType::float32) std::memcpy(xg + i * D, src, size_t(D) * sizeof(float));
      else convert_to_f32(src, p.dtype, xg + i * D, D);
    }
    if (bf16_gu)
      for (int64_t q = 0; q < mp16 / kNR; ++q)
        gk.pack_b_bf16(reinterpret_cast<const uint16_t*>(xg) + q * kNR * D, D, true, D,
                       std::min<int64_t>(kNR, M - q * kNR), xh + q * kNR * D);
    // G and U of F step [fs, fs + nf) on the bfloat16 tile (bf16_gu): G^T / U^T into cth
    // [nf, mp16] (gemm_rows.h rows_tiles_bf16), then stored transposed as G / U rows.
    auto gu_bf16 = [&](const char* w1e, const char* w3e, int64_t fs, int64_t nf) {
      for (int wi = 0; wi < (w3e ? 2 : 1); ++wi) {
        const uint16_t* wr = reinterpret_cast<const uint16_t*>(wi ? w3e : w1e) + fs * D;
        float* out = wi ? u : g;
        if (amx_gu) {
          for (int64_t n0 = 0; n0 < nf; n0 += gemm_cpu::kAmxRows)
            gemm_cpu::amx_bf16_wrows(wr + n0 * D, D, std::min(gemm_cpu::kAmxRows, nf - n0),
                                     D / 32, xh, D * kNR, M, out + n0, fsub);
          continue;
        }
        gemm_cpu::rows_tiles_bf16(gk, wr, D, nf, xh, mp16 / kNR, D, cth, mp16);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < nf; ++j) out[i * fsub + j] = cth[j * mp16 + i];
      }
    };
    if (amx_q && amx_task(tk, M, xg, g, u, fsub, y, w1q, w3q, w2q)) return;
    const bool dot = few && gk.dot_t;
    if (rows_mode) {
      // The rows variant. Per F step of nf columns (whole strips of kMR rows of w1 / w3, the last
      // nf % kMR by dot_t): G^T and U^T tiles over all of D, stored as G / U rows, the GLU, then
      // H's rows packed as x^T panels and Y^T tiles over w2's rows accumulated across the steps
      // (stored once at the end). The M % 16 rows past the whole panels and w2's last D % kMR
      // rows take dot_t.
      const char* w1e = static_cast<const char*>(p.w1) + size_t(tk.e) * w13_expert;
      const char* w3e =
          p.w3 ? static_cast<const char*>(p.w3) + size_t(tk.e) * w13_expert : nullptr;
      const float* w2f = reinterpret_cast<const float*>(static_cast<const char*>(p.w2) +
                                                        size_t(tk.e) * w13_expert);
      float* xp = apx;  // x^T panels: P * D * kNR floats
      gemm_cpu::rows_pack_x(xg, D, P, D, xp);
      const int64_t rem = M - mp;
      for (int64_t fs = tk.f0; fs < tk.f1; fs += fsub) {
        const int64_t nf = std::min(fsub, tk.f1 - fs), strips = nf / kMR, ns = strips * kMR;
        const bool acc = fs > tk.f0;
        for (int wi = 0; wi < (w3e ? 2 : 1); ++wi) {
          const float* wr = reinterpret_cast<const float*>(wi ? w3e : w1e) + fs * D;
          float* out = wi ? u : g;
          float* ct = wi ? ctu : ctg;
          gemm_cpu::rows_tiles(gk, wr, D, strips, xp, P, D, 0, D, ct, false);
          gemm_cpu::rows_store(gk, ct, strips, P, out, fsub, 0);
          gemm_cpu::rows_edges(gk, xg, D, mp, rem, wr, D, D, ns, nf, out, fsub, false);
        }
        for (int64_t i = 0; i < M; ++i)
          kern.glu(p.act, g + i * fsub, w3e ? u + i * fsub : nullptr, nf);
        gemm_cpu::rows_pack_x(g, fsub, P, nf, hp);
        gemm_cpu::rows_tiles(gk, w2f + fs, F, d_strips, hp, P, nf, 0, nf, cty, acc);
        gemm_cpu::rows_edges(gk, g, fsub, mp, rem, w2f + fs, F, nf, d_strips * kMR, D, y, D, acc);
      }
      gemm_cpu::rows_store(gk, cty, d_strips, P, y, D, 0);
      return;
    }
    if (!dot && !bf16_gu)
      for (int64_t pc = 0; pc < D; pc += kcx)
        gk.pack_a(xg + pc, DType::float32, D, M, std::min(kcx, D - pc), apx + m_pad * pc);
    const size_t eoff = quant ? 0 : size_t(tk.e) * w13_expert;  // float weights only
    const char* w1e = static_cast<const char*>(p.w1) + eoff;
    const char* w3e = p.w3 ? static_cast<const char*>(p.w3) + eoff : nullptr;
    const char* w2e = static_cast<const char*>(p.w2) + eoff;
    alignas(64) float edge[kMR * 2 * kNR];
    for (int64_t fs = tk.f0; fs < tk.f1; fs += fsub) {
      const int64_t nf = std::min(fsub, tk.f1 - fs);
      if (dot) {
        // Few rows: dot products straight from the rows of w1 / w3 / w2 (the GEMM engine's
        // decode kernel), so no weight is packed for the few rows that use it; K in chunks of
        // kDotK keeps the rows of B in flight in L1 while every row of X passes over them.
        const char* b1r = w1e + size_t(fs) * size_t(D) * esz;
        const char* b3r = w3e ? w3e + size_t(fs) * size_t(D) * esz : nullptr;
        if (bf16_gu) gu_bf16(w1e, w3e, fs, nf);
        for (int64_t n0 = 0; n0 < (bf16_gu ? 0 : nf); n0 += kDotN) {
          const int64_t n1 = std::min(nf, n0 + kDotN);
          for (int64_t k0 = 0; k0 < D; k0 += kDotK) {
            const int64_t k1 = std::min(D, k0 + kDotK), kc = k1 - k0;
            if (quant) {
              // the panel of w1 (then w3) rows, dequantized, then the same dot products on it
              qk.dequant(w1q, fs + n0, fs + n1, k0, k1, pq, kc);
              gk.dot_t(xg + k0, D, M, pq, DType::float32, kc, 0, kc, 0, n1 - n0, g + n0, fsub, k0 > 0);
              if (!p.w3) continue;
              qk.dequant(w3q, fs + n0, fs + n1, k0, k1, pq, kc);
              gk.dot_t(xg + k0, D, M, pq, DType::float32, kc, 0, kc, 0, n1 - n0, u + n0, fsub, k0 > 0);
              continue;
            }
            dot_fn(xg, D, M, b1r, D, k0, k1, n0, n1, g, fsub, k0 > 0);
            if (b3r) dot_fn(xg, D, M, b3r, D, k0, k1, n0, n1, u, fsub, k0 > 0);
          }
        }
        for (int64_t i = 0; i < M; ++i) kern.glu(p.act, g + i * fsub, w3e ? u + i * fsub : nullptr, nf);
        const char* b2r = w2e + size_t(fs) * esz;
        for (int64_t n0 = 0; n0 < D; n0 += kDotN) {
          const int64_t n1 = std::min(D, n0 + kDotN);
          if (quant) {
            qk.dequant(w2q, n0, n1, fs, fs + nf, pq, nf);
            gk.dot_t(g, fsub, M, pq, DType::float32, nf, 0, nf, 0, n1 - n0, y + n0, D, fs > tk.f0);
          } else {
            dot_fn(g, fsub, M, b2r, F, 0, nf, n0, n1, y, D, fs > tk.f0);
          }
        }
        continue;
      }
      // 2. G = X w1[fs:fs+nf]^T, U = X w3[...]^T: B panels of 16 rows of w1 / w3 (two at a time
      //    where the ISA has kernel2), every row panel of X against each (G, U hold m_pad rows
      //    and whole panels: no edge cases).
      const int64_t jstep = gk.kernel2 ? 2 * kNR : kNR;
      if (bf16_gu) gu_bf16(w1e, w3e, fs, nf);
      for (int64_t pc = 0; pc < (bf16_gu ? 0 : D); pc += kcx) {
        const int64_t kc = std::min(kcx, D - pc);
        const float* ap = apx + m_pad * pc;
        for (int64_t j = 0; j < nf; j += jstep) {
          const int64_t np = std::min(jstep, nf - j) > kNR ? 2 : 1;  // panels in this step
          for (int64_t q = 0; q < np; ++q) {
            const int64_t jq = j + q * kNR, cols = std::min<int64_t>(kNR, nf - jq);
            float* b1q = b1 + q * kc * kNR;
            float* b3q = b3 + q * kc * kNR;
            if (quant) {
              qk.dequant(w1q, fs + jq, fs + jq + cols, pc, pc + kc, pq, kc);
              gk.pack_b(pq, DType::float32, kc, true, kc, cols, b1q);
              if (p.w3) {
                qk.dequant(w3q, fs + jq, fs + jq + cols, pc, pc + kc, pq, kc);
                gk.pack_b(pq, DType::float32, kc, true, kc, cols, b3q);
              }
            } else {
              const size_t boff = (size_t(fs + jq) * size_t(D) + size_t(pc)) * esz;
              gk.pack_b(w1e + boff, p.dtype, D, true, kc, cols, b1q);
              if (w3e) gk.pack_b(w3e + boff, p.dtype, D, true, kc, cols, b3q);
            }
          }
          for (int64_t i = 0; i < m_pad; i += kMR) {
            if (np == 2) {
              gk.kernel2(kc, ap + i * kc, b1, b1 + kc * kNR, g + i * fsub + j, fsub, pc > 0);
              if (w3e)
                gk.kernel2(kc, ap + i * kc, b3, b3 + kc * kNR, u + i * fsub + j, fsub, pc > 0);
            } else {
              gk.kernel(kc, ap + i * kc, b1, g + i * fsub + j, fsub, pc > 0);
              if (w3e) gk.kernel(kc, ap + i * kc, b3, u + i * fsub + j, fsub, pc > 0);
            }
          }
        }
      }
      // 3. H = act(G) * U, packed as the A panels of the second GEMM.
      for (int64_t i = 0; i < M; ++i) kern.glu(p.act, g + i * fsub, w3e ? u + i * fsub : nullptr, nf);
      gk.pack_a(g, DType::float32, fsub, M, nf, hp);
      // 4. Y (+)= H w2[:, fs:fs+nf]^T: B panels of 16 rows of w2 (row stride F), written straight
      //    into the task's rows of the partial output; the edges of M and D through a local tile.
      const bool acc = fs > tk.f0;
      for (int64_t j = 0; j < D; j += jstep) {
        const int64_t np = std::min(jstep, D - j) > kNR ? 2 : 1;
        const int64_t cols = std::min<int64_t>(np * kNR, D - j);  // of the np panels
        for (int64_t q = 0; q < np; ++q) {
          const int64_t jq = j + q * kNR, cq = std::min<int64_t>(kNR, D - jq);
          if (quant) {
            qk.dequant(w2q, jq, jq + cq, fs, fs + nf, pq, nf);
            gk.pack_b(pq, DType::float32, nf, true, nf, cq, b2 + q * nf * kNR);
          } else {
            gk.pack_b(w2e + (size_t(jq) * size_t(F) + size_t(fs)) * esz, p.dtype, F, true, nf, cq,
                      b2 + q * nf * kNR);
          }
        }
        const int64_t ldt = np * kNR;  // the edge tile's row stride
        for (int64_t i = 0; i < M; i += kMR) {
          const int64_t rr = std::min<int64_t>(kMR, M - i);
          float* c = y + i * D + j;
          const bool whole = rr == kMR && cols == np * kNR;
          float* dst = whole ? c : edge;
          const int64_t ld = whole ? D : ldt;
          if (np == 2) gk.kernel2(nf, hp + i * nf, b2, b2 + nf * kNR, dst, ld, whole && acc);
          else gk.kernel(nf, hp + i * nf, b2, dst, ld, whole && acc);
          if (!whole)
            for (int64_t ii = 0; ii < rr; ++ii)
              for (int64_t jj = 0; jj < cols; ++jj)
                c[ii * D + jj] = (acc ? c[ii * D + jj] : 0.0f) + edge[ii * ldt + jj];
        }
      }
    }
  });
  if (failed.load()) return err;
  if (int8_act) {
    std::vector<Task> all;
    all.swap(dtiles);
    for (size_t i = 0; i < all.size();) {
      dtiles.clear();
      drows = 0;
      for (; i < all.size() && (dtiles.empty() || drows + all[i].r1 - all[i].r0 <= kInt8BatchRows);
           ++i) {
        dtiles.push_back(all[i]);
        drows += all[i].r1 - all[i].r0;
      }
      hoff.assign(dtiles.size(), 0);
      for (size_t t = 1; t < dtiles.size(); ++t)
        hoff[t] = hoff[t - 1] + dtiles[t - 1].r1 - dtiles[t - 1].r0;
      TF_RETURN_IF_ERROR(decode_phases_int8());
    }
  } else if (!dtiles.empty()) {
    TF_RETURN_IF_ERROR(decode_phases());
  }

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
