// prune.* and linear(x, SparseTensor) glue: unpack, check every size against the buffers, call
// the core (tensorfuse/prune.h). Every op has a sync and an Async (run_async) entry that share one
// parser, so both run the same work. Sizes are element counts; the TS layer (lib/ops/prune.ts)
// has validated shapes and options first, this is the second line.
//   sparseLinear(x, xDtype, values, wDtype, indices, lanes (Uint16Array) | null, out, outDtype, M, N, K, n, m,
//                bias|null)
//   pruneLanes(indices, N, K, n, m, lanes|null)          (sync only: validates, builds lanes)
//   pruneScore(w, dtype, norms|null, N, K, out)
//   pruneNm(w, dtype, scores|null, N, K, n, m, wOut, mask)
//   pruneCompress(w, dtype, N, K, n, m, values, indices)
//   pruneDecompress(values, indices, dtype, N, K, n, m, out)
//   pruneGather(src, dtype, rows, cols, axis, kept, out)
//   pruneNorms(w, dtype, rows, cols, axis, p, inputNorms|null, out (Float64Array))
#include <functional>
#include <string>

#include "napi_util.h"
#include "tensorfuse/prune.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 53;
using Work = std::function<Status()>;

void need(Napi::Env env, const Buf& b, int64_t count, DType dt, const char* name) {
  require_bytes(env, b, checked_bytes(env, int64_t(count), dtype_size(dt), name), name);
}

// Checks n, m, K with the core's rule; throws with the core's message.
void check_nm(Napi::Env env, int64_t K, int n, int m) {
  const Status s = prune_check_nm(K, n, m);
  if (!s.ok()) throw_status(env, s);
}

// The N, K, n, m arguments at info[i .. i+4), n:m checked with the core's rule.
struct NmShape {
  int64_t N, K;
  int n, m;
  int64_t Kc() const { return K / m * n; }  // kept values per row
};

NmShape arg_nm_shape(const Napi::CallbackInfo& info, size_t i) {
  NmShape s;
  s.N = arg_int(info, i, "N", 0, kMaxDim);
  s.K = arg_int(info, i + 1, "K", 0, kMaxDim);
  s.n = int(arg_int(info, i + 2, "n", 1, 254));
  s.m = int(arg_int(info, i + 3, "m", 2, 255));
  check_nm(info.Env(), s.K, s.n, s.m);
  return s;
}

Work with_prefix(std::string prefix, std::function<Status()> f) {
  return [prefix, f] {
    Status s = f();
    if (!s.ok()) s.message = prefix + s.message;
    return s;
  };
}

Work parse_linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 14) throw make_error(env, StatusCode::arg, "sparseLinear: expected 14 arguments");
  SparseLinearParams p;
  const Buf x = arg_buffer(info, 0, "x");
  p.x_dtype = arg_float_dtype(info, 1, "x.dtype");
  const Buf values = arg_buffer(info, 2, "values");
  p.w_dtype = arg_float_dtype(info, 3, "values.dtype");
  const Buf indices = arg_buffer(info, 4, "indices");
  const Buf lanes = arg_buffer(info, 5, "lanes", true);
  const Buf out = arg_buffer(info, 6, "out");
  p.out_dtype = arg_float_dtype(info, 7, "out.dtype");
  p.M = arg_int(info, 8, "M", 0, kMaxDim);
  p.N = arg_int(info, 9, "N", 0, kMaxDim);
  p.K = arg_int(info, 10, "K", 0, kMaxDim);
  p.n = int(arg_int(info, 11, "n", 1, 254));
  p.m = int(arg_int(info, 12, "m", 2, 255));
  const Buf bias = arg_buffer(info, 13, "bias", true);
  check_nm(env, p.K, p.n, p.m);
  const int64_t Kc = p.K / p.m * p.n;
  need(env, x, checked_mul(env, p.M, p.K, "x"), p.x_dtype, "x");
  need(env, values, checked_mul(env, p.N, Kc, "values"), p.w_dtype, "values");
  need(env, indices, checked_mul(env, p.N, Kc, "indices"), DType::uint8, "indices");
  need(env, out, checked_mul(env, p.M, p.N, "out"), p.out_dtype, "out");
  if (lanes.data && prune_has_lanes(p.n, p.m))
    need(env, lanes, checked_mul(env, 2 * p.N, prune_lane_words(p.K, p.n, p.m), "lanes"),
         DType::float16, "lanes");
  if (bias.data) need(env, bias, p.N, DType::float32, "bias");
  p.x = x.data;
  p.values = values.data;
  p.indices = static_cast<const uint8_t*>(indices.data);
  p.lanes = static_cast<const uint16_t*>(lanes.data);
  p.out = out.data;
  p.bias = static_cast<const float*>(bias.data);
  return with_prefix("linear: ", [p] { return sparse_linear(p); });
}

