// GEMM driver: validation, cache blocking, threading, packed-B reuse and the epilogue, shared by
// every ISA (the ISA pieces are in gemm_kernels.h).
//
// Loop nest (GotoBLAS): for each kNC block of columns, for each kKC slice of depth:
//   1. pack the kc x nc block of B once, all threads on disjoint kNR panels;
//   2. all threads take tiles (a kMC block of rows x a run of B panels), pack their rows of A
//      into thread-local scratch and run the micro-kernel over the tile.
// M = 1 takes the GEMV path (memory bound: B is streamed once, never packed).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "gemm_kernels.h"
#include "gemm_rows.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/gemm.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {

struct PackedB {
  Isa isa;  // the level that packed it (informational: every level shares the panel layout)
  int64_t K = 0, N = 0;
  int64_t n_panels = 0;  // ceil(N / kNR)
  float* data = nullptr; // [ceil(K / kKC)] blocks of [n_panels][kc][kNR]
  size_t bytes = 0;
  ~PackedB() { aligned_free64(data); }
};

namespace {

using gemm_cpu::kKC;
using gemm_cpu::kMC;
using gemm_cpu::kMR;
using gemm_cpu::kNC;
using gemm_cpu::kNR;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The threads a call may use: the pool, capped by p.max_threads when set.
int pool_threads(const GemmParams& p) {
  return p.max_threads > 0 ? std::min(p.max_threads, threads()) : threads();
}

float apply_act(float v, Activation act) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0.0f ? v : 0.0f;
    case Activation::gelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case Activation::silu: return v / (1.0f + std::exp(-v));
  }
  return v;
}

// c[0:n] = act(c + bias) in place (float32).
void epilogue_row(float* c, int64_t n, const float* bias, Activation act) {
  if (!bias && act == Activation::none) return;
  for (int64_t j = 0; j < n; ++j) c[j] = apply_act(c[j] + (bias ? bias[j] : 0.0f), act);
}

Status validate(const GemmParams& p) {
  if (p.M < 0 || p.N < 0 || p.K < 0) return Status(StatusCode::shape, "gemm: negative size");
  if (!dtype_is_float(p.a_dtype) || !dtype_is_float(p.c_dtype) ||
      (!p.packed_b && !dtype_is_float(p.b_dtype)))
    return Status(StatusCode::dtype, "gemm: operands must be float32, float16 or bfloat16");
  if (p.M > 0 && p.N > 0) {
    if (!p.c || p.ldc < p.N) return Status(StatusCode::arg, "gemm: bad output or ldc");
    if (p.K > 0) {
      if (!p.a || p.lda < p.K) return Status(StatusCode::arg, "gemm: bad a or lda");
      if (p.packed_b) {
        if (p.packed_b->K != p.K || p.packed_b->N != p.N)
          return Status(StatusCode::shape, "gemm: packed B was made for another shape");
      } else if (!p.b || p.ldb < (p.trans_b ? p.K : p.N)) {
        return Status(StatusCode::arg, "gemm: bad b or ldb");
      }
    }
  }
  return Status::Ok();
}

// Where the float32 result goes: C itself, or a temporary when C is 16-bit.
struct F32Out {
  float* c;
  int64_t ldc;
  float* owned = nullptr;
  ~F32Out() { aligned_free64(owned); }
};

Status gemv_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* y) {
  // x widened once to float32.
  std::vector<float> xbuf;
  const float* x = static_cast<const float*>(p.a);
  if (p.a_dtype != DType::float32) {
    xbuf.resize(size_t(p.K));
    convert_to_f32(p.a, p.a_dtype, xbuf.data(), p.K);
    x = xbuf.data();
  }
  const int64_t work = p.N * p.K;
  const int max_threads = work < (1 << 15) ? 1 : p.max_threads;
  if (p.trans_b) {
    // B is [N, K]: each output is one dot product over a contiguous row. Chunks of 64 rows.
    const int64_t chunk = 64;
    parallel_for(
        ceil_div(p.N, chunk),
        [&](int64_t t, int) {
          const int64_t n0 = t * chunk, n1 = std::min(p.N, n0 + chunk);
          kern.gemv(x, p.b, p.b_dtype, p.ldb, true, p.K, n0, n1, y);
          epilogue_row(y + n0, n1 - n0, p.bias ? p.bias + n0 : nullptr, p.act);
        },
        max_threads);
    return Status::Ok();
  }
  // B is [K, N]: y = sum_k x[k] * B[k, :]. Split K, not N, so every task streams whole rows
  // (long contiguous runs keep the hardware prefetcher ahead; column chunks of short runs 16 KiB
  // apart did not: 10 GB/s against 17). Each (k chunk, n block) task writes its own partial y,
  // and the partials are summed in a fixed order, so the result does not depend on the threads.
  const int64_t kchunk = 256, nblock = 4096;
  const int64_t n_k = ceil_div(p.K, kchunk), n_n = ceil_div(p.N, nblock);
  CallerBuffer partial_buffer(size_t(n_k) * size_t(p.N) * sizeof(float));
  float* partial = static_cast<float*>(partial_buffer.get());
  if (!partial) return Status(StatusCode::oom, "gemm: out of memory for GEMV partial sums");
  const size_t esz = dtype_size(p.b_dtype);
  parallel_for(
      n_k * n_n,
      [&](int64_t t, int) {
        const int64_t kc = t / n_n, nb = t % n_n;
        const int64_t k0 = kc * kchunk, k1 = std::min(p.K, k0 + kchunk);
        const int64_t n0 = nb * nblock, n1 = std::min(p.N, n0 + nblock);
        const char* brow = static_cast<const char*>(p.b) + esz * size_t(k0 * p.ldb);
        kern.gemv(x + k0, brow, p.b_dtype, p.ldb, false, k1 - k0, n0, n1, partial + kc * p.N);
      },
      max_threads);
  const int64_t rchunk = 1024;
  parallel_for(
      ceil_div(p.N, rchunk),
      [&](int64_t t, int) {
        const int64_t n0 = t * rchunk, n1 = std::min(p.N, n0 + rchunk);
        for (int64_t n = n0; n < n1; ++n) y[n] = partial[n];
        for (int64_t kc = 1; kc < n_k; ++kc) {
          const float* src = partial + kc * p.N;
          for (int64_t n = n0; n < n1; ++n) y[n] += src[n];
        }
        epilogue_row(y + n0, n1 - n0, p.bias ? p.bias + n0 : nullptr, p.act);
      },
      max_threads);
  return Status::Ok();
}

