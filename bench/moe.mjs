// MoE family: routing and the fused expert layer (float32 experts).
//
//   route rows       native moe.route vs the float64 TS reference (lib/reference routeRef);
//                    throughput in tokens/s (in the notes and in latest.json as tokensPerSec)
//   ffn rows         native moe.ffn (routing precomputed, timed separately in the route rows)
//                    vs  dense GEMM of the same total work: linear(x [T*topK, D], w [3F, D]),
//                        the rate the fused layer is measured against (GFLOP/s ratio)
//                    vs  user loop: what a user writes with the public API: dispatch, then per
//                        expert linear(w1), linear(w3), SiLU(g) * u in JS, linear(w2), then combine
//                    vs  reference (float64 JS) on the small shape only
//
//   ffn int4 / int8  quantized experts (stacked QTensors):
//     decode rows    T = 1..4, E = 8, topK = 2, D = 4096, F = 14336 (Mixtral 8x7B), int4 g128
//                    (zero points) and int8 (per row): native moe.ffn vs the user loop over the public
//                    API with quantized linear (dispatch, linear(x, sliceExpert(q, e)) per expert,
//                    combine); GB/s = packed bytes (codes + float32 scales + uint8 zeros) of the
//                    routed experts only, read once, against the bandwidth probe. The codes are
//                    random bytes (quantize of 1.4 G float weights would dominate the run); the
//                    check is against the user loop. "native, activations: 'int8'" is moe.ffn with
//                    int8 activations (W4A8 / W8A8 experts; its error is int8's, checked only
//                    against gross errors).
//     prefill row    T = 512 on the Mixtral-like shape below (full run only): quantized native vs
//                    the float32 ffn on the same (unquantized) weights; checked against the float
//                    ffn on dequantize(q).
//
// Every implementation is checked before it is timed: native and the user loop against the float64
// truth on the first tokens (computed here slot by slot), route against routeRef in full.
// FLOPs: 2 * T * topK * D * F * 3 (BENCH.md); the dense row does exactly that many.
import { randomFillSync } from 'node:crypto';
import { benchRow } from './lib/suite.mjs';

export const title = 'mixture of experts: routing and the fused expert layer (float32, int4 / int8 experts)';

const ROUTE_CASES = [
  { label: 'T=4096 E=64 topK=2 softmax', T: 4096, E: 64, opts: { topK: 2 } },
  {
    label: 'T=4096 E=256 topK=8 groups 8/4 sigmoid+bias scale 2.5',
    T: 4096,
    E: 256,
    opts: { topK: 8, scoring: 'sigmoid', groups: { count: 8, topK: 4 }, scale: 2.5 },
    bias: true,
  },
];

function ffnCases(quick) {
  const list = [
    { label: 'small T=32 E=8 topK=2 D=128 F=256', T: 32, E: 8, topK: 2, D: 128, F: 256, small: true },
    {
      label: 'Mixtral-like T=512 E=8 topK=2 D=1024 F=2816',
      T: 512,
      E: 8,
      topK: 2,
      D: 1024,
      F: 2816,
      prefillQuant: true,
    },
    { label: 'DeepSeek-like T=256 E=64 topK=6 D=1024 F=512', T: 256, E: 64, topK: 6, D: 1024, F: 512 },
  ];
  if (!quick)
    list.push({ label: 'decode T=4 E=64 topK=6 D=1024 F=512', T: 4, E: 64, topK: 6, D: 1024, F: 512, decode: true });
  return list;
}

/** float64 truth of out[t] for the first `n` tokens, slot by slot. */
function truthRows(r, x, w, n) {
  const [T, topK] = r.weights.shape;
  const D = x.shape[1];
  const F = w.w1.shape[1];
  const ex = r.experts.data();
  const wt = r.weights.data();
  const xd = x.data();
  const w1 = w.w1.data();
  const w3 = w.w3.data();
  const w2 = w.w2.data();
  const rows = Math.min(n, T);
  const out = new Float64Array(rows * D);
  const h = new Float64Array(F);
  for (let t = 0; t < rows; t++)
    for (let j = 0; j < topK; j++) {
      const e = ex[t * topK + j];
      if (e < 0) continue;
      for (let f = 0; f < F; f++) {
        let g = 0;
        let u = 0;
        const o = (e * F + f) * D;
        for (let d = 0; d < D; d++) {
          g += w1[o + d] * xd[t * D + d];
          u += w3[o + d] * xd[t * D + d];
        }
        h[f] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let d = 0; d < D; d++) {
        let y = 0;
        const o = (e * D + d) * F;
        for (let f = 0; f < F; f++) y += w2[o + f] * h[f];
        out[t * D + d] += wt[t * topK + j] * y;
      }
    }
  return out;
}

