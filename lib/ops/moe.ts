/**
 * Mixture of experts (native/cpu/moe): routing, the vLLM block alignment, dispatch / combine and
 * the fused expert layer. API.md "Mixture of experts" is the contract.
 */
import { DTYPE_CODE, isFloat } from '../dtype.js';
import { describe, fail } from '../errors.js';
import { native, type MoeWeightArgs } from '../native.js';
import { fmtShape } from '../shape.js';
import { Tensor, allocate, checkTensor, storageOf, wrap } from '../tensor.js';
import { ACTIVATION_CODE } from './linear.js';
import { checkKeys, checkOptions, optBool, optEnum, optFloat32 } from './options.js';
import { expertLayout, expertStrips, isQuantized, type QTensor } from './quant.js';

/** The result of moe.route: what dispatch, combine and ffn consume. */
export interface Routing {
  /** float32 [T, topK], the combine weights (0 where dropped). */
  weights: Tensor;
  /** int32 [T, topK], the expert of each slot (-1 where dropped). */
  experts: Tensor;
  /** int32 [E], slots routed to each expert (after dropping). */
  counts: Tensor;
  /** int32 [E + 1], exclusive prefix sum of counts. */
  offsets: Tensor;
  /** int32 [T*topK - dropped], slot ids (t*topK + j) grouped by expert, ascending t within one. */
  order: Tensor;
  /** Slots dropped by the capacity limit. */
  dropped: number;
  /** Switch load-balancing loss: E * sum_e f_e * P_e (f_e: share of the router's choices before
   *  the capacity drop, P_e: mean router score). */
  auxLoss: number;
  /** Mean over tokens of logsumexp(logits)^2. */
  zLoss: number;
}

export interface RouteOptions {
  topK: number;
  scoring?: 'softmax' | 'sigmoid';
  normalize?: boolean;
  bias?: Tensor;
  groups?: { count: number; topK: number };
  scale?: number;
  capacityFactor?: number;
}

/**
 * Expert weights: all float Tensors in x's dtype, or all stacked QTensors (int8 / int4, each with
 * its own bits, groups and zero points; x stays float32 / float16 / bfloat16 and a QTensor stands
 * for dequantize(q), which is never materialised). Mixing the two throws ERR_UNSUPPORTED.
 */
export interface FfnWeights {
  /** [E, F, D] gate (or up when w3 is absent). */
  w1: Tensor | QTensor;
  /** [E, F, D] up: act(x w1^T) * (x w3^T). */
  w3?: Tensor | QTensor;
  /** [E, D, F] down. */
  w2: Tensor | QTensor;
  /** Default 'silu'. */
  activation?: 'silu' | 'gelu' | 'relu';
}

/** Options of moe.ffn beyond the weights (an extension of API.md). */
export interface FfnOptions {
  /**
   * 'float' (default): quantized experts compute on float activations, as x @ dequantize(q)^T.
   * 'int8': for QTensor experts, each row entering a quantized matrix (x, and H before w2) is
   * quantized to int8 per row, as linear's 'int8' / 'w4a8' do, and the integer kernels run
   * (W8A8 / W4A8): about 2x faster in decode and, with AVX-512 VNNI, several times faster in
   * prefill, with the error of int8 activations. Calls of any size (rows in batches of ~256).
   */
  activations?: 'float' | 'int8';
}

// The sizes a Routing was built for, hidden (non-enumerable) on the object moe.route returns.
const ROUTING_META = Symbol('tensorfuse.routing');
interface RoutingMeta {
  T: number;
  topK: number;
  E: number;
}

/** The most experts moe.align takes as its numExperts option (2^20; real models have <= 512). */
const MAX_EXPERTS = 2 ** 20;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

// ---------------------------------------------------------------------------------------- route

interface RoutePlan {
  args: Parameters<typeof native.moeRoute>;
  finish: () => Routing;
}

