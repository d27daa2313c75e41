/**
 * Tensor: a dtype, a shape and a storage. CPU storage is a JS ArrayBuffer (zero-copy both ways,
 * owned by the GC); reshape() views share it; dispose() drops it for every view at once.
 */
import {
  DTYPE_BYTES,
  DTYPE_CODE,
  STORAGE,
  bfloat16Bits,
  checkDType,
  dtypeOfArray,
  float16Bits,
  isDType,
  type DType,
  type Storage,
  type TypedArray,
} from './dtype.js';
import { TensorfuseError, describe, fail } from './errors.js';
import { native } from './native.js';
import { LARGE_BUFFER_BYTES, POOLED_BUFFER_BYTES, claim, isOwned, markOwned, recycle, takeBuffer } from './pool.js';
import { checkBytes, checkShape, fmtShape, numel } from './shape.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/**
 * util.inspect's hook, taken from the symbol registry (it is `inspect.custom`): importing
 * node:util here would make the published types need @types/node.
 */
const inspectCustom: unique symbol = Symbol.for('nodejs.util.inspect.custom') as never;

/**
 * Shared by a tensor and its views; `data` becomes null on dispose. A sub-range view of another
 * tensor's storage (sliceExpert) has its own cell whose `parent` is the viewed tensor's cell, so
 * disposing the parent drops the view too.
 */
