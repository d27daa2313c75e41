/**
 * The one error type of tensorfuse. Every bad input, from the TS layer or the native layer,
 * becomes a TensorfuseError with a `code` and a message naming the argument.
 */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_ARG'
  | 'ERR_DISPOSED'
  | 'ERR_OOM'
  | 'ERR_UNSUPPORTED'
  | 'ERR_INTERNAL';

export class TensorfuseError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message.startsWith('tensorfuse') ? message : `tensorfuse: ${message}`);
    this.code = code;
    this.name = 'TensorfuseError';
  }
}

/** Throws a TensorfuseError. `where` names the op and argument, e.g. "matmul: argument 'b'". */
export function fail(code: ErrorCode, where: string, what: string): never {
  throw new TensorfuseError(code, `${where}: ${what}`);
}

/** A short, safe description of any value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'boolean' || typeof v === 'symbol') return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  const name = (v as { constructor?: { name?: string } }).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}
