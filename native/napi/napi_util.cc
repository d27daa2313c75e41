#include "napi_util.h"

#include <cmath>
#include <limits>

#include "tensorfuse/overflow.h"

namespace tf {
namespace napi {

Napi::Error make_error(Napi::Env env, StatusCode code, const std::string& message) {
  EnvData* data = env.GetInstanceData<EnvData>();
  const char* code_name = status_code_name(code);
  if (data && !data->error_ctor.IsEmpty()) {
    Napi::Object err = data->error_ctor.New(
        {Napi::String::New(env, code_name), Napi::String::New(env, message)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code_name));
  return err;
}

void throw_status(Napi::Env env, const Status& s) { throw make_error(env, s.code, s.message); }

static std::string where(const char* name) { return std::string("argument '") + name + "'"; }

// The value readers behind both the positional (arg_*) and the property (prop_*) ones.
static Buf to_buffer(Napi::Env env, const Napi::Value& v, const char* name, bool optional) {
  if (optional && (v.IsNull() || v.IsUndefined())) return Buf{};
  if (!v.IsTypedArray())
    throw make_error(env, StatusCode::arg, where(name) + ": expected a TypedArray");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  Buf b;
  b.bytes = ta.ByteLength();
  if (b.bytes > 0) {
    if (ab.Data() == nullptr)
      throw make_error(env, StatusCode::disposed, where(name) + ": its ArrayBuffer was detached");
    b.data = static_cast<char*>(ab.Data()) + ta.ByteOffset();
  }
  return b;
}

static int64_t to_int(Napi::Env env, const Napi::Value& v, const char* name, int64_t lo,
                      int64_t hi) {
  if (!v.IsNumber()) throw make_error(env, StatusCode::arg, where(name) + ": expected an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < double(lo) || d > double(hi))
    throw make_error(env, StatusCode::arg,
                     where(name) + ": expected an integer in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
  return int64_t(d);
}

static double to_number(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw make_error(env, StatusCode::arg, where(name) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

Buf arg_buffer(const Napi::CallbackInfo& info, size_t i, const char* name, bool optional) {
  return to_buffer(info.Env(), info[i], name, optional);
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  return to_int(info.Env(), info[i], name, lo, hi);
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean())
    throw make_error(info.Env(), StatusCode::arg, where(name) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return to_number(info.Env(), info[i], name);
}

DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return DType(arg_int(info, i, name, 0, kNumDTypes - 1));
}

DType arg_float_dtype(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const DType d = arg_dtype(info, i, name);
  if (!dtype_is_float(d))
    throw make_error(info.Env(), StatusCode::dtype,
                     where(name) + ": expected float32, float16 or bfloat16");
  return d;
}

Buf prop_buffer(Napi::Env env, const Napi::Object& o, const char* name, bool optional) {
  return to_buffer(env, o.Get(name), name, optional);
}

int64_t prop_int(Napi::Env env, const Napi::Object& o, const char* name, int64_t lo, int64_t hi) {
  return to_int(env, o.Get(name), name, lo, hi);
}

double prop_number(Napi::Env env, const Napi::Object& o, const char* name) {
  return to_number(env, o.Get(name), name);
}

void prop_strides(Napi::Env env, const Napi::Object& o, const char* name, int64_t* dst, int n,
                  int64_t hi) {
  const Napi::Value v = o.Get(name);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != uint32_t(n))
    throw make_error(env, StatusCode::arg,
                     where(name) + ": expected " + std::to_string(n) + " strides");
  const Napi::Array a = v.As<Napi::Array>();
  for (int i = 0; i < n; ++i) {
    const Napi::Value e = a.Get(uint32_t(i));
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1.0;
    if (!(d >= 0 && d <= double(hi)) || d != double(int64_t(d)))
      throw make_error(env, StatusCode::arg, where(name) + ": bad stride");
    dst[i] = int64_t(d);
  }
}

int64_t checked_mul(Napi::Env env, int64_t a, int64_t b, const char* name) {
  int64_t r;
  if (mul_overflow(a, b, &r))
    throw make_error(env, StatusCode::arg, where(name) + ": size overflows");
  return r;
}

size_t checked_bytes(Napi::Env env, int64_t count, size_t elem_size, const char* name) {
  if (count < 0) throw make_error(env, StatusCode::arg, where(name) + ": negative size");
  if (uint64_t(count) > std::numeric_limits<size_t>::max() / elem_size)
    throw make_error(env, StatusCode::arg, where(name) + ": byte size overflows");
  return size_t(count) * elem_size;
}

void require_bytes(Napi::Env env, const Buf& buf, size_t need, const char* name) {
  if (buf.bytes < need)
    throw make_error(env, StatusCode::shape,
                     where(name) + ": buffer holds " + std::to_string(buf.bytes) +
                         " bytes, the shape needs " + std::to_string(need));
}

namespace {

class AsyncOp : public Napi::AsyncWorker {
 public:
  AsyncOp(Napi::Env env, const std::vector<Napi::Value>& keep, std::function<Status()> work)
      : Napi::AsyncWorker(env, "tensorfuse:op"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)) {
    for (const auto& v : keep)
      if (v.IsObject()) keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      status_ = work_();
    } catch (const std::bad_alloc&) {
      status_ = Status(StatusCode::oom, "out of memory");
    } catch (const std::exception& e) {
      status_ = Status(StatusCode::internal, e.what());
    }
  }
  // Settling the promise can fail when the environment is being torn down (a worker thread that
  // exits or is terminated while the op runs): JS can no longer run there, node-addon-api throws,
  // and an exception leaving OnOK would terminate the whole process. Nobody is left to observe
  // the promise then, so the failure is dropped.
  void OnOK() override {
    try {
      Napi::Env env = Env();
      Napi::HandleScope scope(env);
      if (status_.ok()) deferred_.Resolve(env.Undefined());
      else deferred_.Reject(make_error(env, status_.code, status_.message).Value());
    } catch (...) {
    }
    keep_.clear();
  }
  void OnError(const Napi::Error& e) override {
    try {
      deferred_.Reject(e.Value());
    } catch (...) {
    }
    keep_.clear();
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<Status()> work_;
  std::vector<Napi::ObjectReference> keep_;
  Status status_;
};

}  // namespace

Napi::Value run_async(Napi::Env env, const std::vector<Napi::Value>& keep,
                      std::function<Status()> work) {
  auto* op = new AsyncOp(env, keep, std::move(work));
  Napi::Promise p = op->promise();
  op->Queue();
  return p;
}

}  // namespace napi
}  // namespace tf
