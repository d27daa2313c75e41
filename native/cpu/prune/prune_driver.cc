// Sparse linear driver: validation, x widening / panel transpose, tiling, threading, bias and
// the output conversion, shared by every ISA (the ISA pieces are in prune_kernels.h).
//
//   M < kPanelMinM (2:4 with lanes: kLanesPanelMinM): the GEMV, tasks of 64 output columns
//     holding every row of x (a weight row read once for several rows of x);
//   from there (2:4 through its lane words, other n:m through the indices): x transposed once
//   into 8-, 16-, 32- or 64-row panels (prune_kernels.h); each task owns kNB output columns and
//   walks K in blocks of kKB lane words (128 columns: a 32-row panel's slice is 16 KiB, in L1;
//   32 KiB slices with the AVX-512 table) and,
//   inside a block, every panel against the task's columns (their kept weights, about 18 KiB
//   for 2:4 float32, stay in L2 across the panels).
// Every output is summed by one thread in a fixed order, so results do not depend on threads.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "prune_kernels.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/prune.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {

using prune_cpu::SparseView;

namespace {

constexpr int64_t kNB = 64;   // output columns per panel-path task
constexpr int64_t kKB = 8;    // lane words per K block (128 columns of x: a 32-row panel's slice is 16 KiB)
constexpr int64_t kRowChunk = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// x row m widened to float32 (a view when x is float32 already).
const float* x_row(const SparseLinearParams& p, int64_t m, float* buf) {
  if (p.x_dtype == DType::float32) return static_cast<const float*>(p.x) + m * p.K;
  convert_to_f32(static_cast<const char*>(p.x) + dtype_size(p.x_dtype) * size_t(m * p.K),
                 p.x_dtype, buf, p.K);
  return buf;
}

void add_bias(float* y, const float* bias, int64_t n) {
  if (bias)
    for (int64_t j = 0; j < n; ++j) y[j] += bias[j];
}

Status row_path(const SparseLinearParams& p, const prune_cpu::Kernels& kern, const SparseView& w,
                float* y, int use_threads) {
  std::vector<float> xbuf;
  std::vector<const float*> rows(size_t(p.M)), srows(size_t(p.M), nullptr);
  if (p.x_dtype != DType::float32) xbuf.resize(size_t(p.M * p.K));
  const int64_t xs_size = w.words * 16;  // a multiple of 16 floats: every row's copy stays 64-byte aligned
  std::unique_ptr<float, decltype(&aligned_free64)> xsbuf(
      w.lanes ? static_cast<float*>(aligned_alloc64(size_t(p.M * xs_size) * sizeof(float))) : nullptr,
      aligned_free64);
  if (w.lanes && !xsbuf) return Status(StatusCode::oom, "linear: out of memory for x");
  for (int64_t m = 0; m < p.M; ++m) {
    rows[size_t(m)] = x_row(p, m, xbuf.data() + (xbuf.empty() ? 0 : m * p.K));
    if (w.lanes) {
      float* xs = xsbuf.get() + m * xs_size;
      prune_cpu::swizzle_x(rows[size_t(m)], w.words, xs);
      srows[size_t(m)] = xs;
    }
  }
  const int64_t chunks = ceil_div(p.N, kRowChunk);
  parallel_for(
      chunks,
      [&](int64_t t, int) {
        const int64_t n0 = t * kRowChunk, n1 = std::min(p.N, n0 + kRowChunk);
        kern.gemv(rows.data(), srows.data(), p.M, w, n0, n1, y, p.N);
        if (p.bias)
          for (int64_t m = 0; m < p.M; ++m) add_bias(y + m * p.N + n0, p.bias + n0, n1 - n0);
      },
      use_threads);
  return Status::Ok();
}

Status panel_path(const SparseLinearParams& p, const prune_cpu::Kernels& kern, const SparseView& w,
                  float* y, int use_threads) {
  // 32-row panels unless that pads more than 15 rows (M = 16..31, 48, ...): then 16; 8 for M <= 8;
  // 64 where the kernels take it and it pads fewer than 32 rows (half the broadcasts and position
  // decodes per FMA of 32).
  auto pads = [&](int64_t r) { return ceil_div(p.M, r) * r - p.M; };
  const bool wide = kern.max_pr_f32 >= 64 && w.dt == DType::float32 && w.lanes;
  const int pr = p.M <= 8                       ? 8
                 : wide && p.M >= 64 && pads(64) < 32 ? 64
                 : p.M >= 32 && pads(32) < 16   ? 32
                                                : 16;
  // K blocks of lane words: kKB (a 32-row panel's slice is 16 KiB, in L1), or, with the AVX-512
  // table, 32 KiB slices at every panel height (the L1D of Zen 5 and of Intel since Ice Lake is
  // 48 KiB; measured on Zen 5: M = 16..32 8-10% faster than kKB, M = 128 5-10%)
  const int64_t kb_words = wide ? kKB * 64 / pr : kKB;
  const int64_t P = ceil_div(p.M, pr);
  const int64_t K = p.K;
  float* xt = static_cast<float*>(aligned_alloc64(size_t(P * K * pr) * sizeof(float)));
  if (!xt) return Status(StatusCode::oom, "linear: out of memory for the sparse x panels");
  // Transpose x into panels, widening to float32; rows past M are zero.
  const int64_t kcol = 512, kparts = ceil_div(K, kcol);
  parallel_for(
      P * kparts,
      [&](int64_t t, int) {
        const int64_t pi = t / kparts, k0 = (t % kparts) * kcol, k1 = std::min(K, k0 + kcol);
        float* dst = xt + pi * K * pr;
        float buf[512];
        for (int r = 0; r < pr; ++r) {
          const int64_t m = pi * pr + r;
          if (m >= p.M) {
            for (int64_t k = k0; k < k1; ++k) dst[k * pr + r] = 0.0f;
            continue;
          }
          const float* src;
          if (p.x_dtype == DType::float32) {
            src = static_cast<const float*>(p.x) + m * K + k0;
          } else {
            convert_to_f32(static_cast<const char*>(p.x) + dtype_size(p.x_dtype) * size_t(m * K + k0),
                           p.x_dtype, buf, k1 - k0);
            src = buf;
          }
          for (int64_t k = k0; k < k1; ++k) dst[k * pr + r] = src[k - k0];
        }
      },
      use_threads);

  std::atomic<bool> oom{false};
  parallel_for(
      ceil_div(p.N, kNB),
      [&](int64_t t, int) {
        const int64_t n0 = t * kNB, n1 = std::min(p.N, n0 + kNB), nb = n1 - n0;
        float* ct = static_cast<float*>(scratch_get(0, size_t(P * kNB * pr) * sizeof(float)));
        if (!ct) { oom.store(true); return; }
        if (!w.lanes) {
          // any n:m: blocks of about 128 columns (whole groups) from the indices
          const int64_t groups = K / w.m, gb = std::max<int64_t>(1, 128 / w.m);
          for (int64_t g0 = 0; g0 < groups; g0 += gb)
            for (int64_t pi = 0; pi < P; ++pi)
              kern.panel_general(xt + pi * K * pr, pr, w, g0, std::min(groups, g0 + gb), n0, n1,
                                 ct + pi * kNB * pr, g0 > 0);
        } else if (w.words == 0) {
          std::memset(ct, 0, size_t(P * kNB * pr) * sizeof(float));
        }
        for (int64_t c0 = 0; c0 < w.words; c0 += kb_words) {
          const int64_t c1 = std::min(w.words, c0 + kb_words);
          for (int64_t pi = 0; pi < P; ++pi)
            kern.panel(xt + pi * K * pr, pr, w, c0, c1, n0, n1, ct + pi * kNB * pr, c0 > 0);
        }
        // the values after the last lane word (Kc % 8 of them) from their indices
        if (w.lanes && w.words * 8 < w.Kc)
          for (int64_t pi = 0; pi < P; ++pi)
            for (int64_t j = n0; j < n1; ++j) {
              float* acc = ct + pi * kNB * pr + (j - n0) * pr;
              const uint8_t* idx = w.indices + j * w.Kc;
              for (int64_t v = w.words * 8; v < w.Kc; ++v) {
                const float wv = load_as_f32(w.values, w.dt, j * w.Kc + v);
                const float* xr = xt + pi * K * pr + prune_cpu::kept_col(idx, v, w.n, w.m) * pr;
                for (int r = 0; r < pr; ++r) acc[r] += wv * xr[r];
              }
            }
        for (int64_t pi = 0; pi < P; ++pi)
          for (int r = 0; r < pr; ++r) {
            const int64_t m = pi * pr + r;
            if (m >= p.M) break;
            float* yr = y + m * p.N + n0;
            const float* src = ct + pi * kNB * pr + r;
            for (int64_t j = 0; j < nb; ++j) yr[j] = src[j * pr] + (p.bias ? p.bias[n0 + j] : 0.0f);
          }
      },
      use_threads);
  aligned_free64(xt);
  if (oom.load()) return Status(StatusCode::oom, "linear: out of memory for sparse tiles");
  return Status::Ok();
}

}  // namespace

