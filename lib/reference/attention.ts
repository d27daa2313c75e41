/**
 * float64 reference of attention(), straight from the definition: for every (batch, head,
 * query) the full row of scores, the options applied in the kernel's order (scale, softcap,
 * ALiBi, mask, then visibility: seqlensK, causal, window), softmax, and the weighted sum of v.
 * `round` turns it into a naive same-precision implementation (scores, probabilities and output
 * rounded to a 16-bit float, as unfused half-precision attention does), which the float16 and
 * bfloat16 tests use as the error budget (FlashAttention's rule: at most 2x its error).
 */
import type { AttentionOptions } from '../ops/attention.js';
import type { Tensor } from '../tensor.js';

export interface AttentionRef {
  /** Same shape and layout as q. */
  out: Float64Array;
  /** [B, Hq, Sq], or [Hq, totalQ] in varlen mode; -Infinity where a row sees no key. */
  lse: Float64Array;
}

export function attentionRef(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
  round: (x: number) => number = (x) => x,
): AttentionRef {
  const Q = Float64Array.from(q.toFloat32());
  const K = Float64Array.from(k.toFloat32());
  const V = Float64Array.from(v.toFloat32());
  const layout = opts.layout ?? 'bshd';
  const varlen = opts.cuSeqlensQ !== undefined;
  const cuQ = varlen ? (opts.cuSeqlensQ!.data() as Int32Array) : null;
  const cuK = varlen ? (opts.cuSeqlensK!.data() as Int32Array) : null;
  let B: number, Sq: number, Sk: number, Hq: number, Hk: number, D: number;
  if (varlen) {
    [Sq, Hq, D] = q.shape as number[];
    [Sk, Hk] = k.shape as number[];
    B = cuQ!.length - 1;
  } else if (layout === 'bshd') {
    [B, Sq, Hq, D] = q.shape as number[];
    [, Sk, Hk] = k.shape as number[];
  } else {
    [B, Hq, Sq, D] = q.shape as number[];
    [, Hk, Sk] = k.shape as number[];
  }
  const G = Hq / Hk;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const [wl, wr] = opts.window ?? [-1, -1];
  const cap = opts.softcap ?? 0;
  const slopes = opts.alibiSlopes ? Float64Array.from(opts.alibiSlopes.toFloat32()) : null;
  const slopeAt = (b: number, h: number) => slopes![opts.alibiSlopes!.rank === 2 ? b * Hq + h : h];
  const seqlensK = opts.seqlensK ? (opts.seqlensK.data() as Int32Array) : null;
  const mask = opts.mask;
  const maskData = mask
    ? Float64Array.from(mask.dtype === 'uint8' ? (mask.data() as Uint8Array) : mask.toFloat32())
    : null;
  const maskAt = (b: number, h: number, i: number, j: number): number => {
    const idx = [b, h, i, j];
    let off = 0;
    let stride = 1;
    for (let a = mask!.rank - 1; a >= 0; a--) {
      const d = mask!.shape[a];
      if (d !== 1) off += idx[4 - mask!.rank + a] * stride;
      stride *= d;
    }
    return maskData![off];
  };

  // Element offsets of (row, head) in the packed/unpacked layouts.
  const at = (b: number, s: number, h: number, S: number, H: number): number =>
    varlen ? (s * H + h) * D : layout === 'bshd' ? ((b * S + s) * H + h) * D : ((b * H + h) * S + s) * D;

  const out = new Float64Array(q.size);
  const lse = new Float64Array(varlen ? Hq * Sq : B * Hq * Sq);
  const scores = new Float64Array(Math.max(Sk, 1));
  for (let b = 0; b < B; b++) {
    const q0 = varlen ? cuQ![b] : 0;
    const k0 = varlen ? cuK![b] : 0;
    const sq = varlen ? cuQ![b + 1] - cuQ![b] : Sq;
    const len = varlen ? cuK![b + 1] - cuK![b] : Sk;
    const sk = seqlensK ? seqlensK[b] : len;
    const off = sk - sq;
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < sq; i++) {
        const qo = at(b, q0 + i, h, Sq, Hq);
        let m = -Infinity;
        for (let j = 0; j < sk; j++) {
          const ko = at(b, k0 + j, hk, Sk, Hk);
          let s = 0;
          for (let d = 0; d < D; d++) s += Q[qo + d] * K[ko + d];
          s *= scale;
          if (cap > 0) s = cap * Math.tanh(s / cap);
          if (slopes) s -= slopeAt(b, h) * Math.abs(i + off - j);
          if (mask) {
            const mv = maskAt(b, h, i, j);
            if (mask.dtype === 'uint8') {
              if (mv === 0) s = -Infinity;
            } else s += mv;
          }
          const diag = i + off;
          if (opts.causal && j > diag) s = -Infinity;
          if (wr >= 0 && j > diag + wr) s = -Infinity;
          if (wl >= 0 && j < diag - wl) s = -Infinity;
          s = round(s);
          scores[j] = s;
          if (s > m) m = s;
        }
        const lo = varlen ? h * Sq + q0 + i : (b * Hq + h) * Sq + i;
        const oo = at(b, q0 + i, h, Sq, Hq);
        if (m === -Infinity) {
          lse[lo] = -Infinity;
          continue; // out stays 0
        }
        let l = 0;
        for (let j = 0; j < sk; j++) {
          scores[j] = Math.exp(scores[j] - m);
          l += scores[j];
        }
        lse[lo] = m + Math.log(l);
        for (let j = 0; j < sk; j++) {
          const p = round(scores[j] / l);
          if (p === 0) continue;
          const vo = at(b, k0 + j, hk, Sk, Hk);
          for (let d = 0; d < D; d++) out[oo + d] += p * V[vo + d];
        }
        for (let d = 0; d < D; d++) out[oo + d] = round(out[oo + d]);
      }
    }
  }
  return { out, lse };
}