function planRoute(logits: Tensor, opts: unknown): RoutePlan {
  const op = 'moe.route';
  checkTensor(logits, op, 'logits');
  if (logits.dtype !== 'float32')
    fail('ERR_DTYPE', `${op}: argument 'logits'`, `expected float32 [T, E], got ${logits.dtype}`);
  if (logits.rank !== 2)
    fail('ERR_SHAPE', `${op}: argument 'logits'`, `expected [T, E], got ${fmtShape(logits.shape)}`);
  const [T, E] = logits.shape;
  if (E < 1)
    fail('ERR_SHAPE', `${op}: argument 'logits'`, `expected at least one expert, got ${fmtShape(logits.shape)}`);
  if (opts === undefined || opts === null)
    fail('ERR_ARG', `${op}: argument 'opts'`, 'expected { topK, ... }: topK is required');
  const o = checkOptions(opts, op, ['topK', 'scoring', 'normalize', 'bias', 'groups', 'scale', 'capacityFactor']);
  const topK = o.topK;
  if (!isInt(topK) || topK < 1 || topK > 8 || topK > E)
    fail(
      'ERR_ARG',
      `${op}: option 'topK'`,
      `expected an integer in [1, ${Math.min(8, E)}] (E = ${E}), got ${describe(topK)}`,
    );
  const scoring = optEnum(o, 'scoring', op, ['softmax', 'sigmoid'] as const, 'softmax');
  const normalize = optBool(o, 'normalize', op, true);
  let bias: Float32Array | null = null;
  if (o.bias !== undefined) {
    const b = checkTensor(o.bias, op, 'bias');
    if (b.dtype !== 'float32') fail('ERR_DTYPE', `${op}: option 'bias'`, `expected float32 [${E}], got ${b.dtype}`);
    if (b.rank !== 1 || b.shape[0] !== E)
      fail('ERR_SHAPE', `${op}: option 'bias'`, `expected [${E}] (one per expert), got ${fmtShape(b.shape)}`);
    bias = storageOf(b, 'bias') as Float32Array;
  }
  let groups = 0;
  let groupTopK = 0;
  if (o.groups !== undefined) {
    const g = o.groups as Record<string, unknown>;
    if (g === null || typeof g !== 'object' || Array.isArray(g))
      fail('ERR_ARG', `${op}: option 'groups'`, `expected { count, topK }, got ${describe(g)}`);
    checkOptions(g, op, ['count', 'topK']);
    if (!isInt(g.count) || g.count < 1 || E % g.count !== 0)
      fail('ERR_ARG', `${op}: option 'groups.count'`, `expected a divisor of E = ${E}, got ${describe(g.count)}`);
    if (!isInt(g.topK) || g.topK < 1 || g.topK > g.count)
      fail('ERR_ARG', `${op}: option 'groups.topK'`, `expected an integer in [1, ${g.count}], got ${describe(g.topK)}`);
    const per = E / g.count;
    if (topK > g.topK * per)
      fail(
        'ERR_ARG',
        `${op}: option 'groups'`,
        `topK = ${topK} exceeds the ${g.topK * per} experts of the ${g.topK} kept groups of ${per}`,
      );
    groups = g.count;
    groupTopK = g.topK;
  }
  const scale = optFloat32(o, 'scale', op, 1); // a float32 factor in the kernel
  let capacityFactor = 0;
  if (o.capacityFactor !== undefined) {
    const c = o.capacityFactor;
    if (typeof c !== 'number' || !Number.isFinite(c) || c <= 0)
      fail('ERR_ARG', `${op}: option 'capacityFactor'`, `expected a finite number > 0, got ${describe(c)}`);
    capacityFactor = c;
  }
  const nSlots = T * topK;
  if (nSlots > 0x7fffffff)
    fail('ERR_SHAPE', `${op}: argument 'logits'`, `T * topK = ${nSlots} exceeds the int32 slot ids of a Routing`);
  const weights = allocate('float32', nSlots, op) as Float32Array;
  const experts = allocate('int32', nSlots, op) as Int32Array;
  const counts = allocate('int32', E, op) as Int32Array;
  const offsets = allocate('int32', E + 1, op) as Int32Array;
  const order = allocate('int32', nSlots, op) as Int32Array;
  const stats = new Float64Array(3);
  const args: Parameters<typeof native.moeRoute> = [
    storageOf(logits, 'logits') as Float32Array,
    T,
    E,
    topK,
    scoring === 'softmax' ? 0 : 1,
    normalize,
    bias,
    groups,
    groupTopK,
    scale,
    capacityFactor,
    weights,
    experts,
    counts,
    offsets,
    order,
    stats,
  ];
  const finish = (): Routing => {
    const dropped = stats[0];
    const r: Routing = {
      weights: wrap(weights, 'float32', [T, topK]),
      experts: wrap(experts, 'int32', [T, topK]),
      counts: wrap(counts, 'int32', [E]),
      offsets: wrap(offsets, 'int32', [E + 1]),
      order: wrap(dropped > 0 ? order.slice(0, nSlots - dropped) : order, 'int32', [nSlots - dropped]),
      dropped,
      auxLoss: stats[1],
      zLoss: stats[2],
    };
    Object.defineProperty(r, ROUTING_META, { value: { T, topK, E } satisfies RoutingMeta, enumerable: false });
    return r;
  };
  return { args, finish };
}

