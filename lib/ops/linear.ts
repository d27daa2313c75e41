/**
 * Dense matmul and linear on the GEMM engine (native/cpu/gemm). float32, float16 and bfloat16
 * operands of one dtype; float32 accumulation; the output in the operands' dtype.
 */
import { DTYPE_CODE, isFloat, type DType } from '../dtype.js';
import { fail } from '../errors.js';
import { native, type GemmArgs } from '../native.js';
import { fmtShape, numel } from '../shape.js';
import { Tensor, allocate, checkTensor, storageOf, wrap } from '../tensor.js';
import { checkOptions, floatActivationOnly, type LinearActivation, optBool } from './options.js';
import { sparseLinear, sparseLinearAsync } from './prune.js';
import { isQuantized, quantLinear, quantLinearAsync, type QTensor } from './quant.js';

/** Activation codes of the GEMM epilogue (native/include/tensorfuse/gemm.h). */
export const ACTIVATION_CODE = { none: 0, relu: 1, gelu: 2, silu: 3 } as const;

/** A quantized weight (see quantize()); the int8/int4 kernels consume it. */
export interface QTensorLike {
  readonly kind: 'quantized';
}
/** An N:M sparse weight (see prune.compress()); the sparse kernels consume it. */
export interface SparseTensorLike {
  readonly kind: 'sparse';
}

/** An N:M SparseTensor goes to the sparse kernel (lib/ops/prune.ts). */
function isSparse(w: unknown): boolean {
  return w !== null && typeof w === 'object' && !(w instanceof Tensor) && (w as { kind?: unknown }).kind === 'sparse';
}

interface Plan {
  out: Tensor;
  calls: GemmArgs[];
}

function floatDType(t: Tensor, op: string, name: string): DType {
  if (!isFloat(t.dtype))
    fail('ERR_DTYPE', `${op}: argument '${name}'`, `expected float32, float16 or bfloat16, got ${t.dtype}`);
  return t.dtype;
}

