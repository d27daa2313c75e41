/**
 * int8 / int4 quantized weights (QTensor) and the quantized linear layer (native/cpu/quant).
 * A QTensor is a plain frozen object with the public fields of API.md; where the kernels want
 * another layout (GPTQ act-order: K permuted so that groups are contiguous) it is kept in a
 * private WeakMap, never in the public fields, which always mean what API.md says.
 */
import { DTYPE_CODE, float16Value, isFloat } from '../dtype.js';
import { describe, fail } from '../errors.js';
import { native, type QuantWeightArgs } from '../native.js';
import { fmtShape, numel } from '../shape.js';
import { Tensor, alignedArray, allocate, checkTensor, isShared, storageOf, wrap, wrapView } from '../tensor.js';
import { linearShape } from './linear.js';
import { checkOptions, LINEAR_ACTIVATIONS, optBool, optEnum } from './options.js';

export interface QTensor {
  readonly kind: 'quantized';
  readonly bits: 8 | 4;
  /** Elements of K sharing one scale; 0 = one scale per output row. */
  readonly groupSize: number;
  /** int4: true = no zero points, w = (u - 8) * s; int8 is always symmetric, w = q * s. */
  readonly symmetric: boolean;
  /** Logical [N, K], or [E, N, K] for stacked experts (sliceExpert(q, e) takes one). */
  readonly shape: readonly number[];
  /** int8 [.., N, K], or uint8 [.., N, K/2] with element 2i in the low nibble. */
  readonly qweight: Tensor;
  /** float32 [.., N, K/groupSize] (or [.., N, 1]). */
  readonly scales: Tensor;
  /** int4 asymmetric only: uint8 zero points, the shape of scales. */
  readonly zeros?: Tensor;
  /**
   * Extension (GPTQ act-order): int32 [K], the group of each input feature; scales/zeros
   * column g then serves the features k with gIdx[k] = g, not k / groupSize.
   */
  readonly gIdx?: Tensor;
}

export interface QuantizeOptions {
  bits: 8 | 4;
  /** Default: 0 (per row) for int8; 128 for int4 (32 where K < 128). Must divide K. */
  groupSize?: number;
  /** Default: true for int8 (the only choice), false for int4. */
  symmetric?: boolean;
}

/** What the kernels read: the layout of native/include/tensorfuse/quant.h. */
interface Layout {
  bits: 8 | 4;
  rows: number; // N, or E * N for stacked experts
  K: number;
  groupSize: number;
  qweight: Int8Array | Uint8Array; // stored K order
  scales: Float32Array;
  zeros: Uint8Array | null;
  perm: Int32Array | null; // stored position -> input feature
  /**
   * The codes again in the strip layout of tensorfuse/quant.h, which the int8-activation tiles of
   * some ISAs (AVX-512 VNNI) read instead of qweight: built on the first W8A8 / W4A8 call that
   * wants it (stripsOf), kept while the QTensor lives. undefined: not built yet.
   */
  strips?: Uint8Array;
}

const layouts = new WeakMap<object, Layout>();

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function weightArgs(l: Layout, rows = l.rows): QuantWeightArgs {
  return [l.bits, rows, l.K, l.groupSize, l.qweight, l.scales, l.zeros, l.perm];
}

function groupsOf(K: number, groupSize: number): number {
  return groupSize > 0 ? K / groupSize : 1;
}

/** A frozen QTensor over the given storages; registers its kernel layout. */
function makeQTensor(
  bits: 8 | 4,
  groupSize: number,
  shape: readonly number[],
  qweight: Int8Array | Uint8Array,
  scales: Float32Array,
  zeros: Uint8Array | null,
  gIdx: Int32Array | null,
  stored?: { qweight: Uint8Array; perm: Int32Array },
  parent?: QTensor,
): QTensor {
  const K = shape[shape.length - 1];
  const lead = shape.slice(0, -1);
  const G = groupsOf(K, groupSize);
  // a view (sliceExpert) of a parent's storage is disposed with the parent's tensors
  const q: QTensor = Object.freeze({
    kind: 'quantized' as const,
    bits,
    groupSize,
    symmetric: zeros === null,
    shape: Object.freeze(shape.slice()),
    qweight: wrapView(qweight, bits === 8 ? 'int8' : 'uint8', [...lead, bits === 8 ? K : K / 2], parent?.qweight),
    scales: wrapView(scales, 'float32', [...lead, G], parent?.scales),
    ...(zeros ? { zeros: wrapView(zeros, 'uint8', [...lead, G], parent?.zeros) } : {}),
    ...(gIdx ? { gIdx: wrap(gIdx, 'int32', [K]) } : {}),
  });
  layouts.set(q, {
    bits,
    rows: numel(lead),
    K,
    groupSize,
    qweight: stored ? stored.qweight : qweight,
    scales,
    zeros,
    perm: stored ? stored.perm : null,
  });
  return q;
}

