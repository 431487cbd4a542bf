import { SessionError } from '../core/errors.js';
import type { Serializer } from './serializer.js';

/** Deepest nesting of arrays and objects a session value may have. */
export const MAX_VALUE_DEPTH = 64;

/**
 * What a serializer cannot carry, beyond what no serializer can: `set()` refuses it, so that every value it
 * accepts comes back on the next request. A serializer declares its own as {@link Serializer.valueRules}.
 */
export interface ValueRules {
  /** Levels of nesting a byte array takes when written (JSON writes `{"type":"Buffer","data":[...]}`). */
  readonly bytesDepth: number;
  /** Strings and keys must be well-formed UTF-16: UTF-8 cannot carry a lone surrogate. */
  readonly wellFormedStrings: boolean;
  /** The BigInts it carries, or `undefined` for none; `null` for any (a serializer of the app's own). */
  readonly bigint: readonly [min: bigint, max: bigint] | undefined | null;
}

/** The rules of a serializer of the app's own: plain data only; its own `serialize` decides the rest at commit. */
export const PLAIN_DATA: ValueRules = Object.freeze({ bytesDepth: 0, wellFormedStrings: false, bigint: null });

/** A serializer's value rules. */
export function valueRulesOf(serializer: Serializer): ValueRules {
  return serializer.valueRules ?? PLAIN_DATA;
}

/**
 * Returns a deep copy of a session value, made only of plain data: null, booleans, numbers, strings, BigInts,
 * arrays, plain objects, Dates and byte arrays (copied as Buffers).
 *
 * Own keys named `__proto__`, `constructor` or `prototype` are copied as data. `undefined` is dropped from
 * objects and becomes `null` in arrays, as both serializers would do, so what a request reads back from the
 * session is what the next request will read. With `fromMaps`, `Map`s with string keys become plain objects
 * (how MessagePack maps are decoded safely).
 *
 * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for anything else, for cycles and for nesting
 * deeper than {@link MAX_VALUE_DEPTH}; the message names `path`, the value's place in the session.
 */
export function copyValue(value: unknown, path = '', fromMaps = false, rules: ValueRules = PLAIN_DATA): unknown {
  return copy(value, [], path, fromMaps, rules, true);
}

/**
 * Checks a value as {@link copyValue} does, building nothing: what `backend.seal()` asks, at a fraction of the cost.
 * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE`, as copyValue.
 */
export function checkValue(value: unknown, path: string, rules: ValueRules): void {
  try {
    copy(value, [], '', false, rules, false);
  } catch {
    // Found without building paths (most of the walk's cost); walked again to name the place.
    copyValue(value, path, false, rules);
  }
}

// `build`: make the copy and name each place; without it the walk only checks (and answers nothing of use).
function copy(value: unknown, ancestors: object[], path: string, fromMaps: boolean, rules: ValueRules, build: boolean): unknown {
  switch (typeof value) {
    case 'string':
      if (rules.wellFormedStrings && !isWellFormed(value)) throw unsupported(path, 'a string with a lone surrogate, which UTF-8 cannot carry');
      return value;
    case 'number':
    case 'boolean':
      return value;
    case 'bigint': {
      const range = rules.bigint;
      if (range === undefined) throw unsupported(path, 'a BigInt, which this serializer cannot carry (MessagePack can)');
      if (range !== null && (value < range[0] || value > range[1])) throw unsupported(path, 'a BigInt beyond 64 bits');
      return value;
    }
    case 'object':
      break;
    default:
      throw unsupported(path, `a ${typeof value}`);
  }
  if (value === null) return null;
  if (value instanceof Date) {
    const time = value.getTime();
    if (Number.isNaN(time)) throw unsupported(path, 'an invalid Date');
    return build ? new Date(time) : value;
  }
  if (value instanceof Uint8Array) {
    if (ancestors.length + rules.bytesDepth > MAX_VALUE_DEPTH) {
      throw unsupported(path, `a byte array nested so deep that, as this serializer writes it, it nests deeper than ${MAX_VALUE_DEPTH} levels`);
    }
    return build ? Buffer.from(value) : value;
  }
  if (ancestors.includes(value)) throw unsupported(path, 'a reference to one of its own parents (a cycle)');
  if (ancestors.length >= MAX_VALUE_DEPTH) throw unsupported(path, `nesting deeper than ${MAX_VALUE_DEPTH} levels`);
  ancestors.push(value);
  let result: unknown;
  if (Array.isArray(value)) {
    const out: unknown[] | undefined = build ? new Array<unknown>(value.length) : undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const copied = item === undefined ? null : copy(item, ancestors, build ? `${path}[${i}]` : '', fromMaps, rules, build);
      if (out !== undefined) out[i] = copied;
    }
    result = out;
  } else if (fromMaps && value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value as Map<unknown, unknown>) {
      if (typeof key !== 'string') throw unsupported(path, 'a map with a key that is not a string');
      checkKey(key, path, rules);
      if (item !== undefined) define(out, key, copy(item, ancestors, childPath(path, key), fromMaps, rules, build));
    }
    result = out;
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      throw unsupported(path, `a ${kind}, which is not plain data`);
    }
    const source = value as Record<string, unknown>;
    const out: Record<string, unknown> | undefined = build ? {} : undefined;
    for (const key of Object.keys(source)) {
      const item = source[key];
      checkKey(key, path, rules);
      if (item === undefined) continue;
      const copied = copy(item, ancestors, build ? childPath(path, key) : '', fromMaps, rules, build);
      if (out !== undefined) define(out, key, copied);
    }
    result = out;
  }
  ancestors.pop();
  return result;
}

/** Sets an own data property, also for "__proto__", whose assignment would change the prototype instead. */
export function define(target: Record<string, unknown>, key: string, item: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value: item, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = item;
  }
}

/** Throws unless the serializer can write `key` (a session key, or a key of an object inside a value). */
export function checkKey(key: string, path: string, rules: ValueRules): void {
  if (rules.wellFormedStrings && !isWellFormed(key)) {
    throw unsupported(path, 'an object with a key holding a lone surrogate, which UTF-8 cannot carry');
  }
}

// String.prototype.isWellFormed (Node 20) is not in the ES2022 lib this package compiles against.
export function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function unsupported(path: string, what: string): SessionError {
  const where = path === '' ? 'The value' : `The value at "${path}"`;
  return new SessionError(
    'ERR_SESSION_UNSUPPORTED_VALUE',
    `${where} is ${what}. Sessions store plain data only: objects, arrays, strings, numbers, booleans, null, ` + 'Dates and byte arrays.',
  );
}

/**
 * Throws as `set()` would for the first top-level key of `data` that `rules` refuse (the key itself or its value).
 * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE`.
 */
export function assertFits(data: Record<string, unknown>, rules: ValueRules): void {
  for (const key of Object.keys(data)) {
    checkKey(key, key, rules);
    checkValue(data[key], key, rules);
  }
}

/**
 * The first top-level key of `data` that `rules` refuse, or `undefined` when a serializer with those rules carries
 * all of it unchanged: data read by one serializer is checked so before another one writes it (MessagePack's UTF-8
 * would turn a JSON key with a lone surrogate into another key).
 */
export function unfitKey(data: Record<string, unknown>, rules: ValueRules): string | undefined {
  for (const key of Object.keys(data)) {
    try {
      assertFits({ [key]: data[key] }, rules);
    } catch {
      return key;
    }
  }
  return undefined;
}
