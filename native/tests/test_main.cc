// Runner of the C++ checks (framework: check.h). Runs every registered case, or those whose name
// contains one of the arguments, and ends with exactly "N passed, M failed" (cases, not checks);
// exits 1 when anything failed. TENSORFUSE_TEST_SEED=<n> replays a run's random data.
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "check.h"

namespace tf_test {
namespace {

struct Case {
  const char* name;
  TestFn fn;
};

std::vector<Case>& registry() {
  static std::vector<Case> cases;  // function-local: registrars run during static init
  return cases;
}

const char* g_case = "";
int g_case_failures = 0;
uint64_t g_checks = 0;
uint64_t g_seed = 0;
constexpr int kMaxPrinted = 20;  // per case: an exhaustive loop must not flood the log

uint64_t fnv1a(const char* s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; ++s) h = (h ^ uint8_t(*s)) * 0x100000001b3ull;
  return h;
}

uint64_t pick_seed() {
  if (const char* env = std::getenv("TENSORFUSE_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000007ull;
}

bool selected(const char* name, int argc, char** argv) {
  if (argc <= 1) return true;
  for (int i = 1; i < argc; ++i)
    if (std::string(name).find(argv[i]) != std::string::npos) return true;
  return false;
}

}  // namespace

Registrar::Registrar(const char* name, TestFn fn) { registry().push_back({name, fn}); }

void fail(const char* file, int line, const char* expr, const char* fmt, ...) {
  ++g_case_failures;
  if (g_case_failures > kMaxPrinted) return;
  std::fprintf(stdout, "  FAIL %s:%d: %s", file, line, expr);
  if (fmt && fmt[0] && fmt[1]) {  // fmt is " " plus the caller's format
    std::fprintf(stdout, ":");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stdout, fmt, ap);
    va_end(ap);
  }
  std::fprintf(stdout, "  [%s, TENSORFUSE_TEST_SEED=%llu]\n", g_case,
               static_cast<unsigned long long>(g_seed));
  if (g_case_failures == kMaxPrinted) std::fprintf(stdout, "  (further failures not printed)\n");
}

void pass() { ++g_checks; }
int failures() { return g_case_failures; }
uint64_t case_seed() { return g_seed ^ fnv1a(g_case); }

}  // namespace tf_test

int main(int argc, char** argv) {
  using namespace tf_test;
  g_seed = pick_seed();
  std::printf("tensorfuse C++ checks, TENSORFUSE_TEST_SEED=%llu\n",
              static_cast<unsigned long long>(g_seed));
  int passed = 0, failed = 0;
  for (const Case& c : registry()) {
    if (!selected(c.name, argc, argv)) continue;
    g_case = c.name;
    g_case_failures = 0;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c.fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, "no exception", " %s", e.what());
    } catch (...) {
      fail(__FILE__, __LINE__, "no exception", " unknown exception");
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const std::string note =
        g_case_failures ? " (" + std::to_string(g_case_failures) + " failed checks)" : "";
    std::printf("%s %-40s %8.1f ms%s\n", g_case_failures ? "FAIL" : "ok  ", c.name, ms,
                note.c_str());
    std::fflush(stdout);
    (g_case_failures ? failed : passed)++;
  }
  std::printf("%llu checks\n", static_cast<unsigned long long>(g_checks));
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