function checkScales(s: Float32Array, where: string, allowZero: boolean): void {
  for (let i = 0; i < s.length; i++) {
    const v = s[i];
    if (!Number.isFinite(v) || (!allowZero && v === 0))
      fail('ERR_ARG', where, `scale ${i} is ${describe(v)}: scales must be finite and non-zero`);
  }
}

/**
 * The kernel layout of a QTensor: our own (from quantize/from*), or a user-built object checked
 * field by field once (then cached by identity).
 */
function layoutOf(q: unknown, op: string, name: string): Layout {
  const where = `${op}: argument '${name}'`;
  if (q === null || typeof q !== 'object') fail('ERR_ARG', where, `expected a QTensor, got ${describe(q)}`);
  const known = layouts.get(q);
  const o = q as Record<string, unknown>;
  if (known) {
    // the storages must still be alive
    storageOf(o.qweight as Tensor, `${name}.qweight`, op);
    storageOf(o.scales as Tensor, `${name}.scales`, op);
    if (o.zeros) storageOf(o.zeros as Tensor, `${name}.zeros`, op);
    return known;
  }
  if (o.kind !== 'quantized') fail('ERR_ARG', where, `expected a QTensor (kind 'quantized'), got ${describe(o.kind)}`);
  const bits = o.bits;
  if (bits !== 8 && bits !== 4) fail('ERR_ARG', `${op}: '${name}.bits'`, `expected 8 or 4, got ${describe(bits)}`);
  const shape = o.shape;
  if (!Array.isArray(shape) || (shape.length !== 2 && shape.length !== 3) || !shape.every((d) => isInt(d) && d >= 0))
    fail('ERR_SHAPE', `${op}: '${name}.shape'`, `expected [N, K] or [E, N, K] of non-negative integers`);
  const K = shape[shape.length - 1] as number;
  const lead = shape.slice(0, -1) as number[];
  const gs = o.groupSize;
  if (!isInt(gs) || gs < 0 || (gs > 0 && K % gs !== 0))
    fail('ERR_ARG', `${op}: '${name}.groupSize'`, `expected 0 or a positive divisor of K = ${K}, got ${describe(gs)}`);
  if (bits === 4 && K % 2 !== 0) fail('ERR_SHAPE', `${op}: '${name}.shape'`, `K = ${K} must be even for int4`);
  const G = groupsOf(K, gs);
  const tensorField = (key: string, dtype: string, want: number[]): Tensor => {
    const t = checkTensor(o[key], op, `${name}.${key}`);
    if (t.dtype !== dtype) fail('ERR_DTYPE', `${op}: '${name}.${key}'`, `expected ${dtype}, got ${t.dtype}`);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
      fail('ERR_SHAPE', `${op}: '${name}.${key}'`, `expected ${fmtShape(want)}, got ${fmtShape(t.shape)}`);
    return t;
  };
  const qw = tensorField('qweight', bits === 8 ? 'int8' : 'uint8', [...lead, bits === 8 ? K : K / 2]);
  const sc = tensorField('scales', 'float32', [...lead, G]);
  checkScales(storageOf(sc, `${name}.scales`) as Float32Array, `${op}: '${name}.scales'`, false);
  const symmetric = o.symmetric;
  if (typeof symmetric !== 'boolean')
    fail('ERR_ARG', `${op}: '${name}.symmetric'`, `expected a boolean, got ${describe(symmetric)}`);
  let zeros: Uint8Array | null = null;
  if (symmetric) {
    if (o.zeros !== undefined) fail('ERR_ARG', `${op}: '${name}.zeros'`, 'a symmetric QTensor has no zeros');
  } else {
    if (bits === 8) fail('ERR_ARG', `${op}: '${name}.symmetric'`, 'int8 QTensors are symmetric');
    zeros = storageOf(tensorField('zeros', 'uint8', [...lead, G]), `${name}.zeros`) as Uint8Array;
    // w = (u - z) * s with codes u in [0, 15]: z in [0, 15], or 16 from a GPTQ v1 checkpoint (it
    // stores z - 1 in a nibble). Anything larger is no int4 weight (fuzzing found 250 accepted).
    for (let i = 0; i < zeros.length; i++)
      if (zeros[i] > 16)
        fail(
          'ERR_ARG',
          `${op}: '${name}.zeros'`,
          `zero point ${i} is ${zeros[i]}: int4 zero points are in [0, 16] (0..15, and 16 from GPTQ v1)`,
        );
  }
  let stored: { qweight: Uint8Array; perm: Int32Array } | undefined;
  if (o.gIdx !== undefined) {
    if (bits !== 4 || lead.length !== 1 || gs === 0)
      fail('ERR_ARG', `${op}: '${name}.gIdx'`, 'gIdx is for 2-D int4 QTensors with groups');
    const g = storageOf(tensorField('gIdx', 'int32', [K]), `${name}.gIdx`) as Int32Array;
    const perm = actOrderPerm(K, gs, g, `${op}: '${name}.gIdx'`);
    const src = storageOf(qw, `${name}.qweight`) as Uint8Array;
    stored = { qweight: alignedArray(Uint8Array, 1, src.length), perm };
    native.quantPermute4(src, lead[0], K, perm, stored.qweight);
  }
  const l: Layout = {
    bits,
    rows: numel(lead),
    K,
    groupSize: gs,
    qweight: stored ? stored.qweight : (storageOf(qw, `${name}.qweight`) as Int8Array | Uint8Array),
    scales: storageOf(sc, `${name}.scales`) as Float32Array,
    zeros,
    perm: stored ? stored.perm : null,
  };
  if (Object.isFrozen(q)) layouts.set(q, l);
  return l;
}

