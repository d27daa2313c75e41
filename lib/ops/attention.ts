/**
 * Fused scaled-dot-product attention (native/cpu/attention): FlashAttention-style tiles with an
 * online softmax, so memory stays linear in the sequence length. This file validates the
 * arguments, works out strides for the layout, and hands one plain object to the addon.
 */
import { DTYPE_CODE, isFloat } from '../dtype.js';
import { describe, fail } from '../errors.js';
import { ATTENTION_NUMS, native, type AttentionArgs } from '../native.js';
import { fmtShape, numel } from '../shape.js';
import { Tensor, allocate, checkTensor, storageOf, wrap } from '../tensor.js';
import { FLOAT32_MAX, checkOptions, optBool, optEnum, optFloat32 } from './options.js';

export interface AttentionOptions {
  /** 'bshd' (default): q [B, Sq, Hq, D], k/v [B, Sk, Hk, D]; 'bhsd': q [B, Hq, Sq, D], k/v [B, Hk, Sk, D]. */
  layout?: 'bshd' | 'bhsd';
  /** Query i sees keys j <= i + Sk - Sq (aligned to the bottom-right corner, as FlashAttention >= 2.1). */
  causal?: boolean;
  /** Multiplies q k^T; default 1 / sqrt(D). */
  scale?: number;
  /** Additive float32 mask, or uint8 (1 = keep), broadcastable to [B, Hq, Sq, Sk]. */
  mask?: Tensor;
  /** Sliding window [left, right] around the (bottom-right aligned) diagonal; -1 = unbounded. */
  window?: [number, number];
  /** scores = softcap * tanh(scores / softcap), before masks and ALiBi (Gemma 2); 0 = off. */
  softcap?: number;
  /** float32 [Hq] or [B, Hq]: adds -slope * |i + Sk - Sq - j| (Press et al., 2022). */
  alibiSlopes?: Tensor;
  /** int32 [B]: only the first seqlensK[b] keys of batch b exist (KV cache). */
  seqlensK?: Tensor;
  /** int32 [B+1]: varlen packed mode, q [totalQ, Hq, D] with sequence b in rows [cu[b], cu[b+1]). */
  cuSeqlensQ?: Tensor;
  /** int32 [B+1]: the same for k/v [totalK, Hk, D]. */
  cuSeqlensK?: Tensor;
  /** Also return lse, float32 [B, Hq, Sq] (varlen: [Hq, totalQ]), the log of each softmax denominator. */
  returnLse?: boolean;
}

const OPTION_KEYS = [
  'layout',
  'causal',
  'scale',
  'mask',
  'window',
  'softcap',
  'alibiSlopes',
  'seqlensK',
  'cuSeqlensQ',
  'cuSeqlensK',
  'returnLse',
] as const;

const OP = 'attention';

interface Plan {
  args: AttentionArgs | null; // null: nothing to compute
  out: Tensor;
  lse: Tensor | null;
}

function optTensor(o: Record<string, unknown>, key: string): Tensor | undefined {
  if (o[key] === undefined) return undefined;
  return checkTensor(o[key], OP, key);
}

function int32Vector(t: Tensor, key: string, length: number): Int32Array {
  if (t.dtype !== 'int32') fail('ERR_DTYPE', `${OP}: option '${key}'`, `expected int32, got ${t.dtype}`);
  if (t.rank !== 1 || t.shape[0] !== length)
    fail('ERR_SHAPE', `${OP}: option '${key}'`, `expected shape [${length}], got ${fmtShape(t.shape)}`);
  return storageOf(t, key) as Int32Array;
}

function checkCuSeqlens(t: Tensor, key: string, B1: number, total: number, tensorName: string): Int32Array {
  const cu = int32Vector(t, key, B1);
  if (cu[0] !== 0) fail('ERR_ARG', `${OP}: option '${key}'`, `must start at 0, got ${cu[0]}`);
  for (let b = 1; b < B1; b++)
    if (cu[b] < cu[b - 1])
      fail('ERR_ARG', `${OP}: option '${key}'`, `must be non-decreasing, but entry ${b} (${cu[b]}) < ${cu[b - 1]}`);
  if (cu[B1 - 1] !== total)
    fail(
      'ERR_ARG',
      `${OP}: option '${key}'`,
      `last entry ${cu[B1 - 1]} must equal the ${total} packed rows of '${tensorName}'`,
    );
  return cu;
}

