/**
 * Structured pruning (API.md "Structured pruning"): importance scores, N:M masks, the compressed
 * N:M format and its sparse linear kernel (native/cpu/prune), and physical removal of channels,
 * FFN intermediate channels and attention heads.
 *
 * Every function has an Async twin that runs its native work on the thread pool and gives bitwise
 * the same result. channels / ffn / heads run native float64 norm reductions, pick the kept
 * units in TS (a sort of one score per unit), then run the native gather.
 */
import { DTYPE_CODE, isFloat, type DType } from '../dtype.js';
import { TensorfuseError, describe, fail } from '../errors.js';
import {
  native,
  type PruneCompressArgs,
  type PruneDecompressArgs,
  type PruneGatherArgs,
  type PruneNmArgs,
  type PruneNormsArgs,
  type PruneScoreArgs,
  type SparseLinearArgs,
} from '../native.js';
import { fmtShape, numel } from '../shape.js';
import { Tensor, alignedArray, allocate, allocateFloat64, checkTensor, storageOf, wrap } from '../tensor.js';
import { checkKeys, checkOptions, floatActivationOnly, optEnum } from './options.js';

/** An N:M sparse weight, compressed along K (see compress()). Frozen. */
export interface SparseTensor {
  readonly kind: 'sparse';
  readonly n: number;
  readonly m: number;
  /** Logical [N, K]. */
  readonly shape: readonly number[];
  /** [N, K*n/m] in the weight's dtype: the kept values of each row, in column order. */
  readonly values: Tensor;
  /** uint8 [N, K*n/m]: the position (0..m-1) of each kept value inside its group of m. */
  readonly indices: Tensor;
}

/** One native call, sync or Async. */
type Step =
  | ['pruneScore', PruneScoreArgs]
  | ['pruneNm', PruneNmArgs]
  | ['pruneCompress', PruneCompressArgs]
  | ['pruneDecompress', PruneDecompressArgs]
  | ['pruneGather', PruneGatherArgs]
  | ['pruneNorms', PruneNormsArgs]
  | ['sparseLinear', SparseLinearArgs];

/** Native steps, then either the result or a second plan built from what the steps computed. */
interface Plan<R> {
  steps: Step[];
  result?: () => R;
  next?: () => Plan<R>;
}

function runSync<R>(p: Plan<R>): R {
  for (const [fn, args] of p.steps) (native[fn] as (...a: unknown[]) => void)(...args);
  return p.next ? runSync(p.next()) : p.result!();
}

async function runAsync<R>(p: Plan<R>): Promise<R> {
  for (const [fn, args] of p.steps) await (native[`${fn}Async`] as (...a: unknown[]) => Promise<void>)(...args);
  return p.next ? runAsync(p.next()) : p.result!();
}

// ---------------------------------------------------------------- argument checks

function floatWeight(v: unknown, op: string, name: string, rank = 2): Tensor {
  const t = checkTensor(v, op, name);
  if (!isFloat(t.dtype))
    fail('ERR_DTYPE', `${op}: argument '${name}'`, `expected float32, float16 or bfloat16, got ${t.dtype}`);
  if (t.rank !== rank)
    fail('ERR_SHAPE', `${op}: argument '${name}'`, `expected rank ${rank}, got ${fmtShape(t.shape)}`);
  return t;
}

function optInt(o: Record<string, unknown>, key: string, op: string, dflt: number, lo: number, hi: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    fail('ERR_ARG', `${op}: option '${key}'`, `expected an integer in [${lo}, ${hi}], got ${describe(v)}`);
  return v;
}

/** n and m of an N:M pattern (defaults 2:4) and a check that K splits into groups of m. */
function nmOptions(o: Record<string, unknown>, op: string, K: number, wName: string): { n: number; m: number } {
  const m = optInt(o, 'm', op, 4, 2, 255);
  const nv = o.n;
  if (nv !== undefined && (typeof nv !== 'number' || !Number.isInteger(nv) || nv < 1 || nv >= m))
    fail('ERR_ARG', `${op}: option 'n'`, `expected an integer with 1 <= n < m = ${m}, got ${describe(nv)}`);
  const n = nv === undefined ? Math.min(2, m - 1) : (nv as number);
  if (K % m !== 0)
    fail('ERR_SHAPE', `${op}: argument '${wName}'`, `K = ${K} is not a multiple of m = ${m} (groups of m along K)`);
  return { n, m };
}

