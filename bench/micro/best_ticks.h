// The fewest TSC ticks of fn over reps runs: the timing of the bench/micro tick tools.
#pragma once
#include <x86intrin.h>

#include <algorithm>
#include <cstdint>

template <typename F>
double best_ticks(int reps, F fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const uint64_t t0 = __rdtsc();
    fn();
    best = std::min(best, double(__rdtsc() - t0));
  }
  return best;
}
