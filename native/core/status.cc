#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {

const char* status_code_name(StatusCode c) {
  switch (c) {
    case StatusCode::ok: return "OK";
    case StatusCode::shape: return "ERR_SHAPE";
    case StatusCode::dtype: return "ERR_DTYPE";
    case StatusCode::device: return "ERR_DEVICE";
    case StatusCode::arg: return "ERR_ARG";
    case StatusCode::disposed: return "ERR_DISPOSED";
    case StatusCode::oom: return "ERR_OOM";
    case StatusCode::unsupported: return "ERR_UNSUPPORTED";
    case StatusCode::internal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int8: return "int8";
    case DType::uint8: return "uint8";
    case DType::int32: return "int32";
  }
  return "?";
}

}  // namespace tf
