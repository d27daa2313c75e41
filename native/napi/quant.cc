// Quantized linear / quantize / dequantize glue (lib/ops/quant.ts checks first; this re-checks
// every size against the buffers). JS:
//   quantLinear(x, xDtype, M, bits, N, K, groupSize, qweight, scales, zeros | null, perm | null,
//               bias | null, out, outDtype, activation[, strips | null])
//               activation: 0 float, 1 int8 (W8A8); strips: the weight in quant_pack_strips'
//               layout (read by the integer tiles of an ISA that wants them)
//   quantStripsBytes(bits, N, K, groupSize) -> bytes of the strip layout the active ISA wants
//               (0: none)
//   quantPackStrips(bits, N, K, groupSize, qweight, scales, zeros | null, perm | null, out)
//   quantQuantize(w, R, K, bits, groupSize, symmetric, qweight, scales, zeros | null)
//   quantDequantize(bits, N, K, groupSize, qweight, scales, zeros | null, perm | null, out)
// each with an Async twin returning a Promise. Sizes are element counts.
#include "napi_util.h"
#include "tensorfuse/quant.h"

namespace tf {
namespace napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

// Reads bits, N, K, groupSize, qweight, scales, zeros, perm starting at argument i.
QuantWeight parse_weight(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  QuantWeight w;
  w.bits = int(arg_int(info, i, "bits", 4, 8));
  if (w.bits != 4 && w.bits != 8)
    throw make_error(env, StatusCode::arg, "argument 'bits': expected 4 or 8");
  w.N = arg_int(info, i + 1, "N", 0, kMaxDim);
  w.K = arg_int(info, i + 2, "K", 0, kMaxDim);
  w.group_size = arg_int(info, i + 3, "groupSize", 0, kMaxDim);
  const Buf q = arg_buffer(info, i + 4, "qweight");
  const Buf s = arg_buffer(info, i + 5, "scales");
  const Buf z = arg_buffer(info, i + 6, "zeros", true);
  const Buf perm = arg_buffer(info, i + 7, "perm", true);
  if (w.group_size > 0 && w.K % w.group_size != 0)
    throw make_error(env, StatusCode::arg, "argument 'groupSize': must divide K");
  if (w.bits == 4 && w.K % 2 != 0)
    throw make_error(env, StatusCode::shape, "argument 'K': must be even for int4");
  const int64_t nq = checked_mul(env, w.N, w.bits == 8 ? w.K : w.K / 2, "qweight");
  const int64_t ns = checked_mul(env, w.N, w.groups(), "qweight");
  require_bytes(env, q, checked_bytes(env, nq, 1, "qweight"), "qweight");
  require_bytes(env, s, checked_bytes(env, ns, 4, "scales"), "scales");
  if (z.data) {
    if (w.bits != 4) throw make_error(env, StatusCode::arg, "argument 'zeros': int4 only");
    require_bytes(env, z, checked_bytes(env, ns, 1, "zeros"), "zeros");
  }
  if (perm.data) {
    require_bytes(env, perm, checked_bytes(env, w.K, 4, "perm"), "perm");
    const int32_t* p = static_cast<const int32_t*>(perm.data);
    for (int64_t j = 0; j < w.K; ++j)
      if (p[j] < 0 || p[j] >= w.K)
        throw make_error(env, StatusCode::arg, "argument 'perm': index out of range");
  }
  w.q = q.data;
  w.scales = static_cast<const float*>(s.data);
  w.zeros = static_cast<const uint8_t*>(z.data);
  w.perm = static_cast<const int32_t*>(perm.data);
  return w;
}

QuantLinearParams parse_linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 15)
    throw make_error(env, StatusCode::arg, "quantLinear: expected 15 arguments");
  QuantLinearParams p;
  const Buf x = arg_buffer(info, 0, "x");
  p.x_dtype = arg_dtype(info, 1, "x.dtype");
  p.M = arg_int(info, 2, "M", 0, kMaxDim);
  p.w = parse_weight(info, 3);
  const Buf bias = arg_buffer(info, 11, "bias", true);
  const Buf out = arg_buffer(info, 12, "out");
  p.y_dtype = arg_dtype(info, 13, "out.dtype");
  p.act = QuantActivation(arg_int(info, 14, "activation", 0, 1));
  if (!dtype_is_float(p.x_dtype) || !dtype_is_float(p.y_dtype))
    throw make_error(env, StatusCode::dtype,
                     "quantLinear: x and out must be float32, float16 or bfloat16");
  const int64_t nx = checked_mul(env, p.M, p.w.K, "x"), ny = checked_mul(env, p.M, p.w.N, "x");
  require_bytes(env, x, checked_bytes(env, nx, dtype_size(p.x_dtype), "x"), "x");
  require_bytes(env, out, checked_bytes(env, ny, dtype_size(p.y_dtype), "out"), "out");
  if (bias.data) require_bytes(env, bias, checked_bytes(env, p.w.N, 4, "bias"), "bias");
  p.x = x.data;
  p.y = out.data;
  p.bias = static_cast<const float*>(bias.data);
  const Buf strips = arg_buffer(info, 15, "strips", true);
  if (strips.data) {
    const int64_t need = quant_strips_bytes(p.w);
    if (need == 0)
      throw make_error(env, StatusCode::arg, "argument 'strips': this weight has no strip layout");
    require_bytes(env, strips, size_t(need), "strips");
    p.w.strips = static_cast<const uint8_t*>(strips.data);
  }
  return p;
}

