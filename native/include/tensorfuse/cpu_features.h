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
  bool vendor_amd = false;  // AuthenticAMD or HygonGenuine
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;  // cpuid and XCR0 (tile state)
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

// Traits that choose between two correct kernels of one level, by vendor unless overridden
// (TENSORFUSE_SUBNORMALS / TENSORFUSE_BF16_DOT = 1 or 0, or the setters: tests run both forms on
// any x86 CPU; -1 goes back to the vendor's answer).
// fast_subnormals: float32 arithmetic on subnormal inputs runs at full speed (AMD). Intel cores
//   take a microcode assist per such operation: the quantized GEMVs that read int4 / int8 codes
//   as subnormal floats ran 30-50x slower on a Sapphire-Rapids-class Xeon (bench/NOTES.md).
// fast_bf16_dot: VDPBF16PS at the FMA's rate (AMD Zen 4 / 5, where bfloat16 attention prefill
//   ran 1.7-1.8x float32); on that Xeon the same kernels ran 0.65x float32.
// use_amx: take AMX tiles where the CPU and the OS offer them (default 1; TENSORFUSE_AMX = 0
//   turns them off, and tests hold the AMX kernels to the AVX-512 ones through the setter).
bool fast_subnormals();
bool fast_bf16_dot();
bool use_amx();
// AMX with int8 / bfloat16 products usable here now: the CPU has it, the OS enabled the tile
// state, this process got permission for it (Linux: arch_prctl ARCH_REQ_XCOMP_PERM, asked once,
// Documentation/arch/x86/xstate.rst), and use_amx().
enum class Amx { int8, bf16 };
bool amx_usable(Amx kind);
void set_fast_subnormals(int on);
void set_fast_bf16_dot(int on);
void set_use_amx(int on);

}  // namespace tf
