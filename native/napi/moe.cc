// MoE glue: unpack, check every size against the buffers, call the core (native/cpu/moe).
// A routing crosses as (T, topK, E, weights f32 [T*topK], offsets i32 [E+1], order i32 [rows], rows).
// JS:
//   moeRoute(logits, T, E, topK, scoring, normalize, bias|null, groups, groupTopK, scale,
//            capacityFactor, weights, experts, counts, offsets, order, stats f64 [3])
//            stats <- [dropped, auxLoss, zLoss]
//   moeAlign(experts, nSlots, E, blockSize, sortedIds [nSlots + E*(blockSize-1)],
//            expertIds [same / blockSize], stats f64 [1])  stats <- [numTokensPostPadded]
//   moeDispatch(x, elemSize, D, <routing>, out)
//   moeCombine(y, dtype, D, <routing>, out)
//   moeFfn(x, dtype, D, F, <routing>, <w1>, <w3>, <w2>, activation, out, int8Activations), each <w> being
//          (bits, groupSize, data | null, scales | null, zeros | null): bits 0 = float in x's dtype
// Each has an Async twin with the same arguments, resolving when the outputs are written.
#include <limits>
#include <string>

#include "napi_util.h"
#include "tensorfuse/moe.h"
#include "tensorfuse/quant.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 53;
constexpr int64_t kMaxSlots = std::numeric_limits<int32_t>::max();
// align sizes per-expert tables by numExperts: bounded (as the TS layer does) so a stray value
// cannot ask for gigabytes
constexpr int64_t kMaxAlignExperts = int64_t(1) << 20;

// The routing arguments at info[i .. i+6].
MoeRoutingView routing_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  MoeRoutingView r;
  r.T = arg_int(info, i, "T", 0, kMaxSlots);
  r.top_k = arg_int(info, i + 1, "topK", 1, 8);
  r.E = arg_int(info, i + 2, "E", 1, kMaxSlots);
  const Buf w = arg_buffer(info, i + 3, "r.weights");
  const Buf off = arg_buffer(info, i + 4, "r.offsets");
  const Buf ord = arg_buffer(info, i + 5, "r.order");
  r.rows = arg_int(info, i + 6, "rows", 0, kMaxSlots);
  const int64_t n_slots = checked_mul(env, r.T, r.top_k, "r");
  if (n_slots > kMaxSlots) throw make_error(env, StatusCode::arg, "argument 'r': T * topK exceeds int32");
  require_bytes(env, w, checked_bytes(env, n_slots, 4, "r.weights"), "r.weights");
  require_bytes(env, off, checked_bytes(env, r.E + 1, 4, "r.offsets"), "r.offsets");
  require_bytes(env, ord, checked_bytes(env, r.rows, 4, "r.order"), "r.order");
  r.weights = static_cast<const float*>(w.data);
  r.offsets = static_cast<const int32_t*>(off.data);
  r.order = static_cast<const int32_t*>(ord.data);
  return r;
}

DType float_dtype(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const DType d = arg_dtype(info, i, name);
  if (!dtype_is_float(d))
    throw make_error(info.Env(), StatusCode::dtype, std::string("argument '") + name + "': expected a float dtype");
  return d;
}

// ---- route
struct RouteCall {
  MoeRouteParams p;
  double* stats = nullptr;
  Status run() {
    const Status s = moe_route(p);
    if (s.ok()) {
      stats[0] = double(p.dropped);
      stats[1] = p.aux_loss;
      stats[2] = p.z_loss;
    }
    return s;
  }
};

