/** Shared test helpers: seeded inputs (seed printed on failure), error checks, ISA sweeps. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { Tensor, TensorfuseError, backend, randn, type DType } from 'tensorfuse';

/** A fresh seed per run unless TEST_SEED is set; printed by `withSeed` when a check fails. */
export const RUN_SEED = process.env.TEST_SEED ? Number(process.env.TEST_SEED) : Math.floor(Math.random() * 2 ** 31);

/** Runs fn(seed) and prefixes any failure with the seed needed to reproduce it. */
/** The bytes of a typed array's own elements (a large storage is a view into a longer buffer). */
export function bytesOf(v: ArrayBufferView): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function withSeed<T>(label: string, fn: (seed: number) => T, offset = 0): T {
  const seed = RUN_SEED + offset;
  try {
    return fn(seed);
  } catch (e) {
    (e as Error).message = `[${label}; reproduce with TEST_SEED=${RUN_SEED}] ${(e as Error).message}`;
    throw e;
  }
}

let seedCounter = 0;
/** randn with a fresh seed derived from the run seed. */
export function rand(shape: number[], dtype: DType = 'float32'): Tensor {
  seedCounter += 1;
  return randn(shape, { dtype, seed: RUN_SEED * 7919 + seedCounter });
}

/** Asserts fn throws a TensorfuseError with `code` and a message mentioning every `words`. */
export function expectError(fn: () => unknown, code: string, ...words: string[]): TensorfuseError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a ${code}`).toBeInstanceOf(TensorfuseError);
  const err = caught as TensorfuseError;
  expect(err.code, err.message).toBe(code);
  for (const w of words) expect(err.message).toContain(w);
  return err;
}

export async function expectRejects(p: Promise<unknown>, code: string, ...words: string[]): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TensorfuseError);
  expect((caught as TensorfuseError).code).toBe(code);
  for (const w of words) expect((caught as TensorfuseError).message).toContain(w);
}

/** Every kernel level this machine runs ('generic' first: the scalar reference path). */
export const ISAS: string[] = backend.info().cpu.isas;

/** Runs fn under each kernel level, restoring the best one afterwards. */
export function forEachIsa(fn: (isa: string) => void): void {
  try {
    for (const isa of ISAS) {
      backend.setIsa(isa);
      fn(isa);
    }
  } finally {
    backend.setIsa('auto');
  }
}

/** Relative-norm tolerance of float32 accumulation over K terms, per storage dtype. */
export function tolerance(dtype: DType, K: number): number {
  const eps = dtype === 'float32' ? 2 ** -24 : dtype === 'float16' ? 2 ** -11 : 2 ** -8;
  // inputs are exact in their dtype; outputs are rounded once to it; float32 sums add ~sqrt(K) eps
  return (
    (dtype === 'float32' ? 4 * Math.sqrt(Math.max(K, 1)) * eps : 2 * eps) + 8 * Math.sqrt(Math.max(K, 1)) * 2 ** -24
  );
}

/**
 * Runs `body` in a fresh Node process (with `tf` bound to the built package and the extra
 * environment variables set) and returns its trimmed stdout; a non-zero exit fails the test.
 * For settings read once at load (TENSORFUSE_* variables).
 */
export function runInChild(body: string, env: Record<string, string>): string {
  const script = `const tf = require(${JSON.stringify(path.resolve('dist/cjs/index.js'))});\n${body}`;
  const r = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}
