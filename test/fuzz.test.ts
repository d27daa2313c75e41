/**
 * Property-based junk: thousands of calls of every export with random arguments. Each call
 * either returns or throws a TensorfuseError; the process never crashes and never hangs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as tf from 'tensorfuse';
import { RUN_SEED } from './helpers';

const dtypes = ['float32', 'float16', 'bfloat16', 'int8', 'uint8', 'int32', 'float64', '', 'x'];

const arbShape = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 4 }),
  fc.array(fc.oneof(fc.integer({ min: -3, max: 9 }), fc.double(), fc.constant(2 ** 40), fc.constant(NaN)), {
    maxLength: 5,
  }),
  fc.anything(),
);

const arbTensor = fc
  .record({
    shape: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 0, maxLength: 4 }),
    dtype: fc.constantFrom('float32', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'),
    disposed: fc.boolean(),
  })
  .map(({ shape, dtype, disposed }) => {
    const t = tf.randn(shape, { dtype: dtype as tf.DType, seed: 1 });
    if (disposed && Math.random() < 0.2) t.dispose();
    return t;
  });

const arbValue = fc.oneof(
  { weight: 4, arbitrary: arbTensor },
  { weight: 1, arbitrary: fc.anything() },
  {
    weight: 1,
    arbitrary: fc.constantFrom(null, undefined, NaN, -1, 0, 1.5, 'cuda', { kind: 'quantized' }, { kind: 'sparse' }),
  },
);

const arbOpts = fc.oneof(
  fc.constant(undefined),
  fc.record(
    {
      transB: fc.oneof(fc.boolean(), fc.anything()),
      bias: arbValue,
      activation: fc.constantFrom('float', 'int8', 'x', 3),
      dtype: fc.constantFrom(...dtypes),
      device: fc.constantFrom('cpu', 'cuda', 'cuda:0', 'tpu'),
      seed: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.double()),
    },
    { requiredKeys: [] },
  ),
  fc.anything(),
);

function survives(fn: () => unknown): void {
  try {
    const r = fn();
    if (r instanceof Promise) r.catch(() => {});
  } catch (e) {
    if (!(e instanceof tf.TensorfuseError)) throw new Error(`not a TensorfuseError: ${String(e)}`);
    expect(typeof e.code).toBe('string');
  }
}

describe('random junk never crashes', () => {
  const params = { numRuns: 1500, seed: RUN_SEED };

  it('tensor / zeros / randn', () => {
    fc.assert(
      fc.property(arbShape, fc.constantFrom(...dtypes), arbOpts, fc.anything(), (shape, dtype, opts, data) => {
        survives(() => tf.zeros(shape as number[], opts as never));
        survives(() => tf.randn(shape as number[], opts as never));
        survives(() => tf.tensor(data as number[], shape as number[], dtype as tf.DType));
        survives(() => tf.tensor(new Float32Array(6), shape as number[], dtype as tf.DType));
      }),
      params,
    );
  });

  it('matmul / linear and their async twins', async () => {
    await fc.assert(
      fc.asyncProperty(arbValue, arbValue, arbOpts, async (a, b, opts) => {
        survives(() => tf.matmul(a as tf.Tensor, b as tf.Tensor, opts as never));
        survives(() => tf.linear(a as tf.Tensor, b as tf.Tensor, opts as never));
        await tf.matmulAsync(a as tf.Tensor, b as tf.Tensor, opts as never).catch((e) => {
          if (!(e instanceof tf.TensorfuseError)) throw e;
        });
        await tf.linearAsync(a as tf.Tensor, b as tf.Tensor, opts as never).catch((e) => {
          if (!(e instanceof tf.TensorfuseError)) throw e;
        });
      }),
      { ...params, numRuns: 1000 },
    );
  });

  it('Tensor methods and backend', () => {
    fc.assert(
      fc.property(arbTensor, fc.anything(), arbShape, (t, junk, shape) => {
        survives(() => t.reshape(shape as number[]));
        survives(() => t.to(junk as tf.DType));
        survives(() => t.to(fc.sample(fc.constantFrom(...dtypes), 1)[0] as tf.DType));
        survives(() => t.toFloat32());
        survives(() => tf.backend.setIsa(junk as string));
        if (typeof junk !== 'number') survives(() => tf.backend.setThreads(junk as number));
      }),
      params,
    );
    tf.backend.setIsa('auto');
  });

  // Hostile values as well as random ones: objects whose toString / valueOf throw or are not
  // functions, symbols, bigints (any of them once reached arithmetic or a template string).
  const hostile = fc.constantFrom(
    { toString: 0 },
    {
      valueOf: () => {
        throw new Error('valueOf');
      },
    },
    Symbol('s'),
    10n,
    2 ** 40,
    -1,
    [1, 2],
  );
  const arbJunk = fc.oneof(arbValue, hostile);
  // options objects with an op's own keys (so that a bad value meets the code that reads it)
  const optsOf = (...keys: string[]) =>
    fc.oneof(
      { weight: 1, arbitrary: arbJunk },
      { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...keys), arbJunk, { maxKeys: 3 }) },
    );
  const attnOpts = optsOf(
    ...['layout', 'causal', 'scale', 'mask', 'window', 'softcap', 'alibiSlopes', 'seqlensK'],
    ...['cuSeqlensQ', 'cuSeqlensK', 'returnLse'],
  );
  const quantOpts = optsOf('bits', 'groupSize', 'symmetric', 'activation', 'bias', 'qweight', 'scales');
  const moeOpts = optsOf(
    ...['topK', 'scoring', 'groups', 'bias', 'renormalize', 'capacityFactor', 'scale'],
    ...['numExperts', 'blockSize', 'activations', 'act', 'w1', 'w2', 'w3'],
  );
  const pruneOpts = optsOf('n', 'm', 'keep', 'method', 'axis', 'ratio', 'heads', 'headDim', 'dim');
  const floatOf = (shape: number[]) =>
    fc
      .constantFrom('float32', 'float16', 'bfloat16', 'int8')
      .map((d) => tf.randn(shape, { dtype: d as tf.DType, seed: 2 }));

  it('attention, quantized, MoE and pruning ops', () => {
    const q = tf.quantize(tf.randn([8, 64], { seed: 1 }), { bits: 4, groupSize: 32 });
    const r = tf.moe.route(tf.randn([4, 8], { seed: 1 }), { topK: 2 });
    const experts = {
      w1: tf.randn([8, 4, 8], { seed: 2 }),
      w3: tf.randn([8, 4, 8], { seed: 3 }),
      w2: tf.randn([8, 8, 4], { seed: 4 }),
    };
    const qkv = fc
      .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }))
      .chain(([b, s, h]) => fc.tuple(floatOf([b, s, h, 8]), floatOf([b, s, h, 8]), floatOf([b, s, h, 8])));
    const run = { ...params, numRuns: 300 };
    fc.assert(
      fc.property(qkv, attnOpts, ([a, b, c], o) => survives(() => tf.attention(a, b, c, o as never))),
      run,
    );
    fc.assert(
      fc.property(arbJunk, arbJunk, arbJunk, attnOpts, (a, b, c, o) =>
        survives(() => tf.attention(a as tf.Tensor, b as tf.Tensor, c as tf.Tensor, o as never)),
      ),
      run,
    );
    fc.assert(
      fc.property(arbJunk, floatOf([4, 64]), quantOpts, (w, good, o) => {
        survives(() => tf.quantize(w as tf.Tensor, o as never));
        survives(() => tf.quantize(good, o as never));
        survives(() => tf.dequantize(w as tf.QTensor));
        survives(() => tf.linear(w as tf.Tensor, q, o as never));
        survives(() => tf.linear(good.reshape([2, 128]), w as tf.QTensor, o as never));
        survives(() => tf.linear(good.reshape([4, 64]), q, o as never));
        survives(() => tf.fromGPTQ(o as never));
        survives(() => tf.fromAWQ(o as never));
        survives(() => tf.fromGGML(w as 'q4_0', o as Uint8Array, w as [number, number]));
        survives(() => tf.sliceExpert(w as tf.QTensor, o as number));
      }),
      run,
    );
    fc.assert(
      fc.property(arbJunk, floatOf([4, 8]), moeOpts, (v, x, o) => {
        survives(() => tf.moe.route(v as tf.Tensor, o as never));
        survives(() => tf.moe.route(x, o as never));
        survives(() => tf.moe.align(v as tf.Tensor, o as never));
        survives(() => tf.moe.dispatch(v as tf.Tensor, r));
        survives(() => tf.moe.dispatch(x, v as tf.moe.Routing));
        survives(() => tf.moe.combine(v as tf.Tensor, r));
        survives(() => tf.moe.ffn(x, r, v as never, o as never));
        survives(() => tf.moe.ffn(x, r, experts, o as never));
        survives(() => tf.moe.ffn(x, r, { ...experts, ...(o as object) }));
        survives(() => tf.moe.ffn(v as tf.Tensor, r, o as never));
      }),
      run,
    );
    fc.assert(
      fc.property(arbJunk, floatOf([4, 16]), pruneOpts, (v, w, o) => {
        survives(() => tf.prune.score(v as tf.Tensor, o as never));
        survives(() => tf.prune.nm(v as tf.Tensor, o as never));
        survives(() => tf.prune.nm(w, o as never));
        survives(() => tf.prune.compress(v as tf.Tensor, o as never));
        survives(() => tf.prune.decompress(v as never));
        survives(() => tf.prune.channels(w, v as never, o as never));
        survives(() => tf.prune.ffn(v as never, w as never, o as never));
        survives(() => tf.prune.heads(w, v as never, o as never));
      }),
      run,
    );
  });
});