RouteCall parse_route(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 17) throw make_error(env, StatusCode::arg, "moeRoute: expected 17 arguments");
  RouteCall c;
  MoeRouteParams& p = c.p;
  const Buf logits = arg_buffer(info, 0, "logits");
  p.T = arg_int(info, 1, "T", 0, kMaxSlots);
  p.E = arg_int(info, 2, "E", 1, kMaxSlots);
  p.top_k = int(arg_int(info, 3, "topK", 1, 8));
  p.scoring = MoeScoring(arg_int(info, 4, "scoring", 0, 1));
  p.normalize = arg_bool(info, 5, "normalize");
  const Buf bias = arg_buffer(info, 6, "bias", true);
  p.groups = arg_int(info, 7, "groups", 0, kMaxSlots);
  p.group_top_k = arg_int(info, 8, "groupTopK", 0, kMaxSlots);
  p.scale = float(arg_number(info, 9, "scale"));
  p.capacity_factor = arg_number(info, 10, "capacityFactor");
  const Buf w = arg_buffer(info, 11, "weights");
  const Buf ex = arg_buffer(info, 12, "experts");
  const Buf cnt = arg_buffer(info, 13, "counts");
  const Buf off = arg_buffer(info, 14, "offsets");
  const Buf ord = arg_buffer(info, 15, "order");
  const Buf st = arg_buffer(info, 16, "stats");
  const int64_t n_slots = checked_mul(env, p.T, p.top_k, "logits");
  if (n_slots > kMaxSlots) throw make_error(env, StatusCode::arg, "argument 'logits': T * topK exceeds int32");
  require_bytes(env, logits, checked_bytes(env, checked_mul(env, p.T, p.E, "logits"), 4, "logits"), "logits");
  if (bias.data || bias.bytes) require_bytes(env, bias, checked_bytes(env, p.E, 4, "bias"), "bias");
  require_bytes(env, w, checked_bytes(env, n_slots, 4, "weights"), "weights");
  require_bytes(env, ex, checked_bytes(env, n_slots, 4, "experts"), "experts");
  require_bytes(env, cnt, checked_bytes(env, p.E, 4, "counts"), "counts");
  require_bytes(env, off, checked_bytes(env, p.E + 1, 4, "offsets"), "offsets");
  require_bytes(env, ord, checked_bytes(env, n_slots, 4, "order"), "order");
  require_bytes(env, st, 3 * sizeof(double), "stats");
  p.logits = static_cast<const float*>(logits.data);
  p.bias = static_cast<const float*>(bias.data);
  p.weights = static_cast<float*>(w.data);
  p.experts = static_cast<int32_t*>(ex.data);
  p.counts = static_cast<int32_t*>(cnt.data);
  p.offsets = static_cast<int32_t*>(off.data);
  p.order = static_cast<int32_t*>(ord.data);
  c.stats = static_cast<double*>(st.data);
  return c;
}

