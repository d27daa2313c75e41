// Quantized linear family: linear(x, QTensor) with int4 / int8 weights.
//
//   native                      tensorfuse linear(x [M,K], q) (float activations, or W8A8 with
//                               activation: 'int8', or W4A8 with activation: 'w4a8'), sync
//   native (async)              the Async twin (small shapes only)
//   tensorfuse float32 linear   the same product with the float32 weight (our dense GEMV/GEMM):
//                               what quantization saves
//   reference (float64 JS)      lib/reference quantLinearRef / w8a8Ref (small shapes only)
//   onnxruntime ...             onnxruntime-node CPU EP, graphs built in code (lib/onnx.mjs), the
//                               weight as a constant initializer: com.microsoft MatMulNBits
//                               (int4, the same block size and zero points, whose B layout is
//                               byte for byte our qweight; for W4A8 also with accuracy_level 4,
//                               its int8-activation kernels), com.microsoft DynamicQuantizeMatMul
//                               (float x quantized per tensor on the fly, int8 B [K,N] with
//                               per-column scales: the W8A8 peer) and MatMulInteger (x already
//                               int8, int32 out: the integer product alone)
//
// Every implementation is checked before timing against the float64 reference on the first rows
// (int4 / weight-only: x @ dequantize(q)^T within 1e-4; W8A8, W4A8 and the int8-activation peers:
// within 3e-2, the error of int8 activations); a wrong one is not timed. GB/s counts the bytes of the quantized
// weight as stored (qweight + scales + zeros), read once per call.
//
// Decode rows (M = 1) time our kernels twice: on one weight, as the peers run (onnxruntime keeps
// its weight as a session constant, one copy, read from cache where the cache holds it), and on
// rotated weights, "from memory" (BENCH.md: a model's weights do not stay in cache from one token
// to the next): frozen copies of the QTensor and of the float32 weight, as many as rotationSets
// asks for (about 3x the last-level cache in all), one per call in turn, each called once before
// timing (its kernel and strip layouts are built at its first call).

import { benchRow, rotationSets } from './lib/suite.mjs';
import { buildModel } from './lib/onnx.mjs';
import { ortSession } from './lib/peers.mjs';

export const title = 'quantized linear (int4 / int8 weights, W8A8, W4A8)';

const MS = { domain: 'com.microsoft', version: 1 };

function cases() {
  const list = [
    // small: the float64 reference runs too
    { kind: 'int4', M: 4, K: 256, N: 256, gs: 32, small: true },
    { kind: 'w8a8', M: 4, K: 256, N: 256, gs: 0, small: true },
    { kind: 'w4a8', M: 4, K: 256, N: 256, gs: 32, small: true },
    // decode, K = N = 4096: memory bound
    { kind: 'int4', M: 1, K: 4096, N: 4096, gs: 32 },
    { kind: 'int4', M: 1, K: 4096, N: 4096, gs: 128 },
    { kind: 'int8', M: 1, K: 4096, N: 4096, gs: 0 },
    { kind: 'w8a8', M: 1, K: 4096, N: 4096, gs: 0 },
    { kind: 'w4a8', M: 1, K: 4096, N: 4096, gs: 32 },
    { kind: 'w4a8', M: 1, K: 4096, N: 4096, gs: 128 },
    // prefill
    { kind: 'int4', M: 16, K: 4096, N: 4096, gs: 128 },
    { kind: 'w4a8', M: 16, K: 4096, N: 4096, gs: 128 },
    { kind: 'w8a8', M: 128, K: 4096, N: 4096, gs: 0 },
    { kind: 'w4a8', M: 128, K: 4096, N: 4096, gs: 128 },
    // the issue's other prefill point for int4 with float activations
    { kind: 'int4', M: 128, K: 4096, N: 4096, gs: 128 },
  ];
  return list;
}

const KIND_LABEL = { int4: 'int4 weight-only', int8: 'int8 weight-only', w8a8: 'W8A8', w4a8: 'W4A8 (int4, int8 x)' };
const isInt4 = (c) => c.kind === 'int4' || c.kind === 'w4a8';

