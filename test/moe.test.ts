/** moe.route / align / dispatch / combine / ffn against the float64 reference, on every ISA. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Tensor,
  TensorfuseError,
  backend,
  moe,
  quantize,
  randn,
  tensor,
  type DType,
  type QTensor,
  type Routing,
} from 'tensorfuse';
import {
  alignRef,
  bfloat16BitsRef,
  bfloat16ValueRef,
  combineRef,
  dequantizeRef,
  dispatchRef,
  ffnInt8Ref,
  ffnRef,
  float16BitsRef,
  float16ValueRef,
  relativeError,
  routeRef,
  toF64,
  type RouteRefOptions,
  type RoutingRef,
} from 'tensorfuse/reference';
import { RUN_SEED, expectError, expectRejects, forEachIsa, rand, runInChild, withSeed } from './helpers';

/** Logits on a 1/16 grid: exact ties are frequent (they must go to the lower id), and distinct
 *  values are far apart, so float32 and float64 agree on every comparison. */
function gridLogits(T: number, E: number, seed: number): Tensor {
  const r = randn([T, E], { seed });
  const d = r.data() as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = Math.round(d[i] * 16) / 16;
  return r;
}

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function bits(t: Tensor): Buffer {
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** The native routing as the reference's plain arrays. */
function asRef(r: Routing): RoutingRef {
  const [T, topK] = r.weights.shape;
  return {
    T,
    topK,
    E: r.counts.shape[0],
    weights: Float64Array.from(r.weights.data()),
    experts: r.experts.data(),
    counts: r.counts.data(),
    offsets: r.offsets.data(),
    order: r.order.data(),
    dropped: r.dropped,
    auxLoss: r.auxLoss,
    zLoss: r.zLoss,
  };
}

/**
 * Inputs whose routing is well conditioned: redraws the bias (continuous, so its keys can come
 * arbitrarily close) until no two candidate keys at the selection boundary are closer than float32
 * can tell apart. Exact ties (grid logits, no bias) are kept: both sides break them the same way.
 */
function wellConditioned(logits: Tensor, opts: Parameters<typeof moe.route>[1]): Parameters<typeof moe.route>[1] {
  let o = opts;
  for (let attempt = 0; attempt < 20; attempt++) {
    const m = routeRef(toF64(logits), { ...o, bias: o.bias ? o.bias.data() : undefined }).minMargin ?? Infinity;
    if (m > 1e-5) return o;
    if (!o.bias) break;
    o = { ...o, bias: rand([o.bias.size]) };
  }
  return o;
}

function checkRoute(label: string, logits: Tensor, routeOpts: Parameters<typeof moe.route>[1]): Routing {
  const opts = wellConditioned(logits, routeOpts);
  const refOpts: RouteRefOptions = { ...opts, bias: opts.bias ? opts.bias.data() : undefined };
  const want = routeRef(toF64(logits), refOpts);
  let first: Routing | null = null;
  forEachIsa((isa) => {
    const r = moe.route(logits, opts);
    const at = `${label} ${isa}`;
    expect(same(r.experts.data(), want.experts), `${at}: experts`).toBe(true);
    expect(same(r.counts.data(), want.counts), `${at}: counts`).toBe(true);
    expect(same(r.offsets.data(), want.offsets), `${at}: offsets`).toBe(true);
    expect(same(r.order.data(), want.order), `${at}: order`).toBe(true);
    expect(r.dropped, `${at}: dropped`).toBe(want.dropped);
    expect(r.weights.data().every(Number.isFinite), `${at}: finite weights`).toBe(true);
    expect(relativeError(r.weights.data(), want.weights), `${at}: weights`).toBeLessThan(2e-6);
    expect(Math.abs(r.auxLoss - want.auxLoss), `${at}: auxLoss`).toBeLessThanOrEqual(1e-5 * Math.abs(want.auxLoss));
    expect(Math.abs(r.zLoss - want.zLoss), `${at}: zLoss`).toBeLessThanOrEqual(1e-5 * Math.abs(want.zLoss) + 1e-9);
    first ??= r;
  });
  return first!;
}

describe('moe.route', () => {
  const EXPERTS = [8, 60, 64, 128, 384];
  for (const E of EXPERTS)
    it(`E = ${E}: softmax and sigmoid, topK 1..8, with and without normalize, bias and scale`, () => {
      withSeed(`route E=${E}`, (seed) => {
        let n = 0;
        for (const T of [1, 7, 33, 127])
          for (let topK = 1; topK <= Math.min(8, E); topK += T === 127 ? 3 : 1) {
            n++;
            const logits = gridLogits(T, E, seed + 31 * n);
            const bias = rand([E]);
            checkRoute(`T=${T} k=${topK} softmax`, logits, { topK });
            checkRoute(`T=${T} k=${topK} sigmoid`, logits, { topK, scoring: 'sigmoid', normalize: false });
            checkRoute(`T=${T} k=${topK} sigmoid bias scale`, logits, { topK, scoring: 'sigmoid', bias, scale: 2.5 });
            checkRoute(`T=${T} k=${topK} softmax bias unnormalized`, logits, { topK, bias, normalize: false });
          }
      });
    });

  it('grouped top-k (sum of the best two biased scores, or the max without bias)', () => {
    withSeed('route groups', (seed) => {
      const cases: [number, number, number, number][] = [
        // E, groups, kept groups, topK
        [256, 8, 4, 8],
        [64, 8, 3, 6],
        [60, 6, 2, 5],
        [384, 12, 1, 8],
        [8, 8, 2, 2], // groups of one expert
        [128, 4, 4, 8], // every group kept: same as no grouping
      ];
      for (const [i, [E, count, kept, topK]] of cases.entries()) {
        const logits = gridLogits(33, E, seed + i);
        const bias = rand([E]);
        const groups = { count, topK: kept };
        checkRoute(`E=${E} groups ${count}/${kept} sigmoid bias`, logits, {
          topK,
          scoring: 'sigmoid',
          bias,
          groups,
          scale: 2.5,
        });
        checkRoute(`E=${E} groups ${count}/${kept} softmax`, logits, { topK, groups });
      }
      // every group kept equals plain top-k
      const logits = gridLogits(17, 64, seed + 99);
      const a = moe.route(logits, { topK: 4, groups: { count: 8, topK: 8 } });
      const b = moe.route(logits, { topK: 4 });
      expect(same(a.experts.data(), b.experts.data())).toBe(true);
    });
  });

  it('capacity: admits by choice rank, then token, drops the overflow without renormalising', () => {
    withSeed('route capacity', (seed) => {
      for (const [T, E, topK, cf] of [
        [33, 8, 2, 0.5],
        [127, 60, 4, 1.0],
        [64, 64, 8, 0.25],
        [7, 384, 3, 1.5],
        [100, 8, 1, 1.0],
      ]) {
        const logits = gridLogits(T, E, seed + T);
        const r = checkRoute(`T=${T} E=${E} k=${topK} cf=${cf}`, logits, { topK, capacityFactor: cf });
        const cap = Math.ceil((cf * T * topK) / E);
        const counts = r.counts.data();
        for (let e = 0; e < E; e++) expect(counts[e]).toBeLessThanOrEqual(cap);
        const ex = r.experts.data();
        const w = r.weights.data();
        let dropped = 0;
        for (let s = 0; s < T * topK; s++)
          if (ex[s] === -1) {
            dropped++;
            expect(w[s]).toBe(0);
          }
        expect(dropped).toBe(r.dropped);
        expect(r.order.shape).toEqual([T * topK - dropped]);
      }
    });
    // hand-made: every token picks expert 0 first, expert 1 second; capacity 2 per expert.
    // Rank 0 slots of tokens 0, 1 fill expert 0; rank 1 slots of tokens 0, 1 fill expert 1.
    const logits = tensor(new Float32Array([2, 1, 0, 0, 2, 1, 0, 0, 2, 1, 0, 0, 2, 1, 0, 0]), [4, 4]);
    const r = moe.route(logits, { topK: 2, capacityFactor: 1 });
    expect([...r.experts.data()]).toEqual([0, 1, 0, 1, -1, -1, -1, -1]);
    expect([...r.counts.data()]).toEqual([2, 2, 0, 0]);
    expect([...r.order.data()]).toEqual([0, 2, 1, 3]);
    expect(r.dropped).toBe(4);
    const w = r.weights.data();
    expect(w[0] + w[1]).toBeCloseTo(1, 6); // kept slots keep their normalised weights
  });

  it('ties go to the lower expert id, in the selection and in the choice order', () => {
    const E = 6;
    const logits = tensor(new Float32Array([1, 3, 3, 1, 3, 0, 0, 0, 0, 0, 0, 0]), [2, E]);
    forEachIsa(() => {
      const r = moe.route(logits, { topK: 3 });
      expect([...r.experts.data()]).toEqual([1, 2, 4, 0, 1, 2]);
      const w = r.weights.data();
      for (const v of w) expect(v).toBeCloseTo(1 / 3, 6);
      // a bias that ties the selection keys of 1 and 5 keeps 1
      const bias = tensor(new Float32Array([0, 0, 0, 0, 0, 0]), [E]);
      const rb = moe.route(tensor(new Float32Array([0, 2, 0, 0, 0, 2]), [1, E]), { topK: 1, bias });
      expect([...rb.experts.data()]).toEqual([1]);
      // tied groups: the lower group wins
      const rg = moe.route(tensor(new Float32Array([5, 0, 0, 5, 0, 0]), [1, E]), {
        topK: 1,
        groups: { count: 2, topK: 1 },
      });
      expect([...rg.experts.data()]).toEqual([0]);
    });
  });

  it('weights come from the unbiased scores; auxLoss and zLoss match their definitions', () => {
    const logits = tensor(new Float32Array([0, 1, 2, 3]), [1, 4]);
    // a bias that flips the choice to expert 0 (selection only)
    const bias = tensor(new Float32Array([10, 0, 0, 0]), [4]);
    const r = moe.route(logits, { topK: 1, bias, normalize: false });
    expect([...r.experts.data()]).toEqual([0]);
    const z = Math.exp(0) + Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(r.weights.data()[0]).toBeCloseTo(1 / z, 6);
    const lse = Math.log(z);
    expect(r.zLoss).toBeCloseTo(lse * lse, 5);
    // f = [1, 0, 0, 0], P = softmax: aux = 4 * P_0
    expect(r.auxLoss).toBeCloseTo(4 / z, 6);
  });

  it('is deterministic across thread counts and its Async twin is bitwise equal', async () => {
    const logits = gridLogits(300, 384, RUN_SEED);
    const bias = rand([384]);
    const opts = { topK: 8, scoring: 'sigmoid' as const, bias, groups: { count: 8, topK: 4 }, capacityFactor: 1.2 };
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      const one = moe.route(logits, opts);
      backend.setThreads(2);
      const two = moe.route(logits, opts);
      const asy = await moe.routeAsync(logits, opts);
      for (const k of ['weights', 'experts', 'counts', 'offsets', 'order'] as const) {
        expect(bits(two[k]).equals(bits(one[k])), k).toBe(true);
        expect(bits(asy[k]).equals(bits(two[k])), k).toBe(true);
      }
      expect([asy.dropped, asy.auxLoss, asy.zLoss]).toEqual([two.dropped, two.auxLoss, two.zLoss]);
      expect([one.auxLoss, one.zLoss]).toEqual([two.auxLoss, two.zLoss]);
    } finally {
      backend.setThreads(t0);
    }
  });

  it('handles T = 0; a row of NaN, +Infinity or only -Infinity logits is ERR_ARG naming the row', async () => {
    const r0 = moe.route(tensor(new Float32Array(0), [0, 8]), { topK: 2 });
    expect(r0.order.shape).toEqual([0]);
    expect([r0.auxLoss, r0.zLoss]).toEqual([0, 0]);
    for (const scoring of ['softmax', 'sigmoid'] as const)
      for (const [bad, fill] of [
        [NaN, 0.5],
        [Infinity, 0.5],
        [-Infinity, -Infinity],
      ]) {
        const d = gridLogits(70, 8, RUN_SEED + 9)
          .data()
          .slice() as Float32Array;
        d.fill(fill, 53 * 8, 54 * 8);
        d[53 * 8 + 3] = bad;
        const logits = tensor(d, [70, 8]);
        expectError(() => moe.route(logits, { topK: 2, scoring }), 'ERR_ARG', "'logits': row 53");
        await expectRejects(moe.routeAsync(logits, { topK: 2, scoring }), 'ERR_ARG', "'logits': row 53");
      }
    // -Infinity leaves an expert out (a mask), as long as the row has a finite logit
    const d = new Float32Array(16).fill(-Infinity);
    d[3] = 1;
    d[8 + 5] = -2;
    d[8 + 6] = 4;
    for (const scoring of ['softmax', 'sigmoid'] as const) {
      const r = moe.route(tensor(d, [2, 8]), { topK: 1, scoring });
      expect([...r.experts.data()]).toEqual([3, 6]);
      expect([...r.weights.data()]).toEqual([1, 1]);
      expect(Number.isFinite(r.zLoss)).toBe(true);
    }
  });

  it('does not modify its inputs', () => {
    const logits = gridLogits(9, 16, RUN_SEED + 5);
    const bias = rand([16]);
    const l0 = logits.data().slice();
    const b0 = bias.data().slice();
    moe.route(logits, { topK: 2, bias, capacityFactor: 0.5 });
    expect(logits.data()).toEqual(l0);
    expect(bias.data()).toEqual(b0);
  });
});