Work parse_score(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) throw make_error(env, StatusCode::arg, "pruneScore: expected 6 arguments");
  const Buf w = arg_buffer(info, 0, "w");
  const DType dt = arg_float_dtype(info, 1, "w.dtype");
  const Buf norms = arg_buffer(info, 2, "inputNorms", true);
  const int64_t N = arg_int(info, 3, "N", 0, kMaxDim), K = arg_int(info, 4, "K", 0, kMaxDim);
  const Buf out = arg_buffer(info, 5, "out");
  const int64_t NK = checked_mul(env, N, K, "w");
  need(env, w, NK, dt, "w");
  need(env, out, NK, DType::float32, "out");
  if (norms.data) need(env, norms, K, DType::float32, "inputNorms");
  const void* wp = w.data;
  const float* np = static_cast<const float*>(norms.data);
  float* op = static_cast<float*>(out.data);
  return with_prefix("prune.score: ", [=] { return prune_score(wp, dt, np, N, K, op); });
}

Work parse_nm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9) throw make_error(env, StatusCode::arg, "pruneNm: expected 9 arguments");
  const Buf w = arg_buffer(info, 0, "w");
  const DType dt = arg_float_dtype(info, 1, "w.dtype");
  const Buf scores = arg_buffer(info, 2, "scores", true);
  const NmShape sh = arg_nm_shape(info, 3);
  const Buf w_out = arg_buffer(info, 7, "weight");
  const Buf mask = arg_buffer(info, 8, "mask");
  const int64_t NK = checked_mul(env, sh.N, sh.K, "w");
  need(env, w, NK, dt, "w");
  need(env, w_out, NK, dt, "weight");
  need(env, mask, NK, DType::uint8, "mask");
  if (scores.data) need(env, scores, NK, DType::float32, "scores");
  const void* wp = w.data;
  const float* sp = static_cast<const float*>(scores.data);
  void* wo = w_out.data;
  uint8_t* mp = static_cast<uint8_t*>(mask.data);
  return with_prefix("prune.nm: ",
                     [=] { return prune_nm(wp, dt, sp, sh.N, sh.K, sh.n, sh.m, wo, mp); });
}

Work parse_compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8) throw make_error(env, StatusCode::arg, "pruneCompress: expected 8 arguments");
  const Buf w = arg_buffer(info, 0, "w");
  const DType dt = arg_float_dtype(info, 1, "w.dtype");
  const NmShape sh = arg_nm_shape(info, 2);
  const Buf values = arg_buffer(info, 6, "values");
  const Buf indices = arg_buffer(info, 7, "indices");
  need(env, w, checked_mul(env, sh.N, sh.K, "w"), dt, "w");
  need(env, values, checked_mul(env, sh.N, sh.Kc(), "values"), dt, "values");
  need(env, indices, checked_mul(env, sh.N, sh.Kc(), "indices"), DType::uint8, "indices");
  const void* wp = w.data;
  void* vp = values.data;
  uint8_t* ip = static_cast<uint8_t*>(indices.data);
  return with_prefix("prune.compress: argument 'w' is not " + std::to_string(sh.n) + ":" +
                         std::to_string(sh.m) + " sparse: ",
                     [=] { return prune_compress(wp, dt, sh.N, sh.K, sh.n, sh.m, vp, ip); });
}

Work parse_decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8) throw make_error(env, StatusCode::arg, "pruneDecompress: expected 8 arguments");
  const Buf values = arg_buffer(info, 0, "values");
  const Buf indices = arg_buffer(info, 1, "indices");
  const DType dt = arg_float_dtype(info, 2, "values.dtype");
  const NmShape sh = arg_nm_shape(info, 3);
  const Buf out = arg_buffer(info, 7, "out");
  need(env, values, checked_mul(env, sh.N, sh.Kc(), "values"), dt, "values");
  need(env, indices, checked_mul(env, sh.N, sh.Kc(), "indices"), DType::uint8, "indices");
  need(env, out, checked_mul(env, sh.N, sh.K, "out"), dt, "out");
  const void* vp = values.data;
  const uint8_t* ip = static_cast<const uint8_t*>(indices.data);
  void* op = out.data;
  return with_prefix("prune.decompress: ",
                     [=] { return prune_decompress(vp, ip, dt, sh.N, sh.K, sh.n, sh.m, op); });
}

