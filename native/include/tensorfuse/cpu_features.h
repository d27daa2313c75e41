// CPU feature detection (cpuid + xgetbv on x86, hwcaps on arm64) and the instruction-set level
// that kernel dispatch tables are filled for.
#pragma once
#include <string>
#include <vector>

namespace tf {

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avxvnni = false;
  bool neon = false, asimddp = false, fp16 = false, i8mm = false, sve = false;
};

const CpuFeatures& cpu_features();
std::vector<std::string> cpu_feature_names();
std::string cpu_model_name();

// Instruction-set levels that kernels are written for, best last. avx512 is AVX2 + FMA + F16C
// with AVX-512 F/BW/VL and VNNI (Ice Lake, Zen 4 and later): a family without its own AVX-512
// table runs its AVX2 kernels there.
enum class Isa : int { generic = 0, neon = 1, avx2 = 2, avx512 = 3 };
constexpr int kIsaCount = 4;
// Whether a level runs the AVX2 kernels (avx2 itself, or avx512 where a family has no table).
inline bool isa_has_avx2(Isa isa) { return isa == Isa::avx2 || isa == Isa::avx512; }
const char* isa_name(Isa isa);
// The best level this CPU supports and this binary was compiled with.
Isa best_isa();
// The level dispatch uses now: best_isa() unless forced (TENSORFUSE_ISA or set_isa).
Isa active_isa();
// Force a level (tests use this to hold the fast paths to the generic one). Returns false if the
// CPU or the build lacks it.
bool set_isa(Isa isa);
bool isa_supported(Isa isa);

}  // namespace tf
