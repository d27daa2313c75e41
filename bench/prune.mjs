// Prune family: 2:4 sparse linear against the dense linear of the same weight, and a SwiGLU FFN
// with half its intermediate channels removed (prune.ffn) against the unpruned one.
//
//   native              tensorfuse linear(x [M,K], prune.compress(w) ) (the sparse kernel), sync
//   native (async)      the Async twin (small shape only: the cost of the thread hop)
//   dense linear        tensorfuse linear(x, w) with the masked dense weight (the GEMM engine)
//   reference           lib/reference sparseLinearRef, float64 JS (small shape only)
//   ffn rows            silu(x w1^T) * (x w3^T) -> w2 with tensorfuse linear; "native" is the
//                       pruned FFN (F/2 channels), "unpruned" the original (same code, 2x the work)
//
// Every implementation is checked before timing against the float64 reference on its first rows
// at each thread count; one that fails is not timed. GFLOP/s credit the dense count 2MNK (BENCH.md:
// a sparse kernel's GFLOP/s then shows the speed-up directly); GB/s on the M = 1 rows count the
// bytes the sparse kernel reads (values + 2 bytes of pair ids per 8 values), so the dense row's
// GB/s column understates what it streams (by 8 / 4.25 for float32).

import { DTYPE_BYTES, benchRow } from './lib/suite.mjs';

export const title = 'structured pruning: 2:4 sparse linear, channel-pruned FFN';

const TOL = { float32: 1e-4, float16: 1e-2, bfloat16: 3e-2 };

function cases(quick) {
  const list = [{ M: 4, K: 256, N: 256, dtype: 'float32', small: true }];
  for (const M of quick ? [1, 128] : [1, 16, 128]) list.push({ M, K: 4096, N: 4096, dtype: 'float32' });
  if (!quick) for (const dtype of ['float16', 'bfloat16']) list.push({ M: 1, K: 4096, N: 4096, dtype });
  return list;
}

/** float64 truth of the first r rows of x against the compressed weight. */
function truthRows(ref, x, s, r) {
  const K = x.shape[1];
  const x64 = ref.toF64(x);
  const rows = { data: x64.data.slice(0, r * K), shape: [r, K] };
  return ref.sparseLinearRef(rows, ref.toF64(s.values), s.indices.data());
}

async function linearRows(ctx) {
  const { tf, ref } = ctx;
  let shared = { key: null };
  for (const c of cases(ctx.opts.quick)) {
    const { M, K, N, dtype } = c;
    const key = `${N}x${K}:${dtype}`;
    if (shared.key !== key) {
      ctx.progress(`prune ${key}: pruning and compressing the weight`);
      const w = tf.randn([N, K], { dtype, seed: 7 });
      const pruned = tf.prune.nm(w).weight;
      shared = { key, pruned, s: tf.prune.compress(pruned) };
    }
    const { pruned, s } = shared;
    const x = tf.randn([M, K], { dtype, seed: 11 });
    const r = Math.min(M, 2);
    const truth = truthRows(ref, x, s, r);
    const errOf = (y) => ref.relativeError(y.toFloat32().subarray(0, r * N), truth.data);
    const tol = TOL[dtype];
    const label = `2:4 M=${M} K=${K} N=${N}`;
    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      const check = (name, y) => {
        const e = errOf(y);
        return { relErr: e, skip: e <= tol ? null : `WRONG: rel.err ${e.toExponential(1)} > ${tol}` };
      };
      const sparseChk = check('native', tf.linear(x, s));
      const denseChk = check('dense', tf.linear(x, pruned));
      const impls = [
        { name: 'native', ...sparseChk, fn: () => tf.linear(x, s).dispose() },
        { name: 'dense linear (same weight, GEMM engine)', ...denseChk, fn: () => tf.linear(x, pruned).dispose() },
      ];
      if (c.small) {
        impls.push({ name: 'native (async)', ...sparseChk, fn: async () => (await tf.linearAsync(x, s)).dispose() });
        const x64 = ref.toF64(x);
        const v64 = ref.toF64(s.values);
        const idx = s.indices.data();
        impls.push({ name: 'reference (float64 JS)', relErr: 0, fn: () => ref.sparseLinearRef(x64, v64, idx) });
      }
      await benchRow(
        ctx,
        {
          op: 'linear',
          shape: label,
          dtype,
          threads,
          flops: 2 * M * N * K,
          bytes: M === 1 ? ((N * K) / 2) * (DTYPE_BYTES[dtype] + 0.25) : null,
          memoryBound: M === 1,
          extra: { M, K, N, n: 2, m: 4 },
        },
        impls,
      );
    }
  }
}