/** A frozen copy of a Tensor in storage of its own. */
function copyTensor(tf, t) {
  return t ? tf.tensor(t.data().slice(), [...t.shape], t.dtype) : undefined;
}

/**
 * n - 1 frozen copies of QTensor q in storage of their own after q itself (frozen: the kernels'
 * layout, and the strip layout of the int8-activation paths, are cached for each as for q).
 */
function qCopies(tf, q, n) {
  const out = [q];
  for (let i = 1; i < n; i++) {
    const c = { kind: 'quantized', bits: q.bits, groupSize: q.groupSize, symmetric: q.symmetric };
    c.shape = Object.freeze([...q.shape]);
    c.qweight = copyTensor(tf, q.qweight);
    c.scales = copyTensor(tf, q.scales);
    if (q.zeros) c.zeros = copyTensor(tf, q.zeros);
    out.push(Object.freeze(c));
  }
  return out;
}

/** Bytes of a QTensor as stored. */
function qBytes(q) {
  return q.qweight.size + q.scales.size * 4 + (q.zeros ? q.zeros.size : 0);
}

/** The peer graphs of a case: [{ name, model, feed(x) }]. */
function ortGraphs(c, q) {
  const { K, N } = c;
  const out = [];
  const y = [{ name: 'y', dtype: 'float32', dims: ['M', N] }];
  if (isInt4(c)) {
    const G = K / c.gs;
    const zp = new Uint8Array(N * Math.ceil(G / 2));
    const z = q.zeros.data();
    for (let n = 0; n < N; n++)
      for (let g = 0; g < G; g++) zp[n * Math.ceil(G / 2) + (g >> 1)] |= z[n * G + g] << ((g & 1) * 4);
    // accuracy_level 4: x quantized to int8 per block inside MatMulNBits (ORT's W4A8 kernels)
    for (const level of c.kind === 'w4a8' ? [0, 4] : [0]) {
      out.push({
        name: `onnxruntime MatMulNBits (bits 4, block ${c.gs}${level ? ', accuracy_level 4' : ''})`,
        model: buildModel({
          nodes: [
            {
              op: 'MatMulNBits',
              domain: 'com.microsoft',
              inputs: ['x', 'B', 'scales', 'zp'],
              outputs: ['y'],
              attrs: { K, N, bits: 4, block_size: c.gs, ...(level ? { accuracy_level: level } : {}) },
            },
          ],
          inputs: [{ name: 'x', dtype: 'float32', dims: ['M', K] }],
          initializers: [
            { name: 'B', dtype: 'uint8', dims: [N, G, c.gs / 2], data: q.qweight.data() },
            { name: 'scales', dtype: 'float32', dims: [N * G], data: q.scales.data() },
            { name: 'zp', dtype: 'uint8', dims: [zp.length], data: zp },
          ],
          outputs: y,
          domains: [MS],
        }),
        tol: level ? 3e-2 : 1e-4,
      });
    }
    return out;
  }
  // int8: B [K, N] (ONNX MatMul layout) and per-column scales
  const qd = q.qweight.data();
  const bt = new Int8Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bt[k * N + n] = qd[n * K + k];
  out.push({
    name: 'onnxruntime DynamicQuantizeMatMul',
    model: buildModel({
      nodes: [{ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: ['x', 'B', 'bs'], outputs: ['y'] }],
      inputs: [{ name: 'x', dtype: 'float32', dims: ['M', K] }],
      initializers: [
        { name: 'B', dtype: 'int8', dims: [K, N], data: bt },
        { name: 'bs', dtype: 'float32', dims: [N], data: q.scales.data() },
      ],
      outputs: y,
      domains: [MS],
    }),
    tol: 3e-2,
  });
  // MatMulInteger: x quantized to uint8 (zero point 128) beforehand, as the integer core alone
  out.push({
    name: 'onnxruntime MatMulInteger (x pre-quantized)',
    integer: true,
    model: buildModel({
      nodes: [{ op: 'MatMulInteger', inputs: ['xq', 'B', 'xz'], outputs: ['yi'] }],
      inputs: [{ name: 'xq', dtype: 'uint8', dims: ['M', K] }],
      initializers: [
        { name: 'B', dtype: 'int8', dims: [K, N], data: bt },
        { name: 'xz', dtype: 'uint8', dims: [], data: new Uint8Array([128]) },
      ],
      outputs: [{ name: 'yi', dtype: 'int32', dims: ['M', N] }],
    }),
    tol: 3e-2,
  });
  return out;
}

