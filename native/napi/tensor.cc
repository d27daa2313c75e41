// Tensor storage helpers: dtype conversion of whole buffers (Tensor.to(dtype)).
// JS: convert(src, srcDtype, dst, dstDtype, n)
#include "napi_util.h"
#include "tensorfuse/convert.h"

namespace tf {
namespace napi {
namespace {

Napi::Value Convert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throw make_error(env, StatusCode::arg, "convert: expected 5 arguments");
  const Buf src = arg_buffer(info, 0, "src");
  const DType sd = arg_dtype(info, 1, "src.dtype");
  const Buf dst = arg_buffer(info, 2, "dst");
  const DType dd = arg_dtype(info, 3, "dst.dtype");
  const int64_t n = arg_int(info, 4, "n", 0, int64_t(1) << 53);
  require_bytes(env, src, checked_bytes(env, n, dtype_size(sd), "src"), "src");
  require_bytes(env, dst, checked_bytes(env, n, dtype_size(dd), "dst"), "dst");
  convert(src.data, sd, dst.data, dd, n);
  return env.Undefined();
}

}  // namespace

void register_tensor(Napi::Env env, Napi::Object exports) {
  export_fn<Convert>(env, exports, "convert");
}

}  // namespace napi
}  // namespace tf
