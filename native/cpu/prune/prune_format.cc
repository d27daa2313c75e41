// N:M masks, the compressed format and its lane words, scores and physical removal (layouts in
// tensorfuse/prune.h). Plain loops, parallel over rows: each is one pass over the weight.
#include <cmath>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "prune_kernels.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/prune.h"
#include "tensorfuse/threadpool.h"

namespace tf {

namespace {

constexpr int64_t kRows = 16;  // rows per task

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline bool is_plus_zero(const void* p, DType dt, int64_t i) {
  if (dt == DType::float32) {
    uint32_t u;
    std::memcpy(&u, static_cast<const char*>(p) + 4 * i, 4);
    return u == 0;
  }
  return static_cast<const uint16_t*>(p)[i] == 0;
}

inline void copy_elem(const void* src, int64_t i, void* dst, int64_t j, size_t es) {
  std::memcpy(static_cast<char*>(dst) + es * size_t(j), static_cast<const char*>(src) + es * size_t(i), es);
}

// Rows of work split into tasks; the first failing task's message wins (lowest row). Rows of
// no elements (K = 0) have nothing to do or check: returning at once keeps a zero-element tensor
// with a huge leading dimension from costing one step (and one message slot) per row.
template <typename Fn>
Status for_rows(int64_t N, int64_t K, Fn fn) {
  if (N <= 0 || K <= 0) return Status::Ok();
  const int64_t tasks = ceil_div(N, kRows);
  std::vector<std::string> errs(static_cast<size_t>(tasks), std::string());
  parallel_for(
      tasks,
      [&](int64_t t, int) {
        const int64_t r0 = t * kRows, r1 = std::min(N, r0 + kRows);
        for (int64_t r = r0; r < r1 && errs[size_t(t)].empty(); ++r) errs[size_t(t)] = fn(r);
      },
      N * K < (1 << 16) ? 1 : 0);
  for (auto& e : errs)
    if (!e.empty()) return Status(StatusCode::arg, e);
  return Status::Ok();
}

}  // namespace

Status prune_lanes(const uint8_t* indices, int64_t N, int64_t K, int n, int m, uint16_t* lanes) {
  TF_RETURN_IF_ERROR(prune_check_nm(K, n, m));
  const int64_t Kc = K / m * n;
  const bool has = lanes && prune_has_lanes(n, m);
  const int64_t words = has ? prune_lane_words(K, n, m) : 0;
  return for_rows(N, K, [&](int64_t r) -> std::string {
    const uint8_t* idx = indices + r * Kc;
    for (int64_t g = 0; g < K / m; ++g)
      for (int i = 0; i < n; ++i) {
        const int v = idx[g * n + i];
        if (v >= m || (i > 0 && v <= idx[g * n + i - 1]))
          return "row " + std::to_string(r) + ", group " + std::to_string(g) +
                 ": positions must increase within a group and be below m = " + std::to_string(m);
      }
    for (int64_t c = 0; c < words; ++c) {
      uint32_t word = 0;
      for (int l = 0; l < 8; ++l) word |= uint32_t(idx[c * 8 + l] & 3) << (2 * l);
      lanes[r * words + c] = uint16_t(word);
      const uint8_t* q = idx + c * 8;
      uint32_t pw = 0;
      for (int g = 0; g < 4; ++g)  // groups 0, 2 in bits 0-5, groups 1, 3 in bits 6-11
        pw |= uint32_t(prune_pair_id(q[2 * g], q[2 * g + 1])) << (3 * ((g >> 1) | ((g & 1) << 1)));
      lanes[N * words + prune_pair_word_index(N, words, r, c)] = uint16_t(pw);
    }
    return std::string();
  });
}

Status prune_score(const void* w, DType dt, const float* norms, int64_t N, int64_t K, float* out) {
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "score: w must be a float tensor");
  for_rows(N, K, [&](int64_t r) -> std::string {
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(load_as_f32(w, dt, r * K + k));
      out[r * K + k] = norms ? a * norms[k] : a;
    }
    return std::string();
  });
  return Status::Ok();
}

Status prune_nm(const void* w, DType dt, const float* scores, int64_t N, int64_t K, int n, int m,
                void* w_out, uint8_t* mask) {
  TF_RETURN_IF_ERROR(prune_check_nm(K, n, m));
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "nm: w must be a float tensor");
  const size_t es = dtype_size(dt);
  return for_rows(N, K, [&](int64_t r) -> std::string {
    float s[256];
    for (int64_t g0 = r * K; g0 < (r + 1) * K; g0 += m) {
      for (int i = 0; i < m; ++i) {
        const float v = scores ? scores[g0 + i] : std::fabs(load_as_f32(w, dt, g0 + i));
        s[i] = std::isnan(v) ? -INFINITY : v;
      }
      for (int i = 0; i < m; ++i) {
        // rank = elements that beat i: a higher score, or an equal one at a lower index
        int rank = 0;
        for (int j = 0; j < m; ++j) rank += (s[j] > s[i]) || (s[j] == s[i] && j < i);
        const bool keep = rank < n;
        mask[g0 + i] = keep ? 1 : 0;
        if (keep)
          copy_elem(w, g0 + i, w_out, g0 + i, es);
        else
          std::memset(static_cast<char*>(w_out) + es * size_t(g0 + i), 0, es);
      }
    }
    return std::string();
  });
}

