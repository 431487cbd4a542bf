import { ENTRY_CODEC, RawValue, entrySize, joinEntries, type EntryCodec, type EntryLayout } from './entries.js';
import type { SessionRecord, Serializer } from './serializer.js';
import { MAX_VALUE_DEPTH, copyValue } from './value.js';

/**
 * JSON, the default serializer. Round-trips strings, finite numbers, booleans, null, arrays and plain objects.
 * A `Date` comes back as its ISO string, `NaN` and `Infinity` as `null`, and binary data as an object of
 * numbers; a `BigInt` cannot be encoded (`ERR_SESSION_SERIALIZE`). Use {@link MsgpackSerializer} for those
 * and for smaller cookies.
 */
export class JsonSerializer implements Serializer {
  readonly id = 1;
  readonly name = 'json';

  serialize(data: SessionRecord): Uint8Array {
    return Buffer.from(JSON.stringify(data), 'utf8');
  }

  deserialize(bytes: Uint8Array): SessionRecord {
    // JSON.parse defines "__proto__" as an own data property, so no prototype can be set from a payload.
    const data: unknown = JSON.parse(text(bytes));
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new TypeError('A JSON session payload must be an object.');
    }
    return data as SessionRecord;
  }

  readonly [ENTRY_CODEC]: EntryCodec = {
    serialize: JsonSerializer.prototype.serialize,
    deserialize: JsonSerializer.prototype.deserialize,
    split: (payload) => {
      const bounds = splitObject(payload);
      if (bounds === undefined) return undefined;
      const entries = new Map<string, RawValue>();
      for (let i = 0; i < bounds.length; i += 4) {
        const keyStart = bounds[i] as number;
        const valueStart = bounds[i + 1] as number;
        const keyEnd = valueStart - 1; // the colon
        // A key without escapes is its bytes between the quotes; JSON.parse reads the rest.
        const key = hasEscape(payload, keyStart, keyEnd)
          ? (JSON.parse(payload.toString('utf8', keyStart, keyEnd)) as string)
          : payload.toString('utf8', keyStart + 1, keyEnd - 1);
        entries.set(key, new RawValue(payload, keyStart, valueStart, bounds[i + 2] as number, bounds[i + 3] === 1));
      }
      return entries;
    },
    decode: (raw) => {
      const value = JSON.parse(raw.source.toString('utf8', raw.valueStart, raw.valueEnd)) as unknown;
      // Too deep to hand out: the copy refuses it with a SessionError, as a stored value read eagerly would be.
      return raw.careful ? copyValue(value) : value;
    },
    join: (entries) => joinEntries(entries, LAYOUT),
    entrySize: (key, value) => entrySize(key, value, LAYOUT),
  };
}

const LAYOUT: EntryLayout = {
  head: Buffer.from('{'),
  tail: Buffer.from('}'),
  separator: 0x2c,
  encode: (key, value) => Buffer.from(`${JSON.stringify(key)}:${JSON.stringify(value)}`, 'utf8'),
};

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Finds the top-level entries of compact JSON text (as `JSON.stringify` writes it) without parsing the values:
 * `[keyStart, valueStart, valueEnd, tooDeep, ...]` (`tooDeep` 1 when the value nests deeper than
 * {@link MAX_VALUE_DEPTH}), or `undefined` when the text is not a compact object, so that the caller falls back
 * to `JSON.parse`. Linear in the text; brackets inside strings are skipped.
 */
function splitObject(b: Uint8Array): number[] | undefined {
  const end = b.length;
  if (end < 2 || b[0] !== 0x7b || b[end - 1] !== 0x7d) return undefined;
  const bounds: number[] = [];
  let i = 1;
  if (end === 2) return bounds;
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const keyStart = i;
    i = afterString(b, i + 1);
    if (i < 0 || b[i] !== 0x3a) return undefined;
    const valueStart = ++i;
    let depth = 0;
    let deepest = 0;
    for (;;) {
      const c = b[i];
      if (c === undefined) return undefined;
      if (c === QUOTE) {
        i = afterString(b, i + 1);
        if (i < 0) return undefined;
        continue;
      }
      if (c === 0x7b || c === 0x5b) {
        depth++;
        if (depth > deepest) deepest = depth;
      }
      else if (c === 0x7d || c === 0x5d) {
        if (depth === 0) {
          if (c === 0x5d) return undefined;
          break;
        }
        depth--;
      } else if (c === 0x2c && depth === 0) break;
      i++;
    }
    if (i === valueStart) return undefined;
    bounds.push(keyStart, valueStart, i, deepest > MAX_VALUE_DEPTH ? 1 : 0);
    if (b[i] === 0x7d) return i + 1 === end ? bounds : undefined;
    i++;
  }
}

function hasEscape(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === BACKSLASH) return true;
  return false;
}

/** Index just past the closing quote of a string whose content starts at `i`, or -1. */
function afterString(b: Uint8Array, i: number): number {
  for (;;) {
    const c = b[i];
    if (c === QUOTE) return i + 1;
    if (c === undefined) return -1;
    i += c === BACKSLASH ? 2 : 1;
  }
}
