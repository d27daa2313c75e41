// CPU feature detection. x86: cpuid leaves 1 and 7 plus xgetbv, so AVX is used only when the OS
// saves the YMM/ZMM state (Intel SDM vol. 1, 13.3). arm64: NEON is baseline; the rest from hwcaps.
#include "tensorfuse/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#define TF_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif
#if defined(TF_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace tf {
namespace {

#ifdef TF_X86
void cpuid(int leaf, int sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int regs[4];
  __cpuidex(regs, leaf, sub);
  for (int i = 0; i < 4; ++i) r[i] = unsigned(regs[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}
unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (unsigned long long)hi << 32 | lo;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef TF_X86
  unsigned r[4];
  cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  // vendor string: ebx, edx, ecx
  char vendor[13] = {};
  std::memcpy(vendor, &r[1], 4);
  std::memcpy(vendor + 4, &r[3], 4);
  std::memcpy(vendor + 8, &r[2], 4);
  f.vendor_amd =
      std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
  cpuid(1, 0, r);
  const bool osxsave = (r[2] >> 27) & 1;
  f.sse42 = (r[2] >> 20) & 1;
  const bool avx_cpu = (r[2] >> 28) & 1;
  const bool fma_cpu = (r[2] >> 12) & 1;
  const bool f16c_cpu = (r[2] >> 29) & 1;
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  f.avx = avx_cpu && ymm_os;
  f.fma = fma_cpu && f.avx;
  f.f16c = f16c_cpu && f.avx;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    f.avx2 = ((r[1] >> 5) & 1) && f.avx;
    f.avx512f = ((r[1] >> 16) & 1) && zmm_os;
    f.avx512bw = ((r[1] >> 30) & 1) && f.avx512f;
    f.avx512vl = ((r[1] >> 31) & 1) && f.avx512f;
    f.avx512vnni = ((r[2] >> 11) & 1) && f.avx512f;
    // AMX: cpuid 7.0 EDX bits 22 (bf16), 24 (tile), 25 (int8); XCR0 bits 17-18 (tile state)
    const bool tile_os = ((xcr0 >> 17) & 3) == 3;
    f.amx_tile = ((r[3] >> 24) & 1) && tile_os;
    f.amx_bf16 = ((r[3] >> 22) & 1) && f.amx_tile;
    f.amx_int8 = ((r[3] >> 25) & 1) && f.amx_tile;
    cpuid(7, 1, r);
    f.avxvnni = ((r[0] >> 4) & 1) && f.avx2;
    f.avx512bf16 = ((r[0] >> 5) & 1) && f.avx512f;
  }
#elif defined(__aarch64__)
  f.neon = true;
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.fp16 = (hw >> 9) & 1;      // HWCAP_FPHP
  f.asimddp = (hw >> 20) & 1;  // HWCAP_ASIMDDP
  f.sve = (hw >> 22) & 1;      // HWCAP_SVE
  f.i8mm = (hw2 >> 13) & 1;    // HWCAP2_I8MM
#endif
#endif
  return f;
}

// What this binary was compiled with: the ISA translation units exist only on their arch.
bool compiled_with(Isa isa) {
  switch (isa) {
    case Isa::generic: return true;
#ifdef TF_X86
    case Isa::avx2:
    case Isa::avx512: return true;
#else
    case Isa::avx2:
    case Isa::avx512: return false;
#endif
#if defined(__aarch64__)
    case Isa::neon: return true;
#else
    case Isa::neon: return false;
#endif
  }
  return false;
}

int parse_isa_env() {
  const char* env = std::getenv("TENSORFUSE_ISA");
  if (!env) return -1;
  for (int i = 0; i < kIsaCount; ++i)
    if (std::strcmp(env, isa_name(Isa(i))) == 0 && isa_supported(Isa(i))) return i;
  return -1;
}

std::atomic<int> g_forced{-2};  // -2: not read yet, -1: none

// A trait's override: -2 not read yet, -1 none (the vendor's answer), 0 / 1 forced.
int trait_env(const char* name) {
  const char* env = std::getenv(name);
  if (!env) return -1;
  if (std::strcmp(env, "1") == 0) return 1;
  if (std::strcmp(env, "0") == 0) return 0;
  return -1;
}
bool trait(std::atomic<int>& forced, const char* env, bool vendor_default) {
  int v = forced.load(std::memory_order_relaxed);
  if (v == -2) {
    v = trait_env(env);
    forced.store(v, std::memory_order_relaxed);
  }
  return v >= 0 ? v == 1 : vendor_default;
}
std::atomic<int> g_subnormals{-2}, g_bf16_dot{-2}, g_amx{-2};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::vector<std::string> cpu_feature_names() {
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> out;
  auto add = [&](bool on, const char* name) { if (on) out.emplace_back(name); };
  add(f.sse42, "sse4.2"); add(f.avx, "avx"); add(f.avx2, "avx2"); add(f.fma, "fma");
  add(f.f16c, "f16c"); add(f.avx512f, "avx512f"); add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl"); add(f.avx512vnni, "avx512vnni"); add(f.avx512bf16, "avx512bf16");
  add(f.avxvnni, "avxvnni"); add(f.amx_int8, "amx-int8"); add(f.amx_bf16, "amx-bf16");
  add(f.neon, "neon"); add(f.asimddp, "asimddp");
  add(f.fp16, "fp16"); add(f.i8mm, "i8mm"); add(f.sve, "sve");
  return out;
}

std::string cpu_model_name() {
#if defined(__linux__)
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
#endif
  return "unknown";
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::neon: return "neon";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  if (!compiled_with(isa)) return false;
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::generic: return true;
    case Isa::neon: return f.neon;
    case Isa::avx2: return f.avx2 && f.fma && f.f16c;
    case Isa::avx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  if (isa_supported(Isa::neon)) return Isa::neon;
  return Isa::generic;
}

Isa active_isa() {
  int forced = g_forced.load(std::memory_order_relaxed);
  if (forced == -2) {
    forced = parse_isa_env();
    g_forced.store(forced, std::memory_order_relaxed);
  }
  return forced >= 0 ? Isa(forced) : best_isa();
}

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_forced.store(isa == best_isa() ? -1 : int(isa), std::memory_order_relaxed);
  return true;
}

bool fast_subnormals() {
  return trait(g_subnormals, "TENSORFUSE_SUBNORMALS", cpu_features().vendor_amd);
}
bool fast_bf16_dot() {
  return trait(g_bf16_dot, "TENSORFUSE_BF16_DOT", cpu_features().vendor_amd);
}
bool use_amx() { return trait(g_amx, "TENSORFUSE_AMX", true); }

namespace {
bool amx_permitted() {
#if defined(TF_X86) && defined(__linux__)
  if (!cpu_features().amx_tile) return false;
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
}  // namespace

bool amx_usable(Amx kind) {
  static const bool permitted = amx_permitted();
  const CpuFeatures& f = cpu_features();
  return permitted && (kind == Amx::int8 ? f.amx_int8 : f.amx_bf16) && use_amx();
}
void set_use_amx(int on) { g_amx.store(on < 0 ? -1 : on > 0, std::memory_order_relaxed); }
void set_fast_subnormals(int on) {
  g_subnormals.store(on < 0 ? -1 : on > 0, std::memory_order_relaxed);
}
void set_fast_bf16_dot(int on) {
  g_bf16_dot.store(on < 0 ? -1 : on > 0, std::memory_order_relaxed);
}

}  // namespace tf