/** x [M, K] float32 -> uint8 (x / s + 128), s per tensor; for the MatMulInteger peer. */
function quantizeU8(x) {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const s = amax / 127 || 1;
  const q = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) q[i] = Math.round(x[i] / s) + 128;
  return { q, s };
}

export async function run(ctx) {
  const { tf, ref, ort } = ctx;
  ctx.notes.push(
    'quant: linear(x [M,K], q [N,K]); GFLOP/s = 2MNK / t whatever the storage; GB/s = bytes of the stored quantized weight ' +
      '(qweight + float32 scales + uint8 zeros) / t, so the float32 row shows how much faster the quantized read is, not its own bandwidth.',
  );
  ctx.notes.push(
    "quant: decode rows (M = 1) also time 'native, weights from memory' and the float32 linear likewise: frozen copies " +
      'of the weight, about 3x the last-level cache in all, one per call in turn, so each call streams its weight from ' +
      'memory as a decode step of a model does; the other rows (and onnxruntime, whose weight is a session constant) ' +
      'read one weight, from cache where the cache holds it.',
  );
  if (!ort) ctx.notes.push(`onnxruntime-node not available (${ctx.ortError}); quant peer rows skipped.`);
  else
    ctx.notes.push(
      'quant: onnxruntime sessions run with session.intra_op.allow_spinning = 0 (idle ORT workers spinning on the other core ' +
        'slowed the next implementation 1.4-1.8x on this 2-core box); each ORT sample still includes its async thread hop.',
    );
  let wShared = null;
  for (const c of cases()) {
    const { M, K, N } = c;
    if (!wShared || wShared.shape[0] !== N || wShared.shape[1] !== K) wShared = tf.randn([N, K], { seed: 7 });
    const w = wShared;
    const q = isInt4(c) ? tf.quantize(w, { bits: 4, groupSize: c.gs }) : tf.quantize(w, { bits: 8, groupSize: c.gs });
    const opts = c.kind === 'w8a8' ? { activation: 'int8' } : c.kind === 'w4a8' ? { activation: 'w4a8' } : {};
    const nSets = c.small ? 8 : M === 1 ? 4 : 1;
    const xs = Array.from({ length: nSets }, (_, s) => tf.randn([M, K], { seed: 100 + s }));
    // decode: weights rotated (see the top of the file)
    const qs = qCopies(tf, q, M === 1 ? rotationSets(qBytes(q), ctx.llcBytes) : 1);
    // every copy called once before timing: its kernel layout (and, for 'int8' / 'w4a8', its
    // strip layout) is built at its first call, which is not what a decode step costs
    if (qs.length > 1) for (const c of qs) tf.linear(xs[0], c, opts).dispose();
    const ws = [w];
    for (let i = 1; i < (M === 1 ? rotationSets(N * K * 4, ctx.llcBytes) : 1); i++) ws.push(copyTensor(tf, w));
    const label = `M=${M} K=${K} N=${N}${c.gs ? ` g${c.gs}` : ''}`;
    ctx.progress(`${KIND_LABEL[c.kind]} ${label}: checking`);
    const r = Math.min(M, 2);
    const xRows = { data: ref.toF64(xs[0]).data.slice(0, r * K), shape: [r, K] };
    const truth = ref.quantLinearRef(xRows, q);
    const errOf = (y) => ref.relativeError(y.subarray(0, r * N), truth.data);
    const tolNative = c.kind === 'w8a8' || c.kind === 'w4a8' ? 3e-2 : 1e-4;
    const graphs = ort ? ortGraphs(c, q) : [];
    const sessions = new Map();

    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      const nativeErr = errOf(tf.linear(xs[0], q, opts).data());
      const skip = nativeErr <= tolNative ? null : `WRONG: rel.err ${nativeErr.toExponential(1)}`;
      let i0 = 0;
      let i1 = 0;
      let i2 = 0;
      const impls = [
        { name: 'native', relErr: nativeErr, skip, fn: () => tf.linear(xs[i0++ % nSets], q, opts) },
        {
          name: 'tensorfuse float32 linear',
          relErr: ref.relativeError(
            tf
              .linear(xs[0], w)
              .data()
              .subarray(0, r * N),
            truth.data,
          ),
          fn: () => tf.linear(xs[i1++ % nSets], w),
        },
      ];
      if (qs.length > 1) {
        let i3 = 0;
        let i4 = 0;
        impls.push({
          name: 'native, weights from memory',
          relErr: nativeErr,
          skip,
          fn: () => tf.linear(xs[i3 % nSets], qs[i3++ % qs.length], opts),
        });
        impls.push({
          name: 'tensorfuse float32 linear, weights from memory',
          relErr: impls[1].relErr,
          fn: () => tf.linear(xs[i4 % nSets], ws[i4++ % ws.length]),
        });
      }
      if (c.small) {
        impls.push({
          name: 'native (async)',
          relErr: nativeErr,
          skip,
          fn: async () => tf.linearAsync(xs[i2++ % nSets], q, opts),
        });
        const x64 = ref.toF64(xs[0]);
        impls.push({
          name: 'reference (float64 JS)',
          relErr: 0,
          fn: c.kind === 'w8a8' || c.kind === 'w4a8' ? () => ref.w8a8Ref(x64, q) : () => ref.quantLinearRef(x64, q),
        });
      }
      for (const g of graphs) {
        const key = `${g.name}:${threads}`;
        if (!sessions.has(key)) {
          try {
            sessions.set(key, { session: await ortSession(ort, g.model, threads) });
          } catch (err) {
            sessions.set(key, {
              error: String(err?.message ?? err)
                .split('\n')[0]
                .slice(0, 160),
            });
          }
        }
        const e = sessions.get(key);
        if (!e.session) {
          impls.push({ name: g.name, skip: `failed to load: ${e.error}`, fn: null });
          continue;
        }
        const feeds = xs.map((x) => {
          if (!g.integer) return { x: new ort.Tensor('float32', x.data(), [M, K]) };
          const { q: xq, s } = quantizeU8(x.data());
          return { xq: new ort.Tensor('uint8', xq, [M, K]), s };
        });
        let relErr;
        try {
          const res = await e.session.run(g.integer ? { xq: feeds[0].xq } : feeds[0]);
          let y;
          if (g.integer) {
            const yi = res.yi.data;
            const sc = q.scales.data();
            y = new Float32Array(r * N);
            for (let m = 0; m < r; m++) for (let n = 0; n < N; n++) y[m * N + n] = yi[m * N + n] * feeds[0].s * sc[n];
          } else y = res.y.data;
          relErr = errOf(y);
        } catch (err) {
          impls.push({ name: g.name, skip: `run failed: ${String(err?.message ?? err).split('\n')[0]}`, fn: null });
          continue;
        }
        if (!(relErr <= g.tol)) {
          impls.push({ name: g.name, relErr, skip: `WRONG: rel.err ${relErr.toExponential(1)}`, fn: null });
          continue;
        }
        let j = 0;
        const session = e.session;
        impls.push({
          name: g.name,
          relErr,
          fn: async () => {
            const f = feeds[j++ % feeds.length];
            await session.run(g.integer ? { xq: f.xq } : f);
          },
        });
      }
      await benchRow(
        ctx,
        {
          op: KIND_LABEL[c.kind],
          shape: label,
          dtype: isInt4(c) ? 'int4' : 'int8',
          threads,
          flops: 2 * M * N * K,
          bytes: qBytes(q),
          memoryBound: M === 1,
          extra: { M, K, N, groupSize: c.gs },
        },
        impls,
      );
    }
    for (const e of sessions.values()) if (e.session) await e.session.release();
    for (const c of qs.slice(1)) for (const t of [c.qweight, c.scales, c.zeros]) t?.dispose();
    for (const t of ws.slice(1)) t.dispose();
  }
}