// ------------------------------------------------------------------------- routing as an input

interface RoutingArgs {
  T: number;
  topK: number;
  E: number;
  rows: number;
  weights: Float32Array;
  offsets: Int32Array;
  order: Int32Array;
}

function routingTensor(r: Record<string, unknown>, key: string, op: string, dtype: 'float32' | 'int32'): Tensor {
  const t = checkTensor(r[key], op, `r.${key}`);
  if (t.dtype !== dtype) fail('ERR_DTYPE', `${op}: argument 'r.${key}'`, `expected ${dtype}, got ${t.dtype}`);
  return t;
}

/** Checks a Routing (from moe.route or built by hand) against the T of its input. */
function checkRouting(r: unknown, op: string, T: number | null, inputName: string): RoutingArgs {
  if (r === null || typeof r !== 'object' || Array.isArray(r))
    fail('ERR_ARG', `${op}: argument 'r'`, `expected a Routing (the result of moe.route), got ${describe(r)}`);
  const o = r as Record<string, unknown>;
  const weights = routingTensor(o, 'weights', op, 'float32');
  const offsets = routingTensor(o, 'offsets', op, 'int32');
  const order = routingTensor(o, 'order', op, 'int32');
  if (weights.rank !== 2 || weights.shape[1] < 1 || weights.shape[1] > 8)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'r.weights'`,
      `expected [T, topK] with topK in [1, 8], got ${fmtShape(weights.shape)}`,
    );
  const [rT, topK] = weights.shape;
  if (offsets.rank !== 1 || offsets.shape[0] < 2)
    fail('ERR_SHAPE', `${op}: argument 'r.offsets'`, `expected [E + 1], got ${fmtShape(offsets.shape)}`);
  const E = offsets.shape[0] - 1;
  if (order.rank !== 1 || order.shape[0] > rT * topK)
    fail('ERR_SHAPE', `${op}: argument 'r.order'`, `expected [rows <= ${rT * topK}], got ${fmtShape(order.shape)}`);
  const meta = (r as { [ROUTING_META]?: RoutingMeta })[ROUTING_META];
  if (meta && (meta.T !== rT || meta.topK !== topK || meta.E !== E))
    fail(
      'ERR_ARG',
      `${op}: argument 'r'`,
      `its tensors ([T, topK] = [${rT}, ${topK}], E = ${E}) no longer match the routing it was built as ([${meta.T}, ${meta.topK}], E = ${meta.E})`,
    );
  if (T !== null && T !== rT)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'r'`,
      `the routing was built for T = ${rT} tokens, argument '${inputName}' has ${T}`,
    );
  const experts = routingTensor(o, 'experts', op, 'int32');
  const counts = routingTensor(o, 'counts', op, 'int32');
  if (experts.rank !== 2 || experts.shape[0] !== rT || experts.shape[1] !== topK)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'r.experts'`,
      `expected [${rT}, ${topK}] like r.weights, got ${fmtShape(experts.shape)}`,
    );
  if (counts.rank !== 1 || counts.shape[0] !== E)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'r.counts'`,
      `expected [${E}] (E from r.offsets), got ${fmtShape(counts.shape)}`,
    );
  const a: RoutingArgs = {
    T: rT,
    topK,
    E,
    rows: order.shape[0],
    weights: storageOf(weights, 'r.weights') as Float32Array,
    offsets: storageOf(offsets, 'r.offsets') as Int32Array,
    order: storageOf(order, 'r.order') as Int32Array,
  };
  checkRoutingTables(a, storageOf(experts, 'r.experts') as Int32Array, storageOf(counts, 'r.counts') as Int32Array, op);
  return a;
}

