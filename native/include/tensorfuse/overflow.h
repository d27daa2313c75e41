// Checked int64 arithmetic for sizes computed from user input: each returns true when the exact
// result does not fit (then *r is unspecified). GCC and Clang use their builtins; other compilers
// (MSVC: the Windows prebuilt binaries) the portable tests below, which the native tests hold to
// the builtins on the edge cases.
#pragma once
#include <cstdint>
#include <limits>

namespace tf {

inline bool mul_overflow_portable(int64_t a, int64_t b, int64_t* r) {
  constexpr int64_t hi = std::numeric_limits<int64_t>::max();
  constexpr int64_t lo = std::numeric_limits<int64_t>::min();
  if (a > 0) {
    if (b > 0 ? a > hi / b : b < lo / a) return true;
  } else if (a < 0) {
    if (b > 0 ? a < lo / b : b < hi / a) return true;
  }
  *r = int64_t(uint64_t(a) * uint64_t(b));
  return false;
}

inline bool add_overflow_portable(int64_t a, int64_t b, int64_t* r) {
  constexpr int64_t hi = std::numeric_limits<int64_t>::max();
  constexpr int64_t lo = std::numeric_limits<int64_t>::min();
  if (b > 0 ? a > hi - b : a < lo - b) return true;
  *r = a + b;
  return false;
}

inline bool mul_overflow(int64_t a, int64_t b, int64_t* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_mul_overflow(a, b, r);
#else
  return mul_overflow_portable(a, b, r);
#endif
}

inline bool add_overflow(int64_t a, int64_t b, int64_t* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_add_overflow(a, b, r);
#else
  return add_overflow_portable(a, b, r);
#endif
}

}  // namespace tf
