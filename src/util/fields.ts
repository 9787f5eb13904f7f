/**
 * Checks of request objects as a JavaScript caller builds them: the object itself and its field
 * names (a misspelt optional field such as `nsample` would otherwise leave `nsamples` at its
 * default without a word), `null` where a field must be given or left out, and true/false flags
 * (a string "yes" is truthy, and "false" would turn a flag on).
 */
import { FieldError, UserError, checkField } from './errors.ts';

/**
 * How a request field is checked here: 'flag' must be true or false, 'text' a non-empty string,
 * 'nullable' may be null (it switches a pass off), 'checked' is left to the code that reads it
 * (which refuses wrong values naming the field) but may not be null.
 */
export type FieldKind = 'checked' | 'nullable' | 'flag' | 'text';

/** One entry for every field of a request type `T`, so that the list follows its interface. */
export type FieldSpec<T> = { readonly [K in keyof Required<T>]: FieldKind };

/** How much of a long string an error message quotes. */
const QUOTED_CHARS = 80;

/**
 * A value as an error message shows it: strings quoted, so that "64" and 64 differ, and a long one
 * cut to its start and its length (a value pasted by mistake should not fill the screen).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= QUOTED_CHARS) return JSON.stringify(value);
    return `${JSON.stringify(value.slice(0, QUOTED_CHARS))}… (${value.length} characters)`;
  }
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array [${value.slice(0, 8).map(describeValue).join(', ')}${value.length > 8 ? `, … (${value.length} items)` : ''}]`;
  if (ArrayBuffer.isView(value) && 'length' in value) return `a ${value.constructor.name} of ${String(value.length)} entries`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

const join = (parent: string, key: string): string => (parent === '' ? key : `${parent}.${key}`);

/** Levenshtein distance of two short names, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

/** Whether one name begins the other (budget, budgetPerK), for names of 4 characters or more. */
const isPrefix = (a: string, b: string): boolean => Math.min(a.length, b.length) >= 4 && (a.startsWith(b) || b.startsWith(a));

/**
 * Refuses `value` unless it is a plain object whose fields (those not undefined) are all in
 * `known`. `field` is the object's path in the request: '' for the request itself, `owl`, `auto`;
 * `owner` names the object in the message (default: the request, or `field`).
 * An unknown field is named with its path and the closest known name when one is near
 * (case, a shortened name such as budget for budgetPerK, or up to two edits apart).
 */
export function checkKnownFields(
  value: unknown,
  field: string,
  known: readonly string[],
  owner = field === '' ? 'the request' : field,
): asserts value is Record<string, unknown> {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject) {
    if (field === '') throw new UserError(`${owner === 'the request' ? 'a request' : owner} must be an object, got ${describeValue(value)}`);
    throw new FieldError(field, `must be an object with some of the fields ${known.join(', ')}, got ${describeValue(value)}`);
  }
  for (const [key, given] of Object.entries(value)) {
    if (given === undefined || known.includes(key)) continue;
    const near = known
      .map((name) => ({ name, d: name.toLowerCase() === key.toLowerCase() ? 0 : isPrefix(key, name) ? 1 : distance(name, key) }))
      .filter(({ d }) => d <= 2)
      .sort((a, b) => a.d - b.d)[0];
    throw new FieldError(join(field, key), near
      ? `is not a field of ${owner}; did you mean ${join(field, near.name)}?`
      : `is not a field of ${owner}; expected some of ${known.join(', ')}`);
  }
}

/** Throws a FieldError unless `value` is undefined, true or false; returns it, false when left out. */
export function checkFlag(field: string, value: unknown): boolean {
  checkField(value === undefined || typeof value === 'boolean', field, () => `must be true or false, got ${describeValue(value)}`);
  return value ?? false;
}

/** Whether `value` is an object with a function under each name of `methods` (a duck-typed interface). */
export function hasMethods(value: unknown, methods: readonly string[]): boolean {
  return typeof value === 'object' && value !== null && methods.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');
}

/**
 * Throws a FieldError unless `value` is a function (or undefined, where it may be left out);
 * `what` says what kind of function the field takes.
 */
export function checkFunction(field: string, value: unknown, { optional = true, what = 'a function' } = {}): void {
  checkField((optional && value === undefined) || typeof value === 'function', field, () => `must be ${what}, got ${describeValue(value)}`);
}

/**
 * Checks a request object against its field list (`spec`): known names only, null only where
 * allowed, flags and texts of the right type. `prefix` is the object's path in an enclosing
 * request ('' for the request itself).
 */
export function checkFields<T>(value: unknown, spec: FieldSpec<T>, prefix = ''): asserts value is T {
  const kinds = spec as Record<string, FieldKind>;
  checkKnownFields(value, prefix, Object.keys(kinds));
  for (const [key, kind] of Object.entries(kinds)) {
    const given = value[key];
    const field = join(prefix, key);
    if (given === undefined) continue;
    checkField(given !== null || kind === 'nullable', field, 'must be given or left out, not null');
    if (kind === 'flag') checkFlag(field, given);
    if (kind === 'text') checkField(typeof given === 'string' && given.trim() !== '', field, () => `must be a non-empty string, got ${describeValue(given)}`);
  }
}

/** The typed arrays a matrix argument may be. */
export type MatrixArray = Float32ArrayConstructor | Uint8ArrayConstructor;

/**
 * Throws a FieldError naming `field` unless `value` is one of `types` holding dOut×dIn entries
 * (`what` names them: weights, scores), or naming `dOut` or `dIn` unless it is an integer ≥ 1.
 */
export function checkMatrix(field: string, value: unknown, types: readonly MatrixArray[], dOut: unknown, dIn: unknown, what: string): void {
  checkInteger('dOut', dOut, 1);
  checkInteger('dIn', dIn, 1);
  const isType = types.some((type) => value instanceof type);
  checkField(
    isType && (value as Float32Array | Uint8Array).length === dOut * dIn,
    field,
    () => `must be a ${types.map((type) => type.name).join(' or ')} of dOut×dIn = ${dOut}×${dIn} = ${dOut * dIn} ${what}, got ${isType ? `${(value as Float32Array).length} entries` : describeValue(value)}`,
  );
}

/** Throws a FieldError unless `value` is a safe integer ≥ `min` (and ≤ `max` when given). */
export function checkInteger(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): asserts value is number {
  checkField(
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max,
    field,
    () => `must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`}, got ${describeValue(value)}`,
  );
}

/** Throws a FieldError unless `value` is a safe integer ≥ 1. */
export function checkPositiveInteger(field: string, value: unknown): asserts value is number {
  checkField(Number.isSafeInteger(value) && (value as number) > 0, field, () => `must be a positive integer, got ${describeValue(value)}`);
}

/** Throws a FieldError unless `value` is a finite number in [min, max] (open ends where asked). */
export function checkNumber(
  field: string,
  value: unknown,
  [min, max]: readonly [number, number],
  open: { min?: boolean; max?: boolean } = {},
): asserts value is number {
  const ok = typeof value === 'number' && Number.isFinite(value)
    && (open.min ? value > min : value >= min) && (open.max ? value < max : value <= max);
  checkField(ok, field, () => `must be a number in ${open.min ? '(' : '['}${min}, ${max}${open.max ? ')' : ']'}, got ${describeValue(value)}`);
}
