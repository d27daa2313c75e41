// Module init. Context-aware (NODE_API_MODULE): every worker_thread gets its own EnvData.
#include <cstdlib>
#include <cstring>

#include "napi_util.h"
#include "tensorfuse/scratch.h"

namespace tf {
namespace napi {

void register_backend(Napi::Env env, Napi::Object exports);
void register_tensor(Napi::Env env, Napi::Object exports);
void register_gemm(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_moe(Napi::Env env, Napi::Object exports);
void register_prune(Napi::Env env, Napi::Object exports);
void register_quant(Napi::Env env, Napi::Object exports);

namespace {

// lib/native.ts hands over TensorfuseError so native errors are instances of it.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "expected the TensorfuseError class");
  env.GetInstanceData<EnvData>()->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// Once per process (workers load the addon again): see tune_malloc_for_large_buffers.
bool malloc_tuned() {
  static const bool tuned = [] {
    const char* v = std::getenv("TENSORFUSE_MALLOC_TUNING");
    if (v && std::strcmp(v, "0") == 0) return false;
    return tune_malloc_for_large_buffers();
  }();
  return tuned;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const bool tuned = malloc_tuned();
  env.SetInstanceData(new EnvData());
  export_fn<SetErrorClass>(env, exports, "setErrorClass");
  register_backend(env, exports);
  register_tensor(env, exports);
  register_gemm(env, exports);
  register_attention(env, exports);
  register_moe(env, exports);
  register_prune(env, exports);
  register_quant(env, exports);
  exports.Set("mallocTuned", Napi::Boolean::New(env, tuned));
  return exports;
}

}  // namespace
}  // namespace napi
}  // namespace tf

static Napi::Object TensorfuseInit(Napi::Env env, Napi::Object exports) {
  return tf::napi::Init(env, exports);
}

NODE_API_MODULE(tensorfuse, TensorfuseInit)
