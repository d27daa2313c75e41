// Shared Node-API glue: argument unpacking with checks, Status -> TensorfuseError, and the one
// AsyncWorker that every *Async op uses. The only place besides the per-family files that
// includes napi.h; nothing here knows any kernel.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensorfuse/dtype.h"
#include "tensorfuse/status.h"

namespace tf {
namespace napi {

// A TypedArray's memory as the kernels see it.
struct Buf {
  void* data = nullptr;
  size_t bytes = 0;
};

// Per-environment state (worker_threads each have their own).
struct EnvData {
  Napi::FunctionReference error_ctor;  // TensorfuseError, handed over by lib/native.ts
};

// Builds a TensorfuseError (or a plain Error with .code before the class is registered).
Napi::Error make_error(Napi::Env env, StatusCode code, const std::string& message);
[[noreturn]] void throw_status(Napi::Env env, const Status& s);

// Argument readers: each throws a TensorfuseError naming `name` when the value is not what the
// native contract expects (the TS layer checks first; this is the second line).
Buf arg_buffer(const Napi::CallbackInfo& info, size_t i, const char* name, bool optional = false);
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* name);
double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name);
// A float dtype (float32, float16 or bfloat16); ERR_DTYPE for the others.
DType arg_float_dtype(const Napi::CallbackInfo& info, size_t i, const char* name);

// The same readers for the property `name` of a plain-object argument (ops that take one object,
// as attention does), with the same checks and messages.
Buf prop_buffer(Napi::Env env, const Napi::Object& o, const char* name, bool optional = false);
int64_t prop_int(Napi::Env env, const Napi::Object& o, const char* name, int64_t lo, int64_t hi);
double prop_number(Napi::Env env, const Napi::Object& o, const char* name);
// An array of exactly n integer strides (elements) in [0, hi], into dst.
void prop_strides(Napi::Env env, const Napi::Object& o, const char* name, int64_t* dst, int n,
                  int64_t hi);

// a * b, or throws ERR_ARG naming `name` on overflow.
int64_t checked_mul(Napi::Env env, int64_t a, int64_t b, const char* name);

// bytes = count * elem_size, or throws ERR_ARG on overflow.
size_t checked_bytes(Napi::Env env, int64_t count, size_t elem_size, const char* name);
// Throws ERR_SHAPE naming `name` if buf is smaller than `need` bytes.
void require_bytes(Napi::Env env, const Buf& buf, size_t need, const char* name);

// Every exported function is registered through this wrapper: a C++ exception other than a
// Napi::Error (std::bad_alloc from a buffer an op sized, any std::exception from the core) becomes
// a TensorfuseError (ERR_OOM, ERR_INTERNAL) instead of reaching node-addon-api, which would
// terminate the process (it catches only Napi::Error under NAPI_CPP_EXCEPTIONS).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw make_error(info.Env(), StatusCode::oom, "out of memory");
  } catch (const std::exception& e) {
    throw make_error(info.Env(), StatusCode::internal, e.what());
  }
}

// exports[name] = F behind guarded<F>.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void export_fn(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, guarded<F>, name));
}

// Runs `work` on a libuv worker (off the JS thread) and settles a Promise: resolves with
// undefined, or rejects with a TensorfuseError. `keep` holds the JS values (the TypedArrays)
// whose memory the work reads or writes, so the GC cannot take them meanwhile.
Napi::Value run_async(Napi::Env env, const std::vector<Napi::Value>& keep,
                      std::function<Status()> work);

}  // namespace napi
}  // namespace tf
