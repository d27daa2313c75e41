// tf::sparse_linear and the N:M format (include/tensorfuse/prune.h) against float64 loops, at every
// ISA level this CPU runs: 2:4 (lane path: GEMV rows and x panels) and the general patterns (4:8,
// 1:4, 1:2), every float dtype of the weights, x float32 or the weights' dtype, odd sizes around
// the 16-column lane words, the 16-row panels and the 64-column tasks, bias, thread caps. Inputs
// are random (seeded, see check.h) and rounded to their dtype first; outputs start as NaN so a
// skipped element fails. The format: nm keeps the n largest, compress / decompress round-trips
// bit for bit, compress rejects a dense group, lanes reject bad indices; channel norms and the
// gather of physical removal.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/fp16.h"
#include "tensorfuse/prune.h"
#include "tensorfuse/threadpool.h"

using namespace tf;

namespace {

constexpr DType kFloats[] = {DType::float32, DType::float16, DType::bfloat16};

using tf_test::isa_levels;
using tf_test::IsaGuard;
using tf_test::load;
using tf_test::store;

std::vector<uint8_t> random_raw(DType dt, int64_t n, tf_test::Rng& rng) {
  std::vector<uint8_t> raw(size_t(n) * dtype_size(dt) + 8);
  for (int64_t i = 0; i < n; ++i) store(raw.data(), dt, i, rng.uniform(-1.0f, 1.0f));
  return raw;
}

// A random n:m sparse weight, compressed: values [N, Kc] and increasing indices.
struct Sparse {
  int64_t N, K, Kc;
  int n, m;
  DType dt;
  std::vector<uint8_t> values, indices;
  std::vector<uint16_t> lanes;
};

Sparse random_sparse(DType dt, int64_t N, int64_t K, int n, int m, tf_test::Rng& rng) {
  Sparse s{N, K, K / m * n, n, m, dt, {}, {}, {}};
  s.values = random_raw(dt, N * s.Kc, rng);
  s.indices.resize(size_t(N * s.Kc));
  for (int64_t g = 0; g < N * K / m; ++g) {
    // n distinct positions of m, increasing
    std::vector<int> pos(static_cast<size_t>(m));
    for (int i = 0; i < m; ++i) pos[size_t(i)] = i;
    for (int i = 0; i < n; ++i) std::swap(pos[size_t(i)], pos[size_t(i + rng.below(m - i))]);
    std::vector<int> pick(pos.begin(), pos.begin() + n);
    std::sort(pick.begin(), pick.end());
    for (int i = 0; i < n; ++i) s.indices[size_t(g * n + i)] = uint8_t(pick[size_t(i)]);
  }
  if (prune_has_lanes(n, m)) s.lanes.resize(size_t(2 * N * prune_lane_words(K, n, m)) + 1);
  return s;
}

struct Case {
  int64_t M, N, K;
  int n, m;
};

}  // namespace