Napi::Value QuantLinear(const Napi::CallbackInfo& info) {
  const QuantLinearParams p = parse_linear(info);
  const Status s = quant_linear(p);
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value QuantLinearAsync(const Napi::CallbackInfo& info) {
  const QuantLinearParams p = parse_linear(info);
  return run_async(info.Env(),
                   {info[0], info[7], info[8], info[9], info[10], info[11], info[12], info[15]},
                   [p] { return quant_linear(p); });
}

// quantStripsBytes(bits, N, K, groupSize)
Napi::Value QuantStripsBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  QuantWeight w;
  w.bits = int(arg_int(info, 0, "bits", 4, 8));
  w.N = arg_int(info, 1, "N", 0, kMaxDim);
  w.K = arg_int(info, 2, "K", 0, kMaxDim);
  w.group_size = arg_int(info, 3, "groupSize", 0, kMaxDim);
  if (w.group_size > 0 && w.K % w.group_size != 0)
    throw make_error(env, StatusCode::arg, "argument 'groupSize': must divide K");
  const int64_t bytes = quant_strips_wanted() ? quant_strips_bytes(w) : 0;
  return Napi::Number::New(env, double(bytes));
}

// quantPackStrips(bits, N, K, groupSize, qweight, scales, zeros, perm, out)
Napi::Value QuantPackStrips(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9)
    throw make_error(env, StatusCode::arg, "quantPackStrips: expected 9 arguments");
  const QuantWeight w = parse_weight(info, 0);
  const Buf out = arg_buffer(info, 8, "out");
  const int64_t need = quant_strips_bytes(w);
  if (need == 0)
    throw make_error(env, StatusCode::arg, "argument 'out': this weight has no strip layout");
  require_bytes(env, out, size_t(need), "out");
  const Status s = quant_pack_strips(w, static_cast<uint8_t*>(out.data));
  if (!s.ok()) throw_status(env, s);
  return env.Undefined();
}

struct QuantizeCall {
  const float* w = nullptr;
  int64_t R = 0, K = 0, group_size = 0;
  int bits = 8;
  bool symmetric = true;
  void* q = nullptr;
  float* scales = nullptr;
  uint8_t* zeros = nullptr;
  Status run() const {
    return quant_quantize(w, R, K, bits, group_size, symmetric, q, scales, zeros);
  }
};

