/** matmul and linear against the float64 reference, on every kernel level, at odd sizes. */
import { describe, expect, it } from 'vitest';
import { backend, linear, linearAsync, matmul, matmulAsync, tensor, zeros, type DType } from 'tensorfuse';
import { linearRef, matmulRef, relativeError, toF64 } from 'tensorfuse/reference';
import { ISAS, bytesOf, forEachIsa, rand, tolerance, withSeed } from './helpers';

const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 33, 127],
  [33, 17, 1],
  [1, 300, 127],
  [127, 65, 300],
  [6, 16, 256],
  [13, 129, 257],
  [100, 33, 600],
  [1, 4100, 530], // GEMV over several K chunks and N blocks
  [257, 40, 70], // the two-phase blocked path starts above M = 256
  [301, 131, 300],
];
const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];

describe('matmul', () => {
  it('reports the kernel levels it tests', () => {
    expect(ISAS[0]).toBe('generic');
    expect(ISAS.length).toBeGreaterThanOrEqual(1);
  });

  for (const dtype of DTYPES)
    for (const transB of [false, true])
      it(`${dtype}${transB ? ' transB' : ''} matches the float64 reference at odd sizes on every ISA`, () => {
        withSeed(`matmul ${dtype}`, () => {
          for (const [M, N, K] of SIZES) {
            const a = rand([M, K], dtype);
            const b = rand(transB ? [N, K] : [K, N], dtype);
            const ref = matmulRef(toF64(a), toF64(b), transB);
            const outs: Float32Array[] = [];
            forEachIsa((isa) => {
              const c = matmul(a, b, { transB });
              expect(c.dtype).toBe(dtype);
              expect(c.shape).toEqual([M, N]);
              const got = c.toFloat32();
              expect(got.every(Number.isFinite), `${isa} ${M}x${N}x${K}: non-finite output`).toBe(true);
              const err = relativeError(got, ref.data);
              expect(err, `${isa} ${M}x${N}x${K}`).toBeLessThan(tolerance(dtype, K));
              outs.push(got);
            });
            // the fast path agrees with the scalar one as closely as with the reference
            if (outs.length > 1) expect(relativeError(outs[1], outs[0])).toBeLessThan(2 * tolerance(dtype, K));
          }
        });
      });

  it('handles batched, broadcast and vector operands like numpy', () => {
    withSeed('matmul batch', () => {
      const cases: [number[], number[]][] = [
        [
          [2, 3, 5, 7],
          [7, 4],
        ],
        [
          [3, 5, 7],
          [3, 7, 4],
        ],
        [
          [5, 7],
          [3, 7, 4],
        ],
        [
          [2, 1, 5, 7],
          [1, 3, 7, 4],
        ],
        [[7], [7, 4]],
        [[7], [2, 7, 4]],
        [[7], [3, 1, 7, 4]],
        [
          [3, 1, 1, 5, 7],
          [2, 7, 4],
        ],
        [
          [1, 2, 5, 7],
          [3, 1, 7, 4],
        ],
      ];
      for (const [as, bs] of cases) {
        const a = rand(as);
        const b = rand(bs);
        const ref = matmulRef(toF64(a), toF64(b));
        const c = matmul(a, b);
        expect(c.shape, `${as} x ${bs}`).toEqual(ref.shape);
        expect(relativeError(c.toFloat32(), ref.data)).toBeLessThan(1e-5);
      }
    });
    expect(matmul(rand([7]), rand([2, 7, 4])).shape).toEqual([2, 4]);
  });

  it('a and b broadcast along different batch dims: one strided call per outer batch, Async bitwise equal', async () => {
    // out batch [P, Q]: a varies along P, b along Q (the case that took one native call each)
    const runs = withSeed('matmul cross broadcast', () =>
      [
        [33, 65, 1, 2, 1],
        [7, 3, 5, 17, 9],
        [1, 9, 2, 3, 4],
      ].map(([P, Q, M, K, N]) => {
        const a = rand([P, 1, M, K]);
        const b = rand([1, Q, K, N]);
        const out = matmul(a, b);
        expect(out.shape).toEqual([P, Q, M, N]);
        expect(relativeError(out.toFloat32(), matmulRef(toF64(a), toF64(b)).data), `${P} ${Q}`).toBeLessThan(1e-5);
        const bt = rand([1, Q, N, K]);
        const reft = matmulRef(toF64(a), toF64(bt), true);
        expect(relativeError(matmul(a, bt, { transB: true }).toFloat32(), reft.data)).toBeLessThan(1e-5);
        return { a, b, out };
      }),
    );
    for (const { a, b, out } of runs) {
      const asy = await matmulAsync(a, b);
      expect(bytesOf(asy.toFloat32()).equals(bytesOf(out.toFloat32()))).toBe(true);
    }
    const t0 = Date.now();
    await matmulAsync(rand([512, 1, 1, 2]), rand([1, 512, 2, 1]));
    expect(Date.now() - t0, 'one async hop per outer batch, not per matrix').toBeLessThan(5000);
  });

  it('handles empty sizes (K = 0 gives zeros, M = 0 gives an empty tensor)', () => {
    const z = matmul(tensor(new Float32Array(0), [3, 0]), tensor(new Float32Array(0), [0, 4]));
    expect(z.shape).toEqual([3, 4]);
    expect([...z.toFloat32()]).toEqual(new Array(12).fill(0));
    expect(matmul(tensor(new Float32Array(0), [0, 5]), rand([5, 2])).shape).toEqual([0, 2]);
  });

  it('answers empty outputs and K = 0 at once, whatever the batch (no loop over 2^40 batches)', async () => {
    const t0 = Date.now();
    // an empty output: 2^40 batches of [1, 0] x [0, 0] (the stacked path looped natively)
    expect(matmul(zeros([2 ** 40, 1, 0]), zeros([2 ** 40, 0, 0])).shape).toEqual([2 ** 40, 1, 0]);
    // the broadcast path built one call per batch in JS
    expect(matmul(zeros([2 ** 25, 1, 1, 0]), zeros([1, 2, 0, 0])).shape).toEqual([2 ** 25, 2, 1, 0]);
    expect((await matmulAsync(zeros([2 ** 40, 1, 0]), zeros([2 ** 40, 0, 0]))).size).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    withSeed('K = 0 broadcast', (seed) => {
      // K = 0, non-empty output with a broadcast batch: zeros, computed without touching a or b
      const B = 1 + (seed % 7);
      const z = matmul(zeros([2 ** 12, 1, 3, 0]), zeros([1, B, 0, 5]));
      expect(z.shape).toEqual([2 ** 12, B, 3, 5]);
      expect(z.toFloat32().every((x) => x === 0)).toBe(true);
      // linear with K = 0: the bias in every row
      const bias = rand([5]);
      const y = linear(zeros([2 ** 10, 3, 0]), zeros([5, 0]), { bias });
      expect(y.shape).toEqual([2 ** 10, 3, 5]);
      const yb = y.toFloat32();
      const b = bias.toFloat32();
      for (let r = 0; r < 3 * 2 ** 10; r += 97)
        expect(Array.from(yb.subarray(r * 5, r * 5 + 5))).toEqual(Array.from(b));
    });
  });

  it('gives the same result for 1 and 2 threads (the reduction order does not depend on threads)', () => {
    const a = rand([70, 300]);
    const b = rand([300, 90]);
    const t0 = backend.info().cpu.threads;
    try {
      backend.setThreads(1);
      const one = matmul(a, b).toFloat32();
      backend.setThreads(2);
      const two = matmul(a, b).toFloat32();
      expect(bytesOf(two).equals(bytesOf(one))).toBe(true);
    } finally {
      backend.setThreads(t0);
    }
  });

  it('does not modify its inputs', () => {
    const a = rand([9, 20], 'float16');
    const b = rand([20, 11], 'float16');
    const a0 = a.data().slice();
    const b0 = b.data().slice();
    matmul(a, b);
    expect(a.data()).toEqual(a0);
    expect(b.data()).toEqual(b0);
  });
});

