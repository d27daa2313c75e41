/** Shape checks shared by Tensor and the ops. */
import { constants } from 'node:buffer';
import { describe, fail } from './errors.js';

export const MAX_RANK = 16;

/** Validates a shape argument: an array of non-negative safe integers. Returns a frozen copy. */
export function checkShape(shape: unknown, where: string): readonly number[] {
  if (!Array.isArray(shape)) fail('ERR_SHAPE', where, `expected an array of sizes, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) fail('ERR_SHAPE', where, `rank ${shape.length} exceeds the maximum ${MAX_RANK}`);
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      fail('ERR_SHAPE', where, `size ${i} must be a non-negative integer, got ${describe(d)}`);
    n *= d;
    if (!Number.isSafeInteger(n)) fail('ERR_SHAPE', where, `element count of [${shape.join(', ')}] overflows`);
  }
  return Object.freeze(shape.slice() as number[]);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Bytes of `n` elements of `bytesPerElement`, checked against the largest ArrayBuffer. */
export function checkBytes(n: number, bytesPerElement: number, where: string): number {
  const bytes = n * bytesPerElement;
  if (!Number.isSafeInteger(bytes) || bytes > MAX_BUFFER_BYTES)
    fail('ERR_OOM', where, `${n} elements (${bytes} bytes) exceed the largest buffer this runtime can allocate`);
  return bytes;
}

// The largest ArrayBuffer this runtime allocates (4 GiB on 64-bit Node 20).
const MAX_BUFFER_BYTES = constants.MAX_LENGTH;