/** The loop a user writes with the public API (see the header). */
function userLoop(tf, x, r, views) {
  const xs = tf.moe.dispatch(x, r);
  const D = x.shape[1];
  const off = r.offsets.data();
  const ys = new Float32Array(xs.size);
  const xsd = xs.data();
  for (let e = 0; e < views.length; e++) {
    const n = off[e + 1] - off[e];
    if (n === 0) continue;
    const xe = tf.tensor(xsd.subarray(off[e] * D, off[e + 1] * D), [n, D]);
    const g = tf.linear(xe, views[e].w1).data();
    const u = tf.linear(xe, views[e].w3).data();
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const y = tf.linear(tf.tensor(g, [n, views[e].w1.shape[0]]), views[e].w2);
    ys.set(y.data(), off[e] * D);
  }
  return tf.moe.combine(tf.tensor(ys, [xs.shape[0], D]), r);
}

/** The user loop with quantized experts: dispatch, per expert linear(x, sliceExpert(q, e)) x 3 and
 *  SiLU * mul in JS, combine. */
function userLoopQ(tf, x, r, w) {
  const xs = tf.moe.dispatch(x, r);
  const D = x.shape[1];
  const F = w.w1.shape[1];
  const off = r.offsets.data();
  const ys = new Float32Array(xs.size);
  const xsd = xs.data();
  for (let e = 0; e < off.length - 1; e++) {
    const n = off[e + 1] - off[e];
    if (n === 0) continue;
    const xe = tf.tensor(xsd.subarray(off[e] * D, off[e + 1] * D), [n, D]);
    const g = tf.linear(xe, tf.sliceExpert(w.w1, e)).data();
    const u = tf.linear(xe, tf.sliceExpert(w.w3, e)).data();
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const y = tf.linear(tf.tensor(g, [n, F]), tf.sliceExpert(w.w2, e));
    ys.set(y.data(), off[e] * D);
  }
  return tf.moe.combine(tf.tensor(ys, [xs.shape[0], D]), r);
}

/**
 * A stacked QTensor [E, N, K] of random codes (hand-built: moe.ffn takes any well-formed QTensor),
 * scales around `s` so activations stay in range; int4 with zero points, int8 per row.
 */
function randomQTensor(tf, E, N, K, kind, s, seed) {
  const bits = kind === 'int4' ? 4 : 8;
  const groupSize = kind === 'int4' ? 128 : 0;
  const G = groupSize ? K / groupSize : 1;
  const codes = bits === 4 ? new Uint8Array((E * N * K) / 2) : new Int8Array(E * N * K);
  randomFillSync(codes);
  if (bits === 8) for (let i = 0; i < codes.length; i++) if (codes[i] === -128) codes[i] = 0;
  const scales = new Float32Array(E * N * G);
  let st = seed >>> 0 || 1;
  for (let i = 0; i < scales.length; i++) {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    scales[i] = s * (0.5 + (st >>> 0) / 2 ** 32);
  }
  const zeros = bits === 4 ? new Uint8Array(E * N * G).fill(8) : null;
  // frozen, as quantize's own: its layout is checked once and cached, not on every call
  return Object.freeze({
    kind: 'quantized',
    bits,
    groupSize,
    symmetric: bits === 8,
    shape: [E, N, K],
    qweight: tf.tensor(codes, [E, N, bits === 4 ? K / 2 : K], bits === 4 ? 'uint8' : 'int8'),
    scales: tf.tensor(scales, [E, N, G], 'float32'),
    ...(zeros ? { zeros: tf.tensor(zeros, [E, N, G], 'uint8') } : {}),
  });
}

/** Bytes of expert e's part of a QTensor (codes + scales + zeros). */
function expertBytes(q) {
  const [E] = q.shape;
  return (q.qweight.size + 4 * q.scales.size + (q.zeros ? q.zeros.size : 0)) / E;
}