/**
 * The kernels read offsets, order and weights; experts and counts must tell the same story, or a
 * hand-built or edited Routing would silently send rows to other experts: offsets run from 0 to
 * rows by counts, each entry of expert e's run of order is a slot whose expert is e, and every
 * slot with an expert (not -1) is listed (the native side also rejects a slot listed twice).
 */
function checkRoutingTables(a: RoutingArgs, experts: Int32Array, counts: Int32Array, op: string): void {
  const { E, rows, offsets, order } = a;
  const nSlots = a.T * a.topK;
  let kept = 0;
  for (let s = 0; s < nSlots; s++) {
    const e = experts[s];
    if (e < -1 || e >= E)
      fail('ERR_ARG', `${op}: argument 'r.experts'`, `slot ${s} holds expert ${e}, outside [-1, ${E})`);
    if (e >= 0) kept++;
  }
  if (kept !== rows)
    fail('ERR_ARG', `${op}: argument 'r.order'`, `lists ${rows} slots, but r.experts routes ${kept} (not -1)`);
  if (offsets[0] !== 0) fail('ERR_ARG', `${op}: argument 'r.offsets'`, `offsets[0] must be 0, got ${offsets[0]}`);
  for (let e = 0; e < E; e++) {
    const n = offsets[e + 1] - offsets[e];
    if (n < 0 || offsets[e + 1] > rows)
      fail('ERR_ARG', `${op}: argument 'r.offsets'`, `must rise from 0 to ${rows} (the length of r.order)`);
    if (counts[e] !== n)
      fail(
        'ERR_ARG',
        `${op}: argument 'r.counts'`,
        `counts[${e}] = ${counts[e]}, but r.offsets gives expert ${e} ${n} rows`,
      );
    for (let i = offsets[e]; i < offsets[e + 1]; i++) {
      const slot = order[i];
      if (!(slot >= 0 && slot < nSlots))
        fail('ERR_ARG', `${op}: argument 'r.order'`, `entry ${i} = ${slot} is not a slot id in [0, ${nSlots})`);
      if (experts[slot] !== e)
        fail(
          'ERR_ARG',
          `${op}: argument 'r.order'`,
          `entry ${i} (slot ${slot}) is in expert ${e}'s run, but r.experts routes that slot to ${experts[slot]}`,
        );
    }
  }
  if (offsets[E] !== rows)
    fail(
      'ERR_ARG',
      `${op}: argument 'r.offsets'`,
      `offsets[${E}] = ${offsets[E]} must equal ${rows}, the length of r.order`,
    );
}

function routingList(a: RoutingArgs): [number, number, number, Float32Array, Int32Array, Int32Array, number] {
  return [a.T, a.topK, a.E, a.weights, a.offsets, a.order, a.rows];
}

// ---------------------------------------------------------------------------------------- align

interface AlignResult {
  sortedTokenIds: Tensor;
  expertIds: Tensor;
  numTokensPostPadded: number;
}

function planAlign(
  experts: Tensor,
  opts: unknown,
): { args: Parameters<typeof native.moeAlign>; finish: () => AlignResult } {
  const op = 'moe.align';
  checkTensor(experts, op, 'experts');
  if (experts.dtype !== 'int32')
    fail('ERR_DTYPE', `${op}: argument 'experts'`, `expected int32 [T, topK], got ${experts.dtype}`);
  if (opts === undefined || opts === null)
    fail('ERR_ARG', `${op}: argument 'opts'`, 'expected { numExperts, blockSize }');
  const o = checkOptions(opts, op, ['numExperts', 'blockSize']);
  // The native pass keeps counters per expert: an option (not a tensor dim) must not make it
  // allocate gigabytes for a handful of slots.
  if (!isInt(o.numExperts) || o.numExperts < 1 || o.numExperts > MAX_EXPERTS)
    fail(
      'ERR_ARG',
      `${op}: option 'numExperts'`,
      `expected an integer in [1, ${MAX_EXPERTS}], got ${describe(o.numExperts)}`,
    );
  if (!isInt(o.blockSize) || o.blockSize < 1 || o.blockSize > 0x7fffffff)
    fail('ERR_ARG', `${op}: option 'blockSize'`, `expected an integer >= 1, got ${describe(o.blockSize)}`);
  const E = o.numExperts;
  const block = o.blockSize;
  const n = experts.size;
  if (n >= 0x7fffffff) fail('ERR_SHAPE', `${op}: argument 'experts'`, `${n} slots exceed the int32 slot ids`);
  const maxPadded = n + E * (block - 1);
  if (!Number.isSafeInteger(maxPadded) || maxPadded > 0x7fffffff)
    fail('ERR_ARG', `${op}: option 'blockSize'`, `${n} slots padded for ${E} experts overflow the int32 ids`);
  const sorted = allocate('int32', maxPadded, op) as Int32Array;
  const ids = allocate('int32', Math.floor(maxPadded / block), op) as Int32Array;
  const stats = new Float64Array(1);
  return {
    args: [storageOf(experts, 'experts') as Int32Array, n, E, block, sorted, ids, stats],
    finish: () => {
      const padded = stats[0];
      return {
        sortedTokenIds: wrap(sorted.slice(0, padded), 'int32', [padded]),
        expertIds: wrap(ids.slice(0, padded / block), 'int32', [padded / block]),
        numTokensPostPadded: padded,
      };
    },
  };
}