describe('moe.align', () => {
  it('matches vLLM moe_align_block_size semantics (dropped slots left out)', () => {
    withSeed('align', (seed) => {
      for (const [T, E, topK, block, cf] of [
        [1, 8, 2, 16, undefined],
        [33, 8, 2, 4, undefined],
        [127, 60, 6, 16, 0.5],
        [64, 384, 8, 1, undefined],
        [7, 64, 3, 64, 1],
      ] as [number, number, number, number, number | undefined][]) {
        const r = moe.route(gridLogits(T, E, seed + T), { topK, capacityFactor: cf });
        const want = alignRef(r.experts.data(), E, block);
        const a = moe.align(r.experts, { numExperts: E, blockSize: block });
        expect([...a.sortedTokenIds.data()]).toEqual(want.sortedTokenIds);
        expect([...a.expertIds.data()]).toEqual(want.expertIds);
        expect(a.numTokensPostPadded).toBe(want.numTokensPostPadded);
        expect(a.numTokensPostPadded % block).toBe(0);
        expect(a.expertIds.shape).toEqual([a.numTokensPostPadded / block]);
      }
    });
    // hand-made: slots 0..5 -> experts [1, 0, 1, -1, 1, 0], block 2
    const a = moe.align(tensor(new Int32Array([1, 0, 1, -1, 1, 0]), [3, 2]), { numExperts: 3, blockSize: 2 });
    expect([...a.sortedTokenIds.data()]).toEqual([1, 5, 0, 2, 4, 6]);
    expect([...a.expertIds.data()]).toEqual([0, 1, 1]);
    expect(a.numTokensPostPadded).toBe(6);
  });
});