/** Strides (elements) of [B, S, H, D] dims for a tensor stored in `layout`. */
function strides(layout: 'bshd' | 'bhsd', S: number, H: number, D: number): [number, number, number] {
  return layout === 'bshd' ? [S * H * D, H * D, D] : [H * S * D, D, S * D];
}

function plan(q: Tensor, k: Tensor, v: Tensor, opts: unknown): Plan {
  checkTensor(q, OP, 'q');
  checkTensor(k, OP, 'k');
  checkTensor(v, OP, 'v');
  const o = checkOptions(opts, OP, OPTION_KEYS);
  if (!isFloat(q.dtype))
    fail('ERR_DTYPE', `${OP}: argument 'q'`, `expected float32, float16 or bfloat16, got ${q.dtype}`);
  for (const [t, name] of [
    [k, 'k'],
    [v, 'v'],
  ] as const)
    if (t.dtype !== q.dtype)
      fail(
        'ERR_DTYPE',
        `${OP}: argument '${name}'`,
        `dtype ${t.dtype} differs from q's ${q.dtype}; convert with .to()`,
      );

  const layout = optEnum(o, 'layout', OP, ['bshd', 'bhsd'] as const, 'bshd');
  const causal = optBool(o, 'causal', OP, false);
  const returnLse = optBool(o, 'returnLse', OP, false);
  const cuQ = optTensor(o, 'cuSeqlensQ');
  const cuK = optTensor(o, 'cuSeqlensK');
  if ((cuQ === undefined) !== (cuK === undefined))
    fail('ERR_ARG', `${OP}: options 'cuSeqlensQ' and 'cuSeqlensK'`, 'varlen mode needs both');
  const varlen = cuQ !== undefined;

  // Shapes -> B, Sq, Sk, Hq, Hk, D.
  let B: number, Sq: number, Sk: number, Hq: number, Hk: number, D: number;
  const expectRank = varlen ? 3 : 4;
  const form = varlen ? '[total, H, D]' : layout === 'bshd' ? '[B, S, H, D]' : '[B, H, S, D]';
  for (const [t, name] of [
    [q, 'q'],
    [k, 'k'],
    [v, 'v'],
  ] as const)
    if (t.rank !== expectRank)
      fail('ERR_SHAPE', `${OP}: argument '${name}'`, `expected rank ${expectRank} ${form}, got ${fmtShape(t.shape)}`);
  if (k.shape.some((d, i) => d !== v.shape[i]))
    fail('ERR_SHAPE', `${OP}: argument 'v'`, `shape ${fmtShape(v.shape)} differs from k's ${fmtShape(k.shape)}`);
  if (varlen) {
    if (o.layout !== undefined && layout !== 'bshd')
      fail('ERR_ARG', `${OP}: option 'layout'`, "varlen mode packs rows as [total, H, D]: use 'bshd'");
    [Sq, Hq, D] = q.shape as [number, number, number];
    [Sk, Hk] = k.shape as [number, number];
    B = cuQ.size - 1;
    if (B < 1 || cuQ.rank !== 1)
      fail('ERR_SHAPE', `${OP}: option 'cuSeqlensQ'`, `expected [B+1] with B >= 1, got ${fmtShape(cuQ.shape)}`);
  } else {
    if (layout === 'bshd') {
      [B, Sq, Hq, D] = q.shape as [number, number, number, number];
      [, Sk, Hk] = k.shape as [number, number, number];
    } else {
      [B, Hq, Sq, D] = q.shape as [number, number, number, number];
      [, Hk, Sk] = k.shape as [number, number, number];
    }
    if (k.shape[0] !== B)
      fail('ERR_SHAPE', `${OP}: argument 'k'`, `batch ${k.shape[0]} differs from q's ${B} (${fmtShape(q.shape)})`);
  }
  if (k.shape[k.rank - 1] !== D)
    fail('ERR_SHAPE', `${OP}: argument 'k'`, `head dim ${k.shape[k.rank - 1]} differs from q's ${D}`);
  if (D < 1 || D > 256) fail('ERR_SHAPE', `${OP}: argument 'q'`, `head dim must be in [1, 256], got ${D}`);
  if (Hq < 1 || Hk < 1 || Hq % Hk !== 0)
    fail('ERR_SHAPE', `${OP}: argument 'k'`, `its ${Hk} heads must divide q's ${Hq} heads (GQA/MQA)`);

  const cuSeqlensQ = varlen ? checkCuSeqlens(cuQ, 'cuSeqlensQ', B + 1, Sq, 'q') : null;
  const cuSeqlensK = varlen ? checkCuSeqlens(cuK!, 'cuSeqlensK', B + 1, Sk, 'k') : null;

  // Scalars.
  // Both are float32 in the kernel (0 there means softcap off).
  const scale = optFloat32(o, 'scale', OP, 1 / Math.sqrt(D));
  // softcap 0 is off, as in FlashAttention's softcap=0.0; otherwise it must be > 0
  const softcap = o.softcap === 0 ? 0 : optFloat32(o, 'softcap', OP, 0, true);
  let windowLeft = -1;
  let windowRight = -1;
  if (o.window !== undefined) {
    const w = o.window;
    if (
      !Array.isArray(w) ||
      w.length !== 2 ||
      !w.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= -1)
    )
      fail(
        'ERR_ARG',
        `${OP}: option 'window'`,
        `expected [left, right], integers >= -1 (-1 = unbounded), got ${describe(w)}`,
      );
    [windowLeft, windowRight] = w as [number, number];
  }

  // Tensors among the options.
  let alibi: Float32Array | null = null;
  let alibiBatchStride = 0;
  const slopes = optTensor(o, 'alibiSlopes');
  if (slopes !== undefined) {
    if (slopes.dtype !== 'float32')
      fail('ERR_DTYPE', `${OP}: option 'alibiSlopes'`, `expected float32, got ${slopes.dtype}`);
    const ok1 = slopes.rank === 1 && slopes.shape[0] === Hq;
    const ok2 = slopes.rank === 2 && slopes.shape[0] === B && slopes.shape[1] === Hq;
    if (!ok1 && !ok2)
      fail(
        'ERR_SHAPE',
        `${OP}: option 'alibiSlopes'`,
        `expected [${Hq}] or [${B}, ${Hq}], got ${fmtShape(slopes.shape)}`,
      );
    alibi = storageOf(slopes, 'alibiSlopes') as Float32Array;
    // The bias -slope * |i + Sk - Sq - j| is a float32: it must stay finite for every distance
    // the shapes allow (at most max(Sq, Sk) - 1 per sequence), or the scores become +-Infinity
    // and softmax gives NaN.
    let maxDist = 0;
    if (cuSeqlensQ && cuSeqlensK)
      for (let b = 0; b < B; b++)
        maxDist = Math.max(maxDist, cuSeqlensQ[b + 1] - cuSeqlensQ[b] - 1, cuSeqlensK[b + 1] - cuSeqlensK[b] - 1);
    else maxDist = Math.max(Sq, Sk) - 1;
    for (let i = 0; i < alibi.length; i++) {
      const s = alibi[i];
      if (!Number.isFinite(s))
        fail('ERR_ARG', `${OP}: option 'alibiSlopes'`, `slope ${i} is ${describe(s)}: slopes must be finite`);
      if (Math.abs(s) * maxDist > FLOAT32_MAX)
        fail(
          'ERR_ARG',
          `${OP}: option 'alibiSlopes'`,
          `slope ${i} = ${s} times the largest query-key distance ${maxDist} overflows float32 ` +
            `(|slope| <= ${FLOAT32_MAX / maxDist} here)`,
        );
    }
    alibiBatchStride = ok2 ? Hq : 0;
  }

  let seqlensK: Int32Array | null = null;
  const sl = optTensor(o, 'seqlensK');
  if (sl !== undefined) {
    seqlensK = int32Vector(sl, 'seqlensK', B);
    for (let b = 0; b < B; b++) {
      const len = cuSeqlensK ? cuSeqlensK[b + 1] - cuSeqlensK[b] : Sk;
      if (seqlensK[b] < 0 || seqlensK[b] > len)
        fail(
          'ERR_ARG',
          `${OP}: option 'seqlensK'`,
          `entry ${b} is ${seqlensK[b]}, outside [0, ${len}] (the keys of k)`,
        );
    }
  }

  let mask: ArrayBufferView | null = null;
  let maskDtype = 0;
  const maskStrides = [0, 0, 0, 0];
  const mt = optTensor(o, 'mask');
  if (mt !== undefined) {
    if (varlen) fail('ERR_ARG', `${OP}: option 'mask'`, 'is not supported with cuSeqlensQ/cuSeqlensK');
    if (mt.dtype !== 'float32' && mt.dtype !== 'uint8')
      fail('ERR_DTYPE', `${OP}: option 'mask'`, `expected float32 (additive) or uint8 (1 = keep), got ${mt.dtype}`);
    const full = [B, Hq, Sq, Sk];
    if (mt.rank > 4)
      fail(
        'ERR_SHAPE',
        `${OP}: option 'mask'`,
        `expected rank <= 4 broadcastable to ${fmtShape(full)}, got ${fmtShape(mt.shape)}`,
      );
    let stride = 1;
    for (let i = mt.rank - 1; i >= 0; i--) {
      const d = mt.shape[i];
      const target = full[4 - mt.rank + i];
      if (d !== target && d !== 1)
        fail(
          'ERR_SHAPE',
          `${OP}: option 'mask'`,
          `shape ${fmtShape(mt.shape)} does not broadcast to ${fmtShape(full)}`,
        );
      maskStrides[4 - mt.rank + i] = d === 1 ? 0 : stride;
      stride *= d;
    }
    mask = storageOf(mt, 'mask');
    maskDtype = DTYPE_CODE[mt.dtype];
  }

  // Outputs.
  const out = wrap(allocate(q.dtype, q.size, OP), q.dtype, q.shape);
  const lseShape = varlen ? [Hq, Sq] : [B, Hq, Sq];
  const lse = returnLse ? wrap(allocate('float32', numel(lseShape), OP), 'float32', lseShape) : null;
  const ls: [number, number, number] = varlen ? [0, Sq, 1] : [Hq * Sq, Sq, 1];
  const qs = varlen ? strides('bshd', Sq, Hq, D) : strides(layout, Sq, Hq, D);
  const ks = varlen ? strides('bshd', Sk, Hk, D) : strides(layout, Sk, Hk, D);

  // Sizes and options in the order of native/napi/attention.cc (written by index: no iterators).
  const nums = new Float64Array(ATTENTION_NUMS);
  const head = [DTYPE_CODE[q.dtype], B, Hq, Hk, Sq, Sk, D];
  for (let i = 0; i < 7; i++) nums[i] = head[i];
  for (let i = 0; i < 3; i++) {
    nums[7 + i] = qs[i];
    nums[10 + i] = ks[i];
    nums[13 + i] = ks[i];
    nums[16 + i] = qs[i];
    nums[19 + i] = ls[i];
  }
  for (let i = 0; i < 4; i++) nums[22 + i] = maskStrides[i];
  const tail = [scale, causal ? 1 : 0, windowLeft, windowRight, softcap, alibiBatchStride, maskDtype];
  for (let i = 0; i < 7; i++) nums[26 + i] = tail[i];
  const args: AttentionArgs = [
    storageOf(q, 'q'),
    storageOf(k, 'k'),
    storageOf(v, 'v'),
    storageOf(out, 'out'),
    lse ? (storageOf(lse, 'lse') as Float32Array) : null,
    alibi,
    mask,
    seqlensK,
    cuSeqlensQ,
    cuSeqlensK,
    nums,
  ];
  // no query rows (B = 0 or Sq = 0): the empty outputs are the answer
  return { args: q.size === 0 ? null : args, out, lse };
}