QuantizeCall parse_quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9)
    throw make_error(env, StatusCode::arg, "quantQuantize: expected 9 arguments");
  QuantizeCall c;
  const Buf w = arg_buffer(info, 0, "w");
  c.R = arg_int(info, 1, "R", 0, kMaxDim);
  c.K = arg_int(info, 2, "K", 0, kMaxDim);
  c.bits = int(arg_int(info, 3, "bits", 4, 8));
  c.group_size = arg_int(info, 4, "groupSize", 0, kMaxDim);
  c.symmetric = arg_bool(info, 5, "symmetric");
  const Buf q = arg_buffer(info, 6, "qweight");
  const Buf s = arg_buffer(info, 7, "scales");
  const Buf z = arg_buffer(info, 8, "zeros", true);
  if (c.bits != 4 && c.bits != 8)
    throw make_error(env, StatusCode::arg, "argument 'bits': expected 4 or 8");
  if (c.group_size > 0 && c.K % c.group_size != 0)
    throw make_error(env, StatusCode::arg, "argument 'groupSize': must divide K");
  if (c.bits == 4 && c.K % 2 != 0)
    throw make_error(env, StatusCode::shape, "argument 'K': must be even for int4");
  const int64_t G = c.group_size > 0 ? c.K / c.group_size : 1;
  const int64_t nw = checked_mul(env, c.R, c.K, "w"), ns = checked_mul(env, c.R, G, "w");
  require_bytes(env, w, checked_bytes(env, nw, 4, "w"), "w");
  require_bytes(env, q, checked_bytes(env, c.bits == 8 ? nw : nw / 2, 1, "qweight"), "qweight");
  require_bytes(env, s, checked_bytes(env, ns, 4, "scales"), "scales");
  if (!c.symmetric) require_bytes(env, z, checked_bytes(env, ns, 1, "zeros"), "zeros");
  c.w = static_cast<const float*>(w.data);
  c.q = q.data;
  c.scales = static_cast<float*>(s.data);
  c.zeros = c.symmetric ? nullptr : static_cast<uint8_t*>(z.data);
  return c;
}