Work parse_gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) throw make_error(env, StatusCode::arg, "pruneGather: expected 7 arguments");
  const Buf src = arg_buffer(info, 0, "src");
  const DType dt = arg_dtype(info, 1, "src.dtype");
  const int64_t rows = arg_int(info, 2, "rows", 0, kMaxDim), cols = arg_int(info, 3, "cols", 0, kMaxDim);
  const int axis = int(arg_int(info, 4, "axis", 0, 1));
  const Buf kept = arg_buffer(info, 5, "kept");
  const Buf out = arg_buffer(info, 6, "out");
  const int64_t n_kept = int64_t(kept.bytes / 4);
  need(env, src, checked_mul(env, rows, cols, "src"), dt, "src");
  need(env, out, checked_mul(env, axis == 0 ? n_kept : rows, axis == 0 ? cols : n_kept, "out"), dt,
       "out");
  const void* sp = src.data;
  const int32_t* kp = static_cast<const int32_t*>(kept.data);
  void* op = out.data;
  return with_prefix("prune: ", [=] { return prune_gather(sp, dt, rows, cols, axis, kp, n_kept, op); });
}

Work parse_norms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8) throw make_error(env, StatusCode::arg, "pruneNorms: expected 8 arguments");
  const Buf w = arg_buffer(info, 0, "w");
  const DType dt = arg_float_dtype(info, 1, "w.dtype");
  const int64_t rows = arg_int(info, 2, "rows", 0, kMaxDim), cols = arg_int(info, 3, "cols", 0, kMaxDim);
  const int axis = int(arg_int(info, 4, "axis", 0, 1));
  const int pw = int(arg_int(info, 5, "p", 1, 2));
  const Buf colw = arg_buffer(info, 6, "inputNorms", true);
  const Buf out = arg_buffer(info, 7, "out");
  need(env, w, checked_mul(env, rows, cols, "w"), dt, "w");
  require_bytes(env, out, checked_bytes(env, axis == 0 ? rows : cols, 8, "out"), "out");
  if (colw.data) need(env, colw, cols, DType::float32, "inputNorms");
  const void* wp = w.data;
  const float* cp = static_cast<const float*>(colw.data);
  double* op = static_cast<double*>(out.data);
  return with_prefix("prune: ", [=] { return prune_norms(wp, dt, rows, cols, axis, pw, cp, op); });
}

Napi::Value Lanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) throw make_error(env, StatusCode::arg, "pruneLanes: expected 6 arguments");
  const Buf indices = arg_buffer(info, 0, "indices");
  const NmShape sh = arg_nm_shape(info, 1);
  const Buf lanes = arg_buffer(info, 5, "lanes", true);
  need(env, indices, checked_mul(env, sh.N, sh.Kc(), "indices"), DType::uint8, "indices");
  if (lanes.data && prune_has_lanes(sh.n, sh.m))
    need(env, lanes, checked_mul(env, 2 * sh.N, prune_lane_words(sh.K, sh.n, sh.m), "lanes"),
         DType::float16, "lanes");
  Status s = prune_lanes(static_cast<const uint8_t*>(indices.data), sh.N, sh.K, sh.n, sh.m,
                         static_cast<uint16_t*>(lanes.data));
  if (!s.ok()) throw_status(env, s);
  return env.Undefined();
}

template <Work (*Parse)(const Napi::CallbackInfo&)>
Napi::Value Sync(const Napi::CallbackInfo& info) {
  const Status s = Parse(info)();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

template <Work (*Parse)(const Napi::CallbackInfo&)>
Napi::Value Async(const Napi::CallbackInfo& info) {
  Work w = Parse(info);
  std::vector<Napi::Value> keep;
  for (size_t i = 0; i < info.Length(); ++i) keep.push_back(info[i]);
  return run_async(info.Env(), keep, std::move(w));
}

template <Work (*Parse)(const Napi::CallbackInfo&)>
void add(Napi::Env env, Napi::Object exports, const char* name) {
  export_fn<Sync<Parse>>(env, exports, name);
  const std::string an = std::string(name) + "Async";
  export_fn<Async<Parse>>(env, exports, an.c_str());
}

}  // namespace

void register_prune(Napi::Env env, Napi::Object exports) {
  add<parse_linear>(env, exports, "sparseLinear");
  add<parse_score>(env, exports, "pruneScore");
  add<parse_nm>(env, exports, "pruneNm");
  add<parse_compress>(env, exports, "pruneCompress");
  add<parse_decompress>(env, exports, "pruneDecompress");
  add<parse_gather>(env, exports, "pruneGather");
  add<parse_norms>(env, exports, "pruneNorms");
  export_fn<Lanes>(env, exports, "pruneLanes");
}

}  // namespace napi
}  // namespace tf
