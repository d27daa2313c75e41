// attention glue: positional buffers plus one Float64Array of sizes and options from
// lib/ops/attention.ts -> tf::AttentionParams, with every size checked against the buffers it will
// be read from or written to. (A plain object read property by property cost about 14 us a call,
// as much as a small decode; a typed array of numbers is read with one call.)
// JS: attention(q, k, v, out, lse | null, alibi | null, mask | null, seqlensK | null,
//               cuSeqlensQ | null, cuSeqlensK | null, nums) / attentionAsync(...) -> Promise;
// nums (kNums entries, the order of the Num enum below): dtype, B, Hq, Hk, Sq, Sk, D, q/k/v/out
// strides (batch, seq, head), lse strides (batch, head, seq), mask strides (b, h, i, j), scale,
// causal, windowLeft, windowRight, softcap, alibiBatchStride, maskDtype. Strides are in
// elements; Sq/Sk are the packed row counts in varlen mode.
#include <string>
#include <vector>

#include "napi_util.h"
#include "tensorfuse/attention.h"
#include "tensorfuse/overflow.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 53;

[[noreturn]] void fail(Napi::Env env, StatusCode code, const std::string& what) {
  throw make_error(env, code, "attention: " + what);
}

enum Num : int {
  kDtype, kB, kHq, kHk, kSq, kSk, kD,
  kQStrides = 7, kKStrides = 10, kVStrides = 13, kOStrides = 16, kLseStrides = 19,
  kMaskStrides = 22, kScale = 26, kCausal, kWindowLeft, kWindowRight, kSoftcap,
  kAlibiBatchStride, kMaskDtype, kNums
};

// nums[i] as an integer in [lo, hi], or a TensorfuseError naming the field.
int64_t num_int(Napi::Env env, const double* nums, int i, const char* name, int64_t lo,
                int64_t hi) {
  const double d = nums[i];
  if (!(d >= double(lo) && d <= double(hi)) || d != double(int64_t(d)))
    fail(env, StatusCode::arg,
         std::string("argument '") + name + "': expected an integer in [" + std::to_string(lo) +
             ", " + std::to_string(hi) + "]");
  return int64_t(d);
}

void num_strides(Napi::Env env, const double* nums, int i, const char* name, int64_t* dst, int n) {
  for (int k = 0; k < n; ++k) dst[k] = num_int(env, nums, i + k, name, 0, kMaxDim);
}

// Elements spanned by an array of the given dims and strides (0 when any dim is 0).
int64_t span(Napi::Env env, const int64_t* dims, const int64_t* strides, int n, const char* name) {
  int64_t total = 1;
  for (int i = 0; i < n; ++i) {
    if (dims[i] == 0) return 0;
    int64_t t;
    if (mul_overflow(dims[i] - 1, strides[i], &t) || add_overflow(total, t, &total))
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
  if (info.Length() != 11 || !info[10].IsTypedArray() ||
      info[10].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[10].As<Napi::TypedArray>().ElementLength() != size_t(kNums))
    fail(env, StatusCode::arg, "expected 10 buffers and a Float64Array of sizes and options");
  Napi::Float64Array na = info[10].As<Napi::Float64Array>();
  const double* nums = na.Data();
  Call c;
  AttentionParams& p = c.p;
  const Buf q = arg_buffer(info, 0, "q"), k = arg_buffer(info, 1, "k");
  const Buf v = arg_buffer(info, 2, "v"), out = arg_buffer(info, 3, "out");
  const Buf lse = arg_buffer(info, 4, "lse", true), alibi = arg_buffer(info, 5, "alibi", true);
  const Buf mask = arg_buffer(info, 6, "mask", true), seqlens = arg_buffer(info, 7, "seqlensK", true);
  const Buf cuq = arg_buffer(info, 8, "cuSeqlensQ", true);
  const Buf cuk = arg_buffer(info, 9, "cuSeqlensK", true);
  p.dtype = DType(num_int(env, nums, kDtype, "dtype", 0, 5));
  if (!dtype_is_float(p.dtype)) fail(env, StatusCode::dtype, "argument 'q': expected a float dtype");
  p.batch = num_int(env, nums, kB, "B", 0, kMaxDim);
  p.heads_q = num_int(env, nums, kHq, "Hq", 1, kMaxDim);
  p.heads_k = num_int(env, nums, kHk, "Hk", 1, kMaxDim);
  p.seqlen_q = num_int(env, nums, kSq, "Sq", 0, kMaxDim);
  p.seqlen_k = num_int(env, nums, kSk, "Sk", 0, kMaxDim);
  p.head_dim = num_int(env, nums, kD, "D", 1, kAttentionMaxHeadDim);
  num_strides(env, nums, kQStrides, "qStrides", p.q_strides, 3);
  num_strides(env, nums, kKStrides, "kStrides", p.k_strides, 3);
  num_strides(env, nums, kVStrides, "vStrides", p.v_strides, 3);
  num_strides(env, nums, kOStrides, "oStrides", p.o_strides, 3);
  num_strides(env, nums, kLseStrides, "lseStrides", p.lse_strides, 3);
  num_strides(env, nums, kMaskStrides, "maskStrides", p.mask_strides, 4);
  p.scale = float(nums[kScale]);
  p.causal = nums[kCausal] != 0.0;
  p.window_left = num_int(env, nums, kWindowLeft, "windowLeft", -1, kMaxDim);
  p.window_right = num_int(env, nums, kWindowRight, "windowRight", -1, kMaxDim);
  p.softcap = float(nums[kSoftcap]);
  p.alibi_batch_stride = num_int(env, nums, kAlibiBatchStride, "alibiBatchStride", 0, kMaxDim);
  p.mask_dtype = DType(num_int(env, nums, kMaskDtype, "maskDtype", 0, 5));

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
  for (size_t i = 0; i < 10; ++i) c.keep.push_back(info[i]);
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
  export_fn<Attention>(env, exports, "attention");
  export_fn<AttentionAsync>(env, exports, "attentionAsync");
}

}  // namespace napi
}  // namespace tf