/**
 * GPTQ act-order: the stable sort of K by group, so groups are contiguous for the kernels.
 * Every group must hold exactly groupSize features (as GPTQ's g_idx does; others are
 * ERR_UNSUPPORTED: the kernels read whole groups). Returns perm (stored
 * position -> input feature); the int4 rows are permuted natively (quantPermute4).
 */
function actOrderPerm(K: number, gs: number, gIdx: Int32Array, where: string): Int32Array {
  const G = K / gs;
  const count = new Int32Array(G);
  for (let k = 0; k < K; k++) {
    const g = gIdx[k];
    if (g < 0 || g >= G) fail('ERR_ARG', where, `gIdx[${k}] = ${g} is out of range [0, ${G})`);
    count[g]++;
  }
  for (let g = 0; g < G; g++)
    if (count[g] !== gs)
      fail(
        'ERR_UNSUPPORTED',
        where,
        `group ${g} holds ${count[g]} features: the kernels need act-order groups of exactly ` +
          `groupSize = ${gs} features each (as AutoGPTQ's g_idx always has)`,
      );
  const perm = new Int32Array(K);
  const next = new Int32Array(G);
  for (let g = 0; g < G; g++) next[g] = g * gs;
  for (let k = 0; k < K; k++) perm[next[gIdx[k]]++] = k;
  return perm;
}

// ---- quantize / dequantize ---------------------------------------------------------------------

interface QuantizePlan {
  w: Float32Array;
  bits: 8 | 4;
  groupSize: number;
  symmetric: boolean;
  shape: readonly number[];
  rows: number;
  K: number;
  qweight: Int8Array | Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array | null;
}

function planQuantize(w: Tensor, opts: unknown): QuantizePlan {
  const op = 'quantize';
  checkTensor(w, op, 'w');
  if (!isFloat(w.dtype))
    fail('ERR_DTYPE', `${op}: argument 'w'`, `expected float32, float16 or bfloat16, got ${w.dtype}`);
  if (w.rank !== 2 && w.rank !== 3)
    fail('ERR_SHAPE', `${op}: argument 'w'`, `expected [N, K] or [E, N, K], got ${fmtShape(w.shape)}`);
  if (opts === undefined || opts === null)
    fail('ERR_ARG', `${op}: argument 'opts'`, 'expected { bits: 8 | 4, groupSize?, symmetric? }');
  const o = checkOptions(opts, op, ['bits', 'groupSize', 'symmetric']);
  const bits = o.bits;
  if (bits !== 8 && bits !== 4) fail('ERR_ARG', `${op}: option 'bits'`, `expected 8 or 4, got ${describe(bits)}`);
  const K = w.shape[w.rank - 1];
  let groupSize: number;
  if (o.groupSize === undefined) groupSize = bits === 8 ? 0 : K < 128 ? 32 : 128;
  else groupSize = o.groupSize as number;
  if (!isInt(groupSize) || groupSize < 0)
    fail('ERR_ARG', `${op}: option 'groupSize'`, `expected 0 or a positive integer, got ${describe(o.groupSize)}`);
  if (groupSize > 0 && K % groupSize !== 0)
    fail('ERR_ARG', `${op}: option 'groupSize'`, `${groupSize} does not divide K = ${K}; pass a groupSize that does`);
  const symmetric = optBool(o, 'symmetric', op, bits === 8);
  if (bits === 8 && !symmetric) fail('ERR_ARG', `${op}: option 'symmetric'`, 'int8 quantization is symmetric only');
  if (bits === 4 && K % 2 !== 0) fail('ERR_SHAPE', `${op}: argument 'w'`, `K = ${K} must be even for int4`);
  const wf = w.dtype === 'float32' ? (storageOf(w, 'w') as Float32Array) : w.toFloat32();
  for (let i = 0; i < wf.length; i++)
    if (!Number.isFinite(wf[i])) fail('ERR_ARG', `${op}: argument 'w'`, `element ${i} is ${describe(wf[i])}`);
  const rows = numel(w.shape.slice(0, -1));
  const G = groupsOf(K, groupSize);
  return {
    w: wf,
    bits,
    groupSize,
    symmetric,
    shape: w.shape,
    rows,
    K,
    qweight: (bits === 8 ? allocate('int8', rows * K, op) : allocate('uint8', (rows * K) / 2, op)) as
      Int8Array | Uint8Array,
    scales: allocate('float32', rows * G, op) as Float32Array,
    zeros: symmetric ? null : (allocate('uint8', rows * G, op) as Uint8Array),
  };
}