async function quantDecode(ctx) {
  const { tf, ref } = ctx;
  const [E, topK, D, F] = [8, 2, 4096, 14336];
  for (const kind of ['int4', 'int8']) {
    ctx.progress(`ffn ${kind} decode: building E=${E} D=${D} F=${F} experts`);
    const w = {
      w1: randomQTensor(tf, E, F, D, kind, 0.1 / Math.sqrt(D), 31),
      w3: randomQTensor(tf, E, F, D, kind, 0.1 / Math.sqrt(D), 32),
      w2: randomQTensor(tf, E, D, F, kind, 0.1 / Math.sqrt(F), 33),
    };
    const perExpert = expertBytes(w.w1) + expertBytes(w.w3) + expertBytes(w.w2);
    for (const T of [1, 2, 3, 4]) {
      const label = `decode T=${T} E=${E} topK=${topK} D=${D} F=${F} ${kind === 'int4' ? 'int4 g128 zp' : 'int8'}`;
      // rotate routings and inputs so consecutive calls hit other experts, as decode steps do
      const sets = Array.from({ length: 4 }, (_, i) => {
        const r = tf.moe.route(tf.randn([T, E], { seed: 40 + 7 * i + T }), { topK });
        return { r, x: tf.randn([T, D], { seed: 50 + i }), hit: [...r.counts.data()].filter((n) => n > 0).length };
      });
      const meanHit = sets.reduce((a, st) => a + st.hit, 0) / sets.length;
      for (const threads of ctx.opts.threads) {
        tf.backend.setThreads(threads);
        const { r, x } = sets[0];
        const yu = userLoopQ(tf, x, r, w).toFloat32();
        const nErr = ref.relativeError(tf.moe.ffn(x, r, w).toFloat32(), yu);
        const skip = nErr <= 1e-4 ? null : `WRONG: rel.err ${nErr.toExponential(1)} against the user loop`;
        if (skip) ctx.notes.push(`ffn ${label} thr=${threads}: native ${skip}; not timed.`);
        // int8 activations (an API extension, W4A8 / W8A8): its error is that of int8 activations,
        // so it is checked against the float user loop only for gross errors.
        const i8Err = ref.relativeError(tf.moe.ffn(x, r, w, { activations: 'int8' }).toFloat32(), yu);
        const i8Skip = i8Err <= 5e-2 ? null : `WRONG: rel.err ${i8Err.toExponential(1)} against the user loop`;
        let i0 = 0;
        let i1 = 0;
        let i2 = 0;
        const impls = [
          {
            name: 'native',
            relErr: nErr,
            skip,
            fn: () => {
              const st = sets[i0++ % sets.length];
              return tf.moe.ffn(st.x, st.r, w);
            },
          },
          {
            name: "native, activations: 'int8'",
            relErr: i8Err,
            skip: i8Skip,
            fn: () => {
              const st = sets[i2++ % sets.length];
              return tf.moe.ffn(st.x, st.r, w, { activations: 'int8' });
            },
          },
          {
            name: 'user loop (quantized linear)',
            relErr: 0,
            fn: () => {
              const st = sets[i1++ % sets.length];
              return userLoopQ(tf, st.x, st.r, w);
            },
          },
        ];
        const first = ctx.rows.length;
        await benchRow(
          ctx,
          {
            op: 'moe.ffn',
            shape: label,
            dtype: `float32 x ${kind}`,
            threads,
            flops: 2 * T * topK * D * F * 3,
            bytes: meanHit * perExpert,
            memoryBound: true,
            extra: { T, E, topK, D, F, kind },
          },
          impls,
        );
        const made = ctx.rows.slice(first);
        const nat = made.find((row) => row.impl === 'native' && row.medianMs !== undefined);
        const nat8 = made.find((row) => row.impl.startsWith('native,') && row.medianMs !== undefined);
        const user = made.find((row) => row.impl.startsWith('user') && row.medianMs !== undefined);
        const bw = ctx.limits?.bw?.[threads];
        const share = (row) =>
          bw ? ` = ${((100 * row.gbs) / bw).toFixed(0)}% of the start probe's ${bw.toFixed(1)} GB/s` : '';
        if (nat)
          ctx.notes.push(
            `ffn ${label} thr=${threads}: ${meanHit} routed experts, ${((meanHit * perExpert) / 1e6).toFixed(0)} MB packed; ` +
              `native ${nat.gbs.toFixed(1)} GB/s${share(nat)}` +
              (user ? `; ${(user.medianMs / nat.medianMs).toFixed(2)}x the user loop` : '') +
              (nat8
                ? `; with int8 activations ${nat8.gbs.toFixed(1)} GB/s${share(nat8)}, rel.err ${i8Err.toExponential(1)}`
                : '') +
              '.',
          );
      }
    }
  }
}