/** A SwiGLU FFN on tensorfuse linear: [T, D] -> [T, D]. */
function ffnForward(tf, x, w1, w3, w2) {
  const g = tf.linear(x, w1);
  const u = tf.linear(x, w3);
  const gd = g.data();
  const ud = u.data();
  for (let i = 0; i < gd.length; i++) gd[i] = (gd[i] / (1 + Math.exp(-gd[i]))) * ud[i];
  u.dispose();
  const y = tf.linear(g, w2);
  g.dispose();
  return y;
}

async function ffnRows(ctx) {
  const { tf, ref } = ctx;
  const [D, F] = ctx.opts.quick ? [1024, 2816] : [2048, 5632];
  ctx.progress(`prune ffn D=${D} F=${F}: pruning half the channels`);
  const w1 = tf.randn([F, D], { seed: 21 });
  const w3 = tf.randn([F, D], { seed: 22 });
  const w2 = tf.randn([D, F], { seed: 23 });
  const p = tf.prune.ffn({ w1, w3, w2 }, { keep: 0.5 });
  ctx.notes.push(
    `ffn rows: SwiGLU D=${D} F=${F} float32 (three linear calls + silu*up in JS); native = prune.ffn(keep 0.5), ` +
      `F=${p.kept.length} channels; GFLOP/s count the unpruned 2*T*D*F*3 for both.`,
  );
  for (const T of [1, 32]) {
    const x = tf.randn([T, D], { seed: 31 });
    // check: the pruned FFN equals the unpruned one with the dropped channels masked, on row 0
    const x0 = tf.tensor(x.toFloat32().slice(0, D), [1, D]);
    const keep = new Set(p.kept);
    const mask = (w, axis) => {
      const d = w.toFloat32();
      const [R, C] = w.shape;
      for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (!keep.has(axis === 0 ? i : j)) d[i * C + j] = 0;
      return tf.tensor(d, [R, C]);
    };
    const maskedOut = ffnForward(tf, x0, mask(w1, 0), mask(w3, 0), mask(w2, 1)).toFloat32();
    const pruned0 = ffnForward(tf, x0, p.w1, p.w3, p.w2).toFloat32();
    const agree = ref.relativeError(pruned0, maskedOut);
    for (const threads of ctx.opts.threads) {
      tf.backend.setThreads(threads);
      await benchRow(
        ctx,
        {
          op: 'ffn (SwiGLU)',
          shape: `T=${T} D=${D} F=${F} -> ${p.kept.length}`,
          dtype: 'float32',
          threads,
          flops: 2 * T * D * F * 3,
          bytes: T === 1 ? 3 * D * F * 4 : null,
          memoryBound: T === 1,
          extra: { T, D, F, keptF: p.kept.length },
        },
        [
          {
            name: 'native',
            relErr: agree,
            skip: agree <= 1e-4 ? null : `WRONG: differs from masked FFN (${agree.toExponential(1)})`,
            fn: () => ffnForward(tf, x, p.w1, p.w3, p.w2).dispose(),
          },
          { name: 'unpruned FFN', fn: () => ffnForward(tf, x, w1, w3, w2).dispose() },
        ],
      );
    }
  }
}

export async function run(ctx) {
  ctx.notes.push(
    'linear rows: the weight is prune.nm(randn) (2:4, magnitude); native = linear(x, prune.compress(w)), ' +
      'dense = linear(x, w) on the same pruned weight stored dense. GB/s (M = 1) = bytes of values + positions / t.',
  );
  await linearRows(ctx);
  await ffnRows(ctx);
}
