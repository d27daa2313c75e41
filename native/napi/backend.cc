// backend.info / setThreads / setIsa, and the machine-limit probes the benchmark header uses.
#include "napi_util.h"
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/probe.h"
#include "tensorfuse/threadpool.h"

#ifndef TENSORFUSE_VERSION
#define TENSORFUSE_VERSION "0.0.0"
#endif

namespace tf {
namespace napi {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", TENSORFUSE_VERSION);
  Napi::Array feats = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& f : cpu_feature_names()) feats.Set(i++, f);
  o.Set("features", feats);
  o.Set("threads", threads());
  o.Set("hardwareThreads", hardware_threads());
  o.Set("isa", isa_name(active_isa()));
  o.Set("bestIsa", isa_name(best_isa()));
  Napi::Array isas = Napi::Array::New(env);
  i = 0;
  for (int k = 0; k < kIsaCount; ++k)
    if (isa_supported(Isa(k))) isas.Set(i++, isa_name(Isa(k)));
  o.Set("isas", isas);
  o.Set("model", cpu_model_name());
#ifdef TENSORFUSE_WITH_CUDA
  o.Set("cudaCompiled", true);
#else
  o.Set("cudaCompiled", false);
#endif
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_threads(int(arg_int(info, 0, "n", 1, 1024)));
  return info.Env().Undefined();
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw make_error(env, StatusCode::arg, "argument 'isa': expected a string");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  for (int k = 0; k < kIsaCount; ++k) {
    if (name == isa_name(Isa(k))) {
      if (!set_isa(Isa(k)))
        throw make_error(env, StatusCode::unsupported,
                         "argument 'isa': '" + name + "' is not supported on this CPU or build");
      return env.Undefined();
    }
  }
  throw make_error(env, StatusCode::arg, "argument 'isa': unknown instruction set '" + name + "'");
}

Napi::Value ProbeFma(const Napi::CallbackInfo& info) {
  const int t = int(arg_int(info, 0, "threads", 1, 1024));
  const int64_t iters = arg_int(info, 1, "iters", 1, int64_t(1) << 40);
  return Napi::Number::New(info.Env(), probe_fma_gflops(t, iters));
}

Napi::Value ProbeBandwidth(const Napi::CallbackInfo& info) {
  const int t = int(arg_int(info, 0, "threads", 1, 1024));
  const int64_t bytes = arg_int(info, 1, "bytes", 1 << 20, int64_t(1) << 34);
  const int reps = int(arg_int(info, 2, "reps", 1, 1000));
  return Napi::Number::New(info.Env(), probe_read_bandwidth_gbs(t, bytes, reps));
}

}  // namespace

void register_backend(Napi::Env env, Napi::Object exports) {
  export_fn<Info>(env, exports, "info");
  export_fn<SetThreads>(env, exports, "setThreads");
  export_fn<SetIsa>(env, exports, "setIsa");
  export_fn<ProbeFma>(env, exports, "probeFma");
  export_fn<ProbeBandwidth>(env, exports, "probeBandwidth");
}

}  // namespace napi
}  // namespace tf