describe('moe.dispatch / moe.combine', () => {
  const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];
  for (const dtype of DTYPES)
    it(`${dtype}: gather in routing order and weighted sum back, with dropped slots`, () => {
      withSeed(`dispatch ${dtype}`, (seed) => {
        for (const [T, E, D, topK, cf] of [
          [1, 8, 1, 2, undefined],
          [7, 60, 33, 3, undefined],
          [33, 8, 127, 2, 0.6],
          [127, 64, 65, 6, 1],
        ] as [number, number, number, number, number | undefined][]) {
          const r = moe.route(gridLogits(T, E, seed + D), { topK, capacityFactor: cf });
          const x = rand([T, D], dtype);
          const xs = moe.dispatch(x, r);
          expect(xs.shape).toEqual([r.order.size, D]);
          expect(xs.dtype).toBe(dtype);
          const ref = asRef(r);
          // a gather is exact
          expect(same(xs.toFloat32(), dispatchRef(toF64(x), ref).data)).toBe(true);
          const y = rand([r.order.size, D], dtype);
          const want = combineRef(toF64(y), ref);
          forEachIsa((isa) => {
            const c = moe.combine(y, r);
            expect(c.shape).toEqual([T, D]);
            const got = c.toFloat32();
            expect(got.every(Number.isFinite), isa).toBe(true);
            const tol = dtype === 'float32' ? 1e-6 : dtype === 'float16' ? 2e-3 : 1e-2;
            expect(relativeError(got, want.data), `${isa} T=${T} D=${D}`).toBeLessThan(tol);
          });
          // tokens whose every slot was dropped get exact zeros
          const ex = r.experts.data();
          const c = moe.combine(y, r).toFloat32();
          for (let t = 0; t < T; t++) {
            let kept = false;
            for (let j = 0; j < topK; j++) kept ||= ex[t * topK + j] >= 0;
            if (!kept) for (let d = 0; d < D; d++) expect(c[t * D + d]).toBe(0);
          }
        }
      });
    });

  it('Async twins are bitwise equal; 1 and 2 threads agree', async () => {
    const r = moe.route(gridLogits(100, 64, RUN_SEED + 3), { topK: 6 });
    const x = rand([100, 130]);
    const xs = moe.dispatch(x, r);
    expect(bits(await moe.dispatchAsync(x, r)).equals(bits(xs))).toBe(true);
    const c = moe.combine(xs, r);
    expect(bits(await moe.combineAsync(xs, r)).equals(bits(c))).toBe(true);
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      expect(bits(moe.combine(xs, r)).equals(bits(c))).toBe(true);
    } finally {
      backend.setThreads(t0);
    }
    const a = moe.align(r.experts, { numExperts: 64, blockSize: 8 });
    const aa = await moe.alignAsync(r.experts, { numExperts: 64, blockSize: 8 });
    expect(bits(aa.sortedTokenIds).equals(bits(a.sortedTokenIds))).toBe(true);
    expect(bits(aa.expertIds).equals(bits(a.expertIds))).toBe(true);
  });
});

interface FfnCase {
  T: number;
  E: number;
  D: number;
  F: number;
  topK: number;
  w3: boolean;
  activation?: 'silu' | 'gelu' | 'relu';
  cf?: number;
}

function ffnCheck(c: FfnCase, dtype: DType, seed: number): void {
  const { T, E, D, F, topK } = c;
  const r = moe.route(gridLogits(T, E, seed), { topK, capacityFactor: c.cf });
  const x = rand([T, D], dtype);
  const w1 = rand([E, F, D], dtype);
  const w3 = c.w3 ? rand([E, F, D], dtype) : undefined;
  const w2 = rand([E, D, F], dtype);
  const want = ffnRef(toF64(x), asRef(r), {
    w1: toF64(w1),
    w3: w3 && toF64(w3),
    w2: toF64(w2),
    activation: c.activation,
  });
  const tol = dtype === 'float32' ? 2e-5 : dtype === 'float16' ? 4e-3 : 2e-2;
  const outs: Float32Array[] = [];
  forEachIsa((isa) => {
    const y = moe.ffn(x, r, { w1, w3, w2, activation: c.activation });
    expect(y.shape).toEqual([T, D]);
    expect(y.dtype).toBe(dtype);
    const got = y.toFloat32();
    const label = `${isa} ${dtype} ${JSON.stringify(c)}`;
    expect(got.every(Number.isFinite), `${label}: non-finite output`).toBe(true);
    expect(relativeError(got, want.data), label).toBeLessThan(tol);
    outs.push(got);
  });
  if (outs.length > 1) expect(relativeError(outs[1], outs[0])).toBeLessThan(2 * tol);
}

describe('moe.ffn', () => {
  const CASES: FfnCase[] = [
    { T: 1, E: 8, D: 33, F: 17, topK: 2, w3: true },
    { T: 7, E: 60, D: 65, F: 70, topK: 6, w3: true },
    { T: 33, E: 8, D: 127, F: 300, topK: 1, w3: true, activation: 'gelu' },
    { T: 3, E: 8, D: 40, F: 300, topK: 2, w3: true, activation: 'relu' }, // few tiles: F split in chunks
    { T: 100, E: 8, D: 24, F: 600, topK: 2, w3: false }, // chunks of more than one 256-column step
    { T: 300, E: 2, D: 16, F: 40, topK: 1, w3: true }, // experts with more rows than one tile
    { T: 200, E: 2, D: 33, F: 300, topK: 1, w3: true, activation: 'gelu' }, // packed path (tiles > 48 rows)
    { T: 400, E: 2, D: 20, F: 600, topK: 2, w3: false, activation: 'relu' }, // packed, several F steps
    { T: 64, E: 64, D: 48, F: 32, topK: 8, w3: true, cf: 0.5 }, // dropped slots
    { T: 5, E: 384, D: 7, F: 5, topK: 3, w3: false, activation: 'gelu' },
  ];
  it('float32 matches the unfused float64 loop on every ISA (odd T, D, F; SwiGLU, GeGLU, ReLU; capacity)', () => {
    withSeed('ffn f32', (seed) => {
      for (const [i, c] of CASES.entries()) ffnCheck(c, 'float32', seed + i);
    });
  });

  it('float16 and bfloat16 experts (float32 accumulation, output in the input dtype)', () => {
    withSeed('ffn 16-bit', (seed) => {
      for (const dtype of ['float16', 'bfloat16'] as DType[]) {
        ffnCheck({ T: 9, E: 8, D: 33, F: 70, topK: 2, w3: true }, dtype, seed);
        ffnCheck({ T: 17, E: 60, D: 20, F: 300, topK: 4, w3: false, activation: 'gelu' }, dtype, seed + 1);
        ffnCheck({ T: 120, E: 2, D: 24, F: 40, topK: 1, w3: true }, dtype, seed + 2); // packed path
      }
    });
  });

  it('equals dispatch -> per-expert linear layers -> combine', () => {
    withSeed('ffn vs composed', (seed) => {
      const [T, E, D, F, topK] = [21, 8, 32, 48, 2];
      const r = moe.route(gridLogits(T, E, seed), { topK });
      const x = rand([T, D]);
      const w1 = rand([E, F, D]);
      const w2 = rand([E, D, F]);
      const y = moe.ffn(x, r, { w1, w2, activation: 'relu' });
      const xs = moe.dispatch(x, r).toFloat32();
      const off = r.offsets.data();
      const h = new Float32Array(r.order.size * D);
      for (let e = 0; e < E; e++)
        for (let i = off[e]; i < off[e + 1]; i++) {
          const hid = new Float64Array(F);
          for (let f = 0; f < F; f++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += w1.data()[(e * F + f) * D + d] * xs[i * D + d];
            hid[f] = Math.max(s, 0);
          }
          for (let d = 0; d < D; d++) {
            let s = 0;
            for (let f = 0; f < F; f++) s += w2.data()[(e * D + d) * F + f] * hid[f];
            h[i * D + d] = s;
          }
        }
      const composed = moe.combine(tensor(h, [r.order.size, D]), r).toFloat32();
      expect(relativeError(y.toFloat32(), composed)).toBeLessThan(2e-5);
    });
  });

  it('is bitwise the same for 1 and 2 threads, and ffnAsync is bitwise equal', async () => {
    const [T, E, D, F, topK] = [130, 8, 64, 300, 2];
    const r = moe.route(gridLogits(T, E, RUN_SEED + 11), { topK });
    const x = rand([T, D]);
    const w = { w1: rand([E, F, D]), w3: rand([E, F, D]), w2: rand([E, D, F]) };
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      const one = moe.ffn(x, r, w);
      backend.setThreads(2);
      const two = moe.ffn(x, r, w);
      expect(bits(two).equals(bits(one))).toBe(true);
      const asy = await moe.ffnAsync(x, r, w);
      expect(bits(asy).equals(bits(two))).toBe(true);
      // several at once
      const outs = await Promise.all([0, 1, 2].map(() => moe.ffnAsync(x, r, w)));
      for (const o of outs) expect(bits(o).equals(bits(two))).toBe(true);
    } finally {
      backend.setThreads(t0);
    }
  });

  it('gives zeros for an empty hidden size (F = 0)', () => {
    const r = moe.route(gridLogits(4, 8, RUN_SEED), { topK: 2 });
    const y = moe.ffn(rand([4, 6]), r, { w1: rand([8, 0, 6]), w2: rand([8, 6, 0]) });
    expect([...y.toFloat32()]).toEqual(new Array(24).fill(0));
  });

  it('does not modify its inputs', () => {
    const r = moe.route(gridLogits(5, 8, RUN_SEED), { topK: 2 });
    const x = rand([5, 12]);
    const w1 = rand([8, 20, 12]);
    const w2 = rand([8, 12, 20]);
    const snap = [x, w1, w2, r.weights, r.order, r.offsets].map((t) => t.data().slice());
    moe.ffn(x, r, { w1, w2 });
    [x, w1, w2, r.weights, r.order, r.offsets].forEach((t, i) => expect(t.data()).toEqual(snap[i]));
  });
});