// A (the few rows of x) as float32: in place when it is, else widened into buf (row stride K).
const float* rows_as_f32(const GemmParams& p, std::vector<float>& buf, int64_t* ldx) {
  *ldx = p.lda;
  if (p.a_dtype == DType::float32) return static_cast<const float*>(p.a);
  buf.resize(size_t(p.M * p.K));
  for (int64_t m = 0; m < p.M; ++m)
    convert_to_f32(static_cast<const char*>(p.a) + dtype_size(p.a_dtype) * size_t(m * p.lda),
                   p.a_dtype, buf.data() + m * p.K, p.K);
  *ldx = p.K;
  return buf.data();
}

// Few rows against B stored [K, N] (matmul's weights at decode): the M = 1 GEMV's plan
// for several rows of x. Packing (small_m_path) reads B in short runs of each row, a page per
// k, and ran 4.8-6.0 ms at M = 2-16, K = N = 4096 where the transposed layout's dot path takes
// 1.3-2.5. Here each task streams whole rows of B for its chunk of K (gemv_n_rows: every row of
// x meets each B vector from registers) into its own partial [M, N], and the partials are added
// in chunk order, so the result does not depend on the threads.
constexpr int64_t kNRowsMaxM = 16;
constexpr int kPartialSlot = 3;

Status gemv_n_rows_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c,
                        int64_t ldc) {
  const int64_t M = p.M, N = p.N, K = p.K;
  std::vector<float> xbuf;
  int64_t ldx;
  const float* x = rows_as_f32(p, xbuf, &ldx);
  const int64_t kchunk = 256, nblock = 4096;
  const int64_t n_k = ceil_div(K, kchunk), n_n = ceil_div(N, nblock);
  // partial rows one line past a multiple of 4 KiB apart: at N * 4 bytes (16 KiB for N = 4096)
  // each row's loads of y waited on the previous row's stores to the same page offset
  const int64_t ldp = (N + 15) / 16 * 16 + (N % 1024 == 0 ? 16 : 0);
  // The partials in the calling thread's scratch (kept between calls: a fresh 4 MiB buffer per
  // call page-faulted in, 9-11 ms against 4.2 at M = 12-16 from Node); the tasks below take no
  // scratch of their own, so nothing else claims this slot while they run.
  float* partial = static_cast<float*>(
      scratch_get(kPartialSlot, size_t(n_k) * size_t(M) * size_t(ldp) * sizeof(float)));
  if (!partial) return Status(StatusCode::oom, "gemm: out of memory for GEMV partial sums");
  const int max_threads = M * N * K < (1 << 15) ? 1 : p.max_threads;
  const size_t esz = dtype_size(p.b_dtype);
  parallel_for(
      n_k * n_n,
      [&](int64_t t, int) {
        const int64_t kc = t / n_n, nb = t % n_n;
        const int64_t k0 = kc * kchunk, k1 = std::min(K, k0 + kchunk);
        const int64_t n0 = nb * nblock, n1 = std::min(N, n0 + nblock);
        const char* brow = static_cast<const char*>(p.b) + esz * size_t(k0 * p.ldb);
        float* y = partial + kc * M * ldp;
        for (int64_t m = 0; m < M; ++m)
          std::memset(y + m * ldp + n0, 0, size_t(n1 - n0) * sizeof(float));
        kern.gemv_n_rows(x + k0, ldx, M, brow, p.b_dtype, p.ldb, k1 - k0, n0, n1, y, ldp);
      },
      max_threads);
  const int64_t rchunk = 1024, n_r = ceil_div(N, rchunk);
  parallel_for(
      M * n_r,
      [&](int64_t t, int) {
        const int64_t m = t / n_r, n0 = (t % n_r) * rchunk, n1 = std::min(N, n0 + rchunk);
        float* y = c + m * ldc;
        for (int64_t n = n0; n < n1; ++n) y[n] = partial[m * ldp + n];
        for (int64_t kc = 1; kc < n_k; ++kc) {
          const float* src = partial + (kc * M + m) * ldp;
          for (int64_t n = n0; n < n1; ++n) y[n] += src[n];
        }
        epilogue_row(y + n0, n1 - n0, p.bias ? p.bias + n0 : nullptr, p.act);
      },
      max_threads);
  return Status::Ok();
}

// Rows [i0, i1) of the packed A slice (row i at apack + i * kc, i0 a multiple of kMR) against np
// (1 or 2: kernel2) adjacent packed B panels from bp, for output columns [j, j + np * kNR)
// clipped to N; the last depth slice also applies the epilogue. Partial tiles go through a local
// tile so the kernel never writes past C.
void panel_column(const gemm_cpu::Kernels& kern, const GemmParams& p, int64_t kc, const float* apack,
                  int64_t i0, int64_t i1, const float* bp, int np, int64_t j, float* c, int64_t ldc,
                  bool accumulate, bool last_k) {
  const int64_t w = np * kNR, cols = std::min<int64_t>(w, p.N - j);
  alignas(64) float edge[kMR * 4 * kNR];
  auto tile = [&](const float* ap, float* dst, int64_t ld, bool acc) {
    if (np == 4) {
      // depth in halves of at most kRowsKC4: four panels' slices stay in L1
      for (int64_t h = 0; h < kc; h += gemm_cpu::kRowsKC4)
        kern.kernel4(std::min(gemm_cpu::kRowsKC4, kc - h), ap + h * kMR, bp + h * kNR, kc * kNR,
                     dst, ld, acc || h > 0);
    } else if (np == 2) {
      kern.kernel2(kc, ap, bp, bp + kc * kNR, dst, ld, acc);
    } else {
      kern.kernel(kc, ap, bp, dst, ld, acc);
    }
  };
  for (int64_t i = i0; i < i1; i += kMR) {
    const int64_t rr = std::min<int64_t>(kMR, i1 - i);
    float* ct = c + i * ldc + j;
    const float* ap = apack + i * kc;
    if (rr == kMR && cols == w) {
      tile(ap, ct, ldc, accumulate);
    } else {
      tile(ap, edge, w, false);
      for (int64_t ii = 0; ii < rr; ++ii)
        for (int64_t jj = 0; jj < cols; ++jj)
          ct[ii * ldc + jj] = (accumulate ? ct[ii * ldc + jj] : 0.0f) + edge[ii * w + jj];
    }
  }
  if (last_k)
    for (int64_t i = i0; i < i1; ++i)
      epilogue_row(c + i * ldc + j, cols, p.bias ? p.bias + j : nullptr, p.act);
}

