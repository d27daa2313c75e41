/** Tensor: construction, zero-copy wrapping, views, dtype conversion against the reference, dispose. */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  Tensor,
  TensorfuseError,
  backend,
  linear,
  matmul,
  matmulAsync,
  quantize,
  randn,
  tensor,
  zeros,
  type DType,
} from 'tensorfuse';
import { bfloat16BitsRef, bfloat16ValueRef, float16BitsRef, float16ValueRef } from 'tensorfuse/reference';
import { expectError, forEachIsa, runInChild, withSeed } from './helpers';

/** Edge values for 16-bit rounding: ties, subnormals, overflow, signed zeros, NaN, Inf. */
function edgeValues(): number[] {
  const v = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    65536,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    NaN,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -25 * 1.0000001,
    2 ** -26,
    1e-8,
    5.96e-8,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    3.4e38,
    -3.4e38,
    1e-40,
    -1e-45,
    2 ** -126,
    2 ** -133,
    2 ** -134,
    3 * 2 ** -135,
    0.1,
    -0.3,
    1 / 3,
    Math.PI,
  ];
  return v.map((x) => Math.fround(x));
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

describe('tensor()', () => {
  it('wraps matching TypedArrays without a copy and copies anything else', () => {
    const f = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = tensor(f, [2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.data()).toBe(f);
    f[0] = 42;
    expect(t.data()[0]).toBe(42);
    const cases: [ArrayBufferView, DType][] = [
      [new Int8Array([1, -2]), 'int8'],
      [new Uint8Array([1, 2]), 'uint8'],
      [new Int32Array([1, -2]), 'int32'],
    ];
    for (const [arr, dt] of cases) {
      const w = tensor(arr as Int8Array, [2]);
      expect(w.dtype).toBe(dt);
      expect(w.data()).toBe(arr);
    }
    const h = new Uint16Array([0x3c00, 0xc000]);
    const th = tensor(h, [2], 'float16');
    expect(th.data()).toBe(h);
    expect([...th.toFloat32()]).toEqual([1, -2]);
    expect([...tensor(h, [2], 'bfloat16').toFloat32()]).toEqual([bfloat16ValueRef(0x3c00), bfloat16ValueRef(0xc000)]);
    const copy = tensor([1, 2, 3], [3]);
    expect(copy.dtype).toBe('float32');
    expect([...copy.data()]).toEqual([1, 2, 3]);
    expect(tensor(new Float64Array([0.5, 1.5]), [2]).dtype).toBe('float32');
  });

  it('rounds numbers to float16/bfloat16 once, from float64, like the reference', () => {
    withSeed('tensor f16', (seed) => {
      const vals = [...edgeValues(), 65519.999, 1 + 2 ** -11 + 2 ** -40, 2 ** -25 + 2 ** -60];
      const rng = randn([2000], { seed, dtype: 'float32' }).data() as Float32Array;
      for (let i = 0; i < rng.length; i++) vals.push(rng[i] * 10 ** ((i % 20) - 10) * 1.000000123);
      const h = tensor(vals, [vals.length], 'float16').data() as Uint16Array;
      const b = tensor(vals, [vals.length], 'bfloat16').data() as Uint16Array;
      vals.forEach((v, i) => {
        if (Number.isNaN(v)) {
          expect(Number.isNaN(float16ValueRef(h[i]))).toBe(true);
          expect(Number.isNaN(bfloat16ValueRef(b[i]))).toBe(true);
        } else {
          expect(h[i], `float16(${v})`).toBe(float16BitsRef(v));
          expect(b[i], `bfloat16(${v})`).toBe(bfloat16BitsRef(v));
        }
      });
    });
  });

  it('checks integer data for integer dtypes', () => {
    expect([...tensor([-128, 127], [2], 'int8').data()]).toEqual([-128, 127]);
    expectError(() => tensor([1.5], [1], 'int8'), 'ERR_ARG', 'element 0');
    expectError(() => tensor([300], [1], 'uint8'), 'ERR_ARG', 'uint8');
    expectError(() => tensor([1, 'x' as unknown as number], [2]), 'ERR_ARG', 'element 1');
  });

  it('checks TypedArray data of another type for integer dtypes, as it checks plain arrays', () => {
    // Float32Array data used to be converted natively: 1000 -> 127, NaN -> 0, 1.5 -> 1, silently
    expectError(() => tensor(new Float32Array([1000, NaN, 1.5]), [3], 'int8'), 'ERR_ARG', 'element 0', 'int8');
    withSeed('typed arrays to integer dtypes', (seed) => {
      const f = randn([64], { seed }).toFloat32(); // non-integers
      const ranges: [DType, number, number][] = [
        ['int8', -128, 127],
        ['uint8', 0, 255],
        ['int32', -(2 ** 31), 2 ** 31 - 1],
      ];
      for (const [dt, lo, hi] of ranges) {
        for (const Ctor of [Float32Array, Float64Array]) {
          expectError(() => tensor(new Ctor(f), [64], dt), 'ERR_ARG', "'data'", dt);
          for (const [k, bad] of [NaN, Infinity, lo - 1, hi + 1, 0.5].entries()) {
            // float32 rounds int32's lo - 1 to lo itself (a valid value): nothing to reject there
            if (Ctor === Float32Array && !Object.is(Math.fround(bad), bad)) continue;
            const ints = new Ctor(f.map((x) => Math.min(hi, Math.max(lo, Math.trunc(x * 10)))));
            const at = (seed + 13 * k) % 64;
            ints[at] = bad;
            expectError(() => tensor(ints, [64], dt), 'ERR_ARG', `element ${at}`, dt);
          }
          // integers in range are taken as they are
          const ok = new Ctor(64).map((_, i) => (i % 2 ? lo : Math.min(hi, Math.max(lo, Math.trunc(f[i] * 10)))));
          expect(Array.from(tensor(ok, [64], dt).data())).toEqual(Array.from(ok, (x) => x + 0)); // -0 -> 0
        }
      }
      // a TypedArray of the target's own type is wrapped without a check or a copy
      const i8 = new Int8Array(64).map((_, i) => i - 32);
      expect(tensor(i8, [64], 'int8').data()).toBe(i8);
      // float dtypes still convert float32 data (rounded once)
      expect(
        tensor(new Float32Array(f), [64], 'float16')
          .toFloat32()
          .every((x, i) => Math.abs(x - f[i]) < 1e-2),
      ).toBe(true);
    });
  });

  it('refuses TypedArrays backed by a SharedArrayBuffer with ERR_ARG (not a plain Error in every op)', () => {
    const sab = new SharedArrayBuffer(64);
    for (const [data, dt] of [
      [new Float32Array(sab, 0, 4), 'float32'],
      [new Float32Array(sab, 0, 4), 'float16'],
      [new Float32Array(sab, 0, 4), 'int32'],
      [new Uint16Array(sab, 0, 4), 'bfloat16'],
      [new Int8Array(sab, 0, 4), 'int8'],
      [new Uint8Array(sab, 0, 4), 'uint8'],
      [new Int32Array(sab, 0, 4), 'int32'],
      [new Float64Array(sab, 0, 4), 'float32'],
    ] as [ArrayLike<number>, DType][])
      expectError(() => tensor(data, [2, 2], dt), 'ERR_ARG', "'data'", 'SharedArrayBuffer');
    // a copy works
    const t = tensor(new Float32Array(sab, 0, 4).slice(), [2, 2]);
    expect(Array.from(matmul(t, t).data())).toEqual([0, 0, 0, 0]);
  });
});

describe('Tensor.to(dtype)', () => {
  it('float32 -> float16/bfloat16 matches the reference bit for bit on every ISA', () => {
    withSeed('to f16', (seed) => {
      const vals = edgeValues();
      const r = randn([4099], { seed }).data() as Float32Array;
      for (let i = 0; i < r.length; i++) vals.push(Math.fround(r[i] * 2 ** ((i % 60) - 30)));
      // every float32 in a window around the float16 subnormal/normal boundary and ties
      for (let u = f32Bits(2 ** -15) - 300; u < f32Bits(2 ** -15) + 300; u++)
        vals.push(new Float32Array(new Uint32Array([u]).buffer)[0]);
      const t = tensor(new Float32Array(vals), [vals.length]);
      forEachIsa((isa) => {
        const h = t.to('float16').data() as Uint16Array;
        const b = t.to('bfloat16').data() as Uint16Array;
        vals.forEach((v, i) => {
          if (Number.isNaN(v)) {
            expect(Number.isNaN(float16ValueRef(h[i])), isa).toBe(true);
            expect(Number.isNaN(bfloat16ValueRef(b[i])), isa).toBe(true);
          } else {
            expect(h[i], `${isa} float16(${v})`).toBe(float16BitsRef(v));
            expect(b[i], `${isa} bfloat16(${v})`).toBe(bfloat16BitsRef(v));
          }
        });
      });
    });
  });

  it('float16 -> float32 is exact for all 65536 bit patterns, and round-trips', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    forEachIsa((isa) => {
      for (const dt of ['float16', 'bfloat16'] as const) {
        const f = tensor(all, [65536], dt).toFloat32();
        const value = dt === 'float16' ? float16ValueRef : bfloat16ValueRef;
        let bad = -1;
        for (let i = 0; i < 65536 && bad < 0; i++) {
          const want = value(i);
          if (Number.isNaN(want) ? !Number.isNaN(f[i]) : !Object.is(f[i], want)) bad = i;
        }
        expect(bad, `${isa} ${dt}: first wrong pattern 0x${bad.toString(16)}`).toBe(-1);
        const back = tensor(f, [65536]).to(dt).data() as Uint16Array;
        for (let i = 0; i < 65536 && bad < 0; i++) if (!Number.isNaN(f[i]) && back[i] !== i) bad = i;
        expect(bad, `${isa} ${dt}: round trip of 0x${bad.toString(16)}`).toBe(-1);
      }
    });
  });

  it('floats to integers truncate toward zero and saturate; NaN -> 0', () => {
    const t = tensor([1.7, -1.7, 300, -300, NaN, Infinity, -Infinity, 0.4], [8]);
    expect([...t.to('int8').data()]).toEqual([1, -1, 127, -128, 0, 127, -128, 0]);
    expect([...t.to('uint8').data()]).toEqual([1, 0, 255, 0, 0, 255, 0, 0]);
    expect([...t.to('int32').data()]).toEqual([1, -1, 300, -300, 0, 2147483647, -2147483648, 0]);
    expect([...tensor([-5, 7], [2], 'int8').to('float16').toFloat32()]).toEqual([-5, 7]);
    expect([
      ...tensor([2 ** 31 - 1], [1], 'int32')
        .to('float32')
        .data(),
    ]).toEqual([2 ** 31]);
  });

  it('returns a copy: the source is unchanged and independent', () => {
    const a = randn([5], { seed: 3 });
    const b = a.to('float32');
    expect(b.data()).not.toBe(a.data());
    expect(b.data()).toEqual(a.data());
    const c = a.to('cpu');
    (c.data() as Float32Array)[0] = 99;
    expect(a.data()[0]).not.toBe(99);
  });
});

