import { SessionError } from './errors.js';

/** Deepest nesting of arrays and objects a session value may have. */
export const MAX_VALUE_DEPTH = 64;

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
export function copyValue(value: unknown, path = '', fromMaps = false): unknown {
  return copy(value, [], path, fromMaps);
}

function copy(value: unknown, ancestors: object[], path: string, fromMaps: boolean): unknown {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
      return value;
    case 'object':
      break;
    default:
      throw unsupported(path, `a ${typeof value}`);
  }
  if (value === null) return null;
  if (value instanceof Date) return new Date(value.getTime());
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (ancestors.includes(value)) throw unsupported(path, 'a reference to one of its own parents (a cycle)');
  if (ancestors.length >= MAX_VALUE_DEPTH) throw unsupported(path, `nesting deeper than ${MAX_VALUE_DEPTH} levels`);
  ancestors.push(value);
  let result: unknown;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      out[i] = item === undefined ? null : copy(item, ancestors, `${path}[${i}]`, fromMaps);
    }
    result = out;
  } else if (fromMaps && value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value as Map<unknown, unknown>) {
      if (typeof key !== 'string') throw unsupported(path, 'a map with a key that is not a string');
      if (item !== undefined) define(out, key, copy(item, ancestors, childPath(path, key), fromMaps));
    }
    result = out;
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      throw unsupported(path, `a ${kind}, which is not plain data`);
    }
    const source = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(source)) {
      const item = source[key];
      if (item !== undefined) define(out, key, copy(item, ancestors, childPath(path, key), fromMaps));
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

function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function unsupported(path: string, what: string): SessionError {
  const where = path === '' ? 'The value' : `The value at "${path}"`;
  return new SessionError(
    'ERR_SESSION_UNSUPPORTED_VALUE',
    `${where} is ${what}. Sessions store plain data only: objects, arrays, strings, numbers, booleans, null, ` +
      'Dates and byte arrays.',
  );
}
