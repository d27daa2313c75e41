/** Option-object parsing shared by the ops: unknown keys and wrong types are ERR_ARG. */
import { describe, fail } from '../errors.js';

export function checkOptions(opts: unknown, op: string, allowed: readonly string[]): Record<string, unknown> {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts) || ArrayBuffer.isView(opts))
    fail('ERR_ARG', `${op}: argument 'opts'`, `expected an options object, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      fail(
        'ERR_ARG',
        `${op}: argument 'opts'`,
        `unknown option '${k}' (expected ${allowed.map((a) => `'${a}'`).join(', ')})`,
      );
  return o;
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