async function quantPrefill(ctx, c, w, r, x) {
  const { tf, ref } = ctx;
  const { T, E, topK, D, F } = c;
  for (const kind of ['int4', 'int8']) {
    const opts = kind === 'int4' ? { bits: 4, groupSize: 128 } : { bits: 8 };
    const wq = { w1: tf.quantize(w.w1, opts), w3: tf.quantize(w.w3, opts), w2: tf.quantize(w.w2, opts) };
    const wd = { w1: tf.dequantize(wq.w1), w3: tf.dequantize(wq.w3), w2: tf.dequantize(wq.w2) };
    const label = `prefill T=${T} E=${E} topK=${topK} D=${D} F=${F} ${kind === 'int4' ? 'int4 g128 zp' : 'int8'}`;
    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      const nErr = ref.relativeError(tf.moe.ffn(x, r, wq).toFloat32(), tf.moe.ffn(x, r, wd).toFloat32());
      const skip =
        nErr <= 1e-4 ? null : `WRONG: rel.err ${nErr.toExponential(1)} against the float ffn on dequantize(q)`;
      if (skip) ctx.notes.push(`ffn ${label} thr=${threads}: native ${skip}; not timed.`);
      const impls = [
        { name: 'native', relErr: nErr, skip, fn: () => tf.moe.ffn(x, r, wq) },
        { name: 'float32 ffn (same weights)', relErr: null, fn: () => tf.moe.ffn(x, r, w) },
      ];
      const first = ctx.rows.length;
      await benchRow(
        ctx,
        {
          op: 'moe.ffn',
          shape: label,
          dtype: `float32 x ${kind}`,
          threads,
          flops: 2 * T * topK * D * F * 3,
          extra: { T, E, topK, D, F, kind },
        },
        impls,
      );
      const made = ctx.rows.slice(first);
      const nat = made.find((row) => row.impl === 'native' && row.medianMs !== undefined);
      const fl = made.find((row) => row.impl.startsWith('float32') && row.medianMs !== undefined);
      if (nat && fl)
        ctx.notes.push(
          `ffn ${label} thr=${threads}: native ${nat.gflops.toFixed(1)} GFLOP/s = ${((100 * nat.gflops) / fl.gflops).toFixed(0)}% ` +
            `of the float32 ffn's ${fl.gflops.toFixed(1)}.`,
        );
    }
  }
}

