/** prune.* and linear(x, SparseTensor) against the float64 reference, on every kernel level. */
import { describe, expect, it } from 'vitest';
import {
  Tensor,
  TensorfuseError,
  backend,
  linear,
  linearAsync,
  prune,
  tensor,
  zeros,
  type DType,
  type SparseTensor,
} from 'tensorfuse';
import {
  channelNormsRef,
  gatherRef,
  linearRef,
  pruneCompressRef,
  pruneDecompressRef,
  pruneNmRef,
  pruneScoreRef,
  relativeError,
  sparseLinearRef,
  toF64,
  topKRef,
  type Tensor64,
} from 'tensorfuse/reference';
import { ISAS, expectError, expectRejects, forEachIsa, rand, tolerance, withSeed } from './helpers';

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];
const PATTERNS: [number, number][] = [
  [2, 4],
  [1, 4],
  [4, 8],
  [1, 2],
];

function bitsEqual(a: Tensor, b: Tensor): boolean {
  const x = a.data();
  const y = b.data();
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/** The tensor's values as float64 magnitudes. */
function absF64(t: Tensor): Tensor64 {
  const r = toF64(t);
  return { data: r.data.map(Math.abs), shape: r.shape };
}

/**
 * ||got - want|| / ||scale||, scale = the same sums over magnitudes: float32 accumulation error is
 * bounded relative to sum |x_k w_k|, not to the result, which may cancel (Higham 2002, 3.1).
 */
function sumError(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num += (got[i] - want[i]) ** 2;
    den += scale[i] ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

function sparseOf(w: Tensor, n = 2, m = 4): SparseTensor {
  return prune.compress(prune.nm(w, { n, m }).weight, { n, m });
}

describe('prune.score', () => {
  for (const dtype of DTYPES)
    it(`${dtype}: magnitude and wanda match the reference`, () => {
      withSeed(`score ${dtype}`, () => {
        for (const [N, K] of [
          [1, 1],
          [7, 33],
          [33, 128],
        ]) {
          const w = rand([N, K], dtype);
          const norms = tensor(rand([K]).toFloat32().map(Math.abs), [K]);
          const mag = prune.score(w);
          expect(mag.dtype).toBe('float32');
          expect(mag.shape).toEqual([N, K]);
          expect(Array.from(mag.toFloat32())).toEqual(Array.from(pruneScoreRef(toF64(w)).data));
          const wanda = prune.score(w, { method: 'wanda', inputNorms: norms });
          // one float32 rounding of an exact product
          expect(relativeError(wanda.toFloat32(), pruneScoreRef(toF64(w), norms.toFloat32()).data)).toBeLessThan(1e-7);
        }
      });
    });
});

describe('prune.nm', () => {
  for (const dtype of DTYPES)
    for (const [n, m] of PATTERNS)
      it(`${dtype} ${n}:${m} keeps the n largest of every group, exactly like the reference`, () => {
        withSeed(`nm ${dtype} ${n}:${m}`, () => {
          for (const [N, K] of [
            [1, m],
            [7, 3 * m],
            [33, 40 * m],
          ]) {
            const w = rand([N, K], dtype);
            const { weight, mask } = prune.nm(w, { n, m });
            const ref = pruneNmRef(toF64(w), n, m);
            expect(weight.dtype).toBe(dtype);
            expect(mask.dtype).toBe('uint8');
            expect(Array.from(mask.data())).toEqual(Array.from(ref.mask));
            expect(Array.from(weight.toFloat32())).toEqual(Array.from(ref.weight.data));
            // every group has exactly n ones
            const md = mask.data();
            for (let g = 0; g < N * K; g += m) expect(md.slice(g, g + m).reduce((a, b) => a + b, 0)).toBe(n);
          }
        });
      });

  it('breaks ties toward the lower index and ranks NaN scores lowest', () => {
    const w = tensor([3, -3, 3, 1, 0, 0, 0, 0, 5, 1, 1, 1], [1, 12]);
    expect(Array.from(prune.nm(w).mask.data())).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    const scores = tensor([NaN, 1, NaN, 2, 1, 1, 1, 1, NaN, NaN, NaN, NaN], [1, 12]);
    const { mask } = prune.nm(w, { scores });
    expect(Array.from(mask.data())).toEqual([0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]);
    expect(Array.from(mask.data())).toEqual(Array.from(pruneNmRef(toF64(w), 2, 4, scores.toFloat32()).mask));
  });

  it('follows given scores (Wanda) rather than magnitudes', () => {
    withSeed('nm scores', () => {
      const w = rand([9, 64]);
      const norms = tensor(
        rand([64])
          .toFloat32()
          .map((v) => Math.abs(v) * 10),
        [64],
      );
      const scores = prune.score(w, { method: 'wanda', inputNorms: norms });
      const { weight, mask } = prune.nm(w, { scores });
      const ref = pruneNmRef(toF64(w), 2, 4, scores.toFloat32());
      expect(Array.from(mask.data())).toEqual(Array.from(ref.mask));
      expect(Array.from(weight.toFloat32())).toEqual(Array.from(ref.weight.data));
    });
  });
});

describe('prune.compress / decompress', () => {
  for (const dtype of DTYPES)
    for (const [n, m] of PATTERNS)
      it(`${dtype} ${n}:${m}: decompress(compress(w)) == w bit for bit, layout as the reference`, () => {
        withSeed(`compress ${dtype} ${n}:${m}`, () => {
          for (const [N, K] of [
            [1, m],
            [5, 7 * m],
            [17, 33 * m],
          ]) {
            const w = prune.nm(rand([N, K], dtype), { n, m }).weight;
            const s = prune.compress(w, { n, m });
            expect(Object.isFrozen(s)).toBe(true);
            expect(s.kind).toBe('sparse');
            expect([s.n, s.m]).toEqual([n, m]);
            expect(s.shape).toEqual([N, K]);
            expect(s.values.shape).toEqual([N, (K * n) / m]);
            expect(s.values.dtype).toBe(dtype);
            expect(s.indices.dtype).toBe('uint8');
            const ref = pruneCompressRef(toF64(w), n, m);
            expect(Array.from(s.indices.data())).toEqual(Array.from(ref.indices));
            expect(Array.from(s.values.toFloat32())).toEqual(Array.from(ref.values.data));
            const d = prune.decompress(s);
            expect(d.dtype).toBe(dtype);
            expect(bitsEqual(d, w)).toBe(true);
            expect(Array.from(d.toFloat32())).toEqual(
              Array.from(pruneDecompressRef(ref.values, ref.indices, K, n, m).data),
            );
          }
        });
      });

  it('keeps -0 and NaN, and pads groups with fewer than n nonzeros', () => {
    const w = tensor([-0, 0, 0, NaN, 0, 0, 0, 0, 0, 0, 7, 0], [1, 12]);
    const s = prune.compress(w);
    expect(Array.from(s.indices.data())).toEqual([0, 3, 0, 1, 0, 2]);
    const d = prune.decompress(s).toFloat32();
    expect(Object.is(d[0], -0)).toBe(true);
    expect(Number.isNaN(d[3])).toBe(true);
    expect(bitsEqual(prune.decompress(s), w)).toBe(true);
  });

  it('throws ERR_ARG naming w, the row and the group when w is not n:m sparse', () => {
    const w = tensor([1, 0, 0, 0, 1, 2, 3, 0], [2, 4]);
    expectError(() => prune.compress(w), 'ERR_ARG', "'w'", 'row 1', 'group 0', '2:4');
    expectError(() => prune.compress(rand([3, 8]), { n: 4, m: 8 }), 'ERR_ARG', "'w'", '4:8');
  });
});

describe('linear with a SparseTensor', () => {
  const SIZES: [number, number, number][] = [
    [1, 1, 4],
    [1, 7, 16],
    [2, 33, 20],
    [3, 9, 132],
    [4, 17, 36],
    [7, 65, 260],
    [16, 64, 256],
    [33, 31, 516],
    [127, 5, 48],
    [1, 300, 4100],
  ];
  for (const dtype of DTYPES)
    for (const xType of ['float32', 'same'] as const)
      it(`2:4 ${dtype} weights, x ${xType === 'same' ? dtype : 'float32'}, with and without bias, on every ISA`, () => {
        withSeed(`sparse linear ${dtype} ${xType}`, () => {
          for (const [M, N, K] of SIZES) {
            const xd: DType = xType === 'same' ? dtype : 'float32';
            const x = rand([M, K], xd);
            const s = sparseOf(rand([N, K], dtype));
            const bias = rand([N]);
            const ref = sparseLinearRef(toF64(x), toF64(s.values), s.indices.data(), 2, 4, bias.toFloat32());
            const ref0 = sparseLinearRef(toF64(x), toF64(s.values), s.indices.data());
            const scale = sparseLinearRef(absF64(x), absF64(s.values), s.indices.data(), 2, 4, absF64(bias).data);
            const outs: Float32Array[] = [];
            forEachIsa((isa) => {
              const y = linear(x, s, { bias });
              expect(y.dtype).toBe(xd);
              expect(y.shape).toEqual([M, N]);
              const got = y.toFloat32();
              expect(got.every(Number.isFinite), `${isa} ${M}x${N}x${K}: non-finite output`).toBe(true);
              expect(sumError(got, ref.data, scale.data), `${isa} ${M}x${N}x${K}`).toBeLessThan(tolerance(xd, K));
              outs.push(got);
              const y0 = linear(x, s).toFloat32();
              expect(sumError(y0, ref0.data, scale.data), `${isa} no bias`).toBeLessThan(tolerance(xd, K));
            });
            if (outs.length > 1) expect(sumError(outs[1], outs[0], scale.data)).toBeLessThan(2 * tolerance(xd, K));
          }
        });
      });

  for (const [n, m] of PATTERNS.slice(1))
    it(`${n}:${m} (general path) matches the reference and the dense linear of the decompressed weight`, () => {
      withSeed(`sparse linear ${n}:${m}`, () => {
        for (const [M, N, K] of [
          [1, 7, 8 * m],
          [5, 13, 3 * m],
          [20, 9, 17 * m],
        ]) {
          const x = rand([M, K]);
          const s = sparseOf(rand([N, K]), n, m);
          const ref = sparseLinearRef(toF64(x), toF64(s.values), s.indices.data(), n, m);
          const scale = sparseLinearRef(absF64(x), absF64(s.values), s.indices.data(), n, m);
          forEachIsa((isa) => {
            const got = linear(x, s).toFloat32();
            expect(sumError(got, ref.data, scale.data), isa).toBeLessThan(tolerance('float32', K));
          });
          const dense = linearRef(toF64(x), toF64(prune.decompress(s)));
          expect(relativeError(Float64Array.from(ref.data), dense.data)).toBeLessThan(1e-12);
        }
      });
    });

  it('takes batched x [..., K] and K = 0 / M = 0', () => {
    withSeed('sparse batch', () => {
      const x = rand([2, 3, 32]);
      const s = sparseOf(rand([5, 32]));
      const y = linear(x, s);
      expect(y.shape).toEqual([2, 3, 5]);
      const ref = sparseLinearRef(toF64(x), toF64(s.values), s.indices.data());
      expect(relativeError(y.toFloat32(), ref.data)).toBeLessThan(1e-5);
      const e = prune.compress(zeros([3, 0]));
      const b = rand([3]);
      expect(Array.from(linear(zeros([2, 0]), e, { bias: b }).toFloat32())).toEqual([
        ...b.toFloat32(),
        ...b.toFloat32(),
      ]);
      expect(linear(zeros([0, 32]), s).shape).toEqual([0, 5]);
    });
  });

  it('is bitwise deterministic across thread counts and equal to linearAsync', async () => {
    const x = rand([40, 512]);
    const x1 = rand([1, 512]);
    const s = sparseOf(rand([300, 512]));
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      const one = linear(x, s);
      const one1 = linear(x1, s);
      backend.setThreads(2);
      expect(bitsEqual(linear(x, s), one)).toBe(true);
      expect(bitsEqual(linear(x1, s), one1)).toBe(true);
      expect(bitsEqual(await linearAsync(x, s), one)).toBe(true);
      expect(bitsEqual(await linearAsync(x1, s), one1)).toBe(true);
    } finally {
      backend.setThreads(t0);
    }
  });

  it('accepts a hand-built SparseTensor and checks its indices', () => {
    const values = tensor([1, 2, 3, 4], [1, 4]);
    const good = {
      kind: 'sparse',
      n: 2,
      m: 4,
      shape: [1, 8],
      values,
      indices: tensor(new Uint8Array([0, 3, 1, 2]), [1, 4]),
    };
    const x = tensor([1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7], [1, 8]);
    expect(Array.from(linear(x, good as SparseTensor).toFloat32())).toEqual([1 + 2000 + 3e5 + 4e6]);
    const bad = { ...good, indices: tensor(new Uint8Array([3, 0, 1, 2]), [1, 4]) };
    expectError(() => linear(x, bad as SparseTensor), 'ERR_ARG', "'w'", 'increase');
    const big = { ...good, indices: tensor(new Uint8Array([0, 4, 1, 2]), [1, 4]) };
    expectError(() => linear(x, big as SparseTensor), 'ERR_ARG', "'w'");
    expectError(() => prune.decompress(big as SparseTensor), 'ERR_ARG', "'s'");
  });

  it('clamps a position written into .indices after validation to the group (no access outside it)', () => {
    // Indices are validated once per SparseTensor; a later write of an out-of-range byte must not
    // send any kernel (general n:m panels and GEMV, 2:4 tails, decompress) outside the group.
    for (const [n, m, K] of [
      [4, 8, 24],
      [2, 4, 20],
    ]) {
      const s = sparseOf(rand([5, K]), n, m);
      const x = rand([6, K]);
      linear(x, s);
      const idx = s.indices.data() as Uint8Array;
      const last = idx.length - 1; // the last value of the last group of the last row
      idx[last] = 255;
      const d = prune.decompress(s).toFloat32();
      const row = d.subarray(4 * K, 5 * K);
      expect(row[K - 1]).toBe(s.values.toFloat32()[last]); // read as position m - 1
      for (const rows of [1, 6]) {
        const xr = tensor(x.toFloat32().slice(0, rows * K), [rows, K]);
        idx[last] = m - 1;
        const want = Array.from(linear(xr, s).toFloat32());
        idx[last] = 200;
        expect(Array.from(linear(xr, s).toFloat32())).toEqual(want);
      }
    }
  });

  it('re-checks a hand-built SparseTensor that is not frozen when its fields are reassigned', () => {
    // The kernel layout used to be cached per object, frozen or not: after swapping .values and
    // .indices the 2:4 kernels read the new values at the old positions (a silent wrong answer).
    withSeed('sparse stale layout', () => {
      const K = 64;
      const a = sparseOf(rand([6, K]));
      const b = sparseOf(rand([6, K]));
      expect(Object.isFrozen(a)).toBe(true); // compress returns frozen objects, as quantize does
      const s = { kind: 'sparse' as const, n: 2, m: 4, shape: [6, K], values: a.values, indices: a.indices };
      for (const rows of [1, 3, 9]) {
        const x = rand([rows, K]);
        expect(Array.from(linear(x, s).toFloat32())).toEqual(Array.from(linear(x, a).toFloat32()));
        s.values = b.values;
        s.indices = b.indices;
        expect(Array.from(linear(x, s).toFloat32())).toEqual(Array.from(linear(x, b).toFloat32()));
        const dense = prune.decompress(s);
        expect(Array.from(dense.toFloat32())).toEqual(Array.from(prune.decompress(b).toFloat32()));
        expect(relativeError(linear(x, s).toFloat32(), linear(x, dense).toFloat32())).toBeLessThan(1e-5);
        s.values = a.values;
        s.indices = a.indices;
      }
      // and a reassigned .indices is validated again
      s.indices = tensor(new Uint8Array(6 * (K / 2)).fill(3), [6, K / 2]);
      expectError(() => linear(rand([1, K]), s), 'ERR_ARG', "'w'");
    });
  });

  it('does not modify its inputs', () => {
    const x = rand([5, 64], 'bfloat16');
    const s = sparseOf(rand([7, 64], 'bfloat16'));
    const x0 = x.data().slice();
    const v0 = s.values.data().slice();
    const i0 = s.indices.data().slice();
    linear(x, s);
    expect(x.data()).toEqual(x0);
    expect(s.values.data()).toEqual(v0);
    expect(s.indices.data()).toEqual(i0);
  });
});

describe('Async twins give bitwise the sync result', () => {
  it('score, nm, compress, decompress, channels, ffn, heads', async () => {
    const w = rand([24, 64], 'float16');
    const norms = tensor(rand([64]).toFloat32().map(Math.abs), [64]);
    expect(
      bitsEqual(
        await prune.scoreAsync(w, { method: 'wanda', inputNorms: norms }),
        prune.score(w, { method: 'wanda', inputNorms: norms }),
      ),
    ).toBe(true);
    const a = await prune.nmAsync(w, { n: 4, m: 8 });
    const b = prune.nm(w, { n: 4, m: 8 });
    expect(bitsEqual(a.weight, b.weight) && bitsEqual(a.mask, b.mask)).toBe(true);
    const sa = await prune.compressAsync(b.weight, { n: 4, m: 8 });
    const sb = prune.compress(b.weight, { n: 4, m: 8 });
    expect(bitsEqual(sa.values, sb.values) && bitsEqual(sa.indices, sb.indices)).toBe(true);
    expect(bitsEqual(await prune.decompressAsync(sa), prune.decompress(sb))).toBe(true);
    const ca = await prune.channelsAsync(w, { axis: 1, keep: 0.25 });
    const cb = prune.channels(w, { axis: 1, keep: 0.25 });
    expect(bitsEqual(ca.weight, cb.weight)).toBe(true);
    expect(ca.kept).toEqual(cb.kept);
    const w1 = rand([16, 8]);
    const w3 = rand([16, 8]);
    const w2 = rand([8, 16]);
    const fa = await prune.ffnAsync({ w1, w3, w2 }, { keep: 5 });
    const fb = prune.ffn({ w1, w3, w2 }, { keep: 5 });
    expect(bitsEqual(fa.w1, fb.w1) && bitsEqual(fa.w3!, fb.w3!) && bitsEqual(fa.w2, fb.w2)).toBe(true);
    const att = { wq: rand([16, 8]), wk: rand([8, 8]), wv: rand([8, 8]), wo: rand([8, 16]) };
    const opts = { numHeads: 4, numKvHeads: 2, headDim: 4, keep: 1 };
    const ha = await prune.headsAsync(att, opts);
    const hb = prune.heads(att, opts);
    for (const k of ['wq', 'wk', 'wv', 'wo'] as const) expect(bitsEqual(ha[k], hb[k])).toBe(true);
    expect(ha.kept).toEqual(hb.kept);
  });
});

/** x [T, D] -> silu(x w1^T) * (x w3^T) -> w2: [T, D], in float64. */
function swiglu(x: Tensor64, w1: Tensor64, w3: Tensor64, w2: Tensor64): Float64Array {
  const g = linearRef(x, w1);
  const u = linearRef(x, w3);
  const h = g.data.map((v, i) => (v / (1 + Math.exp(-v))) * u.data[i]);
  return linearRef({ data: h, shape: g.shape }, w2).data;
}

/** w with the rows (axis 0) or columns (axis 1) not in kept set to zero. */
function maskOut(w: Tensor64, axis: 0 | 1, kept: ArrayLike<number>): Tensor64 {
  const keep = new Set(Array.from(kept));
  const [R, C] = w.shape;
  const data = w.data.map((v, i) => (keep.has(axis === 0 ? Math.floor(i / C) : i % C) ? v : 0));
  return { data, shape: [R, C] };
}

describe('physical removal computes what the masked original computes', () => {
  it('channels: rows and columns by l1 / l2 / given scores; keep as count or ratio', () => {
    withSeed('channels', () => {
      for (const dtype of DTYPES) {
        const w = rand([13, 21], dtype);
        const w64 = toF64(w);
        for (const axis of [0, 1] as const)
          for (const sc of ['l1', 'l2'] as const) {
            const dim = w.shape[axis];
            for (const keep of [1, 5, dim, 0.5, 0.01]) {
              const r = prune.channels(w, { axis, keep, scores: sc });
              const count = keep < 1 ? Math.max(1, Math.round(keep * dim)) : keep;
              const kept = topKRef(channelNormsRef(w64, axis, sc === 'l1' ? 1 : 2), count);
              expect(Array.from(r.kept)).toEqual(kept);
              expect(r.weight.dtype).toBe(dtype);
              expect(Array.from(r.weight.toFloat32())).toEqual(Array.from(gatherRef(w64, axis, kept).data));
            }
          }
        const scores = tensor([5, 1, 4, 4, 0, 9, 2, 2, 2, 7, 3, 3, 8], [13]);
        expect(Array.from(prune.channels(w, { axis: 0, keep: 4, scores }).kept)).toEqual([0, 5, 9, 12]);
      }
      // pruning input channels of a layer = dropping those features of x
      const w = rand([6, 16]);
      const x = rand([3, 16]);
      const r = prune.channels(w, { axis: 1, keep: 0.5 });
      const xs = gatherRef(toF64(x), 1, r.kept);
      const small = linear(tensor(Float32Array.from(xs.data), xs.shape), r.weight).toFloat32();
      const masked = linearRef(toF64(x), maskOut(toF64(w), 1, r.kept));
      expect(relativeError(small, masked.data)).toBeLessThan(1e-6);
    });
  });

  it('ffn: a SwiGLU FFN with half its channels removed equals the masked original', () => {
    withSeed('ffn', () => {
      const [T, D, F] = [5, 12, 32];
      const x = rand([T, D]);
      const w1 = rand([F, D]);
      const w3 = rand([F, D]);
      const w2 = rand([D, F]);
      const norms = tensor(rand([D]).toFloat32().map(Math.abs), [D]);
      for (const opts of [{ keep: 0.5 }, { keep: 7, inputNorms: norms }]) {
        const p = prune.ffn({ w1, w3, w2 }, opts);
        const count = opts.keep < 1 ? F / 2 : opts.keep;
        expect(p.kept.length).toBe(count);
        expect(p.w1.shape).toEqual([count, D]);
        expect(p.w3!.shape).toEqual([count, D]);
        expect(p.w2.shape).toEqual([D, count]);
        for (let i = 1; i < p.kept.length; i++) expect(p.kept[i]).toBeGreaterThan(p.kept[i - 1]);
        const small = swiglu(toF64(x), toF64(p.w1), toF64(p.w3!), toF64(p.w2));
        const masked = swiglu(
          toF64(x),
          maskOut(toF64(w1), 0, p.kept),
          maskOut(toF64(w3), 0, p.kept),
          maskOut(toF64(w2), 1, p.kept),
        );
        expect(relativeError(small, masked)).toBeLessThan(1e-12);
        // and the native linear path agrees
        const g = linear(x, p.w1).toFloat32();
        const u = linear(x, p.w3!).toFloat32();
        const h = tensor(
          g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]),
          [T, count],
        );
        expect(relativeError(linear(h, p.w2).toFloat32(), masked)).toBeLessThan(1e-5);
      }
      // without w3 (plain MLP) the same channels go
      const q = prune.ffn({ w1, w2 }, { keep: 3 });
      expect(q.w3).toBeUndefined();
      expect(q.w1.shape).toEqual([3, D]);
    });
  });

  it('ffn and heads keep the units with the largest documented scores (random weights)', () => {
    withSeed('ffn heads scores', () => {
      const [D, F] = [24, 40];
      const w1 = toF64(rand([F, D], 'bfloat16'));
      const w3 = toF64(rand([F, D], 'bfloat16'));
      const w2 = toF64(rand([D, F], 'bfloat16'));
      const nrm = rand([D]).toFloat32().map(Math.abs);
      const t = (a: Tensor64, shape: number[]): Tensor => tensor(Float32Array.from(a.data), shape).to('bfloat16');
      const score = Array.from({ length: F }, (_, f) => {
        let a = 0;
        let b = 0;
        for (let d = 0; d < D; d++) a += (Math.abs(w1.data[f * D + d]) + Math.abs(w3.data[f * D + d])) * nrm[d];
        for (let d = 0; d < D; d++) b += Math.abs(w2.data[d * F + f]);
        return a * b;
      });
      const p = prune.ffn(
        { w1: t(w1, [F, D]), w3: t(w3, [F, D]), w2: t(w2, [D, F]) },
        { keep: 11, inputNorms: tensor(nrm, [D]) },
      );
      expect(Array.from(p.kept)).toEqual(topKRef(score, 11));
      const [Hq, Hkv, hd] = [8, 4, 3];
      const a = { wq: rand([Hq * hd, D]), wk: rand([Hkv * hd, D]), wv: rand([Hkv * hd, D]), wo: rand([D, Hq * hd]) };
      const q2 = channelNormsRef(toF64(a.wq), 0, 2).map((v) => v * v);
      const k2 = channelNormsRef(toF64(a.wk), 0, 2).map((v) => v * v);
      const v2 = channelNormsRef(toF64(a.wv), 0, 2).map((v) => v * v);
      const o2 = channelNormsRef(toF64(a.wo), 1, 2).map((v) => v * v);
      const hs = Array.from({ length: Hkv }, (_, u) => {
        let x = 0;
        for (let r = u * 2 * hd; r < (u + 1) * 2 * hd; r++) x += q2[r] + o2[r];
        for (let r = u * hd; r < (u + 1) * hd; r++) x += k2[r] + v2[r];
        return x;
      });
      expect(Array.from(prune.heads(a, { numHeads: Hq, numKvHeads: Hkv, headDim: hd, keep: 2 }).kept)).toEqual(
        topKRef(hs, 2),
      );
    });
  });

  it('ffn keeps the channels with the largest documented score', () => {
    // channel 2 reads and writes with big weights, channel 0 with small ones
    const D = 2;
    const w1 = tensor([0.1, 0.1, 1, 1, 5, 5], [3, D]);
    const w2 = tensor([0.1, 1, 5, 0.1, 1, 5], [D, 3]);
    expect(Array.from(prune.ffn({ w1, w2 }, { keep: 2 }).kept)).toEqual([1, 2]);
    // inputNorms weight the input side: feature 1 silent makes channel 1 (big on feature 1) lose
    const v1 = tensor([1, 0, 0, 9, 1, 0], [3, D]);
    const v2 = tensor([1, 1, 1, 1, 1, 1], [D, 3]);
    expect(Array.from(prune.ffn({ w1: v1, w2: v2 }, { keep: 1, inputNorms: tensor([1, 0], [2]) }).kept)).toEqual([0]);
  });

  it('heads: an attention projection (GQA) with a kv group removed equals the masked original', () => {
    withSeed('heads', () => {
      const [Hq, Hkv, hd, D, T] = [6, 3, 4, 10, 5];
      const w = { wq: rand([Hq * hd, D]), wk: rand([Hkv * hd, D]), wv: rand([Hkv * hd, D]), wo: rand([D, Hq * hd]) };
      const x = rand([T, D]);
      const p = prune.heads(w, { numHeads: Hq, numKvHeads: Hkv, headDim: hd, keep: 2 });
      expect(p.kept.length).toBe(2);
      expect(p.wq.shape).toEqual([2 * 2 * hd, D]);
      expect(p.wk.shape).toEqual([2 * hd, D]);
      expect(p.wo.shape).toEqual([D, 2 * 2 * hd]);
      const qRows: number[] = [];
      const kvRows: number[] = [];
      for (const u of p.kept) {
        for (let r = u * 2 * hd; r < (u + 1) * 2 * hd; r++) qRows.push(r);
        for (let r = u * hd; r < (u + 1) * hd; r++) kvRows.push(r);
      }
      // per-head attention over the T tokens (softmax(q k^T / sqrt(hd)) v), then wo
      const attend = (
        wq: Tensor64,
        wk: Tensor64,
        wv: Tensor64,
        wo: Tensor64,
        hq: number,
        hkv: number,
      ): Float64Array => {
        const x64 = toF64(x);
        const q = linearRef(x64, wq).data;
        const k = linearRef(x64, wk).data;
        const v = linearRef(x64, wv).data;
        const ctx = new Float64Array(T * hq * hd);
        for (let h = 0; h < hq; h++) {
          const kh = Math.floor(h / (hq / hkv));
          for (let i = 0; i < T; i++) {
            const s: number[] = [];
            for (let j = 0; j < T; j++) {
              let d = 0;
              for (let e = 0; e < hd; e++) d += q[i * hq * hd + h * hd + e] * k[j * hkv * hd + kh * hd + e];
              s.push(d / Math.sqrt(hd));
            }
            const mx = Math.max(...s);
            const p = s.map((v2) => Math.exp(v2 - mx));
            const z = p.reduce((a, b) => a + b, 0);
            for (let j = 0; j < T; j++)
              for (let e = 0; e < hd; e++) ctx[i * hq * hd + h * hd + e] += (p[j] / z) * v[j * hkv * hd + kh * hd + e];
          }
        }
        return linearRef({ data: ctx, shape: [T, hq * hd] }, wo).data;
      };
      const small = attend(toF64(p.wq), toF64(p.wk), toF64(p.wv), toF64(p.wo), 4, 2);
      // masked original: the removed groups' wo columns are zero, so their heads contribute nothing
      const masked = attend(toF64(w.wq), toF64(w.wk), toF64(w.wv), maskOut(toF64(w.wo), 1, qRows), Hq, Hkv);
      expect(relativeError(small, masked)).toBeLessThan(1e-12);
      expect(Array.from(p.wk.toFloat32())).toEqual(Array.from(gatherRef(toF64(w.wk), 0, kvRows).data));
      // MHA: units are heads
      const m = prune.heads(
        { wq: rand([4 * hd, D]), wk: rand([4 * hd, D]), wv: rand([4 * hd, D]), wo: rand([D, 4 * hd]) },
        { numHeads: 4, headDim: hd, keep: 0.5 },
      );
      expect(m.kept.length).toBe(2);
      expect(m.wk.shape).toEqual([2 * hd, D]);
    });
  });
});