interface Cell {
  data: Storage | null;
  parent?: Cell;
}

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly device: Device;
  readonly size: number;
  readonly #cell: Cell;

  /** @internal Use tensor(), zeros() or randn(). */
  constructor(cell: Cell, dtype: DType, shape: readonly number[], device: Device = 'cpu') {
    if (typeof cell !== 'object' || cell === null || !('data' in cell) || !Array.isArray(shape))
      fail('ERR_ARG', 'Tensor', 'the constructor is internal: make tensors with tensor(), zeros() or randn()');
    this.#cell = cell;
    this.dtype = dtype;
    this.shape = shape;
    this.device = device;
    this.size = numel(shape);
    // dtype, shape, device and size describe the storage: assigning one would make every op
    // read the storage as something it is not
    Object.freeze(this);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** True once dispose() was called on this tensor or on one sharing its storage. */
  get disposed(): boolean {
    if (!Tensor.isTensor(this)) return true;
    for (let c: Cell | undefined = this.#cell; c; c = c.parent) if (c.data === null) return true;
    return false;
  }

  /**
   * The storage as a TypedArray: a zero-copy view on the CPU (float16/bfloat16 as raw Uint16
   * bits). Writing to it changes the tensor.
   */
  data(): Storage {
    return storageOf(this, 'tensor', 'data');
  }

  /** A float32 copy of the values. */
  toFloat32(): Float32Array {
    const src = storageOf(this, 'tensor', 'toFloat32');
    if (this.dtype === 'float32') return (src as Float32Array).slice();
    const out = allocate('float32', this.size, 'toFloat32') as Float32Array;
    native.convert(src, DTYPE_CODE[this.dtype], out, DTYPE_CODE.float32, this.size);
    return out;
  }

  /** A view with a new shape and the same storage; one size may be -1 (inferred). */
  reshape(shape: number[]): Tensor {
    const where = "reshape: argument 'shape'";
    storageOf(this, 'tensor', 'reshape');
    if (!Array.isArray(shape)) fail('ERR_SHAPE', where, `expected an array of sizes, got ${describe(shape)}`);
    let infer = -1;
    let known = 1;
    for (let i = 0; i < shape.length; i++) {
      const d: unknown = shape[i];
      if (d === -1) {
        if (infer >= 0) fail('ERR_SHAPE', where, 'only one size may be -1');
        infer = i;
      } else if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        // checked before any arithmetic: an object element could throw from its own toString
        fail('ERR_SHAPE', where, `size ${i} must be a non-negative integer or -1, got ${describe(d)}`);
      } else {
        known *= d;
      }
    }
    const resolved = shape.slice();
    if (infer >= 0) {
      if (!Number.isSafeInteger(known) || known <= 0 || this.size % known !== 0)
        fail('ERR_SHAPE', where, `cannot infer -1 in ${fmtShape(shape)} for ${this.size} elements`);
      resolved[infer] = this.size / known;
    }
    const checked = checkShape(resolved, where);
    if (numel(checked) !== this.size)
      fail(
        'ERR_SHAPE',
        where,
        `${fmtShape(checked)} has ${numel(checked)} elements, the tensor ${fmtShape(this.shape)} has ${this.size}`,
      );
    return new Tensor(this.#cell, this.dtype, checked, this.device);
  }

  /**
   * A copy converted to another dtype (floats round to nearest even; floats to integers
   * truncate toward zero and saturate, NaN -> 0) or moved to another device.
   */
  to(target: Device | DType): Tensor {
    const src = storageOf(this, 'tensor', 'to');
    if (isDType(target)) {
      const out = allocate(target, this.size, 'to');
      native.convert(src, DTYPE_CODE[this.dtype], out, DTYPE_CODE[target], this.size);
      claim(out);
      return new Tensor({ data: out }, target, this.shape, this.device);
    }
    const device = checkDevice(target, "to: argument 'target'");
    if (device === 'cpu') return new Tensor({ data: src.slice() }, this.dtype, this.shape, 'cpu');
    return fail(
      'ERR_DEVICE',
      'to',
      `device '${device}' is not available: this build of tensorfuse runs on the CPU only`,
    );
  }

  /**
   * Drops the storage now (for every view sharing it); any later use throws ERR_DISPOSED. A large
   * buffer that an op or zeros / randn allocated for this tensor alone is detached (views of it
   * from data() then read as empty) and its memory kept for the next output (lib/pool.ts).
   */
  dispose(): void {
    if (!Tensor.isTensor(this))
      fail('ERR_ARG', "dispose: argument 'this'", `expected a Tensor made by tensorfuse, got ${describe(this)}`);
    const cell = this.#cell;
    const data = cell.data;
    cell.data = null;
    if (data && !cell.parent && isOwned(data)) recycle(data);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    if (!Tensor.isTensor(this)) return 'Tensor(not made by tensorfuse)';
    return `Tensor(${this.dtype}, ${fmtShape(this.shape)}${this.device === 'cpu' ? '' : `, ${this.device}`}${this.disposed ? ', disposed' : ''})`;
  }

  [inspectCustom](): string {
    return this.toString();
  }

  /** @internal */
  static cellOf(t: Tensor): Cell {
    return t.#cell;
  }

  /**
   * @internal True for an object built by this class's constructor. `instanceof` alone also
   * accepts Object.create(Tensor.prototype), which has no storage.
   */
  static isTensor(v: unknown): v is Tensor {
    return typeof v === 'object' && v !== null && #cell in v;
  }
}

/**
 * The storage of `t`: ERR_ARG for an object that only looks like a Tensor, ERR_DISPOSED when it
 * (or the tensor it is a view of) was disposed or its buffer was detached. `op`, when given,
 * prefixes the message.
 */
export function storageOf(t: Tensor, name: string, op?: string): Storage {
  const where = op ? `${op}: argument '${name}'` : `argument '${name}'`;
  if (!Tensor.isTensor(t))
    fail(
      'ERR_ARG',
      where,
      `expected a Tensor made by tensorfuse (tensor(), zeros(), randn(), an op), got ${describe(t)}`,
    );
  const cell = Tensor.cellOf(t);
  for (let c: Cell | undefined = cell; c; c = c.parent)
    if (c.data === null) throw new TensorfuseError('ERR_DISPOSED', `${where}: the tensor was disposed`);
  const data = cell.data!;
  // A tensor's storage holds its size elements from creation on; only a detached buffer (moved
  // away by postMessage / structuredClone transfer) reads as 0 bytes afterwards.
  if (data.byteLength === 0 && t.size > 0)
    throw new TensorfuseError(
      'ERR_DISPOSED',
      `${where}: the tensor's ArrayBuffer was detached (transferred by postMessage or structuredClone)`,
    );
  return data;
}

export function checkDevice(v: unknown, where: string): Device {
  if (v === 'cpu' || v === 'cuda') return v;
  if (typeof v === 'string' && /^cuda:(0|[1-9][0-9]{0,3})$/.test(v)) return v as Device;
  return fail('ERR_DEVICE', where, `expected 'cpu', 'cuda' or 'cuda:N', got ${describe(v)}`);
}

/**
 * Storages from this size on start on a 64-byte cache line: a JS ArrayBuffer's memory comes from
 * malloc and starts 16 bytes into a line, so every 64-byte vector load of a kernel straddles two
 * lines (twice the L1 accesses: moe.ffn on DeepSeek-like float32 experts so placed ran 7-10%
 * slower in Node, 15-20% in a C++ loop; bench/NOTES.md, "Zen 5, session 20"). Such a storage is a
 * view 0-48 bytes into a buffer 64 bytes longer than it.
 */
export const ALIGNED_BUFFER_BYTES = 4096;
const CACHE_LINE = 64;

/**
 * A fresh zero-filled typed array of n elements of `Ctor`, on a cache line when large (above);
 * `reused` is a recycled buffer of the length alignedBufferBytes() gives.
 */
export function alignedArray<A extends ArrayBufferView>(
  Ctor: new (buffer: ArrayBuffer, byteOffset: number, length: number) => A,
  elementBytes: number,
  n: number,
  reused: ArrayBuffer | null = null,
): A {
  const bytes = n * elementBytes;
  const buf = reused ?? new ArrayBuffer(alignedBufferBytes(bytes));
  if (bytes < ALIGNED_BUFFER_BYTES) return new Ctor(buf, 0, n);
  const mod = native.addressMod(new Uint8Array(buf, 0, 1), CACHE_LINE);
  return new Ctor(buf, (CACHE_LINE - mod) % CACHE_LINE, n);
}

/** The ArrayBuffer length behind a storage of `bytes` bytes (alignedArray). */
export function alignedBufferBytes(bytes: number): number {
  return bytes < ALIGNED_BUFFER_BYTES ? bytes : bytes + CACHE_LINE;
}

/** A fresh zero-filled storage of n elements of dtype. */
export function allocate(dtype: DType, n: number, op: string): Storage {
  checkBytes(n, DTYPE_BYTES[dtype], op);
  let out: Storage;
  // a disposed tensor's buffer of this size, its pages already mapped (lib/pool.ts)
  const bytes = n * DTYPE_BYTES[dtype];
  const reused = bytes >= POOLED_BUFFER_BYTES ? takeBuffer(alignedBufferBytes(bytes)) : null;
  try {
    out = alignedArray(STORAGE[dtype] as never, DTYPE_BYTES[dtype], n, reused) as Storage;
  } catch (e) {
    return fail('ERR_OOM', op, `cannot allocate ${n} ${dtype} elements: ${(e as Error).message}`);
  }
  // A large buffer comes fresh from the OS: its pages are mapped in by one call instead of one
  // fault each when the kernel first writes them (on a paravirtualised host a 32 MiB attention
  // output cost ~130 ms in faults, ~30 ms this way; bench/NOTES.md, "Zen 5").
  if (!reused && bytes >= LARGE_BUFFER_BYTES) native.prefault(out);
  markOwned(out);
  return out;
}

/** A fresh zero-filled Float64Array of n elements (scratch for reductions), or ERR_OOM naming op. */
export function allocateFloat64(n: number, op: string): Float64Array {
  checkBytes(n, 8, op);
  try {
    return new Float64Array(n);
  } catch (e) {
    return fail('ERR_OOM', op, `cannot allocate ${n} float64 elements: ${(e as Error).message}`);
  }
}

/** @internal Wraps a storage (no copy, no checks). */
export function wrap(data: Storage, dtype: DType, shape: readonly number[]): Tensor {
  claim(data);
  return new Tensor({ data }, dtype, shape, 'cpu');
}

/**
 * @internal Wraps `data`, a sub-range of `parent`'s storage, as a tensor that is disposed with
 * `parent` (disposing the view alone leaves the parent alive). No parent: the same as wrap().
 */
export function wrapView(data: Storage, dtype: DType, shape: readonly number[], parent?: Tensor): Tensor {
  claim(data);
  return new Tensor(parent ? { data, parent: Tensor.cellOf(parent) } : { data }, dtype, shape, 'cpu');
}

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int32: [-2147483648, 2147483647],
};

