/** attention(): every option against the float64 reference, on every kernel level. */
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backend, tensor, zeros, type Tensor } from 'tensorfuse';
import {
  attentionRef,
  bfloat16BitsRef,
  bfloat16ValueRef,
  float16BitsRef,
  float16ValueRef,
  relativeError,
  type AttentionRef,
} from 'tensorfuse/reference';
import type { AttentionOptions } from '../lib/ops/attention.js';

import { bytesOf, expectError, expectRejects, forEachIsa, rand, withSeed } from './helpers.js';

function qkv(B: number, Sq: number, Sk: number, Hq: number, Hk: number, D: number, layout = 'bshd', dtype = 'float32') {
  const dt = dtype as 'float32';
  if (layout === 'bhsd') return [rand([B, Hq, Sq, D], dt), rand([B, Hk, Sk, D], dt), rand([B, Hk, Sk, D], dt)];
  return [rand([B, Sq, Hq, D], dt), rand([B, Sk, Hk, D], dt), rand([B, Sk, Hk, D], dt)];
}

/** Runs native (every ISA) with returnLse and checks out and lse against the reference. */
function check(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions, label: string, tol = 1e-5): AttentionRef {
  const ref = attentionRef(q, k, v, opts);
  forEachIsa((isa) =>
    withSeed(`${label} ${isa}`, () => {
      const { out, lse } = attention(q, k, v, { ...opts, returnLse: true });
      expect(out.shape).toEqual(q.shape);
      const o = out.toFloat32();
      for (const x of o) if (!Number.isFinite(x)) throw new Error(`non-finite output ${x}`);
      expect(relativeError(o, ref.out)).toBeLessThan(tol);
      const l = lse.data() as Float32Array;
      for (let i = 0; i < l.length; i++) {
        if (ref.lse[i] === -Infinity) expect(l[i]).toBe(-Infinity);
        else expect(Math.abs(l[i] - ref.lse[i])).toBeLessThan(1e-4 * (1 + Math.abs(ref.lse[i])));
      }
    }),
  );
  return ref;
}