describe('Wanda vs magnitude (Sun et al. 2023)', () => {
  it('with input features of very different norms, Wanda 2:4 has the lower output error', () => {
    withSeed('wanda quality', () => {
      const [T, K, N] = [64, 128, 48];
      // calibration inputs: feature j scaled by 10^(u_j), u in [-1.5, 1.5]
      const scale = Float32Array.from({ length: K }, (_, j) => 10 ** ((((j * 37) % K) / K) * 3 - 1.5));
      const xr = rand([T, K]).toFloat32();
      for (let t = 0; t < T; t++) for (let j = 0; j < K; j++) xr[t * K + j] *= scale[j];
      const x = tensor(xr, [T, K]);
      const norms = new Float32Array(K);
      for (let j = 0; j < K; j++) {
        let s = 0;
        for (let t = 0; t < T; t++) s += xr[t * K + j] ** 2;
        norms[j] = Math.sqrt(s);
      }
      const w = rand([N, K]);
      const dense = linearRef(toF64(x), toF64(w)).data;
      const err = (s: SparseTensor): number => relativeError(linear(x, s).toFloat32(), dense);
      const mag = err(prune.compress(prune.nm(w).weight));
      const scores = prune.score(w, { method: 'wanda', inputNorms: tensor(norms, [K]) });
      const wanda = err(prune.compress(prune.nm(w, { scores }).weight));
      expect(wanda).toBeLessThan(mag);
      expect(wanda).toBeLessThan(0.75 * mag);
    });
  });
});