interface QKind {
  bits: 8 | 4;
  groupSize: number;
  symmetric: boolean;
}

interface QCase {
  T: number;
  E: number;
  D: number;
  F: number;
  topK: number;
  w3: boolean;
  activation: 'silu' | 'gelu' | 'relu';
  /** w1, w3, w2 (one kind for all three when a single one is given) */
  kinds: QKind[];
}

const kindLabel = (k: QKind) => `int${k.bits} g${k.groupSize}${k.symmetric ? '' : ' zp'}`;

function quantExperts(c: QCase): { w1: QTensor; w3?: QTensor; w2: QTensor } {
  const [k1, k3, k2] = c.kinds.length === 3 ? c.kinds : [c.kinds[0], c.kinds[0], c.kinds[0]];
  return {
    w1: quantize(rand([c.E, c.F, c.D]), k1),
    w3: c.w3 ? quantize(rand([c.E, c.F, c.D]), k3) : undefined,
    w2: quantize(rand([c.E, c.D, c.F]), k2),
  };
}

/** A routing, x and quantized experts for c, and the float64 layer on dequantize(q) (the
 *  reference's own dequantization, from the public fields). */
function quantFfnCase(c: QCase, dtype: DType, seed: number) {
  const r = moe.route(gridLogits(c.T, c.E, seed), { topK: c.topK });
  const x = rand([c.T, c.D], dtype);
  const w = quantExperts(c);
  const exact = ffnRef(toF64(x), asRef(r), {
    w1: dequantizeRef(w.w1),
    w3: w.w3 && dequantizeRef(w.w3),
    w2: dequantizeRef(w.w2),
    activation: c.activation,
  });
  return { r, x, w, exact };
}

/** ffn with quantized experts against the float64 layer on dequantize(q) (the reference's own
 *  dequantization, from the public fields), on every ISA. float32 x: within 1e-5 relative norm;
 *  16-bit x: within twice the error of rounding the exact result once to the dtype. */
function quantFfnCheck(c: QCase, dtype: DType, seed: number): void {
  const { r, x, w, exact: want } = quantFfnCase(c, dtype, seed);
  let tol = 1e-5;
  if (dtype !== 'float32') {
    const round =
      dtype === 'float16'
        ? (v: number) => float16ValueRef(float16BitsRef(v))
        : (v: number) => bfloat16ValueRef(bfloat16BitsRef(v));
    tol = 2 * relativeError(want.data.map(round), want.data);
  }
  forEachIsa((isa) => {
    const y = moe.ffn(x, r, { ...w, activation: c.activation });
    const label = `${isa} ${dtype} ${c.kinds.map(kindLabel).join('/')} ${JSON.stringify({ ...c, kinds: undefined })}`;
    expect(y.shape, label).toEqual([c.T, c.D]);
    expect(y.dtype, label).toBe(dtype);
    const got = y.toFloat32();
    expect(got.every(Number.isFinite), `${label}: non-finite output`).toBe(true);
    expect(relativeError(got, want.data), label).toBeLessThanOrEqual(tol);
  });
}

describe('moe.ffn with quantized experts', () => {
  const KINDS: QKind[] = [
    { bits: 8, groupSize: 0, symmetric: true },
    { bits: 8, groupSize: 32, symmetric: true },
    { bits: 8, groupSize: 128, symmetric: true },
    { bits: 4, groupSize: 32, symmetric: true },
    { bits: 4, groupSize: 32, symmetric: false },
    { bits: 4, groupSize: 128, symmetric: true },
    { bits: 4, groupSize: 128, symmetric: false },
    { bits: 4, groupSize: 0, symmetric: false },
  ];
  // D and F per group size: odd ones where the format allows (int8 per row), F not a multiple
  // of 64 (the int4 lane order declines the last chunk), several chunks per expert.
  const sizes = (k: QKind): [number, number] =>
    k.groupSize === 128 ? [128, 384] : k.groupSize === 32 ? [96, 160] : k.bits === 8 ? [33, 45] : [34, 70];
  const ACTS = ['silu', 'gelu', 'relu'] as const;
  for (const [ki, kind] of KINDS.entries())
    it(`${kindLabel(kind)}: T = 1, 3, 7, 33, with and without w3, every activation, both ISAs`, () => {
      withSeed(`ffn ${kindLabel(kind)}`, (seed) => {
        const [D, F] = sizes(kind);
        let n = 0;
        for (const T of [1, 3, 7, 33])
          for (const w3 of [true, false]) {
            const activation = ACTS[(n + ki) % 3];
            quantFfnCheck({ T, E: 8, D, F, topK: 2, w3, activation, kinds: [kind] }, 'float32', seed + n++);
          }
      });
    });

  it('mixed kinds per weight, the packed prefill path, long decode chunks', () => {
    withSeed('ffn quant mixed', (seed) => {
      const i4 = { bits: 4, groupSize: 32, symmetric: false } as const;
      const i4g128 = { bits: 4, groupSize: 128, symmetric: false } as const;
      const i8 = { bits: 8, groupSize: 0, symmetric: true } as const;
      const cases: QCase[] = [
        { T: 5, E: 8, D: 128, F: 256, topK: 2, w3: true, activation: 'silu', kinds: [i4, i8, i4g128] },
        { T: 130, E: 2, D: 64, F: 96, topK: 2, w3: true, activation: 'gelu', kinds: [i4] }, // tiles > 48 rows
        // tiles of 17-48 rows: dequantized panels, the dot variant (16 rows and fewer take the GEMV)
        { T: 60, E: 2, D: 128, F: 256, topK: 1, w3: true, activation: 'silu', kinds: [i4, i8, i4g128] },
        { T: 100, E: 2, D: 64, F: 640, topK: 1, w3: false, activation: 'relu', kinds: [i8] }, // packed, F steps
        { T: 1, E: 4, D: 128, F: 4608, topK: 2, w3: true, activation: 'silu', kinds: [i4g128] }, // 2 steps per chunk
        { T: 2, E: 4, D: 64, F: 4608, topK: 1, w3: true, activation: 'gelu', kinds: [i8] },
        { T: 64, E: 64, D: 32, F: 64, topK: 8, w3: true, activation: 'silu', kinds: [i4] }, // many small experts
        // > 64 rows in GEMV tiles: they stay in the fused tasks (w2 in column runs)
        { T: 100, E: 384, D: 32, F: 64, topK: 1, w3: true, activation: 'gelu', kinds: [i4] },
        { T: 90, E: 256, D: 33, F: 45, topK: 2, w3: false, activation: 'silu', kinds: [i8] },
      ];
      for (const [i, c] of cases.entries()) quantFfnCheck(c, 'float32', seed + i);
    });
  });

  it('float16 and bfloat16 x: at most 2x the error of rounding the exact result to the dtype', () => {
    withSeed('ffn quant 16-bit', (seed) => {
      const i4 = { bits: 4, groupSize: 32, symmetric: false } as const;
      const i8 = { bits: 8, groupSize: 0, symmetric: true } as const;
      for (const dtype of ['float16', 'bfloat16'] as DType[])
        for (const [i, T] of [1, 3, 7, 33].entries()) {
          quantFfnCheck(
            { T, E: 8, D: 96, F: 160, topK: 2, w3: true, activation: 'silu', kinds: [i4] },
            dtype,
            seed + i,
          );
          quantFfnCheck(
            { T, E: 8, D: 33, F: 45, topK: 2, w3: false, activation: 'gelu', kinds: [i8] },
            dtype,
            seed + i,
          );
        }
    });
  });

  it('is bitwise the same for 1 and 2 threads, and ffnAsync is bitwise equal', async () => {
    for (const [T, E, F, kind] of [
      [1, 8, 1024, { bits: 4, groupSize: 128, symmetric: false }],
      [3, 8, 1024, { bits: 8, groupSize: 0, symmetric: true }],
      [130, 8, 1024, { bits: 4, groupSize: 32, symmetric: true }],
      [130, 8, 1024, { bits: 8, groupSize: 32, symmetric: true }],
      [100, 256, 64, { bits: 4, groupSize: 32, symmetric: false }], // > 64 rows in GEMV tiles
    ] as [number, number, number, QKind][]) {
      const c: QCase = { T, E, D: 128, F, topK: 2, w3: true, activation: 'silu', kinds: [kind] };
      const r = moe.route(gridLogits(T, E, RUN_SEED + T), { topK: 2 });
      const x = rand([T, 128]);
      const w = quantExperts(c);
      const t0 = backend.info().cpu.threads;
      try {
        backend.setThreads(1);
        const one = moe.ffn(x, r, w);
        backend.setThreads(2);
        const two = moe.ffn(x, r, w);
        const label = `T=${T} ${kindLabel(kind)} (TEST_SEED=${RUN_SEED})`;
        expect(bits(two).equals(bits(one)), label).toBe(true);
        const outs = await Promise.all([0, 1].map(() => moe.ffnAsync(x, r, w)));
        for (const o of outs) expect(bits(o).equals(bits(two)), label).toBe(true);
      } finally {
        backend.setThreads(t0);
      }
    }
  });

  it('does not modify its inputs', () => {
    const r = moe.route(gridLogits(3, 8, RUN_SEED), { topK: 2 });
    const x = rand([3, 64]);
    const w = quantExperts({
      T: 3,
      E: 8,
      D: 64,
      F: 128,
      topK: 2,
      w3: true,
      activation: 'silu',
      kinds: [{ bits: 4, groupSize: 32, symmetric: false }],
    });
    const ts = [x, w.w1.qweight, w.w1.scales, w.w1.zeros!, w.w3!.qweight, w.w2.qweight, w.w2.scales];
    const snap = ts.map((t) => t.data().slice());
    moe.ffn(x, r, w);
    ts.forEach((t, i) => expect(t.data()).toEqual(snap[i]));
  });
});

