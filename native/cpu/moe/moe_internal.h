// The per-ISA pieces of the MoE family (moe_generic.cc, moe_x86_avx2.cc fill one table each) and
// helpers shared by its files. The GEMMs of the expert layer come from the GEMM engine, which dispatches
// per ISA on its own; what is here is the element-wise work around them.
#pragma once
#include <cstdint>
#include <vector>

#include "tensorfuse/cpu_features.h"
#include "tensorfuse/moe.h"

namespace tf {
namespace moe_cpu {

struct Kernels {
  Isa isa;
  // out[i] = exp(x[i] - m); returns the float32 sum of out (lane-wise partial sums).
  float (*exp_shift)(const float* x, float m, int64_t n, float* out);
  // out[i] = 1 / (1 + exp(-x[i])).
  void (*sigmoid)(const float* x, int64_t n, float* out);
  // y[i] += a * x[i].
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // g[i] *= u[i].
  void (*mul)(float* g, const float* u, int64_t n);
  // Largest non-NaN value of x[0..n) (-inf when none); *has_nan tells whether x holds a NaN.
  float (*max_of)(const float* x, int64_t n, bool* has_nan);
  // First i in [from, n) with keys[i] > thr (an ordered compare: NaN never is), else n.
  int64_t (*first_above)(const float* keys, int64_t from, int64_t n, float thr);
  // The GLU step of the expert layer: g[i] = act(g[i]) * u[i] (u null: act(g[i])).
  void (*glu)(Activation act, float* g, const float* u, int64_t n);
};

// Scalar activations (gelu: erf form), shared by the generic and the tail of the ISA paths.
float act_scalar(float v, Activation act);

const Kernels& kernels_generic();
const Kernels* kernels_avx2();  // nullptr when not compiled in
const Kernels& kernels_for(Isa isa);
inline const Kernels& kernels() { return kernels_for(active_isa()); }

inline void axpy(float a, const float* x, float* y, int64_t n) { kernels().axpy(a, x, y, n); }

// slot -> row of the dispatched tensor (-1 for a slot not in order), for a checked routing.
std::vector<int64_t> slot_rows(const MoeRoutingView& r);

}  // namespace moe_cpu
}  // namespace tf
