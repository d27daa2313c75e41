/** Every export, every argument and every option fed garbage: a TensorfuseError naming it. */
import { describe, expect, it } from 'vitest';
import { backend, linear, linearAsync, matmul, matmulAsync, randn, tensor, zeros } from 'tensorfuse';
import { expectError, expectRejects, rand } from './helpers';

const JUNK: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  NaN,
  'x',
  true,
  {},
  [],
  [[1]],
  () => 1,
  Symbol('s'),
  10n,
  new Float32Array(4),
];

describe('tensor / zeros / randn reject bad arguments', () => {
  it('shape', () => {
    for (const bad of [undefined, null, 3, 'x', [-1], [1.5], [NaN], [Infinity], ['2'], [2 ** 53], [2 ** 30, 2 ** 30]]) {
      expectError(() => zeros(bad as number[]), 'ERR_SHAPE', "'shape'");
      expectError(() => randn(bad as number[]), 'ERR_SHAPE', "'shape'");
    }
    expectError(() => tensor(new Float32Array(6), [2, 2]), 'ERR_SHAPE', '[2, 2]', '6');
    expectError(() => tensor(new Float32Array(6), [2, -3]), 'ERR_SHAPE', "'shape'");
    expectError(() => zeros(new Array(17).fill(1)), 'ERR_SHAPE', 'rank');
  });

  it('data', () => {
    for (const bad of [undefined, null, 3, 'abc', {}, new DataView(new ArrayBuffer(4))])
      expectError(() => tensor(bad as number[], [3]), 'ERR_ARG', "'data'");
    expectError(() => tensor(new Uint16Array(2), [2]), 'ERR_DTYPE', 'float16');
  });

  it('dtype and options', () => {
    for (const bad of ['float64', 'int16', 1, null, {}]) {
      expectError(() => tensor([1], [1], bad as 'float32'), 'ERR_DTYPE', "'dtype'");
      expectError(() => zeros([1], { dtype: bad as 'float32' }), 'ERR_DTYPE', "'dtype'");
      expectError(() => randn([1], { dtype: bad as 'float32' }), 'ERR_DTYPE', "'dtype'");
    }
    for (const bad of ['gpu', 'cuda:x', 'cuda:-1', 3, null])
      expectError(() => zeros([1], { device: bad as 'cpu' }), 'ERR_DEVICE', "'device'");
    expectError(() => zeros([1], { device: 'cuda' }), 'ERR_DEVICE', 'cuda');
    for (const bad of [-1, 1.5, NaN, 'x', 2 ** 60])
      expectError(() => randn([1], { seed: bad as number }), 'ERR_ARG', "'seed'");
    expectError(() => zeros([1], { dtpye: 'float16' } as never), 'ERR_ARG', 'dtpye');
    expectError(() => zeros([1], 'float16' as never), 'ERR_ARG', "'opts'");
  });

  it('Tensor methods', () => {
    const t = rand([2, 3]);
    for (const bad of [undefined, 'float64', 'gpu', 7, null]) expect(() => t.to(bad as 'cpu')).toThrow();
    expectError(() => t.to('gpu' as 'cpu'), 'ERR_DEVICE', "'target'");
    expectError(() => t.to('cuda'), 'ERR_DEVICE', 'cuda');
    // (an element that throws from its own toString / valueOf: the fuzz test's find, seed 318715913)
    const hostile = { toString: 0 };
    const throwing = {
      valueOf: () => {
        throw new Error('valueOf');
      },
    };
    for (const bad of [undefined, null, 'x', [1.5, 4], [2, 'x'], [-2, -3], [hostile], [-1, throwing], [6, 1n]])
      expectError(() => t.reshape(bad as number[]), 'ERR_SHAPE', "'shape'");
  });
});

describe('matmul rejects bad arguments', () => {
  const a = rand([3, 4]);
  const b = rand([4, 5]);
  it('operands', () => {
    for (const bad of JUNK) {
      expectError(() => matmul(bad as never, b), 'ERR_ARG', "'a'");
      expectError(() => matmul(a, bad as never), 'ERR_ARG', "'b'");
    }
    expectError(() => matmul(a, rand([5, 4])), 'ERR_SHAPE', "'b'", '4', '5');
    expectError(() => matmul(a, rand([4])), 'ERR_SHAPE', "'b'");
    expectError(() => matmul(tensor([1], []), b), 'ERR_SHAPE', "'a'");
    expectError(() => matmul(rand([2, 3, 4]), rand([3, 4, 5])), 'ERR_SHAPE', 'broadcast');
    expectError(() => matmul(a, b.to('float16')), 'ERR_DTYPE', "'b'", 'float16');
    expectError(() => matmul(a.to('int8'), b), 'ERR_DTYPE', "'a'", 'int8');
    const d = rand([4, 5]);
    d.dispose();
    expectError(() => matmul(a, d), 'ERR_DISPOSED', "'b'");
  });
  it('options', () => {
    for (const bad of [1, 'x', null, NaN, {}])
      if (bad !== null && typeof bad !== 'object')
        expectError(() => matmul(a, b, { transB: bad as boolean }), 'ERR_ARG', "'transB'");
    expectError(() => matmul(a, b, { transb: true } as never), 'ERR_ARG', 'transb');
    expectError(() => matmul(a, b, 5 as never), 'ERR_ARG', "'opts'");
  });
  it('async twin rejects the same way', async () => {
    await expectRejects(matmulAsync(a, rand([5, 4])), 'ERR_SHAPE', "'b'");
    await expectRejects(matmulAsync(null as never, b), 'ERR_ARG', "'a'");
  });
});

