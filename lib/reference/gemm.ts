/**
 * float64 references of matmul and linear, written from the definitions:
 *   matmul: out[..., i, j] = sum_k a[..., i, k] * b[..., k, j]  (b[..., j, k] with transB),
 *           batch dims broadcast as in numpy
 *   linear: out[..., n] = act(sum_k x[..., k] * w[n, k] + bias[n])
 */
import type { Tensor64 } from './tensor64.js';

export function matmulRef(a: Tensor64, b: Tensor64, transB = false): Tensor64 {
  const vec = a.shape.length === 1;
  const as = vec ? [1, a.shape[0]] : a.shape;
  const M = as[as.length - 2];
  const K = as[as.length - 1];
  const N = b.shape[b.shape.length - (transB ? 2 : 1)];
  const aB = as.slice(0, -2);
  const bB = b.shape.slice(0, -2);
  const nb = Math.max(aB.length, bB.length);
  const outB: number[] = [];
  for (let i = 0; i < nb; i++) {
    const da = aB[aB.length - nb + i] ?? 1;
    const db = bB[bB.length - nb + i] ?? 1;
    outB.push(Math.max(da, db));
  }
  const batch = outB.reduce((p, d) => p * d, 1);
  const out = new Float64Array(batch * M * N);
  const offset = (idx: number, dims: number[], mat: number): number => {
    let off = 0;
    let stride = mat;
    for (let i = outB.length - 1, j = dims.length - 1; i >= 0; i--, j--) {
      const c = idx % outB[i];
      idx = Math.floor(idx / outB[i]);
      if (j >= 0) {
        if (dims[j] !== 1) off += c * stride;
        stride *= dims[j];
      }
    }
    return off;
  };
  for (let bi = 0; bi < batch; bi++) {
    const ao = offset(bi, aB, M * K);
    const bo = offset(bi, bB, K * N);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[ao + i * K + k] * b.data[bo + (transB ? j * K + k : k * N + j)];
        out[bi * M * N + i * N + j] = s;
      }
  }
  const shape = vec ? [...outB, N] : [...outB, M, N]; // numpy drops the prepended 1 of a 1-D a
  return { data: out, shape };
}

export type RefActivation = 'none' | 'relu' | 'gelu' | 'silu';

/** erf by its Maclaurin series / continued fraction, to float64 accuracy (Abramowitz-Stegun 7.1). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    // series: erf x = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // continued fraction for erfc, evaluated bottom-up (Lentz not needed at this depth)
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}

export function activationRef(v: number, act: RefActivation): number {
  switch (act) {
    case 'relu':
      return v > 0 ? v : 0;
    case 'gelu':
      return 0.5 * v * (1 + erf(v / Math.SQRT2));
    case 'silu':
      return v / (1 + Math.exp(-v));
    default:
      return v;
  }
}

export function linearRef(x: Tensor64, w: Tensor64, bias?: Tensor64, act: RefActivation = 'none'): Tensor64 {
  const K = x.shape[x.shape.length - 1];
  const N = w.shape[0];
  const rows = K === 0 ? x.shape.slice(0, -1).reduce((p, d) => p * d, 1) : x.data.length / K;
  const out = new Float64Array(rows * N);
  for (let i = 0; i < rows; i++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias.data[n] : 0;
      for (let k = 0; k < K; k++) s += x.data[i * K + k] * w.data[n * K + k];
      out[i * N + n] = activationRef(s, act);
    }
  return { data: out, shape: [...x.shape.slice(0, -1), N] };
}
