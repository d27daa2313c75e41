/**
 * float64 references of the quantized ops, written from the formulas of API.md for clarity:
 * the quantization math, dequantize (from the public QTensor fields only), linear with the
 * dequantized weight, a naive W8A8, and the checkpoint formats (GPTQ, AWQ, GGUF q4_0/q8_0)
 * decoded straight from their specs.
 */
import type { Tensor } from '../tensor.js';
import { float16ValueRef } from './dtype.js';
import { linearRef } from './gemm.js';
import type { Tensor64 } from './tensor64.js';

/** The public fields of a QTensor (lib/ops/quant.ts), as the reference reads them. */
export interface QTensorFields {
  bits: 8 | 4;
  groupSize: number;
  symmetric: boolean;
  shape: readonly number[];
  qweight: Tensor;
  scales: Tensor;
  zeros?: Tensor;
  gIdx?: Tensor;
}

/** Round half to even (the rounding of quantize and of W8A8 activations). */
export function roundHalfEvenRef(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface QuantizedRef {
  /** Integer codes [rows, K]: int8 q, or int4 u in [0, 15]. */
  codes: Float64Array;
  /** [rows, groups] */
  scales: Float64Array;
  /** [rows, groups]; 8 for symmetric int4, 0 for int8. */
  zeros: Float64Array;
}

/**
 * The quantization of API.md in float64: int8 symmetric s = max|w| / 127, q = round(w / s);
 * int4 symmetric s = max|w| / 7, u = round(w / s) + 8; int4 asymmetric over lo = min(w, 0),
 * hi = max(w, 0): z = round(-lo * 15 / (hi - lo)), s = max(hi / (15.5 - z), -lo / (z + 0.5)),
 * u = clamp(round(w / s) + z, 0, 15). All-zero groups: s = 1.
 */
export function quantizeRef(w: Tensor64, bits: 8 | 4, groupSize: number, symmetric: boolean): QuantizedRef {
  const K = w.shape[w.shape.length - 1];
  const rows = K === 0 ? 0 : w.data.length / K;
  const gs = groupSize > 0 ? groupSize : K;
  const G = K / gs;
  const codes = new Float64Array(rows * K);
  const scales = new Float64Array(rows * G);
  const zeros = new Float64Array(rows * G);
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < G; g++) {
      let lo = 0;
      let hi = 0;
      for (let k = g * gs; k < (g + 1) * gs; k++) {
        lo = Math.min(lo, w.data[r * K + k]);
        hi = Math.max(hi, w.data[r * K + k]);
      }
      const amax = Math.max(-lo, hi);
      let s: number;
      let z: number;
      if (symmetric) {
        s = amax > 0 ? amax / (bits === 8 ? 127 : 7) : 1;
        z = bits === 8 ? 0 : 8;
      } else if (hi > lo) {
        z = Math.min(15, Math.max(0, roundHalfEvenRef((-lo * 15) / (hi - lo))));
        s = Math.max(hi / (15.5 - z), -lo / (z + 0.5));
      } else {
        s = 1;
        z = 8;
      }
      scales[r * G + g] = s;
      zeros[r * G + g] = z;
      const [qmin, qmax] = bits === 8 ? [-127, 127] : [0, 15];
      for (let k = g * gs; k < (g + 1) * gs; k++)
        codes[r * K + k] = Math.min(qmax, Math.max(qmin, roundHalfEvenRef(w.data[r * K + k] / s) + z));
    }
  return { codes, scales, zeros };
}

/** The integer code of element (row, k) of a QTensor's qweight. */
function codeOf(q: QTensorFields, data: ArrayLike<number>, row: number, k: number, K: number): number {
  if (q.bits === 8) return data[row * K + k];
  const byte = data[row * (K / 2) + (k >> 1)];
  return k % 2 === 0 ? byte & 15 : byte >> 4;
}

/** w = (q - z) * s from the public fields: [.., N, K] float64. */
export function dequantizeRef(q: QTensorFields): Tensor64 {
  const K = q.shape[q.shape.length - 1];
  const rows = q.shape.slice(0, -1).reduce((a, d) => a * d, 1);
  const gs = q.groupSize > 0 ? q.groupSize : K;
  const G = K / gs;
  const qd = q.qweight.data();
  const sd = q.scales.data();
  const zd = q.zeros ? q.zeros.data() : null;
  const gi = q.gIdx ? q.gIdx.data() : null;
  const out = new Float64Array(rows * K);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) {
      const g = gi ? gi[k] : Math.floor(k / gs);
      const z = q.bits === 8 ? 0 : zd ? zd[r * G + g] : 8;
      out[r * K + k] = (codeOf(q, qd, r, k, K) - z) * sd[r * G + g];
    }
  return { data: out, shape: [...q.shape] };
}

/** linear(x, q) with float activations: x @ dequantize(q)^T (+ bias), in float64. */
export function quantLinearRef(x: Tensor64, q: QTensorFields, bias?: Tensor64): Tensor64 {
  return linearRef(x, dequantizeRef(q), bias);
}