describe('linear', () => {
  for (const dtype of DTYPES)
    it(`${dtype} with and without bias matches the reference on every ISA`, () => {
      withSeed(`linear ${dtype}`, () => {
        for (const [M, N, K] of SIZES) {
          const x = rand([M, K], dtype);
          const w = rand([N, K], dtype);
          const bias = rand([N], dtype);
          const ref = linearRef(toF64(x), toF64(w), toF64(bias));
          const refNoBias = linearRef(toF64(x), toF64(w));
          // The bias can cancel x w^T (at K = 1 a single output may sit near 0), so the error is
          // measured against |x| |w|^T + |b|, the scale float32 rounding works at.
          const abs = (t: ReturnType<typeof toF64>) => ({ ...t, data: t.data.map(Math.abs) });
          const scale = linearRef(abs(toF64(x)), abs(toF64(w)), abs(toF64(bias))).data;
          const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((t, v) => t + v * v, 0));
          forEachIsa((isa) => {
            const y = linear(x, w, { bias });
            expect(y.shape).toEqual([M, N]);
            const err = (relativeError(y.toFloat32(), ref.data) * norm(ref.data)) / norm(scale);
            expect(err, `${isa} ${M}x${N}x${K}`).toBeLessThan(tolerance(dtype, K));
            const y2 = linear(x, w);
            expect(relativeError(y2.toFloat32(), refNoBias.data), `${isa} no bias`).toBeLessThan(tolerance(dtype, K));
          });
        }
      });
    });

  it('keeps leading dims of x and takes a float32 bias with 16-bit inputs', () => {
    const x = rand([2, 3, 40], 'bfloat16');
    const w = rand([24, 40], 'bfloat16');
    const bias = rand([24]);
    const y = linear(x, w, { bias });
    expect(y.shape).toEqual([2, 3, 24]);
    const ref = linearRef(toF64(x), toF64(w), toF64(bias));
    expect(relativeError(y.toFloat32(), ref.data)).toBeLessThan(tolerance('bfloat16', 40));
  });
});

describe('async twins', () => {
  it('matmulAsync and linearAsync give bitwise the sync result', async () => {
    for (const dtype of DTYPES) {
      const a = rand([37, 130], dtype);
      const b = rand([130, 41], dtype);
      const sync = matmul(a, b).data();
      const asyn = (await matmulAsync(a, b)).data();
      expect(bytesOf(asyn).equals(bytesOf(sync))).toBe(true);
      const w = rand([41, 130], dtype);
      const bias = rand([41]);
      const ls = linear(a, w, { bias }).data();
      const la = (await linearAsync(a, w, { bias })).data();
      expect(bytesOf(la).equals(bytesOf(ls))).toBe(true);
    }
  });

  it('runs many async ops at once', async () => {
    const a = rand([64, 64]);
    const b = rand([64, 64]);
    const want = matmul(a, b).data();
    const outs = await Promise.all(Array.from({ length: 16 }, () => matmulAsync(a, b)));
    for (const o of outs) expect(o.data()).toEqual(want);
  });
});