function finishQuantize(p: QuantizePlan): QTensor {
  return makeQTensor(p.bits, p.groupSize, p.shape, p.qweight, p.scales, p.zeros, null);
}

/**
 * Quantizes a weight [N, K] (or stacked experts [E, N, K]) per output row or per group of K.
 * int8: q = round(w / s), s = max|w| / 127. int4 asymmetric: u in [0, 15], w ~ (u - z) * s with
 * every |w - (u - z) s| <= s / 2; int4 symmetric: w ~ (u - 8) * s, s = max|w| / 7. Round half to
 * even; an all-zero group gets s = 1.
 * @example const q = quantize(randn([4096, 4096]), { bits: 4, groupSize: 128 });
 */
export function quantize(w: Tensor, opts: QuantizeOptions): QTensor {
  const p = planQuantize(w, opts);
  native.quantQuantize(p.w, p.rows, p.K, p.bits, p.groupSize, p.symmetric, p.qweight, p.scales, p.zeros);
  return finishQuantize(p);
}

/** quantize on the native thread pool; bitwise the same result. */
export async function quantizeAsync(w: Tensor, opts: QuantizeOptions): Promise<QTensor> {
  const p = planQuantize(w, opts);
  await native.quantQuantizeAsync(p.w, p.rows, p.K, p.bits, p.groupSize, p.symmetric, p.qweight, p.scales, p.zeros);
  return finishQuantize(p);
}

/**
 * The float32 weight a QTensor stands for, [N, K] or [E, N, K] (act-order undone).
 * @example const w2 = dequantize(quantize(w, { bits: 8 }));   // |w2 - w| <= s / 2 elementwise
 */
export function dequantize(q: QTensor): Tensor {
  const l = layoutOf(q, 'dequantize', 'q');
  const out = allocate('float32', l.rows * l.K, 'dequantize') as Float32Array;
  native.quantDequantize(...weightArgs(l), out);
  return wrap(out, 'float32', q.shape);
}

/** dequantize on the native thread pool; bitwise the same result. */
export async function dequantizeAsync(q: QTensor): Promise<Tensor> {
  const l = layoutOf(q, 'dequantize', 'q');
  const out = allocate('float32', l.rows * l.K, 'dequantize') as Float32Array;
  await native.quantDequantizeAsync(...weightArgs(l), out);
  return wrap(out, 'float32', q.shape);
}

/**
 * Expert e of a stacked QTensor [E, N, K], as a QTensor [N, K] sharing its storage (no copy).
 * @example linear(x, sliceExpert(q, 3))
 */
export function sliceExpert(q: QTensor, e: number): QTensor {
  const l = layoutOf(q, 'sliceExpert', 'q');
  if (q.shape.length !== 3)
    fail('ERR_SHAPE', "sliceExpert: argument 'q'", `expected [E, N, K], got ${fmtShape(q.shape)}`);
  const [E, N, K] = q.shape;
  if (!isInt(e) || e < 0 || e >= E)
    fail('ERR_ARG', "sliceExpert: argument 'e'", `expected an integer in [0, ${E}), got ${describe(e)}`);
  const G = groupsOf(K, l.groupSize);
  const qn = l.bits === 8 ? N * K : (N * K) / 2;
  return makeQTensor(
    l.bits,
    l.groupSize,
    [N, K],
    l.qweight.subarray(e * qn, (e + 1) * qn),
    l.scales.subarray(e * N * G, (e + 1) * N * G),
    l.zeros ? l.zeros.subarray(e * N * G, (e + 1) * N * G) : null,
    null,
    undefined,
    q,
  );
}

