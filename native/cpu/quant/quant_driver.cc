// Quantized linear driver: validation, activation preparation, threading over output rows, the
// prefill tiling and the epilogue, shared by every ISA (the ISA pieces are in quant_kernels.h).
//
// Paths, by M (rows of x) and activation:
//   W8A8 / W4A8 (int8 activations): x quantized per row once (quant_activations), then integer
//     tiles of weight rows x all rows of x (tile_i8 / tile_i4; at M = 1 it is the GEMV).
//   float, M <= gemv_max_rows: GEMV per row of x, int8/int4 dequantized in registers (gemv_f32),
//     over blocks of weight rows that the first row of x streams in and the others read in L2.
//   float, larger M: per task a run of weight rows is dequantized one depth slice at a time into
//     L2-sized thread scratch and reused by every row of x, through the GEMM engine's own pieces
//     (dot_t up to kDotMaxM rows, or the rows engine from 16 rows where the GEMM table has no
//     wide kernel; the packed micro-kernel above). The whole float weight is never materialised:
//     a slice is 32-36 x kDotKC (dot path) or kTileN x kKC floats (packed).
//     int4 on the dot path is dequantized in the AVX2 lane order (dequant_lanes), x reordered.
//   float, from kAmxFloatMinRows rows where the CPU has AMX-BF16: x as three bfloat16 parts, the
//     weights dequantized to bfloat16 a unit of depth at a time, tile products (exact) with
//     float32 sums (amx_float, quant_float_x86_amx.cc); ahead of both paths above.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "../gemm/gemm_kernels.h"
#include "../gemm/gemm_rows.h"
#include "quant_kernels.h"
#include "quant_rows.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/quant.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {
namespace {

using gemm_cpu::kKC;
using gemm_cpu::kMR;
using gemm_cpu::kNR;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of x up to which the float path runs the GEMV once per row over L2-resident blocks of
// weight rows rather than dequantizing slices for a tile (quant_ticks, Zen 5, 2 threads, weights
// in L3 and from memory, AVX-512 and AVX2 kernels: int4 M = 4-6 1.1-1.6x faster, M = 8 even, M =
// 16 5-15% slower; int8 M = 4-16 1.0-1.6x faster). int8 at the avx512 level (the digits GEMV of
// quant_x86_avx512.cc; K = N = 4096): one scale per row 1.2-1.7x the tiles up to 24 rows, even
// at 32; groups of 32 and 128, whose per-group work the GEMV repeats for every row, 1.1-1.9x up
// to 8 rows, even at 12, 5-15% slower at 16. When each row of x streamed the whole weight on its
// own the crossover was at 3 rows.
inline int64_t gemv_max_rows(const QuantWeight& w, Isa isa) {
  // int4 at the avx512 level: two rows of x a pass (gemv_f32_rows); against the tiles, M = 8 /
  // 12 / 16 / 24, groups of 128: 45 / 50 / 55 / 58 -> 66 / 69 / 68 / 64 MAC/tick, one scale a
  // row 46 / 49 / 56 / 61 -> 57 / 64 / 65 / 52, groups of 32 (one weight row a pass) 46 / 47 /
  // 56 / 58 -> 48 / 49 / 49 / 45
  if (w.bits == 4) {
    const int64_t gs = w.group();
    const bool pairs =
        isa == Isa::avx512 && w.K % 128 == 0 && (gs == 32 || gs == 64 || gs % 128 == 0);
    // with normal codes (fast_subnormals() false: Intel), a vpternlogd and a vsubps more per 16
    // weights: on a Sapphire-Rapids-class Xeon the tiles were ahead from M = 8 (K = N = 4096,
    // groups of 128, 2 threads: M = 4 / 8 / 12 / 16 GEMV 1.15 / 2.18 / 3.02 / 3.77 ms, tiles 1.48
    // / 1.93 / 2.38 / 2.95)
    if (!fast_subnormals()) return 6;
    return !pairs ? 6 : gs == 32 ? 12 : 16;
  }
  if (isa != Isa::avx512) return 16;
  return w.group() >= 512 ? 24 : 12;
}
// Weight rows per GEMV task: a block of quant_rows.h's kL2BlockBytes (8 to 128 rows, and at
// least 4 tasks per thread), so the rows of x after the first find it in L2 and the kernel's
// next-row prefetch runs over long calls (it stops at a call's end; from memory 128 rows of int4
// K = 4096 ran 3-10% faster than 32, quant_ticks, Zen 5).
inline int64_t gemv_block_rows(const QuantWeight& w, int threads) {
  const int64_t by_bytes = quant_cpu::rows_in_l2_block(w);
  const int64_t by_tasks = ceil_div(w.N, 4 * int64_t(std::max(1, threads)));
  return std::min<int64_t>(128, std::max<int64_t>(8, std::min(by_bytes, by_tasks) / 8 * 8));
}
constexpr int64_t kDotMaxM = 48;    // as in the GEMM driver: dot_t up to here, packed above
constexpr int64_t kRowsPairMinM = 32;   // the rows engine with paired panels: from here
constexpr int64_t kRowsPairMaxM = 192;  //   to here (tiled_float)
constexpr int64_t kTileN = 64;      // weight rows per prefill task (4 packed panels)
constexpr int64_t kDotKC = 1024;    // depth of a dequantized slice on the dot_t path
constexpr int64_t kRowsTask = 48;   // weight rows per task on the rows path (8 strips of 6)
constexpr int64_t kI8Rows = 64;     // weight rows per W8A8 / W4A8 task (64 over 16: +5% at M = 1)

Status validate_weight(const QuantWeight& w) {
  if (w.bits != 8 && w.bits != 4) return Status(StatusCode::arg, "quant: bits must be 8 or 4");
  if (w.N < 0 || w.K < 0) return Status(StatusCode::shape, "quant: negative size");
  if (w.group_size < 0 || (w.group_size > 0 && w.K % w.group_size != 0))
    return Status(StatusCode::arg, "quant: groupSize must divide K");
  if (w.bits == 4 && w.K % 2 != 0)
    return Status(StatusCode::shape, "quant: K must be even for int4");
  if (w.bits == 8 && w.zeros) return Status(StatusCode::arg, "quant: int8 weights are symmetric");
  if (w.N > 0 && w.K > 0 && (!w.q || !w.scales))
    return Status(StatusCode::arg, "quant: null buffer");
  return Status::Ok();
}

float apply_bias(float v, const float* bias, int64_t n) { return bias ? v + bias[n] : v; }

// x rows widened to float32 and gathered through perm (act-order): xf[m, j] = x[m, perm[j]].
const float* prepare_x(const QuantLinearParams& p, std::vector<float>& buf) {
  const int64_t K = p.w.K;
  if (p.x_dtype == DType::float32 && !p.w.perm) return static_cast<const float*>(p.x);
  buf.resize(size_t(p.M * K));
  std::vector<float> row(p.w.perm ? size_t(K) : 0);
  for (int64_t m = 0; m < p.M; ++m) {
    const void* src = static_cast<const char*>(p.x) + dtype_size(p.x_dtype) * size_t(m * K);
    float* dst = buf.data() + m * K;
    if (!p.w.perm) {
      convert_to_f32(src, p.x_dtype, dst, K);
    } else {
      convert_to_f32(src, p.x_dtype, row.data(), K);
      for (int64_t j = 0; j < K; ++j) dst[j] = row[size_t(p.w.perm[j])];
    }
  }
  return buf.data();
}

// Every row of x prepared once (prep_x), then tasks of gemv_block_rows weight rows, each running
// all rows of x over its rows: the block is read from memory by the first row of x and from L2
// by the others (one pass over the whole weight per row of x read it from memory M times).
void gemv_float(const QuantLinearParams& p, const quant_cpu::Kernels& kern, const float* xf,
                float* yf) {
  const QuantWeight& w = p.w;
  const int64_t K = w.K, N = w.N, M = p.M, xn = quant_cpu::prep_x_floats(K);
  std::vector<float> xd_buf(kern.prep_x ? size_t(M * xn + 15) : 0);
  float* xd = kern.prep_x ? quant_cpu::align64(xd_buf.data()) : nullptr;
  std::vector<const float*> xdp(size_t(M), nullptr);
  for (int64_t m = 0; m < M && kern.prep_x; ++m)
    if (kern.prep_x(w, xf + m * K, xd + m * xn)) xdp[size_t(m)] = xd + m * xn;
  const int use_threads = M * N * K < (int64_t(1) << 16) ? 1 : p.max_threads;
  const int nt = use_threads > 0 ? std::min(use_threads, threads()) : threads();
  const int64_t rows = gemv_block_rows(w, nt);
  std::vector<const float*> xp(static_cast<size_t>(M));
  std::vector<float*> yp(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) xp[size_t(m)] = xf + m * K, yp[size_t(m)] = yf + m * N;
  parallel_for(
      ceil_div(N, rows),
      [&](int64_t t, int) {
        const int64_t n0 = t * rows, n1 = std::min(N, n0 + rows);
        quant_cpu::gemv_rows(kern, w, xp.data(), xdp.data(), M, n0, n1, yp.data());
      },
      use_threads);
}

// Weight rows [n0, n1) x columns [k0, k1) as float32 rows of k1 - k0 at tmp, in lane order
// (x reordered to match) where `lanes`.
void dequant_slice(const quant_cpu::Kernels& kern, const QuantWeight& w, bool lanes, int64_t n0,
                   int64_t n1, int64_t k0, int64_t k1, float* tmp) {
  if (lanes)
    kern.dequant_lanes(w, n0, n1, k0, k1, tmp, k1 - k0);
  else
    kern.dequant(w, n0, n1, k0, k1, tmp, k1 - k0);
}

// Floats of rows_float's x panels.
int64_t rows_x_floats(int64_t M, int64_t K) { return M / kNR * K * kNR; }

// The rows engine (tiled_float says for how many rows of x): each task dequantizes kRowsTask
// weight rows, kDotKC deep at a time,
// into L2 and runs the rows engine of gemm_rows.h on the slice (the slice's rows are the
// micro-kernel's row-major A; x^T packed once); the M % 16 rows of x past the whole panels and
// the slice's rows past its whole 6-row strips take dot_t on the same slice. xp: room for the x
// panels (rows_x_floats).
Status rows_float(const QuantLinearParams& p, const quant_cpu::Kernels& kern,
                  const gemm_cpu::Kernels& gk, bool lanes, const float* xf, float* yf, float* xp) {
  using gemm_cpu::kRowsTile;
  const QuantWeight& w = p.w;
  const int64_t M = p.M, N = w.N, K = w.K, P = M / kNR, rem = M - P * kNR, mp = P * kNR;
  gemm_cpu::rows_pack_x(xf, K, P, K, xp);
  std::atomic<bool> oom{false};
  parallel_for(
      ceil_div(N, kRowsTask),
      [&](int64_t t, int) {
        const int64_t n0 = t * kRowsTask, n1 = std::min(N, n0 + kRowsTask), nr = n1 - n0;
        const int64_t strips = nr / kMR, n_strips = strips * kMR;
        float* tmp =
            static_cast<float*>(scratch_get(0, size_t(kRowsTask * kDotKC) * sizeof(float)));
        float* ct =
            static_cast<float*>(scratch_get(1, size_t(strips * P * kRowsTile + 1) * sizeof(float)));
        if (!tmp || !ct) { oom.store(true); return; }
        for (int64_t k0 = 0; k0 < K; k0 += kDotKC) {
          const int64_t k1 = std::min(K, k0 + kDotKC), kc = k1 - k0;
          dequant_slice(kern, w, lanes, n0, n1, k0, k1, tmp);
          gemm_cpu::rows_tiles(gk, tmp, kc, strips, xp, P, K, k0, kc, ct, k0 > 0);
          gemm_cpu::rows_edges(gk, xf + k0, K, mp, rem, tmp, kc, kc, n_strips, nr, yf + n0, N,
                               k0 > 0);
        }
        gemm_cpu::rows_store(gk, ct, strips, P, yf, N, n0);
      },
      p.max_threads);
  return oom.load() ? Status(StatusCode::oom, "quant: out of scratch memory") : Status::Ok();
}

Status tiled_float(const QuantLinearParams& p, const quant_cpu::Kernels& kern,
                   const gemm_cpu::Kernels& gk, const float* xf, float* yf) {
  const QuantWeight& w = p.w;
  const int64_t M = p.M, N = w.N, K = w.K;
  std::atomic<bool> oom{false};
  // int4 in lane order where the ISA offers it (a sum over k in any order of both operands):
  // x rows reordered once to match. On the packed path too, where the in-order dequant took 12%
  // of an M = 128 call (K = N = 4096, groups of 128) and the lane order about a third of that.
  const bool lanes = kern.dequant_lanes && w.bits == 4 && K % 64 == 0 &&
                     (w.group() % 64 == 0 || w.group() == 32);
  // The path. The rows engine (gemm_rows.h: the slice's rows as the micro-kernel's A, read in
  // place, against x^T packed once): where the GEMM table pairs panels (kernel2_rows) for 32 to
  // 192 rows (AVX-512, Zen 5, int4 g128, K = N = 4096, against dot_t / the packed path: M = 32 /
  // 48 / 64 / 96 / 128 15 / 16 / 15 / 10 / 7-12% faster, 160-192 even, 256 5% slower, 17 10%
  // slower), and where it has no wide kernel at all for 16 to kDotMaxM (AVX2 on Zen 1: int4
  // M = 16 +18%). Otherwise dot_t on dequantized slices up to kDotMaxM rows (its 4 x 6 tiles run
  // near the FMA peak on a slice in L2), and above, the packed micro-kernel.
  const bool rows = gk.kernel_rows && M >= gemm_cpu::kRowsMinM &&
                    (gk.kernel2_rows ? M >= kRowsPairMinM && M <= kRowsPairMaxM
                                     : !gk.kernel2 && M <= kDotMaxM);
  const bool dot = !rows && M <= kDotMaxM && gk.dot_t;
  const int64_t m_pad = ceil_div(M, kMR) * kMR, n_slices = ceil_div(K, kKC);
  // The op's own buffers (x in lane order, x packed), kept between calls (CallerBuffer: a fresh
  // heap block per call page-faulted; Node, int4 M = 128, K = N = 4096: 18 ms in such calls, 14.4
  // in the others).
  const size_t xl_floats = lanes ? size_t(M * K + 15) / 16 * 16 : 0;
  const size_t pack_floats =
      rows ? size_t(rows_x_floats(M, K)) : dot ? 0 : size_t(n_slices * m_pad * kKC);
  const size_t own_bytes = (xl_floats + pack_floats) * sizeof(float);
  CallerBuffer buffer(own_bytes);
  float* own = static_cast<float*>(buffer.get());
  if (own_bytes > 0 && !own) return Status(StatusCode::oom, "quant: out of memory for x buffers");
  if (lanes) {
    float* xl = own;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b = m * K; b < (m + 1) * K; b += 64)
        for (int i = 0; i < 8; ++i)
          for (int j = 0; j < 8; ++j) xl[b + 8 * j + i] = xf[b + 8 * i + j];
    xf = xl;
  }
  float* xpack = own + xl_floats;
  if (rows) return rows_float(p, kern, gk, lanes, xf, yf, xpack);
  if (dot) {
    const int64_t rows = gk.kernel2 ? 36 : 32;
    parallel_for(
        ceil_div(N, rows),
        [&](int64_t t, int) {
          const int64_t n0 = t * rows, n1 = std::min(N, n0 + rows);
          float* tmp = static_cast<float*>(scratch_get(0, size_t(rows * kDotKC) * sizeof(float)));
          if (!tmp) { oom.store(true); return; }
          for (int64_t k0 = 0; k0 < K; k0 += kDotKC) {
            const int64_t k1 = std::min(K, k0 + kDotKC), kc = k1 - k0;
            dequant_slice(kern, w, lanes, n0, n1, k0, k1, tmp);
            gk.dot_t(xf + k0, K, M, tmp, DType::float32, kc, 0, kc, 0, n1 - n0, yf + n0, N, k0 > 0);
          }
        },
        p.max_threads);
    return oom.load() ? Status(StatusCode::oom, "quant: out of scratch memory") : Status::Ok();
  }
  // Packed path: A packed once for every depth slice, shared read-only by all tasks.
  float* apack = xpack;
  parallel_for(
      n_slices,
      [&](int64_t s, int) {
        const int64_t pc = s * kKC, kc = std::min(kKC, K - pc);
        gk.pack_a(xf + pc, DType::float32, K, M, kc, apack + s * m_pad * kKC);
      },
      p.max_threads);
  parallel_for(
      ceil_div(N, kTileN),
      [&](int64_t t, int) {
        const int64_t n0 = t * kTileN, n1 = std::min(N, n0 + kTileN), nr = n1 - n0;
        float* tmp = static_cast<float*>(scratch_get(0, size_t(kTileN * kKC) * sizeof(float)));
        float* bp = static_cast<float*>(scratch_get(1, size_t(kTileN * kKC) * sizeof(float)));
        if (!tmp || !bp) { oom.store(true); return; }
        alignas(64) float edge[kMR * kNR];
        for (int64_t s = 0; s < n_slices; ++s) {
          const int64_t pc = s * kKC, kc = std::min(kKC, K - pc);
          dequant_slice(kern, w, lanes, n0, n1, pc, pc + kc, tmp);
          gk.pack_b(tmp, DType::float32, kc, true, kc, nr, bp);
          const float* as = apack + s * m_pad * kKC;
          const bool acc = s > 0;
          int64_t j = 0;
          // two whole panels at a time on the wider tile where the ISA has one (each A element
          // loaded once for twice the FMAs), whole micro-panels of x only
          if (gk.kernel2)
            for (; j + 2 * kNR <= nr; j += 2 * kNR) {
              const float* bj = bp + (j / kNR) * kc * kNR;
              int64_t i = 0;
              for (; i + kMR <= M; i += kMR)
                gk.kernel2(kc, as + i * kc, bj, bj + kc * kNR, yf + i * N + n0 + j, N, acc);
              for (int64_t h = 0; h < 2 && i < M; ++h) {
                const int64_t rr = M - i;
                float* ct = yf + i * N + n0 + j + h * kNR;
                gk.kernel(kc, as + i * kc, bj + h * kc * kNR, edge, kNR, false);
                for (int64_t ii = 0; ii < rr; ++ii)
                  for (int64_t jj = 0; jj < kNR; ++jj)
                    ct[ii * N + jj] = (acc ? ct[ii * N + jj] : 0.0f) + edge[ii * kNR + jj];
              }
            }
          for (; j < nr; j += kNR) {
            const int64_t cols = std::min<int64_t>(kNR, nr - j);
            const float* bj = bp + (j / kNR) * kc * kNR;
            for (int64_t i = 0; i < M; i += kMR) {
              const int64_t rr = std::min<int64_t>(kMR, M - i);
              float* ct = yf + i * N + n0 + j;
              if (rr == kMR && cols == kNR) {
                gk.kernel(kc, as + i * kc, bj, ct, N, acc);
              } else {
                gk.kernel(kc, as + i * kc, bj, edge, kNR, false);
                for (int64_t ii = 0; ii < rr; ++ii)
                  for (int64_t jj = 0; jj < cols; ++jj)
                    ct[ii * N + jj] = (acc ? ct[ii * N + jj] : 0.0f) + edge[ii * kNR + jj];
              }
            }
          }
        }
      },
      p.max_threads);
  return oom.load() ? Status(StatusCode::oom, "quant: out of scratch memory") : Status::Ok();
}

