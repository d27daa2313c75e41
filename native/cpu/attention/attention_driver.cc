// Fused attention driver: work decomposition, the tile loop with online softmax, masking, and the
// split-K merge. ISA-independent: the arithmetic comes from the GEMM engine's micro-kernel table
// (gemm_kernels.h) and the attention table (attention_kernels.h) of the active ISA level.
//
// The unit of work is a block of "group rows" of one (batch b, kv head hk): the G = Hq / Hk query
// heads that share hk, with their queries interleaved (row r = i * G + g, query i of head
// hk * G + g), so one K/V tile is packed once for every head of the group (GQA packing, as in
// FlashAttention-3's pack_gqa); the 6-row micro-panels a tile cannot reach are skipped, and on a
// causal diagonal or a window's edge each micro-panel runs only the keys of the tile it can see,
// which keeps causal and windowed work tight inside a block.
//   rows > kMaxStreamRows: Q block packed into GEMM panels, S = Q K^T and O += P V through the
//                          6x16 micro-kernel, K/V tiles packed per tile (widened from f16/bf16);
//   fewer rows (decode):   one item holds several kv heads of a bshd cache; K and V rows are
//                          read in place: with 1-2 rows per kv head key by key over all heads
//                          (qk_keys / pv_keys, the cache in address order), otherwise 64 keys of
//                          one head at a time (qk_dot / pv_accum) with software prefetch.
// When blocks are fewer than the threads, the keys are also split into chunks whose partial
// (max, sum, unnormalised output) are merged afterwards by log-sum-exp (flash-decoding).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../gemm/gemm_kernels.h"
#include "attention_kernels.h"
#include "tensorfuse/attention.h"
#include "tensorfuse/convert.h"
#include "tensorfuse/scratch.h"
#include "tensorfuse/threadpool.h"

