/**
 * Recycled CPU storage. A large op output is a fresh ArrayBuffer, and the OS maps its pages in
 * when they are first written: on a paravirtualised host about 25 ms for a 32 MiB attention
 * output, a tenth of the call (bench/NOTES.md, "Zen 5, session 16"). dispose() of a tensor whose
 * buffer allocate() made detaches that buffer (so every view of it, data() included, reads as
 * empty: nothing can read or write the memory through the old tensor again) and keeps the memory
 * here for the next allocation of the same byte length, already mapped: PyTorch's caching
 * allocator, on the CPU. Tensors that are never disposed are left to the GC as before.
 *
 * Bounded: at most TENSORFUSE_POOL_MB MiB (default 256; 0 turns the pool off) in all, the oldest
 * buffers dropped first; backend.releaseMemory() empties it.
 */

/**
 * Buffers from this size on are recycled by dispose(). Below it malloc reuses freed memory well
 * enough; above, an op called in a loop gets each output from the top of a heap that grows until
 * the GC frees the old ones, and the OS maps every page in on first write: a 2 MiB output took
 * 500-950 page faults, 7 ms of a 14 ms int4 linear, and a 128 x 128 matmul (64 KiB out) ran at a
 * median 265-343 us instead of 26-39 (Node, Zen 5 VM; bench/NOTES.md, "Zen 5, session 20").
 */
export const POOLED_BUFFER_BYTES = 1 << 16;

/**
 * Fresh buffers from this size on are prefaulted by allocate(): one madvise for all their pages
 * instead of a fault each (below it the call costs more than it saves when the memory is reused).
 */
export const LARGE_BUFFER_BYTES = 1 << 22;

const limitBytes = (() => {
  const v = process.env.TENSORFUSE_POOL_MB;
  const mb = v === undefined || v === '' ? 256 : Number(v);
  return Number.isFinite(mb) && mb >= 0 ? Math.floor(mb * 1024 * 1024) : 256 * 1024 * 1024;
})();

/** Free buffers by byte length (each list oldest first), and all of them oldest first. */
const bySize = new Map<number, ArrayBuffer[]>();
const byAge = new Set<ArrayBuffer>();
let freeBytes = 0;

/**
 * Typed arrays made by allocate() over a whole buffer of their own: false until a tensor wraps
 * one, true once one does. A second wrap (the user wrapped data() again, or an op reused the
 * storage) drops the entry: disposing either tensor must not take the memory from the other.
 */
const owned = new WeakMap<object, boolean>();

/** A recycled buffer of exactly `bytes` bytes, zero-filled, or null when none is free. */
export function takeBuffer(bytes: number): ArrayBuffer | null {
  const buf = bySize.get(bytes)?.pop(); // the most recent: the likeliest still in cache
  if (!buf) return null;
  byAge.delete(buf);
  freeBytes -= bytes;
  new Uint8Array(buf).fill(0);
  return buf;
}

/** Marks `storage` (a typed array over a buffer of its own that allocate() made) as recyclable. */
export function markOwned(storage: ArrayBufferView): void {
  if (storage.byteLength >= POOLED_BUFFER_BYTES && limitBytes > 0) owned.set(storage, false);
}

/** Records that a tensor wraps `storage` (every Tensor constructor path for CPU storage calls it). */
export function claim(storage: object): void {
  const wrapped = owned.get(storage);
  if (wrapped === false) owned.set(storage, true);
  else if (wrapped === true) owned.delete(storage);
}

/** True when dispose() may recycle `storage`: made by allocate() and wrapped by one tensor. */
export function isOwned(storage: object): boolean {
  return owned.get(storage) === true;
}

/** Buffers that Async ops in flight read or write: how many such ops hold each. */
const busy = new WeakMap<ArrayBufferLike, number>();

/** Marks the buffers of the typed arrays among `args` as in use by an Async op; returns them. */
export function holdBuffers(args: readonly unknown[]): ArrayBufferLike[] {
  const held: ArrayBufferLike[] = [];
  for (const a of args) {
    if (!ArrayBuffer.isView(a) || a.buffer.byteLength < POOLED_BUFFER_BYTES) continue;
    busy.set(a.buffer, (busy.get(a.buffer) ?? 0) + 1);
    held.push(a.buffer);
  }
  return held;
}

/** The op that holdBuffers() marked them for has settled. */
export function releaseBuffers(held: readonly ArrayBufferLike[]): void {
  for (const b of held) {
    const n = (busy.get(b) ?? 1) - 1;
    if (n > 0) busy.set(b, n);
    else busy.delete(b);
  }
}

/**
 * Detaches the buffer of `storage` (an owned typed array) and keeps its memory for reuse. A
 * buffer that an Async op still uses (the tensor was disposed while the op ran, which the API
 * forbids) or that cannot be transferred is left to the GC as it is.
 */
export function recycle(storage: ArrayBufferView): void {
  owned.delete(storage);
  if (busy.has(storage.buffer)) return;
  let buf: ArrayBuffer;
  try {
    buf = structuredClone(storage.buffer, { transfer: [storage.buffer as ArrayBuffer] }) as ArrayBuffer;
  } catch {
    return;
  }
  if (buf.byteLength > limitBytes) return;
  const list = bySize.get(buf.byteLength);
  if (list) list.push(buf);
  else bySize.set(buf.byteLength, [buf]);
  byAge.add(buf);
  freeBytes += buf.byteLength;
  while (freeBytes > limitBytes) {
    const old = byAge.values().next().value as ArrayBuffer;
    byAge.delete(old);
    const same = bySize.get(old.byteLength)!;
    same.splice(same.indexOf(old), 1); // the oldest of its size: at the front
    freeBytes -= old.byteLength;
  }
}

/** Drops every free buffer (the GC then gives the memory back); returns the bytes dropped. */
export function releaseMemory(): number {
  const n = freeBytes;
  bySize.clear();
  byAge.clear();
  freeBytes = 0;
  return n;
}

/** Bytes kept for reuse now. */
export function pooledBytes(): number {
  return freeBytes;
}