// Panels [jp0, jp1) of a packed B block (panel jp at bblock + (jp - jb) * kc * kNR, output columns
// from j_base + jp * kNR): two at a time where the ISA has kernel2.
void panel_run(const gemm_cpu::Kernels& kern, const GemmParams& p, int64_t kc, const float* apack,
               int64_t i0, int64_t i1, const float* bblock, int64_t jb, int64_t jp0, int64_t jp1,
               int64_t j_base, float* c, int64_t ldc, bool accumulate, bool last_k) {
  for (int64_t jp = jp0; jp < jp1;) {
    const int np = kern.kernel4 && jp + 4 <= jp1 ? 4 : kern.kernel2 && jp + 2 <= jp1 ? 2 : 1;
    panel_column(kern, p, kc, apack, i0, i1, bblock + (jp - jb) * kc * kNR, np, j_base + jp * kNR,
                 c, ldc, accumulate, last_k);
    jp += np;
  }
}

// From kRowsMinM rows, with float32 B stored [N, K] and a row-major-A micro-kernel: the rows
// engine of gemm_rows.h with B's rows read in place (streamed once, never packed or transposed).
// The rows of x past the whole 16-row panels (M % 16) take dot_t on the same rows of B right
// after the panels, while those rows are in L2. A task owns kRowsGroups groups of two kMR-row
// strips (12 rows of B: three of dot_t's 4-row blocks) and finishes a strip over all of K before
// the next, so each row of B is read front to back (the hardware prefetcher follows). The last
// N % 12 rows of B take dot_t. quant_ticks K = N = 4096, 2 threads, against dot_t alone: M = 16
// +34%, 32 +29%, 48 +25%.
constexpr int64_t kRowsGroups = 4;

Status rows_path(const GemmParams& p, const gemm_cpu::Kernels& kern, const float* x, int64_t ldx,
                 float* c, int64_t ldc) {
  using gemm_cpu::kRowsTile;
  const int64_t M = p.M, N = p.N, K = p.K, P = M / kNR, rem = M - P * kNR;
  CallerBuffer xp_buffer(size_t(P * K * kNR) * sizeof(float));
  float* xp = static_cast<float*>(xp_buffer.get());
  if (!xp) return Status(StatusCode::oom, "gemm: out of memory for the x panels");
  gemm_cpu::rows_pack_x(x, ldx, P, K, xp);
  constexpr int64_t kGroupRows = 2 * kMR, kDotKC = 1024;
  const int64_t groups = N / kGroupRows, n_main = groups * kGroupRows;
  const int64_t n_tasks = std::max<int64_t>(1, ceil_div(groups, kRowsGroups));
  const int64_t flops = 2 * M * N * K;
  const int use_threads = flops < (int64_t(1) << 21) ? 1 : p.max_threads;
  const float* b = static_cast<const float*>(p.b);
  // c[m, n] = dot(x[m], B[n]) over all of K for rows [m0, m0 + rows) of x and [n0, n1) of B.
  auto dot_rows = [&](int64_t m0, int64_t rows, int64_t n0, int64_t n1) {
    for (int64_t k0 = 0; k0 < K; k0 += kDotKC)
      kern.dot_t(x + m0 * ldx, ldx, rows, p.b, p.b_dtype, p.ldb, k0, std::min(K, k0 + kDotKC),
                 n0, n1, c + m0 * ldc, ldc, k0 > 0);
  };
  std::atomic<bool> oom{false};
  parallel_for(
      n_tasks,
      [&](int64_t t, int) {
        const int64_t g0 = t * kRowsGroups, g1 = std::min(groups, g0 + kRowsGroups);
        float* ct = static_cast<float*>(scratch_get(0, size_t(2 * P * kRowsTile) * sizeof(float)));
        if (!ct) { oom.store(true); return; }
        for (int64_t g = g0; g < g1; ++g) {
          const int64_t n0 = g * kGroupRows;
          gemm_cpu::rows_tiles(kern, b + n0 * p.ldb, p.ldb, 2, xp, P, K, 0, K, ct, false);
          gemm_cpu::rows_store(kern, ct, 2, P, c, ldc, n0);
          if (rem) dot_rows(P * kNR, rem, n0, n0 + kGroupRows);
        }
        int64_t n1 = g1 * kGroupRows;
        if (t == n_tasks - 1 && n_main < N) {  // the last N % 12 rows of B
          dot_rows(0, M, n_main, N);
          n1 = N;
        }
        const int64_t nb = std::min(g0 * kGroupRows, n1);
        for (int64_t m = 0; m < M; ++m)
          epilogue_row(c + m * ldc + nb, n1 - nb, p.bias ? p.bias + nb : nullptr, p.act);
      },
      use_threads);
  return oom.load() ? Status(StatusCode::oom, "gemm: out of scratch memory") : Status::Ok();
}

// Few rows against B stored [N, K] (linear at decode): dot products straight from the rows of B.
// Packing would transpose every weight once per call for only a few rows of x to use it, so
// here B is read once, in long contiguous runs, and never written. K is cut into chunks only as
// far as the rows of x need to stay in L2 (kDotXBytes): each chunk restarts every row of B's
// stream, and chunks of 1024 (a 4 KiB page of each of 32 rows, then the next page) read B at
// 25-44 GB/s where whole rows read 30-49 (gemm loop, Zen 5, 2 threads, N = K = 4096: M = 2 1.55
// -> 1.47 ms, 4 1.41 -> 1.38, 8 2.28 -> 1.90-2.20, 12 2.60 -> 2.05; K = 14336, M = 2 6.6 -> 5.3).
constexpr int64_t kDotMaxM = 48;
constexpr int64_t kDotXBytes = 256 << 10;
// float32 B: up to this many rows the rows engine (dot_path -> rows_path) where the table pairs
// its panels (kernel2_rows), not the blocked path's packing of all of B. Zen 5, K = N = 4096, B
// from memory, Node, 2 rounds: M = 64 10.0-11.2 -> 7.8 ms, 96 12.6-13.9 -> 11.5-11.7, 128
// 15.6-17.6 -> 15.0-15.4, 192 21.4-24.0 -> 23.0-23.2, 256 even.
constexpr int64_t kRowsPairMaxM = 128;