/** ffn with activations 'int8' against ffnInt8Ref (every quantized product as W8A8 / W4A8, in
 *  float64) and against the float layer on dequantize(q): closer to the former than half the
 *  former's own error, and at most 1.5x that error from the latter. Both fail for a wrong scale,
 *  code, zero point or row. */
function int8FfnCheck(c: QCase, seed: number, dtype: DType = 'float32'): void {
  const { r, x, w, exact } = quantFfnCase(c, dtype, seed);
  const int8 = ffnInt8Ref(toF64(x), asRef(r), { ...w, activation: c.activation });
  const base = relativeError(int8.data, exact.data);
  // 16-bit x: the output is rounded to the dtype once more (about its epsilon, relative)
  const out = dtype === 'float16' ? 2 ** -11 : dtype === 'bfloat16' ? 2 ** -8 : 0;
  forEachIsa((isa) => {
    const y = moe.ffn(x, r, { ...w, activation: c.activation }, { activations: 'int8' });
    expect(y.dtype).toBe(dtype);
    const got = y.toFloat32();
    const label = `${isa} ${dtype} ${c.kinds.map(kindLabel).join('/')} ${JSON.stringify({ ...c, kinds: undefined })}`;
    expect(got.every(Number.isFinite), `${label}: non-finite output`).toBe(true);
    expect(base, `${label}: int8 error`).toBeGreaterThan(1e-4);
    expect(relativeError(got, int8.data), label).toBeLessThanOrEqual(0.5 * base + out);
    expect(relativeError(got, exact.data), label).toBeLessThanOrEqual(1.5 * base + out);
  });
}

describe("moe.ffn with activations: 'int8' (W8A8 / W4A8 experts, up to 64 routed rows)", () => {
  const i4 = { bits: 4, groupSize: 32, symmetric: false } as const;
  const i4s = { bits: 4, groupSize: 128, symmetric: true } as const;
  const i4row = { bits: 4, groupSize: 0, symmetric: false } as const;
  const i8 = { bits: 8, groupSize: 0, symmetric: true } as const;
  const i8g = { bits: 8, groupSize: 32, symmetric: true } as const;

  it('matches the int8-activation reference: int4 / int8 kinds, K on and off the 64-blocks, 1..64 rows', () => {
    withSeed('ffn int8 activations', (seed) => {
      const cases: QCase[] = [
        { T: 1, E: 8, D: 128, F: 384, topK: 2, w3: true, activation: 'silu', kinds: [i4] },
        { T: 3, E: 8, D: 128, F: 384, topK: 2, w3: true, activation: 'gelu', kinds: [i4s] },
        { T: 4, E: 8, D: 64, F: 192, topK: 2, w3: false, activation: 'relu', kinds: [i8] },
        { T: 7, E: 4, D: 96, F: 160, topK: 2, w3: true, activation: 'silu', kinds: [i4] }, // K % 64 != 0
        { T: 2, E: 8, D: 34, F: 70, topK: 2, w3: true, activation: 'silu', kinds: [i4row] },
        { T: 5, E: 8, D: 33, F: 45, topK: 2, w3: true, activation: 'gelu', kinds: [i8] },
        { T: 6, E: 8, D: 128, F: 256, topK: 2, w3: true, activation: 'silu', kinds: [i4, i8g, i4s] },
        { T: 32, E: 2, D: 128, F: 192, topK: 2, w3: true, activation: 'silu', kinds: [i4] }, // 64 rows, 4x2 blocks
        { T: 8, E: 64, D: 128, F: 128, topK: 8, w3: true, activation: 'silu', kinds: [i4s] },
      ];
      for (const [i, c] of cases.entries()) int8FfnCheck(c, seed + i);
    });
  });

  // With AVX-512 VNNI the integer products read each QTensor's strip layout (16 output rows per
  // vector, packed on first use); a process with TENSORFUSE_QUANT_STRIPS=0 reads the codes in
  // place. Same ISA, same kernels otherwise: the outputs must be bitwise equal (int4 groups of 32
  // and 128 with zero points, int8 per row; 1..24 routed rows, N = F and D multiples of 32).
  it('gives bitwise the same output with and without the strip layout', () => {
    const run = `const out = [];
      for (const [bits, groupSize, T] of [[4, 32, 1], [4, 128, 12], [8, 0, 24]]) {
        const E = 8, D = 256, F = 384;
        const q = (shape, s) => tf.quantize(tf.randn(shape, { seed: s }), { bits, groupSize });
        const w = { w1: q([E, F, D], 1), w3: q([E, F, D], 2), w2: q([E, D, F], 3) };
        const r = tf.moe.route(tf.randn([T, E], { seed: 4 }), { topK: 2 });
        const y = tf.moe.ffn(tf.randn([T, D], { seed: 5 }), r, w, { activations: 'int8' }).data();
        out.push(Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('base64'));
      }
      console.log(out.join(' '));`;
    const outs = ['1', '0'].map((v) => runInChild(run, { TENSORFUSE_QUANT_STRIPS: v }));
    expect(outs[0].split(' ')).toHaveLength(3);
    expect(outs[1]).toBe(outs[0]);
  });

  it('float16 and bfloat16 x (widened per row before quantization; output in the dtype)', () => {
    withSeed('ffn int8 activations 16-bit', (seed) => {
      for (const [i, dtype] of (['float16', 'bfloat16'] as DType[]).entries()) {
        int8FfnCheck(
          { T: 3, E: 8, D: 128, F: 256, topK: 2, w3: true, activation: 'silu', kinds: [i4] },
          seed + i,
          dtype,
        );
        int8FfnCheck(
          { T: 5, E: 4, D: 33, F: 45, topK: 2, w3: false, activation: 'gelu', kinds: [i8] },
          seed + i,
          dtype,
        );
      }
    });
  });

  // Calls of any size keep int8 activations (the phases in batches of ~256 rows): 66 rows, and
  // 400 rows in two batches with row tiles past one batch's budget, against the int8 reference.
  it('above 64 routed rows keeps int8 activations (batched phases), as the reference', () => {
    withSeed('ffn int8 activations, large', (seed) => {
      int8FfnCheck({ T: 33, E: 4, D: 64, F: 128, topK: 2, w3: true, activation: 'silu', kinds: [i4] }, seed);
      int8FfnCheck({ T: 200, E: 3, D: 96, F: 160, topK: 2, w3: true, activation: 'gelu', kinds: [i8g] }, seed + 1);
      int8FfnCheck({ T: 150, E: 8, D: 128, F: 256, topK: 2, w3: false, activation: 'relu', kinds: [i4s] }, seed + 2);
    });
  });

  it('a row of x with a NaN gives NaN in that token only; threads and ffnAsync are bitwise equal', async () => {
    const c: QCase = { T: 4, E: 8, D: 128, F: 256, topK: 2, w3: true, activation: 'silu', kinds: [i4] };
    const r = moe.route(gridLogits(c.T, c.E, RUN_SEED), { topK: 2 });
    const x = rand([c.T, c.D]);
    const w = quantExperts(c);
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      const one = moe.ffn(x, r, w, { activations: 'int8' });
      backend.setThreads(2);
      const two = moe.ffn(x, r, w, { activations: 'int8' });
      expect(bits(two).equals(bits(one)), `TEST_SEED=${RUN_SEED}`).toBe(true);
      const asyncOut = await moe.ffnAsync(x, r, w, { activations: 'int8' });
      expect(bits(asyncOut).equals(bits(two))).toBe(true);
    } finally {
      backend.setThreads(t0);
    }
    (x.data() as Float32Array)[2 * c.D + 5] = NaN;
    const y = moe.ffn(x, r, w, { activations: 'int8' }).toFloat32();
    for (let t = 0; t < c.T; t++) {
      const row = Array.from(y.subarray(t * c.D, (t + 1) * c.D));
      expect(row.every(t === 2 ? Number.isNaN : Number.isFinite), `token ${t}`).toBe(true);
    }
  });

  it('bad option values, and int8 with float experts, throw ERR_ARG naming the option', () => {
    const r = moe.route(gridLogits(2, 4, RUN_SEED), { topK: 2 });
    const x = rand([2, 64]);
    const c: QCase = { T: 2, E: 4, D: 64, F: 64, topK: 2, w3: false, activation: 'silu', kinds: [i4] };
    const w = quantExperts(c);
    for (const v of ['w4a8', 'INT8', 8, true, null, {}])
      expectError(() => moe.ffn(x, r, w, { activations: v as 'int8' }), 'ERR_ARG', "'activations'");
    expectError(() => moe.ffn(x, r, w, { activation: 'int8' } as never), 'ERR_ARG', "'activation'");
    expectError(() => moe.ffn(x, r, w, 'int8' as never), 'ERR_ARG', "'opts'");
    const wf = { w1: rand([4, 64, 64]), w2: rand([4, 64, 64]) };
    expectError(() => moe.ffn(x, r, wf, { activations: 'int8' }), 'ERR_ARG', "'activations'", 'QTensor');
  });
});

