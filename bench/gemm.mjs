// GEMM family: dense matmul / linear on float32, float16 and bfloat16.
//
//   native              tensorfuse matmul(a [M,K], b [K,N]) / linear(x [M,K], w [N,K]), sync
//   native (async)      the Async twin (small shapes only: shows the cost of the thread hop,
//                       which the ORT rows also pay since InferenceSession.run is async)
//   reference           lib/reference float64 (small shapes only, to show the ratio)
//   onnxruntime ...     onnxruntime-node CPU EP, graphs built in code (lib/onnx.mjs):
//                       MatMul with B as a graph input (like for like: tensorfuse gets b on each
//                       call) and with B as a constant initializer (ORT may prepack it);
//                       linear as Gemm(transB=1) with W as input and as a constant
//
// Every shape is checked before timing, at each thread count: each implementation's first output
// rows against the float64 reference, and each peer's whole output against native's; an
// implementation that fails is not timed (we never time a wrong answer).

import { DTYPE_BYTES, benchRow, rotationSets } from './lib/suite.mjs';
import { buildModel } from './lib/onnx.mjs';
import { ortSession } from './lib/peers.mjs';

export const title = 'dense matmul / linear (float32, float16, bfloat16)';

/** Checked-row tolerance against the float64 reference, by output dtype. */
const TOL = { float32: 1e-4, float16: 1e-2, bfloat16: 3e-2 };

function cases(quick) {
  const list = [
    // small: the float64 reference runs here too
    { op: 'matmul', M: 128, K: 128, N: 128, dtype: 'float32', small: true },
    { op: 'linear', M: 128, K: 128, N: 128, dtype: 'float32', small: true },
    // prefill-like, compute bound
    { op: 'matmul', M: 1024, K: 1024, N: 1024, dtype: 'float32' },
  ];
  if (!quick) list.push({ op: 'matmul', M: 2048, K: 2048, N: 2048, dtype: 'float32' });
  // decode: one weight [4096, 4096] read per call; M = 1 is bandwidth bound
  for (const op of ['matmul', 'linear'])
    for (const M of [1, 16, 128]) list.push({ op, M, K: 4096, N: 4096, dtype: 'float32' });
  // half-precision storage, float32 accumulation
  for (const dtype of ['float16', 'bfloat16']) {
    const s = quick ? 512 : 1024;
    list.push({ op: 'matmul', M: s, K: s, N: s, dtype });
    list.push({ op: 'linear', M: 1, K: 4096, N: 4096, dtype });
  }
  // bfloat16 activations and weights at prefill sizes (AMX or vdpbf16ps where the CPU has them)
  list.push({ op: 'linear', M: 128, K: 4096, N: 4096, dtype: 'bfloat16' });
  if (!quick) list.push({ op: 'linear', M: 512, K: 4096, N: 4096, dtype: 'bfloat16' });
  return list;
}

const shapeLabel = (c) => `M=${c.M} K=${c.K} N=${c.N}`;

/** float32 view of an output: a tensorfuse Tensor or an ORT tensor (float16 as Uint16 bits). */
function asFloat32(tf, out, dtype) {
  if (out instanceof tf.Tensor) return out.toFloat32();
  if (dtype === 'float32') return out.data;
  return tf
    .tensor(new Uint16Array(out.data.buffer, out.data.byteOffset, out.data.length), [...out.dims], dtype)
    .toFloat32();
}

/** The ORT graphs of a case. B / W is either the graph input 'b' or an initializer. */
function ortModel(c, variant, bData) {
  const { K, N, dtype } = c;
  const constB = variant.endsWith('const');
  const bDims = c.op === 'matmul' ? [K, N] : [N, K];
  const inputs = [{ name: 'a', dtype, dims: ['M', K] }];
  if (!constB) inputs.push({ name: 'b', dtype, dims: bDims });
  const initializers = constB ? [{ name: 'b', dtype, dims: bDims, data: bData }] : [];
  let nodes;
  if (c.op === 'matmul') nodes = [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }];
  else if (variant.startsWith('gemm'))
    nodes = [{ op: 'Gemm', inputs: ['a', 'b'], outputs: ['y'], attrs: { transB: 1 } }];
  else
    nodes = [
      { op: 'Transpose', inputs: ['b'], outputs: ['bt'], attrs: { perm: [1, 0] } },
      { op: 'MatMul', inputs: ['a', 'bt'], outputs: ['y'] },
    ];
  return buildModel({ nodes, inputs, initializers, outputs: [{ name: 'y', dtype, dims: ['M', N] }] });
}

const ORT_LABEL = {
  'matmul:input': 'onnxruntime MatMul',
  'matmul:const': 'onnxruntime MatMul (B const)',
  'gemm:input': 'onnxruntime Gemm transB',
  'gemm:const': 'onnxruntime Gemm transB (W const)',
  'transpose:input': 'onnxruntime Transpose+MatMul',
  'transpose:const': 'onnxruntime MatMul (W^T const, folded)',
};