export async function run(ctx) {
  const { tf, ref } = ctx;
  const quick = ctx.opts.quick;
  ctx.notes.push(
    'moe.ffn FLOPs = 2*T*topK*D*F*3 (SwiGLU: w1, w3, w2). "dense GEMM (same work)" is linear(x [T*topK, D], w [3F, D]): ' +
      'one GEMM with exactly those FLOPs, the rate the fused layer aims at. "user loop" = dispatch + per expert ' +
      'linear(w1), linear(w3), SiLU*mul in JS, linear(w2) + combine over the public API. The routing is computed once ' +
      'outside the ffn rows (its cost is the route rows).',
  );

  // ---- route
  for (const c of ROUTE_CASES) {
    const logits = tf.randn([c.T, c.E], { seed: 11 });
    const opts = { ...c.opts };
    if (c.bias) opts.bias = tf.randn([c.E], { seed: 12 });
    const refOpts = { ...opts, bias: opts.bias ? opts.bias.data() : undefined };
    const l64 = ref.toF64(logits);
    const want = ref.routeRef(l64, refOpts);
    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      const got = tf.moe.route(logits, opts);
      const sameExperts = got.experts.data().every((v, i) => v === want.experts[i]);
      const err = ref.relativeError(got.weights.data(), want.weights);
      const skip =
        sameExperts && err < 1e-5
          ? null
          : `WRONG: experts ${sameExperts ? 'agree' : 'differ'}, weights rel.err ${err.toExponential(1)}`;
      if (skip) ctx.notes.push(`route ${c.label} thr=${threads}: native failed its check (${skip}); not timed.`);
      const impls = [
        { name: 'native', relErr: err, skip, fn: () => tf.moe.route(logits, opts) },
        { name: 'reference (float64 JS)', relErr: 0, fn: () => ref.routeRef(l64, refOpts) },
      ];
      const first = ctx.rows.length;
      await benchRow(
        ctx,
        { op: 'moe.route', shape: c.label, dtype: 'float32', threads, flops: NaN, extra: { T: c.T, E: c.E } },
        impls,
      );
      const made = ctx.rows.slice(first).filter((row) => row.medianMs !== undefined);
      for (const row of made) row.tokensPerSec = c.T / (row.medianMs / 1e3);
      const nat = made.find((row) => row.impl === 'native');
      const rf = made.find((row) => row.impl !== 'native');
      if (nat && rf)
        ctx.notes.push(
          `route ${c.label} thr=${threads}: native ${(nat.tokensPerSec / 1e6).toFixed(2)} M tokens/s, ` +
            `reference ${(rf.tokensPerSec / 1e6).toFixed(3)} M tokens/s (x${(rf.medianMs / nat.medianMs).toFixed(1)}).`,
        );
    }
  }

  // ---- ffn
  for (const c of ffnCases(quick)) {
    const { T, E, topK, D, F } = c;
    ctx.progress(`ffn ${c.label}: preparing`);
    const logits = tf.randn([T, E], { seed: 21 });
    const r = tf.moe.route(logits, { topK });
    const x = tf.randn([T, D], { seed: 22 });
    const s = 1 / Math.sqrt(D);
    const scaled = (shape, seed, k) => {
      const t = tf.randn(shape, { seed });
      const d = t.data();
      for (let i = 0; i < d.length; i++) d[i] *= k;
      return t;
    };
    const w = {
      w1: scaled([E, F, D], 23, s),
      w3: scaled([E, F, D], 24, s),
      w2: scaled([E, D, F], 25, 1 / Math.sqrt(F)),
    };
    const views = [];
    for (let e = 0; e < E; e++)
      views.push({
        w1: tf.tensor(w.w1.data().subarray(e * F * D, (e + 1) * F * D), [F, D]),
        w3: tf.tensor(w.w3.data().subarray(e * F * D, (e + 1) * F * D), [F, D]),
        w2: tf.tensor(w.w2.data().subarray(e * D * F, (e + 1) * D * F), [D, F]),
      });
    const xd = tf.randn([T * topK, D], { seed: 26 });
    const wd = tf.randn([3 * F, D], { seed: 27 });
    const hitExperts = [...r.counts.data()].filter((n) => n > 0).length;
    const nCheck = c.small ? T : 2;
    const truth = truthRows(r, x, w, nCheck);
    const errOf = (y) => ref.relativeError(y.toFloat32().subarray(0, nCheck * D), truth);
    const tol = 1e-4;
    const refArgs = c.small
      ? {
          x: ref.toF64(x),
          r: { T, topK, E, weights: r.weights.data(), offsets: r.offsets.data(), order: r.order.data() },
          w: { w1: ref.toF64(w.w1), w3: ref.toF64(w.w3), w2: ref.toF64(w.w2) },
        }
      : null;
    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      const nErr = errOf(tf.moe.ffn(x, r, w));
      const uErr = errOf(userLoop(tf, x, r, views));
      const bad = (e) => (e <= tol ? null : `WRONG: rel.err ${e.toExponential(1)} > ${tol}`);
      const impls = [
        { name: 'native', relErr: nErr, skip: bad(nErr), fn: () => tf.moe.ffn(x, r, w) },
        { name: 'dense GEMM (same work)', relErr: null, fn: () => tf.linear(xd, wd) },
        { name: 'user loop (public API)', relErr: uErr, skip: bad(uErr), fn: () => userLoop(tf, x, r, views) },
      ];
      if (c.small)
        impls.push({
          name: 'reference (float64 JS)',
          relErr: 0,
          fn: () => ref.ffnRef(refArgs.x, refArgs.r, refArgs.w),
        });
      for (const i of impls)
        if (i.skip) ctx.notes.push(`ffn ${c.label} thr=${threads}: ${i.name} ${i.skip}; not timed.`);
      const first = ctx.rows.length;
      await benchRow(
        ctx,
        {
          op: 'moe.ffn',
          shape: c.label,
          dtype: 'float32',
          threads,
          flops: 2 * T * topK * D * F * 3,
          // decode: bandwidth bound; count the weights of the experts actually routed to, read once
          bytes: c.decode ? hitExperts * 3 * F * D * 4 : null,
          memoryBound: !!c.decode,
          extra: { T, E, topK, D, F },
        },
        impls,
      );
      const made = ctx.rows.slice(first);
      const nat = made.find((row) => row.impl === 'native' && row.medianMs !== undefined);
      const dense = made.find((row) => row.impl.startsWith('dense') && row.medianMs !== undefined);
      const user = made.find((row) => row.impl.startsWith('user') && row.medianMs !== undefined);
      if (nat && dense && user)
        ctx.notes.push(
          `ffn ${c.label} thr=${threads}: native ${nat.gflops.toFixed(1)} GFLOP/s = ${((100 * nat.gflops) / dense.gflops).toFixed(0)}% ` +
            `of the dense GEMM's ${dense.gflops.toFixed(1)}; ${(user.medianMs / nat.medianMs).toFixed(2)}x the user loop.`,
        );
    }
    if (c.prefillQuant && !quick) await quantPrefill(ctx, c, w, r, x);
  }

  // ---- ffn with quantized experts: decode
  await quantDecode(ctx);
}