// ------------------------------------------------------------------------- dispatch / combine

type MoveArgs = Parameters<typeof native.moeDispatch>;

function planDispatch(x: Tensor, r: unknown): { args: MoveArgs; out: Tensor } {
  const op = 'moe.dispatch';
  checkTensor(x, op, 'x');
  if (x.rank !== 2) fail('ERR_SHAPE', `${op}: argument 'x'`, `expected [T, D], got ${fmtShape(x.shape)}`);
  const ra = checkRouting(r, op, x.shape[0], 'x');
  const D = x.shape[1];
  const out = allocate(x.dtype, ra.rows * D, op);
  return {
    args: [storageOf(x, 'x'), DTYPE_CODE[x.dtype], D, ...routingList(ra), out],
    out: wrap(out, x.dtype, [ra.rows, D]),
  };
}

function planCombine(y: Tensor, r: unknown): { args: MoveArgs; out: Tensor } {
  const op = 'moe.combine';
  checkTensor(y, op, 'y');
  if (!isFloat(y.dtype))
    fail('ERR_DTYPE', `${op}: argument 'y'`, `expected float32, float16 or bfloat16, got ${y.dtype}`);
  if (y.rank !== 2) fail('ERR_SHAPE', `${op}: argument 'y'`, `expected [rows, D], got ${fmtShape(y.shape)}`);
  const ra = checkRouting(r, op, null, 'y');
  if (y.shape[0] !== ra.rows)
    fail(
      'ERR_SHAPE',
      `${op}: argument 'y'`,
      `expected one row per routed slot (${ra.rows}, the length of r.order), got ${fmtShape(y.shape)}`,
    );
  const D = y.shape[1];
  const out = allocate(y.dtype, ra.T * D, op);
  return {
    args: [storageOf(y, 'y'), DTYPE_CODE[y.dtype], D, ...routingList(ra), out],
    out: wrap(out, y.dtype, [ra.T, D]),
  };
}

// ------------------------------------------------------------------------------------------ ffn

/** One weight as moeFfn takes it, with its logical shape [E, N, K]. */
interface ExpertWeight {
  shape: readonly number[];
  args: MoeWeightArgs;
  /** The QTensor itself (null for a float weight), for its strip layout. */
  q: unknown;
}
const NO_WEIGHT: MoeWeightArgs = [0, 0, null, null, null];