export async function run(ctx) {
  const { tf, ref, ort } = ctx;
  const quick = ctx.opts.quick;
  const checkRows = quick ? 2 : 4;
  ctx.notes.push(
    'matmul(a [M,K], b [K,N]); linear(x [M,K], w [N,K]) = x w^T. GFLOP/s = 2MNK / t; GB/s (M = 1) = K*N*sizeof(dtype) / t, ' +
      'the weight read once. float16 / bfloat16 rows are compared with the float32 FMA peak: float16 is widened to ' +
      'float32; bfloat16 x bfloat16 runs on AMX tiles from 16 rows where the CPU has AMX-BF16 (Intel), else from 32 ' +
      'rows on vdpbf16ps where AVX512-BF16 runs at the FMA rate (AMD Zen 4 / 5; two exact products a lane, float32 ' +
      'sums), so its share can pass 100%.',
  );
  if (!ort) ctx.notes.push(`onnxruntime-node not available (${ctx.ortError}); peer rows skipped.`);
  else
    ctx.notes.push(
      'onnxruntime rows: CPU EP, intraOpNumThreads = row threads, interOpNumThreads 1, sequential, graph optimization all, ' +
        'idle workers not spinning (allow_spinning 0, lib/peers.mjs); InferenceSession.run is async, so each ORT sample includes a thread-pool hop (compare with "native (async)" on the small shapes).',
    );

  // Weights are shared by consecutive cases of the same [rows, cols, dtype] (the decode shapes),
  // and so are the ORT sessions that hold them as constants.
  let shared = { key: null, b: null, b64: null, sessions: new Map() };
  const releaseShared = async () => {
    for (const s of shared.sessions.values()) if (s?.session) await s.session.release();
    shared = { key: null, b: null, b64: null, sessions: new Map() };
  };
  const warnedOrt = new Set();

  for (const c of cases(quick)) {
    const { M, K, N, dtype, op } = c;
    const eb = DTYPE_BYTES[dtype];
    const bDims = op === 'matmul' ? [K, N] : [N, K];
    const bKey = `${bDims.join('x')}:${dtype}`;
    if (shared.key !== bKey) {
      await releaseShared();
      shared.key = bKey;
    }
    // input sets to rotate through (fit-in-cache shapes only)
    const nSets = rotationSets((M * K + K * N) * eb, ctx.llcBytes);
    const sets = [];
    for (let s = 0; s < nSets; s++) {
      const a = tf.randn([M, K], { dtype, seed: 1000 + s });
      let b;
      if (s === 0) b = shared.b ??= tf.randn(bDims, { dtype, seed: 7 });
      else b = tf.randn(bDims, { dtype, seed: 2000 + s });
      sets.push({ a, b });
    }
    const label = shapeLabel(c);
    ctx.progress(`${op} ${label} ${dtype}: preparing (${nSets} input set${nSets > 1 ? 's' : ''}), checking`);

    // ---- the float64 truth for the first rows of set 0
    const r = Math.min(M, checkRows);
    const a0 = sets[0].a;
    const b0 = sets[0].b;
    const aRows = { data: ref.toF64(a0).data.slice(0, r * K), shape: [r, K] };
    shared.b64 ??= ref.toF64(b0);
    // matmul: b [K, N]; transpose once so the reference walks memory in order (exact in float64)
    let truth;
    if (op === 'linear') truth = ref.linearRef(aRows, shared.b64);
    else {
      const bt = new Float64Array(K * N);
      const src = shared.b64.data;
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) bt[n * K + k] = src[k * N + n];
      truth = ref.matmulRef(aRows, { data: bt, shape: [N, K] }, true);
    }
    const errOf = (y) => ref.relativeError(y.subarray(0, r * N), truth.data);

    const call = op === 'matmul' ? tf.matmul : tf.linear;
    const callAsync = op === 'matmul' ? tf.matmulAsync : tf.linearAsync;
    const tol = TOL[dtype];

    // ---- the per-row implementations (threads-independent parts)
    const refSets = c.small ? { a: ref.toF64(a0), b: ref.toF64(b0) } : null;

    // ORT graph variants for this op/dtype
    const ortVariants = [];
    if (ort && dtype === 'bfloat16') {
      if (!warnedOrt.has('bf16')) {
        ctx.notes.push(
          'bfloat16 rows have no onnxruntime peer: onnxruntime-node has no bfloat16 tensor type in its JS API (onnxruntime-common).',
        );
        warnedOrt.add('bf16');
      }
    } else if (ort) {
      if (op === 'matmul') ortVariants.push('matmul:input', 'matmul:const');
      else ortVariants.push('gemm:input', 'gemm:const');
    }

    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      // native is checked at every thread count (the partitioning differs)
      const y0 = call(a0, b0);
      const nativeFull = y0.toFloat32();
      y0.dispose();
      const nativeErr = errOf(nativeFull);
      const nativeSkip = nativeErr <= tol ? null : `WRONG: rel.err ${nativeErr.toExponential(1)} > ${tol}`;
      if (nativeSkip)
        ctx.notes.push(`${op} ${label} ${dtype} thr=${threads}: native failed its check (${nativeSkip}); not timed.`);
      let i0 = 0;
      const impls = [
        {
          name: 'native',
          relErr: nativeErr,
          skip: nativeSkip,
          fn: () => {
            const s = sets[i0++ % nSets];
            call(s.a, s.b).dispose();
          },
        },
      ];
      if (c.small) {
        let i1 = 0;
        impls.push({
          name: 'native (async)',
          relErr: nativeErr,
          skip: nativeSkip,
          fn: async () => {
            const s = sets[i1++ % nSets];
            (await callAsync(s.a, s.b)).dispose();
          },
        });
        impls.push({
          name: 'reference (float64 JS)',
          relErr: 0,
          fn: op === 'matmul' ? () => ref.matmulRef(refSets.a, refSets.b) : () => ref.linearRef(refSets.a, refSets.b),
        });
      }

      for (let variant of ortVariants) {
        const skey = `${variant}:${threads}`;
        let entry = shared.sessions.get(skey);
        if (!entry) {
          const kind = variant.split(':')[1];
          entry = { variant, session: null, error: null };
          try {
            entry.session = await ortSession(
              ort,
              ortModel(c, variant, kind === 'const' ? shared.b.data() : null),
              threads,
            );
          } catch (err) {
            // e.g. no float16 Gemm kernel on this CPU EP: fall back to Transpose+MatMul
            const first = String(err?.message ?? err)
              .split('\n')[0]
              .slice(0, 160);
            if (op === 'linear' && variant.startsWith('gemm')) {
              const fb = `transpose:${kind}`;
              const noteKey = `fallback:${dtype}:${kind}`;
              if (!warnedOrt.has(noteKey)) {
                ctx.notes.push(
                  `onnxruntime Gemm ${dtype} failed to load (${first}); linear peer uses ${ORT_LABEL[fb]} instead.`,
                );
                warnedOrt.add(noteKey);
              }
              entry.variant = fb;
              try {
                entry.session = await ortSession(
                  ort,
                  ortModel(c, fb, kind === 'const' ? shared.b.data() : null),
                  threads,
                );
              } catch (err2) {
                entry.error = String(err2?.message ?? err2)
                  .split('\n')[0]
                  .slice(0, 160);
              }
            } else entry.error = first;
          }
          shared.sessions.set(skey, entry);
        }
        variant = entry.variant;
        const name = ORT_LABEL[variant];
        if (!entry.session) {
          impls.push({ name, skip: `failed to load: ${entry.error}`, fn: null });
          continue;
        }
        const constB = variant.endsWith('const');
        const feeds = sets.map((s) => {
          const f = { a: new ort.Tensor(dtype, s.a.data(), [M, K]) };
          if (!constB) f.b = new ort.Tensor(dtype, s.b.data(), bDims);
          return f;
        });
        // B const sessions hold set 0's weight: rotate only a there
        // checked once per session (thread count) and shape
        const check = (entry.checked ??= {});
        if (!(label in check)) {
          try {
            const out = (await entry.session.run(feeds[0])).y;
            const full = asFloat32(tf, out, dtype);
            const err = errOf(full);
            const agree = ref.relativeError(full, nativeFull);
            check[label] = { err, agree };
            if (agree > tol)
              ctx.notes.push(`${op} ${label} ${dtype}: ${name} differs from native (rel ${agree.toExponential(1)}).`);
          } catch (err) {
            check[label] = { err: Infinity, agree: Infinity, error: String(err?.message ?? err).split('\n')[0] };
          }
        }
        const chk = check[label];
        if (chk.error || !(chk.err <= tol)) {
          const why = chk.error ? `run failed: ${chk.error}` : `WRONG: rel.err ${chk.err.toExponential(1)} > ${tol}`;
          impls.push({ name, relErr: Number.isFinite(chk.err) ? chk.err : null, skip: why, fn: null });
          ctx.notes.push(`${op} ${label} ${dtype}: ${name} ${why}; not timed.`);
          continue;
        }
        let j = 0;
        const session = entry.session;
        impls.push({
          name,
          relErr: chk.err,
          fn: async () => {
            await session.run(feeds[j++ % feeds.length]);
          },
        });
      }

      await benchRow(
        ctx,
        {
          op,
          shape: label,
          dtype,
          threads,
          flops: 2 * M * N * K,
          bytes: M === 1 ? K * N * eb : null,
          memoryBound: M === 1,
          extra: { M, K, N, inputSets: nSets },
        },
        impls,
      );
    }
  }
  await releaseShared();
}