Napi::Value QuantQuantize(const Napi::CallbackInfo& info) {
  const QuantizeCall c = parse_quantize(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value QuantQuantizeAsync(const Napi::CallbackInfo& info) {
  const QuantizeCall c = parse_quantize(info);
  return run_async(info.Env(), {info[0], info[6], info[7], info[8]}, [c] { return c.run(); });
}

struct DequantCall {
  QuantWeight w;
  float* out = nullptr;
  Status run() const { return quant_dequantize(w, out); }
};

DequantCall parse_dequant(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9)
    throw make_error(env, StatusCode::arg, "quantDequantize: expected 9 arguments");
  DequantCall c;
  c.w = parse_weight(info, 0);
  const Buf out = arg_buffer(info, 8, "out");
  const int64_t n = checked_mul(env, c.w.N, c.w.K, "out");
  require_bytes(env, out, checked_bytes(env, n, 4, "out"), "out");
  c.out = static_cast<float*>(out.data);
  return c;
}

Napi::Value QuantDequantize(const Napi::CallbackInfo& info) {
  const DequantCall c = parse_dequant(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value QuantDequantizeAsync(const Napi::CallbackInfo& info) {
  const DequantCall c = parse_dequant(info);
  return run_async(info.Env(), {info[4], info[5], info[6], info[7], info[8]},
                   [c] { return c.run(); });
}

struct UnpackCall {
  QuantFormat format = QuantFormat::gptq;
  const void* src = nullptr;
  const uint8_t* src4 = nullptr;  // permute: int4 rows
  const int32_t* perm = nullptr;
  int64_t N = 0, K = 0;
  void* dst = nullptr;
  Status run() const {
    return perm ? quant_permute4(src4, N, K, perm, static_cast<uint8_t*>(dst))
                : quant_unpack(format, src, N, K, dst);
  }
};

// quantUnpack(format, src, N, K, dst)
UnpackCall parse_unpack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5)
    throw make_error(env, StatusCode::arg, "quantUnpack: expected 5 arguments");
  UnpackCall c;
  c.format = QuantFormat(arg_int(info, 0, "format", 0, 3));
  const Buf src = arg_buffer(info, 1, "src");
  c.N = arg_int(info, 2, "N", 0, kMaxDim);
  c.K = arg_int(info, 3, "K", 0, kMaxDim);
  const Buf dst = arg_buffer(info, 4, "dst");
  const int64_t nk = checked_mul(env, c.N, c.K, "src");
  int64_t need = 0;
  switch (c.format) {
    case QuantFormat::gptq:
    case QuantFormat::awq: need = nk / 2; break;  // 8 nibbles per 4 bytes
    case QuantFormat::q4_0: need = nk / 32 * 18; break;
    case QuantFormat::q8_0: need = nk / 32 * 34; break;
  }
  require_bytes(env, src, checked_bytes(env, need, 1, "src"), "src");
  const int64_t ndst = c.format == QuantFormat::q8_0 ? nk : nk / 2;
  require_bytes(env, dst, checked_bytes(env, ndst, 1, "dst"), "dst");
  c.src = src.data;
  c.dst = dst.data;
  return c;
}

// quantPermute4(src, N, K, perm, dst)
UnpackCall parse_permute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5)
    throw make_error(env, StatusCode::arg, "quantPermute4: expected 5 arguments");
  UnpackCall c;
  const Buf src = arg_buffer(info, 0, "src");
  c.N = arg_int(info, 1, "N", 0, kMaxDim);
  c.K = arg_int(info, 2, "K", 0, kMaxDim);
  const Buf perm = arg_buffer(info, 3, "perm");
  const Buf dst = arg_buffer(info, 4, "dst");
  const int64_t nk = checked_mul(env, c.N, c.K, "src");
  require_bytes(env, src, checked_bytes(env, nk / 2, 1, "src"), "src");
  require_bytes(env, dst, checked_bytes(env, nk / 2, 1, "dst"), "dst");
  require_bytes(env, perm, checked_bytes(env, c.K, 4, "perm"), "perm");
  if (c.K % 2 != 0) throw make_error(env, StatusCode::shape, "argument 'K': must be even");
  c.src4 = static_cast<const uint8_t*>(src.data);
  c.perm = static_cast<const int32_t*>(perm.data);
  c.dst = dst.data;
  return c;
}

Napi::Value QuantUnpack(const Napi::CallbackInfo& info) {
  const UnpackCall c = parse_unpack(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value QuantUnpackAsync(const Napi::CallbackInfo& info) {
  const UnpackCall c = parse_unpack(info);
  return run_async(info.Env(), {info[1], info[4]}, [c] { return c.run(); });
}

Napi::Value QuantPermute4(const Napi::CallbackInfo& info) {
  const UnpackCall c = parse_permute(info);
  const Status s = c.run();
  if (!s.ok()) throw_status(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value QuantPermute4Async(const Napi::CallbackInfo& info) {
  const UnpackCall c = parse_permute(info);
  return run_async(info.Env(), {info[0], info[3], info[4]}, [c] { return c.run(); });
}

}  // namespace

void register_quant(Napi::Env env, Napi::Object exports) {
  export_fn<QuantUnpack>(env, exports, "quantUnpack");
  export_fn<QuantUnpackAsync>(env, exports, "quantUnpackAsync");
  export_fn<QuantPermute4>(env, exports, "quantPermute4");
  export_fn<QuantPermute4Async>(env, exports, "quantPermute4Async");
  export_fn<QuantLinear>(env, exports, "quantLinear");
  export_fn<QuantLinearAsync>(env, exports, "quantLinearAsync");
  export_fn<QuantStripsBytes>(env, exports, "quantStripsBytes");
  export_fn<QuantPackStrips>(env, exports, "quantPackStrips");
  export_fn<QuantQuantize>(env, exports, "quantQuantize");
  export_fn<QuantQuantizeAsync>(env, exports, "quantQuantizeAsync");
  export_fn<QuantDequantize>(env, exports, "quantDequantize");
  export_fn<QuantDequantizeAsync>(env, exports, "quantDequantizeAsync");
}

}  // namespace napi
}  // namespace tf
