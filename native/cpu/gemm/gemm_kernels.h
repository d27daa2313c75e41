// The per-ISA pieces of the GEMM engine (gemm_generic.cc, gemm_x86_avx2.cc, gemm_arm_neon.cc fill
// one table each; gemm_driver.cc does blocking, threading and the epilogue once for all of them).
//
// Packed layouts (GotoBLAS / BLIS, Goto & van de Geijn, "Anatomy of High-Performance Matrix
// Multiplication", TOMS 2008), shared by every ISA so a PackedB works with any kernel:
//   A panel: kMR rows x kc, stored k-major: a[k * kMR + i], rows past M zero-padded.
//   B panel: kc x kNR columns, stored k-major: b[k * kNR + j], columns past N zero-padded.
#pragma once
#include <cstdint>
#include <cstring>
#include "tensorfuse/cpu_features.h"
#include "tensorfuse/dtype.h"

namespace tf {
namespace gemm_cpu {

constexpr int kMR = 6;    // micro-tile rows: 6 x 16 fills 12 of the 16 ymm registers with sums
constexpr int kNR = 16;   // micro-tile columns: two 8-wide float32 vectors
constexpr int64_t kKC = 256;  // depth of a packed block: one B panel (kKC x kNR x 4 B = 16 KiB) sits in L1
constexpr int64_t kMC = 96;   // rows of A per block: kMC x kKC x 4 B = 96 KiB sits in L2
constexpr int64_t kNC = 2048; // columns of B per block: kKC x kNC x 4 B = 2 MiB sits in L3

struct Kernels {
  Isa isa;
  // Packs rows [0, mc) x cols [0, kc) of A (row stride lda) into ceil(mc / kMR) panels at dst.
  void (*pack_a)(const void* a, DType dt, int64_t lda, int64_t mc, int64_t kc, float* dst);
  // Packs a kc x nc block of B into ceil(nc / kNR) panels at dst (panel stride kc * kNR).
  // trans: B is stored [N, K] (element (k, n) at b[n * ldb + k]); else [K, N] (b[k * ldb + n]).
  void (*pack_b)(const void* b, DType dt, int64_t ldb, bool trans, int64_t kc, int64_t nc,
                 float* dst);
  // c[kMR x kNR] (row stride ldc) = (accumulate ? c : 0) + a_panel * b_panel over kc.
  void (*kernel)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                 bool accumulate);
  // Optional (nullptr: pack A instead): as kernel, but A read in place, row-major (element
  // (i, k) at a[i * lda + k], kMR rows, all readable). Saves packing an A that is used once.
  void (*kernel_rows)(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                      int64_t ldc, bool accumulate);
  // y[n] = sum_k x[k] * B(k, n) for n in [n0, n1), x float32 [K]; y float32, overwritten.
  void (*gemv)(const float* x, const void* b, DType dt, int64_t ldb, bool trans, int64_t K,
               int64_t n0, int64_t n1, float* y);
  // Small M with B stored [N, K] (linear's weights): c[m, n] (+)= dot(x[m, k0:k1], B[n, k0:k1])
  // for m < M, n in [n0, n1), straight from the rows of B, no transpose. x float32 [M, ldx];
  // accumulate adds to c instead of overwriting. nullptr where the packed path is as good.
  void (*dot_t)(const float* x, int64_t ldx, int64_t M, const void* b, DType dt, int64_t ldb,
                int64_t k0, int64_t k1, int64_t n0, int64_t n1, float* c, int64_t ldc,
                bool accumulate);
  // Optional (nullptr: kernel twice): kernel over two B panels at once, b and b2 (each kc x kNR),
  // into c[kMR x 2 kNR] (b2's columns at c + kNR). A wider tile loads each element of A once
  // for twice the FMAs.
  void (*kernel2)(int64_t kc, const float* a, const float* b, const float* b2, float* c,
                  int64_t ldc, bool accumulate);
  // Optional: kernel2 with A row-major, as kernel_rows (present where kernel2 is).
  void (*kernel2_rows)(int64_t kc, const float* a, int64_t lda, const float* b, const float* b2,
                       float* c, int64_t ldc, bool accumulate);
  // Optional (nullptr: the packed path): few rows with B stored [K, N] (matmul's weights; any
  // float dtype, widened in registers), y[m * ldy + n] += sum_{k < K} x[m * ldx + k] * B[k, n]
  // for m < M, n in [n0, n1) (the caller zeroes y); B read in place, row by row (the GEMV's
  // order for several rows of x).
  void (*gemv_n_rows)(const float* x, int64_t ldx, int64_t M, const void* b, DType dt,
                      int64_t ldb, int64_t K, int64_t n0, int64_t n1, float* y,
                      int64_t ldy) = nullptr;
  // Optional (AVX512-BF16; nullptr: bfloat16 widened into the float panels): bfloat16 A and B on
  // vdpbf16ps (common/x86_avx512_bf16.h). pack_b_bf16: a kc x nc block of B (trans as pack_b)
  // as panels of 16 columns by pairs of k, round_up(kc, 2) * 16 elements each; tile_bf16:
  // c[kMR x 16 np] (+)= scale * A B over `pairs` pairs of k, A row-major bfloat16 read in place
  // (lda), np (1-4) panels `stride` elements apart.
  void (*pack_b_bf16)(const void* b, int64_t ldb, bool trans, int64_t kc, int64_t nc,
                      uint16_t* dst) = nullptr;
  void (*tile_bf16)(int64_t pairs, const uint16_t* a, int64_t lda, const uint16_t* b,
                    int64_t stride, int64_t np, float* c, int64_t ldc, bool accumulate,
                    float scale) = nullptr;
  // Optional (nullptr: kernel2 twice): four B panels, panel j at b + j * ps, into c[kMR x 4 kNR];
  // each output the same FMAs in the same order as kernel2's (bitwise equal). rows: A row-major.
  void (*kernel4)(int64_t kc, const float* a, const float* b, int64_t ps, float* c, int64_t ldc,
                  bool accumulate) = nullptr;
  void (*kernel4_rows)(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ps,
                       float* c, int64_t ldc, bool accumulate) = nullptr;
};

// bfloat16 blocks on AMX tiles (gemm_x86_amx.cc), where amx_usable(Amx::bf16) (cpu_features.h):
// amx_pack_a: rows [0, rows) x depth [0, kc) of row-major bfloat16 A (lda) as kAmxRows rows in
//   tile order, dst[s * 32 kAmxRows + r * 32 + e] = A[r][32 s + e] (zero past rows and kc);
//   dst holds kAmxRows * round_up(kc, 32) elements.
// amx_bf16_block: c[rows x cols] (row stride ldc; rows <= kAmxRows, cols <= 16 np) = (accumulate ?
//   c : 0) + A B over `steps` depth steps of 32, A from amx_pack_a, B np panels `panel` elements
//   apart in the x86_avx512_bf16.h layout, each holding 16 * steps pairs (zero past the depth).
constexpr int64_t kAmxRows = 32;
void amx_pack_a(const uint16_t* a, int64_t lda, int64_t rows, int64_t kc, uint16_t* dst);
void amx_bf16_block(const uint16_t* ap, int64_t steps, const uint16_t* bp, int64_t panel,
                    int64_t np, float* c, int64_t ldc, int64_t rows, int64_t cols,
                    bool accumulate);
// amx_bf16_rows: as amx_bf16_block for a whole block (kAmxRows rows, 16 np columns), A read in
//   place (row-major, lda elements apart, 32 steps elements a row readable): for row strides
//   that do not put a tile's rows in one L1 set (attention's rows of 256-512 bytes). Without
//   accumulate, c = scale * A B.
void amx_bf16_rows(const uint16_t* a, int64_t lda, int64_t steps, const uint16_t* bp,
                   int64_t panel, int64_t np, float* c, int64_t ldc, bool accumulate,
                   float scale = 1.0f);
// amx_bf16x3_rows: as amx_bf16_rows for float32 operands split in bfloat16 parts
//   (common/x86_bf16_split.h): c (+)= sum over i + j <= 2 of A_i B_j, part i < a_parts of A at
//   a + i * a_part, part j < b_parts of B at bp + j * b_part (three parts each: six products,
//   float32 accuracy; a float16 operand is exact in two).
void amx_bf16x3_rows(const uint16_t* a, int64_t lda, int64_t a_part, int64_t steps,
                     const uint16_t* bp, int64_t panel, int64_t b_part, int64_t np, float* c,
                     int64_t ldc, bool accumulate, int a_parts = 3, int b_parts = 3,
                     float scale = 1.0f);
// amx_bf16_wrows: c[m * ldc + n] = sum_k x[m][k] w[n][k] for m < M, n < rows (<= kAmxRows): the
//   weight rows read in place as A (ldw elements apart, 32 steps readable), x as B: panels of
//   16 rows of x by pairs of k (pack_b_bf16 with trans, `panel` elements apart, zero past M
//   and past the depth, 16 steps pairs each). C^T tiles transposed into c.
void amx_bf16_wrows(const uint16_t* w, int64_t ldw, int64_t rows, int64_t steps,
                    const uint16_t* xp, int64_t panel, int64_t M, float* c, int64_t ldc);

// The kMR rows (*ld apart, kc elements each) that tile_bf16 reads as A from `rows`: in place when
// all rr == kMR exist, else copied into pad (kMR x kc) with zero rows after them (*ld = kc).
inline const uint16_t* tile_bf16_rows(const uint16_t* rows, int64_t* ld, int64_t rr, int64_t kc,
                                      uint16_t* pad) {
  if (rr == kMR) return rows;
  std::memset(pad, 0, size_t(kMR * kc) * sizeof(uint16_t));
  for (int64_t r = 0; r < rr; ++r)
    std::memcpy(pad + r * kc, rows + r * *ld, size_t(kc) * sizeof(uint16_t));
  *ld = kc;
  return pad;
}

const Kernels& kernels_generic();
const Kernels* kernels_avx2();    // nullptr when not compiled in
const Kernels* kernels_avx512();  // nullptr when not compiled in
const Kernels* kernels_neon();  // nullptr when not compiled in
const Kernels& kernels_for(Isa isa);

}  // namespace gemm_cpu
}  // namespace tf