TF_TEST(prune_sparse_linear_matches_float64) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  const Case cases[] = {
      {1, 1, 4, 2, 4},     {1, 7, 16, 2, 4},    {2, 33, 20, 2, 4},   {3, 65, 132, 2, 4},
      {4, 17, 36, 2, 4},   {7, 64, 260, 2, 4},  {16, 130, 256, 2, 4}, {17, 3, 4100, 2, 4},
      {33, 129, 516, 2, 4}, {1, 300, 1028, 2, 4}, {5, 9, 24, 4, 8},   {1, 33, 40, 1, 4},
      {19, 7, 36, 1, 2},   {6, 11, 48, 3, 4},   {1, 1, 0, 2, 4},     {64, 40, 260, 2, 4},
      {100, 9, 132, 2, 4}, {61, 70, 48, 2, 4},  {2, 9, 48, 2, 4},    {3, 5, 80, 2, 4},
      {40, 13, 64, 4, 8},  {64, 9, 40, 1, 4},   {33, 5, 24, 3, 4},   {8, 70, 264, 4, 8},
      {5, 13, 80, 2, 4},   {6, 10, 112, 2, 4},  {1, 6, 48, 2, 4},
  };
  for (const Case& c : cases)
    for (DType wdt : kFloats)
      for (bool x_same : {false, true}) {
        const DType xdt = x_same ? wdt : DType::float32;
        Sparse s = random_sparse(wdt, c.N, c.K, c.n, c.m, rng);
        const Status ls = prune_lanes(s.indices.data(), c.N, c.K, c.n, c.m,
                                      s.lanes.empty() ? nullptr : s.lanes.data());
        REQUIRE(ls.ok(), "%s", ls.message.c_str());
        std::vector<uint8_t> x = random_raw(xdt, c.M * c.K, rng);
        std::vector<float> bias(size_t(c.N));
        for (float& b : bias) b = rng.uniform(-1.0f, 1.0f);
        // float64 answer and the magnitude yardstick
        std::vector<double> want(size_t(c.M * c.N)), scale(size_t(c.M * c.N));
        for (int64_t i = 0; i < c.M; ++i)
          for (int64_t j = 0; j < c.N; ++j) {
            double sum = bias[size_t(j)], mag = std::fabs(bias[size_t(j)]);
            for (int64_t v = 0; v < s.Kc; ++v) {
              const int64_t k = (v / c.n) * c.m + s.indices[size_t(j * s.Kc + v)];
              const double t = load(x.data(), xdt, i * c.K + k) * load(s.values.data(), wdt, j * s.Kc + v);
              sum += t;
              mag += std::fabs(t);
            }
            want[size_t(i * c.N + j)] = sum;
            scale[size_t(i * c.N + j)] = mag;
          }
        const double eps = xdt == DType::float32 ? 0x1p-24 : xdt == DType::float16 ? 0x1p-11 : 0x1p-8;
        const double tol = (xdt == DType::float32 ? 0.0 : 2 * eps) + 8 * std::sqrt(double(c.K) + 1) * 0x1p-24;
        std::vector<std::vector<double>> outs;
        for (Isa isa : isa_levels())
          for (int threads : {0, 1}) {
            set_isa(isa);
            std::vector<uint8_t> out(size_t(c.M * c.N) * dtype_size(xdt) + 8);
            for (int64_t i = 0; i < c.M * c.N; ++i) store(out.data(), xdt, i, NAN);
            SparseLinearParams p;
            p.M = c.M, p.N = c.N, p.K = c.K, p.n = c.n, p.m = c.m;
            p.x = x.data(), p.x_dtype = xdt;
            p.values = s.values.data(), p.w_dtype = wdt;
            p.indices = s.indices.data();
            p.lanes = s.lanes.empty() ? nullptr : s.lanes.data();
            p.out = out.data(), p.out_dtype = xdt;
            p.bias = bias.data();
            p.max_threads = threads;
            const Status st = sparse_linear(p);
            REQUIRE(st.ok(), "%s", st.message.c_str());
            std::vector<double> got(size_t(c.M * c.N));
            for (int64_t i = 0; i < c.M * c.N; ++i) got[size_t(i)] = load(out.data(), xdt, i);
            const double err = tf_test::rel_norm_error(got, want, scale);
            CHECK(err < tol, "%s M=%lld N=%lld K=%lld %d:%d w=%s x=%s threads=%d: err %.3g > %.3g",
                  isa_name(isa), (long long)c.M, (long long)c.N, (long long)c.K, c.n, c.m,
                  dtype_name(wdt), dtype_name(xdt), threads, err, tol);
            outs.push_back(got);
          }
        // one thread and the pool give bitwise the same result at each level
        for (size_t i = 0; i + 1 < outs.size(); i += 2)
          CHECK(std::memcmp(outs[i].data(), outs[i + 1].data(), outs[i].size() * sizeof(double)) == 0,
                "thread count changed the result (M=%lld N=%lld K=%lld)", (long long)c.M,
                (long long)c.N, (long long)c.K);
      }
}

