/**
 * float64 references of the prune family, written from the definitions (API.md "Structured
 * pruning"; the selection rules of channels / ffn / heads are the ones documented in
 * lib/ops/prune.ts):
 *   score:      magnitude |w|, wanda |w_ij| * norms[j]
 *   nm:         per group of m along K keep the n highest scores, ties to the lower index, NaN lowest
 *   compress:   the kept (bits not +0) values per group plus their positions, padded with the first
 *               zero positions; decompress puts them back
 *   sparse linear: out[i, n] = sum_v x[i, col(v)] * values[n, v] (+ bias[n])
 */
import type { Tensor64 } from './tensor64.js';

export function pruneScoreRef(w: Tensor64, norms?: ArrayLike<number>): Tensor64 {
  const [N, K] = w.shape;
  const out = new Float64Array(N * K);
  for (let i = 0; i < N; i++)
    for (let k = 0; k < K; k++) out[i * K + k] = Math.abs(w.data[i * K + k]) * (norms ? norms[k] : 1);
  return { data: out, shape: [N, K] };
}

/** The keep mask of one group: the n best of s (NaN lowest, ties to the lower index). */
function groupKeep(s: number[], n: number): boolean[] {
  const key = s.map((v) => (Number.isNaN(v) ? -Infinity : v));
  const order = key.map((_, i) => i).sort((a, b) => (key[b] !== key[a] ? (key[b] > key[a] ? 1 : -1) : a - b));
  const keep = key.map(() => false);
  for (let i = 0; i < n; i++) keep[order[i]] = true;
  return keep;
}

export function pruneNmRef(
  w: Tensor64,
  n = 2,
  m = 4,
  scores?: ArrayLike<number>,
): { weight: Tensor64; mask: Uint8Array } {
  const [N, K] = w.shape;
  const out = new Float64Array(N * K);
  const mask = new Uint8Array(N * K);
  for (let g0 = 0; g0 < N * K; g0 += m) {
    const s: number[] = [];
    for (let i = 0; i < m; i++) s.push(scores ? scores[g0 + i] : Math.abs(w.data[g0 + i]));
    const keep = groupKeep(s, n);
    for (let i = 0; i < m; i++) {
      mask[g0 + i] = keep[i] ? 1 : 0;
      out[g0 + i] = keep[i] ? w.data[g0 + i] : 0;
    }
  }
  return { weight: { data: out, shape: [N, K] }, mask };
}

/** Compressed form of an n:m sparse w; throws when a group has more than n nonzeros. */
export function pruneCompressRef(w: Tensor64, n = 2, m = 4): { values: Tensor64; indices: Uint8Array } {
  const [N, K] = w.shape;
  const Kc = (K / m) * n;
  const values = new Float64Array(N * Kc);
  const indices = new Uint8Array(N * Kc);
  let o = 0;
  for (let g0 = 0; g0 < N * K; g0 += m) {
    const nz: number[] = [];
    const z: number[] = [];
    for (let i = 0; i < m; i++) (Object.is(w.data[g0 + i], 0) ? z : nz).push(i);
    if (nz.length > n) throw new Error(`group at ${g0} has ${nz.length} nonzeros`);
    const pos = [...nz, ...z.slice(0, n - nz.length)].sort((a, b) => a - b);
    for (const p of pos) {
      values[o] = w.data[g0 + p];
      indices[o] = p;
      o++;
    }
  }
  return { values: { data: values, shape: [N, Kc] }, indices };
}

export function pruneDecompressRef(values: Tensor64, indices: ArrayLike<number>, K: number, n = 2, m = 4): Tensor64 {
  const [N, Kc] = values.shape;
  const out = new Float64Array(N * K);
  for (let r = 0; r < N; r++)
    for (let v = 0; v < Kc; v++) out[r * K + Math.floor(v / n) * m + indices[r * Kc + v]] = values.data[r * Kc + v];
  return { data: out, shape: [N, K] };
}

/** x [..., K] against a compressed [N, K] weight: out [..., N]. */
export function sparseLinearRef(
  x: Tensor64,
  values: Tensor64,
  indices: ArrayLike<number>,
  n = 2,
  m = 4,
  bias?: ArrayLike<number>,
): Tensor64 {
  const K = x.shape[x.shape.length - 1];
  const [N, Kc] = values.shape;
  const rows = K === 0 ? x.shape.slice(0, -1).reduce((p, d) => p * d, 1) : x.data.length / K;
  const out = new Float64Array(rows * N);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0;
      for (let v = 0; v < Kc; v++)
        s += x.data[i * K + Math.floor(v / n) * m + indices[j * Kc + v]] * values.data[j * Kc + v];
      out[i * N + j] = s;
    }
  return { data: out, shape: [...x.shape.slice(0, -1), N] };
}

/** The `count` best scores, ascending indices (NaN lowest, ties to the lower index). */
export function topKRef(scores: ArrayLike<number>, count: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number): number => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  idx.sort((a, b) => (key(b) !== key(a) ? (key(b) > key(a) ? 1 : -1) : a - b));
  return idx.slice(0, count).sort((a, b) => a - b);
}

/** Rows (axis 0) or columns (axis 1) of w [R, C] listed in kept. */
export function gatherRef(w: Tensor64, axis: 0 | 1, kept: ArrayLike<number>): Tensor64 {
  const [R, C] = w.shape;
  const n = kept.length;
  if (axis === 0) {
    const out = new Float64Array(n * C);
    for (let i = 0; i < n; i++) for (let j = 0; j < C; j++) out[i * C + j] = w.data[kept[i] * C + j];
    return { data: out, shape: [n, C] };
  }
  const out = new Float64Array(R * n);
  for (let i = 0; i < R; i++) for (let j = 0; j < n; j++) out[i * n + j] = w.data[i * C + kept[j]];
  return { data: out, shape: [R, n] };
}

/** L1 or L2 norm of every row (axis 0) or column (axis 1). */
export function channelNormsRef(w: Tensor64, axis: 0 | 1, p: 1 | 2): Float64Array {
  const [R, C] = w.shape;
  const out = new Float64Array(axis === 0 ? R : C);
  for (let i = 0; i < R; i++)
    for (let j = 0; j < C; j++)
      out[axis === 0 ? i : j] += p === 1 ? Math.abs(w.data[i * C + j]) : w.data[i * C + j] ** 2;
  if (p === 2) for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]);
  return out;
}