function planFfn(
  x: Tensor,
  r: unknown,
  w: unknown,
  opts: unknown,
): { args: Parameters<typeof native.moeFfn>; out: Tensor } {
  const op = 'moe.ffn';
  checkTensor(x, op, 'x');
  if (!isFloat(x.dtype))
    fail('ERR_DTYPE', `${op}: argument 'x'`, `expected float32, float16 or bfloat16, got ${x.dtype}`);
  if (x.rank !== 2) fail('ERR_SHAPE', `${op}: argument 'x'`, `expected [T, D], got ${fmtShape(x.shape)}`);
  const [T, D] = x.shape;
  const ra = checkRouting(r, op, T, 'x');
  if (w === null || typeof w !== 'object' || Array.isArray(w) || w instanceof Tensor)
    fail('ERR_ARG', `${op}: argument 'w'`, `expected { w1, w3?, w2, activation? }, got ${describe(w)}`);
  checkKeys(w, op, 'w', ['w1', 'w3', 'w2', 'activation']);
  const o = w as Record<string, unknown>;
  // Every weight float (in x's dtype) or every weight a stacked QTensor (any bits / groups each).
  const quantized = isQuantized(o.w1);
  const weight = (key: string, optional = false): ExpertWeight | null => {
    if (optional && o[key] === undefined) return null;
    if (isQuantized(o[key]) !== quantized)
      fail(
        'ERR_UNSUPPORTED',
        `${op}: argument 'w.${key}'`,
        `is ${quantized ? 'a float Tensor' : 'a QTensor'} while w.w1 is ${quantized ? 'a QTensor' : 'a float Tensor'}; ` +
          'pass every expert weight quantized or every one float',
      );
    if (quantized) {
      const l = expertLayout(o[key], op, `w.${key}`);
      return { shape: l.shape, args: [l.bits, l.groupSize, l.qweight, l.scales, l.zeros], q: o[key] };
    }
    const t = checkTensor(o[key], op, `w.${key}`);
    if (t.dtype !== x.dtype)
      fail('ERR_DTYPE', `${op}: argument 'w.${key}'`, `dtype ${t.dtype} differs from x's ${x.dtype}`);
    return { shape: t.shape, args: [0, 0, storageOf(t, `w.${key}`), null, null], q: null };
  };
  const w1 = weight('w1')!;
  if (w1.shape.length !== 3)
    fail('ERR_SHAPE', `${op}: argument 'w.w1'`, `expected [E, F, D], got ${fmtShape(w1.shape)}`);
  const [E, F, D1] = w1.shape;
  if (E !== ra.E) fail('ERR_SHAPE', `${op}: argument 'w.w1'`, `has E = ${E} experts, the routing has ${ra.E}`);
  if (D1 !== D) fail('ERR_SHAPE', `${op}: argument 'w.w1'`, `has D = ${D1}, x ${fmtShape(x.shape)} has D = ${D}`);
  const w3 = weight('w3', true);
  const s3 = w3?.shape;
  if (s3 && (s3.length !== 3 || s3[0] !== E || s3[1] !== F || s3[2] !== D))
    fail('ERR_SHAPE', `${op}: argument 'w.w3'`, `expected [${E}, ${F}, ${D}] like w1, got ${fmtShape(s3)}`);
  const w2 = weight('w2')!;
  const s2 = w2.shape;
  if (s2.length !== 3 || s2[0] !== E || s2[1] !== D || s2[2] !== F)
    fail('ERR_SHAPE', `${op}: argument 'w.w2'`, `expected [${E}, ${D}, ${F}] ([E, D, F]), got ${fmtShape(s2)}`);
  const activation = optEnum(o, 'activation', op, ['silu', 'gelu', 'relu'] as const, 'silu');
  const activations = optEnum(
    checkOptions(opts, op, ['activations']),
    'activations',
    op,
    ['float', 'int8'] as const,
    'float',
  );
  if (activations === 'int8' && !quantized)
    fail('ERR_ARG', `${op}: option 'activations'`, "'int8' needs QTensor experts; w.w1 is a float Tensor");
  const out = allocate(x.dtype, T * D, op);
  // int8 activations read each QTensor's strip layout where the ISA wants one (built once)
  const strips = (ew: ExpertWeight | null): Uint8Array | null =>
    activations === 'int8' && ew && ew.q ? expertStrips(ew.q) : null;
  return {
    args: [
      storageOf(x, 'x'),
      DTYPE_CODE[x.dtype],
      D,
      F,
      ...routingList(ra),
      ...w1.args,
      ...(w3 ? w3.args : NO_WEIGHT),
      ...w2.args,
      ACTIVATION_CODE[activation],
      out,
      activations === 'int8',
      strips(w1),
      strips(w3),
      strips(w2),
    ],
    out: wrap(out, x.dtype, [T, D]),
  };
}

// ------------------------------------------------------------------------------- public surface

/**
 * Routes tokens to experts: logits float32 [T, E] -> a Routing (weights and experts [T, topK],
 * counts, offsets, order, dropped, auxLoss, zLoss). Ties go to the lower expert id.
 * @example const r = moe.route(logits, { topK: 2 })
 * @example moe.route(logits, { topK: 8, scoring: 'sigmoid', bias, groups: { count: 8, topK: 4 }, scale: 2.5 })
 */