Status dot_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  std::vector<float> xbuf;
  int64_t ldx;
  const float* x = rows_as_f32(p, xbuf, &ldx);
  if (p.M >= gemm_cpu::kRowsMinM && p.b_dtype == DType::float32 && kern.kernel_rows)
    return rows_path(p, kern, x, ldx, c, ldc);
  const int64_t nchunk = 32;
  const int64_t kchunk = std::max<int64_t>(1024, kDotXBytes / (4 * p.M) / 16 * 16);
  // one thread for tiny products; one row (decode) by the bytes of B, as gemv_path: 2 MiB of B
  // took 29-31 us on two threads and 33-39 on one
  const int64_t flops = 2 * p.M * p.N * p.K;
  const bool tiny = p.M == 1 ? p.N * p.K < (1 << 15) : flops < (int64_t(1) << 21);
  const int use_threads = tiny ? 1 : p.max_threads;
  parallel_for(
      ceil_div(p.N, nchunk),
      [&](int64_t t, int) {
        const int64_t n0 = t * nchunk, n1 = std::min(p.N, n0 + nchunk);
        for (int64_t k0 = 0; k0 < p.K; k0 += kchunk)
          kern.dot_t(x, ldx, p.M, p.b, p.b_dtype, p.ldb, k0, std::min(p.K, k0 + kchunk), n0, n1, c,
                     ldc, k0 > 0);
        for (int64_t m = 0; m < p.M; ++m)
          epilogue_row(c + m * ldc + n0, n1 - n0, p.bias ? p.bias + n0 : nullptr, p.act);
      },
      use_threads);
  return Status::Ok();
}

// M up to kSmallM: one task per run of B panels packs each panel into L1-sized thread scratch
// and runs it against all M rows at once, so B is read from memory once and never written back
// (the two-phase path below packs all of B first, a pass that cannot overlap the FMAs). Every
// panel belongs to one task, so nothing is packed twice; A (M x kc, at most 256 KiB) is repacked
// per task, a few percent of the B traffic.
constexpr int64_t kSmallM = 256;

Status small_m_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  const int nthreads = pool_threads(p);
  const int64_t n_panels = ceil_div(p.N, kNR);
  const int64_t flops = 2 * p.M * p.N * p.K;
  const int use_threads = flops < (int64_t(1) << 21) ? 1 : nthreads;
  // Runs of at least 4 panels (so the A repack stays small), about 4 per thread.
  const int64_t runs = std::max<int64_t>(1, std::min<int64_t>(int64_t(use_threads) * 4, n_panels / 4));
  const int64_t run_len = ceil_div(n_panels, runs);
  const int64_t n_tasks = ceil_div(n_panels, run_len);
  const int64_t m_pad = ceil_div(p.M, kMR) * kMR;
  // B is packed kSub panels at a time (kKC x 128 floats = 128 KiB, in L2) so that packing reads
  // rows of B in 512-byte runs.
  constexpr int64_t kSub = 8;
  const size_t asz = dtype_size(p.a_dtype), bsz = dtype_size(p.b_dtype);
  std::atomic<bool> oom{false};
  parallel_for(
      n_tasks,
      [&](int64_t t, int) {
        const int64_t jp0 = t * run_len, jp1 = std::min(n_panels, jp0 + run_len);
        float* apack = static_cast<float*>(scratch_get(0, size_t(m_pad * kKC) * sizeof(float)));
        float* bsub = static_cast<float*>(scratch_get(1, size_t(kKC * kNR * kSub) * sizeof(float)));
        if (!apack || !bsub) { oom.store(true); return; }
        for (int64_t pc = 0; pc < p.K; pc += kKC) {
          const int64_t kc = std::min(kKC, p.K - pc);
          const bool last_k = pc + kc >= p.K;
          kern.pack_a(static_cast<const char*>(p.a) + asz * size_t(pc), p.a_dtype, p.lda, p.M, kc,
                      apack);
          for (int64_t js = jp0; js < jp1; js += kSub) {
            const int64_t js1 = std::min(jp1, js + kSub);
            const float* bblock;
            if (p.packed_b) {
              const PackedB& pb = *p.packed_b;
              bblock = pb.data + (pc / kKC) * kKC * pb.n_panels * kNR + js * kc * kNR;
            } else {
              const int64_t j = js * kNR, cols = std::min(p.N, js1 * kNR) - j;
              const char* src = static_cast<const char*>(p.b) +
                                bsz * size_t(p.trans_b ? j * p.ldb + pc : pc * p.ldb + j);
              kern.pack_b(src, p.b_dtype, p.ldb, p.trans_b, kc, cols, bsub);
              bblock = bsub;
            }
            panel_run(kern, p, kc, apack, 0, p.M, bblock, js, js, js1, 0, c, ldc, pc > 0, last_k);
          }
        }
      },
      use_threads);
  if (oom.load()) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");
  return Status::Ok();
}

