// Status codes of the core. Each maps 1:1 to a TensorfuseError code in the TS layer
// (native/napi/napi_util.h does the mapping), so a failure deep in a kernel reaches JS with a
// code and a message, never as a crash.
#pragma once
#include <string>
#include <utility>

namespace tf {

enum class StatusCode : int {
  ok = 0,
  shape = 1,        // ERR_SHAPE
  dtype = 2,        // ERR_DTYPE
  device = 3,       // ERR_DEVICE
  arg = 4,          // ERR_ARG
  disposed = 5,     // ERR_DISPOSED
  oom = 6,          // ERR_OOM
  unsupported = 7,  // ERR_UNSUPPORTED
  internal = 8,     // ERR_INTERNAL: a bug in tensorfuse, never the caller's fault
};

const char* status_code_name(StatusCode c);  // "ERR_SHAPE", ...

struct Status {
  StatusCode code = StatusCode::ok;
  std::string message;

  Status() = default;
  Status(StatusCode c, std::string m) : code(c), message(std::move(m)) {}
  static Status Ok() { return Status(); }
  bool ok() const { return code == StatusCode::ok; }
};

#define TF_RETURN_IF_ERROR(expr)      \
  do {                                \
    ::tf::Status tf_status_ = (expr); \
    if (!tf_status_.ok()) return tf_status_; \
  } while (0)

}  // namespace tf