describe('attention: float32 against the float64 reference', () => {
  it('head dims, layouts, GQA and MQA', () => {
    for (const [B, Sq, Sk, Hq, Hk, D] of [
      [1, 1, 1, 1, 1, 1],
      [2, 7, 7, 2, 1, 7],
      [1, 33, 33, 4, 4, 64],
      [2, 13, 40, 4, 2, 80],
      [1, 127, 127, 2, 1, 96],
      [1, 40, 70, 3, 3, 128],
      [1, 9, 9, 2, 2, 256],
      [1, 100, 100, 8, 1, 32],
    ])
      for (const layout of ['bshd', 'bhsd'] as const) {
        const [q, k, v] = qkv(B, Sq, Sk, Hq, Hk, D, layout);
        check(q, k, v, { layout }, `B${B} Sq${Sq} Sk${Sk} Hq${Hq} Hk${Hk} D${D} ${layout}`);
      }
  });
  it('causal, bottom-right aligned when Sq != Sk, and custom scale', () => {
    for (const [Sq, Sk] of [
      [50, 50],
      [7, 60],
      [60, 20],
      [1, 33],
      [100, 100],
    ]) {
      const [q, k, v] = qkv(2, Sq, Sk, 4, 2, 64);
      check(q, k, v, { causal: true }, `causal ${Sq}x${Sk}`);
      check(q, k, v, { causal: true, scale: 0.3 }, `causal scale ${Sq}x${Sk}`);
    }
    // G = 6, 780 group rows: several row blocks at every level (384 rows, 768 with AVX-512)
    const [q, k, v] = qkv(1, 130, 150, 12, 2, 48);
    check(q, k, v, { causal: true }, 'causal over several row blocks');
    check(q, k, v, { window: [40, 3] }, 'window over several row blocks');
  });
  it('sliding windows', () => {
    const [q, k, v] = qkv(1, 70, 90, 2, 1, 32);
    for (const window of [
      [8, 0],
      [16, -1],
      [-1, 5],
      [3, 3],
      [0, 0],
    ] as [number, number][]) {
      check(q, k, v, { window }, `window ${window}`);
      check(q, k, v, { window, causal: true }, `window ${window} causal`);
    }
  });
  it('float and boolean masks broadcast over batch and heads', () => {
    const [B, S, H, D] = [2, 21, 3, 16];
    const [q, k, v] = qkv(B, S, S, H, H, D);
    const bits = new Uint8Array(B * S * S).map((_, i) => ((i * 7919) % 5 === 0 ? 0 : 1));
    const boolMask = tensor(bits, [B, 1, S, S], 'uint8');
    check(q, k, v, { mask: boolMask }, 'bool mask [B,1,S,S]');
    check(q, k, v, { mask: rand([S, S]) }, 'float mask [S,S]');
    check(q, k, v, { mask: rand([1, H, 1, S]), causal: true }, 'float mask [1,H,1,S] causal');
    // A row masked out entirely: zeros and lse -inf, never NaN.
    const none = new Uint8Array(S * S).fill(1);
    none.fill(0, 3 * S, 4 * S);
    const ref = check(q, k, v, { mask: tensor(none, [S, S], 'uint8') }, 'a fully masked row');
    expect(ref.lse[3]).toBe(-Infinity);
    // 80 rows a kv head: the tiled path (on AMX tiles where the CPU has them)
    const [q2, k2, v2] = qkv(1, 80, 90, 2, 2, 64);
    check(q2, k2, v2, { mask: rand([1, 2, 80, 90]) }, 'float mask [1,H,S,S], tiled');
    const bits2 = new Uint8Array(80 * 90).map((_, i) => ((i * 7919) % 3 === 0 ? 0 : 1));
    check(q2, k2, v2, { mask: tensor(bits2, [80, 90], 'uint8'), causal: true }, 'bool mask, tiled');
  });
  it('softcap and ALiBi', () => {
    const [q, k, v] = qkv(2, 30, 45, 4, 2, 32);
    check(q, k, v, { softcap: 0.7 }, 'softcap');
    check(q, k, v, { softcap: 5, causal: true }, 'softcap causal');
    // softcap 0 is off, as FlashAttention's softcap=0.0
    const plain = attention(q, k, v, { causal: true }).toFloat32();
    expect(bytesOf(attention(q, k, v, { causal: true, softcap: 0 }).toFloat32())).toEqual(bytesOf(plain));
    const slopes = tensor(Float32Array.from([0.5, 0.25, 0.125, 0.0625]), [4]);
    check(q, k, v, { alibiSlopes: slopes, causal: true }, 'alibi [Hq]');
    check(q, k, v, { alibiSlopes: rand([2, 4]) }, 'alibi [B, Hq]');
  });
  it('KV-cache decode with seqlensK, split over threads (flash-decoding)', () => {
    for (const [Sq, Hq, Hk] of [
      [1, 4, 1],
      [1, 2, 2],
      [5, 4, 4],
      [16, 4, 2],
    ]) {
      const [q, k, v] = qkv(2, Sq, 1500, Hq, Hk, 64);
      const seqlensK = tensor(Int32Array.from([1500, 777]), [2], 'int32');
      check(q, k, v, { seqlensK }, `decode Sq${Sq} Hq${Hq} Hk${Hk}`);
      check(q, k, v, { seqlensK, causal: true }, `decode causal Sq${Sq}`);
      check(q, k, v, { seqlensK, window: [100, 0] }, `decode window Sq${Sq}`);
    }
    for (const threads of [1, 2]) {
      backend.setThreads(threads);
      const [q, k, v] = qkv(1, 1, 3000, 1, 1, 128);
      check(q, k, v, {}, `one head, ${threads} threads`);
    }
    backend.setThreads(backend.info().cpu.threads);
  });
  it('decode with the heads of a bshd cache read together: every option, odd dims, group remainders', () => {
    // Sq * G <= 32 rows per kv head takes the streaming path, which walks several kv heads of a
    // key at once (up to 64 rows per item): G = 1..32, 70 heads (a remainder group), D off the
    // vector width, masks/softcap/ALiBi/window on those items, seqlensK, and split-K chunks; 33
    // rows (the tiled path) for the boundary, and short caches (no split: the heads alone are
    // spread over the threads). 1-2 rows per kv head go key by key over the heads on AVX2 (blocks
    // of four keys, then single keys): D = 17 / 33 there too.
    for (const [B, Sq, Hq, Hk, D, Sk] of [
      [2, 1, 6, 3, 72, 700],
      [1, 1, 12, 4, 100, 333],
      [1, 2, 8, 4, 24, 1100],
      [1, 1, 70, 70, 8, 300],
      [1, 1, 20, 4, 17, 129],
      [1, 1, 6, 6, 17, 131],
      [2, 1, 8, 4, 33, 262],
      [1, 2, 3, 3, 40, 97],
      [1, 1, 16, 2, 64, 200],
      [2, 3, 12, 3, 40, 700],
      [1, 1, 32, 1, 24, 600],
      [1, 7, 8, 8, 17, 150],
      [1, 8, 8, 2, 48, 1030],
      [1, 11, 9, 3, 33, 300],
      [1, 2, 6, 2, 24, 300],
      [1, 1, 12, 2, 20, 520],
    ]) {
      const [q, k, v] = qkv(B, Sq, Sk, Hq, Hk, D);
      const seqlensK = tensor(
        Int32Array.from({ length: B }, (_, b) => Sk - 37 * b),
        [B],
        'int32',
      );
      const label = `B${B} Sq${Sq} Hq${Hq} Hk${Hk} D${D} Sk${Sk}`;
      check(q, k, v, {}, label);
      check(q, k, v, { seqlensK, causal: true }, `${label} seqlensK causal`);
      check(q, k, v, { window: [50, 0], softcap: 3 }, `${label} window softcap`);
      // ALiBi-sized slopes (at most 2^-5 here): with randn slopes a distance of 1000 gives logits of
      // about 1e3, where float32 rounding alone exceeds the 1e-5 budget.
      const slopes = tensor(
        Float32Array.from(rand([B, Hq]).data() as Float32Array, (x) => Math.abs(x) / 32),
        [B, Hq],
      );
      check(q, k, v, { alibiSlopes: slopes, mask: rand([1, Hq, Sq, Sk]) }, `${label} alibi mask`);
      const keep = new Uint8Array(Sq * Sk).map((_, i) => ((i * 7919) % 3 === 0 ? 0 : 1));
      check(q, k, v, { mask: tensor(keep, [Sq, Sk], 'uint8') }, `${label} bool mask`);
    }
    // a per-head contiguous cache (bhsd): one head per item, 8 and 28 rows
    for (const [Sq, Hq, Hk] of [
      [1, 16, 2],
      [7, 8, 2],
    ]) {
      const [q, k, v] = qkv(1, Sq, 800, Hq, Hk, 40, 'bhsd');
      check(q, k, v, { layout: 'bhsd', causal: true }, `bhsd Sq${Sq} Hq${Hq} Hk${Hk} causal`);
    }
    for (const [dtype, Hk, D] of [
      ['float16', 2, 64],
      ['bfloat16', 2, 64],
      ['float16', 8, 36],
      ['bfloat16', 4, 44],
    ] as const) {
      const [q, k, v] = qkv(1, 1, 900, 8, Hk, D, 'bshd', dtype);
      const exact = attentionRef(q, k, v, {});
      const naive = attentionRef(
        q,
        k,
        v,
        {},
        dtype === 'float16' ? (x) => float16ValueRef(float16BitsRef(x)) : (x) => bfloat16ValueRef(bfloat16BitsRef(x)),
      );
      forEachIsa((isa) =>
        withSeed(`${dtype} decode ${isa}`, () => {
          const out = attention(q, k, v);
          expect(relativeError(out.toFloat32(), exact.out)).toBeLessThanOrEqual(
            2 * relativeError(naive.out, exact.out),
          );
        }),
      );
    }
  });
  it('varlen packed sequences', () => {
    const cuQ = tensor(Int32Array.from([0, 5, 5, 30, 31]), [5], 'int32');
    const cuK = tensor(Int32Array.from([0, 9, 12, 40, 41]), [5], 'int32');
    const q = rand([31, 4, 32]);
    const k = rand([41, 2, 32]);
    const v = rand([41, 2, 32]);
    check(q, k, v, { cuSeqlensQ: cuQ, cuSeqlensK: cuK }, 'varlen');
    check(q, k, v, { cuSeqlensQ: cuQ, cuSeqlensK: cuK, causal: true }, 'varlen causal');
    const { lse } = attention(q, k, v, { cuSeqlensQ: cuQ, cuSeqlensK: cuK, returnLse: true });
    expect(lse.shape).toEqual([4, 31]);
  });
  it('a query that sees no key gives zeros and lse = -Infinity', () => {
    const [q, k, v] = qkv(1, 8, 8, 1, 1, 16);
    const ref = check(q, k, v, { window: [0, 0], seqlensK: tensor(Int32Array.from([3]), [1], 'int32') }, 'empty');
    expect(ref.lse[0]).toBe(-Infinity); // query 0 aligns with key -5
    expect(ref.lse[7]).not.toBe(-Infinity);
    const [q2, k2, v2] = qkv(1, 4, 0, 2, 1, 8);
    const { out, lse } = attention(q2, k2, v2, { returnLse: true });
    expect(Array.from(out.toFloat32()).every((x) => x === 0)).toBe(true);
    expect(Array.from(lse.data()).every((x) => x === -Infinity)).toBe(true);
  });
  it('no query rows (B = 0 or Sq = 0): empty outputs, as matmul gives', async () => {
    for (const layout of ['bshd', 'bhsd'] as const) {
      const qs = layout === 'bshd' ? [0, 2 ** 30, 4, 8] : [0, 4, 2 ** 30, 8];
      const ks = layout === 'bshd' ? [0, 2 ** 30, 2, 8] : [0, 2, 2 ** 30, 8];
      const r = attention(zeros(qs), zeros(ks), zeros(ks), { layout, returnLse: true, causal: true });
      expect([r.out.shape, r.lse.shape]).toEqual([qs, [0, 4, 2 ** 30]]);
    }
    const [q, k, v] = qkv(2, 0, 9, 4, 2, 16);
    const r = await attentionAsync(q, k, v, { returnLse: true });
    expect([r.out.shape, r.lse.shape]).toEqual([
      [2, 0, 4, 16],
      [2, 4, 0],
    ]);
    const cu = tensor(Int32Array.from([0, 0, 0]), [3], 'int32');
    const ck = tensor(Int32Array.from([0, 5, 9]), [3], 'int32');
    const [, kv] = qkv(1, 1, 9, 4, 2, 16);
    const packedK = kv.reshape([9, 2, 16]);
    const vr = attention(zeros([0, 4, 16]), packedK, packedK, { cuSeqlensQ: cu, cuSeqlensK: ck, returnLse: true });
    expect([vr.out.shape, vr.lse.shape]).toEqual([
      [0, 4, 16],
      [4, 0],
    ]);
  });
});