TF_TEST(prune_sparse_linear_without_lanes_uses_the_general_path) {
  IsaGuard guard;
  tf_test::Rng rng(tf_test::case_seed());
  Sparse s = random_sparse(DType::float32, 9, 64, 2, 4, rng);
  std::vector<uint8_t> x = random_raw(DType::float32, 8 * 64, rng);
  for (Isa isa : isa_levels()) {
    set_isa(isa);
    std::vector<float> a(72), b(72);
    REQUIRE(prune_lanes(s.indices.data(), 9, 64, 2, 4, s.lanes.data()).ok());
    SparseLinearParams p;
    p.M = 8, p.N = 9, p.K = 64;
    p.x = x.data(), p.values = s.values.data(), p.indices = s.indices.data(), p.out = a.data();
    p.lanes = s.lanes.data();
    REQUIRE(sparse_linear(p).ok());
    p.lanes = nullptr, p.out = b.data();
    REQUIRE(sparse_linear(p).ok());
    double num = 0, den = 0;
    for (int i = 0; i < 72; ++i) num += (a[size_t(i)] - b[size_t(i)]) * double(a[size_t(i)] - b[size_t(i)]), den += double(b[size_t(i)]) * b[size_t(i)];
    CHECK(std::sqrt(num / den) < 1e-5, "%s: lanes %g", isa_name(isa), std::sqrt(num / den));
  }
}

TF_TEST(prune_nm_compress_decompress) {
  tf_test::Rng rng(tf_test::case_seed());
  const int pats[][2] = {{2, 4}, {4, 8}, {1, 4}, {3, 8}};
  for (auto& pm : pats)
    for (DType dt : kFloats) {
      const int n = pm[0], m = pm[1];
      const int64_t N = 13, K = 5 * m;
      std::vector<uint8_t> w = random_raw(dt, N * K, rng);
      std::vector<uint8_t> pruned(w.size()), mask(size_t(N * K));
      REQUIRE(prune_nm(w.data(), dt, nullptr, N, K, n, m, pruned.data(), mask.data()).ok());
      for (int64_t g = 0; g < N * K; g += m) {
        // exactly n kept, and each kept magnitude >= each dropped one
        int kept = 0;
        double min_kept = INFINITY, max_dropped = -INFINITY;
        for (int i = 0; i < m; ++i) {
          const double a = std::fabs(load(w.data(), dt, g + i));
          if (mask[size_t(g + i)]) ++kept, min_kept = std::min(min_kept, a);
          else max_dropped = std::max(max_dropped, a);
          CHECK(load(pruned.data(), dt, g + i) == (mask[size_t(g + i)] ? load(w.data(), dt, g + i) : 0.0));
        }
        CHECK(kept == n && min_kept >= max_dropped, "group %lld: %d kept", (long long)g, kept);
      }
      const int64_t Kc = K / m * n;
      std::vector<uint8_t> values(size_t(N * Kc) * dtype_size(dt)), idx(size_t(N * Kc));
      REQUIRE(prune_compress(pruned.data(), dt, N, K, n, m, values.data(), idx.data()).ok());
      REQUIRE(prune_lanes(idx.data(), N, K, n, m, nullptr).ok());
      std::vector<uint8_t> back(pruned.size(), 0xAB);
      REQUIRE(prune_decompress(values.data(), idx.data(), dt, N, K, n, m, back.data()).ok());
      CHECK(std::memcmp(back.data(), pruned.data(), size_t(N * K) * dtype_size(dt)) == 0,
            "%d:%d %s round trip", n, m, dtype_name(dt));
      // the dense original is not n:m sparse (random values are never +0)
      const Status bad = prune_compress(w.data(), dt, N, K, n, m, values.data(), idx.data());
      CHECK(bad.code == StatusCode::arg && bad.message.find("row 0, group 0") != std::string::npos,
            "%s", bad.message.c_str());
    }
}

