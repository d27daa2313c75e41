/** A float64 tensor: what every reference op takes and returns. */
import type { Tensor } from '../tensor.js';

export interface Tensor64 {
  data: Float64Array;
  shape: number[];
}

/** The exact values of a tensor, widened to float64. */
export function toF64(t: Tensor): Tensor64 {
  return { data: Float64Array.from(t.toFloat32()), shape: [...t.shape] };
}

/** ||a - b|| / ||b|| over all elements (0 when both are zero). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relativeError: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}