/** A float32 [len] vector of finite, non-negative values (input-feature norms). */
function normsVector(v: unknown, op: string, name: string, len: number): Float32Array {
  const t = checkTensor(v, op, name);
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${op}: option '${name}'`, `expected a float32 tensor, got ${t.dtype}`);
  if (t.rank !== 1 || t.shape[0] !== len)
    fail(
      'ERR_SHAPE',
      `${op}: option '${name}'`,
      `expected [${len}] (one norm per input feature), got ${fmtShape(t.shape)}`,
    );
  const d = t.toFloat32();
  for (let i = 0; i < d.length; i++)
    if (!(d[i] >= 0) || d[i] === Infinity)
      fail('ERR_ARG', `${op}: option '${name}'`, `element ${i} is ${d[i]}: norms must be finite and >= 0`);
  return d;
}

/** keep: a count (integer >= 1, at most dim) or a ratio in (0, 1). Returns the count. */
function keepCount(v: unknown, op: string, dim: number, what: string): number {
  if (v === undefined) fail('ERR_ARG', `${op}: option 'keep'`, 'is required (a count >= 1 or a ratio in (0, 1))');
  if (typeof v !== 'number' || !Number.isFinite(v))
    fail('ERR_ARG', `${op}: option 'keep'`, `expected a count >= 1 or a ratio in (0, 1), got ${describe(v)}`);
  if (v > 0 && v < 1) return Math.max(1, Math.round(v * dim));
  if (!Number.isInteger(v) || v < 1)
    fail('ERR_ARG', `${op}: option 'keep'`, `expected a count >= 1 or a ratio in (0, 1), got ${describe(v)}`);
  if (v > dim) fail('ERR_ARG', `${op}: option 'keep'`, `${v} exceeds the ${dim} ${what} there are`);
  return v;
}

/** The `count` highest scores (NaN lowest, ties to the lower index), ascending indices. */
export function topKept(scores: ArrayLike<number>, count: number): Int32Array {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  const s = (i: number): number => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  order.sort((a, b) => s(b) - s(a) || a - b);
  return Int32Array.from(order.slice(0, count)).sort();
}

// ---------------------------------------------------------------- score / nm / compress

function planScore(w: Tensor, opts: unknown): Plan<Tensor> {
  const op = 'prune.score';
  floatWeight(w, op, 'w');
  const o = checkOptions(opts, op, ['method', 'inputNorms']);
  const method = optEnum(o, 'method', op, ['magnitude', 'wanda'] as const, 'magnitude');
  const [N, K] = w.shape;
  let norms: Float32Array | null = null;
  if (method === 'wanda') {
    if (o.inputNorms === undefined)
      fail(
        'ERR_ARG',
        `${op}: option 'inputNorms'`,
        "is required by method 'wanda' (float32 [K], L2 norm of each input feature)",
      );
    norms = normsVector(o.inputNorms, op, 'inputNorms', K);
  } else if (o.inputNorms !== undefined) {
    fail('ERR_ARG', `${op}: option 'inputNorms'`, "is only used by method 'wanda'");
  }
  const out = allocate('float32', N * K, op) as Float32Array;
  return {
    steps: [['pruneScore', [storageOf(w, 'w'), DTYPE_CODE[w.dtype], norms, N, K, out]]],
    result: () => wrap(out, 'float32', [N, K]),
  };
}

function planNm(w: Tensor, opts: unknown): Plan<{ weight: Tensor; mask: Tensor }> {
  const op = 'prune.nm';
  floatWeight(w, op, 'w');
  const o = checkOptions(opts, op, ['n', 'm', 'scores']);
  const [N, K] = w.shape;
  const { n, m } = nmOptions(o, op, K, 'w');
  let scores: Float32Array | null = null;
  if (o.scores !== undefined) {
    const s = checkTensor(o.scores, op, 'scores');
    if (!isFloat(s.dtype)) fail('ERR_DTYPE', `${op}: option 'scores'`, `expected a float tensor, got ${s.dtype}`);
    if (s.rank !== 2 || s.shape[0] !== N || s.shape[1] !== K)
      fail('ERR_SHAPE', `${op}: option 'scores'`, `expected ${fmtShape(w.shape)} like w, got ${fmtShape(s.shape)}`);
    scores = s.dtype === 'float32' ? (storageOf(s, 'scores') as Float32Array) : s.toFloat32();
  }
  const weight = allocate(w.dtype, N * K, op);
  const mask = allocate('uint8', N * K, op) as Uint8Array;
  return {
    steps: [['pruneNm', [storageOf(w, 'w'), DTYPE_CODE[w.dtype], scores, N, K, n, m, weight, mask]]],
    result: () => ({ weight: wrap(weight, w.dtype, [N, K]), mask: wrap(mask, 'uint8', [N, K]) }),
  };
}

/** Lane words of the kernel layout (native/include/tensorfuse/prune.h), built once per SparseTensor. */
const LANES = new WeakMap<object, Uint16Array | null>();

function hasLanes(n: number, m: number): boolean {
  return n === 2 && m === 4;
}

function buildLanes(indices: Uint8Array, N: number, K: number, n: number, m: number): Uint16Array | null {
  const lanes = hasLanes(n, m) ? alignedArray(Uint16Array, 2, 2 * N * Math.floor(((K / m) * n) / 8)) : null;
  native.pruneLanes(indices, N, K, n, m, lanes);
  return lanes;
}

function makeSparse(n: number, m: number, N: number, K: number, values: Tensor, indices: Tensor): SparseTensor {
  return Object.freeze({ kind: 'sparse' as const, n, m, shape: Object.freeze([N, K]), values, indices });
}

function planCompress(w: Tensor, opts: unknown): Plan<SparseTensor> {
  const op = 'prune.compress';
  floatWeight(w, op, 'w');
  const o = checkOptions(opts, op, ['n', 'm']);
  const [N, K] = w.shape;
  const { n, m } = nmOptions(o, op, K, 'w');
  const Kc = (K / m) * n;
  const values = allocate(w.dtype, N * Kc, op);
  const indices = allocate('uint8', N * Kc, op) as Uint8Array;
  return {
    steps: [['pruneCompress', [storageOf(w, 'w'), DTYPE_CODE[w.dtype], N, K, n, m, values, indices]]],
    result: () => {
      const s = makeSparse(n, m, N, K, wrap(values, w.dtype, [N, Kc]), wrap(indices, 'uint8', [N, Kc]));
      LANES.set(s, buildLanes(indices, N, K, n, m));
      return s;
    },
  };
}

interface CheckedSparse {
  N: number;
  K: number;
  n: number;
  m: number;
  values: Tensor;
  indices: Uint8Array;
  lanes: Uint16Array | null;
}

/**
 * Validates a SparseTensor (from compress(), or built by hand with the same fields) and returns
 * its kernel layout. Indices are checked (in range, increasing within a group) and the layout
 * built once per frozen object (compress() returns frozen ones), as quant.ts's layoutOf does for
 * QTensors; a hand-built object that is not frozen may have its fields reassigned between calls,
 * so its layout is derived again on every use.
 */
export function checkSparse(v: unknown, op: string, name: string): CheckedSparse {
  const where = `${op}: argument '${name}'`;
  if (v === null || typeof v !== 'object' || (v as { kind?: unknown }).kind !== 'sparse')
    fail('ERR_ARG', where, `expected a SparseTensor (from prune.compress), got ${describe(v)}`);
  const s = v as SparseTensor;
  const { n, m, shape } = s;
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 2 || m > 255)
    fail('ERR_ARG', where, `SparseTensor .m: expected an integer in [2, 255], got ${describe(m)}`);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n >= m)
    fail('ERR_ARG', where, `SparseTensor .n: expected an integer with 1 <= n < m, got ${describe(n)}`);
  if (
    !Array.isArray(shape) ||
    shape.length !== 2 ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  )
    fail('ERR_SHAPE', where, `SparseTensor .shape: expected [N, K], got ${describe(shape)}`);
  const [N, K] = shape;
  if (K % m !== 0) fail('ERR_SHAPE', where, `SparseTensor .shape: K = ${K} is not a multiple of m = ${m}`);
  const Kc = (K / m) * n;
  const values = checkTensor(s.values, op, `${name}.values`);
  const idxT = checkTensor(s.indices, op, `${name}.indices`);
  if (!isFloat(values.dtype))
    fail('ERR_DTYPE', where, `SparseTensor .values: expected float32, float16 or bfloat16, got ${values.dtype}`);
  if (idxT.dtype !== 'uint8') fail('ERR_DTYPE', where, `SparseTensor .indices: expected uint8, got ${idxT.dtype}`);
  for (const [t, nm] of [
    [values, 'values'],
    [idxT, 'indices'],
  ] as const)
    if (t.rank !== 2 || t.shape[0] !== N || t.shape[1] !== Kc)
      fail(
        'ERR_SHAPE',
        `${where} (.${nm})`,
        `expected [${N}, ${Kc}] for ${n}:${m} of [${N}, ${K}], got ${fmtShape(t.shape)}`,
      );
  const indices = storageOf(idxT, `${name}.indices`) as Uint8Array;
  let lanes = LANES.get(s);
  if (lanes === undefined) {
    try {
      lanes = buildLanes(indices, N, K, n, m);
    } catch (e) {
      if (e instanceof TensorfuseError) fail(e.code, `${where} (.indices)`, e.message);
      throw e;
    }
    if (Object.isFrozen(s)) LANES.set(s, lanes);
  }
  return { N, K, n, m, values, indices, lanes };
}

function planDecompress(s: SparseTensor): Plan<Tensor> {
  const op = 'prune.decompress';
  const c = checkSparse(s, op, 's');
  const dt = c.values.dtype;
  const out = allocate(dt, c.N * c.K, op);
  return {
    steps: [['pruneDecompress', [storageOf(c.values, 's.values'), c.indices, DTYPE_CODE[dt], c.N, c.K, c.n, c.m, out]]],
    result: () => wrap(out, dt, [c.N, c.K]),
  };
}

/** The plan of linear(x, s) with a SparseTensor (lib/ops/linear.ts dispatches here). */
export function planSparseLinear(x: Tensor, w: unknown, opts: unknown): Plan<Tensor> {
  const op = 'linear';
  checkTensor(x, op, 'x');
  const s = checkSparse(w, op, 'w');
  const o = checkOptions(opts, op, ['bias', 'activation']);
  floatActivationOnly(o, op, 'a SparseTensor');
  const wdt = s.values.dtype;
  if (x.dtype !== 'float32' && x.dtype !== wdt)
    fail('ERR_DTYPE', `${op}: argument 'x'`, `expected float32 or the weights' ${wdt}, got ${x.dtype}`);
  if (x.rank < 1) fail('ERR_SHAPE', `${op}: argument 'x'`, 'expected [..., K], got a scalar');
  const K = x.shape[x.rank - 1];
  if (K !== s.K)
    fail('ERR_SHAPE', `${op}: argument 'w'`, `x ${fmtShape(x.shape)} has K = ${K}, w [${s.N}, ${s.K}] has K = ${s.K}`);
  let bias: Float32Array | null = null;
  if (o.bias !== undefined) {
    const bt = checkTensor(o.bias, op, 'bias');
    if (!isFloat(bt.dtype)) fail('ERR_DTYPE', `${op}: option 'bias'`, `expected a float tensor, got ${bt.dtype}`);
    if (bt.rank !== 1 || bt.shape[0] !== s.N)
      fail('ERR_SHAPE', `${op}: option 'bias'`, `expected [${s.N}], got ${fmtShape(bt.shape)}`);
    bias = bt.dtype === 'float32' ? (storageOf(bt, 'bias') as Float32Array) : bt.toFloat32();
  }
  const M = numel(x.shape.slice(0, -1));
  const outShape = [...x.shape.slice(0, -1), s.N];
  const dt: DType = x.dtype;
  const out = allocate(
    dt,
    M * s.N,
    `${op}: arguments 'x' ${fmtShape(x.shape)} and 'w' [${s.N}, ${s.K}], the output ${fmtShape(outShape)}`,
  );
  return {
    steps: [
      [
        'sparseLinear',
        [
          storageOf(x, 'x'),
          DTYPE_CODE[dt],
          storageOf(s.values, 'w.values'),
          DTYPE_CODE[wdt],
          s.indices,
          s.lanes,
          out,
          DTYPE_CODE[dt],
          M,
          s.N,
          s.K,
          s.n,
          s.m,
          bias,
        ],
      ],
    ],
    result: () => wrap(out, dt, outShape),
  };
}