/** What moe.ffn passes for a stacked QTensor [E, N, K] (checked as every quant op checks it). */
export interface ExpertLayout {
  shape: readonly number[];
  bits: 8 | 4;
  groupSize: number;
  qweight: Int8Array | Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array | null;
}

/** The kernel arrays of a QTensor used as stacked experts (lib/ops/moe.ts); name as in errors. */
export function expertLayout(q: unknown, op: string, name: string): ExpertLayout {
  const l = layoutOf(q, op, name);
  const shape = (q as QTensor).shape;
  if (shape.length !== 3 || l.perm)
    fail('ERR_SHAPE', `${op}: argument '${name}'`, `expected a stacked QTensor [E, N, K], got ${fmtShape(shape)}`);
  return { shape, bits: l.bits, groupSize: l.groupSize, qweight: l.qweight, scales: l.scales, zeros: l.zeros };
}

/**
 * The strip layout of a stacked QTensor [E, N, K] for moe.ffn's int8 activations (null where the
 * ISA reads none, N is not a multiple of 32 so experts would not start on a strip, or the
 * QTensor's layout is not cached); call after expertLayout has checked it.
 */
export function expertStrips(q: unknown): Uint8Array | null {
  const l = layouts.get(q as object);
  if (!l) return null;
  const N = (q as QTensor).shape[1];
  return N % 32 === 0 ? stripsOf(l, true) : null;
}

// ---- checkpoint formats --------------------------------------------------------------------------

export interface GPTQParams {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Tensor;
  gIdx?: Int32Array;
  bits: 4;
  groupSize: number;
  inFeatures: number;
  outFeatures: number;
}

export interface AWQParams {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Tensor;
  groupSize: number;
  inFeatures: number;
  outFeatures: number;
}

function checkObject(p: unknown, op: string, keys: readonly string[]): Record<string, unknown> {
  if (p === null || typeof p !== 'object' || Array.isArray(p))
    fail('ERR_ARG', `${op}: argument 'p'`, `expected an object of checkpoint tensors, got ${describe(p)}`);
  return checkOptions(p, op, keys);
}

function checkSize(v: unknown, op: string, name: string, multipleOf: number): number {
  if (!isInt(v) || v <= 0 || v % multipleOf !== 0)
    fail('ERR_ARG', `${op}: '${name}'`, `expected a positive multiple of ${multipleOf}, got ${describe(v)}`);
  return v;
}

function checkInt32(v: unknown, op: string, name: string, length: number): Int32Array {
  if (!(v instanceof Int32Array)) fail('ERR_ARG', `${op}: '${name}'`, `expected an Int32Array, got ${describe(v)}`);
  if (v.length !== length) fail('ERR_SHAPE', `${op}: '${name}'`, `expected ${length} int32 values, got ${v.length}`);
  // the addon reads only plain ArrayBuffers; a checkpoint is read once, so a shared one is copied
  return isShared(v.buffer) ? v.slice() : v;
}

/** Checkpoint scales [G, N] (float16 or float32) -> float32 [N, G], finite and non-zero. */
function transposeScales(s: unknown, op: string, G: number, N: number): Float32Array {
  const t = checkTensor(s, op, 'scales');
  if (t.dtype !== 'float32' && t.dtype !== 'float16')
    fail('ERR_DTYPE', `${op}: 'scales'`, `expected float16 or float32, got ${t.dtype}`);
  if (t.rank !== 2 || t.shape[0] !== G || t.shape[1] !== N)
    fail('ERR_SHAPE', `${op}: 'scales'`, `expected [${G}, ${N}], got ${fmtShape(t.shape)}`);
  const src = t.toFloat32();
  checkScales(src, `${op}: 'scales'`, false);
  const out = new Float32Array(N * G);
  for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) out[n * G + g] = src[g * N + n];
  return out;
}

/** A checkpoint tensor checked in JS; its weights are unpacked natively (quantUnpack). */
interface FromPlan {
  bits: 8 | 4;
  groupSize: number;
  N: number;
  K: number;
  format: number; // QuantFormat of native/include/tensorfuse/quant.h
  src: Int32Array | Uint8Array;
  qweight: Int8Array | Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array | null;
  gIdx: Int32Array | null;
  perm: Int32Array | null;
  stored: Uint8Array | null;
}
const FORMAT = { gptq: 0, awq: 1, q4_0: 2, q8_0: 3 } as const;

function fromPlan(p: Omit<FromPlan, 'qweight' | 'stored'>): FromPlan {
  const n = p.N * p.K;
  return {
    ...p,
    qweight: p.bits === 8 ? alignedArray(Int8Array, 1, n) : alignedArray(Uint8Array, 1, n / 2),
    stored: p.perm ? alignedArray(Uint8Array, 1, n / 2) : null,
  };
}

