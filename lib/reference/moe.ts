/**
 * float64 references of the mixture-of-experts ops (API.md "Mixture of experts"), written from
 * the definitions:
 *   route:    scores = softmax(logits) or sigmoid(logits); selection keys = scores + bias;
 *             grouped top-k keeps the best groups.topK groups (score: sum of the best two keys,
 *             or the max when there is no bias); top-k over the kept experts, ties to the lower
 *             id; weights = unbiased scores of the chosen (normalised to sum 1, then scaled);
 *             capacity admits slots by choice rank j, then token t; the rest are dropped.
 *             auxLoss = E * sum_e f_e P_e with f_e the share of the router's choices (before the
 *             capacity drop) and P_e the mean score; zLoss = mean_t logsumexp(logits_t)^2.
 *   align:    vLLM moe_align_block_size.
 *   dispatch: row r = x[order[r] / topK].
 *   combine:  out[t] = sum_j weights[t, j] * y[row of slot (t, j)].
 *   ffn:      the unfused loop: for every kept slot, w2_e (act(w1_e x_t) * (w3_e x_t)), weighted;
 *             ffnInt8Ref the same with every product of a quantized expert taken as W8A8 / W4A8.
 */
import { activationRef } from './gemm.js';
import { w8a8Ref, type QTensorFields } from './quant.js';
import type { Tensor64 } from './tensor64.js';

export interface RouteRefOptions {
  topK: number;
  scoring?: 'softmax' | 'sigmoid';
  normalize?: boolean;
  bias?: ArrayLike<number>;
  groups?: { count: number; topK: number };
  scale?: number;
  capacityFactor?: number;
}

/** The routing tables of a reference (or native) route, as plain arrays. */
export interface RoutingRef {
  T: number;
  topK: number;
  E: number;
  weights: ArrayLike<number>; // [T * topK]
  experts: ArrayLike<number>; // [T * topK], -1 where dropped
  counts: ArrayLike<number>; // [E]
  offsets: ArrayLike<number>; // [E + 1]
  order: ArrayLike<number>; // [kept slots]
  dropped: number;
  auxLoss: number;
  zLoss: number;
  /** Reference only: the smallest non-zero gap, over tokens, between consecutive keys among the
   *  top k + 1 candidates (and group scores among the top groups.topK + 1). A float32 kernel can
   *  only disagree with the reference on a choice when this is near its rounding error. */
  minMargin?: number;
}

/** Smallest non-zero gap between consecutive values of the `n` largest of `vals`. */
function topGap(vals: number[], n: number): number {
  const top = vals
    .slice()
    .sort((a, b) => b - a)
    .slice(0, n);
  let g = Infinity;
  for (let i = 1; i < top.length; i++) if (top[i - 1] - top[i] > 0) g = Math.min(g, top[i - 1] - top[i]);
  return g;
}

/** Top-k of keys over allowed ids: descending key, ties to the lower id (a stable sort). */
function topKIds(keys: ArrayLike<number>, allowed: (i: number) => boolean, k: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < keys.length; i++) if (allowed(i)) ids.push(i);
  ids.sort((a, b) => keys[b] - keys[a] || a - b);
  return ids.slice(0, k);
}