Status prune_check_nm(int64_t K, int n, int m) {
  if (m < 2 || m > 255) return Status(StatusCode::arg, "option 'm': expected an integer in [2, 255]");
  if (n < 1 || n >= m) return Status(StatusCode::arg, "option 'n': expected 1 <= n < m");
  if (K < 0 || K % m != 0) return Status(StatusCode::shape, "K must be a multiple of m");
  return Status::Ok();
}

Status sparse_linear(const SparseLinearParams& p) {
  if (p.M < 0 || p.N < 0 || p.K < 0) return Status(StatusCode::shape, "linear: negative size");
  TF_RETURN_IF_ERROR(prune_check_nm(p.K, p.n, p.m));
  if (!dtype_is_float(p.w_dtype) || !dtype_is_float(p.out_dtype) ||
      !(p.x_dtype == DType::float32 || p.x_dtype == p.w_dtype))
    return Status(StatusCode::dtype, "linear: sparse weights are float32, float16 or bfloat16; "
                                     "x is float32 or the weights' dtype");
  if (p.M == 0 || p.N == 0) return Status::Ok();
  if (!p.out || (p.K > 0 && (!p.x || !p.values || !p.indices)))
    return Status(StatusCode::arg, "linear: null buffer");
  SparseView w;
  w.values = p.values;
  w.dt = p.w_dtype;
  w.indices = p.indices;
  w.N = p.N;
  w.K = p.K;
  w.n = p.n;
  w.m = p.m;
  w.Kc = p.K / p.m * p.n;
  const bool lanes = p.lanes && prune_has_lanes(p.n, p.m);
  w.lanes = lanes ? p.lanes : nullptr;
  w.words = lanes ? prune_lane_words(p.K, p.n, p.m) : 0;
  w.pairs = lanes ? p.lanes + p.N * w.words : nullptr;

  float* y = static_cast<float*>(p.out);
  float* owned = nullptr;
  if (p.out_dtype != DType::float32) {
    owned = static_cast<float*>(aligned_alloc64(size_t(p.M * p.N) * sizeof(float)));
    if (!owned) return Status(StatusCode::oom, "linear: out of memory for the output");
    y = owned;
  }
  const int64_t flops = 2 * p.M * p.N * std::max<int64_t>(w.Kc, 1);
  const int use_threads = flops < (int64_t(1) << 20) ? 1 : p.max_threads;
  const prune_cpu::Kernels& kern = prune_cpu::kernels_for(active_isa());
  // x panels from M = kPanelMinM (2:4 through its lane words: from kLanesPanelMinM), else the GEMV.
  const bool panels = p.K > 0 && (lanes ? p.M >= prune_cpu::kLanesPanelMinM && w.words > 0
                                        : p.M >= prune_cpu::kPanelMinM);
  Status s = panels ? panel_path(p, kern, w, y, use_threads) : row_path(p, kern, w, y, use_threads);
  if (s.ok() && owned) convert_from_f32(owned, p.out, p.out_dtype, p.M * p.N);
  aligned_free64(owned);
  return s;
}

}  // namespace tf