function finishFrom(p: FromPlan): QTensor {
  const stored = p.perm && p.stored ? { qweight: p.stored, perm: p.perm } : undefined;
  return makeQTensor(p.bits, p.groupSize, [p.N, p.K], p.qweight, p.scales, p.zeros, p.gIdx, stored);
}

function runFrom(p: FromPlan): QTensor {
  native.quantUnpack(p.format, p.src, p.N, p.K, p.qweight);
  if (p.perm && p.stored) native.quantPermute4(p.qweight as Uint8Array, p.N, p.K, p.perm, p.stored);
  return finishFrom(p);
}

async function runFromAsync(p: FromPlan): Promise<QTensor> {
  await native.quantUnpackAsync(p.format, p.src, p.N, p.K, p.qweight);
  if (p.perm && p.stored) await native.quantPermute4Async(p.qweight as Uint8Array, p.N, p.K, p.perm, p.stored);
  return finishFrom(p);
}

function checkGroup(v: unknown, op: string, K: number): number {
  if (v === -1) return K; // AutoGPTQ: one group over all of K
  if (!isInt(v) || v <= 0 || K % v !== 0)
    fail(
      'ERR_ARG',
      `${op}: 'groupSize'`,
      `expected a positive divisor of inFeatures = ${K} (or -1), got ${describe(v)}`,
    );
  return v;
}

/**
 * AutoGPTQ (v1) int4 checkpoint -> QTensor [N, K], asymmetric (z = stored + 1), groups of
 * groupSize (-1: one group); act-order gIdx kept as the QTensor's gIdx.
 * @example fromGPTQ({ qweight, qzeros, scales: tensor(s16, [K / 128, N], 'float16'), gIdx,
 *                     bits: 4, groupSize: 128, inFeatures: K, outFeatures: N })
 */
export function fromGPTQ(p: GPTQParams): QTensor {
  return runFrom(planGPTQ(p));
}

function planGPTQ(p: GPTQParams): FromPlan {
  const op = 'fromGPTQ';
  const o = checkObject(p, op, [
    'qweight',
    'qzeros',
    'scales',
    'gIdx',
    'bits',
    'groupSize',
    'inFeatures',
    'outFeatures',
  ]);
  if (o.bits !== 4) fail('ERR_ARG', `${op}: 'bits'`, `expected 4, got ${describe(o.bits)}`);
  const K = checkSize(o.inFeatures, op, 'inFeatures', 8);
  const N = checkSize(o.outFeatures, op, 'outFeatures', 8);
  const gs = checkGroup(o.groupSize, op, K);
  const G = K / gs;
  const qw = checkInt32(o.qweight, op, 'qweight', (K / 8) * N);
  const qz = checkInt32(o.qzeros, op, 'qzeros', (G * N) / 8);
  const scales = transposeScales(o.scales, op, G, N);
  const zeros = new Uint8Array(N * G);
  for (let g = 0; g < G; g++)
    for (let n = 0; n < N; n++) zeros[n * G + g] = ((qz[g * (N / 8) + (n >> 3)] >>> (4 * (n & 7))) & 15) + 1;
  let gIdx: Int32Array | null = null;
  let perm: Int32Array | null = null;
  if (o.gIdx !== undefined) {
    const g = checkInt32(o.gIdx, op, 'gIdx', K);
    let trivial = true;
    for (let k = 0; k < K; k++) {
      if (g[k] < 0 || g[k] >= G) fail('ERR_ARG', `${op}: 'gIdx'`, `gIdx[${k}] = ${g[k]} is out of range [0, ${G})`);
      if (g[k] !== Math.floor(k / gs)) trivial = false;
    }
    if (!trivial) {
      gIdx = g.slice();
      perm = actOrderPerm(K, gs, gIdx, `${op}: 'gIdx'`);
    }
  }
  return fromPlan({
    bits: 4,
    groupSize: gs === K ? 0 : gs,
    N,
    K,
    format: FORMAT.gptq,
    src: qw,
    scales,
    zeros,
    gIdx,
    perm,
  });
}

// AutoAWQ packs 8 columns per int32 with nibble i holding column [0, 2, 4, 6, 1, 3, 5, 7][i];
// the inverse: column c of a group of 8 sits in nibble AWQ_NIBBLE[c].
const AWQ_NIBBLE = [0, 4, 1, 5, 2, 6, 3, 7];

/**
 * AutoAWQ GEMM int4 checkpoint -> QTensor [N, K], asymmetric, groups of groupSize.
 * @example fromAWQ({ qweight, qzeros, scales, groupSize: 128, inFeatures: K, outFeatures: N })
 */