/**
 * A tensor from values. A TypedArray whose type matches the dtype's storage is wrapped without
 * a copy (Float32Array for float32, Uint16Array of raw bits for float16/bfloat16, Int8Array,
 * Uint8Array, Int32Array); anything else is converted. Integer dtypes take integers in range.
 * @example tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
 */
export function tensor(data: TypedArray | ArrayLike<number>, shape: number[], dtype?: DType): Tensor {
  const where = 'tensor';
  if (data === null || typeof data !== 'object' || typeof (data as ArrayLike<number>).length !== 'number')
    fail('ERR_ARG', `${where}: argument 'data'`, `expected a TypedArray or an array of numbers, got ${describe(data)}`);
  if (ArrayBuffer.isView(data) && data instanceof DataView)
    fail('ERR_ARG', `${where}: argument 'data'`, 'a DataView is not accepted: pass a TypedArray');
  // The native layer reads only ArrayBuffer memory: a shared buffer, which another thread may
  // write at any time, is refused here rather than in every op.
  if (ArrayBuffer.isView(data) && isShared(data.buffer))
    fail(
      'ERR_ARG',
      `${where}: argument 'data'`,
      `a ${data.constructor.name} backed by a SharedArrayBuffer is not accepted: copy it first (data.slice())`,
    );
  const s = checkShape(shape, `${where}: argument 'shape'`);
  const n = numel(s);
  const len = (data as ArrayLike<number>).length;
  if (!Number.isSafeInteger(len) || len < 0)
    fail('ERR_ARG', `${where}: argument 'data'`, `invalid length ${describe(len)}`);
  if (len !== n) fail('ERR_SHAPE', `${where}: argument 'shape'`, `${fmtShape(s)} needs ${n} elements, data has ${len}`);
  const isView = ArrayBuffer.isView(data);
  let dt: DType;
  if (dtype === undefined) {
    if (isView && data instanceof Uint16Array)
      fail(
        'ERR_DTYPE',
        `${where}: argument 'dtype'`,
        "a Uint16Array holds raw 16-bit float bits: pass dtype 'float16' or 'bfloat16'",
      );
    dt = (isView && dtypeOfArray(data as ArrayBufferView)) || 'float32';
  } else {
    dt = checkDType(dtype, `${where}: argument 'dtype'`);
  }
  // Zero-copy wrap when the storage class matches.
  if (isView && data instanceof STORAGE[dt] && !(data instanceof Uint8ClampedArray))
    return wrap(data as Storage, dt, s);
  const out = allocate(dt, n, `${where}: argument 'shape'`);
  const range = INT_RANGE[dt];
  // float32 -> 16-bit floats natively; to an integer dtype through the checks below, as from any
  // other source (t.to('int8') is the saturating conversion)
  if (isView && data instanceof Float32Array && !range) {
    native.convert(data, DTYPE_CODE.float32, out, DTYPE_CODE[dt], n);
    return wrap(out, dt, s);
  }
  const src = data as ArrayLike<number>;
  for (let i = 0; i < n; i++) {
    const v = src[i];
    if (typeof v !== 'number')
      fail('ERR_ARG', `${where}: argument 'data'`, `element ${i} is ${describe(v)}, expected a number`);
    if (range) {
      if (!Number.isInteger(v) || v < range[0] || v > range[1])
        fail(
          'ERR_ARG',
          `${where}: argument 'data'`,
          `element ${i} = ${describe(v)} is not an ${dt} value (integers in [${range[0]}, ${range[1]}])`,
        );
      out[i] = v;
    } else if (dt === 'float16') {
      out[i] = float16Bits(v);
    } else if (dt === 'bfloat16') {
      out[i] = bfloat16Bits(v);
    } else {
      out[i] = v;
    }
  }
  return wrap(out, dt, s);
}