/** linear(x, SparseTensor), sync. */
export function sparseLinear(x: Tensor, w: unknown, opts: unknown): Tensor {
  return runSync(planSparseLinear(x, w, opts));
}

/** linear(x, SparseTensor), Async. */
export async function sparseLinearAsync(x: Tensor, w: unknown, opts: unknown): Promise<Tensor> {
  return runAsync(planSparseLinear(x, w, opts));
}

// ---------------------------------------------------------------- physical removal

function gatherStep(src: Tensor, name: string, axis: 0 | 1, kept: Int32Array, op: string): [Step, () => Tensor] {
  const [rows, cols] = src.shape;
  const shape = axis === 0 ? [kept.length, cols] : [rows, kept.length];
  const out = allocate(src.dtype, numel(shape), op);
  return [
    ['pruneGather', [storageOf(src, name), DTYPE_CODE[src.dtype], rows, cols, axis, kept, out]],
    () => wrap(out, src.dtype, shape),
  ];
}

/** A native float64 reduction: per row (axis 0, optionally weighted by colw) or per column. */
function normsStep(
  w: Tensor,
  name: string,
  axis: 0 | 1,
  p: 1 | 2,
  op: string,
  colw: Float32Array | null = null,
): [Step, Float64Array] {
  const [rows, cols] = w.shape;
  const out = allocateFloat64(axis === 0 ? rows : cols, op);
  return [['pruneNorms', [storageOf(w, name), DTYPE_CODE[w.dtype], rows, cols, axis, p, colw, out]], out];
}