describe('bad input: a TensorfuseError naming the argument', () => {
  const w = rand([4, 8]);
  it('n, m and K', () => {
    for (const n of [0, -1, 1.5, NaN, '2', 4, 5]) expectError(() => prune.nm(w, { n: n as number }), 'ERR_ARG', "'n'");
    for (const m of [0, 1, 2.5, NaN, 'x', 256, null])
      expectError(() => prune.nm(w, { m: m as number }), 'ERR_ARG', "'m'");
    expectError(() => prune.nm(w, { n: 3, m: 3 }), 'ERR_ARG', "'n'");
    expectError(() => prune.nm(rand([4, 6])), 'ERR_SHAPE', "'w'", 'multiple of m');
    expectError(() => prune.compress(rand([4, 6])), 'ERR_SHAPE', "'w'", 'multiple of m');
    expectError(() => prune.compress(w, { n: 2, m: 5 }), 'ERR_SHAPE', "'w'");
    expectError(() => prune.compress(w, { n: 0 }), 'ERR_ARG', "'n'");
    expectError(() => prune.nm(w, { k: 2 } as never), 'ERR_ARG', "'opts'");
  });
  it('tensors: w, scores, inputNorms, x, bias', () => {
    for (const bad of [undefined, null, 3, {}, new Float32Array(4)]) {
      expectError(() => prune.score(bad as never), 'ERR_ARG', "'w'");
      expectError(() => prune.nm(bad as never), 'ERR_ARG', "'w'");
      expectError(() => prune.compress(bad as never), 'ERR_ARG', "'w'");
      expectError(() => prune.decompress(bad as never), 'ERR_ARG', "'s'");
      expectError(() => prune.channels(bad as never, { axis: 0, keep: 1 }), 'ERR_ARG', "'w'");
    }
    expectError(() => prune.nm(rand([2, 2, 4])), 'ERR_SHAPE', "'w'");
    expectError(() => prune.nm(zeros([2, 4], { dtype: 'int8' })), 'ERR_DTYPE', "'w'");
    expectError(() => prune.nm(w, { scores: rand([4, 4]) }), 'ERR_SHAPE', "'scores'");
    expectError(() => prune.nm(w, { scores: 3 as never }), 'ERR_ARG', "'scores'");
    expectError(() => prune.score(w, { method: 'wanda' }), 'ERR_ARG', "'inputNorms'");
    expectError(() => prune.score(w, { method: 'x' as never }), 'ERR_ARG', "'method'");
    expectError(() => prune.score(w, { method: 'wanda', inputNorms: rand([7]) }), 'ERR_SHAPE', "'inputNorms'");
    expectError(
      () => prune.score(w, { method: 'wanda', inputNorms: tensor([1, 1, 1, -1, 1, 1, 1, 1], [8]) }),
      'ERR_ARG',
      "'inputNorms'",
    );
    expectError(
      () => prune.score(w, { method: 'wanda', inputNorms: tensor([1, 1, 1, NaN, 1, 1, 1, 1], [8]) }),
      'ERR_ARG',
      "'inputNorms'",
    );
    expectError(() => prune.score(w, { inputNorms: tensor(new Float32Array(8), [8]) }), 'ERR_ARG', "'inputNorms'");
    const s = sparseOf(w);
    expectError(() => linear(rand([2, 7]), s), 'ERR_SHAPE', "'w'");
    expectError(() => linear(rand([2, 8], 'float16'), s), 'ERR_DTYPE', "'x'");
    expectError(() => linear(rand([2, 8]), s, { bias: rand([3]) }), 'ERR_SHAPE', "'bias'");
    expectError(() => linear(rand([2, 8]), s, { activation: 'int8' }), 'ERR_ARG', "'activation'");
    expectError(() => linear(rand([2, 8]), { ...s, n: 4 } as SparseTensor), 'ERR_ARG', "'w'");
    expectError(() => linear(rand([2, 8]), { ...s, shape: [4, 12] } as SparseTensor), 'ERR_SHAPE', "'w'");
    expectError(() => linear(rand([2, 8]), { ...s, values: rand([4, 3]) } as SparseTensor), 'ERR_SHAPE', "'w'");
    expectError(() => linear(rand([2, 8]), { ...s, indices: s.values } as SparseTensor), 'ERR_DTYPE', "'w'", 'uint8');
    const d = sparseOf(rand([4, 8]));
    d.values.dispose();
    expectError(() => linear(rand([2, 8]), d), 'ERR_DISPOSED', 'w.values');
  });
  it('keep, axis, heads, numKvHeads', () => {
    for (const keep of [0, -1, 1.5, 9, NaN, Infinity, '1', undefined, null])
      expectError(() => prune.channels(w, { axis: 1, keep: keep as number }), 'ERR_ARG', "'keep'");
    expectError(() => prune.channels(w, { axis: 0, keep: 5 }), 'ERR_ARG', "'keep'", 'exceeds');
    for (const axis of [2, -1, '0', undefined])
      expectError(() => prune.channels(w, { axis: axis as 0, keep: 1 }), 'ERR_ARG', "'axis'");
    expectError(() => prune.channels(w, { axis: 0, keep: 1, scores: 'l3' as never }), 'ERR_ARG', "'scores'");
    expectError(() => prune.channels(w, { axis: 0, keep: 1, scores: rand([8]) }), 'ERR_SHAPE', "'scores'");
    const f = { w1: rand([6, 4]), w3: rand([6, 4]), w2: rand([4, 6]) };
    expectError(() => prune.ffn(f, { keep: 7 }), 'ERR_ARG', "'keep'");
    expectError(() => prune.ffn(f, { keep: 1, inputNorms: rand([6]) }), 'ERR_SHAPE', "'inputNorms'");
    expectError(() => prune.ffn(f, { keep: 1, inputNorms: tensor([1, -2, 1, 1], [4]) }), 'ERR_ARG', "'inputNorms'");
    expectError(() => prune.ffn({ ...f, w2: rand([6, 4]) }, { keep: 1 }), 'ERR_SHAPE', "'w2'");
    expectError(() => prune.ffn({ ...f, w3: rand([5, 4]) }, { keep: 1 }), 'ERR_SHAPE', "'w3'");
    expectError(() => prune.ffn(null as never, { keep: 1 }), 'ERR_ARG', "'w'");
    const a = { wq: rand([8, 6]), wk: rand([4, 6]), wv: rand([4, 6]), wo: rand([6, 8]) };
    expect(prune.heads(a, { numHeads: 4, numKvHeads: 2, headDim: 2, keep: 1 }).kept.length).toBe(1);
    expectError(() => prune.heads(a, { numHeads: 3, numKvHeads: 2, headDim: 2, keep: 1 }), 'ERR_ARG', "'numKvHeads'");
    expectError(() => prune.heads(a, { numHeads: 4, numKvHeads: 3, headDim: 2, keep: 1 }), 'ERR_ARG', "'numKvHeads'");
    expectError(() => prune.heads(a, { numHeads: 3, headDim: 2, keep: 1 }), 'ERR_SHAPE', "'wq'");
    expectError(() => prune.heads(a, { numHeads: 4, numKvHeads: 1, headDim: 2, keep: 1 }), 'ERR_SHAPE', "'wk'");
    expectError(
      () => prune.heads({ ...a, wo: rand([6, 6]) }, { numHeads: 4, numKvHeads: 2, headDim: 2, keep: 1 }),
      'ERR_SHAPE',
      "'wo'",
    );
    expectError(() => prune.heads(a, { numHeads: 4, numKvHeads: 2, headDim: 2, keep: 3 }), 'ERR_ARG', "'keep'");
    for (const bad of [0, -2, 1.5, NaN, 'x'])
      expectError(() => prune.heads(a, { numHeads: bad as number, headDim: 2, keep: 1 }), 'ERR_ARG', "'numHeads'");
    expectError(() => prune.heads(a, { numHeads: 4, headDim: 0, keep: 1 }), 'ERR_ARG', "'headDim'");
  });
  it('ffn and heads reject unknown keys of their weights object, as moe.ffn does', async () => {
    const f = { w1: rand([6, 4]), w3: rand([6, 4]), w2: rand([4, 6]) };
    expectError(() => prune.ffn({ ...f, w4: rand([6, 4]) } as never, { keep: 1 }), 'ERR_ARG', "'w'", "'w4'");
    expectError(() => prune.ffn({ w1: f.w1, w2: f.w2, W3: f.w3 } as never, { keep: 1 }), 'ERR_ARG', "'W3'");
    expectError(() => prune.ffn(f.w1 as never, { keep: 1 }), 'ERR_ARG', "'w'");
    const a = { wq: rand([8, 6]), wk: rand([4, 6]), wv: rand([4, 6]), wo: rand([6, 8]) };
    const opts = { numHeads: 4, numKvHeads: 2, headDim: 2, keep: 1 };
    expectError(() => prune.heads({ ...a, bias: rand([6]) } as never, opts), 'ERR_ARG', "'w'", "'bias'");
    await expectRejects(
      Promise.resolve().then(() => prune.headsAsync({ ...a, wqkv: a.wq } as never, opts)),
      'ERR_ARG',
      "'wqkv'",
    );
    await expectRejects(
      Promise.resolve().then(() => prune.ffnAsync({ ...f, extra: 1 } as never, { keep: 1 })),
      'ERR_ARG',
      "'extra'",
    );
    // the known keys still work
    expect(prune.ffn(f, { keep: 2 }).kept.length).toBe(2);
    expect(prune.heads(a, opts).kept.length).toBe(1);
  });

  it('channels / ffn / heads on sizes no buffer can hold: ERR_OOM naming the op, not a RangeError', async () => {
    const tall = zeros([2 ** 40, 0]);
    expectError(() => prune.channels(tall, { axis: 0, keep: 1 }), 'ERR_OOM', 'prune.channels');
    expectError(() => prune.ffn({ w1: tall, w2: zeros([0, 2 ** 40]) }, { keep: 1 }), 'ERR_OOM', 'prune.ffn');
    const heads = { wq: tall, wk: tall, wv: tall, wo: zeros([0, 2 ** 40]) };
    const hopts = { numHeads: 2 ** 20, numKvHeads: 2 ** 20, headDim: 2 ** 20, keep: 1 };
    expectError(() => prune.heads(heads, hopts), 'ERR_OOM', 'prune.heads');
    await expectRejects(
      Promise.resolve().then(() => prune.channelsAsync(tall, { axis: 0, keep: 1 })),
      'ERR_OOM',
      'prune.channels',
    );
  });

  it('Async twins reject the same way', async () => {
    await expectRejects(
      Promise.resolve().then(() => prune.nmAsync(w, { n: 9 })),
      'ERR_ARG',
      "'n'",
    );
    await expectRejects(
      Promise.resolve().then(() => prune.compressAsync(rand([2, 4]))),
      'ERR_ARG',
      "'w'",
    );
    await expectRejects(
      Promise.resolve().then(() => linearAsync(rand([2, 7]), sparseOf(w))),
      'ERR_SHAPE',
      "'w'",
    );
  });
});