// Float activations on AMX-BF16 tiles where they apply (quant_float_x86_amx.cc): per chunk of
// kAmxChunkRows rows of x, the chunk packed as its three bfloat16 parts (blocks of 16 rows in
// parallel), then tasks of whole strips of weight rows, two a thread at least. (The chunks keep
// the packed parts of x, 6 bytes an element, within 6 MB at K = 4096, and a task's share of them
// in L2.) false: the call takes the other paths, which then write all of y.
constexpr int64_t kAmxChunkRows = 256;
bool amx_float(const QuantLinearParams& p, const float* xf, float* yf) {
  const QuantWeight& w = p.w;
  const int64_t M = p.M, N = w.N, K = w.K;
  if (!quant_cpu::amx_float_applies(w, M)) return false;
  const int64_t chunk = std::min(M, kAmxChunkRows);
  CallerBuffer buffer(size_t(quant_cpu::amx_float_x_elems(chunk, K)) * sizeof(uint16_t) + 64);
  if (!buffer.get()) return false;
  uint16_t* xp = quant_cpu::align64(static_cast<uint16_t*>(buffer.get()));
  const int workers = std::max(1, p.max_threads > 0 ? std::min(p.max_threads, threads())
                                                    : threads());
  const int64_t rows = std::min<int64_t>(
      quant_cpu::kAmxFloatTaskRows,
      std::max<int64_t>(32, ceil_div(ceil_div(N, 2 * workers), 32) * 32));
  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t mc = std::min(chunk, M - m0);
    const float* xc = xf + m0 * K;
    std::atomic<bool> fits{true};
    parallel_for(
        ceil_div(mc, 16),
        [&](int64_t mb, int) {
          if (!quant_cpu::amx_float_pack_x(xc, K, mc, K, mb, mb + 1, xp)) fits.store(false);
        },
        mc * K < (int64_t(1) << 15) ? 1 : p.max_threads);
    if (!fits.load()) return false;
    parallel_for(
        ceil_div(N, rows),
        [&](int64_t t, int) {
          const int64_t n0 = t * rows, n1 = std::min(N, n0 + rows);
          quant_cpu::amx_float_rows(w, xp, mc, n0, n1, yf + m0 * N + n0, N, false);
        },
        p.max_threads);
  }
  return true;
}

}  // namespace