Status prune_compress(const void* w, DType dt, int64_t N, int64_t K, int n, int m, void* values,
                      uint8_t* indices) {
  TF_RETURN_IF_ERROR(prune_check_nm(K, n, m));
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "compress: w must be a float tensor");
  const size_t es = dtype_size(dt);
  const int64_t Kc = K / m * n;
  return for_rows(N, K, [&](int64_t r) -> std::string {
    for (int64_t g = 0; g < K / m; ++g) {
      const int64_t g0 = r * K + g * m;
      int nz = 0;
      for (int i = 0; i < m; ++i) nz += !is_plus_zero(w, dt, g0 + i);
      if (nz > n)
        return "row " + std::to_string(r) + ", group " + std::to_string(g) + " (columns " +
               std::to_string(g * m) + ".." + std::to_string(g * m + m - 1) + ") has " +
               std::to_string(nz) + " nonzeros, more than n = " + std::to_string(n);
      // keep the nonzeros plus the first (n - nz) zero positions, in position order
      int zeros_left = n - nz, v = 0;
      const int64_t o = r * Kc + g * n;
      for (int i = 0; i < m && v < n; ++i) {
        const bool z = is_plus_zero(w, dt, g0 + i);
        if (!z || zeros_left > 0) {
          if (z) --zeros_left;
          copy_elem(w, g0 + i, values, o + v, es);
          indices[o + v] = uint8_t(i);
          ++v;
        }
      }
    }
    return std::string();
  });
}

Status prune_decompress(const void* values, const uint8_t* indices, DType dt, int64_t N, int64_t K,
                        int n, int m, void* out) {
  TF_RETURN_IF_ERROR(prune_check_nm(K, n, m));
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "decompress: values must be a float tensor");
  const size_t es = dtype_size(dt);
  const int64_t Kc = K / m * n;
  return for_rows(N, K, [&](int64_t r) -> std::string {
    std::memset(static_cast<char*>(out) + es * size_t(r * K), 0, es * size_t(K));
    const uint8_t* idx = indices + r * Kc;
    for (int64_t v = 0; v < Kc; ++v)
      copy_elem(values, r * Kc + v, out, r * K + prune_cpu::kept_col(idx, v, n, m), es);
    return std::string();
  });
}

Status prune_norms(const void* w, DType dt, int64_t rows, int64_t cols, int axis, int p,
                   const float* colw, double* out) {
  if (!dtype_is_float(dt)) return Status(StatusCode::dtype, "norms: w must be a float tensor");
  auto term = [&](int64_t i, int64_t j) {
    const double a = std::fabs(double(load_as_f32(w, dt, i * cols + j)));
    return p == 2 ? a * a : a;
  };
  if (axis == 0) {
    if (cols == 0) std::fill(out, out + rows, 0.0);  // empty rows: norm 0 (for_rows skips them)
    return for_rows(rows, cols, [&](int64_t i) -> std::string {
      double s = 0;
      for (int64_t j = 0; j < cols; ++j) s += colw ? term(i, j) * double(colw[j]) : term(i, j);
      out[i] = s;
      return std::string();
    });
  }
  // axis 1: tasks own blocks of 64 columns and walk the rows in order
  constexpr int64_t kCols = 64;
  for (int64_t j = 0; j < cols; ++j) out[j] = 0;
  return for_rows(ceil_div(cols, kCols), rows * kCols, [&](int64_t b) -> std::string {
    const int64_t j0 = b * kCols, j1 = std::min(cols, j0 + kCols);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = j0; j < j1; ++j) out[j] += term(i, j);
    return std::string();
  });
}

Status prune_gather(const void* src, DType dt, int64_t rows, int64_t cols, int axis,
                    const int32_t* kept, int64_t n_kept, void* out) {
  const size_t es = dtype_size(dt);
  const int64_t lim = axis == 0 ? rows : cols;
  for (int64_t i = 0; i < n_kept; ++i)
    if (kept[i] < 0 || kept[i] >= lim) return Status(StatusCode::arg, "gather: index out of range");
  const int64_t out_rows = axis == 0 ? n_kept : rows;
  return for_rows(out_rows, axis == 0 ? cols : n_kept, [&](int64_t r) -> std::string {
    if (axis == 0) {
      std::memcpy(static_cast<char*>(out) + es * size_t(r * cols),
                  static_cast<const char*>(src) + es * size_t(int64_t(kept[r]) * cols), es * size_t(cols));
    } else {
      for (int64_t i = 0; i < n_kept; ++i) copy_elem(src, r * cols + kept[i], out, r * n_kept + i, es);
    }
    return std::string();
  });
}

}  // namespace tf