describe('Tensor views and lifetime', () => {
  it('reshape shares storage and infers one -1', () => {
    const t = randn([2, 3, 4], { seed: 1 });
    const v = t.reshape([6, -1]);
    expect(v.shape).toEqual([6, 4]);
    expect(v.data()).toBe(t.data());
    expect(t.reshape([-1]).shape).toEqual([24]);
    expectError(() => t.reshape([5, 5]), 'ERR_SHAPE', '25');
    expectError(() => t.reshape([-1, -1]), 'ERR_SHAPE', '-1');
    expectError(() => t.reshape([7, -1]), 'ERR_SHAPE', 'infer');
    expect(zeros([0, 3]).reshape([3, -1, 5]).shape).toEqual([3, 0, 5]);
  });

  it('dispose frees every view; later use throws ERR_DISPOSED', () => {
    const t = randn([4, 4], { seed: 2 });
    const v = t.reshape([16]);
    t.dispose();
    expect(t.disposed).toBe(true);
    expectError(() => v.data(), 'ERR_DISPOSED');
    expectError(() => t.toFloat32(), 'ERR_DISPOSED');
    expectError(() => t.to('float16'), 'ERR_DISPOSED');
    expectError(() => t.reshape([16]), 'ERR_DISPOSED');
    t.dispose(); // idempotent
    {
      using u = randn([2], { seed: 4 });
      expect(u.size).toBe(2);
      var escaped = u; // eslint-disable-line no-var
    }
    expect(escaped.disposed).toBe(true);
  });

  it('a detached buffer reads as disposed, in ops and in the methods', () => {
    const f = new Float32Array(6).fill(1);
    const t = tensor(f, [2, 3]);
    const v = t.reshape([3, 2]);
    structuredClone(f.buffer, { transfer: [f.buffer] }); // detaches f.buffer
    expectError(() => matmul(t, v), 'ERR_DISPOSED', 'matmul', "'a'", 'detached');
    expectError(() => linear(randn([1, 3], { seed: 5 }), t), 'ERR_DISPOSED', "'w'");
    expectError(() => t.toFloat32(), 'ERR_DISPOSED', 'toFloat32');
    expectError(() => v.data(), 'ERR_DISPOSED');
    expectError(() => t.to('float16'), 'ERR_DISPOSED');
    expectError(() => t.reshape([6]), 'ERR_DISPOSED');
    const h = new Uint16Array(4);
    const t16 = tensor(h, [4], 'float16');
    structuredClone(h.buffer, { transfer: [h.buffer] });
    expectError(() => t16.toFloat32(), 'ERR_DISPOSED', 'detached');
    // an empty tensor has nothing to lose
    const e = new Float32Array(0);
    const te = tensor(e, [0, 3]);
    structuredClone(e.buffer, { transfer: [e.buffer] });
    expect(matmul(te, zeros([3, 2])).shape).toEqual([0, 2]);
  });

  it('an object that only claims to be a Tensor is ERR_ARG, never a TypeError', () => {
    const fake = Object.create(Tensor.prototype) as Tensor;
    const heir = Object.create(randn([2, 2], { seed: 1 })) as Tensor; // a real tensor as prototype
    for (const f of [fake, heir]) {
      expect(f).toBeInstanceOf(Tensor);
      expectError(() => matmul(f, zeros([2, 2])), 'ERR_ARG', 'matmul', "'a'");
      expectError(() => matmul(zeros([2, 2]), f), 'ERR_ARG', "'b'");
      expectError(() => linear(zeros([1, 2]), zeros([2, 2]), { bias: f }), 'ERR_ARG', "'bias'");
      expectError(() => f.toFloat32(), 'ERR_ARG');
      expectError(() => f.data(), 'ERR_ARG');
      expectError(() => f.to('float16'), 'ERR_ARG');
      expectError(() => f.dispose(), 'ERR_ARG', 'dispose');
      expectError(() => f[Symbol.dispose](), 'ERR_ARG', 'dispose');
      expect(f.disposed).toBe(true);
    }
    expect(String(fake)).toContain('Tensor');
    const Ctor = Tensor as unknown as new (...a: unknown[]) => Tensor;
    expectError(() => new Ctor(), 'ERR_ARG', 'tensor(), zeros() or randn()');
    expectError(() => new Ctor(null, 'float32', [1]), 'ERR_ARG', 'Tensor');
  });

  it('dtype, shape, device and size cannot be reassigned (an op would misread the storage)', () => {
    const t = randn([2, 3], { seed: 4 });
    const v = t.reshape([3, 2]);
    for (const u of [t, v]) {
      const w = u as unknown as Record<string, unknown>;
      expect(() => (w.dtype = 'bfloat16')).toThrow(TypeError);
      expect(() => (w.shape = [6])).toThrow(TypeError);
      expect(() => (w.device = 'cuda')).toThrow(TypeError);
      expect(() => (w.size = 1)).toThrow(TypeError);
      expect(() => (u.shape as number[]).push(1)).toThrow(TypeError);
      expect(Object.isFrozen(u)).toBe(true);
    }
    expect([t.dtype, t.shape, t.device, t.size]).toEqual(['float32', [2, 3], 'cpu', 6]);
    expect(matmul(t, zeros([3, 2])).shape).toEqual([2, 2]);
  });

  it('sizes no buffer can hold: ERR_OOM naming the argument', () => {
    expectError(() => zeros([2 ** 40]), 'ERR_OOM', "zeros: argument 'shape'");
    expectError(() => randn([2 ** 26, 2 ** 26]), 'ERR_OOM', "randn: argument 'shape'");
    expectError(() => tensor({ length: 2 ** 32 }, [2 ** 32]), 'ERR_OOM', "tensor: argument 'shape'");
    const tall = zeros([2 ** 26, 0]);
    const wide = zeros([0, 2 ** 26]);
    expectError(() => matmul(tall, wide), 'ERR_OOM', "'a' [67108864, 0]", "'b' [0, 67108864]");
    expectError(() => linear(tall, zeros([2 ** 26, 0])), 'ERR_OOM', "'x'", "'w'");
  });

  it('describes itself', () => {
    const t = zeros([2, 3], { dtype: 'bfloat16' });
    expect(String(t)).toBe('Tensor(bfloat16, [2, 3])');
    expect(inspect({ t })).toBe('{ t: Tensor(bfloat16, [2, 3]) }');
    expect(t.size).toBe(6);
    expect(t.device).toBe('cpu');
    expect(t).toBeInstanceOf(Tensor);
  });
});