function planChannels(w: Tensor, opts: unknown): Plan<{ weight: Tensor; kept: Int32Array }> {
  const op = 'prune.channels';
  floatWeight(w, op, 'w');
  const o = checkOptions(opts, op, ['axis', 'keep', 'scores']);
  if (o.axis !== 0 && o.axis !== 1)
    fail(
      'ERR_ARG',
      `${op}: option 'axis'`,
      `expected 0 (rows, output channels) or 1 (columns, input channels), got ${describe(o.axis)}`,
    );
  const axis = o.axis;
  const dim = w.shape[axis];
  const count = keepCount(o.keep, op, dim, axis === 0 ? 'rows' : 'columns');
  const gather = (scores: ArrayLike<number>): Plan<{ weight: Tensor; kept: Int32Array }> => {
    const kept = topKept(scores, count);
    const [step, result] = gatherStep(w, 'w', axis, kept, op);
    return { steps: [step], result: () => ({ weight: result(), kept }) };
  };
  if (o.scores === undefined || o.scores === 'l1' || o.scores === 'l2') {
    const p = o.scores === 'l1' ? 1 : 2;
    const [step, norms] = normsStep(w, 'w', axis, p, op);
    return {
      steps: [step],
      next: () => gather(p === 2 ? norms.map(Math.sqrt) : norms),
    };
  }
  if (!(o.scores instanceof Tensor))
    fail('ERR_ARG', `${op}: option 'scores'`, `expected 'l1', 'l2' or a Tensor, got ${describe(o.scores)}`);
  const s = checkTensor(o.scores, op, 'scores');
  if (!isFloat(s.dtype)) fail('ERR_DTYPE', `${op}: option 'scores'`, `expected a float tensor, got ${s.dtype}`);
  if (s.rank !== 1 || s.shape[0] !== dim)
    fail('ERR_SHAPE', `${op}: option 'scores'`, `expected [${dim}] (one score per channel), got ${fmtShape(s.shape)}`);
  return gather(s.toFloat32());
}