/** True for a SharedArrayBuffer (from any realm: worker_threads hand them across). */
export function isShared(b: ArrayBufferLike): boolean {
  return Object.prototype.toString.call(b) === '[object SharedArrayBuffer]';
}

interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

function parseCreateOptions(
  opts: unknown,
  op: string,
  extra: string[] = [],
): { dtype: DType; device: Device; rest: Record<string, unknown> } {
  if (opts === undefined || opts === null) return { dtype: 'float32', device: 'cpu', rest: {} };
  if (typeof opts !== 'object' || Array.isArray(opts))
    fail('ERR_ARG', `${op}: argument 'opts'`, `expected an options object, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['dtype', 'device', ...extra].includes(k)) fail('ERR_ARG', `${op}: argument 'opts'`, `unknown option '${k}'`);
  const dtype = o.dtype === undefined ? 'float32' : checkDType(o.dtype, `${op}: option 'dtype'`);
  const device = o.device === undefined ? 'cpu' : checkDevice(o.device, `${op}: option 'device'`);
  if (device !== 'cpu')
    fail(
      'ERR_DEVICE',
      `${op}: option 'device'`,
      `device '${device}' is not available: this build of tensorfuse runs on the CPU only`,
    );
  return { dtype, device, rest: o };
}

/** A tensor of zeros. @example zeros([2, 3], { dtype: 'float16' }) */
export function zeros(shape: number[], opts?: CreateOptions): Tensor {
  const { dtype } = parseCreateOptions(opts, 'zeros');
  const s = checkShape(shape, "zeros: argument 'shape'");
  return wrap(allocate(dtype, numel(s), "zeros: argument 'shape'"), dtype, s);
}

/**
 * Standard normal samples (Box-Muller over xoshiro128**), reproducible for a given seed on
 * every platform. Integer dtypes get the samples rounded toward zero.
 * @example randn([4, 8], { seed: 42 })
 */
export function randn(shape: number[], opts?: CreateOptions & { seed?: number }): Tensor {
  const { dtype, rest } = parseCreateOptions(opts, 'randn', ['seed']);
  const s = checkShape(shape, "randn: argument 'shape'");
  let seed = rest.seed;
  if (seed === undefined) seed = Math.floor(Math.random() * 2 ** 32);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0)
    fail('ERR_ARG', "randn: option 'seed'", `expected a non-negative integer, got ${describe(seed)}`);
  const n = numel(s);
  const f = allocate('float32', n, "randn: argument 'shape'") as Float32Array;
  fillNormal(f, seed);
  if (dtype === 'float32') return wrap(f, dtype, s);
  const out = allocate(dtype, n, "randn: argument 'shape'");
  native.convert(f, DTYPE_CODE.float32, out, DTYPE_CODE[dtype], n);
  return wrap(out, dtype, s);
}

/** Fills `out` with N(0, 1) samples from a xoshiro128** stream seeded by splitmix32(seed). */
export function fillNormal(out: Float32Array, seed: number): void {
  let x = (seed % 2 ** 32) ^ Math.floor(seed / 2 ** 32);
  const sm = (): number => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = sm(),
    s1 = sm(),
    s2 = sm(),
    s3 = sm();
  const next = (): number => {
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return r;
  };
  // uniform in (0, 1] with 32 random bits
  const uni = (): number => (next() + 1) / 4294967296;
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uni()));
    const th = 2 * Math.PI * uni();
    out[i] = r * Math.cos(th);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(th);
  }
}

function rotl(v: number, k: number): number {
  return (v << k) | (v >>> (32 - k));
}

/** Checks that `v` is a live CPU Tensor; names the argument in the error. */
export function checkTensor(v: unknown, op: string, name: string): Tensor {
  if (!(v instanceof Tensor)) fail('ERR_ARG', `${op}: argument '${name}'`, `expected a Tensor, got ${describe(v)}`);
  storageOf(v, name, op);
  if (v.device !== 'cpu')
    fail('ERR_DEVICE', `${op}: argument '${name}'`, `is on '${v.device}', this op runs on the CPU`);
  return v;
}