namespace tf {
namespace {

using gemm_cpu::kMR;
using gemm_cpu::kNR;

// Group rows per block: 384 (64 micro-panels of 6; Q, O and the scores of a block, ~480 KiB at
// D = 128, fit a 512 KiB L2), 768 with the AVX-512 GEMM table (CPUs with 1 MiB L2 or more; on
// Zen 5 3% faster prefill). Each K/V tile is packed once per block, so big blocks pack less; the
// row panels a tile cannot reach (causal, windows) are skipped.
constexpr int64_t kBlockRows = 384;
constexpr int64_t kWideBlockRows = 768;
constexpr int64_t kTileKeys = 64;     // keys per tile (tiled path): K and V tiles of 32 KiB at D=128
constexpr int64_t kWideTileKeys = 128; // with the wide GEMM kernel: half the P V calls and their
                                       // loads and stores of O per key (Zen 5: prefill 4-5% faster)
constexpr int64_t kStreamKeys = 64;   // keys per step and head (streaming path)
constexpr int64_t kStreamRows = 64;   // rows of all heads of one streaming item, at most
// Rows per kv head up to which the K / V rows are read in place (run_stream_item) rather than
// packed into tiles for the GEMM micro-kernel: packing a tile costs about what a few rows' dot
// products with it do, and a micro-panel of 6 rows is ragged for 7-11. attention_ticks, Zen 5,
// Sk = 4096, D = 128, 2 threads, K / V from memory, tiled -> streamed: Hq = 64, Hk = 8 (8 rows)
// 2.40-2.51 -> 1.23-1.26 ms; Hq = 28, Hk = 4 (7) 1.31 -> 0.64; Hq = 32, Hk = 8, Sq = 2 / 4 / 8
// (8 / 16 / 32) 2.70 / 2.91 / 3.63 -> 1.35 / 1.92 / 2.92; Hq = Hk = 32, Sq = 8 12.2 -> 4.9; MQA
// Hq = 32, Hk = 1 0.58 -> 0.47; float16 Hq = 64, Hk = 8 1.93 -> 0.78; even at 48 rows, slower at
// 64 (5.0 -> 5.6).
constexpr int64_t kMaxStreamRows = 32;
constexpr int64_t kMinChunkKeys = 256;
// A (batch, kv head) with several row blocks keeps its packed K / V tiles for all of them when
// they fit this (per thread; 4 MiB is 4096 keys at D = 128): each tile is packed once per head
// instead of once per block (pack_b was ~8% of prefill at S = 2048, three blocks a head).
constexpr int64_t kMaxPackedKVBytes = int64_t(4) << 20;
// Rows per kv head up to which decode reads the cache key by key over all heads (qk_keys /
// pv_keys, which take 1 or 2: memory order, ~1.15x at one row); with more rows the arithmetic per
// byte wants the per-head kernels (4 rows: key by key was 5-10% slower, a blocked form tied).
constexpr int64_t kKeyMajorRows = 2;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Asks for rows [j0, j0 + n) of a K or V cache ahead of use. Their rows sit Hk*D elements apart
// in the 'bshd' layout, a stride the hardware prefetcher does not follow across pages, so the
// streaming (decode) path would otherwise wait on memory latency row by row.
inline void prefetch_rows(const char* base, int64_t row_bytes, int64_t stride_bytes, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
  __asm__ volatile("");  // a side effect, so GCC does not drop calls to this as pure (see x86)
  for (int64_t j = 0; j < n; ++j)
    for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(base + j * stride_bytes + b, 0, 2);
#else
  (void)base, (void)row_bytes, (void)stride_bytes, (void)n;
#endif
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// o[r * ldo + d] *= alpha[r] for rows r < R whose alpha is not 1, d < n (the online softmax's
// rescale; alpha read once per row, so the loop vectorises: read through the pointer inside it,
// it kept the loop scalar, ~1% of a prefill call)
inline void rescale_rows(float* o, int64_t ldo, int64_t R, int64_t n, const float* alpha) {
  for (int64_t r = 0; r < R; ++r) {
    const float a = alpha[r];
    if (a == 1.0f) continue;
    float* row = o + r * ldo;
    for (int64_t d = 0; d < n; ++d) row[d] *= a;
  }
}

// One batch entry's geometry after varlen offsets and seqlensK.
struct Seq {
  int64_t q_row0 = 0, k_row0 = 0;  // first row in the packed q / k (varlen), else 0
  int64_t sq = 0;                  // queries
  int64_t sk = 0;                  // keys that exist (seqlensK or the length)
  int64_t off = 0;                 // sk - sq: query i is aligned with key i + off
};

struct Item {
  int64_t b, hk, r0, r1;  // rows [r0, r1) of the (b, hk) group matrix
  int64_t chunk;          // key chunk (0 when not split)
  int64_t block;          // index of (b, hk, r0) among all blocks (partials are stored by it)
  int64_t cost;
  int64_t nh = 1;         // streaming items: kv heads [hk, hk + nh), rows [r0, r1) of each
  bool whole = false;     // tiled: rows [r0, r1) are all blocks of (b, hk), run one by one
};

// The packed K / V tiles of one (b, hk), reused by its row blocks: tile t covers keys
// [t * tile_keys, ...), packed by the first block that needs it (ready[t]).
struct PackedKV {
  float* k = nullptr;  // tile t at k + t * k_tile
  float* v = nullptr;  // tile t at v + t * v_tile
  int64_t k_tile = 0, v_tile = 0;
  std::vector<char> ready;
};

class Runner {
 public:
  explicit Runner(const AttentionParams& p)
      : p_(p),
        gk_(gemm_cpu::kernels_for(active_isa())),
        ak_(attention_cpu::kernels_for(active_isa())),
        G_(p.heads_q / p.heads_k),
        D_(p.head_dim),
        Dp_(round_up(p.head_dim, kNR)),
        esz_(dtype_size(p.dtype)),
        amx_(p.dtype == DType::bfloat16 && ak_.tile_bf16 && kNR == 16 && p.head_dim % 32 == 0 &&
             amx_usable(Amx::bf16)),
        bf16_tiles_(p.dtype == DType::bfloat16 && ak_.tile_bf16 && kNR == 16 &&
                    (fast_bf16_dot() || amx_)),
        amx_f32_((p.dtype == DType::float32 || p.dtype == DType::float16) && kNR == 16 &&
                 attention_cpu::amx_f32_usable()),
        block_rows_(gk_.kernel2 ? kWideBlockRows : kBlockRows),
        tile_keys_(gk_.kernel2 ? kWideTileKeys : kTileKeys) {}

  Status run();

 private:
  // Visible keys [lo, hi] (inclusive; empty when lo > hi) of query i of sequence s.
  void visible(const Seq& s, int64_t i, int64_t* lo, int64_t* hi) const {
    int64_t a = 0, z = s.sk - 1;
    const int64_t diag = i + s.off;
    if (p_.causal) z = std::min(z, diag);
    if (p_.window_right >= 0) z = std::min(z, diag + p_.window_right);
    if (p_.window_left >= 0) a = std::max(a, diag - p_.window_left);
    *lo = a;
    *hi = z;
  }
  const char* q_row(const Seq& s, int64_t b, int64_t i, int64_t h) const {
    const int64_t base = p_.cu_seqlens_q ? 0 : b * p_.q_strides[0];
    return static_cast<const char*>(p_.q) +
           size_t(base + (s.q_row0 + i) * p_.q_strides[1] + h * p_.q_strides[2]) * esz_;
  }
  char* o_row(const Seq& s, int64_t b, int64_t i, int64_t h) const {
    const int64_t base = p_.cu_seqlens_q ? 0 : b * p_.o_strides[0];
    return static_cast<char*>(p_.out) +
           size_t(base + (s.q_row0 + i) * p_.o_strides[1] + h * p_.o_strides[2]) * esz_;
  }
  const char* kv_row(const void* base_ptr, const int64_t* st, const Seq& s, int64_t b, int64_t j,
                     int64_t hk) const {
    const int64_t base = p_.cu_seqlens_k ? 0 : b * st[0];
    return static_cast<const char*>(base_ptr) +
           size_t(base + (s.k_row0 + j) * st[1] + hk * st[2]) * esz_;
  }
  float* lse_at(const Seq& s, int64_t b, int64_t i, int64_t h) const {
    const int64_t base = p_.cu_seqlens_q ? s.q_row0 * p_.lse_strides[2] : b * p_.lse_strides[0];
    return p_.lse + base + h * p_.lse_strides[1] + i * p_.lse_strides[2];
  }

  void run_item(const Item& it);
  // Floats of one packed K / V tile: the float32 panels, or (amx_f32_) the larger of those and
  // the three bfloat16 parts.
  int64_t k_tile_floats() const {
    const int64_t f = D_ * round_up(tile_keys_, kNR);
    return amx_f32_ ? std::max(f, 3 * k_part() / 2) : f;
  }
  int64_t v_tile_floats() const {
    const int64_t f = tile_keys_ * Dp_;
    return amx_f32_ ? std::max(f, 3 * v_part() / 2) : f;
  }
  // The parts' layouts (bfloat16 elements; attention_cpu::amx_f32_pack_k / _v): a part of a K
  // tile (panels of 16 keys, round_up(D, 32) deep), a V panel (16 columns by pairs of keys) and
  // a part of a V tile.
  int64_t k_part() const { return round_up(tile_keys_, 16) * round_up(D_, 32); }
  int64_t v_panel() const { return round_up(tile_keys_, 32) * 16; }
  int64_t v_part() const { return round_up(tile_keys_, 32) * Dp_; }
  void run_block(const Item& it, PackedKV* kv);
  // The bfloat16 tiles' S = Q K^T (micro-panels [pa, pb) against the key panels [0, npan) that
  // they see) and O += P V (each micro-panel over the key pairs of its [ka, kb]).
  template <class Sees>
  void qk_bf16_tile(const uint16_t* qh, int64_t ldq, const uint16_t* kpt, int64_t pa, int64_t pb,
                    int64_t npan, Sees&& sees, float* sc, int64_t lds) const;
  void pv_bf16_tile(const uint16_t* ph, int64_t ldp, const uint16_t* vpt, int64_t nv2, int64_t pa,
                    int64_t pb, const int64_t* ka, const int64_t* kb, float* o, int64_t ldo) const;
  void run_stream_item(const Item& it);
  // Visible ranges of the item's rows, the keys [klo, khi] any of them sees (clipped to the
  // item's chunk), and [full_lo, full_hi], where every row sees every key.
  void ranges(const Seq& s, const Item& it, int64_t* lo, int64_t* hi, int64_t* klo, int64_t* khi,
              int64_t* full_lo, int64_t* full_hi) const;
  // Applies softcap, ALiBi, the mask and the visibility ranges to s[R x n] (keys j0 ..).
  // Rows r < R of sc are the item's rows r0 + r.
  void transform(const Seq& s, const Item& it, int64_t R, int64_t j0, int64_t n, float* sc,
                 int64_t lds, const int64_t* lo, const int64_t* hi, int64_t r0 = 0) const;
  // prow: the first row of these in the item's partial (multi-head streaming items).
  void finish_rows(const Seq& s, const Item& it, int64_t R, const float* o, int64_t ldo,
                   const float* m, const float* l, bool to_partial, int64_t prow = 0) const;

  const AttentionParams& p_;
  const gemm_cpu::Kernels& gk_;
  const attention_cpu::Kernels& ak_;
  const int64_t G_, D_, Dp_;
  const size_t esz_;
  // bfloat16 q, K, V with head_dim % 32 == 0 on AMX tiles (gemm_x86_amx.cc, amx_bf16_rows):
  // 32-row blocks of Q K^T and P V where the ISA's bfloat16 tiles run 6 rows (those still take
  // what AMX does not: a tile of keys not in whole steps of 32)
  const bool amx_;
  const bool bf16_tiles_;     // bfloat16 q, K, V on the ISA's bfloat16 tiles (ak_.tile_bf16)
  // float32 (or float16) q, K, V on AMX tiles as three bfloat16 parts each (a float16 needs
  // two; attention_x86_amx.cc): a block whose scaled Q is finite packs its K / V tiles as parts
  // where they suit (finite; V not all below 2^-100), and runs S = Q K^T and O += P V as
  // gemm_cpu::amx_bf16x3_rows on 32-row blocks; a tile that does not suit takes the float32
  // micro-kernel.
  const bool amx_f32_;
  const int64_t block_rows_;  // kBlockRows or kWideBlockRows
  const int64_t tile_keys_;   // kTileKeys or kWideTileKeys
  bool elementwise_ = false;  // softcap, ALiBi or a mask: every tile needs the transform
  std::vector<Seq> seqs_;
  int64_t chunks_ = 1;
  std::vector<int64_t> chunk_keys_;  // keys per chunk, per batch entry
  float* partial_ = nullptr;         // [blocks][chunks][rows][Dp + 2] when chunks_ > 1
  int64_t partial_stride_ = 0;       // floats per (block, chunk)
};

void Runner::transform(const Seq& s, const Item& it, int64_t R, int64_t j0, int64_t n, float* sc,
                       int64_t lds, const int64_t* lo, const int64_t* hi, int64_t r0) const {
  const float cap = p_.softcap;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = it.r0 + r0 + r, i = row / G_, h = it.hk * G_ + row % G_;
    float* x = sc + r * lds;
    if (cap > 0.0f)
      for (int64_t j = 0; j < n; ++j) x[j] = cap * std::tanh(x[j] / cap);
    if (p_.alibi) {
      const float slope = p_.alibi[it.b * p_.alibi_batch_stride + h];
      for (int64_t j = 0; j < n; ++j)
        x[j] -= slope * float(std::llabs(i + s.off - (j0 + j)));
    }
    if (p_.mask) {
      const int64_t* ms = p_.mask_strides;
      const int64_t base = it.b * ms[0] + h * ms[1] + i * ms[2] + j0 * ms[3];
      if (p_.mask_dtype == DType::uint8) {
        const uint8_t* mk = static_cast<const uint8_t*>(p_.mask) + base;
        for (int64_t j = 0; j < n; ++j)
          if (!mk[j * ms[3]]) x[j] = kNegInf;
      } else {
        const float* mk = static_cast<const float*>(p_.mask) + base;
        for (int64_t j = 0; j < n; ++j) x[j] += mk[j * ms[3]];
      }
    }
    const int64_t a = std::max<int64_t>(lo[r] - j0, 0), z = std::min<int64_t>(hi[r] - j0 + 1, n);
    if (a >= z) {
      for (int64_t j = 0; j < n; ++j) x[j] = kNegInf;
    } else {
      for (int64_t j = 0; j < a; ++j) x[j] = kNegInf;
      for (int64_t j = z; j < n; ++j) x[j] = kNegInf;
    }
  }
}

// Normalises and stores finished rows, or parks them as a partial when the keys are split.
void Runner::finish_rows(const Seq& s, const Item& it, int64_t R, const float* o, int64_t ldo,
                         const float* m, const float* l, bool to_partial, int64_t prow) const {
  if (to_partial) {
    float* dst = partial_ + (it.block * chunks_ + it.chunk) * partial_stride_ + prow * (Dp_ + 2);
    for (int64_t r = 0; r < R; ++r) {
      float* row = dst + r * (Dp_ + 2);
      row[0] = m[r];
      row[1] = l[r];
      std::memcpy(row + 2, o + r * ldo, size_t(D_) * sizeof(float));
    }
    return;
  }
  float* tmp = static_cast<float*>(scratch_get(3, size_t(Dp_) * sizeof(float)));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = it.r0 + r, i = row / G_, h = it.hk * G_ + row % G_;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    for (int64_t d = 0; d < D_; ++d) tmp[d] = o[r * ldo + d] * inv;
    convert_from_f32(tmp, o_row(s, it.b, i, h), p_.dtype, D_);
    if (p_.lse) *lse_at(s, it.b, i, h) = l[r] > 0.0f ? m[r] + std::log(l[r]) : kNegInf;
  }
}

void Runner::ranges(const Seq& s, const Item& it, int64_t* lo, int64_t* hi, int64_t* klo,
                    int64_t* khi, int64_t* full_lo, int64_t* full_hi) const {
  *klo = INT64_MAX, *khi = -1, *full_lo = 0, *full_hi = INT64_MAX;
  for (int64_t r = 0; r < it.r1 - it.r0; ++r) {
    visible(s, (it.r0 + r) / G_, &lo[r], &hi[r]);
    if (lo[r] <= hi[r]) {
      *klo = std::min(*klo, lo[r]);
      *khi = std::max(*khi, hi[r]);
    }
    *full_lo = std::max(*full_lo, lo[r]);
    *full_hi = std::min(*full_hi, hi[r]);
  }
  if (chunks_ > 1) {  // this item's chunk of keys
    const int64_t ck = chunk_keys_[size_t(it.b)];
    *klo = std::max(*klo, it.chunk * ck);
    *khi = std::min(*khi, (it.chunk + 1) * ck - 1);
  }
}

// Blocks of more than kMaxStreamRows rows: Q K^T and P V through the GEMM micro-kernel on packed
// tiles.
// An item: one block, or (whole) every block of its (b, hk) over one set of packed K / V tiles.
void Runner::run_item(const Item& it) {
  if (!it.whole) return run_block(it, nullptr);
  const int64_t ntiles = ceil_div(seqs_[size_t(it.b)].sk, tile_keys_);
  PackedKV kv;  // in scratch slot 2 (finish_rows holds 3; the chunk merge, which takes 2, is
                // never run with whole items)
  kv.k_tile = k_tile_floats();
  kv.v_tile = v_tile_floats();
  float* mem = static_cast<float*>(
      scratch_get(2, size_t(ntiles * (kv.k_tile + kv.v_tile)) * sizeof(float)));
  PackedKV* use = nullptr;
  if (mem) {
    kv.k = mem;
    kv.v = mem + ntiles * kv.k_tile;
    kv.ready.assign(size_t(ntiles), 0);
    use = &kv;
  }
  for (int64_t r0 = it.r0; r0 < it.r1; r0 += block_rows_) {
    Item blk = it;
    blk.r0 = r0;
    blk.r1 = std::min(it.r1, r0 + block_rows_);
    blk.whole = false;
    run_block(blk, use);
  }
}

// (four panels a call: 6 x 64 tiles)
template <class Sees>
void Runner::qk_bf16_tile(const uint16_t* qh, int64_t ldq, const uint16_t* kpt, int64_t pa,
                          int64_t pb, int64_t npan, Sees&& sees, float* sc, int64_t lds) const {
  const int64_t pairs = ceil_div(D_, 2), panel = 2 * pairs * kNR;
  for (int64_t pj = 0; pj < npan; pj += 4) {
    const int64_t np = std::min<int64_t>(4, npan - pj);
    for (int64_t pi = pa; pi < pb; ++pi)
      if (sees(pi, pj * kNR, (pj + np) * kNR))
        ak_.tile_bf16(pairs, qh + pi * kMR * ldq, ldq, kpt + pj * panel, panel, np,
                      sc + pi * kMR * lds + pj * kNR, lds, false, p_.scale);
  }
}

void Runner::pv_bf16_tile(const uint16_t* ph, int64_t ldp, const uint16_t* vpt, int64_t nv2,
                          int64_t pa, int64_t pb, const int64_t* ka, const int64_t* kb, float* o,
                          int64_t ldo) const {
  const int64_t panels = Dp_ / kNR, panel = nv2 * kNR;
  for (int64_t pj = 0; pj < panels; pj += 4) {
    const int64_t np = std::min<int64_t>(4, panels - pj);
    for (int64_t pi = pa; pi < pb; ++pi) {
      if (kb[pi] < ka[pi]) continue;
      const int64_t k0 = ka[pi] & ~int64_t(1), pairs = (kb[pi] + 2 - k0) / 2;
      ak_.tile_bf16(pairs, ph + pi * kMR * ldp + k0, ldp, vpt + pj * panel + k0 * kNR, panel, np,
                    o + pi * kMR * ldo + pj * kNR, ldo, true, 1.0f);
    }
  }
}

void Runner::run_block(const Item& it, PackedKV* kv) {
  const Seq& s = seqs_[size_t(it.b)];
  const int64_t R = it.r1 - it.r0;
  const int64_t Rp = round_up(R, kMR);
  int64_t lo[kWideBlockRows], hi[kWideBlockRows], klo, khi, full_lo, full_hi;
  ranges(s, it, lo, hi, &klo, &khi, &full_lo, &full_hi);

  // Scratch: one arena, carved into 64-byte aligned pieces (the packed panels are read with
  // aligned loads).
  const int64_t lds = round_up(tile_keys_, kNR);
  const int64_t ldo = Dp_;
  // rows of the buffers: AMX blocks of 32 rows reach past the micro-panels' Rp
  // (and the float32 parts' blocks, past the micro-panels' Rp)
  using gemm_cpu::kAmxRows;
  const int64_t Rt = amx_ ? round_up(R, kAmxRows) : amx_f32_ ? round_up(Rp, kAmxRows) : Rp;
  // float32 parts: Q rows Dz long, P rows tkz long (bfloat16), three parts each
  const int64_t Dz = round_up(D_, 32), tkz = round_up(tile_keys_, 32);
  const int64_t sizes[11] = {Rt * D_,         Rt * lds,        Rt * ldo,
                             Rt,              Rt,              Rt,
                             k_tile_floats(), Rt * lds,        v_tile_floats(),
                             amx_f32_ ? 3 * Rt * Dz / 2 : 0,   amx_f32_ ? 3 * Rt * tkz / 2 : 0};
  int64_t total = 0;
  for (int64_t n : sizes) total += round_up(n, 16);
  float* mem = static_cast<float*>(scratch_get(0, size_t(total) * sizeof(float)));
  float* piece[11];
  for (int i = 0; i < 11; ++i) {
    piece[i] = mem;
    mem += round_up(sizes[i], 16);
  }
  float *qb = piece[0], *sc = piece[1], *o = piece[2], *m = piece[3], *l = piece[4],
        *alpha = piece[5], *kp = piece[6], *pp = piece[7], *vp = piece[8];
  uint16_t* qs = reinterpret_cast<uint16_t*>(piece[9]);  // Q's parts (amx_f32_)
  uint16_t* ps = reinterpret_cast<uint16_t*>(piece[10]);  // P's parts
  // bfloat16 q, K, V where the ISA has the bfloat16 tiles (vdpbf16ps, common/x86_avx512_bf16.h):
  // Q's rows as stored (D2 elements each, zero-padded) against K packed by pairs of D; P rounded
  // to bfloat16 into pp's space (as FlashAttention's P V on bf16 tensor cores, arXiv:2205.14135)
  // against V packed by pairs of keys. Each needs at most the float layout's space: the pieces
  // and the shared tiles are sized for floats.
  const bool bf16 = bf16_tiles_;
  const int64_t D2 = round_up(D_, 2);
  uint16_t* qh = reinterpret_cast<uint16_t*>(qb);
  uint16_t* ph = reinterpret_cast<uint16_t*>(pp);
  if (bf16) {
    for (int64_t r = 0; r < Rt; ++r) {
      uint16_t* row = qh + r * D2;
      if (r < R) {
        const int64_t q = it.r0 + r;
        std::memcpy(row, q_row(s, it.b, q / G_, it.hk * G_ + q % G_), size_t(D_) * 2);
        if (D2 > D_) row[D_] = 0;
      } else {
        std::memset(row, 0, size_t(D2) * 2);
      }
    }
  }

  // Q rows of the block, widened, pre-multiplied by the scale and stored as GEMM A panels (or as
  // the AMX parts). (the scale in a local: read through p_ inside the loop, it kept the loop
  // scalar)
  float* qrow = static_cast<float*>(scratch_get(1, size_t(kMR * D_) * sizeof(float)));
  const float scale = p_.scale;
  // float16 on the AMX parts: q, K and V exact in two parts each, so Q K^T takes the four
  // products of q as stored (S scaled after) and P V the five of P's three parts and V's two
  const bool f16_parts = amx_f32_ && p_.dtype == DType::float16;
  const int qk_parts = f16_parts ? 2 : 3, v_parts = f16_parts ? 2 : 3;
  // (panels: the float32 GEMM panels into qb; parts: the AMX parts into qs, false where a row is
  // not finite)
  auto pack_q = [&](bool panels, bool parts) {
    bool finite = true;
    for (int64_t r0 = 0; r0 < Rp; r0 += kMR) {
      for (int64_t i = 0; i < kMR; ++i) {
        float* row = qrow + i * D_;
        if (r0 + i < R) {
          const int64_t q = it.r0 + r0 + i;
          convert_to_f32(q_row(s, it.b, q / G_, it.hk * G_ + q % G_), p_.dtype, row, D_);
          if (!(parts && f16_parts))
            for (int64_t d = 0; d < D_; ++d) row[d] *= scale;
        } else {
          std::memset(row, 0, size_t(D_) * sizeof(float));
        }
      }
      float* panel = qb + r0 * D_;
      for (int64_t d = 0; panels && d < D_; ++d)
        for (int64_t i = 0; i < kMR; ++i) panel[d * kMR + i] = qrow[i * D_ + d];
      if (parts && finite)
        finite = attention_cpu::amx_f32_split_rows(qrow, D_, kMR, D_, qs + r0 * Dz, Dz, Rt * Dz);
    }
    return finite;
  };
  // Q's parts written (all of the block's Q is finite); the panels only where the block or a
  // tile takes the float32 kernels
  const bool q_split = amx_f32_ && pack_q(false, true);
  bool q_panels = !bf16 && !q_split;
  if (q_panels) pack_q(true, false);
  if (q_split)
    for (int p = 0; p < 3; ++p)
      std::memset(qs + p * Rt * Dz + Rp * Dz, 0, size_t((Rt - Rp) * Dz) * 2);
  std::memset(o, 0, size_t(Rt * ldo) * sizeof(float));
  for (int64_t r = 0; r < Rt; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
  }

  const int64_t ks = p_.k_strides[1], vs = p_.v_strides[1];
  for (int64_t j0 = klo; j0 <= khi; j0 += tile_keys_) {
    const int64_t n = std::min(tile_keys_, khi + 1 - j0);
    const void* kt = kv_row(p_.k, p_.k_strides, s, it.b, j0, it.hk);
    const void* vt = kv_row(p_.v, p_.v_strides, s, it.b, j0, it.hk);
    // Rows [ra, rb) see some key of this tile (a contiguous range: visibility is monotone in the
    // query); whole micro-panels outside it are skipped and their state is left as it is.
    int64_t ra = 0, rb = R;
    while (ra < R && (hi[ra] < j0 || lo[ra] > j0 + n - 1)) ++ra;
    while (rb > ra && (hi[rb - 1] < j0 || lo[rb - 1] > j0 + n - 1)) --rb;
    if (ra == rb) continue;
    const int64_t pa = ra / kMR, pb = ceil_div(rb, kMR);
    const int64_t r0 = pa * kMR, r1 = std::min(R, pb * kMR);
    // K and V of this tile packed: the head's shared tiles where the tile is on their grid
    // (shared tiles hold every key of the tile up to Sk, whatever this block sees of it: nv is
    // the depth V's panels were packed with)
    // (ready: 1 packed as float32 panels, 2 as the AMX parts)
    float* kpt = kp;
    float* vpt = vp;
    int64_t nv = n;
    bool need_pack = true, tile_split = false;
    char* ready = nullptr;
    if (kv && j0 % tile_keys_ == 0) {
      const int64_t t = j0 / tile_keys_;
      kpt = kv->k + t * kv->k_tile;
      vpt = kv->v + t * kv->v_tile;
      nv = std::min(tile_keys_, s.sk - j0);
      need_pack = !kv->ready[size_t(t)];
      tile_split = kv->ready[size_t(t)] == 2;
      if (tile_split && !q_split) {  // parts, but this block's Q is not finite: float32 here
        kpt = kp, vpt = vp, need_pack = true, tile_split = false;
      } else if (need_pack) {
        ready = &kv->ready[size_t(t)];
      }
    }
    uint16_t* kh = reinterpret_cast<uint16_t*>(kpt);
    uint16_t* vh = reinterpret_cast<uint16_t*>(vpt);
    if (need_pack && q_split) {
      tile_split =
          attention_cpu::amx_f32_pack_k(kt, p_.dtype, ks, nv, D_, kh, k_part()) &&
          attention_cpu::amx_f32_pack_v(vt, p_.dtype, vs, nv, D_, vh, v_panel(), v_part());
    }
    if (ready) *ready = tile_split ? 2 : 1;
    if (!tile_split && !bf16 && !q_panels) {  // the first float32 tile of an AMX block
      pack_q(true, false);
      q_panels = true;
    }
    const bool pack_panels = need_pack && !tile_split;
    if (pack_panels && bf16) {
      ak_.pack_k_bf16(kt, ks, nv, D_, reinterpret_cast<uint16_t*>(kpt));
      ak_.pack_v_bf16(vt, vs, nv, D_, reinterpret_cast<uint16_t*>(vpt));
    } else if (pack_panels) {
      gk_.pack_b(kt, p_.dtype, ks, true, D_, nv, kpt);
      gk_.pack_b(vt, p_.dtype, vs, false, nv, D_, vpt);
    }
    // Keys [ka[pi], kb[pi]] of the tile (tile-relative) that some row of micro-panel pi sees:
    // visibility is monotone in the row, so its first row bounds lo and its last row hi. On a
    // causal diagonal (or a window's edge) a panel sees only part of the tile: Q K^T skips the
    // key panels it cannot see (transform masks whatever a row does not see, so those scores
    // are never read) and P V runs only over [ka, kb] (the other probabilities are 0).
    int64_t ka[kWideBlockRows / kMR + 1], kb[kWideBlockRows / kMR + 1];
    for (int64_t pi = pa; pi < pb; ++pi) {
      const int64_t first = pi * kMR, last = std::min(R, first + kMR) - 1;
      ka[pi] = std::max<int64_t>(0, lo[first] - j0);
      kb[pi] = std::min<int64_t>(n - 1, hi[last] - j0);
    }
    // S = Q K^T, two key panels at a time where the ISA has the wider tile (the score rows hold
    // every panel's columns: lds >= npan * kNR)
    const int64_t npan = ceil_div(n, kNR);
    auto sees = [&](int64_t pi, int64_t c0, int64_t c1) { return ka[pi] < c1 && kb[pi] >= c0; };
    // AMX: the 32-row blocks that hold rows [r0, r1) (the rows of a block outside it get
    // scores no one reads, and P rows of zeros below)
    const int64_t ba = r0 / gemm_cpu::kAmxRows * gemm_cpu::kAmxRows;
    const int64_t bb = round_up(r1, gemm_cpu::kAmxRows);
    // AMX parts: the keys [bka, bkb] of the tile that the rows of each 32-row block see (none:
    // bka > bkb); S only over the 16-key panels that hold them, P V over their 32-key steps
    int64_t bka[kWideBlockRows / kAmxRows + 2], bkb[kWideBlockRows / kAmxRows + 2];
    if (tile_split) {
      for (int64_t b = ba; b < bb; b += kAmxRows) {
        const int64_t fa = std::max(b, ra), fb = std::min(b + kAmxRows, rb), bi = b / kAmxRows;
        bka[bi] = 1, bkb[bi] = 0;
        if (fa >= fb) continue;
        bka[bi] = std::max<int64_t>(0, lo[fa] - j0);
        bkb[bi] = std::min<int64_t>(n - 1, hi[fb - 1] - j0);
        if (bka[bi] > bkb[bi]) continue;
        const int64_t p0 = bka[bi] / 16, p1 = bkb[bi] / 16 + 1;
        gemm_cpu::amx_bf16x3_rows(qs + b * Dz, Dz, Rt * Dz, Dz / 32, kh + p0 * 16 * Dz, 16 * Dz,
                                  k_part(), p1 - p0, sc + b * lds + 16 * p0, lds, false, qk_parts,
                                  qk_parts, f16_parts ? scale : 1.0f);
      }
    } else if (amx_) {
      const uint16_t* kh = reinterpret_cast<const uint16_t*>(kpt);
      for (int64_t b = ba; b < bb; b += gemm_cpu::kAmxRows)
        gemm_cpu::amx_bf16_rows(qh + b * D2, D2, D2 / 32, kh, D2 * kNR, npan, sc + b * lds, lds,
                                false, p_.scale);
    } else if (bf16) {
      qk_bf16_tile(qh, D2, reinterpret_cast<const uint16_t*>(kpt), pa, pb, npan, sees, sc, lds);
    }
    int64_t pj = bf16 || tile_split ? npan : 0;
    if (gk_.kernel4 && !bf16)
      for (; pj + 4 <= npan; pj += 4)
        for (int64_t pi = pa; pi < pb; ++pi)
          if (sees(pi, pj * kNR, (pj + 4) * kNR))
            gk_.kernel4(D_, qb + pi * kMR * D_, kpt + pj * kNR * D_, kNR * D_,
                        sc + pi * kMR * lds + pj * kNR, lds, false);
    if (gk_.kernel2 && !bf16)
      for (; pj + 2 <= npan; pj += 2)
        for (int64_t pi = pa; pi < pb; ++pi)
          if (sees(pi, pj * kNR, (pj + 2) * kNR))
            gk_.kernel2(D_, qb + pi * kMR * D_, kpt + pj * kNR * D_, kpt + (pj + 1) * kNR * D_,
                        sc + pi * kMR * lds + pj * kNR, lds, false);
    for (; pj < npan; ++pj)
      for (int64_t pi = pa; pi < pb; ++pi)
        if (sees(pi, pj * kNR, (pj + 1) * kNR))
          gk_.kernel(D_, qb + pi * kMR * D_, kpt + pj * kNR * D_, sc + pi * kMR * lds + pj * kNR,
                     lds, false);
    if (elementwise_ || j0 < full_lo || j0 + n - 1 > full_hi)
      transform(s, it, r1 - r0, j0, n, sc + r0 * lds, lds, lo + r0, hi + r0, r0);
    if (tile_split)  // P's parts of rows [r0, r1) straight from the exponentials
      attention_cpu::amx_f32_softmax_split(sc + r0 * lds, lds, r1 - r0, n, m + r0, l + r0,
                                           alpha + r0, ps + r0 * tkz, tkz, Rt * tkz);
    else
      ak_.softmax_tile(sc + r0 * lds, lds, r1 - r0, n, m + r0, l + r0, alpha + r0);
    rescale_rows(o + r0 * ldo, ldo, r1 - r0, ldo, alpha + r0);
    // P V: P straight from the score rows where the ISA has a row-major-A kernel (the rows past
    // R in the last micro-panel hold the zero scores of Q's zero padding), else packed.
    if (tile_split) {
      // P's parts of the blocks' rows outside [r0, r1): zero
      const int64_t nz = round_up(n, 32);
      for (int64_t r = ba; r < bb; ++r)
        if (r < r0 || r >= r1)
          for (int p = 0; p < 3; ++p) std::memset(ps + p * Rt * tkz + r * tkz, 0, size_t(nz) * 2);
      for (int64_t b = ba; b < bb; b += kAmxRows) {
        const int64_t bi = b / kAmxRows;
        if (bka[bi] > bkb[bi]) continue;
        const int64_t k0 = bka[bi] / 32 * 32, k1 = round_up(bkb[bi] + 1, 32);
        gemm_cpu::amx_bf16x3_rows(ps + b * tkz + k0, tkz, Rt * tkz, (k1 - k0) / 32, vh + 16 * k0,
                                  v_panel(), v_part(), Dp_ / kNR, o + b * ldo, ldo, true, 3,
                                  v_parts);
      }
      continue;
    }
    if (amx_ && nv % 32 == 0) {
      // P of rows [r0, r1), zero in the blocks' other rows (their o rows then gain exact zeros)
      // (and zero past this block's n keys up to the nv the tile holds)
      ak_.to_bf16_rows(sc + r0 * lds, lds, r1 - r0, n, ph + r0 * lds, lds);
      for (int64_t r = ba; r < bb; ++r) {
        if (r < r0 || r >= r1)
          std::memset(ph + r * lds, 0, size_t(nv) * 2);
        else if (n < nv)
          std::memset(ph + r * lds + n, 0, size_t(nv - n) * 2);
      }
      for (int64_t b = ba; b < bb; b += gemm_cpu::kAmxRows)
        gemm_cpu::amx_bf16_rows(ph + b * lds, lds, nv / 32,
                                reinterpret_cast<const uint16_t*>(vpt), nv * kNR, Dp_ / kNR,
                                o + b * ldo, ldo, true);
      continue;
    }
    if (bf16) {
      // the micro-panels' rows past R too (their zero scores: Q's zero padding)
      const int64_t rp = std::min(Rp, pb * kMR);
      ak_.to_bf16_rows(sc + r0 * lds, lds, rp - r0, n, ph + r0 * lds, lds);
      pv_bf16_tile(ph, lds, reinterpret_cast<const uint16_t*>(vpt), round_up(nv, 2), pa, pb, ka,
                   kb, o, ldo);
      continue;
    }
    if (!gk_.kernel_rows)
      gk_.pack_a(sc + r0 * lds, DType::float32, lds, r1 - r0, n, pp + pa * kMR * n);
    // (a V panel's key k is at + k * kNR; a packed P panel's at + k * kMR)
    int64_t pv = 0;
    if (gk_.kernel4_rows)
      for (; pv + 4 <= Dp_ / kNR; pv += 4)
        for (int64_t pi = pa; pi < pb; ++pi)
          if (kb[pi] >= ka[pi])
            gk_.kernel4_rows(kb[pi] - ka[pi] + 1, sc + pi * kMR * lds + ka[pi], lds,
                             vpt + (pv * nv + ka[pi]) * kNR, nv * kNR,
                             o + pi * kMR * ldo + pv * kNR, ldo, true);
    if (gk_.kernel2_rows)
      for (; pv + 2 <= Dp_ / kNR; pv += 2)
        for (int64_t pi = pa; pi < pb; ++pi)
          if (kb[pi] >= ka[pi])
            gk_.kernel2_rows(kb[pi] - ka[pi] + 1, sc + pi * kMR * lds + ka[pi], lds,
                             vpt + (pv * nv + ka[pi]) * kNR, vpt + ((pv + 1) * nv + ka[pi]) * kNR,
                             o + pi * kMR * ldo + pv * kNR, ldo, true);
    for (int64_t pj = pv; pj < Dp_ / kNR; ++pj)
      for (int64_t pi = pa; pi < pb; ++pi) {
        if (kb[pi] < ka[pi]) continue;
        const int64_t kn = kb[pi] - ka[pi] + 1;
        float* oc = o + pi * kMR * ldo + pj * kNR;
        const float* vk = vpt + (pj * nv + ka[pi]) * kNR;
        if (gk_.kernel_rows)
          gk_.kernel_rows(kn, sc + pi * kMR * lds + ka[pi], lds, vk, oc, ldo, true);
        else
          gk_.kernel(kn, pp + pi * kMR * n + ka[pi] * kMR, vk, oc, ldo, true);
      }
  }
  finish_rows(s, it, R, o, ldo, m, l, chunks_ > 1);
}

// Decode-sized items (at most kMaxStreamRows rows per kv head): kv heads [hk, hk + nh) of one
// batch entry, kStreamKeys keys per step. With at most kKeyMajorRows rows per head (and the ISA's
// qk_keys / pv_keys) a step goes key by key over all heads, the address order of a 'bshd' cache;
// otherwise head by head, qk_dot and pv_accum reading the step's K and V rows of one head in
// place while each (step, head) asks for the next one's rows ahead of use.
void Runner::run_stream_item(const Item& it) {
  const Seq& s = seqs_[size_t(it.b)];
  const int64_t R = it.r1 - it.r0, nh = it.nh, NR = nh * R;
  int64_t lo[kMaxStreamRows], hi[kMaxStreamRows], klo, khi, full_lo, full_hi;
  ranges(s, it, lo, hi, &klo, &khi, &full_lo, &full_hi);

  const bool key_major = ak_.qk_keys && ak_.pv_keys && R <= kKeyMajorRows;
  // a bfloat16 K against the bfloat16 q rows as stored (qk_bf16), where the ISA has it
  const bool bf16_qk = !key_major && p_.dtype == DType::bfloat16 && ak_.qk_bf16 && fast_bf16_dot();
  const int64_t lds = kStreamKeys, ldo = Dp_;
  const int64_t qh_floats = bf16_qk ? NR * D_ / 2 + 1 : 0;  // bfloat16 q rows
  const int64_t sizes[7] = {NR * D_, NR * lds, NR * ldo, NR, NR, NR, qh_floats};
  int64_t total = 0;
  for (int64_t n : sizes) total += round_up(n, 16);
  float* mem = static_cast<float*>(scratch_get(0, size_t(total) * sizeof(float)));
  float* piece[7];
  for (int i = 0; i < 7; ++i) {
    piece[i] = mem;
    mem += round_up(sizes[i], 16);
  }
  float *qb = piece[0], *sc = piece[1], *o = piece[2], *m = piece[3], *l = piece[4],
        *alpha = piece[5];
  uint16_t* qh = reinterpret_cast<uint16_t*>(piece[6]);
  for (int64_t hl = 0; hl < nh; ++hl)
    for (int64_t r = 0; r < R; ++r) {
      const int64_t row = it.r0 + r;
      const char* src = q_row(s, it.b, row / G_, (it.hk + hl) * G_ + row % G_);
      if (bf16_qk) {
        std::memcpy(qh + (hl * R + r) * D_, src, size_t(D_) * sizeof(uint16_t));
        continue;
      }
      float* qr = qb + (hl * R + r) * D_;
      convert_to_f32(src, p_.dtype, qr, D_);
      for (int64_t d = 0; d < D_; ++d) qr[d] *= p_.scale;
    }
  std::memset(o, 0, size_t(NR * ldo) * sizeof(float));
  for (int64_t r = 0; r < NR; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
  }

  const int64_t ks = p_.k_strides[1], vs = p_.v_strides[1];
  if (key_major) {
    // Key by key over all the item's heads (a bshd cache in address order, followed by the
    // hardware prefetchers): one step's scores of every head, one softmax over all their rows.
    for (int64_t j0 = klo; j0 <= khi; j0 += kStreamKeys) {
      const int64_t n = std::min(kStreamKeys, khi + 1 - j0);
      ak_.qk_keys(qb, R, nh, kv_row(p_.k, p_.k_strides, s, it.b, j0, it.hk), p_.dtype, ks,
                  p_.k_strides[2], n, D_, sc, lds);
      if (elementwise_ || j0 < full_lo || j0 + n - 1 > full_hi)
        for (int64_t hl = 0; hl < nh; ++hl) {
          Item head = it;
          head.hk = it.hk + hl;
          head.nh = 1;
          transform(s, head, R, j0, n, sc + hl * R * lds, lds, lo, hi);
        }
      ak_.softmax_tile(sc, lds, NR, n, m, l, alpha);
      rescale_rows(o, ldo, NR, D_, alpha);
      ak_.pv_keys(sc, lds, R, nh, kv_row(p_.v, p_.v_strides, s, it.b, j0, it.hk), p_.dtype, vs,
                  p_.v_strides[2], n, D_, o, ldo);
    }
  } else {
    if (klo <= khi) {  // the first (step, head): nothing asked for it yet
      const int64_t n = std::min(kStreamKeys, khi + 1 - klo);
      prefetch_rows(kv_row(p_.k, p_.k_strides, s, it.b, klo, it.hk), D_ * esz_, ks * esz_, n);
      prefetch_rows(kv_row(p_.v, p_.v_strides, s, it.b, klo, it.hk), D_ * esz_, vs * esz_, n);
    }
    for (int64_t j0 = klo; j0 <= khi; j0 += kStreamKeys) {
      const int64_t n = std::min(kStreamKeys, khi + 1 - j0);
      const bool partial = elementwise_ || j0 < full_lo || j0 + n - 1 > full_hi;
      for (int64_t hl = 0; hl < nh; ++hl) {
        Item head = it;
        head.hk = it.hk + hl;
        head.nh = 1;
        // The next (step, head) in this loop order: its K and V rows are requested now.
        attention_cpu::Prefetch pf;
        const int64_t nj = hl + 1 < nh ? j0 : j0 + n, nhk = hl + 1 < nh ? head.hk + 1 : it.hk;
        if (nj <= khi) {
          pf.k = kv_row(p_.k, p_.k_strides, s, it.b, nj, nhk);
          pf.v = kv_row(p_.v, p_.v_strides, s, it.b, nj, nhk);
          pf.ldv = vs;
          pf.k_rows = pf.v_rows = std::min(kStreamKeys, khi + 1 - nj);
        }
        float *oh = o + hl * R * ldo, *mh = m + hl * R, *lh = l + hl * R, *ah = alpha + hl * R;
        const void* kr = kv_row(p_.k, p_.k_strides, s, it.b, j0, head.hk);
        if (bf16_qk)
          ak_.qk_bf16(qh + hl * R * D_, D_, R, kr, ks, n, D_, p_.scale, sc, lds, pf);
        else
          ak_.qk_dot(qb + hl * R * D_, D_, R, kr, p_.dtype, ks, n, D_, sc, lds, pf);
        if (partial) transform(s, head, R, j0, n, sc, lds, lo, hi);
        ak_.softmax_tile(sc, lds, R, n, mh, lh, ah);
        rescale_rows(oh, ldo, R, D_, ah);
        ak_.pv_accum(sc, lds, R, kv_row(p_.v, p_.v_strides, s, it.b, j0, head.hk), p_.dtype, vs,
                     n, D_, oh, ldo, pf);
      }
    }
  }
  for (int64_t hl = 0; hl < nh; ++hl) {
    Item head = it;
    head.hk = it.hk + hl;
    finish_rows(s, head, R, o + hl * R * ldo, ldo, m + hl * R, l + hl * R, chunks_ > 1, hl * R);
  }
}

Status Runner::run() {
  const int64_t B = p_.batch;
  seqs_.resize(size_t(B));
  int64_t max_sk = 0;
  for (int64_t b = 0; b < B; ++b) {
    Seq& s = seqs_[size_t(b)];
    if (p_.cu_seqlens_q) {
      s.q_row0 = p_.cu_seqlens_q[b];
      s.sq = p_.cu_seqlens_q[b + 1] - p_.cu_seqlens_q[b];
      s.k_row0 = p_.cu_seqlens_k[b];
      s.sk = p_.cu_seqlens_k[b + 1] - p_.cu_seqlens_k[b];
    } else {
      s.sq = p_.seqlen_q;
      s.sk = p_.seqlen_k;
    }
    if (p_.seqlens_k) s.sk = p_.seqlens_k[b];
    s.off = s.sk - s.sq;
    max_sk = std::max(max_sk, s.sk);
  }
  elementwise_ = p_.softcap > 0.0f || p_.alibi || p_.mask;

  // Blocks of group rows, then chunks of keys when the blocks cannot fill the threads. Decode-
  // sized groups (at most kMaxStreamRows rows) of a cache whose heads sit side by side within a
  // key ('bshd': head stride < key stride) take several kv heads per block, read key by key.
  const bool heads_inside_keys = p_.k_strides[2] < p_.k_strides[1];
  const int64_t nthreads = p_.max_threads > 0 ? std::min(p_.max_threads, threads()) : threads();
  std::vector<Item> blocks;
  // rows of the largest block: the partials' stride (with block_rows_ for every call, a decode
  // call zeroed 12x the partials it used: 7% of a bfloat16 Hk = 8 decode in cache)
  int64_t max_rows = 0;
  for (int64_t b = 0; b < B; ++b) {
    const Seq& s = seqs_[size_t(b)];
    const int64_t rows = s.sq * G_;
    if (rows > 0 && rows <= kMaxStreamRows) {
      int64_t nh = heads_inside_keys ? std::max<int64_t>(1, kStreamRows / rows) : 1;
      // keys too few to split into chunks: the heads alone must give every thread an item
      if (max_sk < 2 * kMinChunkKeys) nh = std::min(nh, ceil_div(p_.heads_k, nthreads));
      for (int64_t hk = 0; hk < p_.heads_k; hk += nh) {
        Item it{b, hk, 0, rows, 0, int64_t(blocks.size()), 0};
        it.nh = std::min(nh, p_.heads_k - hk);
        int64_t lo, hi, lo2, hi2;
        visible(s, 0, &lo, &hi);
        visible(s, s.sq - 1, &lo2, &hi2);
        it.cost = it.nh * rows * std::max<int64_t>(0, hi2 - lo + 1) + 1;
        max_rows = std::max(max_rows, it.nh * rows);
        blocks.push_back(it);
      }
      continue;
    }
    for (int64_t hk = 0; hk < p_.heads_k; ++hk) {
      for (int64_t r0 = 0; r0 < rows; r0 += block_rows_) {
        Item it{b, hk, r0, std::min(rows, r0 + block_rows_), 0, int64_t(blocks.size()), 0};
        max_rows = std::max(max_rows, it.r1 - r0);
        int64_t lo, hi, lo2, hi2;
        visible(s, r0 / G_, &lo, &hi);
        visible(s, (it.r1 - 1) / G_, &lo2, &hi2);
        it.cost = (it.r1 - r0) * std::max<int64_t>(0, hi2 - lo + 1) + 1;
        blocks.push_back(it);
      }
    }
  }
  if (blocks.empty()) return Status::Ok();
  const int64_t nblocks = int64_t(blocks.size());
  if (nthreads > 1 && nblocks < 2 * nthreads && max_sk >= 2 * kMinChunkKeys) {
    chunks_ = std::min(ceil_div(4 * nthreads, nblocks), max_sk / kMinChunkKeys);
  }
  std::vector<float> partial;
  std::vector<Item> items;
  if (chunks_ > 1) {
    chunk_keys_.resize(size_t(B));
    for (int64_t b = 0; b < B; ++b)
      chunk_keys_[size_t(b)] =
          std::max<int64_t>(1, round_up(ceil_div(seqs_[size_t(b)].sk, chunks_), tile_keys_));
    partial_stride_ = max_rows * (Dp_ + 2);
    partial.resize(size_t(nblocks * chunks_ * partial_stride_));
    partial_ = partial.data();
    for (const Item& blk : blocks)
      for (int64_t c = 0; c < chunks_; ++c) {
        Item it = blk;
        it.chunk = c;
        items.push_back(it);
      }
  } else {
    items = blocks;
    // Every block of a (b, kv head) in one item over shared packed K / V tiles, when there are
    // enough heads to keep the threads busy and their tiles fit kMaxPackedKVBytes.
    int64_t groups = 0, max_sk_tiles = 0;
    bool tiled = true;
    for (const Item& it : blocks) {
      groups += it.r0 == 0;
      // a head's first block decides; a last block of at least one micro-panel runs inside its
      // whole item, tiled
      tiled = tiled && (it.r0 > 0 ? it.r1 - it.r0 >= kMR : it.r1 - it.r0 > kMaxStreamRows);
    }
    for (const Seq& s : seqs_) max_sk_tiles = std::max(max_sk_tiles, ceil_div(s.sk, tile_keys_));
    const int64_t kv_bytes =
        max_sk_tiles * (k_tile_floats() + v_tile_floats()) * int64_t(sizeof(float));
    // (the AMX parts are 1.5x the float32 panels: as many keys allowed)
    const int64_t max_kv = amx_f32_ ? kMaxPackedKVBytes * 3 / 2 : kMaxPackedKVBytes;
    if (tiled && groups >= 4 * nthreads && groups < nblocks && kv_bytes <= max_kv) {
      std::vector<Item> whole;
      for (const Item& it : blocks) {
        if (it.r0 == 0) {
          whole.push_back(it);
          whole.back().whole = true;
          whole.back().cost = 0;
        }
        whole.back().r1 = it.r1;
        whole.back().cost += it.cost;
      }
      items = whole;
    }
    // Heaviest first so the dynamic schedule ends evenly (causal blocks differ by up to Sk).
    std::stable_sort(items.begin(), items.end(),
                     [](const Item& a, const Item& b) { return a.cost > b.cost; });
  }

  parallel_for(
      int64_t(items.size()),
      [&](int64_t t, int) {
        const Item& it = items[size_t(t)];
        if (it.r1 - it.r0 <= kMaxStreamRows)
          run_stream_item(it);
        else
          run_item(it);
      },
      p_.max_threads);

  if (chunks_ > 1) {
    // log-sum-exp merge of the chunks, in chunk order (deterministic).
    parallel_for(
        nblocks,
        [&](int64_t t, int) {
          const Item& blk = blocks[size_t(t)];
          const Seq& s = seqs_[size_t(blk.b)];
          const int64_t R = blk.r1 - blk.r0, NR = blk.nh * R;
          float* acc = static_cast<float*>(scratch_get(2, size_t(NR * (Dp_ + 2)) * sizeof(float)));
          std::vector<float> m(size_t(NR), kNegInf), l(size_t(NR), 0.0f);
          for (int64_t c = 0; c < chunks_; ++c) {
            const float* src = partial_ + (blk.block * chunks_ + c) * partial_stride_;
            for (int64_t r = 0; r < NR; ++r) {
              const float* row = src + r * (Dp_ + 2);
              float* a = acc + r * Dp_;
              if (c == 0) std::memset(a, 0, size_t(Dp_) * sizeof(float));
              if (row[1] == 0.0f) continue;  // no visible key in this chunk
              const float mx = std::max(m[size_t(r)], row[0]);
              const float wa = std::exp(m[size_t(r)] - mx), wb = std::exp(row[0] - mx);
              for (int64_t d = 0; d < D_; ++d) a[d] = a[d] * wa + row[2 + d] * wb;
              l[size_t(r)] = l[size_t(r)] * wa + row[1] * wb;
              m[size_t(r)] = mx;
            }
          }
          for (int64_t hl = 0; hl < blk.nh; ++hl) {
            Item head = blk;
            head.hk = blk.hk + hl;
            finish_rows(s, head, R, acc + hl * R * Dp_, Dp_, m.data() + hl * R,
                        l.data() + hl * R, false);
          }
        },
        p_.max_threads);
  }
  return Status::Ok();
}

Status check(const AttentionParams& p) {
  auto bad = [](StatusCode c, const std::string& m) { return Status(c, "attention: " + m); };
  if (!dtype_is_float(p.dtype))
    return bad(StatusCode::dtype, "argument 'q': expected float32, float16 or bfloat16");
  if (p.batch < 0 || p.seqlen_q < 0 || p.seqlen_k < 0)
    return bad(StatusCode::shape, "argument 'q': negative size");
  if (p.heads_q < 1 || p.heads_k < 1 || p.heads_q % p.heads_k != 0)
    return bad(StatusCode::shape, "argument 'k': heads of k must divide heads of q");
  if (p.head_dim < 1 || p.head_dim > kAttentionMaxHeadDim)
    return bad(StatusCode::shape, "argument 'q': head dim must be in [1, 256]");
  if (!std::isfinite(p.scale)) return bad(StatusCode::arg, "option 'scale' must be finite");
  if (!(p.softcap >= 0.0f) || !std::isfinite(p.softcap))
    return bad(StatusCode::arg, "option 'softcap' must be a positive finite number");
  if (p.window_left < -1 || p.window_right < -1)
    return bad(StatusCode::arg, "option 'window': values must be >= -1");
  if (p.mask && p.mask_dtype != DType::float32 && p.mask_dtype != DType::uint8)
    return bad(StatusCode::dtype, "option 'mask': expected float32 or uint8");
  if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr))
    return bad(StatusCode::arg, "options 'cuSeqlensQ' and 'cuSeqlensK' go together");
  if (p.cu_seqlens_q) {
    if (p.mask) return bad(StatusCode::arg, "option 'mask' is not supported in varlen mode");
    if (p.cu_seqlens_q[0] != 0 || p.cu_seqlens_k[0] != 0)
      return bad(StatusCode::arg, "option 'cuSeqlensQ'/'cuSeqlensK' must start at 0");
    for (int64_t b = 0; b < p.batch; ++b) {
      if (p.cu_seqlens_q[b + 1] < p.cu_seqlens_q[b])
        return bad(StatusCode::arg, "option 'cuSeqlensQ' must be non-decreasing");
      if (p.cu_seqlens_k[b + 1] < p.cu_seqlens_k[b])
        return bad(StatusCode::arg, "option 'cuSeqlensK' must be non-decreasing");
    }
    if (p.cu_seqlens_q[p.batch] != p.seqlen_q)
      return bad(StatusCode::arg, "option 'cuSeqlensQ': last entry must equal the rows of q");
    if (p.cu_seqlens_k[p.batch] != p.seqlen_k)
      return bad(StatusCode::arg, "option 'cuSeqlensK': last entry must equal the rows of k");
  }
  if (p.seqlens_k)
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t len = p.cu_seqlens_k ? p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b] : p.seqlen_k;
      if (p.seqlens_k[b] < 0 || p.seqlens_k[b] > len)
        return bad(StatusCode::arg, "option 'seqlensK': entry " + std::to_string(b) +
                                        " is outside [0, keys of its sequence]");
    }
  return Status::Ok();
}

}  // namespace

Status attention(const AttentionParams& p) {
  TF_RETURN_IF_ERROR(check(p));
  if (p.batch == 0 || p.seqlen_q == 0) return Status::Ok();
  Runner runner(p);
  return runner.run();
}

}  // namespace tf