interface FfnWeights {
  w1: Tensor;
  w3?: Tensor;
  w2: Tensor;
}

function planFfn(w: FfnWeights, opts: unknown): Plan<{ w1: Tensor; w3?: Tensor; w2: Tensor; kept: Int32Array }> {
  const op = 'prune.ffn';
  if (w === null || typeof w !== 'object' || Array.isArray(w) || w instanceof Tensor)
    fail('ERR_ARG', `${op}: argument 'w'`, `expected { w1, w3?, w2 }, got ${describe(w)}`);
  checkKeys(w, op, 'w', ['w1', 'w3', 'w2']);
  const w1 = floatWeight(w.w1, op, 'w1');
  const w3 = w.w3 === undefined ? undefined : floatWeight(w.w3, op, 'w3');
  const w2 = floatWeight(w.w2, op, 'w2');
  const [F, D] = w1.shape;
  if (w3 && (w3.shape[0] !== F || w3.shape[1] !== D))
    fail('ERR_SHAPE', `${op}: argument 'w3'`, `expected ${fmtShape(w1.shape)} like w1, got ${fmtShape(w3.shape)}`);
  if (w2.shape[0] !== D || w2.shape[1] !== F)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'w2'`,
      `expected [${D}, ${F}] (w1 is [F, D] = ${fmtShape(w1.shape)}), got ${fmtShape(w2.shape)}`,
    );
  for (const t of [w3, w2])
    if (t && t.dtype !== w1.dtype)
      fail(
        'ERR_DTYPE',
        `${op}: argument '${t === w3 ? 'w3' : 'w2'}'`,
        `dtype ${t.dtype} differs from w1's ${w1.dtype}`,
      );
  const o = checkOptions(opts, op, ['keep', 'inputNorms']);
  const count = keepCount(o.keep, op, F, 'intermediate channels');
  const norms = o.inputNorms === undefined ? null : normsVector(o.inputNorms, op, 'inputNorms', D);
  // score of channel f: (sum_d |w1[f,d]| s_d + sum_d |w3[f,d]| s_d) * sum_d |w2[d,f]|
  const [n1, in1] = normsStep(w1, 'w1', 0, 1, op, norms);
  const [n2, out2] = normsStep(w2, 'w2', 1, 1, op);
  const steps: Step[] = [n1, n2];
  let in3: Float64Array | null = null;
  if (w3) {
    const [n3, o3] = normsStep(w3, 'w3', 0, 1, op, norms);
    steps.push(n3);
    in3 = o3;
  }
  const next = (): Plan<{ w1: Tensor; w3?: Tensor; w2: Tensor; kept: Int32Array }> => {
    const scores = in1.map((a, f) => (a + (in3 ? in3[f] : 0)) * out2[f]);
    const kept = topKept(scores, count);
    const [s1, r1] = gatherStep(w1, 'w1', 0, kept, op);
    const [s2, r2] = gatherStep(w2, 'w2', 1, kept, op);
    const gsteps: Step[] = [s1, s2];
    let r3: (() => Tensor) | null = null;
    if (w3) {
      const [s3, r] = gatherStep(w3, 'w3', 0, kept, op);
      gsteps.push(s3);
      r3 = r;
    }
    return {
      steps: gsteps,
      result: () => (r3 ? { w1: r1(), w3: r3(), w2: r2(), kept } : { w1: r1(), w2: r2(), kept }),
    };
  };
  return { steps, next };
}