export function fromAWQ(p: AWQParams): QTensor {
  return runFrom(planAWQ(p));
}

function planAWQ(p: AWQParams): FromPlan {
  const op = 'fromAWQ';
  const o = checkObject(p, op, ['qweight', 'qzeros', 'scales', 'groupSize', 'inFeatures', 'outFeatures']);
  const K = checkSize(o.inFeatures, op, 'inFeatures', 2);
  const N = checkSize(o.outFeatures, op, 'outFeatures', 8);
  const gs = checkGroup(o.groupSize, op, K);
  const G = K / gs;
  const qw = checkInt32(o.qweight, op, 'qweight', (K * N) / 8);
  const qz = checkInt32(o.qzeros, op, 'qzeros', (G * N) / 8);
  const scales = transposeScales(o.scales, op, G, N);
  const zeros = new Uint8Array(N * G);
  for (let g = 0; g < G; g++)
    for (let n = 0; n < N; n++) zeros[n * G + g] = (qz[g * (N / 8) + (n >> 3)] >>> (4 * AWQ_NIBBLE[n & 7])) & 15;
  return fromPlan({
    bits: 4,
    groupSize: gs === K ? 0 : gs,
    N,
    K,
    format: FORMAT.awq,
    src: qw,
    scales,
    zeros,
    gIdx: null,
    perm: null,
  });
}

const GGML_BLOCK = { q4_0: 18, q8_0: 34 } as const;

/**
 * GGUF q4_0 / q8_0 blocks (32 weights along K each, row-major over [N, K]) -> QTensor with
 * groupSize 32: q4_0 -> int4 symmetric (w = (u - 8) * d), q8_0 -> int8 (w = q * d). A block
 * scale d of 0 is accepted (GGUF writes it for all-zero blocks); NaN or infinite d is not.
 * @example fromGGML('q4_0', tensorBytes, [4096, 4096])   // bytes: the tensor's data in the .gguf
 */
export function fromGGML(type: 'q4_0' | 'q8_0', bytes: Uint8Array, shape: [number, number]): QTensor {
  return runFrom(planGGML(type, bytes, shape));
}