export function routeRef(logits: Tensor64, opts: RouteRefOptions): RoutingRef {
  const [T, E] = logits.shape;
  const k = opts.topK;
  const scoring = opts.scoring ?? 'softmax';
  const normalize = opts.normalize ?? true;
  const scale = opts.scale ?? 1;
  const weights = new Float64Array(T * k);
  const experts = new Int32Array(T * k);
  const probSum = new Float64Array(E);
  let z = 0;
  let minMargin = Infinity;
  for (let t = 0; t < T; t++) {
    const x = logits.data.subarray(t * E, (t + 1) * E);
    let m = -Infinity;
    for (let e = 0; e < E; e++) m = Math.max(m, x[e]);
    let sum = 0;
    for (let e = 0; e < E; e++) sum += Math.exp(x[e] - m);
    const lse = m + Math.log(sum);
    z += lse * lse;
    const s = new Float64Array(E);
    for (let e = 0; e < E; e++) s[e] = scoring === 'softmax' ? Math.exp(x[e] - m) / sum : 1 / (1 + Math.exp(-x[e]));
    for (let e = 0; e < E; e++) probSum[e] += s[e];
    const keys = new Float64Array(E);
    for (let e = 0; e < E; e++) keys[e] = s[e] + (opts.bias ? opts.bias[e] : 0);
    let allowed = (_e: number): boolean => true;
    if (opts.groups) {
      const G = opts.groups.count;
      const gs = E / G;
      const gscore = new Float64Array(G);
      for (let g = 0; g < G; g++) {
        const vals = Array.from(keys.subarray(g * gs, (g + 1) * gs)).sort((a, b) => b - a);
        gscore[g] = opts.bias ? vals[0] + (gs > 1 ? vals[1] : 0) : vals[0];
      }
      const kept = new Set(topKIds(gscore, () => true, opts.groups.topK));
      minMargin = Math.min(minMargin, topGap(Array.from(gscore), opts.groups.topK + 1));
      allowed = (e) => kept.has(Math.floor(e / gs));
    }
    const ids = topKIds(keys, allowed, k);
    const cand: number[] = [];
    for (let e = 0; e < E; e++) if (allowed(e)) cand.push(keys[e]);
    minMargin = Math.min(minMargin, topGap(cand, k + 1));
    let wsum = 0;
    for (let j = 0; j < k; j++) wsum += s[ids[j]];
    for (let j = 0; j < k; j++) {
      experts[t * k + j] = ids[j];
      weights[t * k + j] = ((normalize && wsum > 0 ? s[ids[j]] / wsum : s[ids[j]]) as number) * scale;
    }
  }
  const chosen = new Float64Array(E);
  for (let i = 0; i < T * k; i++) chosen[experts[i]]++;
  let aux = 0;
  if (T > 0) for (let e = 0; e < E; e++) aux += (chosen[e] / (T * k)) * (probSum[e] / T);
  aux *= E;
  // capacity: choice rank first, then token
  const counts = new Int32Array(E);
  let dropped = 0;
  const cap = opts.capacityFactor !== undefined ? Math.ceil((opts.capacityFactor * T * k) / E) : Infinity;
  for (let j = 0; j < k; j++)
    for (let t = 0; t < T; t++) {
      const s = t * k + j;
      const e = experts[s];
      if (counts[e] < cap) counts[e]++;
      else {
        experts[s] = -1;
        weights[s] = 0;
        dropped++;
      }
    }
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e] + counts[e];
  const order: number[] = [];
  for (let e = 0; e < E; e++) for (let s = 0; s < T * k; s++) if (experts[s] === e) order.push(s);
  return {
    T,
    topK: k,
    E,
    weights,
    experts,
    counts,
    offsets,
    order: Int32Array.from(order),
    dropped,
    auxLoss: aux,
    zLoss: T > 0 ? z / T : 0,
    minMargin,
  };
}

export function alignRef(
  experts: ArrayLike<number>,
  numExperts: number,
  blockSize: number,
): { sortedTokenIds: number[]; expertIds: number[]; numTokensPostPadded: number } {
  const n = experts.length;
  const sorted: number[] = [];
  const ids: number[] = [];
  for (let e = 0; e < numExperts; e++) {
    const run: number[] = [];
    for (let s = 0; s < n; s++) if (experts[s] === e) run.push(s);
    while (run.length % blockSize !== 0) run.push(n);
    for (let b = 0; b < run.length / blockSize; b++) ids.push(e);
    sorted.push(...run);
  }
  return { sortedTokenIds: sorted, expertIds: ids, numTokensPostPadded: sorted.length };
}

export function dispatchRef(x: Tensor64, r: Pick<RoutingRef, 'topK' | 'order'>): Tensor64 {
  const D = x.shape[1];
  const rows = r.order.length;
  const out = new Float64Array(rows * D);
  for (let i = 0; i < rows; i++) {
    const t = Math.floor(r.order[i] / r.topK);
    for (let d = 0; d < D; d++) out[i * D + d] = x.data[t * D + d];
  }
  return { data: out, shape: [rows, D] };
}

export function combineRef(y: Tensor64, r: Pick<RoutingRef, 'T' | 'topK' | 'weights' | 'order'>): Tensor64 {
  const D = y.shape[1];
  const out = new Float64Array(r.T * D);
  for (let i = 0; i < r.order.length; i++) {
    const s = r.order[i];
    const t = Math.floor(s / r.topK);
    const w = r.weights[s];
    for (let d = 0; d < D; d++) out[t * D + d] += w * y.data[i * D + d];
  }
  return { data: out, shape: [r.T, D] };
}