describe('moe bad input', () => {
  const logits = gridLogits(6, 8, 1);
  const r = moe.route(logits, { topK: 2 });
  const x = rand([6, 4]);
  const w1 = rand([8, 5, 4]);
  const w2 = rand([8, 4, 5]);

  it('route: logits, topK, scoring, normalize, bias, groups, scale, capacityFactor', () => {
    expectError(() => moe.route(logits.to('float16'), { topK: 2 }), 'ERR_DTYPE', "'logits'", 'float32');
    expectError(() => moe.route(rand([2, 3, 4]), { topK: 2 }), 'ERR_SHAPE', "'logits'");
    expectError(() => moe.route(rand([8]), { topK: 2 }), 'ERR_SHAPE', "'logits'");
    expectError(() => moe.route(rand([3, 0]), { topK: 1 }), 'ERR_SHAPE', "'logits'");
    expectError(() => moe.route([1, 2] as unknown as Tensor, { topK: 1 }), 'ERR_ARG', "'logits'");
    expectError(() => moe.route(logits, undefined as unknown as { topK: number }), 'ERR_ARG', 'topK');
    for (const topK of [0, 9, -1, 1.5, NaN, '2', undefined])
      expectError(() => moe.route(logits, { topK } as unknown as { topK: number }), 'ERR_ARG', "'topK'");
    expectError(() => moe.route(rand([2, 4]), { topK: 5 }), 'ERR_ARG', "'topK'");
    expectError(() => moe.route(logits, { topK: 2, scoring: 'tanh' as 'softmax' }), 'ERR_ARG', "'scoring'");
    expectError(() => moe.route(logits, { topK: 2, normalize: 1 as unknown as boolean }), 'ERR_ARG', "'normalize'");
    expectError(() => moe.route(logits, { topK: 2, bias: rand([7]) }), 'ERR_SHAPE', "'bias'", '[8]');
    expectError(() => moe.route(logits, { topK: 2, bias: rand([8, 1]) }), 'ERR_SHAPE', "'bias'");
    expectError(() => moe.route(logits, { topK: 2, bias: rand([8], 'bfloat16') }), 'ERR_DTYPE', "'bias'");
    expectError(() => moe.route(logits, { topK: 2, bias: [0] as unknown as Tensor }), 'ERR_ARG', "'bias'");
    expectError(() => moe.route(logits, { topK: 2, groups: { count: 3, topK: 1 } }), 'ERR_ARG', "'groups.count'");
    expectError(() => moe.route(logits, { topK: 2, groups: { count: 0, topK: 1 } }), 'ERR_ARG', "'groups.count'");
    expectError(() => moe.route(logits, { topK: 2, groups: { count: 4, topK: 5 } }), 'ERR_ARG', "'groups.topK'");
    expectError(() => moe.route(logits, { topK: 2, groups: { count: 4, topK: 0 } }), 'ERR_ARG', "'groups.topK'");
    expectError(() => moe.route(logits, { topK: 3, groups: { count: 4, topK: 1 } }), 'ERR_ARG', "'groups'", 'topK');
    expectError(
      () => moe.route(logits, { topK: 2, groups: 4 as unknown as { count: number; topK: number } }),
      'ERR_ARG',
      "'groups'",
    );
    expectError(
      () =>
        moe.route(logits, {
          topK: 2,
          groups: { count: 4, topK: 1, extra: 1 } as unknown as { count: number; topK: number },
        }),
      'ERR_ARG',
      'extra',
    );
    for (const scale of [NaN, Infinity, '1'])
      expectError(() => moe.route(logits, { topK: 2, scale: scale as number }), 'ERR_ARG', "'scale'");
    for (const capacityFactor of [0, -1, NaN, Infinity, '1'])
      expectError(
        () => moe.route(logits, { topK: 2, capacityFactor: capacityFactor as number }),
        'ERR_ARG',
        "'capacityFactor'",
      );
    expectError(() => moe.route(logits, { topK: 2, topk: 2 } as unknown as { topK: number }), 'ERR_ARG', 'topk');
  });

  it('align: experts, numExperts, blockSize', () => {
    expectError(() => moe.align(r.weights, { numExperts: 8, blockSize: 4 }), 'ERR_DTYPE', "'experts'");
    expectError(() => moe.align(r.experts, { numExperts: 0, blockSize: 4 }), 'ERR_ARG', "'numExperts'");
    expectError(() => moe.align(r.experts, { numExperts: 8, blockSize: 0 }), 'ERR_ARG', "'blockSize'");
    expectError(() => moe.align(r.experts, { numExperts: 8, blockSize: 2.5 }), 'ERR_ARG', "'blockSize'");
    expectError(() => moe.align(r.experts, undefined as unknown as { numExperts: 8; blockSize: 4 }), 'ERR_ARG', 'opts');
    // an id past numExperts: caught by the native check
    expectError(() => moe.align(r.experts, { numExperts: 2, blockSize: 4 }), 'ERR_ARG', "'experts'");
    expectError(
      () => moe.align(tensor(new Int32Array([0, -2]), [1, 2]), { numExperts: 2, blockSize: 4 }),
      'ERR_ARG',
      "'experts'",
    );
  });

  it('route: a scale that is finite in float64 but not usable in float32 is ERR_ARG', async () => {
    // the kernel multiplies the weights by float32(scale): 1e39 made every weight Infinity
    for (const scale of [1e39, -1e39, 3.5e38, 1e-46, -1e-46])
      expectError(() => moe.route(logits, { topK: 2, scale }), 'ERR_ARG', "'scale'", 'float32');
    await expectRejects(moe.routeAsync(logits, { topK: 2, scale: 1e39 }), 'ERR_ARG', "'scale'");
    withSeed('route scale float32 bounds', (seed) => {
      const big = 3.4e38 * (1 - (seed % 1000) * 1e-6); // finite in float32
      const w = moe.route(logits, { topK: 2, scale: big }).weights.toFloat32();
      expect(w.every((v) => Number.isFinite(v))).toBe(true);
      expect(
        moe
          .route(logits, { topK: 2, scale: 0 })
          .weights.toFloat32()
          .every((v) => v === 0),
      ).toBe(true);
    });
  });

  it('ffn: an unknown key of the weights object is ERR_ARG naming argument w', () => {
    expectError(() => moe.ffn(x, r, { w1, w2, w4: w1 } as never), 'ERR_ARG', "argument 'w'", "'w4'");
  });

  it('align: numExperts is at most 2^20 (the native pass allocates per-expert counters)', async () => {
    const two = tensor(new Int32Array([0, 1]), [1, 2]);
    for (const numExperts of [2 ** 31 - 1, 2 ** 20 + 1, 2 ** 40])
      expectError(() => moe.align(two, { numExperts, blockSize: 1 }), 'ERR_ARG', "'numExperts'", String(2 ** 20));
    await expectRejects(moe.alignAsync(two, { numExperts: 2 ** 31 - 1, blockSize: 1 }), 'ERR_ARG', "'numExperts'");
    const a = moe.align(two, { numExperts: 2 ** 20, blockSize: 1 });
    expect(a.numTokensPostPadded).toBe(2);
    expect(Array.from(a.sortedTokenIds.data())).toEqual([0, 1]);
    expect(Array.from(a.expertIds.data())).toEqual([0, 1]);
  });

  it('dispatch / combine: x, y and a Routing built for another T', () => {
    expectError(() => moe.dispatch(rand([7, 4]), r), 'ERR_SHAPE', "'r'", 'T = 6');
    expectError(() => moe.dispatch(rand([6, 4, 1]), r), 'ERR_SHAPE', "'x'");
    expectError(() => moe.dispatch(x, {} as Routing), 'ERR_ARG', "'r.weights'");
    expectError(() => moe.dispatch(x, null as unknown as Routing), 'ERR_ARG', "'r'");
    expectError(() => moe.combine(rand([r.order.size + 1, 4]), r), 'ERR_SHAPE', "'y'");
    expectError(() => moe.combine(rand([r.order.size, 4]).to('int32'), r), 'ERR_DTYPE', "'y'");
    expectError(() => moe.combine(rand([r.order.size]), r), 'ERR_SHAPE', "'y'");
  });

  it('a Routing whose tensors were swapped or corrupted', () => {
    const other = moe.route(gridLogits(9, 8, 2), { topK: 2 });
    // tensors of another routing under the first one's hidden sizes
    const hacked = r as unknown as Record<string, unknown>;
    const saved = hacked.weights;
    try {
      hacked.weights = other.weights;
      expectError(() => moe.dispatch(x, r), 'ERR_ARG', "'r'", 'no longer match');
    } finally {
      hacked.weights = saved;
    }
    const order = r.order.data().slice();
    order[0] = 10_000;
    const badOrder = { ...r, order: tensor(order, [order.length], 'int32') };
    expectError(() => moe.dispatch(x, badOrder), 'ERR_ARG', 'order');
    const dup = r.order.data().slice();
    dup[1] = dup[0];
    expectError(
      () => moe.combine(rand([dup.length, 4]), { ...r, order: tensor(dup, [dup.length], 'int32') }),
      'ERR_ARG',
      'twice',
    );
    const off = r.offsets.data().slice();
    off[2] = off[1] - 1;
    expectError(
      () => moe.ffn(x, { ...r, offsets: tensor(off, [off.length], 'int32') }, { w1, w2 }),
      'ERR_ARG',
      'offsets',
    );
    expectError(() => moe.dispatch(x, { ...r, weights: r.weights.to('float16') }), 'ERR_DTYPE', "'r.weights'");
  });

  it('a Routing whose experts, counts, offsets and order disagree (copies lose the hidden sizes)', () => {
    const I = (a: Int32Array) => tensor(a, [a.length], 'int32');
    const off = r.offsets.data() as Int32Array;
    const e0 = off.findIndex((_, e) => off[e + 1] > off[e]);
    const e1 = off.findIndex((_, e) => e > e0 && off[e + 1] > off[e]);
    expect(e1).toBeGreaterThan(e0);
    // two slots of different experts swapped in order: ffn would run them through the wrong experts
    const swapped = r.order.data().slice() as Int32Array;
    [swapped[off[e0]], swapped[off[e1]]] = [swapped[off[e1]], swapped[off[e0]]];
    for (const run of [
      () => moe.dispatch(x, { ...r, order: I(swapped) }),
      () => moe.combine(rand([r.order.size, 4]), { ...r, order: I(swapped) }),
      () => moe.ffn(x, { ...r, order: I(swapped) }, { w1, w2 }),
    ])
      expectError(run, 'ERR_ARG', "'r.order'", `routes that slot to ${e1}`);
    const ex = r.experts.data().slice() as Int32Array;
    ex.fill(99);
    expectError(
      () => moe.ffn(x, { ...r, experts: tensor(ex, [6, 2], 'int32') }, { w1, w2 }),
      'ERR_ARG',
      "'r.experts'",
      '99',
    );
    ex.fill(-1);
    expectError(
      () => moe.combine(rand([r.order.size, 4]), { ...r, experts: tensor(ex, [6, 2], 'int32') }),
      'ERR_ARG',
      "'r.order'",
    );
    const counts = r.counts.data().slice() as Int32Array;
    counts[e0]++;
    counts[e1]--;
    expectError(() => moe.dispatch(x, { ...r, counts: I(counts) }), 'ERR_ARG', "'r.counts'", `counts[${e0}]`);
    expectError(() => moe.dispatch(x, { ...r, counts: I(new Int32Array(9)) }), 'ERR_SHAPE', "'r.counts'");
    expectError(() => moe.dispatch(x, { ...r, weights: rand([6, 3]) }), 'ERR_SHAPE', "'r.experts'", '[6, 3]');
    expectError(() => moe.dispatch(x, { ...r, experts: undefined } as never), 'ERR_ARG', "'r.experts'");
  });

  it('ffn: x, weights whose E / D / F disagree, quantized experts, activation', () => {
    expectError(() => moe.ffn(rand([7, 4]), r, { w1, w2 }), 'ERR_SHAPE', "'r'", 'T = 6');
    expectError(() => moe.ffn(x.to('int32'), r, { w1, w2 }), 'ERR_DTYPE', "'x'");
    expectError(() => moe.ffn(x, r, { w1: rand([7, 5, 4]), w2 }), 'ERR_SHAPE', "'w.w1'", 'E = 7');
    expectError(() => moe.ffn(x, r, { w1: rand([8, 5, 3]), w2 }), 'ERR_SHAPE', "'w.w1'", 'D');
    expectError(() => moe.ffn(x, r, { w1: rand([8, 5]), w2 }), 'ERR_SHAPE', "'w.w1'");
    expectError(() => moe.ffn(x, r, { w1, w3: rand([8, 6, 4]), w2 }), 'ERR_SHAPE', "'w.w3'");
    expectError(() => moe.ffn(x, r, { w1, w2: rand([8, 4, 6]) }), 'ERR_SHAPE', "'w.w2'");
    expectError(() => moe.ffn(x, r, { w1, w2: rand([8, 5, 4]) }), 'ERR_SHAPE', "'w.w2'");
    expectError(() => moe.ffn(x, r, { w1, w2: rand([7, 4, 5]) }), 'ERR_SHAPE', "'w.w2'");
    expectError(() => moe.ffn(x, r, { w1: w1.to('float16'), w2 }), 'ERR_DTYPE', "'w.w1'");
    expectError(() => moe.ffn(x, r, { w1 } as unknown as { w1: Tensor; w2: Tensor }), 'ERR_ARG', "'w.w2'");
    expectError(() => moe.ffn(x, r, null as unknown as { w1: Tensor; w2: Tensor }), 'ERR_ARG', "'w'");
    expectError(() => moe.ffn(x, r, { w1, w2, activation: 'tanh' as 'silu' }), 'ERR_ARG', "'activation'");
    expectError(() => moe.ffn(x, r, { w1, w2, bias: x } as unknown as { w1: Tensor; w2: Tensor }), 'ERR_ARG', 'bias');
    const q = { kind: 'quantized', bits: 4, shape: [8, 5, 4] } as unknown as Tensor;
    for (const key of ['w3', 'w2'] as const)
      expectError(() => moe.ffn(x, r, { w1, w2, [key]: q }), 'ERR_UNSUPPORTED', `'w.${key}'`, 'QTensor');
    expectError(() => moe.ffn(x, r, { w1: q, w2: q }), 'ERR_ARG', 'w.w1');
    const dead = rand([8, 5, 4]);
    dead.dispose();
    expectError(() => moe.ffn(x, r, { w1: dead, w2 }), 'ERR_DISPOSED', 'w.w1');
  });

  it('ffn with quantized experts: shapes, E, kinds, mixing with float, disposed', () => {
    const q4 = (shape: number[]) => quantize(rand(shape), { bits: 4, groupSize: 32 });
    const q8 = (shape: number[]) => quantize(rand(shape), { bits: 8 });
    const xq = rand([6, 64]);
    const [qw1, qw3, qw2] = [q4([8, 32, 64]), q8([8, 32, 64]), q4([8, 64, 32])];
    expect(moe.ffn(xq, r, { w1: qw1, w3: qw3, w2: qw2 }).shape).toEqual([6, 64]);
    expectError(() => moe.ffn(xq, r, { w1: q4([7, 32, 64]), w2: qw2 }), 'ERR_SHAPE', "'w.w1'", 'E = 7');
    expectError(() => moe.ffn(xq, r, { w1: q4([8, 32, 32]), w2: qw2 }), 'ERR_SHAPE', "'w.w1'", 'D');
    expectError(() => moe.ffn(xq, r, { w1: q4([32, 64]), w2: qw2 }), 'ERR_SHAPE', "'w.w1'", '[E, N, K]');
    expectError(() => moe.ffn(xq, r, { w1: qw1, w3: q8([8, 64, 64]), w2: qw2 }), 'ERR_SHAPE', "'w.w3'");
    expectError(() => moe.ffn(xq, r, { w1: qw1, w3: q8([7, 32, 64]), w2: qw2 }), 'ERR_SHAPE', "'w.w3'");
    expectError(() => moe.ffn(xq, r, { w1: qw1, w2: q4([8, 32, 64]) }), 'ERR_SHAPE', "'w.w2'", '[E, D, F]');
    expectError(() => moe.ffn(xq, r, { w1: qw1, w2: q4([7, 64, 32]) }), 'ERR_SHAPE', "'w.w2'");
    // all float or all quantized
    expectError(() => moe.ffn(xq, r, { w1: qw1, w2: rand([8, 64, 32]) }), 'ERR_UNSUPPORTED', "'w.w2'");
    expectError(() => moe.ffn(xq, r, { w1: qw1, w3: rand([8, 32, 64]), w2: qw2 }), 'ERR_UNSUPPORTED', "'w.w3'");
    expectError(() => moe.ffn(xq, r, { w1: rand([8, 32, 64]), w2: qw2 }), 'ERR_UNSUPPORTED', "'w.w2'");
    // x must still be float
    expectError(() => moe.ffn(xq.to('int32'), r, { w1: qw1, w2: qw2 }), 'ERR_DTYPE', "'x'");
    // a hand-built QTensor with a bad field
    const bad = { ...qw1, scales: rand([8, 32, 3]) } as unknown as QTensor;
    expectError(() => moe.ffn(xq, r, { w1: bad, w2: qw2 }), 'ERR_SHAPE', 'w.w1.scales');
    for (const key of ['w1', 'w3', 'w2'] as const) {
      const w = { w1: q4([8, 32, 64]), w3: q8([8, 32, 64]), w2: q4([8, 64, 32]) };
      w[key].qweight.dispose();
      expectError(() => moe.ffn(xq, r, w), 'ERR_DISPOSED', `w.${key}`);
    }
  });

  it('Async twins reject with the same errors', async () => {
    await expectRejects(moe.routeAsync(logits, { topK: 9 }), 'ERR_ARG', "'topK'");
    await expectRejects(moe.ffnAsync(rand([7, 4]), r, { w1, w2 }), 'ERR_SHAPE', "'r'");
    await expectRejects(moe.dispatchAsync(rand([7, 4]), r), 'ERR_SHAPE', "'r'");
    await expectRejects(moe.combineAsync(rand([1, 4]), r), 'ERR_SHAPE', "'y'");
    await expectRejects(moe.alignAsync(r.experts, { numExperts: 2, blockSize: 4 }), 'ERR_ARG', "'experts'");
  });
});

