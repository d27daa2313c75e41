// attention glue: one plain object from lib/ops/attention.ts -> tf::AttentionParams, with every
// size checked against the buffers it will be read from or written to.
// JS: attention(args) / attentionAsync(args) -> Promise; args:
//   { q, k, v, out, dtype, B, Hq, Hk, Sq, Sk, D, qStrides, kStrides, vStrides, oStrides,
//     lse | null, lseStrides, scale, causal, windowLeft, windowRight, softcap,
//     alibi | null, alibiBatchStride, mask | null, maskDtype, maskStrides,
//     seqlensK | null, cuSeqlensQ | null, cuSeqlensK | null }
// Strides are in elements, (batch, seq, head) for q/k/v/out, (batch, head, seq) for lse and
// (b, h, i, j) for the mask. Sq/Sk are the packed row counts in varlen mode.
#include <string>
#include <vector>

#include "napi_util.h"
#include "tensorfuse/attention.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 53;

[[noreturn]] void fail(Napi::Env env, StatusCode code, const std::string& what) {
  throw make_error(env, code, "attention: " + what);
}

// Elements spanned by an array of the given dims and strides (0 when any dim is 0).
int64_t span(Napi::Env env, const int64_t* dims, const int64_t* strides, int n, const char* name) {
  int64_t total = 1;
  for (int i = 0; i < n; ++i) {
    if (dims[i] == 0) return 0;
    int64_t t;
    if (__builtin_mul_overflow(dims[i] - 1, strides[i], &t) ||
        __builtin_add_overflow(total, t, &total))
      fail(env, StatusCode::arg, std::string("argument '") + name + "': size overflows");
  }
  return total;
}

void require(Napi::Env env, const Buf& b, int64_t elems, size_t esz, const char* name) {
  require_bytes(env, b, checked_bytes(env, elems, esz, name), name);
}

struct Call {
  AttentionParams p;
  std::vector<Napi::Value> keep;
};