describe('attention: float16 and bfloat16', () => {
  const round16 = (x: number) => float16ValueRef(float16BitsRef(x));
  const roundBf16 = (x: number) => bfloat16ValueRef(bfloat16BitsRef(x));
  for (const [dtype, round] of [
    ['float16', round16],
    ['bfloat16', roundBf16],
  ] as const)
    it(`${dtype}: at most 2x the error of a naive ${dtype} implementation`, () => {
      for (const [Sq, Sk, Hq, Hk, causal] of [
        [64, 64, 2, 1, true],
        [1, 700, 4, 4, false],
        [20, 37, 2, 2, false],
      ] as const) {
        const [q, k, v] = qkv(1, Sq, Sk, Hq, Hk, 64, 'bshd', dtype);
        const exact = attentionRef(q, k, v, { causal });
        const naive = attentionRef(q, k, v, { causal }, round);
        const budget = relativeError(naive.out, exact.out);
        forEachIsa((isa) =>
          withSeed(`${dtype} ${isa} ${Sq}x${Sk}`, () => {
            const out = attention(q, k, v, { causal });
            expect(out.dtype).toBe(dtype);
            expect(relativeError(out.toFloat32(), exact.out)).toBeLessThanOrEqual(2 * budget);
          }),
        );
      }
    });
  // decode with 3-8 query rows per kv head on a bfloat16 cache: where the CPU has AVX512-BF16,
  // Q K^T runs on the stored bfloat16 q and K (vdpbf16ps) with the scale after the dot product;
  // D = 37 and 96 end in a partial 32-element step, and the options act on the scaled scores
  it('bfloat16 decode, 3-8 rows per kv head, with options: at most 2x the naive error', () => {
    const slopes = (Hq: number) =>
      tensor(
        Float32Array.from({ length: Hq }, (_, h) => 0.05 * (h + 1)),
        [Hq],
      );
    for (const [Sq, Sk, Hq, Hk, D, opts] of [
      [1, 300, 12, 4, 37, {}],
      [1, 700, 40, 8, 128, { softcap: 2 }],
      [2, 517, 32, 8, 96, { causal: true }],
      [1, 333, 24, 4, 64, { window: [100, 0], alibiSlopes: slopes(24) }],
      [3, 90, 6, 2, 80, { causal: true, scale: 0.3 }],
    ] as const) {
      const [q, k, v] = qkv(1, Sq, Sk, Hq, Hk, D, 'bshd', 'bfloat16');
      const o = opts as AttentionOptions;
      const exact = attentionRef(q, k, v, o);
      const naive = attentionRef(q, k, v, o, roundBf16);
      const budget = relativeError(naive.out, exact.out);
      forEachIsa((isa) =>
        withSeed(`bfloat16 decode ${isa} Sq${Sq} Hq${Hq} Hk${Hk} D${D} ${JSON.stringify(opts)}`, () => {
          const out = attention(q, k, v, o);
          expect(relativeError(out.toFloat32(), exact.out)).toBeLessThanOrEqual(2 * budget);
        }),
      );
    }
  });
});

