/**
 * Reference float16 / bfloat16 rounding by search: the nearest representable value by exact
 * distance, ties to the even bit pattern. Independent of the bit tricks in lib/dtype.ts and
 * native/include/tensorfuse/fp16.h, which the tests hold to it.
 */
function buildTable(bits: number, value: (h: number) => number): Float64Array {
  const t = new Float64Array(bits);
  for (let h = 0; h < bits; h++) t[h] = value(h);
  return t;
}

function f16Value(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return m * 2 ** -24;
  return (1 + m / 1024) * 2 ** (e - 15);
}

function bf16Value(h: number): number {
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0) return m * 2 ** -133;
  return (1 + m / 128) * 2 ** (e - 127);
}

let f16Table: Float64Array | undefined; // finite non-negative values, bits 0 .. 0x7bff
let bf16Table: Float64Array | undefined; // bits 0 .. 0x7f7f

function nearest(x: number, table: Float64Array, maxFinite: number, overflowAt: number, infBits: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= overflowAt) return sign | infBits;
  // binary search: largest h with table[h] <= a
  let lo = 0;
  let hi = maxFinite;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (table[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === maxFinite) return sign | lo;
  const dLo = a - table[lo];
  const dHi = table[lo + 1] - a;
  if (dLo < dHi) return sign | lo;
  if (dHi < dLo) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

/** Reference float64 -> float16 bits (NaN -> a NaN pattern; callers compare NaN-ness). */
export function float16BitsRef(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  f16Table ??= buildTable(0x7c00, f16Value);
  // overflow threshold: halfway between 65504 and 2^16
  return nearest(x, f16Table, 0x7bff, 65520, 0x7c00);
}

/** Reference float64 -> bfloat16 bits. */
export function bfloat16BitsRef(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  bf16Table ??= buildTable(0x7f80, bf16Value);
  // overflow threshold: halfway between the largest finite bfloat16 and 2^128
  return nearest(x, bf16Table, 0x7f7f, (bf16Value(0x7f7f) + 2 ** 128) / 2, 0x7f80);
}

/** Reference bits -> value. */
export function float16ValueRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  if (((h >> 10) & 0x1f) === 0x1f) return h & 0x3ff ? NaN : s * Infinity;
  return s * f16Value(h & 0x7fff);
}
export function bfloat16ValueRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  if (((h >> 7) & 0xff) === 0xff) return h & 0x7f ? NaN : s * Infinity;
  return s * bf16Value(h & 0x7fff);
}