Call parse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) fail(env, StatusCode::arg, "expected an object");
  Napi::Object o = info[0].As<Napi::Object>();
  Call c;
  AttentionParams& p = c.p;
  const Buf q = prop_buffer(env, o, "q"), k = prop_buffer(env, o, "k");
  const Buf v = prop_buffer(env, o, "v"), out = prop_buffer(env, o, "out");
  const Buf lse = prop_buffer(env, o, "lse", true), alibi = prop_buffer(env, o, "alibi", true);
  const Buf mask = prop_buffer(env, o, "mask", true);
  const Buf seqlens = prop_buffer(env, o, "seqlensK", true);
  const Buf cuq = prop_buffer(env, o, "cuSeqlensQ", true);
  const Buf cuk = prop_buffer(env, o, "cuSeqlensK", true);
  const int64_t dt = prop_int(env, o, "dtype", 0, 5);
  p.dtype = DType(dt);
  if (!dtype_is_float(p.dtype)) fail(env, StatusCode::dtype, "argument 'q': expected a float dtype");
  p.batch = prop_int(env, o, "B", 0, kMaxDim);
  p.heads_q = prop_int(env, o, "Hq", 1, kMaxDim);
  p.heads_k = prop_int(env, o, "Hk", 1, kMaxDim);
  p.seqlen_q = prop_int(env, o, "Sq", 0, kMaxDim);
  p.seqlen_k = prop_int(env, o, "Sk", 0, kMaxDim);
  p.head_dim = prop_int(env, o, "D", 1, kAttentionMaxHeadDim);
  prop_strides(env, o, "qStrides", p.q_strides, 3, kMaxDim);
  prop_strides(env, o, "kStrides", p.k_strides, 3, kMaxDim);
  prop_strides(env, o, "vStrides", p.v_strides, 3, kMaxDim);
  prop_strides(env, o, "oStrides", p.o_strides, 3, kMaxDim);
  prop_strides(env, o, "lseStrides", p.lse_strides, 3, kMaxDim);
  prop_strides(env, o, "maskStrides", p.mask_strides, 4, kMaxDim);
  p.scale = float(prop_number(env, o, "scale"));
  p.causal = o.Get("causal").ToBoolean().Value();
  p.window_left = prop_int(env, o, "windowLeft", -1, kMaxDim);
  p.window_right = prop_int(env, o, "windowRight", -1, kMaxDim);
  p.softcap = float(prop_number(env, o, "softcap"));
  p.alibi_batch_stride = prop_int(env, o, "alibiBatchStride", 0, kMaxDim);
  p.mask_dtype = DType(prop_int(env, o, "maskDtype", 0, 5));

  const bool varlen = cuq.data || cuk.data;
  if (varlen && !(cuq.data && cuk.data))
    fail(env, StatusCode::arg, "options 'cuSeqlensQ' and 'cuSeqlensK' go together");
  const size_t esz = dtype_size(p.dtype);
  const int64_t B = p.batch, D = p.head_dim;
  // In varlen mode the batch dim of q/k/v/out is 1 and the rows are the packed totals.
  const int64_t nb = varlen ? 1 : B;
  const int64_t qd[4] = {nb, p.seqlen_q, p.heads_q, D}, kd[4] = {nb, p.seqlen_k, p.heads_k, D};
  const int64_t qs[4] = {p.q_strides[0], p.q_strides[1], p.q_strides[2], 1};
  const int64_t ks[4] = {p.k_strides[0], p.k_strides[1], p.k_strides[2], 1};
  const int64_t vs[4] = {p.v_strides[0], p.v_strides[1], p.v_strides[2], 1};
  const int64_t os[4] = {p.o_strides[0], p.o_strides[1], p.o_strides[2], 1};
  require(env, q, span(env, qd, qs, 4, "q"), esz, "q");
  require(env, k, span(env, kd, ks, 4, "k"), esz, "k");
  require(env, v, span(env, kd, vs, 4, "v"), esz, "v");
  require(env, out, span(env, qd, os, 4, "out"), esz, "out");
  if (lse.data) {
    const int64_t ld[3] = {nb, p.heads_q, p.seqlen_q};
    require(env, lse, span(env, ld, p.lse_strides, 3, "lse"), 4, "lse");
  }
  if (alibi.data) {
    const int64_t ad[2] = {B, p.heads_q}, as[2] = {p.alibi_batch_stride, 1};
    require(env, alibi, span(env, ad, as, 2, "alibiSlopes"), 4, "alibiSlopes");
  }
  if (mask.data) {
    if (p.mask_dtype != DType::float32 && p.mask_dtype != DType::uint8)
      fail(env, StatusCode::dtype, "option 'mask': expected float32 or uint8");
    const int64_t md[4] = {B, p.heads_q, p.seqlen_q, p.seqlen_k};
    require(env, mask, span(env, md, p.mask_strides, 4, "mask"), dtype_size(p.mask_dtype), "mask");
  }
  if (seqlens.data) require(env, seqlens, B, 4, "seqlensK");
  if (varlen) {
    require(env, cuq, B + 1, 4, "cuSeqlensQ");
    require(env, cuk, B + 1, 4, "cuSeqlensK");
  }
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  p.out = out.data;
  p.lse = static_cast<float*>(lse.data);
  p.alibi = static_cast<const float*>(alibi.data);
  p.mask = mask.data;
  p.seqlens_k = static_cast<const int32_t*>(seqlens.data);
  p.cu_seqlens_q = static_cast<const int32_t*>(cuq.data);
  p.cu_seqlens_k = static_cast<const int32_t*>(cuk.data);
  for (const char* name : {"q", "k", "v", "out", "lse", "alibi", "mask", "seqlensK", "cuSeqlensQ",
                           "cuSeqlensK"})
    c.keep.push_back(o.Get(name));
  return c;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  const Call c = parse(info);
  const Status s = attention(c.p);
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value AttentionAsync(const Napi::CallbackInfo& info) {
  const Call c = parse(info);
  const AttentionParams p = c.p;
  return run_async(info.Env(), c.keep, [p] { return attention(p); });
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionAsync", Napi::Function::New(env, AttentionAsync, "attentionAsync"));
}

}  // namespace napi
}  // namespace tf
