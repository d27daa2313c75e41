/**
 * Element types, their storage classes and the scalar float16 / bfloat16 encoders used when a
 * tensor is built from plain numbers (float64 in, rounded once to nearest even).
 */
import { describe, fail } from './errors.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32';
export type Storage = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;
export type TypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int32Array
  | Uint32Array;

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'];
export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** The numeric codes the native layer uses (native/include/tensorfuse/dtype.h). */
export const DTYPE_CODE: Readonly<Record<DType, number>> = {
  float32: 0,
  float16: 1,
  bfloat16: 2,
  int8: 3,
  uint8: 4,
  int32: 5,
};

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
  int32: 4,
};

type StorageCtor = { new (n: number): Storage; new (b: ArrayBufferLike, o: number, n: number): Storage };
export const STORAGE: Readonly<Record<DType, StorageCtor>> = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int32: Int32Array,
};

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}

export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float16' || d === 'bfloat16';
}

export function checkDType(v: unknown, where: string): DType {
  if (!isDType(v)) fail('ERR_DTYPE', where, `expected one of ${DTYPES.join(', ')}, got ${describe(v)}`);
  return v;
}

/** The dtype a TypedArray wraps to without a copy (Uint16Array is ambiguous: float16 or bfloat16). */
export function dtypeOfArray(a: ArrayBufferView): DType | undefined {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int32Array) return 'int32';
  return undefined;
}

/**
 * float64 -> IEEE binary16 bits, round to nearest even, with subnormals, overflow to Inf and
 * NaN (IEEE 754-2008 4.3.1). Works on the exact float64 value, so there is no double rounding.
 */
export function float16Bits(x: number): number {
  return encodeSmallFloat(x, 5, 10);
}

/** float64 -> bfloat16 bits: the value rounded to float32's exponent with 8 significand bits. */
export function bfloat16Bits(x: number): number {
  return encodeSmallFloat(x, 8, 7);
}

/**
 * float64 -> bits of a 16-bit IEEE-style float with `eBits` exponent and `mBits` mantissa bits,
 * rounded once to nearest even: subnormals, overflow to Inf (the midpoint to the next power of
 * two rounds up, to even), quiet NaN.
 */
function encodeSmallFloat(x: number, eBits: number, mBits: number): number {
  const bias = (1 << (eBits - 1)) - 1;
  const inf = ((1 << eBits) - 1) << mBits;
  if (Number.isNaN(x)) return inf | (1 << (mBits - 1));
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | inf;
  // subnormal: units of 2^(1 - bias - mBits), rounded to nearest even (may round up to the
  // smallest normal, whose bits follow on directly)
  if (a < 2 ** (1 - bias)) return sign | roundHalfEven(a * 2 ** (bias - 1 + mBits));
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1; // guard log2 rounding
  if (2 ** (e + 1) <= a) e += 1;
  let m = roundHalfEven((a / 2 ** e - 1) * 2 ** mBits);
  if (m === 2 ** mBits) {
    m = 0;
    e += 1;
  }
  if (e > bias) return sign | inf;
  return sign | ((e + bias) << mBits) | m;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** float16 bits -> number (exact). */
export function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits -> number (exact). */
export function bfloat16Value(h: number): number {
  bf16Word[0] = (h & 0xffff) << 16; // bfloat16 is the top half of a float32
  return bf16Float[0];
}
const bf16Word = new Uint32Array(1);
const bf16Float = new Float32Array(bf16Word.buffer);