interface AttnWeights {
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
}

function posInt(o: Record<string, unknown>, key: string, op: string, dflt?: number): number {
  const v = o[key] === undefined ? dflt : o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    fail('ERR_ARG', `${op}: option '${key}'`, `expected an integer >= 1, got ${describe(o[key])}`);
  return v;
}

function planHeads(
  w: AttnWeights,
  opts: unknown,
): Plan<{ wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; kept: Int32Array }> {
  const op = 'prune.heads';
  if (w === null || typeof w !== 'object' || Array.isArray(w) || w instanceof Tensor)
    fail('ERR_ARG', `${op}: argument 'w'`, `expected { wq, wk, wv, wo }, got ${describe(w)}`);
  checkKeys(w, op, 'w', ['wq', 'wk', 'wv', 'wo']);
  const wq = floatWeight(w.wq, op, 'wq');
  const wk = floatWeight(w.wk, op, 'wk');
  const wv = floatWeight(w.wv, op, 'wv');
  const wo = floatWeight(w.wo, op, 'wo');
  const o = checkOptions(opts, op, ['numHeads', 'numKvHeads', 'headDim', 'keep']);
  const Hq = posInt(o, 'numHeads', op);
  const Hkv = posInt(o, 'numKvHeads', op, Hq);
  const hd = posInt(o, 'headDim', op);
  if (Hq % Hkv !== 0) fail('ERR_ARG', `${op}: option 'numKvHeads'`, `${Hkv} does not divide numHeads = ${Hq}`);
  const D = wq.shape[1];
  const expect2 = (t: Tensor, name: string, rows: number, cols: number, what: string): void => {
    if (t.shape[0] !== rows || t.shape[1] !== cols)
      fail('ERR_SHAPE', `${op}: argument '${name}'`, `expected [${rows}, ${cols}] (${what}), got ${fmtShape(t.shape)}`);
  };
  expect2(wq, 'wq', Hq * hd, D, `numHeads ${Hq} x headDim ${hd} rows`);
  expect2(wk, 'wk', Hkv * hd, D, `numKvHeads ${Hkv} x headDim ${hd} rows, D = ${D} like wq`);
  expect2(wv, 'wv', Hkv * hd, D, `numKvHeads ${Hkv} x headDim ${hd} rows, D = ${D} like wq`);
  expect2(wo, 'wo', D, Hq * hd, `D = ${D} rows, numHeads ${Hq} x headDim ${hd} columns`);
  for (const [t, name] of [
    [wk, 'wk'],
    [wv, 'wv'],
    [wo, 'wo'],
  ] as const)
    if (t.dtype !== wq.dtype)
      fail('ERR_DTYPE', `${op}: argument '${name}'`, `dtype ${t.dtype} differs from wq's ${wq.dtype}`);
  const count = keepCount(o.keep, op, Hkv, Hkv === Hq ? 'heads' : 'kv groups');
  // score of kv group u: the L2 norm of all its weights (wq / wk / wv rows, wo columns)
  const [nq, q2] = normsStep(wq, 'wq', 0, 2, op);
  const [nk, k2] = normsStep(wk, 'wk', 0, 2, op);
  const [nv, v2] = normsStep(wv, 'wv', 0, 2, op);
  const [no, o2] = normsStep(wo, 'wo', 1, 2, op);
  const g = Hq / Hkv;
  const next = (): Plan<{ wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; kept: Int32Array }> => {
    const scores = new Float64Array(Hkv);
    for (let u = 0; u < Hkv; u++) {
      let t = 0;
      for (let r = u * g * hd; r < (u + 1) * g * hd; r++) t += q2[r] + o2[r];
      for (let r = u * hd; r < (u + 1) * hd; r++) t += k2[r] + v2[r];
      scores[u] = Math.sqrt(t);
    }
    return gatherHeads(topKept(scores, count));
  };
  const gatherHeads = (
    kept: Int32Array,
  ): Plan<{ wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; kept: Int32Array }> => {
    const qRows: number[] = [];
    const kvRows: number[] = [];
    for (const u of kept) {
      for (let r = u * g * hd; r < (u + 1) * g * hd; r++) qRows.push(r);
      for (let r = u * hd; r < (u + 1) * hd; r++) kvRows.push(r);
    }
    const qi = Int32Array.from(qRows);
    const kvi = Int32Array.from(kvRows);
    const [sq, rq] = gatherStep(wq, 'wq', 0, qi, op);
    const [sk, rk] = gatherStep(wk, 'wk', 0, kvi, op);
    const [sv, rv] = gatherStep(wv, 'wv', 0, kvi, op);
    const [so, ro] = gatherStep(wo, 'wo', 1, qi, op);
    return {
      steps: [sq, sk, sv, so],
      result: () => ({ wq: rq(), wk: rk(), wv: rv(), wo: ro(), kept }),
    };
  };
  return { steps: [nq, nk, nv, no], next };
}

