// Checked int64 arithmetic (include/tensorfuse/overflow.h): the portable tests, which the MSVC
// build uses, agree with the GCC/Clang builtins on the edges of int64 and on random operands.
#include <cstdint>
#include <limits>
#include <vector>

#include "check.h"
#include "tensorfuse/overflow.h"

using namespace tf;

TF_TEST(overflow_portable_matches_builtins) {
  constexpr int64_t hi = std::numeric_limits<int64_t>::max();
  constexpr int64_t lo = std::numeric_limits<int64_t>::min();
  constexpr int64_t big = int64_t(1) << 32, root = 3037000499;  // root^2 < hi < (root + 1)^2
  std::vector<int64_t> v = {0,      1,      -1,     2,          -2,         3,   hi,
                            lo,     hi - 1, lo + 1, hi / 2,     lo / 2,     big, -big,
                            root,   root + 1, -root - 1, hi / 2 + 1, lo / 2 - 1};
  tf_test::Rng rng(tf_test::case_seed());
  for (int i = 0; i < 200; ++i) {
    const int shift = int(rng.below(63));
    const int64_t m = int64_t(rng.below(1 << 30)) << (shift / 2);
    v.push_back(rng.below(2) ? m : -m);
  }
  int checked = 0;
  for (int64_t a : v)
    for (int64_t b : v) {
      int64_t want = 0, got = 0;
#if defined(__GNUC__) || defined(__clang__)
      const bool ovf = __builtin_mul_overflow(a, b, &want);
      const bool povf = mul_overflow_portable(a, b, &got);
      CHECK(ovf == povf && (ovf || got == want), "mul %lld * %lld", (long long)a, (long long)b);
      const bool aovf = __builtin_add_overflow(a, b, &want);
      const bool paovf = add_overflow_portable(a, b, &got);
      CHECK(aovf == paovf && (aovf || got == want), "add %lld + %lld", (long long)a, (long long)b);
      ++checked;
#else
      (void)want, (void)got;
#endif
    }
#if defined(__GNUC__) || defined(__clang__)
  CHECK(checked > 40000);
#endif
  int64_t r = 0;
  CHECK(mul_overflow(hi, 2, &r) && mul_overflow(lo, -1, &r));
  CHECK(!mul_overflow(-1, hi, &r) && r == -hi);
  CHECK(add_overflow(hi, 1, &r) && add_overflow(lo, -1, &r));
  CHECK(!add_overflow(lo, hi, &r) && r == -1);
}