TF_TEST(prune_rejects_bad_indices_and_patterns) {
  uint8_t idx[4] = {0, 3, 2, 1};  // second group decreases
  CHECK(prune_lanes(idx, 1, 8, 2, 4, nullptr).code == StatusCode::arg);
  uint8_t idx2[4] = {0, 4, 1, 2};  // position 4 >= m
  CHECK(prune_lanes(idx2, 1, 8, 2, 4, nullptr).code == StatusCode::arg);
  uint8_t ok[4] = {0, 3, 1, 2};
  CHECK(prune_lanes(ok, 1, 8, 2, 4, nullptr).ok());
  CHECK(prune_check_nm(8, 4, 4).code == StatusCode::arg);
  CHECK(prune_check_nm(8, 0, 4).code == StatusCode::arg);
  CHECK(prune_check_nm(10, 2, 4).code == StatusCode::shape);
  CHECK(prune_check_nm(8, 2, 1).code == StatusCode::arg);
  SparseLinearParams p;
  p.M = 1, p.N = 1, p.K = 6;
  CHECK(sparse_linear(p).code == StatusCode::shape);
  p.K = 8, p.x_dtype = DType::float16;  // x must be float32 or the weights' dtype
  CHECK(sparse_linear(p).code == StatusCode::dtype);
}

TF_TEST(prune_norms_and_gather) {
  tf_test::Rng rng(tf_test::case_seed());
  const int t0 = threads();
  for (DType dt : kFloats) {
    const int64_t R = 37, C = 131;
    std::vector<uint8_t> w = random_raw(dt, R * C, rng);
    std::vector<float> colw(static_cast<size_t>(C));
    for (float& c : colw) c = rng.uniform(0.0f, 2.0f);
    for (int axis : {0, 1})
      for (int p : {1, 2})
        for (bool weighted : {false, true}) {
          if (weighted && axis == 1) continue;
          std::vector<double> got(size_t(axis == 0 ? R : C), NAN), want(got.size(), 0.0);
          for (int64_t i = 0; i < R; ++i)
            for (int64_t j = 0; j < C; ++j) {
              const double a = std::fabs(load(w.data(), dt, i * C + j));
              want[size_t(axis == 0 ? i : j)] += (p == 2 ? a * a : a) * (weighted ? colw[size_t(j)] : 1.0);
            }
          for (int threads : {1, 0}) {
            set_threads(threads == 1 ? 1 : std::max(2, t0));
            REQUIRE(prune_norms(w.data(), dt, R, C, axis, p, weighted ? colw.data() : nullptr, got.data()).ok());
            for (size_t i = 0; i < got.size(); ++i)
              CHECK(std::fabs(got[i] - want[i]) <= 1e-12 * want[i], "%s axis %d p %d: %g vs %g",
                    dtype_name(dt), axis, p, got[i], want[i]);
          }
        }
    const int32_t kept[3] = {36, 0, 5};
    std::vector<uint8_t> rows(size_t(3 * C) * dtype_size(dt)), cols(size_t(3 * R) * dtype_size(dt));
    REQUIRE(prune_gather(w.data(), dt, R, C, 0, kept, 3, rows.data()).ok());
    REQUIRE(prune_gather(w.data(), dt, R, C, 1, kept, 3, cols.data()).ok());
    for (int k = 0; k < 3; ++k) {
      for (int64_t j = 0; j < C; ++j) CHECK(load(rows.data(), dt, k * C + j) == load(w.data(), dt, kept[k] * C + j));
      for (int64_t i = 0; i < R; ++i) CHECK(load(cols.data(), dt, i * 3 + k) == load(w.data(), dt, i * C + kept[k]));
    }
    const int32_t bad[1] = {37};
    CHECK(prune_gather(w.data(), dt, R, C, 0, bad, 1, rows.data()).code == StatusCode::arg);
  }
  set_threads(t0);
}

// Zero-element weights with a huge row count (a [2^40, 0] tensor holds no data): every per-row
// pass returns at once instead of stepping (and allocating a message slot) per row, and the
// norms of empty rows are 0.
TF_TEST(prune_zero_columns_huge_rows) {
  const int64_t N = int64_t(1) << 40;
  CHECK(prune_score(nullptr, DType::float32, nullptr, N, 0, nullptr).ok(), "score");
  CHECK(prune_decompress(nullptr, nullptr, DType::float32, N, 0, 2, 4, nullptr).ok(), "decompress");
  double norms[5] = {1, 2, 3, 4, 5};
  CHECK(prune_norms(nullptr, DType::float32, 5, 0, 0, 2, nullptr, norms).ok(), "norms");
  for (double v : norms) CHECK(v == 0.0, "norm of an empty row: %g", v);
}