export interface FfnRefWeights {
  w1: Tensor64; // [E, F, D]
  w3?: Tensor64; // [E, F, D]
  w2: Tensor64; // [E, D, F]
  activation?: 'silu' | 'gelu' | 'relu';
}

export function ffnRef(
  x: Tensor64,
  r: Pick<RoutingRef, 'T' | 'topK' | 'E' | 'weights' | 'offsets' | 'order'>,
  w: FfnRefWeights,
): Tensor64 {
  const D = x.shape[1];
  const F = w.w1.shape[1];
  const act = w.activation ?? 'silu';
  const h = new Float64Array(F);
  const y = new Float64Array(D);
  return slotLoopRef(x, r, (e, xt) => {
    for (let f = 0; f < F; f++) {
      const wo = (e * F + f) * D;
      let g = 0;
      let u = 0;
      for (let d = 0; d < D; d++) {
        g += w.w1.data[wo + d] * xt[d];
        if (w.w3) u += w.w3.data[wo + d] * xt[d];
      }
      h[f] = w.w3 ? activationRef(g, act) * u : activationRef(g, act);
    }
    for (let d = 0; d < D; d++) {
      const wo = (e * D + d) * F;
      let acc = 0;
      for (let f = 0; f < F; f++) acc += w.w2.data[wo + f] * h[f];
      y[d] = acc;
    }
    return y;
  });
}

/** The unfused loop of the ffn references: for every kept slot (expert e, token t) in routing
 *  order, out[t] += weight * expert(e, x_t) (a [D] result). */
function slotLoopRef(
  x: Tensor64,
  r: Pick<RoutingRef, 'T' | 'topK' | 'E' | 'weights' | 'offsets' | 'order'>,
  expert: (e: number, xt: Float64Array) => ArrayLike<number>,
): Tensor64 {
  const D = x.shape[1];
  const out = new Float64Array(r.T * D);
  for (let e = 0; e < r.E; e++)
    for (let i = r.offsets[e]; i < r.offsets[e + 1]; i++) {
      const s = r.order[i];
      const t = Math.floor(s / r.topK);
      const y = expert(e, x.data.subarray(t * D, (t + 1) * D));
      const wt = r.weights[s];
      for (let d = 0; d < D; d++) out[t * D + d] += wt * y[d];
    }
  return { data: out, shape: [r.T, D] };
}

export interface FfnInt8RefWeights {
  w1: QTensorFields; // stacked [E, F, D]
  w3?: QTensorFields; // [E, F, D]
  w2: QTensorFields; // [E, D, F]
  activation?: 'silu' | 'gelu' | 'relu';
}

/**
 * moe.ffn with `activations: 'int8'` on quantized experts: for every kept slot, x_t enters w1_e
 * and w3_e as W8A8 / W4A8 do it (w8a8Ref: x quantized per row to int8, exact integer group sums),
 * H = act(g) * u is rounded to float32 (the kernel holds H in float32) and enters w2_e the same
 * way; the weighted sum as in ffnRef.
 */
export function ffnInt8Ref(
  x: Tensor64,
  r: Pick<RoutingRef, 'T' | 'topK' | 'E' | 'weights' | 'offsets' | 'order'>,
  w: FfnInt8RefWeights,
): Tensor64 {
  const D = x.shape[1];
  const F = w.w1.shape[1];
  const act = w.activation ?? 'silu';
  // A stacked [E, N, K] QTensor read as [E * N, K]: expert e is rows e * N .. e * N + N - 1.
  const flat = (q: QTensorFields): QTensorFields => ({ ...q, shape: [q.shape[0] * q.shape[1], q.shape[2]] });
  const w1 = flat(w.w1);
  const w3 = w.w3 && flat(w.w3);
  const w2 = flat(w.w2);
  return slotLoopRef(x, r, (e, xt) => {
    const xr: Tensor64 = { data: xt.slice(), shape: [1, D] };
    const g = w8a8Ref(xr, w1).data.subarray(e * F, (e + 1) * F);
    const u = w3 && w8a8Ref(xr, w3).data.subarray(e * F, (e + 1) * F);
    const h = new Float64Array(F);
    for (let f = 0; f < F; f++) h[f] = Math.fround(u ? activationRef(g[f], act) * u[f] : activationRef(g[f], act));
    return w8a8Ref({ data: h, shape: [1, F] }, w2).data.subarray(e * D, (e + 1) * D);
  });
}