export function route(logits: Tensor, opts: RouteOptions): Routing {
  const p = planRoute(logits, opts);
  native.moeRoute(...p.args);
  return p.finish();
}

/** route off the JS thread; bitwise the same result. */
export async function routeAsync(logits: Tensor, opts: RouteOptions): Promise<Routing> {
  const p = planRoute(logits, opts);
  await native.moeRouteAsync(...p.args);
  return p.finish();
}

/**
 * vLLM moe_align_block_size: the slots of experts int32 [T, topK] sorted by expert, each expert's
 * run padded to a multiple of blockSize with the id T*topK; expertIds has one entry per block.
 * Dropped slots (-1) are left out. sortedTokenIds has exactly numTokensPostPadded entries.
 * @example const { sortedTokenIds, expertIds } = moe.align(r.experts, { numExperts: 8, blockSize: 16 })
 */
export function align(experts: Tensor, opts: { numExperts: number; blockSize: number }): AlignResult {
  const p = planAlign(experts, opts);
  native.moeAlign(...p.args);
  return p.finish();
}

/** align off the JS thread; bitwise the same result. */
export async function alignAsync(
  experts: Tensor,
  opts: { numExperts: number; blockSize: number },
): Promise<AlignResult> {
  const p = planAlign(experts, opts);
  await native.moeAlignAsync(...p.args);
  return p.finish();
}

/**
 * Gathers the rows of x [T, D] in routing order: [T*topK - dropped, D], row i = x[order[i] / topK].
 * @example const xs = moe.dispatch(x, r)   // then rows offsets[e]..offsets[e+1] belong to expert e
 */
export function dispatch(x: Tensor, r: Routing): Tensor {
  const p = planDispatch(x, r);
  native.moeDispatch(...p.args);
  return p.out;
}

/** dispatch off the JS thread; bitwise the same result. */
export async function dispatchAsync(x: Tensor, r: Routing): Promise<Tensor> {
  const p = planDispatch(x, r);
  await native.moeDispatchAsync(...p.args);
  return p.out;
}

/**
 * The weighted sum back per token: y [T*topK - dropped, D] in routing order -> [T, D],
 * out[t] = sum_j weights[t, j] * y[row of slot (t, j)] (float32 accumulation, j ascending).
 * @example const out = moe.combine(expertOutputs, r)
 */
export function combine(y: Tensor, r: Routing): Tensor {
  const p = planCombine(y, r);
  native.moeCombine(...p.args);
  return p.out;
}

/** combine off the JS thread; bitwise the same result. */
export async function combineAsync(y: Tensor, r: Routing): Promise<Tensor> {
  const p = planCombine(y, r);
  await native.moeCombineAsync(...p.args);
  return p.out;
}

/**
 * The whole expert layer, fused: out[t] = sum_j w[t, j] * w2_e (act(w1_e x_t) * (w3_e x_t)) for
 * x [T, D], w1 / w3 [E, F, D], w2 [E, D, F] (float32, float16 or bfloat16, all one dtype).
 * Without w3: w2_e act(w1_e x_t). The weights may instead all be stacked QTensors (int8 / int4):
 * the result is then that of the float layer on dequantize(q), with float activations (or, with
 * `{ activations: 'int8' }`, int8 activations: FfnOptions).
 * @example const y = moe.ffn(x, moe.route(gate, { topK: 2 }), { w1, w3, w2 })   // Mixtral SwiGLU
 * @example moe.ffn(x, r, { w1: quantize(w1, { bits: 4 }), w3: quantize(w3, { bits: 4 }), w2: quantize(w2, { bits: 4 }) })
 */
export function ffn(x: Tensor, r: Routing, w: FfnWeights, opts?: FfnOptions): Tensor {
  const p = planFfn(x, r, w, opts);
  native.moeFfn(...p.args);
  return p.out;
}

/** ffn off the JS thread; bitwise the same result. */
export async function ffnAsync(x: Tensor, r: Routing, w: FfnWeights, opts?: FfnOptions): Promise<Tensor> {
  const p = planFfn(x, r, w, opts);
  await native.moeFfnAsync(...p.args);
  return p.out;
}