/** Broadcast batch dims (numpy rules) of a and b; returns the output batch dims. */
function broadcastBatch(a: readonly number[], b: readonly number[], op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      fail(
        'ERR_SHAPE',
        `${op}: arguments 'a' and 'b'`,
        `batch dims ${fmtShape(a)} and ${fmtShape(b)} do not broadcast`,
      );
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element offset of batch index `idx` (over outBatch) inside an operand with batch dims `dims`. */
function batchOffset(idx: number, outBatch: readonly number[], dims: readonly number[], matSize: number): number {
  let off = 0;
  let stride = matSize;
  for (let i = outBatch.length - 1, j = dims.length - 1; i >= 0; i--, j--) {
    const coord = idx % outBatch[i];
    idx = Math.floor(idx / outBatch[i]);
    if (j >= 0) {
      if (dims[j] !== 1) off += coord * stride;
      stride *= dims[j];
    }
  }
  return off;
}

function planMatmul(a: Tensor, b: Tensor, opts: unknown): Plan {
  const op = 'matmul';
  checkTensor(a, op, 'a');
  checkTensor(b, op, 'b');
  const o = checkOptions(opts, op, ['transB']);
  const transB = optBool(o, 'transB', op, false);
  const dt = floatDType(a, op, 'a');
  if (floatDType(b, op, 'b') !== dt)
    fail('ERR_DTYPE', `${op}: argument 'b'`, `dtype ${b.dtype} differs from a's ${dt}; convert one with .to()`);
  if (a.rank < 1) fail('ERR_SHAPE', `${op}: argument 'a'`, 'expected rank >= 1, got a scalar');
  if (b.rank < 2)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'b'`,
      `expected rank >= 2 ([K, N]${transB ? ' or [N, K] with transB' : ''}), got ${fmtShape(b.shape)}`,
    );
  const vec = a.rank === 1;
  const aShape = vec ? [1, a.shape[0]] : a.shape;
  const M = aShape[aShape.length - 2];
  const K = aShape[aShape.length - 1];
  const bK = b.shape[b.rank - (transB ? 1 : 2)];
  const N = b.shape[b.rank - (transB ? 2 : 1)];
  if (bK !== K)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'b'`,
      `${fmtShape(a.shape)} x ${fmtShape(b.shape)}${transB ? ' (transB)' : ''}: inner sizes ${K} and ${bK} differ`,
    );
  const aBatch = aShape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = broadcastBatch(aBatch, bBatch, op);
  // a 1-D a is a row vector [1, K] whose M dim is dropped from the result (numpy / torch)
  const outShape = vec ? [...outBatch, N] : [...outBatch, M, N];
  const out = allocate(
    dt,
    numel(outShape),
    `${op}: arguments 'a' ${fmtShape(a.shape)} and 'b' ${fmtShape(b.shape)}, the output ${fmtShape(outShape)}`,
  );
  // Nothing to compute: an empty output, or K = 0 (every output is an empty sum, and `out` is
  // already zero-filled). Answered here, without one native call per batch (there may be 2^40).
  if (out.length === 0 || K === 0) return { out: wrap(out, dt, outShape), calls: [] };
  const A = storageOf(a, 'a');
  const B = storageOf(b, 'b');
  const code = DTYPE_CODE[dt];
  const calls: GemmArgs[] = [];
  const batch = numel(outBatch);
  const bShared = numel(bBatch) === 1;
  const aFull = numel(aBatch) === batch;
  const bFull =
    numel(bBatch) === batch && bBatch.length === outBatch.length && bBatch.every((d, i) => d === outBatch[i]);
  if (bShared && (aFull || batch === 1)) {
    // One GEMM: every batch of a stacked along M against the shared b.
    calls.push([A, code, B, code, out, code, 1, batch * M, N, K, transB, 0, 0, 0, null, 0]);
  } else if (
    (aFull || numel(aBatch) === 1) &&
    (bFull || bShared) &&
    (numel(aBatch) === 1 || aBatch.every((d, i) => d === outBatch[outBatch.length - aBatch.length + i]))
  ) {
    calls.push([
      A,
      code,
      B,
      code,
      out,
      code,
      batch,
      M,
      N,
      K,
      transB,
      numel(aBatch) === 1 ? 0 : M * K,
      bShared ? 0 : K * N,
      M * N,
      null,
      0,
    ]);
  } else {
    // General broadcast (a and b each broadcast along different dims): the innermost output
    // batch dim runs as one strided batched GEMM (stride 0 for an operand broadcast along it),
    // the outer dims as one such call each on zero-copy subarrays.
    const inner = outBatch[outBatch.length - 1];
    const aInner = aBatch.length > 0 && aBatch[aBatch.length - 1] !== 1 ? M * K : 0;
    const bInner = bBatch.length > 0 && bBatch[bBatch.length - 1] !== 1 ? K * N : 0;
    const aSpan = (inner - 1) * aInner + M * K;
    const bSpan = (inner - 1) * bInner + K * N;
    for (let i = 0; i < batch; i += inner) {
      const ao = batchOffset(i, outBatch, aBatch, M * K);
      const bo = batchOffset(i, outBatch, bBatch, K * N);
      calls.push([
        A.subarray(ao, ao + aSpan),
        code,
        B.subarray(bo, bo + bSpan),
        code,
        out.subarray(i * M * N, (i + inner) * M * N),
        code,
        inner,
        M,
        N,
        K,
        transB,
        aInner,
        bInner,
        M * N,
        null,
        0,
      ]);
    }
  }
  return { out: wrap(out, dt, outShape), calls };
}

/**
 * The half of a linear plan that does not depend on the weight's format (dense here, QTensor in
 * quant.ts): x [..., K] times an [N, K] weight gives out [..., N] over `rows` = the product of x's
 * leading dims; option 'bias' must be a float [N] tensor and comes back as float32 (or null).
 */
export function linearShape(
  x: Tensor,
  N: number,
  o: Record<string, unknown>,
  op: string,
): { rows: number; outShape: number[]; bias: Float32Array | null } {
  let bias: Float32Array | null = null;
  if (o.bias !== undefined) {
    const bt = checkTensor(o.bias, op, 'bias');
    if (!isFloat(bt.dtype)) fail('ERR_DTYPE', `${op}: option 'bias'`, `expected a float tensor, got ${bt.dtype}`);
    if (bt.rank !== 1 || bt.shape[0] !== N)
      fail('ERR_SHAPE', `${op}: option 'bias'`, `expected [${N}], got ${fmtShape(bt.shape)}`);
    bias = bt.dtype === 'float32' ? (storageOf(bt, 'bias') as Float32Array) : bt.toFloat32();
  }
  return { rows: numel(x.shape.slice(0, -1)), outShape: [...x.shape.slice(0, -1), N], bias };
}