// ---------------------------------------------------------------- the public functions

/**
 * Importance of every weight: 'magnitude' |w| (default) or 'wanda' |w_ij| * inputNorms[j]
 * (Sun et al., "A Simple and Effective Pruning Approach for LLMs", 2023), inputNorms the L2 norm
 * of each input feature over calibration tokens. w [N, K] -> float32 [N, K].
 * @example prune.score(w, { method: 'wanda', inputNorms })
 */
export function score(w: Tensor, opts?: { method?: 'magnitude' | 'wanda'; inputNorms?: Tensor }): Tensor {
  return runSync(planScore(w, opts));
}
export async function scoreAsync(
  w: Tensor,
  opts?: { method?: 'magnitude' | 'wanda'; inputNorms?: Tensor },
): Promise<Tensor> {
  return runAsync(planScore(w, opts));
}

/**
 * N:M mask along K (default 2:4): in every group of m consecutive weights keep the n with the
 * highest score (|w| unless scores [N, K] are given; ties to the lower index; NaN lowest).
 * @example const { weight, mask } = prune.nm(w, { scores: prune.score(w, { method: 'wanda', inputNorms }) })
 */
export function nm(w: Tensor, opts?: { n?: number; m?: number; scores?: Tensor }): { weight: Tensor; mask: Tensor } {
  return runSync(planNm(w, opts));
}
export async function nmAsync(
  w: Tensor,
  opts?: { n?: number; m?: number; scores?: Tensor },
): Promise<{ weight: Tensor; mask: Tensor }> {
  return runAsync(planNm(w, opts));
}

