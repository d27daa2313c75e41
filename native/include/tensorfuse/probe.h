// Machine-limit probes for the benchmark header (bench/, ../shared/BENCH.md): the peak float32
// FMA rate with independent chains and the streaming read bandwidth. They measure the machine,
// not tensorfuse, so kernels can be reported as a share of what the hardware can do.
#pragma once
#include <cstdint>

namespace tf {

// Runs `iters` rounds of independent FMA chains on each of `threads` threads; returns GFLOP/s.
double probe_fma_gflops(int threads, int64_t iters);
// Sums a buffer of `bytes` (well beyond the caches), `reps` times, on `threads` threads; GB/s.
double probe_read_bandwidth_gbs(int threads, int64_t bytes, int reps);

}  // namespace tf
