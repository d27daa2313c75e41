// Tensor storage helpers: dtype conversion of whole buffers (Tensor.to(dtype)).
// JS: convert(src, srcDtype, dst, dstDtype, n); prefault(buffer); addressMod(buffer, align)
#include <cstdint>

#include "napi_util.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/scratch.h"

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

// prefault(buffer): maps in the pages of a fresh large ArrayBuffer before a kernel writes it.
Napi::Value Prefault(const Napi::CallbackInfo& info) {
  const Buf b = arg_buffer(info, 0, "buffer");
  prefault_pages(b.data, b.bytes);
  return info.Env().Undefined();
}

// addressMod(buffer, align): the address of the view's first byte modulo align (a power of two
// up to 4096), so that allocate() can start a storage on a cache line (see lib/tensor.ts).
Napi::Value AddressMod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw make_error(env, StatusCode::arg, "addressMod: expected 2 arguments");
  const Buf b = arg_buffer(info, 0, "buffer");
  const int64_t align = arg_int(info, 1, "align", 1, 4096);
  if ((align & (align - 1)) != 0)
    throw make_error(env, StatusCode::arg, "addressMod: 'align' must be a power of two");
  return Napi::Number::New(env, double(reinterpret_cast<uintptr_t>(b.data) & uintptr_t(align - 1)));
}

}  // namespace

void register_tensor(Napi::Env env, Napi::Object exports) {
  export_fn<Convert>(env, exports, "convert");
  export_fn<Prefault>(env, exports, "prefault");
  export_fn<AddressMod>(env, exports, "addressMod");
}

}  // namespace napi
}  // namespace tf