describe('junk never crashes', () => {
  it('every prune function and linear(x, SparseTensor) throw only TensorfuseError on junk', async () => {
    const w = rand([4, 8]);
    const s = sparseOf(w);
    const junk: unknown[] = [
      undefined,
      null,
      0,
      -1,
      1.5,
      NaN,
      Infinity,
      'x',
      true,
      {},
      [],
      [1, 2],
      () => 1,
      10n,
      new Float32Array(4),
      w,
      rand([8]),
      zeros([4, 8], { dtype: 'uint8' }),
      { kind: 'sparse' },
      { ...s, indices: tensor(new Uint8Array(16).fill(9), [4, 4]) },
      { ...s, m: 2 ** 40 },
      { ...s, shape: [-4, 8] },
      s,
    ];
    const calls: ((a: unknown, b: unknown) => unknown)[] = [
      (a, b) => prune.score(a as Tensor, b as never),
      (a, b) => prune.nm(a as Tensor, b as never),
      (a, b) => prune.compress(a as Tensor, b as never),
      (a) => prune.decompress(a as SparseTensor),
      (a, b) => prune.channels(a as Tensor, b as never),
      (a, b) => prune.ffn(a as never, b as never),
      (a, b) => prune.heads(a as never, b as never),
      (a, b) => linear(a as Tensor, b as SparseTensor),
      (a, b) => linear(rand([2, 8]), a as SparseTensor, b as never),
      (a, b) => prune.nm(w, { n: a, m: b } as never),
      (a, b) => prune.channels(w, { axis: a, keep: b } as never),
      (a, b) => prune.heads({ wq: w, wk: w, wv: w, wo: rand([8, 4]) }, { numHeads: a, headDim: b, keep: 1 } as never),
      (a, b) => prune.ffn({ w1: w, w2: rand([8, 4]) }, { keep: a, inputNorms: b } as never),
      (a, b) => prune.scoreAsync(a as Tensor, b as never),
      (a) => prune.decompressAsync(a as SparseTensor),
      (a, b) => linearAsync(rand([2, 8]), a as SparseTensor, b as never),
    ];
    let thrown = 0;
    for (const call of calls)
      for (const a of junk)
        for (const b of [undefined, junk[Math.floor(Math.random() * junk.length)], { keep: 1, axis: 0 }]) {
          try {
            const r = call(a, b);
            if (r instanceof Promise) await r;
          } catch (e) {
            thrown++;
            expect(e, String(e)).toBeInstanceOf(TensorfuseError);
          }
        }
    expect(thrown).toBeGreaterThan(100);
  });
});

it('reports the kernel levels it tests', () => {
  expect(ISAS[0]).toBe('generic');
});