/**
 * Naive W8A8 (int8 weights) and W4A8 (int4 weights, activation 'w4a8'): each row of x quantized
 * symmetric per token (s = max|x| / 127 in float32, as the kernel computes it,
 * q = round_half_even(x / s)), integer dot products per weight group of the codes minus their zero
 * point, then y = s_x * sum_g s_w[n, g] * isum_g (+ bias). The products and sums are exact in
 * float64. Act-order (gIdx) groups are followed.
 */
export function w8a8Ref(x: Tensor64, q: QTensorFields, bias?: Tensor64): Tensor64 {
  const [N, K] = q.shape;
  const rows = K === 0 ? 0 : x.data.length / K;
  const gs = q.groupSize > 0 ? q.groupSize : K;
  const G = K / gs;
  const qd = q.qweight.data();
  const sd = q.scales.data();
  const zd = q.zeros ? q.zeros.data() : null;
  const gi = q.gIdx ? q.gIdx.data() : null;
  const out = new Float64Array(rows * N);
  const xq = new Float64Array(K);
  const isum = new Float64Array(G);
  for (let m = 0; m < rows; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x.data[m * K + k]));
    const sx = amax > 0 ? Math.fround(Math.fround(amax) / 127) : 1;
    for (let k = 0; k < K; k++)
      xq[k] = Math.min(127, Math.max(-127, roundHalfEvenRef(Math.fround(x.data[m * K + k] / sx))));
    for (let n = 0; n < N; n++) {
      isum.fill(0);
      for (let k = 0; k < K; k++) {
        const g = gi ? gi[k] : Math.floor(k / gs);
        const z = q.bits === 8 ? 0 : zd ? zd[n * G + g] : 8;
        isum[g] += xq[k] * (codeOf(q, qd, n, k, K) - z);
      }
      let acc = 0;
      for (let g = 0; g < G; g++) acc += sd[n * G + g] * isum[g];
      out[m * N + n] = sx * acc + (bias ? bias.data[n] : 0);
    }
  }
  return { data: out, shape: [...x.shape.slice(0, -1), N] };
}

/** AutoGPTQ v1 int4 -> w [N, K]: w[n, k] = (q - (zstored + 1)) * scale[g(k), n]. */
export function gptqDequantRef(p: {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Float64Array; // [G, N]
  gIdx?: Int32Array;
  groupSize: number;
  inFeatures: number;
  outFeatures: number;
}): Tensor64 {
  const K = p.inFeatures;
  const N = p.outFeatures;
  const gs = p.groupSize === -1 ? K : p.groupSize;
  const out = new Float64Array(N * K);
  for (let k = 0; k < K; k++) {
    const g = p.gIdx ? p.gIdx[k] : Math.floor(k / gs);
    for (let n = 0; n < N; n++) {
      const q = (p.qweight[Math.floor(k / 8) * N + n] >>> (4 * (k % 8))) & 15;
      const z = ((p.qzeros[g * (N / 8) + Math.floor(n / 8)] >>> (4 * (n % 8))) & 15) + 1;
      out[n * K + k] = (q - z) * p.scales[g * N + n];
    }
  }
  return { data: out, shape: [N, K] };
}

/** AutoAWQ GEMM int4 -> w [N, K]; nibble i of each int32 holds column [0,2,4,6,1,3,5,7][i]. */
export function awqDequantRef(p: {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Float64Array; // [G, N]
  groupSize: number;
  inFeatures: number;
  outFeatures: number;
}): Tensor64 {
  const order = [0, 2, 4, 6, 1, 3, 5, 7];
  const K = p.inFeatures;
  const N = p.outFeatures;
  const gs = p.groupSize === -1 ? K : p.groupSize;
  const out = new Float64Array(N * K);
  for (let k = 0; k < K; k++)
    for (let c = 0; c < N / 8; c++)
      for (let i = 0; i < 8; i++) {
        const n = 8 * c + order[i];
        const g = Math.floor(k / gs);
        const q = (p.qweight[k * (N / 8) + c] >>> (4 * i)) & 15;
        const z = (p.qzeros[g * (N / 8) + c] >>> (4 * i)) & 15;
        out[n * K + k] = (q - z) * p.scales[g * N + n];
      }
  return { data: out, shape: [N, K] };
}

/** GGUF q4_0 / q8_0 blocks of 32 along K -> w [N, K] (ggml-quants.c dequantize_row_q4_0/q8_0). */
export function ggmlDequantRef(type: 'q4_0' | 'q8_0', bytes: Uint8Array, shape: [number, number]): Tensor64 {
  const [N, K] = shape;
  const bb = type === 'q4_0' ? 18 : 34;
  const out = new Float64Array(N * K);
  for (let b = 0; b < (N * K) / 32; b++) {
    const o = b * bb;
    const d = float16ValueRef(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < 32; j++) {
      let v: number;
      if (type === 'q8_0') v = (bytes[o + 2 + j] << 24) >> 24;
      else v = (j < 16 ? bytes[o + 2 + j] & 15 : bytes[o + 2 + j - 16] >> 4) - 8;
      out[b * 32 + j] = v * d;
    }
  }
  return { data: out, shape: [N, K] };
}