Status blocked_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  const int64_t nc_max = std::min<int64_t>(kNC, ceil_div(p.N, kNR) * kNR);
  const int64_t m_panels = ceil_div(p.M, kMR);
  // One kc slice of all of A and one kc x nc block of B, both packed once per slice by all
  // threads together; the tiles then only read them. (Packing A per tile cost 2-6% at 1024^3 and
  // forced coarse tiles; coarse tiles left a thread idle at each of the slice barriers.)
  // (Both in one CallerBuffer, kept between calls.)
  const size_t abytes = size_t(m_panels * kMR * kKC) * sizeof(float);
  const size_t bbytes = p.packed_b ? 0 : size_t(kKC * nc_max) * sizeof(float);
  CallerBuffer packs(abytes + bbytes);
  float* apack = static_cast<float*>(packs.get());
  float* bpack = bbytes ? apack + abytes / sizeof(float) : nullptr;
  if (!apack) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");

  // Tiles: kMC rows (16 micro-panels, 96 KiB of packed A in L2) x a run of 8 B panels (128 KiB).
  // With the AVX-512 table (CPUs with 1 MiB L2 or more) twice the rows when that still leaves
  // 4 tiles a thread: each B run then feeds twice the rows per trip from L3 (Zen 5, 2 threads,
  // 1024^3: 285 -> 300-307 GFLOP/s; M = 128 unchanged).
  constexpr int64_t kRun = 8;
  const int nthreads = pool_threads(p);
  const int64_t runs_first = ceil_div(ceil_div(std::min<int64_t>(kNC, p.N), kNR), kRun);
  const bool wide = kern.isa == Isa::avx512 &&
                    ceil_div(m_panels, 2 * kMC / kMR) * runs_first >= 4 * int64_t(nthreads);
  const int64_t mpanels_per_tile = (wide ? 2 * kMC : kMC) / kMR;
  const int64_t m_tiles = ceil_div(m_panels, mpanels_per_tile);
  const int64_t n_kblocks = ceil_div(p.K, kKC);
  const size_t asz = dtype_size(p.a_dtype), bsz = dtype_size(p.b_dtype);

  for (int64_t jc = 0; jc < p.N; jc += kNC) {
    const int64_t nc = std::min(kNC, p.N - jc);
    const int64_t n_panels = ceil_div(nc, kNR);
    const int64_t n_runs = ceil_div(n_panels, kRun);
    for (int64_t kb = 0; kb < n_kblocks; ++kb) {
      const int64_t pc = kb * kKC;
      const int64_t kc = std::min(kKC, p.K - pc);
      const bool last_k = kb == n_kblocks - 1;
      // 1. pack: A (needed again only for the next jc block, so repacked there: N > kNC is rare
      //    next to M, K) in groups of 8 micro-panels, then B in groups of 4 panels.
      const int64_t a_groups = ceil_div(m_panels, 8);
      const int64_t b_groups = p.packed_b ? 0 : ceil_div(n_panels, 4);
      parallel_for(
          a_groups + b_groups,
          [&](int64_t t, int) {
            if (t < a_groups) {
              const int64_t i0 = t * 8 * kMR, rows = std::min<int64_t>(8 * kMR, p.M - i0);
              kern.pack_a(static_cast<const char*>(p.a) + asz * size_t(i0 * p.lda + pc), p.a_dtype,
                          p.lda, rows, kc, apack + i0 * kc);
            } else {
              const int64_t j0 = (t - a_groups) * 4, j1 = std::min(n_panels, j0 + 4);
              const int64_t col = jc + j0 * kNR, cols = std::min(nc, j1 * kNR) - j0 * kNR;
              const char* src = static_cast<const char*>(p.b) +
                                bsz * size_t(p.trans_b ? col * p.ldb + pc : pc * p.ldb + col);
              kern.pack_b(src, p.b_dtype, p.ldb, p.trans_b, kc, cols, bpack + j0 * kc * kNR);
            }
          },
          p.max_threads);
      const float* bblock = bpack;
      if (p.packed_b) {
        const PackedB& pb = *p.packed_b;
        bblock = pb.data + kb * kKC * pb.n_panels * kNR + (jc / kNR) * kc * kNR;
      }
      // 2. tiles: every (row tile, panel run) pair, many more than threads, so the idle time at
      //    the barrier is a small tile, not a big one.
      parallel_for(
          m_tiles * n_runs,
          [&](int64_t t, int) {
            const int64_t mt = t / n_runs, r = t % n_runs;
            const int64_t ip0 = mt * mpanels_per_tile, ip1 = std::min(m_panels, ip0 + mpanels_per_tile);
            const int64_t jp0 = r * kRun, jp1 = std::min(n_panels, jp0 + kRun);
            panel_run(kern, p, kc, apack, ip0 * kMR, std::min(p.M, ip1 * kMR), bblock, 0, jp0, jp1,
                      jc, c, ldc, pc > 0, last_k);
          },
          p.max_threads);
    }
  }
  return Status::Ok();
}

// bfloat16 A and B where the table has the bfloat16 tile (AVX512-BF16: vdpbf16ps, two exact
// products a lane into float32 sums, common/x86_avx512_bf16.h): A's rows read in place, B packed
// per kc x nc block into panels of 16 columns by pairs of k, 6 x 64 tiles (24 sums). ~1.8x the
// products a cycle of the float32 kernel, whose panels would widen both operands. K in pairs; an
// odd K's last k is a rank-1 update (float32) before the epilogue.
constexpr int64_t kBf16MinM = 32;   // fewer rows: the few-row paths (B streamed, memory bound)
constexpr int64_t kBf16KC = 512;    // k per slice (even): a panel is 16 KiB
constexpr int64_t kBf16NC = 1024;   // columns per packed block: 1 MiB of B
constexpr int64_t kBf16MC = 96;     // rows per tile (16 micro-panels)
constexpr int64_t kBf16Run = 8;     // panels per tile (two 6 x 64 tiles a micro-panel)

// An odd K's last k for the bfloat16 paths (they cover the pairs [0, K - 1)): c += A[:, K - 1]
// B[K - 1, :] (c = that when K = 1), then the epilogue.
void bf16_last_k(const GemmParams& p, float* c, int64_t ldc) {
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  const uint16_t* b = static_cast<const uint16_t*>(p.b);
  const int64_t k = p.K - 1;
  std::vector<float> blast(size_t(p.N));
  for (int64_t j = 0; j < p.N; ++j)
    blast[size_t(j)] = bf16_to_f32(p.trans_b ? b[j * p.ldb + k] : b[k * p.ldb + j]);
  parallel_for(
      p.M,
      [&](int64_t i, int) {
        const float av = bf16_to_f32(a[i * p.lda + k]);
        float* ci = c + i * ldc;
        for (int64_t j = 0; j < p.N; ++j) ci[j] = (k > 0 ? ci[j] : 0.0f) + av * blast[size_t(j)];
        epilogue_row(ci, p.N, p.bias, p.act);
      },
      p.max_threads);
}

