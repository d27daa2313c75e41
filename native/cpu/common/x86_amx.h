// AMX tile set-up shared by the AMX kernels (gemm/gemm_x86_amx.cc, quant/quant_x86_amx.cc): one
// tile layout for all of them, 2 x 2 blocks of 32 x 32 outputs (Intel SDM vol. 1 ch. 18):
//   tiles 0-3: C, 16 rows x 64 bytes (16 x 16 float32 or int32 sums);
//   tiles 4-5: A, the block's two 16-row halves (16 rows x 64 bytes);
//   tiles 6-7: B, two 16-column panels (16 rows of 64 bytes: a pair or a quad of depth steps
//              of 16 columns).
// Functions marked TF_AMX run only where cpu_features.h's amx_usable says so. Linux x86-64 with
// GCC / Clang only (the callers' files compile to stubs elsewhere).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "x86_avx512.h"  // (its GCC 12 warning pragmas)

#define TF_AMX                                                                           \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile," \
                        "amx-int8,amx-bf16")))

namespace tf {
namespace x86 {

// palette 1, the 64-byte memory form LDTILECFG reads
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Loads the layout above into this thread's tile state (a kernel does it at each call and
// releases the state with _tile_release() at its end).
TF_AMX inline void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
}

// C tiles 0-3 zeroed.
TF_AMX inline void zero_c_tiles() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

// GCC's tile intrinsics are asm without a memory clobber: this orders them against the plain
// loads and stores of the same buffers (without it, reads of stored C tiles were scheduled
// before the stores).
inline void tile_barrier() { __asm__ volatile("" ::: "memory"); }

}  // namespace x86
}  // namespace tf