describe('moe fuzz', () => {
  /** Returns, or throws a TensorfuseError: never anything else, never a crash. */
  function survives(fn: () => unknown): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof TensorfuseError)) throw e;
    }
  }
  const arbTensor = fc
    .record({
      shape: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 0, maxLength: 3 }),
      dtype: fc.constantFrom('float32', 'float16', 'int32'),
    })
    .map(({ shape, dtype }) => randn(shape, { dtype: dtype as DType, seed: 3 }));
  const arbJunk = fc.oneof(
    arbTensor,
    fc.anything(),
    fc.constantFrom(null, undefined, NaN, -1, 0, 2.5, { kind: 'quantized' }),
  );
  const arbRouteOpts = fc.oneof(
    fc.record(
      {
        topK: fc.oneof(fc.integer({ min: -1, max: 10 }), fc.anything()),
        scoring: fc.constantFrom('softmax', 'sigmoid', 'x', 1),
        normalize: fc.oneof(fc.boolean(), fc.anything()),
        bias: arbJunk,
        groups: fc.oneof(
          fc.record({ count: fc.integer({ min: -1, max: 9 }), topK: fc.integer({ min: -1, max: 9 }) }),
          fc.anything(),
        ),
        scale: fc.oneof(fc.double(), fc.anything()),
        capacityFactor: fc.oneof(fc.double({ min: -1, max: 4 }), fc.anything()),
      },
      { requiredKeys: [] },
    ),
    fc.anything(),
  );

  it('route / align / dispatch / combine / ffn on random arguments', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 1, max: 9 }),
        arbRouteOpts,
        arbJunk,
        arbJunk,
        arbJunk,
        (T, E, opts, a, b, c) => {
          const logits = randn([T, E], { seed: T * 10 + E });
          let r: Routing | null = null;
          survives(() => {
            r = moe.route(logits, opts as Parameters<typeof moe.route>[1]);
          });
          survives(() => moe.route(a as Tensor, opts as Parameters<typeof moe.route>[1]));
          const routing = r ?? (moe.route(randn([T, E], { seed: 1 }), { topK: 1 }) as Routing);
          survives(() => moe.align(routing.experts, { numExperts: E, blockSize: (b as number) ?? 4 }));
          survives(() => moe.align(a as Tensor, b as { numExperts: number; blockSize: number }));
          survives(() => moe.dispatch(a as Tensor, routing));
          survives(() => moe.combine(b as Tensor, routing));
          survives(() => moe.dispatch(randn([T, 3], { seed: 2 }), a as Routing));
          survives(() =>
            moe.ffn(a as Tensor, routing, { w1: b as Tensor, w3: c as Tensor, w2: b as Tensor, activation: 'silu' }),
          );
          survives(() => moe.ffn(randn([T, 4], { seed: 5 }), routing, c as { w1: Tensor; w2: Tensor }));
          survives(() =>
            moe.ffn(randn([T, 4], { seed: 5 }), routing, {
              w1: randn([E, 3, 4]),
              w2: randn([E, 4, 3]),
              w3: a as Tensor,
            }),
          );
        },
      ),
      { numRuns: 300, seed: RUN_SEED },
    );
  });
});