describe('zeros / randn', () => {
  it('zeros has every dtype', () => {
    for (const dt of ['float32', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'] as const) {
      const z = zeros([3, 5], { dtype: dt });
      expect(z.dtype).toBe(dt);
      expect([...z.data()].every((x) => x === 0)).toBe(true);
    }
  });

  it('randn is reproducible per seed and looks standard normal', () => {
    const a = randn([20000], { seed: 123 }).data() as Float32Array;
    const b = randn([20000], { seed: 123 }).data() as Float32Array;
    const c = randn([20000], { seed: 124 }).data() as Float32Array;
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    let m = 0;
    let s = 0;
    for (const x of a) m += x;
    m /= a.length;
    for (const x of a) s += (x - m) ** 2;
    s = Math.sqrt(s / a.length);
    expect(Math.abs(m)).toBeLessThan(0.05);
    expect(Math.abs(s - 1)).toBeLessThan(0.05);
    expect(randn([7], { seed: 5, dtype: 'float16' }).toFloat32()).toEqual(
      tensor(randn([7], { seed: 5 }).data() as Float32Array, [7])
        .to('float16')
        .toFloat32(),
    );
  });
});

describe('backend', () => {
  it('info reports the version, CPU and CUDA state', () => {
    const i = backend.info();
    expect(typeof i.version).toBe('string');
    expect(i.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(Array.isArray(i.cpu.features)).toBe(true);
    expect(i.cuda.available).toBe(false);
    expect(i.cuda.devices).toEqual([]);
  });

  it('setThreads changes the pool and rejects garbage', () => {
    const t0 = backend.info().cpu.threads;
    backend.setThreads(1);
    expect(backend.info().cpu.threads).toBe(1);
    backend.setThreads(t0);
    expect(backend.info().cpu.threads).toBe(t0);
    for (const bad of [0, -1, 1.5, NaN, Infinity, '2', null, undefined, 5000])
      expectError(() => backend.setThreads(bad as number), 'ERR_ARG', "'n'");
  });

  it('large buffers (prefaulted at allocation) start zeroed and keep what is written', () => {
    const n = (1 << 21) + 3; // 8 MiB + 12 bytes of float32: above the prefault size
    const z = zeros([n]).data() as Float32Array;
    expect(z.length).toBe(n);
    expect(z.every((v) => v === 0)).toBe(true);
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = (i % 1009) - 504.5;
    const t = tensor(src, [n]);
    const back = t.data() as Float32Array;
    let same = true;
    for (let i = 0; i < n; i++) same = same && back[i] === src[i];
    expect(same).toBe(true);
  });

  // glibc's malloc is set up at load to keep freed buffers mapped (TENSORFUSE_MALLOC_TUNING=0 opts
  // out); outputs carved from reused memory still start zeroed.
  it('malloc tuning: on with glibc, off with TENSORFUSE_MALLOC_TUNING=0, reused outputs zeroed', () => {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const glibc = process.platform === 'linux' && !!report?.header?.glibcVersionRuntime;
    expect(backend.info().memory.mallocTuned).toBe(glibc);
    const pkg = JSON.stringify(path.resolve('dist/cjs/index.js'));
    const child = `console.log(require(${pkg}).backend.info().memory.mallocTuned)`;
    const r = spawnSync(process.execPath, ['-e', child], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, TENSORFUSE_MALLOC_TUNING: '0' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('false');
    // 1 MiB outputs, each filled with garbage and dropped: later ones reuse the memory
    const a = randn([256, 64], { seed: 3 }),
      b = randn([64, 1024], { seed: 4 });
    for (let i = 0; i < 40; i++) {
      const z = zeros([256, 1024]).data() as Float32Array;
      expect(z.every((v) => v === 0)).toBe(true);
      z.fill(NaN);
      const c = matmul(a, b).data() as Float32Array;
      expect(c.every((v) => Number.isFinite(v))).toBe(true);
      c.fill(-1);
    }
  });

  it('dispose keeps large buffers for the next outputs: detached, zeroed on reuse, never shared', () => {
    backend.releaseMemory();
    const n = 1 << 21; // 8 MiB of float32: past the pool's 4 MiB threshold
    const a = randn([512, 64], { seed: 7 }),
      b = randn([64, n / 512], { seed: 8 });
    const first = matmul(a, b);
    const view = first.data() as Float32Array;
    expect(view.length).toBe(n);
    view.fill(NaN); // garbage that a reuse must not show
    const reshaped = first.reshape([n]);
    reshaped.dispose(); // through a view: the same storage
    expect(first.disposed).toBe(true);
    expect(view.length).toBe(0); // detached: the old view reads nothing, writes nowhere
    // the buffer behind a large storage is 64 bytes longer (it starts the storage on a cache line)
    expect(backend.info().memory.pooledBytes).toBe(4 * n + 64);
    // the next output of that size takes the buffer, zeroed where the op does not write
    const z = zeros([n]);
    expect(backend.info().memory.pooledBytes).toBe(0);
    expect((z.data() as Float32Array).every((v) => v === 0)).toBe(true);
    z.dispose();
    const again = matmul(a, b);
    const ref = matmul(a, b);
    const av = again.data() as Float32Array;
    const rv = ref.data() as Float32Array;
    for (let i = 0; i < n; i += 4099) expect(av[i]).toBe(rv[i]);
    // a second tensor over the same storage (tensor(data())): disposing either leaves the other
    const alias = tensor(av, [n]);
    alias.dispose();
    expect(av.length).toBe(n);
    expect(again.disposed).toBe(false);
    again.dispose();
    expect(av.length).toBe(n); // no longer the pool's to take
    expect(backend.info().memory.pooledBytes).toBe(0);
    // a user's own array is never taken
    const own = new Float32Array(n);
    tensor(own, [n]).dispose();
    expect(own.length).toBe(n);
    // small buffers stay with the GC
    const small = randn([16], { seed: 9 });
    const sv = small.data();
    small.dispose();
    expect(sv.length).toBe(16);
    ref.dispose();
    expect(backend.releaseMemory()).toBe(4 * n + 64);
    expect(backend.info().memory.pooledBytes).toBe(0);
  });

  // Kernels load 64 bytes at a time: a storage that starts 16 bytes into a cache line (where
  // malloc puts an ArrayBuffer) makes every such load touch two lines.
  it('storages of 4 KiB and more start on a 64-byte line: fresh, recycled, op outputs, codes', () => {
    const addon = createRequire(import.meta.url)('node-gyp-build')(path.resolve('.')) as {
      addressMod(b: ArrayBufferView, align: number): number;
    };
    const lineOf = (v: ArrayBufferView) => addon.addressMod(v, 64);
    backend.releaseMemory();
    for (const n of [1024, 1025, 4099, (1 << 20) + 7]) {
      const t = randn([n], { seed: n });
      const d = t.data() as Float32Array;
      expect(d.length).toBe(n);
      expect(lineOf(d)).toBe(0);
      expect(d.buffer.byteLength).toBe(4 * n + 64);
      expect(d.every((v) => Number.isFinite(v))).toBe(true);
      // the copy from a float16 view and back keeps the values (the offset is not lost anywhere)
      expect(Array.from(t.to('float32').data().subarray(0, 5))).toEqual(Array.from(d.subarray(0, 5)));
    }
    for (const dtype of ['float16', 'bfloat16', 'int8', 'uint8', 'int32'] as DType[]) {
      const z = zeros([4096], { dtype });
      expect(lineOf(z.data())).toBe(0);
      expect(z.data().length).toBe(4096);
    }
    // small storages stay whole buffers of their own
    const small = zeros([100]).data();
    expect(small.byteOffset).toBe(0);
    expect(small.buffer.byteLength).toBe(400);
    // op outputs, a recycled buffer, quantized codes
    const a = randn([64, 96], { seed: 1 }),
      b = randn([96, 200], { seed: 2 });
    expect(lineOf(matmul(a, b).data())).toBe(0);
    const big = zeros([1 << 21]);
    big.dispose();
    const again = zeros([1 << 21]);
    expect(backend.info().memory.pooledBytes).toBe(0); // it took the disposed buffer
    expect(lineOf(again.data())).toBe(0);
    again.dispose();
    const q = quantize(randn([256, 1024], { seed: 3 }), { bits: 4, groupSize: 64 }); // scales: 16 KiB
    expect(lineOf(q.qweight.data())).toBe(0);
    expect(lineOf(q.scales.data())).toBe(0);
    backend.releaseMemory();
    for (const bad of [0, 3, 8192, 1.5])
      expect(() => addon.addressMod(new Uint8Array(8), bad)).toThrow(TensorfuseError);
    expect(() => addon.addressMod({} as ArrayBufferView, 64)).toThrow(TensorfuseError);
  });

  it('a buffer disposed while an Async op uses it is not lent to another output', async () => {
    backend.releaseMemory();
    const a = randn([1024, 1024], { seed: 11 }); // 4 MiB: pooled size
    const b = randn([1024, 1024], { seed: 12 });
    const want = matmul(a, b).data() as Float32Array;
    const pending = matmulAsync(a, b);
    a.dispose(); // the API forbids this; the op must still read a's values
    for (let i = 0; i < 3; i++) zeros([1 << 20]).dispose(); // would take a's memory and zero it
    const got = (await pending).data() as Float32Array;
    for (let i = 0; i < want.length; i += 997) expect(got[i]).toBe(want[i]);
    expect(a.disposed).toBe(true);
    backend.releaseMemory();
  });

  // From 64 KiB: an op in a loop otherwise takes each output from the top of a heap that grows
  // until the GC runs, and the OS maps every page in on first write.
  it('mid-size outputs (64 KiB to 4 MiB) are recycled too, each size found among many', () => {
    backend.releaseMemory();
    const pooled = () => backend.info().memory.pooledBytes;
    const bufferOf = (n: number) => 4 * n + 64; // float32 storage on a cache line
    const sizes = [16384, 16385, 100_003, 1 << 20]; // 64 KiB, 64 KiB + 4, ~400 KB, 4 MiB
    for (const n of sizes) {
      const t = randn([n], { seed: n });
      const view = t.data();
      t.dispose();
      expect(view.length).toBe(0); // detached: the memory is the pool's now
    }
    const total = sizes.reduce((a, n) => a + bufferOf(n), 0);
    expect(pooled()).toBe(total);
    const small = zeros([16383]); // 65532 bytes: the GC's
    small.dispose();
    expect(pooled()).toBe(total);
    let left = total;
    for (const n of [...sizes].reverse()) {
      const z = zeros([n]);
      left -= bufferOf(n);
      expect(pooled()).toBe(left); // it took exactly the buffer of its size
      const d = z.data() as Float32Array;
      expect(d.length).toBe(n);
      expect(d.every((v) => v === 0)).toBe(true); // zeroed: randn wrote there
      z.dispose();
      left += bufferOf(n);
    }
    expect(backend.releaseMemory()).toBe(total);
    // a limit of 1 MiB drops the oldest buffer first, whatever the sizes
    const out = runInChild(
      `const sizes = [100000, 75000, 50000, 80000];
       for (const n of sizes) tf.zeros([n]).dispose();
       const a = tf.backend.info().memory.pooledBytes;
       const t = tf.zeros([100000]); // its buffer was dropped: a fresh one, the pool unchanged
       const b = tf.backend.info().memory.pooledBytes;
       const u = tf.zeros([75000]);
       console.log(a, b, tf.backend.info().memory.pooledBytes);`,
      { TENSORFUSE_POOL_MB: '1' },
    );
    const kept = bufferOf(75000) + bufferOf(50000) + bufferOf(80000);
    expect(out).toBe(`${kept} ${kept} ${kept - bufferOf(75000)}`);
  });

  it('TENSORFUSE_POOL_MB bounds the pool (0: off)', () => {
    const pkg = JSON.stringify(path.resolve('dist/cjs/index.js'));
    const child = `const tf = require(${pkg});
      const sizes = [];
      for (let i = 0; i < 3; i++) { tf.zeros([1 << 21]).dispose(); sizes.push(tf.backend.info().memory.pooledBytes); }
      const ts = [0, 1, 2].map(() => tf.zeros([1 << 21]));
      for (const t of ts) t.dispose();
      sizes.push(tf.backend.info().memory.pooledBytes);
      console.log(sizes.join(' '));`;
    const run = (mb: string) =>
      spawnSync(process.execPath, ['-e', child], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, TENSORFUSE_POOL_MB: mb },
      });
    const off = run('0');
    expect(off.status).toBe(0);
    expect(off.stdout.trim()).toBe('0 0 0 0');
    const small = run('20'); // two 8 MiB buffers fit, the third drops the oldest
    expect(small.status).toBe(0);
    const mb8 = (8 << 20) + 64; // each 8 MiB storage's buffer, 64 bytes longer (aligned)
    expect(small.stdout.trim()).toBe(`${mb8} ${mb8} ${mb8} ${2 * mb8}`);
  });

  it('setIsa rejects unknown levels', () => {
    expectError(() => backend.setIsa('sse9'), 'ERR_ARG', 'sse9');
    expectError(() => backend.setIsa(3 as unknown as string), 'ERR_ARG', "'isa'");
    backend.setIsa('auto');
  });

  it('TensorfuseError is an Error with a code', () => {
    const e = new TensorfuseError('ERR_ARG', 'x');
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('ERR_ARG');
  });
});
