/** Option-object parsing shared by the ops: unknown keys and wrong types are ERR_ARG. */
import { describe, fail } from '../errors.js';

export function checkOptions(opts: unknown, op: string, allowed: readonly string[]): Record<string, unknown> {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts) || ArrayBuffer.isView(opts))
    fail('ERR_ARG', `${op}: argument 'opts'`, `expected an options object, got ${describe(opts)}`);
  checkKeys(opts, op, 'opts', allowed, 'option');
  return opts as Record<string, unknown>;
}

/**
 * An object argument of named tensors (`w` of moe.ffn, prune.ffn, prune.heads) or an options
 * object: unknown keys are ERR_ARG (a misspelt 'w3' must not be dropped silently).
 */
export function checkKeys(v: object, op: string, arg: string, allowed: readonly string[], what = 'key'): void {
  for (const k of Object.keys(v))
    if (!allowed.includes(k))
      fail(
        'ERR_ARG',
        `${op}: argument '${arg}'`,
        `unknown ${what} '${k}' (expected ${allowed.map((a) => `'${a}'`).join(', ')})`,
      );
}

export function optBool(o: Record<string, unknown>, key: string, op: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') fail('ERR_ARG', `${op}: option '${key}'`, `expected a boolean, got ${describe(v)}`);
  return v;
}

export function optEnum<T extends string>(
  o: Record<string, unknown>,
  key: string,
  op: string,
  values: readonly T[],
  dflt: T,
): T {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v))
    fail(
      'ERR_ARG',
      `${op}: option '${key}'`,
      `expected one of ${values.map((x) => `'${x}'`).join(', ')}, got ${describe(v)}`,
    );
  return v as T;
}

/** The largest finite float32 (FLT_MAX). */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * A number option that the kernels take as float32: finite in float32 (not only in float64), and
 * a nonzero value must not round to 0 (softcap 1e-46 would become 0, which means "off").
 * `positive`: the value must also be > 0. Returns the value (the kernels do the rounding).
 */
export function optFloat32(
  o: Record<string, unknown>,
  key: string,
  op: string,
  dflt: number,
  positive = false,
): number {
  const v = o[key];
  if (v === undefined) return dflt;
  const want = positive ? 'a finite number > 0' : 'a finite number';
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0))
    fail('ERR_ARG', `${op}: option '${key}'`, `expected ${want}, got ${describe(v)}`);
  const f = Math.fround(v);
  if (!Number.isFinite(f))
    fail(
      'ERR_ARG',
      `${op}: option '${key}'`,
      `${v} overflows float32, in which it is used (|${key}| <= ${FLOAT32_MAX})`,
    );
  if (f === 0 && v !== 0)
    fail(
      'ERR_ARG',
      `${op}: option '${key}'`,
      `${v} rounds to 0 in float32, in which it is used (the smallest float32 is 1.4e-45)`,
    );
  return v;
}

/** linear's `activation` option: 'int8' (W8A8, int8 QTensor) and 'w4a8' (int4 QTensor), else 'float'. */
export const LINEAR_ACTIVATIONS = ['float', 'int8', 'w4a8'] as const;
export type LinearActivation = (typeof LINEAR_ACTIVATIONS)[number];

/** The activation option of linear for weights that are not a QTensor (`what`): only 'float'. */
export function floatActivationOnly(o: Record<string, unknown>, op: string, what: string): void {
  const activation = optEnum(o, 'activation', op, LINEAR_ACTIVATIONS, 'float');
  if (activation !== 'float')
    fail(
      'ERR_ARG',
      `${op}: option 'activation'`,
      `'${activation}' needs a QTensor weight (${activation === 'int8' ? 'int8' : 'int4'}); w is ${what}`,
    );
}