function planGGML(type: 'q4_0' | 'q8_0', bytes: Uint8Array, shape: [number, number]): FromPlan {
  const op = 'fromGGML';
  if (type !== 'q4_0' && type !== 'q8_0')
    fail('ERR_ARG', `${op}: argument 'type'`, `expected 'q4_0' or 'q8_0', got ${describe(type)}`);
  if (!(bytes instanceof Uint8Array))
    fail('ERR_ARG', `${op}: argument 'bytes'`, `expected a Uint8Array, got ${describe(bytes)}`);
  if (isShared(bytes.buffer)) bytes = bytes.slice(); // the addon reads plain ArrayBuffers only
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => isInt(d) && d > 0))
    fail('ERR_SHAPE', `${op}: argument 'shape'`, `expected [N, K] of positive integers, got ${describe(shape)}`);
  const [N, K] = shape;
  if (K % 32 !== 0) fail('ERR_SHAPE', `${op}: argument 'shape'`, `K = ${K} must be a multiple of the block size 32`);
  const bb = GGML_BLOCK[type];
  if (bytes.length % bb !== 0)
    fail(
      'ERR_ARG',
      `${op}: argument 'bytes'`,
      `${bytes.length} bytes is not a whole number of ${bb}-byte ${type} blocks`,
    );
  const blocks = (N * K) / 32;
  if (bytes.length !== blocks * bb)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'bytes'`,
      `${fmtShape(shape)} needs ${blocks * bb} bytes of ${type}, got ${bytes.length}`,
    );
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * bb;
    const d = float16Value(bytes[o] | (bytes[o + 1] << 8));
    if (!Number.isFinite(d)) fail('ERR_ARG', `${op}: argument 'bytes'`, `block ${b} has scale ${describe(d)}`);
    scales[b] = d;
  }
  return fromPlan({
    bits: type === 'q8_0' ? 8 : 4,
    groupSize: 32,
    N,
    K,
    format: FORMAT[type],
    src: bytes,
    scales,
    zeros: null,
    gIdx: null,
    perm: null,
  });
}

/** fromGPTQ with the unpacking on the native pool; bitwise the same result. */
export async function fromGPTQAsync(p: GPTQParams): Promise<QTensor> {
  return runFromAsync(planGPTQ(p));
}
/** fromAWQ with the unpacking on the native pool; bitwise the same result. */
export async function fromAWQAsync(p: AWQParams): Promise<QTensor> {
  return runFromAsync(planAWQ(p));
}
/** fromGGML with the unpacking on the native pool; bitwise the same result. */
export async function fromGGMLAsync(
  type: 'q4_0' | 'q8_0',
  bytes: Uint8Array,
  shape: [number, number],
): Promise<QTensor> {
  return runFromAsync(planGGML(type, bytes, shape));
}

// ---- linear ------------------------------------------------------------------------------------

/** True for anything claiming to be a QTensor (linear dispatches on it). */
export function isQuantized(w: unknown): boolean {
  return w !== null && typeof w === 'object' && (w as { kind?: unknown }).kind === 'quantized';
}

interface LinearPlan {
  out: Tensor;
  args: Parameters<typeof native.quantLinear>;
}

/**
 * The strip layout of l for the int8-activation paths, when the active ISA reads one (null
 * otherwise, or when TENSORFUSE_QUANT_STRIPS=0): packed once per QTensor whose layout is cached
 * (ours, or a frozen one built by hand; an unfrozen object may change between calls, so it is
 * never packed for). The codes are read at packing: writing into qweight's storage afterwards is
 * not seen by these paths (build a new QTensor instead).
 */
function stripsOf(l: Layout, cached: boolean): Uint8Array | null {
  if (!cached) return null;
  const bytes = native.quantStripsBytes(l.bits, l.rows, l.K, l.groupSize);
  if (bytes === 0) return null;
  if (l.strips === undefined || l.strips.byteLength !== bytes) {
    const strips = alignedArray(Uint8Array, 1, bytes);
    native.quantPackStrips(...weightArgs(l), strips);
    l.strips = strips;
  }
  return l.strips;
}

function planQuantLinear(x: Tensor, w: unknown, opts: unknown): LinearPlan {
  const op = 'linear';
  checkTensor(x, op, 'x');
  const l = layoutOf(w, op, 'w');
  const q = w as QTensor;
  if (q.shape.length !== 2)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'w'`,
      `expected a QTensor [N, K], got ${fmtShape(q.shape)}; take one expert with sliceExpert(w, e)`,
    );
  const o = checkOptions(opts, op, ['bias', 'activation']);
  const activation = optEnum(o, 'activation', op, LINEAR_ACTIVATIONS, 'float');
  if (activation === 'int8' && l.bits !== 8)
    fail('ERR_ARG', `${op}: option 'activation'`, "'int8' (W8A8) needs int8 weights; w is int4 (use 'w4a8')");
  if (activation === 'w4a8' && l.bits !== 4)
    fail('ERR_ARG', `${op}: option 'activation'`, "'w4a8' needs int4 weights; w is int8 (use 'int8')");
  if (activation !== 'float' && (l.groupSize || l.K) > 65536)
    fail(
      'ERR_UNSUPPORTED',
      `${op}: option 'activation'`,
      `'${activation}' needs scale groups of at most 65536 (exact int32 sums); w has ${l.groupSize || l.K}`,
    );
  if (!isFloat(x.dtype))
    fail('ERR_DTYPE', `${op}: argument 'x'`, `expected float32, float16 or bfloat16, got ${x.dtype}`);
  if (x.rank < 1) fail('ERR_SHAPE', `${op}: argument 'x'`, 'expected [..., K], got a scalar');
  const [N, K] = q.shape;
  if (x.shape[x.rank - 1] !== K)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'x'`,
      `x ${fmtShape(x.shape)} has K = ${x.shape[x.rank - 1]}, w ${fmtShape(q.shape)} has K = ${K}`,
    );
  const { rows: M, outShape, bias } = linearShape(x, N, o, op);
  const out = allocate(
    x.dtype,
    M * N,
    `${op}: arguments 'x' ${fmtShape(x.shape)} and 'w' ${fmtShape(q.shape)}, the output ${fmtShape(outShape)}`,
  );
  const code = DTYPE_CODE[x.dtype];
  const integer = activation !== 'float';
  const strips = integer ? stripsOf(l, layouts.get(q) === l) : null;
  return {
    out: wrap(out, x.dtype, outShape),
    args: [storageOf(x, 'x'), code, M, ...weightArgs(l, N), bias, out, code, integer ? 1 : 0, strips],
  };
}

/** linear(x, q) for a QTensor: x [..., K] @ dequantize(q)^T, never materialising the weight. */
export function quantLinear(x: Tensor, w: QTensor, opts?: unknown): Tensor {
  const p = planQuantLinear(x, w, opts);
  native.quantLinear(...p.args);
  return p.out;
}

/** quantLinear off the JS thread; bitwise the same result. */
export async function quantLinearAsync(x: Tensor, w: QTensor, opts?: unknown): Promise<Tensor> {
  const p = planQuantLinear(x, w, opts);
  await native.quantLinearAsync(...p.args);
  return p.out;
}