// prefill (blocks of more than 32 rows per kv head) on a bfloat16 q, K, V: where the CPU has
// AVX512-BF16, Q K^T and P V run on packed bfloat16 pairs (vdpbf16ps), P rounded to bfloat16.
// Odd and padded head dims, every option, bhsd, blocks sharing packed tiles, split-K chunks and
// varlen, each at most 2x the error of a naive bfloat16 implementation.
describe('attention: bfloat16 prefill', () => {
  const roundBf16 = (x: number) => bfloat16ValueRef(bfloat16BitsRef(x));
  const within = (q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions, label: string) => {
    const exact = attentionRef(q, k, v, o);
    const budget = relativeError(attentionRef(q, k, v, o, roundBf16).out, exact.out);
    forEachIsa((isa) =>
      withSeed(`bfloat16 prefill ${isa} ${label}`, () => {
        const { out, lse } = attention(q, k, v, { ...o, returnLse: true });
        expect(out.dtype).toBe('bfloat16');
        expect(relativeError(out.toFloat32(), exact.out)).toBeLessThanOrEqual(2 * budget);
        const l = lse.data() as Float32Array;
        for (let i = 0; i < l.length; i++) {
          if (exact.lse[i] === -Infinity) expect(l[i]).toBe(-Infinity);
          else expect(Math.abs(l[i] - exact.lse[i])).toBeLessThan(2e-2 * (1 + Math.abs(exact.lse[i])));
        }
      }),
    );
  };
  it('shapes, options and layouts', () => {
    const slopes = tensor(Float32Array.from([0.3, 0.05]), [2]);
    for (const [B, Sq, Sk, Hq, Hk, D, layout, opts] of [
      [2, 40, 70, 4, 2, 64, 'bshd', { causal: true }],
      [1, 100, 100, 2, 1, 37, 'bshd', {}],
      [1, 50, 130, 2, 2, 128, 'bshd', { window: [20, 5] }],
      [1, 64, 64, 4, 1, 256, 'bshd', { causal: true, softcap: 5 }],
      [1, 33, 77, 2, 2, 80, 'bshd', { alibiSlopes: slopes, mask: rand([1, 2, 33, 77]) }],
      [1, 70, 90, 3, 3, 96, 'bhsd', { causal: true, scale: 0.05 }],
      [1, 40, 50, 1, 1, 1, 'bshd', {}],
      [1, 45, 31, 1, 1, 20, 'bshd', { causal: true }],
    ] as const) {
      const [q, k, v] = qkv(B, Sq, Sk, Hq, Hk, D, layout, 'bfloat16');
      within(q, k, v, { layout, ...opts } as AttentionOptions, `B${B} Sq${Sq} Sk${Sk} Hq${Hq} Hk${Hk} D${D}`);
    }
  });
  it('blocks sharing packed tiles, split-K chunks, varlen', () => {
    const [q, k, v] = qkv(1, 800, 800, 8, 8, 16, 'bshd', 'bfloat16');
    within(q, k, v, { causal: true }, 'shared tiles');
    const [q2, k2, v2] = qkv(1, 40, 1500, 1, 1, 64, 'bshd', 'bfloat16');
    within(q2, k2, v2, {}, 'split-K');
    const cuQ = tensor(Int32Array.from([0, 40, 41, 120]), [4], 'int32');
    const cuK = tensor(Int32Array.from([0, 60, 70, 170]), [4], 'int32');
    const q3 = rand([120, 4, 48], 'bfloat16');
    const k3 = rand([170, 1, 48], 'bfloat16');
    const v3 = rand([170, 1, 48], 'bfloat16');
    within(q3, k3, v3, { cuSeqlensQ: cuQ, cuSeqlensK: cuK, causal: true }, 'varlen');
    // head dims in steps of 32 (AMX tiles where the CPU has them: 32-row blocks past the last
    // row, causal blocks that see part of a shared tile, a last tile of 112 keys)
    const [q4, k4, v4] = qkv(1, 1000, 1050, 1, 1, 64, 'bshd', 'bfloat16');
    within(q4, k4, v4, { causal: true }, 'shared tiles, D 64');
  });
});