/**
 * Scaled dot-product attention, fused: softmax(q k^T * scale + masks) v, float32 accumulation,
 * output in the input dtype. Hk must divide Hq (GQA/MQA); head dim up to 256. A query row that
 * sees no key gives zeros (and lse = -Infinity).
 * @example
 *   const q = randn([1, 128, 8, 64]), k = randn([1, 128, 2, 64]), v = randn([1, 128, 2, 64]);
 *   const o = attention(q, k, v, { causal: true });          // [1, 128, 8, 64]
 *   const { out, lse } = attention(q, k, v, { returnLse: true });
 */
// The two forms of API.md: `returnLse: true` (a literal) gives { out, lse }; any other options,
// a variable typed AttentionOptions included, give the output tensor.
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions & { returnLse: true },
): { out: Tensor; lse: Tensor };
export function attention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Tensor;
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: AttentionOptions,
): Tensor | { out: Tensor; lse: Tensor } {
  const p = plan(q, k, v, opts);
  const a = p.args;
  if (a) native.attention(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
  return p.lse ? { out: p.out, lse: p.lse } : p.out;
}

/** attention off the JS thread, on the native pool; bitwise the same result. */
export function attentionAsync(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions & { returnLse: true },
): Promise<{ out: Tensor; lse: Tensor }>;
export function attentionAsync(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Promise<Tensor>;
export async function attentionAsync(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: AttentionOptions,
): Promise<Tensor | { out: Tensor; lse: Tensor }> {
  const p = plan(q, k, v, opts);
  if (p.args) await native.attentionAsync(...p.args);
  return p.lse ? { out: p.out, lse: p.lse } : p.out;
}