function planLinear(x: Tensor, w: unknown, opts: unknown): Plan {
  const op = 'linear';
  checkTensor(x, op, 'x');
  checkTensor(w, op, 'w');
  const wt = w as Tensor;
  const o = checkOptions(opts, op, ['bias', 'activation']);
  floatActivationOnly(o, op, 'a dense tensor');
  const dt = floatDType(x, op, 'x');
  if (floatDType(wt, op, 'w') !== dt)
    fail('ERR_DTYPE', `${op}: argument 'w'`, `dtype ${wt.dtype} differs from x's ${dt}; convert one with .to()`);
  if (x.rank < 1) fail('ERR_SHAPE', `${op}: argument 'x'`, 'expected [..., K], got a scalar');
  if (wt.rank !== 2) fail('ERR_SHAPE', `${op}: argument 'w'`, `expected [N, K], got ${fmtShape(wt.shape)}`);
  const K = x.shape[x.rank - 1];
  const [N, wK] = wt.shape;
  if (wK !== K)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'w'`,
      `x ${fmtShape(x.shape)} has K = ${K}, w ${fmtShape(wt.shape)} has K = ${wK}`,
    );
  const { rows, outShape, bias } = linearShape(x, N, o, op);
  const out = allocate(
    dt,
    numel(outShape),
    `${op}: arguments 'x' ${fmtShape(x.shape)} and 'w' ${fmtShape(wt.shape)}, the output ${fmtShape(outShape)}`,
  );
  const code = DTYPE_CODE[dt];
  const call: GemmArgs = [
    storageOf(x, 'x'),
    code,
    storageOf(wt, 'w'),
    code,
    out,
    code,
    1,
    rows,
    N,
    K,
    true,
    0,
    0,
    0,
    bias,
    0,
  ];
  return { out: wrap(out, dt, outShape), calls: [call] };
}

/**
 * a [..., M, K] x b [K, N] (or b [N, K] with transB) -> [..., M, N], float32 accumulation.
 * Batch dims broadcast as in numpy; a 1-D a is a row vector and the M dim is dropped.
 * @example matmul(randn([8, 64]), randn([64, 32]))   // [8, 32]
 */
export function matmul(a: Tensor, b: Tensor, opts?: { transB?: boolean }): Tensor {
  const p = planMatmul(a, b, opts);
  for (const c of p.calls) native.gemm(...c);
  return p.out;
}

/** matmul off the JS thread; bitwise the same result. Inputs must not change until it settles. */
export async function matmulAsync(a: Tensor, b: Tensor, opts?: { transB?: boolean }): Promise<Tensor> {
  const p = planMatmul(a, b, opts);
  for (const c of p.calls) await native.gemmAsync(...c);
  return p.out;
}

export interface LinearOptions {
  /** [N], added to every output row (float32 or the dtype of x). */
  bias?: Tensor;
  /**
   * 'int8' quantizes x per token (W8A8), int8 QTensor weights only; 'w4a8' does the same for int4
   * QTensor weights (int4 x int8 products summed exactly in int32 per group). Default 'float'.
   */
  activation?: LinearActivation;
}

/**
 * x [..., K] @ w^T with w [N, K] (torch.nn.Linear layout) -> [..., N], plus bias.
 * @example linear(randn([4, 768]), randn([3072, 768]), { bias: zeros([3072]) })
 */
export function linear(x: Tensor, w: Tensor | QTensorLike | SparseTensorLike, opts?: LinearOptions): Tensor {
  if (isSparse(w)) return sparseLinear(x, w, opts);
  if (isQuantized(w)) return quantLinear(x, w as QTensor, opts);
  const p = planLinear(x, w, opts);
  for (const c of p.calls) native.gemm(...c);
  return p.out;
}

/** linear off the JS thread; bitwise the same result. */
export async function linearAsync(
  x: Tensor,
  w: Tensor | QTensorLike | SparseTensorLike,
  opts?: LinearOptions,
): Promise<Tensor> {
  if (isSparse(w)) return sparseLinearAsync(x, w, opts);
  if (isQuantized(w)) return quantLinearAsync(x, w as QTensor, opts);
  const p = planLinear(x, w, opts);
  for (const c of p.calls) await native.gemmAsync(...c);
  return p.out;
}