Status bf16_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  const uint16_t* b = static_cast<const uint16_t*>(p.b);
  const int64_t K2 = p.K & ~int64_t(1);
  const int64_t nc_max = std::min(kBf16NC, ceil_div(p.N, kNR) * kNR);
  CallerBuffer packs(size_t(kBf16KC * nc_max) * sizeof(uint16_t));
  uint16_t* bpack = static_cast<uint16_t*>(packs.get());
  if (!bpack) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");
  const bool odd = p.K % 2 != 0;
  const int64_t m_tiles = ceil_div(p.M, kBf16MC);
  for (int64_t jc = 0; jc < p.N; jc += kBf16NC) {
    const int64_t nc = std::min(kBf16NC, p.N - jc), n_panels = ceil_div(nc, kNR);
    const int64_t n_runs = ceil_div(n_panels, kBf16Run);
    for (int64_t pc = 0; pc < K2; pc += kBf16KC) {
      const int64_t kc = std::min(kBf16KC, K2 - pc), panel = kc * kNR;
      const bool last_k = pc + kc == K2 && !odd;
      parallel_for(
          ceil_div(n_panels, 4),
          [&](int64_t t, int) {
            const int64_t j0 = 4 * t, col = jc + j0 * kNR;
            const int64_t cols = std::min(nc, (j0 + 4) * kNR) - j0 * kNR;
            kern.pack_b_bf16(b + (p.trans_b ? col * p.ldb + pc : pc * p.ldb + col), p.ldb,
                             p.trans_b, kc, cols, bpack + j0 * panel);
          },
          p.max_threads);
      parallel_for(
          m_tiles * n_runs,
          [&](int64_t t, int) {
            const int64_t i0 = (t / n_runs) * kBf16MC, i1 = std::min(p.M, i0 + kBf16MC);
            const int64_t jp0 = (t % n_runs) * kBf16Run, jp1 = std::min(n_panels, jp0 + kBf16Run);
            alignas(64) uint16_t arows[kMR * kBf16KC];  // a last micro-panel of < kMR rows
            alignas(64) float edge[kMR * 4 * kNR];
            for (int64_t i = i0; i < i1; i += kMR) {
              const int64_t rr = std::min<int64_t>(kMR, i1 - i);
              int64_t lda = p.lda;
              const uint16_t* ap =
                  gemm_cpu::tile_bf16_rows(a + i * p.lda + pc, &lda, rr, kc, arows);
              for (int64_t jp = jp0; jp < jp1; jp += 4) {
                const int64_t np = std::min<int64_t>(4, jp1 - jp), j = jc + jp * kNR;
                const int64_t cols = std::min(np * kNR, p.N - j);
                float* ct = c + i * ldc + j;
                if (rr == kMR && cols == np * kNR) {
                  kern.tile_bf16(kc / 2, ap, lda, bpack + jp * panel, panel, np, ct, ldc, pc > 0,
                                 1.0f);
                  continue;
                }
                kern.tile_bf16(kc / 2, ap, lda, bpack + jp * panel, panel, np, edge, 4 * kNR,
                               false, 1.0f);
                for (int64_t ii = 0; ii < rr; ++ii)
                  for (int64_t jj = 0; jj < cols; ++jj) {
                    float& dst = ct[ii * ldc + jj];
                    dst = (pc > 0 ? dst : 0.0f) + edge[ii * 4 * kNR + jj];
                  }
              }
            }
            if (last_k) {
              const int64_t j = jc + jp0 * kNR, cols = std::min(jp1 * kNR, nc) - jp0 * kNR;
              for (int64_t i = i0; i < i1; ++i)
                epilogue_row(c + i * ldc + j, cols, p.bias ? p.bias + j : nullptr, p.act);
            }
          },
          p.max_threads);
    }
  }
  if (odd) bf16_last_k(p, c, ldc);
  return Status::Ok();
}

// bfloat16 A and B on AMX tiles (gemm_x86_amx.cc) where the CPU and the OS offer them: B
// packed per kAmxKC x kAmxNC block into the same panels as bf16_path (each padded with zero
// pairs to whole tiles of 16), then tasks of 32 rows x kAmxRun panels, each packing its rows of
// A into tile order once a slice and running 2 x 2 tiles (32 x 32 of C) over it. K in pairs; an
// odd K's last k as bf16_path.
constexpr int64_t kAmxMinM = 16;  // fewer rows: the few-row paths
constexpr int64_t kAmxKC = 512;   // k per slice: a panel is 16 KiB, a packed A block 32 KiB
constexpr int64_t kAmxNC = 1024;  // columns per packed block: 1 MiB of B
constexpr int64_t kAmxRun = 16;   // panels per task

Status amx_bf16_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  const uint16_t* b = static_cast<const uint16_t*>(p.b);
  const int64_t K2 = p.K & ~int64_t(1);
  const int64_t nc_max = std::min(kAmxNC, ceil_div(p.N, kNR) * kNR);
  CallerBuffer packs(size_t(kAmxKC * nc_max) * sizeof(uint16_t));
  uint16_t* bpack = static_cast<uint16_t*>(packs.get());
  if (!bpack) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");
  const bool odd = p.K % 2 != 0;
  const int64_t m_blocks = ceil_div(p.M, gemm_cpu::kAmxRows);
  for (int64_t jc = 0; jc < p.N; jc += kAmxNC) {
    const int64_t nc = std::min(kAmxNC, p.N - jc), n_panels = ceil_div(nc, kNR);
    const int64_t n_runs = ceil_div(n_panels, kAmxRun);
    for (int64_t pc = 0; pc < K2; pc += kAmxKC) {
      const int64_t kc = std::min(kAmxKC, K2 - pc), kc32 = ceil_div(kc, 32) * 32;
      const int64_t panel = kc32 * kNR;
      const bool last_k = pc + kc == K2 && !odd;
      parallel_for(
          n_panels,
          [&](int64_t jp, int) {
            const int64_t col = jc + jp * kNR, cols = std::min<int64_t>(kNR, p.N - col);
            uint16_t* dst = bpack + jp * panel;
            kern.pack_b_bf16(b + (p.trans_b ? col * p.ldb + pc : pc * p.ldb + col), p.ldb,
                             p.trans_b, kc, cols, dst);
            std::fill(dst + kc * kNR, dst + panel, uint16_t(0));
          },
          p.max_threads);
      parallel_for(
          m_blocks * n_runs,
          [&](int64_t t, int) {
            const int64_t i = (t / n_runs) * gemm_cpu::kAmxRows;
            const int64_t rows = std::min(gemm_cpu::kAmxRows, p.M - i);
            const int64_t jp0 = (t % n_runs) * kAmxRun, jp1 = std::min(n_panels, jp0 + kAmxRun);
            alignas(64) uint16_t ap[gemm_cpu::kAmxRows * kAmxKC];
            gemm_cpu::amx_pack_a(a + i * p.lda + pc, p.lda, rows, kc, ap);
            const int64_t j = jc + jp0 * kNR, cols = std::min(jp1 * kNR, nc) - jp0 * kNR;
            gemm_cpu::amx_bf16_block(ap, kc32 / 32, bpack + jp0 * panel, panel, jp1 - jp0,
                                     c + i * ldc + j, ldc, rows, cols, pc > 0);
            if (last_k)
              for (int64_t r = i; r < i + rows; ++r)
                epilogue_row(c + r * ldc + j, cols, p.bias ? p.bias + j : nullptr, p.act);
          },
          p.max_threads);
    }
  }
  if (odd) bf16_last_k(p, c, ldc);
  return Status::Ok();
}