/**
 * An n:m sparse w [N, K] (at most n nonzeros per group; default 2:4) -> SparseTensor with values
 * [N, K*n/m] and uint8 indices. decompress(compress(w)) equals w bit for bit. ERR_ARG if a group
 * has more than n nonzeros. linear(x, s) then reads only the kept weights.
 * @example const s = prune.compress(prune.nm(w).weight); const y = linear(x, s);
 */
export function compress(w: Tensor, opts?: { n?: number; m?: number }): SparseTensor {
  return runSync(planCompress(w, opts));
}
export async function compressAsync(w: Tensor, opts?: { n?: number; m?: number }): Promise<SparseTensor> {
  return runAsync(planCompress(w, opts));
}

/** The dense [N, K] weight of a SparseTensor (zeros in the pruned positions). */
export function decompress(s: SparseTensor): Tensor {
  return runSync(planDecompress(s));
}
export async function decompressAsync(s: SparseTensor): Promise<Tensor> {
  return runAsync(planDecompress(s));
}

/**
 * Removes whole rows (axis 0: output channels) or columns (axis 1: input channels) of w [N, K],
 * keeping the `keep` best by score ('l2' norm by default, 'l1', or a Tensor of one score per
 * channel). keep: a count >= 1 or a ratio in (0, 1) (rounded, at least 1). kept is ascending.
 * @example const { weight, kept } = prune.channels(w, { axis: 0, keep: 0.5 })
 */
export function channels(
  w: Tensor,
  opts: { axis: 0 | 1; keep: number; scores?: 'l1' | 'l2' | Tensor },
): { weight: Tensor; kept: Int32Array } {
  return runSync(planChannels(w, opts));
}
export async function channelsAsync(
  w: Tensor,
  opts: { axis: 0 | 1; keep: number; scores?: 'l1' | 'l2' | Tensor },
): Promise<{ weight: Tensor; kept: Int32Array }> {
  return runAsync(planChannels(w, opts));
}

/**
 * Drops whole intermediate channels of an FFN: rows of w1 (gate) and w3 (up) [F, D] and the
 * matching columns of w2 (down) [D, F], so the smaller FFN computes exactly what the original
 * with those channels masked would. Channel f scores (sum_d |w1[f,d]| s_d + sum_d |w3[f,d]| s_d) *
 * sum_d |w2[d,f]|, s = inputNorms [D] (Wanda's activation weighting of the input side) or 1.
 * @example const small = prune.ffn({ w1, w3, w2 }, { keep: 0.5 })
 */
export function ffn(
  w: FfnWeights,
  opts: { keep: number; inputNorms?: Tensor },
): { w1: Tensor; w3?: Tensor; w2: Tensor; kept: Int32Array } {
  return runSync(planFfn(w, opts));
}
export async function ffnAsync(
  w: FfnWeights,
  opts: { keep: number; inputNorms?: Tensor },
): Promise<{ w1: Tensor; w3?: Tensor; w2: Tensor; kept: Int32Array }> {
  return runAsync(planFfn(w, opts));
}

/**
 * Drops whole attention heads: wq [Hq*hd, D], wk / wv [Hkv*hd, D], wo [D, Hq*hd]. The unit is a
 * kv group (a kv head with its Hq/Hkv query heads; a head when numKvHeads = numHeads), keep
 * counts units, kept lists the kept units ascending. The pruned model has kept.length * Hq/Hkv
 * query heads and kept.length kv heads.
 * @example prune.heads({ wq, wk, wv, wo }, { numHeads: 32, numKvHeads: 8, headDim: 128, keep: 6 })
 */
export function heads(
  w: AttnWeights,
  opts: { numHeads: number; numKvHeads?: number; headDim: number; keep: number },
): { wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; kept: Int32Array } {
  return runSync(planHeads(w, opts));
}
export async function headsAsync(
  w: AttnWeights,
  opts: { numHeads: number; numKvHeads?: number; headDim: number; keep: number },
): Promise<{ wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor; kept: Int32Array }> {
  return runAsync(planHeads(w, opts));
}
