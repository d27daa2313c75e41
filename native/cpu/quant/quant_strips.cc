// The strip layout of the int8-activation paths (tensorfuse/quant.h describes it): built once per
// weight by the caller (lib/ops/quant.ts keeps it with the QTensor) so that the integer tiles of
// quant_x86_avx512.cc read 16 output rows x 4 columns per load without a transpose per call.
// Plain scalar code: it runs once per weight, at the memory speed of one pass.
#include <cstdlib>
#include <cstring>

#include "quant_kernels.h"
#include "tensorfuse/quant.h"
#include "tensorfuse/threadpool.h"

namespace tf {

int64_t quant_strip_bytes(const QuantWeight& w) {
  if ((w.bits != 8 && w.bits != 4) || w.K <= 0 || w.K % 8 != 0 || w.group() % 8 != 0)
    return 0;
  if (w.ldq > 0 || w.lds > 0) return 0;
  const int64_t rows = kQuantStripRows, G = w.groups();
  const int64_t codes = w.bits == 8 ? w.K * rows : w.K / 2 * rows;
  return codes + G * rows * 4 * (w.bits == 4 ? 2 : 1);
}

int64_t quant_strips_bytes(const QuantWeight& w) {
  return (w.N + kQuantStripRows - 1) / kQuantStripRows * quant_strip_bytes(w);
}

// TENSORFUSE_QUANT_STRIPS=0 turns the layout off (the copy costs the size of the codes again).
bool quant_strips_wanted() {
  static const bool off = [] {
    const char* v = std::getenv("TENSORFUSE_QUANT_STRIPS");
    return v && std::strcmp(v, "0") == 0;
  }();
  return !off && quant_cpu::kernels_for(active_isa()).reads_strips;
}

namespace {

// Codes of rows [n, n + 32) of one strip (rows from N on as zeros: int8 code 0, int4 code 0 with
// zero point 0, so padding rows sum to 0 whatever x is).
void pack_codes(const QuantWeight& w, int64_t n, uint8_t* dst) {
  const int64_t K = w.K, rows = kQuantStripRows;
  for (int64_t j = 0; j < rows; ++j) {
    const bool live = n + j < w.N;
    if (w.bits == 8) {
      const int8_t* q = static_cast<const int8_t*>(w.q) + (n + j) * K;
      for (int64_t k = 0; k < K; k += 4) {
        uint32_t v = 0;
        if (live) std::memcpy(&v, q + k, 4);
        v ^= 0x80808080u;  // + 128 in every byte
        std::memcpy(dst + (k / 4) * 4 * rows + 4 * j, &v, 4);
      }
    } else {
      const uint8_t* q = static_cast<const uint8_t*>(w.q) + (n + j) * (K / 2);
      for (int64_t k = 0; k < K; k += 8) {
        uint8_t* out = dst + (k / 8) * 4 * rows + 4 * j;
        for (int b = 0; b < 4; ++b)
          out[b] = live ? uint8_t(quant_cpu::nibble(q, k + b) |
                                  quant_cpu::nibble(q, k + 4 + b) << 4)
                        : uint8_t(0);
      }
    }
  }
}

}  // namespace

Status quant_pack_strips(const QuantWeight& w, uint8_t* out, int max_threads) {
  const int64_t bytes = quant_strip_bytes(w);
  if (bytes == 0) return Status(StatusCode::unsupported, "quant: this weight has no strip layout");
  if (w.N > 0 && (!w.q || !w.scales || !out)) return Status(StatusCode::arg, "quant: null buffer");
  const int64_t rows = kQuantStripRows, G = w.groups(), K = w.K;
  const int64_t codes = w.bits == 8 ? K * rows : K / 2 * rows;
  const int64_t strips = (w.N + rows - 1) / rows;
  parallel_for(
      strips,
      [&](int64_t t, int) {
        const int64_t n = t * rows;
        uint8_t* dst = out + t * bytes;
        pack_codes(w, n, dst);
        float* sp = reinterpret_cast<float*>(dst + codes);
        int32_t* zp = reinterpret_cast<int32_t*>(sp + G * rows);
        for (int64_t g = 0; g < G; ++g)
          for (int64_t j = 0; j < rows; ++j) {
            const bool live = n + j < w.N;
            sp[g * rows + j] = live ? w.scales[(n + j) * G + g] : 0.0f;
            if (w.bits == 4) zp[g * rows + j] = live ? quant_cpu::zero_of(w, n + j, g) : 0;
          }
      },
      strips * bytes < (int64_t(1) << 20) ? 1 : max_threads);
  return Status::Ok();
}

}  // namespace tf