describe('attention: determinism, async, inputs untouched', () => {
  it('reruns are bitwise equal and the async twin matches', async () => {
    const [q, k, v] = qkv(1, 1, 2000, 8, 2, 128);
    const qCopy = Float32Array.from(q.data() as Float32Array);
    const a = attention(q, k, v, { causal: true }).data();
    const b = attention(q, k, v, { causal: true }).data();
    expect(b).toEqual(a);
    const c = (await attentionAsync(q, k, v, { causal: true })).data();
    expect(c).toEqual(a);
    const { out, lse } = await attentionAsync(q, k, v, { returnLse: true });
    expect(out.data()).toEqual(attention(q, k, v).data());
    expect(lse.shape).toEqual([1, 8, 1]);
    expect(q.data()).toEqual(qCopy);
  });
});

describe('attention: bad input', () => {
  const [q, k, v] = qkv(1, 4, 6, 4, 2, 8);
  it('shapes and dtypes', () => {
    expectError(() => attention(q, rand([1, 6, 3, 8]), rand([1, 6, 3, 8])), 'ERR_SHAPE', "'k'", 'divide');
    expectError(() => attention(q, k, rand([1, 5, 2, 8])), 'ERR_SHAPE', "'v'");
    expectError(() => attention(q, rand([1, 6, 2, 4]), rand([1, 6, 2, 4])), 'ERR_SHAPE', "'k'");
    expectError(() => attention(q, rand([2, 6, 2, 8]), rand([2, 6, 2, 8])), 'ERR_SHAPE', "'k'");
    expectError(
      () => attention(rand([1, 2, 1, 300]), rand([1, 2, 1, 300]), rand([1, 2, 1, 300])),
      'ERR_SHAPE',
      "'q'",
      '256',
    );
    expectError(() => attention(rand([4, 8]), k, v), 'ERR_SHAPE', "'q'");
    expectError(() => attention(q, k.to('float16'), v), 'ERR_DTYPE', "'k'");
    expectError(() => attention(q, k, v.to('bfloat16')), 'ERR_DTYPE', "'v'");
    expectError(() => attention(zeros([1, 4, 4, 8], { dtype: 'int32' }), k, v), 'ERR_DTYPE', "'q'");
    expectError(() => attention(q, k, 3 as never), 'ERR_ARG', "'v'");
    const d = rand([1, 6, 2, 8]);
    d.dispose();
    expectError(() => attention(q, d, v), 'ERR_DISPOSED', "'k'");
  });
  it('options', () => {
    const junk = [NaN, Infinity, 'x', {}, [], null, true];
    for (const bad of junk) {
      expectError(() => attention(q, k, v, { scale: bad as never }), 'ERR_ARG', "'scale'");
      expectError(() => attention(q, k, v, { softcap: bad as never }), 'ERR_ARG', "'softcap'");
      expectError(() => attention(q, k, v, { window: bad as never }), 'ERR_ARG', "'window'");
      if (bad !== true) expectError(() => attention(q, k, v, { causal: bad as never }), 'ERR_ARG', "'causal'");
      expectError(() => attention(q, k, v, { layout: bad as never }), 'ERR_ARG', "'layout'");
      if (bad !== true) expectError(() => attention(q, k, v, { returnLse: bad as never }), 'ERR_ARG', "'returnLse'");
      if (bad !== null) {
        expectError(() => attention(q, k, v, { mask: bad as never }), 'ERR_ARG', "'mask'");
        expectError(() => attention(q, k, v, { alibiSlopes: bad as never }), 'ERR_ARG', "'alibiSlopes'");
        expectError(() => attention(q, k, v, { seqlensK: bad as never }), 'ERR_ARG', "'seqlensK'");
      }
    }
    expectError(() => attention(q, k, v, { softcap: -1 }), 'ERR_ARG', "'softcap'");
    expectError(() => attention(q, k, v, { window: [-2, 0] }), 'ERR_ARG', "'window'");
    expectError(() => attention(q, k, v, { window: [1.5, 0] }), 'ERR_ARG', "'window'");
    expectError(() => attention(q, k, v, { bogus: 1 } as never), 'ERR_ARG', 'bogus');
    expectError(() => attention(q, k, v, { mask: rand([3, 6]) }), 'ERR_SHAPE', "'mask'");
    expectError(() => attention(q, k, v, { mask: zeros([4, 6], { dtype: 'int32' }) }), 'ERR_DTYPE', "'mask'");
    expectError(() => attention(q, k, v, { alibiSlopes: rand([3]) }), 'ERR_SHAPE', "'alibiSlopes'");
    expectError(
      () => attention(q, k, v, { alibiSlopes: tensor(Float32Array.from([1, NaN, 1, 1]), [4]) }),
      'ERR_ARG',
      "'alibiSlopes'",
    );
    expectError(
      () => attention(q, k, v, { seqlensK: tensor(Int32Array.from([7]), [1], 'int32') }),
      'ERR_ARG',
      "'seqlensK'",
    );
    expectError(
      () => attention(q, k, v, { seqlensK: tensor(Int32Array.from([-1]), [1], 'int32') }),
      'ERR_ARG',
      "'seqlensK'",
    );
    expectError(() => attention(q, k, v, { seqlensK: rand([1]) }), 'ERR_DTYPE', "'seqlensK'");
  });
  it('varlen offsets', () => {
    const qp = rand([6, 4, 8]);
    const kp = rand([7, 2, 8]);
    const cu = (xs: number[]) => tensor(Int32Array.from(xs), [xs.length], 'int32');
    const run = (cq: Tensor, ck: Tensor) => () => attention(qp, kp, kp, { cuSeqlensQ: cq, cuSeqlensK: ck });
    expectError(run(cu([0, 4, 2, 6]), cu([0, 3, 5, 7])), 'ERR_ARG', "'cuSeqlensQ'", 'non-decreasing');
    expectError(run(cu([0, 2, 4, 5]), cu([0, 3, 5, 7])), 'ERR_ARG', "'cuSeqlensQ'", 'last entry');
    expectError(run(cu([0, 2, 4, 6]), cu([0, 3, 5, 8])), 'ERR_ARG', "'cuSeqlensK'");
    expectError(run(cu([1, 2, 4, 6]), cu([0, 3, 5, 7])), 'ERR_ARG', "'cuSeqlensQ'");
    expectError(run(cu([0, 2, 6]), cu([0, 3, 5, 7])), 'ERR_SHAPE', "'cuSeqlensK'");
    expectError(() => attention(qp, kp, kp, { cuSeqlensQ: cu([0, 6]) }), 'ERR_ARG', 'cuSeqlensK');
    expectError(
      () => attention(qp, kp, kp, { cuSeqlensQ: cu([0, 6]), cuSeqlensK: cu([0, 7]), mask: rand([6, 7]) }),
      'ERR_ARG',
      "'mask'",
    );
  });
  it('the async twin rejects with the same error', async () => {
    await expectRejects(attentionAsync(q, k, v, { softcap: NaN }), 'ERR_ARG', "'softcap'");
  });
  it('options finite in float64 but not usable in float32 (the kernel works in float32)', async () => {
    // softcap 1e-46 became 0 in float32, which the kernel reads as "no softcap"
    for (const bad of [1e-46, 1e39, 3.5e38])
      expectError(() => attention(q, k, v, { softcap: bad }), 'ERR_ARG', "'softcap'", 'float32');
    for (const bad of [1e39, -1e39, 1e-46, -1e-46])
      expectError(() => attention(q, k, v, { scale: bad }), 'ERR_ARG', "'scale'", 'float32');
    await expectRejects(attentionAsync(q, k, v, { softcap: 1e-46 }), 'ERR_ARG', "'softcap'");
    // the smallest positive float32 and the largest finite one stay valid
    for (const softcap of [2 ** -149, 3.4e38]) expect(attention(q, k, v, { softcap }).shape).toEqual(q.shape);
    expect(attention(q, k, v, { scale: 0 }).shape).toEqual(q.shape);
  });
  it('ALiBi slopes whose bias overflows float32 at the largest distance are ERR_ARG (not NaN)', () => {
    withSeed('alibi overflow', (seed) => {
      // Sq = 4, Sk = 6: distances |i + Sk - Sq - j| reach max(Sq, Sk) - 1 = 5
      const slopes = (xs: number[]) => tensor(Float32Array.from(xs), [4]);
      const fine = 1e37 * (1 + (seed % 6)); // 5 * 6e37 < FLT_MAX
      for (const sign of [1, -1]) {
        const ok = attention(q, k, v, { alibiSlopes: slopes([0.5, sign * fine, 0.25, 1]) });
        expect(ok.toFloat32().every((x) => Number.isFinite(x))).toBe(true);
        for (const huge of [1e38, 3.4e38])
          expectError(
            () => attention(q, k, v, { alibiSlopes: slopes([0.5, 0.5, sign * huge, 1]) }),
            'ERR_ARG',
            "'alibiSlopes'",
            'slope 2',
            'overflows float32',
          );
      }
      // varlen: the bound is per sequence (lengths 2 + 2 queries, 3 + 3 keys: distance <= 2)
      const qp = rand([4, 4, 8]);
      const kp = rand([6, 2, 8]);
      const cu = (xs: number[]) => tensor(Int32Array.from(xs), [xs.length], 'int32');
      const opts = { cuSeqlensQ: cu([0, 2, 4]), cuSeqlensK: cu([0, 3, 6]) };
      const out = attention(qp, kp, kp, { ...opts, alibiSlopes: slopes([1e38, 1, 1, 1]) });
      expect(out.toFloat32().every((x) => Number.isFinite(x))).toBe(true);
      expectError(
        () => attention(qp, kp, kp, { ...opts, alibiSlopes: slopes([2e38, 1, 1, 1]) }),
        'ERR_ARG',
        "'alibiSlopes'",
      );
    });
  });
});

describe('attention: memory stays linear in the sequence', () => {
  it('S = 4096 (Hq = 4, D = 64, causal) grows the peak RSS by far less than an S^2 score matrix', () => {
    const [S, H, D] = [4096, 4, 64];
    const [q, k, v] = qkv(1, S, S, H, H, D);
    const before = process.resourceUsage().maxRSS * 1024;
    const out = attention(q, k, v, { causal: true });
    const grown = process.resourceUsage().maxRSS * 1024 - before;
    const scoreMatrix = H * S * S * 4; // 268 MB
    expect(out.size).toBe(q.size);
    expect(grown).toBeLessThan(32 * 2 ** 20);
    expect(grown).toBeLessThan(scoreMatrix / 8);
  });
});