// Linear's bfloat16 weight [N, K] (trans_b) on AMX with K % 32 == 0: C^T = W X^T, the weight rows
// read in place as the A tiles (never packed), x packed once as the B panels (pack_b_bf16 by
// pairs of k), a task per 32 weight rows over all of x and K. A tile of 16 weight rows 8 KiB
// apart (K = 4096) loads them from one L1 set: a standalone loop ran 2.19 TFLOP/s on them
// against 2.53 packed, where packing the weight each call cost as much as the products (K = N =
// 4096, M = 128: amx_bf16_path 9.6-10.8 ms, half of it pack_pairs_of_rows).
Status amx_bf16_wrows_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c,
                           int64_t ldc) {
  const uint16_t* w = static_cast<const uint16_t*>(p.b);
  const int64_t K = p.K, steps = K / 32, x_panels = ceil_div(p.M, kNR), panel = K * kNR;
  const size_t xbytes = size_t(x_panels * panel) * sizeof(uint16_t);
  CallerBuffer xbuf(xbytes);
  uint16_t* xpack = static_cast<uint16_t*>(xbuf.get());
  if (!xpack) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");
  parallel_for(
      x_panels,
      [&](int64_t t, int) {
        kern.pack_b_bf16(static_cast<const uint16_t*>(p.a) + t * kNR * p.lda, p.lda, true, K,
                         std::min<int64_t>(kNR, p.M - t * kNR), xpack + t * panel);
      },
      p.max_threads);
  const int64_t blocks = ceil_div(p.N, gemm_cpu::kAmxRows);
  parallel_for(
      blocks,
      [&](int64_t b, int) {
        const int64_t n0 = b * gemm_cpu::kAmxRows, rows = std::min(gemm_cpu::kAmxRows, p.N - n0);
        gemm_cpu::amx_bf16_wrows(w + n0 * p.ldb, p.ldb, rows, steps, xpack, panel, p.M, c + n0,
                                 ldc);
        for (int64_t m = 0; m < p.M; ++m)
          epilogue_row(c + m * ldc + n0, rows, p.bias ? p.bias + n0 : nullptr, p.act);
      },
      p.max_threads);
  return Status::Ok();
}

// Linear's bfloat16 weight [N, K] (trans_b) up to kBf16RowsMaxM rows: C^T = W X^T, so the
// weight is the operand read in place (its rows' k pairs broadcast) and x is the one packed (16
// rows of x a panel, by pairs of k: M x K, where the path above packs all of N x K per call). A
// task owns kBf16RowsGroup rows of W and runs, per k slice, every 6-row block of them against
// every quad of x panels into a transposed float32 block of its own (its rows of W x all of M),
// written into C with the epilogue at the end (gemm_rows.h rows_tiles_bf16). Node, K = N =
// 4096, 2 threads, against the packed path: M = 32 6.5-7.2 -> 2.1-2.2 ms, 128 11.7 -> 6.2 (690
// GFLOP/s), 512 31.8-32.4 -> 25.6, 1024 56-57 -> 54-55; 2048 slower (x's slices past L2).
constexpr int64_t kBf16RowsMaxM = 1024;
constexpr int64_t kBf16RowsGroup = 48;  // rows of W a task (8 micro-panels)

Status bf16_rows_path(const GemmParams& p, const gemm_cpu::Kernels& kern, float* c, int64_t ldc) {
  const uint16_t* w = static_cast<const uint16_t*>(p.b);
  const int64_t K2 = p.K & ~int64_t(1), Mp = ceil_div(p.M, kNR) * kNR, x_panels = Mp / kNR;
  const size_t xbytes = size_t(Mp * K2) * sizeof(uint16_t);
  CallerBuffer xbuf(xbytes);
  uint16_t* xpack = static_cast<uint16_t*>(xbuf.get());
  if (!xpack && xbytes) return Status(StatusCode::oom, "gemm: out of memory for packing buffers");
  // x in panels of 16 rows by pairs of k (each K2 * 16 elements)
  parallel_for(
      x_panels,
      [&](int64_t t, int) {
        kern.pack_b_bf16(static_cast<const uint16_t*>(p.a) + t * kNR * p.lda, p.lda, true, K2,
                         std::min<int64_t>(kNR, p.M - t * kNR), xpack + t * K2 * kNR);
      },
      p.max_threads);
  const int64_t groups = ceil_div(p.N, kBf16RowsGroup);
  parallel_for(
      groups,
      [&](int64_t g, int) {
        const int64_t n0 = g * kBf16RowsGroup, n1 = std::min(p.N, n0 + kBf16RowsGroup);
        float* ct = static_cast<float*>(scratch_get(kPartialSlot,
                                                    size_t(kBf16RowsGroup * Mp) * sizeof(float)));
        gemm_cpu::rows_tiles_bf16(kern, w + n0 * p.ldb, p.ldb, n1 - n0, xpack, x_panels, K2, ct,
                                  Mp);
        // C[m, n] = ct[n - n0, m], then bias / activation on C's rows (unless a last k remains)
        for (int64_t m = 0; m < p.M; ++m) {
          float* cm = c + m * ldc + n0;
          for (int64_t n = n0; n < n1; ++n) cm[n - n0] = K2 > 0 ? ct[(n - n0) * Mp + m] : 0.0f;
          if (p.K % 2 == 0) epilogue_row(cm, n1 - n0, p.bias ? p.bias + n0 : nullptr, p.act);
        }
      },
      p.max_threads);
  if (p.K % 2) bf16_last_k(p, c, ldc);
  return Status::Ok();
}

}  // namespace