Napi::Value Route(const Napi::CallbackInfo& info) {
  RouteCall c = parse_route(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value RouteAsync(const Napi::CallbackInfo& info) {
  RouteCall c = parse_route(info);
  std::vector<Napi::Value> keep;
  for (size_t i : {0, 6, 11, 12, 13, 14, 15, 16}) keep.push_back(info[i]);
  return run_async(info.Env(), keep, [c]() mutable { return c.run(); });
}

// ---- align
struct AlignCall {
  const int32_t* experts = nullptr;
  int64_t n = 0, E = 0, block = 0;
  int32_t* sorted = nullptr;
  int32_t* ids = nullptr;
  double* stats = nullptr;
  Status run() const {
    int64_t padded = 0;
    TF_RETURN_IF_ERROR(moe_align_size(experts, n, E, block, &padded));
    TF_RETURN_IF_ERROR(moe_align(experts, n, E, block, sorted, ids));
    stats[0] = double(padded);
    return Status::Ok();
  }
};

AlignCall parse_align(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) throw make_error(env, StatusCode::arg, "moeAlign: expected 7 arguments");
  AlignCall c;
  const Buf ex = arg_buffer(info, 0, "experts");
  c.n = arg_int(info, 1, "nSlots", 0, kMaxSlots);
  c.E = arg_int(info, 2, "numExperts", 1, kMaxAlignExperts);
  c.block = arg_int(info, 3, "blockSize", 1, kMaxSlots);
  const Buf sorted = arg_buffer(info, 4, "sortedTokenIds");
  const Buf ids = arg_buffer(info, 5, "expertIds");
  const Buf st = arg_buffer(info, 6, "stats");
  const int64_t max_padded = c.n + checked_mul(env, c.E, c.block - 1, "blockSize");
  require_bytes(env, ex, checked_bytes(env, c.n, 4, "experts"), "experts");
  require_bytes(env, sorted, checked_bytes(env, max_padded, 4, "sortedTokenIds"), "sortedTokenIds");
  require_bytes(env, ids, checked_bytes(env, max_padded / c.block, 4, "expertIds"), "expertIds");
  require_bytes(env, st, sizeof(double), "stats");
  c.experts = static_cast<const int32_t*>(ex.data);
  c.sorted = static_cast<int32_t*>(sorted.data);
  c.ids = static_cast<int32_t*>(ids.data);
  c.stats = static_cast<double*>(st.data);
  return c;
}

Napi::Value Align(const Napi::CallbackInfo& info) {
  const AlignCall c = parse_align(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value AlignAsync(const Napi::CallbackInfo& info) {
  const AlignCall c = parse_align(info);
  return run_async(info.Env(), {info[0], info[4], info[5], info[6]}, [c] { return c.run(); });
}

// ---- dispatch / combine
struct MoveCall {
  bool combine = false;
  MoeRoutingView r;
  const void* in = nullptr;
  DType dtype = DType::float32;
  int64_t D = 0;
  void* out = nullptr;
  Status run() const {
    if (combine) return moe_combine(r, in, dtype, D, out);
    return moe_dispatch(r, in, dtype_size(dtype), D, out);
  }
};

// (in, dtype, D, <routing 3..9>, out)
MoveCall parse_move(const Napi::CallbackInfo& info, bool combine) {
  Napi::Env env = info.Env();
  if (info.Length() < 11) throw make_error(env, StatusCode::arg, "moe: expected 11 arguments");
  MoveCall c;
  c.combine = combine;
  const char* in_name = combine ? "y" : "x";
  const Buf in = arg_buffer(info, 0, in_name);
  c.dtype = combine ? float_dtype(info, 1, "y.dtype") : arg_dtype(info, 1, "x.dtype");
  c.D = arg_int(info, 2, "D", 0, kMaxDim);
  c.r = routing_arg(info, 3);
  const Buf out = arg_buffer(info, 10, "out");
  const size_t esz = dtype_size(c.dtype);
  const int64_t in_rows = combine ? c.r.rows : c.r.T, out_rows = combine ? c.r.T : c.r.rows;
  require_bytes(env, in, checked_bytes(env, checked_mul(env, in_rows, c.D, in_name), esz, in_name), in_name);
  require_bytes(env, out, checked_bytes(env, checked_mul(env, out_rows, c.D, "out"), esz, "out"), "out");
  c.in = in.data;
  c.out = out.data;
  return c;
}

Napi::Value Dispatch(const Napi::CallbackInfo& info) {
  const MoveCall c = parse_move(info, false);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}
Napi::Value DispatchAsync(const Napi::CallbackInfo& info) {
  const MoveCall c = parse_move(info, false);
  return run_async(info.Env(), {info[0], info[6], info[7], info[8], info[10]}, [c] { return c.run(); });
}
Napi::Value Combine(const Napi::CallbackInfo& info) {
  const MoveCall c = parse_move(info, true);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}
Napi::Value CombineAsync(const Napi::CallbackInfo& info) {
  const MoveCall c = parse_move(info, true);
  return run_async(info.Env(), {info[0], info[6], info[7], info[8], info[10]}, [c] { return c.run(); });
}

// ---- ffn: (x, dtype, D, F, <routing 4..10>, <w1 11..15>, <w3 16..20>, <w2 21..25>, activation, out,
//           int8Activations)
// Each weight is (bits, groupSize, data, scales | null, zeros | null): bits 0 = float [E, N, K]
// in x's dtype; 8 / 4 = a stacked QTensor (data the codes, int8 [E, N, K] or uint8 [E, N, K/2]).
// w3 absent: data null. Optional trailing arguments 29..31: the strip layouts of w1, w3, w2
// (quant_pack_strips of all E * N rows; null or absent: none), for the int8-activation path.
constexpr size_t kFfnArgs = 29;

// The strip layout at info[i] of a quantized weight (E * N rows of K), checked against its size.
void ffn_strips(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t E, int64_t N,
                int64_t K, MoeQuant* q) {
  Napi::Env env = info.Env();
  const std::string w = std::string("w.") + name + ".strips";
  const Buf st = arg_buffer(info, i, w.c_str(), true);
  if (!st.data) return;
  QuantWeight qw;
  qw.bits = q->bits;
  qw.N = checked_mul(env, E, N, w.c_str());
  qw.K = K;
  qw.group_size = q->group_size;
  const int64_t need = q->bits ? quant_strips_bytes(qw) : 0;
  if (need == 0 || N % kQuantStripRows != 0)
    throw make_error(env, StatusCode::arg, "argument '" + w + "': this weight has no strip layout");
  require_bytes(env, st, size_t(need), w.c_str());
  q->strips = static_cast<const uint8_t*>(st.data);
}

// Reads the weight at info[i .. i+4], of logical shape [E, N, K]; returns its data (null when
// optional and absent).
const void* ffn_weight(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t E, int64_t N,
                       int64_t K, size_t esz, MoeQuant* q, bool optional) {
  Napi::Env env = info.Env();
  static const uint8_t kEmpty = 0;  // empty weights have no storage; a non-null pointer marks them present
  const std::string w = std::string("w.") + name;
  q->bits = int(arg_int(info, i, (w + ".bits").c_str(), 0, 8));
  q->group_size = arg_int(info, i + 1, (w + ".groupSize").c_str(), 0, kMaxDim);
  const Buf data = arg_buffer(info, i + 2, w.c_str(), optional);
  const Buf sc = arg_buffer(info, i + 3, (w + ".scales").c_str(), true);
  const Buf z = arg_buffer(info, i + 4, (w + ".zeros").c_str(), true);
  if (optional && (info[i + 2].IsNull() || info[i + 2].IsUndefined())) return nullptr;
  const int64_t rows = checked_mul(env, E, N, w.c_str());
  if (q->bits == 0) {
    require_bytes(env, data, checked_bytes(env, checked_mul(env, rows, K, w.c_str()), esz, w.c_str()), w.c_str());
    return data.data ? data.data : &kEmpty;
  }
  if (q->bits != 8 && q->bits != 4)
    throw make_error(env, StatusCode::arg, "argument '" + w + ".bits': expected 0, 4 or 8");
  if (q->group_size > 0 && K % q->group_size != 0)
    throw make_error(env, StatusCode::arg, "argument '" + w + ".groupSize': must divide " + std::to_string(K));
  if (q->bits == 4 && K % 2 != 0)
    throw make_error(env, StatusCode::shape, "argument '" + w + "': K must be even for int4");
  const int64_t groups = q->group_size > 0 ? K / q->group_size : 1;
  require_bytes(env, data, checked_bytes(env, checked_mul(env, rows, q->bits == 8 ? K : K / 2, w.c_str()), 1, w.c_str()),
                w.c_str());
  const int64_t ns = checked_mul(env, rows, groups, w.c_str());
  require_bytes(env, sc, checked_bytes(env, ns, 4, (w + ".scales").c_str()), (w + ".scales").c_str());
  if (z.data || z.bytes) {
    if (q->bits != 4) throw make_error(env, StatusCode::arg, "argument '" + w + ".zeros': int4 only");
    require_bytes(env, z, checked_bytes(env, ns, 1, (w + ".zeros").c_str()), (w + ".zeros").c_str());
  }
  q->scales = static_cast<const float*>(sc.data);
  q->zeros = static_cast<const uint8_t*>(z.data);
  if (!q->scales) q->scales = reinterpret_cast<const float*>(&kEmpty);
  return data.data ? data.data : &kEmpty;
}

MoeFfnParams parse_ffn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < kFfnArgs) throw make_error(env, StatusCode::arg, "moeFfn: expected 29 arguments");
  MoeFfnParams p;
  const Buf x = arg_buffer(info, 0, "x");
  p.dtype = float_dtype(info, 1, "x.dtype");
  p.D = arg_int(info, 2, "D", 0, kMaxDim);
  p.F = arg_int(info, 3, "F", 0, kMaxDim);
  p.r = routing_arg(info, 4);
  const size_t esz = dtype_size(p.dtype);
  p.w1 = ffn_weight(info, 11, "w1", p.r.E, p.F, p.D, esz, &p.q1, false);
  p.w3 = ffn_weight(info, 16, "w3", p.r.E, p.F, p.D, esz, &p.q3, true);
  p.w2 = ffn_weight(info, 21, "w2", p.r.E, p.D, p.F, esz, &p.q2, false);
  p.act = Activation(arg_int(info, 26, "activation", 0, 3));
  const Buf out = arg_buffer(info, 27, "out");
  p.int8_activations = arg_bool(info, 28, "activations");
  ffn_strips(info, 29, "w1", p.r.E, p.F, p.D, &p.q1);
  if (p.w3) ffn_strips(info, 30, "w3", p.r.E, p.F, p.D, &p.q3);
  ffn_strips(info, 31, "w2", p.r.E, p.D, p.F, &p.q2);
  require_bytes(env, x, checked_bytes(env, checked_mul(env, p.r.T, p.D, "x"), esz, "x"), "x");
  require_bytes(env, out, checked_bytes(env, checked_mul(env, p.r.T, p.D, "out"), esz, "out"), "out");
  p.x = x.data;
  p.out = out.data;
  return p;
}

Napi::Value Ffn(const Napi::CallbackInfo& info) {
  const MoeFfnParams p = parse_ffn(info);
  const Status s = moe_ffn(p);
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}
Napi::Value FfnAsync(const Napi::CallbackInfo& info) {
  const MoeFfnParams p = parse_ffn(info);
  std::vector<Napi::Value> keep;
  for (size_t i : {0, 8, 9, 10, 27})
    keep.push_back(info[i]);
  for (size_t i : {13, 14, 15, 18, 19, 20, 23, 24, 25, 29, 30, 31})
    if (!info[i].IsNull() && !info[i].IsUndefined()) keep.push_back(info[i]);
  return run_async(info.Env(), keep, [p] { return moe_ffn(p); });
}

}  // namespace

void register_moe(Napi::Env env, Napi::Object exports) {
  export_fn<Route>(env, exports, "moeRoute");
  export_fn<RouteAsync>(env, exports, "moeRouteAsync");
  export_fn<Align>(env, exports, "moeAlign");
  export_fn<AlignAsync>(env, exports, "moeAlignAsync");
  export_fn<Dispatch>(env, exports, "moeDispatch");
  export_fn<DispatchAsync>(env, exports, "moeDispatchAsync");
  export_fn<Combine>(env, exports, "moeCombine");
  export_fn<CombineAsync>(env, exports, "moeCombineAsync");
  export_fn<Ffn>(env, exports, "moeFfn");
  export_fn<FfnAsync>(env, exports, "moeFfnAsync");
}

}  // namespace napi
}  // namespace tf