void quant_activations(const float* x, int64_t M, int64_t K, int8_t* q, float* s) {
  const auto quant_row = quant_cpu::kernels_for(active_isa()).quant_row_i8;
  for (int64_t m = 0; m < M; ++m) s[m] = quant_row(x + m * K, K, q + m * K);
}

Status quant_linear(const QuantLinearParams& p) {
  const QuantWeight& w = p.w;
  TF_RETURN_IF_ERROR(validate_weight(w));
  if (p.M < 0) return Status(StatusCode::shape, "quant: negative M");
  if (!dtype_is_float(p.x_dtype) || !dtype_is_float(p.y_dtype))
    return Status(StatusCode::dtype, "quant: x and y must be float32, float16 or bfloat16");
  if (p.act == QuantActivation::int8 && w.group() > quant_cpu::kMaxI8Group)
    return Status(StatusCode::unsupported,
                  "quant: int8 activations need groups of at most 65536 (int32 sums)");
  const int64_t M = p.M, N = w.N, K = w.K;
  if (M == 0 || N == 0) return Status::Ok();
  // float32 result: y itself or a temporary when y is 16-bit.
  std::vector<float> ybuf;
  float* yf = static_cast<float*>(p.y);
  if (p.y_dtype != DType::float32) {
    ybuf.resize(size_t(M * N));
    yf = ybuf.data();
  }
  if (K == 0) {
    std::fill(yf, yf + M * N, 0.0f);
  } else {
    const Isa isa = active_isa();
    const quant_cpu::Kernels& kern = quant_cpu::kernels_for(isa);
    std::vector<float> xbuf;
    const float* xf = prepare_x(p, xbuf);
    if (p.act == QuantActivation::int8) {
      std::vector<int8_t> xq(static_cast<size_t>(M * K));
      std::vector<float> sx(static_cast<size_t>(M));
      // W4A8: the rows of xq also in the nibble order, and their group sums (for z * xsum)
      const bool lanes = quant_cpu::i8_rows_lane_order(w);
      const int64_t sums = quant_cpu::i8_rows_sums(w);
      std::vector<int8_t> xl(lanes ? size_t(M * K) : 0);
      std::vector<int32_t> xsum(size_t(M * sums));
      const int use_threads = M * N * K < (int64_t(1) << 16) ? 1 : p.max_threads;
      // rows of x quantized and prepared in parallel (serial, they were 0.1-0.2 ms of a 2 ms
      // M = 128, K = N = 4096 call on AMX)
      constexpr int64_t kPrepRows = 8;
      parallel_for(
          ceil_div(M, kPrepRows),
          [&](int64_t t, int) {
            const int64_t m0 = t * kPrepRows, m1 = std::min(M, m0 + kPrepRows);
            quant_activations(xf + m0 * K, m1 - m0, K, xq.data() + m0 * K, sx.data() + m0);
            quant_cpu::i8_rows_prepare(w, xq.data() + m0 * K, m1 - m0,
                                       lanes ? xl.data() + m0 * K : nullptr,
                                       xsum.data() + m0 * sums);
          },
          M * K < (int64_t(1) << 15) ? 1 : use_threads);
      // AMX tiles pack x once a task: two tasks a thread, in whole strips
      const int workers =
          std::max(1, use_threads > 0 ? std::min(use_threads, threads()) : threads());
      const int64_t rows_task =
          quant_cpu::amx_w8a8_applies(w, M)
              ? std::max<int64_t>(32, ceil_div(ceil_div(N, 2 * int64_t(workers)), 32) * 32)
              : kI8Rows;
      parallel_for(
          ceil_div(N, rows_task),
          [&](int64_t t, int) {
            const int64_t n0 = t * rows_task, n1 = std::min(N, n0 + rows_task);
            quant_cpu::i8_rows_gemv(kern, w, xq.data(), xl.data(), xsum.data(), sx.data(), M, n0, n1,
                                    yf, N);
          },
          use_threads);
    } else if (!amx_float(p, xf, yf)) {
      if (M <= gemv_max_rows(w, isa))
        gemv_float(p, kern, xf, yf);
      else
        TF_RETURN_IF_ERROR(tiled_float(p, kern, gemm_cpu::kernels_for(isa), xf, yf));
    }
  }
  if (p.bias)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) yf[m * N + n] = apply_bias(yf[m * N + n], p.bias, n);
  if (p.y_dtype != DType::float32) convert_from_f32(yf, p.y, p.y_dtype, M * N);
  return Status::Ok();
}

