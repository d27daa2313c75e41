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
});