Status gemm(const GemmParams& p) {
  TF_RETURN_IF_ERROR(validate(p));
  if (p.M == 0 || p.N == 0) return Status::Ok();
  const gemm_cpu::Kernels* kern = &gemm_cpu::kernels_for(active_isa());

  F32Out out{static_cast<float*>(p.c), p.ldc};
  if (p.c_dtype != DType::float32) {
    const size_t bytes = size_t(p.M) * size_t(p.N) * sizeof(float);
    out.owned = static_cast<float*>(aligned_alloc64(bytes));
    if (!out.owned) return Status(StatusCode::oom, "gemm: out of memory for the float32 result");
    out.c = out.owned;
    out.ldc = p.N;
  }

  if (p.K == 0) {
    for (int64_t i = 0; i < p.M; ++i) {
      std::memset(out.c + i * out.ldc, 0, size_t(p.N) * sizeof(float));
      epilogue_row(out.c + i * out.ldc, p.N, p.bias, p.act);
    }
  } else if (p.M == 1 && !p.packed_b && kern->isa != Isa::avx512) {
    // One row. The AVX-512 table has no GEMV of its own: its 16-wide few-row kernels below (dot_t,
    // gemv_n_rows) beat the 8-wide one (Node, K = N = 4096, 2 threads, 7 alternated rounds:
    // float32 linear 1.36-2.25 -> 1.16-1.56 ms, matmul b [K, N] 1.31-2.36 -> 1.27-1.70; float16
    // / bfloat16 mostly 10-20% faster; bench/NOTES.md, "Zen 5, session 20").
    TF_RETURN_IF_ERROR(gemv_path(p, *kern, out.c));
  } else if (p.a_dtype == DType::bfloat16 && p.b_dtype == DType::bfloat16 && !p.packed_b &&
             kern->pack_b_bf16 && p.M >= kAmxMinM && amx_usable(Amx::bf16)) {
    if (p.trans_b && p.K % 32 == 0)
      TF_RETURN_IF_ERROR(amx_bf16_wrows_path(p, *kern, out.c, out.ldc));
    else
      TF_RETURN_IF_ERROR(amx_bf16_path(p, *kern, out.c, out.ldc));
  } else if (p.a_dtype == DType::bfloat16 && p.b_dtype == DType::bfloat16 && !p.packed_b &&
             kern->tile_bf16 && fast_bf16_dot() && p.M >= kBf16MinM) {
    if (p.trans_b && p.M <= kBf16RowsMaxM)
      TF_RETURN_IF_ERROR(bf16_rows_path(p, *kern, out.c, out.ldc));
    else
      TF_RETURN_IF_ERROR(bf16_path(p, *kern, out.c, out.ldc));
  } else if (!p.trans_b && !p.packed_b && p.M <= kNRowsMaxM && kern->gemv_n_rows) {
    TF_RETURN_IF_ERROR(gemv_n_rows_path(p, *kern, out.c, out.ldc));
  } else if (p.trans_b && !p.packed_b && kern->dot_t &&
             (p.M <= kDotMaxM ||
              (p.M <= kRowsPairMaxM && p.b_dtype == DType::float32 && kern->kernel2_rows))) {
    TF_RETURN_IF_ERROR(dot_path(p, *kern, out.c, out.ldc));
  } else if (p.M <= kSmallM) {
    TF_RETURN_IF_ERROR(small_m_path(p, *kern, out.c, out.ldc));
  } else {
    TF_RETURN_IF_ERROR(blocked_path(p, *kern, out.c, out.ldc));
  }

  if (out.owned) {
    char* dst = static_cast<char*>(p.c);
    const size_t esz = dtype_size(p.c_dtype);
    for (int64_t i = 0; i < p.M; ++i)
      convert_from_f32(out.c + i * out.ldc, dst + esz * size_t(i * p.ldc), p.c_dtype, p.N);
  }
  return Status::Ok();
}

Status gemm_pack_b(const void* b, DType b_dtype, int64_t ldb, bool trans_b, int64_t K, int64_t N,
                   std::unique_ptr<PackedB, void (*)(PackedB*)>* out) {
  if (K <= 0 || N <= 0) return Status(StatusCode::shape, "gemm_pack_b: empty B");
  if (!dtype_is_float(b_dtype)) return Status(StatusCode::dtype, "gemm_pack_b: B must be float");
  if (!b || ldb < (trans_b ? K : N)) return Status(StatusCode::arg, "gemm_pack_b: bad b or ldb");
  const gemm_cpu::Kernels& kern = gemm_cpu::kernels_for(active_isa());
  std::unique_ptr<PackedB, void (*)(PackedB*)> pb(new PackedB(), [](PackedB* x) { delete x; });
  pb->isa = kern.isa;
  pb->K = K;
  pb->N = N;
  pb->n_panels = ceil_div(N, kNR);
  const int64_t kblocks = ceil_div(K, kKC);
  pb->bytes = size_t(K) * size_t(pb->n_panels * kNR) * sizeof(float);
  pb->data = static_cast<float*>(aligned_alloc64(pb->bytes));
  if (!pb->data) return Status(StatusCode::oom, "gemm_pack_b: out of memory");
  const size_t esz = dtype_size(b_dtype);
  // Block kb holds all panels for depth slice kb, each panel kc x kNR; same offsets gemm() uses.
  parallel_for(kblocks * pb->n_panels, [&](int64_t t, int) {
    const int64_t kb = t / pb->n_panels, jp = t % pb->n_panels;
    const int64_t pc = kb * kKC, kc = std::min(kKC, K - pc);
    const int64_t col = jp * kNR, cols = std::min<int64_t>(kNR, N - col);
    const char* src = static_cast<const char*>(b) +
                      esz * size_t(trans_b ? col * ldb + pc : pc * ldb + col);
    kern.pack_b(src, b_dtype, ldb, trans_b, kc, cols,
                pb->data + kb * kKC * pb->n_panels * kNR + jp * kc * kNR);
  });
  *out = std::move(pb);
  return Status::Ok();
}

int64_t packed_b_bytes(const PackedB* pb) { return pb ? int64_t(pb->bytes) : 0; }

}  // namespace tf