describe('linear rejects bad arguments', () => {
  const x = rand([3, 4]);
  const w = rand([5, 4]);
  it('operands', () => {
    for (const bad of JUNK) {
      expectError(() => linear(bad as never, w), 'ERR_ARG', "'x'");
      expectError(() => linear(x, bad as never), 'ERR_ARG', "'w'");
    }
    expectError(() => linear(x, rand([4, 5])), 'ERR_SHAPE', "'w'");
    expectError(() => linear(x, rand([5, 4, 1])), 'ERR_SHAPE', "'w'");
    expectError(() => linear(x, w.to('bfloat16')), 'ERR_DTYPE', "'w'");
    expectError(() => linear(x, { kind: 'quantized' } as never), 'ERR_ARG', 'w.bits'); // test/quant.test.ts has the rest
    expectError(() => linear(x, { kind: 'sparse' } as never), 'ERR_ARG', "'w'", 'SparseTensor');
  });
  it('options', () => {
    for (const bad of JUNK.filter((v) => v !== undefined))
      expectError(() => linear(x, w, { bias: bad as never }), 'ERR_ARG', "'bias'");
    expectError(() => linear(x, w, { bias: rand([4]) }), 'ERR_SHAPE', "'bias'");
    expectError(() => linear(x, w, { bias: zeros([5], { dtype: 'int32' }) }), 'ERR_DTYPE', "'bias'");
    for (const bad of ['int4', 1, null, true])
      expectError(() => linear(x, w, { activation: bad as 'float' }), 'ERR_ARG', "'activation'");
    expectError(() => linear(x, w, { activation: 'int8' }), 'ERR_ARG', 'int8');
    expectError(() => linear(x, w, { biass: 1 } as never), 'ERR_ARG', 'biass');
  });
  it('async twin rejects the same way', async () => {
    await expectRejects(linearAsync(x, rand([4, 5])), 'ERR_SHAPE', "'w'");
  });
});

describe('backend rejects bad arguments', () => {
  it('setThreads / setIsa', () => {
    for (const bad of JUNK)
      if (!(typeof bad === 'number' && Number.isInteger(bad) && bad >= 1))
        expectError(() => backend.setThreads(bad as number), 'ERR_ARG');
    for (const bad of JUNK) if (typeof bad !== 'string') expectError(() => backend.setIsa(bad as string), 'ERR_ARG');
  });
});

describe('the native layer checks again (second line of defence)', () => {
  it('rejects short buffers, bad dtypes and overflowing sizes with a TensorfuseError', async () => {
    const { native } = await import('../dist/cjs/native.js');
    const f = new Float32Array(4);
    expectError(() => native.gemm(f, 0, f, 0, f, 0, 1, 3, 3, 3, false, 0, 0, 0, null, 0), 'ERR_SHAPE', "'a'");
    expectError(() => native.gemm(f, 3, f, 0, f, 0, 1, 1, 1, 1, false, 0, 0, 0, null, 0), 'ERR_DTYPE');
    expectError(
      () => native.gemm(f, 0, f, 0, f, 0, 1, 2 ** 40, 2 ** 40, 2 ** 40, false, 0, 0, 0, null, 0),
      'ERR_ARG',
      'overflow',
    );
    expectError(() => native.gemm(f, 0, f, 0, f, 0, 1, -1, 1, 1, false, 0, 0, 0, null, 0), 'ERR_ARG', "'M'");
    expectError(() => native.gemm(f, 0, f, 0, f, 0, 1, 1, 1, 1, false, 0, 0, 0, 'x' as never, 0), 'ERR_ARG', "'bias'");
    expectError(() => native.gemm(f, 0, f, 0, f, 0, 1, 1, 1, 1, false, 0, 0, 0, null, 9), 'ERR_ARG', "'activation'");
    expectError(() => (native.gemm as (...a: unknown[]) => void)(), 'ERR_ARG');
    expectError(() => native.convert(f, 0, f, 9, 4), 'ERR_ARG', "'dst.dtype'");
    expectError(() => native.convert(f, 0, new Uint8Array(2), 4, 4), 'ERR_SHAPE', "'dst'");
  });
});