Status quant_quantize(const float* w, int64_t R, int64_t K, int bits, int64_t group_size,
                      bool symmetric, void* q, float* scales, uint8_t* zeros, int max_threads) {
  if (bits != 8 && bits != 4) return Status(StatusCode::arg, "quantize: bits must be 8 or 4");
  if (group_size < 0 || (group_size > 0 && K % group_size != 0))
    return Status(StatusCode::arg, "quantize: groupSize must divide K");
  if (bits == 4 && K % 2 != 0)
    return Status(StatusCode::shape, "quantize: K must be even for int4");
  if (bits == 8 && !symmetric) return Status(StatusCode::arg, "quantize: int8 is symmetric only");
  if (R == 0 || K == 0) return Status::Ok();
  const int64_t gs = group_size > 0 ? group_size : K, G = K / gs;
  std::atomic<bool> overflow{false};
  parallel_for(
      R,
      [&](int64_t r, int) {
        const float* wr = w + r * K;
        for (int64_t g = 0; g < G; ++g) {
          const float* wg = wr + g * gs;
          float lo = 0.0f, hi = 0.0f;
          for (int64_t k = 0; k < gs; ++k) {
            lo = std::min(lo, wg[k]);
            hi = std::max(hi, wg[k]);
          }
          float s;
          int z = 0;
          const float amax = std::max(-lo, hi);
          if (symmetric) {
            s = amax > 0.0f ? amax / (bits == 8 ? 127.0f : 7.0f) : 1.0f;
            z = bits == 8 ? 0 : 8;
          } else if (hi > lo) {
            // z first (the integer nearest to where 0 falls in [lo, hi]; in double, where
            // -lo * 15 and hi - lo cannot overflow), then the smallest s that keeps every w
            // within half a step of [0, 15]: the error stays <= s / 2.
            z = int(std::nearbyint(-double(lo) * 15.0 / (double(hi) - double(lo))));
            z = std::min(15, std::max(0, z));
            s = std::max(hi / (15.5f - float(z)), -lo / (float(z) + 0.5f));
          } else {
            s = 1.0f;
            z = 8;
          }
          if (!std::isfinite(s)) {
            overflow.store(true);
            s = 1.0f;
          } else if (s == 0.0f) {
            // max |w| so small (below ~1e-43) that its scale underflows float32: the group is
            // stored as zeros (as an all-zero group is), an absolute error under 1e-43.
            s = 1.0f;
            z = bits == 8 ? 0 : 8;
          }
          scales[r * G + g] = s;
          if (zeros) zeros[r * G + g] = uint8_t(z);
          const float qmin = bits == 8 ? -127.0f : 0.0f, qmax = bits == 8 ? 127.0f : 15.0f;
          for (int64_t k = 0; k < gs; ++k) {
            float v = std::nearbyint(wg[k] / s) + float(z);
            v = std::min(qmax, std::max(qmin, v));
            const int64_t kk = g * gs + k;
            if (bits == 8) {
              static_cast<int8_t*>(q)[r * K + kk] = int8_t(v);
            } else {
              uint8_t* b = static_cast<uint8_t*>(q) + r * (K / 2) + kk / 2;
              const uint8_t u = uint8_t(v);
              *b = (kk & 1) ? uint8_t((*b & 0x0f) | (u << 4)) : uint8_t((*b & 0xf0) | u);
            }
          }
        }
      },
      R * K < (int64_t(1) << 16) ? 1 : max_threads);
  if (overflow.load())
    return Status(StatusCode::arg,
                  "quantize: argument 'w': a group's scale overflows float32 (values near "
                  "float32's largest magnitude)");
  return Status::Ok();
}

