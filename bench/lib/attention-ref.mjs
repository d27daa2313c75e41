// Helpers of the attention family (bench/attention.mjs): a float64 check of a few output rows,
// the layout conversions the ONNX peers need, and the FLOP count of a causal mask.
//
// The check does not need lib/reference: it recomputes softmax(q k^T * scale) v in float64 for a
// handful of (batch, query, head) rows, which is O(Sk * D) each, so it runs on the prefill
// shapes too (the full float64 reference would take minutes in JS there).

/**
 * Number of keys query i (0-based) sees: all Sk when not causal; with the mask aligned to the
 * bottom-right corner (FlashAttention >= 2.1, API.md), i + Sk - Sq + 1 clamped to [0, Sk].
 */
export function visibleKeys(i, sq, sk, causal) {
  if (!causal) return sk;
  return Math.max(0, Math.min(sk, i + sk - sq + 1));
}

/** Mean number of keys a query sees (BENCH.md's avgSk): Sk, or about (Sk + 1) / 2 when causal and Sq = Sk. */
export function averageVisibleKeys(sq, sk, causal) {
  if (!causal) return sk;
  let total = 0;
  for (let i = 0; i < sq; i++) total += visibleKeys(i, sq, sk, causal);
  return total / sq;
}

/** The query rows to check: the first, the last and two in between (distinct, ascending). */
export function checkRows(sq) {
  return [...new Set([0, Math.floor(sq / 3), Math.floor((2 * sq) / 3), sq - 1])].sort((a, b) => a - b);
}

/**
 * float64 attention for selected rows of bshd data (Float32Array views, float16 / bfloat16
 * already widened): q [B, Sq, Hq, D], k / v [B, Sk, Hk, D]. picks: [{ b, i, h }].
 * Returns a Float64Array of picks.length * D values (pick order).
 */
export function attentionRows64({ q, k, v }, { B, Sq, Sk, Hq, Hk, D, causal, scale }, picks) {
  const s = scale ?? 1 / Math.sqrt(D);
  const group = Hq / Hk;
  const out = new Float64Array(picks.length * D);
  const scores = new Float64Array(Sk);
  picks.forEach(({ b, i, h }, p) => {
    const hk = Math.floor(h / group);
    const qo = ((b * Sq + i) * Hq + h) * D;
    const n = visibleKeys(i, Sq, Sk, causal);
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      const ko = ((b * Sk + j) * Hk + hk) * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
      scores[j] = dot * s;
      if (scores[j] > max) max = scores[j];
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      scores[j] = Math.exp(scores[j] - max);
      sum += scores[j];
    }
    for (let j = 0; j < n; j++) {
      const w = scores[j] / sum;
      const vo = ((b * Sk + j) * Hk + hk) * D;
      for (let d = 0; d < D; d++) out[p * D + d] += w * v[vo + d];
    }
  });
  return out;
}

/** The same rows picked out of an output in bshd order (B, Sq, Hq, D) = BSH (B, Sq, Hq*D). */
export function pickRows(out, { Sq, Hq, D }, picks) {
  const r = new Float64Array(picks.length * D);
  picks.forEach(({ b, i, h }, p) => {
    const o = ((b * Sq + i) * Hq + h) * D;
    for (let d = 0; d < D; d++) r[p * D + d] = out[o + d];
  });
  return r;
}

/**
 * Copies positions [from, to) of a bshd tensor's data [B, S, H, D] into BNSH order
 * [B, H, to - from, D] (the cache layout of the ONNX ops). Works on any TypedArray.
 */
export function bshdToBnsh(src, { B, S, H, D }, from = 0, to = S) {
  const n = to - from;
  const out = new src.constructor(B * H * n * D);
  for (let b = 0; b < B; b++)
    for (let s = from; s < to; s++)
      for (let h = 0; h < H; h++) {
        const si = ((b * S + s) * H + h) * D;
        const di = ((b * H + h) * n + (s - from)) * D;
        out.set(src.subarray(si, si + D), di);
      }
  return out;
}

/** Positions [from, to) of bshd data [B, S, H, D], still bshd: [B, to - from, H, D]. */
export function bshdSlice(src, { B, S, H, D }, from, to) {
  const n = to - from;
  const out = new src.constructor(B * n * H * D);
  for (let b = 0; b < B; b++) out.set(src.subarray((b * S + from) * H * D, (b * S + to) * H * D), b * n * H * D);
  return out;
}

/** ||a - b|| / ||b|| (0 when both are zero). */
export function relErr(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}
