// MoE routing: scores, (grouped) top-k with selection bias, weights, capacity, the order tables
// and the two losses. The per-token part (scores, top-k, weights) runs on the pool over fixed
// chunks of tokens; the capacity admission (choice rank first, then token) and the counting sort
// into `order` are sequential passes over T * top_k int32s, a few percent of the time.
// Deterministic for any thread count: per-chunk partial sums are added in chunk order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "moe_internal.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {
namespace {

constexpr int kMaxTopK = 8;
constexpr int64_t kTokensPerTask = 64;

// NaN never wins a comparison; as a key it is the lowest value, so a NaN logit still yields
// valid, distinct expert ids.
inline float key_of(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

// Top-k of keys[0..n) over the allowed entries (allowed == null: all): ids in descending key
// order, ties to the lower id (strict > keeps the earlier, lower id ahead). Once k are held, only
// a key above the k-th can enter: first_above skips the rest 8 at a time.
inline void top_k(const moe_cpu::Kernels& kern, const float* keys, const uint8_t* allowed, int64_t n,
                  int k, int32_t* ids) {
  float best[kMaxTopK];
  int have = 0;
  for (int64_t e = 0; e < n; ++e) {
    if (have == k) {
      e = kern.first_above(keys, e, n, best[k - 1]);
      if (e >= n) break;
    }
    if (allowed && !allowed[e]) continue;
    const float v = key_of(keys[e]);
    if (have == k && !(v > best[k - 1])) continue;
    int pos = have < k ? have : k - 1;
    while (pos > 0 && v > best[pos - 1]) {
      best[pos] = best[pos - 1];
      ids[pos] = ids[pos - 1];
      --pos;
    }
    best[pos] = v;
    ids[pos] = int32_t(e);
    if (have < k) ++have;
  }
}

}  // namespace

Status moe_route(MoeRouteParams& p) {
  const int64_t T = p.T, E = p.E;
  const int k = p.top_k;
  if (T < 0 || E < 1) return Status(StatusCode::shape, "moe.route: bad T or E");
  if (k < 1 || k > kMaxTopK || k > E)
    return Status(StatusCode::arg, "moe.route: topK must be in [1, min(8, E)]");
  if (T * k > std::numeric_limits<int32_t>::max())
    return Status(StatusCode::arg, "moe.route: T * topK exceeds the int32 slot ids of a Routing");
  const int64_t G = p.groups;
  const int64_t gs = G > 0 ? E / G : E;
  if (G > 0) {
    if (E % G != 0) return Status(StatusCode::arg, "moe.route: groups.count must divide E");
    if (p.group_top_k < 1 || p.group_top_k > G)
      return Status(StatusCode::arg, "moe.route: groups.topK must be in [1, groups.count]");
    if (k > p.group_top_k * gs)
      return Status(StatusCode::arg, "moe.route: topK exceeds the experts of the kept groups");
  }
  const int64_t n_slots = T * k;
  const int64_t n_chunks = (T + kTokensPerTask - 1) / kTokensPerTask;
  // Per chunk: sum over its tokens of the scores (for P_e) and of logsumexp^2.
  std::vector<double> prob_sum(size_t(n_chunks * E), 0.0);
  std::vector<double> z_sum(size_t(n_chunks), 0.0);
  std::atomic<bool> oom{false};
  // The first token whose logits hold a NaN or +Infinity, or are all -Infinity (no score to rank
  // the experts by): an error rather than NaN weights.
  std::atomic<int64_t> bad_token{T};
  const moe_cpu::Kernels& kern = moe_cpu::kernels();

  parallel_for(n_chunks, [&](int64_t c, int) {
    const int64_t t0 = c * kTokensPerTask, t1 = std::min(T, t0 + kTokensPerTask);
    const size_t need = size_t(E) * 2 * sizeof(float) + size_t(E) + size_t(G) * sizeof(float) +
                        size_t(G) * sizeof(int32_t) + 64;
    char* buf = static_cast<char*>(scratch_get(0, need));
    if (!buf) { oom.store(true); return; }
    float* s = reinterpret_cast<float*>(buf);     // scores [E]
    float* sel = s + E;                           // selection keys [E]
    float* gscore = sel + E;                      // [G]
    int32_t* gidx = reinterpret_cast<int32_t*>(gscore + G);  // [G]
    uint8_t* allowed = reinterpret_cast<uint8_t*>(gidx + G); // [E]
    double* psum = prob_sum.data() + c * E;
    double zs = 0.0;
    for (int64_t t = t0; t < t1; ++t) {
      const float* x = p.logits + t * E;
      bool any_nan = false;
      const float m = kern.max_of(x, E, &any_nan);
      if (any_nan || std::isinf(m)) {
        int64_t seen = bad_token.load();
        while (t < seen && !bad_token.compare_exchange_weak(seen, t)) {
        }
        break;  // the call fails: the rest of this chunk is not needed
      }
      // exp(x - max) and its sum (which also gives logsumexp for the z-loss).
      double sum;
      if (p.scoring == MoeScoring::softmax) {
        sum = kern.exp_shift(x, m, E, s);
        const float inv = float(1.0 / sum);
        for (int64_t e = 0; e < E; ++e) s[e] *= inv;
      } else {
        sum = kern.exp_shift(x, m, E, sel);
        kern.sigmoid(x, E, s);
      }
      const double lse = double(m) + std::log(sum);
      zs += lse * lse;
      for (int64_t e = 0; e < E; ++e) psum[e] += s[e];
      const float* keys = s;
      if (p.bias) {
        for (int64_t e = 0; e < E; ++e) sel[e] = s[e] + p.bias[e];
        keys = sel;
      }
      const uint8_t* mask = nullptr;
      if (G > 0) {
        for (int64_t g = 0; g < G; ++g) {
          const float* kg = keys + g * gs;
          float b1 = -std::numeric_limits<float>::infinity(), b2 = b1;
          for (int64_t i = 0; i < gs; ++i) {
            const float v = key_of(kg[i]);
            if (v > b1) { b2 = b1; b1 = v; }
            else if (v > b2) b2 = v;
          }
          gscore[g] = p.bias ? (gs > 1 ? b1 + b2 : b1) : b1;
          gidx[g] = int32_t(g);
        }
        std::partial_sort(gidx, gidx + p.group_top_k, gidx + G, [&](int32_t a, int32_t b) {
          const float ka = key_of(gscore[a]), kb = key_of(gscore[b]);
          return ka > kb || (ka == kb && a < b);
        });
        std::fill(allowed, allowed + E, uint8_t(0));
        for (int64_t i = 0; i < p.group_top_k; ++i)
          std::fill(allowed + gidx[i] * gs, allowed + (gidx[i] + 1) * gs, uint8_t(1));
        mask = allowed;
      }
      int32_t* ids = p.experts + t * k;
      top_k(kern, keys, mask, E, k, ids);
      float* w = p.weights + t * k;
      float wsum = 0.0f;
      for (int j = 0; j < k; ++j) {
        w[j] = s[ids[j]];
        wsum += w[j];
      }
      if (p.normalize && wsum > 0.0f)
        for (int j = 0; j < k; ++j) w[j] /= wsum;
      for (int j = 0; j < k; ++j) w[j] *= p.scale;
    }
    z_sum[size_t(c)] = zs;
  });
  if (oom.load()) return Status(StatusCode::oom, "moe.route: out of memory for scratch");
  if (bad_token.load() < T)
    return Status(StatusCode::arg, "moe.route: argument 'logits': row " +
                                       std::to_string(bad_token.load()) +
                                       " holds a NaN or +Infinity, or is -Infinity throughout");

  // Losses. f_e: share of the router's choices (before any capacity drop) going to e.
  std::vector<int64_t> chosen(size_t(E), 0);
  for (int64_t i = 0; i < n_slots; ++i) ++chosen[size_t(p.experts[i])];
  double aux = 0.0, z = 0.0;
  if (T > 0) {
    for (int64_t e = 0; e < E; ++e) {
      double P = 0.0;
      for (int64_t c = 0; c < n_chunks; ++c) P += prob_sum[size_t(c * E + e)];
      aux += (double(chosen[size_t(e)]) / double(n_slots)) * (P / double(T));
    }
    aux *= double(E);
    for (int64_t c = 0; c < n_chunks; ++c) z += z_sum[size_t(c)];
    z /= double(T);
  }
  p.aux_loss = aux;
  p.z_loss = z;

  // Capacity: admit by choice rank j, then token t; the overflow is dropped.
  std::vector<int64_t> cnt(size_t(E), 0);
  int64_t dropped = 0;
  if (p.capacity_factor > 0.0) {
    const double capd = std::ceil(p.capacity_factor * double(T) * double(k) / double(E));
    const int64_t cap = capd >= double(n_slots) ? n_slots : int64_t(capd);
    for (int j = 0; j < k; ++j)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t s = t * k + j;
        const int32_t e = p.experts[s];
        if (cnt[size_t(e)] < cap) {
          ++cnt[size_t(e)];
        } else {
          p.experts[s] = -1;
          p.weights[s] = 0.0f;
          ++dropped;
        }
      }
  } else {
    cnt = chosen;
  }
  p.dropped = dropped;
  p.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) {
    p.counts[e] = int32_t(cnt[size_t(e)]);
    p.offsets[e + 1] = int32_t(p.offsets[e] + cnt[size_t(e)]);
  }
  // Counting sort of the kept slots by expert; ascending slot (so ascending t) within each.
  std::vector<int64_t> pos(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) pos[size_t(e)] = p.offsets[e];
  for (int64_t s = 0; s < n_slots; ++s) {
    const int32_t e = p.experts[s];
    if (e >= 0) p.order[pos[size_t(e)]++] = int32_t(s);
  }
  return Status::Ok();
}

}  // namespace tf