Status quant_dequantize(const QuantWeight& w, float* out, int max_threads) {
  TF_RETURN_IF_ERROR(validate_weight(w));
  if (w.N == 0 || w.K == 0) return Status::Ok();
  const quant_cpu::Kernels& kern = quant_cpu::kernels_for(active_isa());
  std::atomic<bool> oom{false};
  parallel_for(
      w.N,
      [&](int64_t n, int) {
        if (!w.perm) {
          kern.dequant(w, n, n + 1, 0, w.K, out + n * w.K, w.K);
          return;
        }
        float* row = static_cast<float*>(scratch_get(0, size_t(w.K) * sizeof(float)));
        if (!row) { oom.store(true); return; }
        kern.dequant(w, n, n + 1, 0, w.K, row, w.K);
        for (int64_t j = 0; j < w.K; ++j) out[n * w.K + w.perm[j]] = row[j];
      },
      w.N * w.K < (int64_t(1) << 16) ? 1 : max_threads);
  return oom.load() ? Status(StatusCode::oom, "dequantize: out of scratch memory") : Status::Ok();
}

Status quant_unpack(QuantFormat format, const void* src, int64_t N, int64_t K, void* dst,
                    int max_threads) {
  if (N < 0 || K < 0) return Status(StatusCode::shape, "unpack: negative size");
  const bool blocks = format == QuantFormat::q4_0 || format == QuantFormat::q8_0;
  if ((format == QuantFormat::gptq && K % 8 != 0) || (format == QuantFormat::awq && N % 8 != 0) ||
      (blocks && K % 32 != 0) || K % 2 != 0)
    return Status(StatusCode::shape, "unpack: sizes do not fit the format");
  if (N == 0 || K == 0) return Status::Ok();
  static const int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  const uint32_t* w32 = static_cast<const uint32_t*>(src);
  const uint8_t* b8 = static_cast<const uint8_t*>(src);
  parallel_for(
      N,
      [&](int64_t n, int) {
        if (format == QuantFormat::q8_0) {
          int8_t* o = static_cast<int8_t*>(dst) + n * K;
          for (int64_t b = 0; b < K / 32; ++b)
            std::memcpy(o + b * 32, b8 + (n * (K / 32) + b) * 34 + 2, 32);
          return;
        }
        uint8_t* o = static_cast<uint8_t*>(dst) + n * (K / 2);
        auto code = [&](int64_t k) -> uint32_t {
          switch (format) {
            case QuantFormat::gptq: return (w32[(k / 8) * N + n] >> (4 * (k % 8))) & 15u;
            case QuantFormat::awq:
              return (w32[k * (N / 8) + n / 8] >> (4 * kAwqNibble[n % 8])) & 15u;
            default: {  // q4_0: block element j < 16 low nibble of qs[j], j >= 16 high of qs[j-16]
              const uint8_t* qs = b8 + (n * (K / 32) + k / 32) * 18 + 2;
              const int64_t j = k % 32;
              return j < 16 ? qs[j] & 15u : uint32_t(qs[j - 16] >> 4);
            }
          }
        };
        for (int64_t k = 0; k < K; k += 2) o[k / 2] = uint8_t(code(k) | (code(k + 1) << 4));
      },
      N * K < (int64_t(1) << 16) ? 1 : max_threads);
  return Status::Ok();
}

Status quant_permute4(const uint8_t* src, int64_t N, int64_t K, const int32_t* perm, uint8_t* dst,
                      int max_threads) {
  if (N < 0 || K < 0 || K % 2 != 0) return Status(StatusCode::shape, "permute: bad sizes");
  for (int64_t j = 0; j < K; ++j)
    if (perm[j] < 0 || perm[j] >= K) return Status(StatusCode::arg, "permute: index out of range");
  parallel_for(
      N,
      [&](int64_t n, int) {
        const uint8_t* s = src + n * (K / 2);
        uint8_t* o = dst + n * (K / 2);
        for (int64_t j = 0; j < K; j += 2) {
          const int64_t a = perm[j], b = perm[j + 1];
          const int ua = (s[a >> 1] >> ((a & 1) * 4)) & 15, ub = (s[b >> 1] >> ((b & 1) * 4)) & 15;
          o[j / 2] = uint8_t(ua | (ub << 4));
        }
      },
      N * K < (int64_t(1) << 16) ? 1 : max_threads);
  return Status::Ok();
}

}  // namespace tf
