import { RawValue, entrySize, joinEntries, type EntryCodec, type EntryLayout } from '../entries.js';
import type { SessionRecord, Serializer } from '../serializer.js';
import { nestsDeeperThan, scanJson } from './json-scan.js';
import { MAX_VALUE_DEPTH, type ValueRules } from '../value.js';

/**
 * JSON, the default serializer. Round-trips strings, finite numbers, booleans, null, arrays and plain objects.
 * A `Date` comes back as its ISO string, `NaN` and `Infinity` as `null`, `-0` as `0`, and binary data as
 * `{"type":"Buffer","data":[...]}`; `set()` refuses a `BigInt`. Use {@link MsgpackSerializer} for those and for
 * smaller cookies. A payload whose values nest deeper than {@link MAX_VALUE_DEPTH} does not open.
 */
export class JsonSerializer implements Serializer {
  readonly id = 1;
  readonly name = 'json';

  serialize(data: SessionRecord): Uint8Array {
    return Buffer.from(JSON.stringify(data), 'utf8');
  }

  deserialize(bytes: Uint8Array): SessionRecord {
    // JSON.parse defines "__proto__" as an own data property, so no prototype can be set from a payload. It
    // accepts exactly what scanJson accepts, but for the depth, checked on what it built.
    const data: unknown = JSON.parse(text(bytes));
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new TypeError('A JSON session payload must be an object.');
    }
    if (nestsDeeperThan(data, MAX_VALUE_DEPTH + 1)) {
      throw new TypeError(`A JSON session payload must not nest values deeper than ${MAX_VALUE_DEPTH} levels.`);
    }
    return data as SessionRecord;
  }

  /** What `set()` must refuse so that every value it accepts comes back from this serializer. */
  get valueRules(): ValueRules {
    return JSON_RULES;
  }

  /** Reads and writes one top-level entry at a time, so untouched values stay encoded. */
  get entryCodec(): EntryCodec {
    return this.#entryCodec;
  }

  // A getter over a field, not an own property: a serializer logs and stringifies as it did.
  readonly #entryCodec: EntryCodec = {
    // Compared by identity with the serializer's own (a subclass that overrides them loses the codec), never called.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    serialize: JsonSerializer.prototype.serialize,
    // eslint-disable-next-line @typescript-eslint/unbound-method
    deserialize: JsonSerializer.prototype.deserialize,
    split: (payload) => {
      const bounds: number[] = [];
      const count = scanJson(payload, 0, bounds);
      if (count < 0) return undefined;
      const entries = new Map<string, RawValue>();
      for (let i = 0; i < count; i += 4) {
        const keyStart = bounds[i] as number;
        const keyEnd = bounds[i + 1] as number;
        // A key without escapes is its bytes between the quotes; JSON.parse reads the rest.
        const key = hasEscape(payload, keyStart, keyEnd)
          ? (JSON.parse(payload.toString('utf8', keyStart, keyEnd)) as string)
          : payload.toString('utf8', keyStart + 1, keyEnd - 1);
        entries.set(key, new RawValue(payload, keyStart, bounds[i + 2] as number, bounds[i + 3] as number, false));
      }
      return entries;
    },
    entry: (bytes, start, key) => {
      const at = ENTRY_BOUNDS;
      if (scanJson(bytes, start, at) !== 4 || !keyIs(bytes, at[0] as number, at[1] as number, key)) return undefined;
      return new RawValue(bytes, at[0] as number, at[2] as number, at[3] as number, false);
    },
    decode: (raw) => JSON.parse(raw.source.toString('utf8', raw.valueStart, raw.valueEnd)) as unknown,
    encodeValue: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
    join: (entries) => joinEntries(entries, LAYOUT),
    entrySize: (key, value) => entrySize(key, value, LAYOUT),
  };
}

// Reused by each one-entry scan (a store reads one per key per request): nothing to allocate. Never re-entered.
const ENTRY_BOUNDS = new Int32Array(4);

/** JSON writes a byte array as `{"type":"Buffer","data":[...]}`, two levels deeper than where it stands. */
const JSON_RULES: ValueRules = Object.freeze({ bytesDepth: 2, wellFormedStrings: false, bigint: undefined });

const LAYOUT: EntryLayout = {
  head: Buffer.from('{'),
  tail: Buffer.from('}'),
  separator: 0x2c,
  encode: (key, value) => Buffer.from(`${JSON.stringify(key)}:${JSON.stringify(value)}`, 'utf8'),
};

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/** Whether the JSON string at `b[start, end)` (quotes included, checked by the scan) is `key`. */
function keyIs(b: Buffer, start: number, end: number, key: string): boolean {
  if (hasEscape(b, start, end)) return JSON.parse(b.toString('utf8', start, end)) === key;
  // An ASCII key, the common case, is compared without making a string.
  if (end - start - 2 === key.length) {
    let i = 0;
    for (; i < key.length; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) break;
      if (b[start + 1 + i] !== c) return false;
    }
    if (i === key.length) return true;
  }
  return b.toString('utf8', start + 1, end - 1) === key;
}

function hasEscape(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === 0x5c) return true;
  return false;
}
