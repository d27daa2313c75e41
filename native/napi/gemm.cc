// matmul / linear glue: unpack, check every size against the buffers, call tf::gemm per batch.
// JS: gemm(a, aDtype, b, bDtype, out, outDtype, batch, M, N, K, transB,
//          strideA, strideB, strideC, bias | null, activation)  (gemmAsync: same, -> Promise)
// a: batch x [M, K] at strideA elements apart; b: [K, N] or [N, K] (transB) at strideB apart
// (0 = shared); out: [M, N] at strideC apart; bias: float32 [N].
#include <limits>

#include "napi_util.h"
#include "tensorfuse/gemm.h"
#include "tensorfuse/overflow.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 53;

// Elements spanned by `batch` matrices of rows x cols placed `stride` apart; throws on overflow.
int64_t span(Napi::Env env, int64_t batch, int64_t stride, int64_t rows, int64_t cols,
             const char* name) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  int64_t one, last, total;
  if (mul_overflow(rows, cols, &one) || mul_overflow(batch - 1, stride, &last) ||
      add_overflow(last, one, &total))
    throw make_error(env, StatusCode::arg, std::string("argument '") + name + "': size overflows");
  return total;
}

struct GemmCall {
  GemmParams p;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  Status run() const {
    const size_t ea = dtype_size(p.a_dtype), eb = dtype_size(p.b_dtype), ec = dtype_size(p.c_dtype);
    if (p.M == 0 || p.N == 0) return Status::Ok();  // no output: nothing to do in any of the batch
    for (int64_t i = 0; i < batch; ++i) {
      GemmParams q = p;
      q.a = static_cast<const char*>(p.a) + size_t(i * stride_a) * ea;
      q.b = static_cast<const char*>(p.b) + size_t(i * stride_b) * eb;
      q.c = static_cast<char*>(p.c) + size_t(i * stride_c) * ec;
      TF_RETURN_IF_ERROR(gemm(q));
    }
    return Status::Ok();
  }
};

GemmCall parse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 16)
    throw make_error(env, StatusCode::arg, "gemm: expected 16 arguments");
  GemmCall g;
  const Buf a = arg_buffer(info, 0, "a");
  g.p.a_dtype = arg_dtype(info, 1, "a.dtype");
  const Buf b = arg_buffer(info, 2, "b");
  g.p.b_dtype = arg_dtype(info, 3, "b.dtype");
  const Buf out = arg_buffer(info, 4, "out");
  g.p.c_dtype = arg_dtype(info, 5, "out.dtype");
  g.batch = arg_int(info, 6, "batch", 0, kMaxDim);
  g.p.M = arg_int(info, 7, "M", 0, kMaxDim);
  g.p.N = arg_int(info, 8, "N", 0, kMaxDim);
  g.p.K = arg_int(info, 9, "K", 0, kMaxDim);
  g.p.trans_b = arg_bool(info, 10, "transB");
  g.stride_a = arg_int(info, 11, "strideA", 0, kMaxDim);
  g.stride_b = arg_int(info, 12, "strideB", 0, kMaxDim);
  g.stride_c = arg_int(info, 13, "strideC", 0, kMaxDim);
  const Buf bias = arg_buffer(info, 14, "bias", true);
  const int64_t act = arg_int(info, 15, "activation", 0, 3);
  for (DType d : {g.p.a_dtype, g.p.b_dtype, g.p.c_dtype})
    if (!dtype_is_float(d))
      throw make_error(env, StatusCode::dtype, "gemm: operands must be float32, float16 or bfloat16");

  const int64_t M = g.p.M, N = g.p.N, K = g.p.K;
  // Inputs may be shared across the batch (stride 0); outputs must not overlap.
  if (g.batch > 1 && g.stride_c < M * N)
    throw make_error(env, StatusCode::arg, "gemm: output batch stride overlaps");
  require_bytes(env, a, checked_bytes(env, span(env, g.batch, g.stride_a, M, K, "a"), dtype_size(g.p.a_dtype), "a"), "a");
  require_bytes(env, b, checked_bytes(env, span(env, g.batch, g.stride_b, K, N, "b"), dtype_size(g.p.b_dtype), "b"), "b");
  require_bytes(env, out, checked_bytes(env, span(env, g.batch, g.stride_c, M, N, "out"), dtype_size(g.p.c_dtype), "out"), "out");
  if (bias.data) require_bytes(env, bias, checked_bytes(env, N, 4, "bias"), "bias");

  g.p.a = a.data;
  g.p.lda = K;
  g.p.b = b.data;
  g.p.ldb = g.p.trans_b ? K : N;
  g.p.c = out.data;
  g.p.ldc = N;
  g.p.bias = static_cast<const float*>(bias.data);
  g.p.act = Activation(act);
  return g;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const GemmCall g = parse(info);
  const Status s = g.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value GemmAsync(const Napi::CallbackInfo& info) {
  const GemmCall g = parse(info);
  return run_async(info.Env(), {info[0], info[2], info[4], info[14]}, [g] { return g.run(); });
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  export_fn<Gemm>(env, exports, "gemm");
  export_fn<GemmAsync>(env, exports, "gemmAsync");
}

}  // namespace napi
}  // namespace tf
