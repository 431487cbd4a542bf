import type { SessionWrite } from '../../core/backend.js';
import { publishRefused } from '../../core/diagnostics.js';
import { SessionError } from '../../core/errors.js';
import { RawValue, type EntryCodec } from '../../codec/entries.js';
import type { Serializer, SessionRecord } from '../../codec/serializer.js';
import { define, unfitKey, type ValueRules } from '../../codec/value.js';
import { largestKeys, serializeFailed } from '../shared/checks.js';

// A record keeps each top-level key of the session as its own field: the serializer's id, then the serialized
// one-key record `{ key: value }`. This is the one place that reads and writes that layout.

const EMPTY = Buffer.alloc(0);

/** How a store backend turns sessions into record fields and back. */
export class RecordCodec {
  constructor(
    readonly serializer: Serializer,
    readonly readers: ReadonlyMap<number, Serializer>,
    readonly rules: ValueRules,
    /** The entry codec of `serializer`, when it has one that still agrees with it. */
    readonly codec: EntryCodec | undefined,
    readonly maxBytes: number,
    /** The cookie name, for diagnostics. */
    readonly name: string,
  ) {}

  /**
   * A record's entries still encoded, each checked by the codec's scan (so a corrupt one is found now), or
   * `undefined` when they cannot be handed over lazily (another serializer, or no codec): then they are decoded.
   */
  split(fields: ReadonlyMap<string, Buffer>): Map<string, RawValue> | undefined {
    const codec = this.codec;
    if (codec === undefined) return undefined;
    const id = this.serializer.id;
    const entries = new Map<string, RawValue>();
    for (const [key, field] of fields) {
      if (field[0] !== id) return undefined;
      let raw: RawValue | undefined;
      try {
        // After the serializer's id byte: a one-key payload. Its bytes stay where the store put them.
        raw = codec.entry(field, 1, key);
      } catch {
        return undefined;
      }
      if (raw === undefined) return undefined;
      entries.set(key, raw);
    }
    return entries;
  }

  /** The fields to store for a write: the loaded field itself for a value still encoded as it was loaded. */
  encodeWrite(change: SessionWrite, loaded: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
    const lazy = change.entries;
    if (lazy === undefined || lazy.codec !== this.codec) return this.encode(change.data, loaded);
    const fields = new Map<string, Buffer>();
    const changed: SessionRecord = {};
    for (const [key, value] of lazy.entries) {
      const field = loaded.get(key);
      // Only split() makes a RawValue of a loaded field, and for the field's one key: this is that key's, untouched.
      if (value instanceof RawValue && field !== undefined && value.source === field) {
        fields.set(key, field);
      } else {
        define(changed, key, value instanceof RawValue ? lazy.codec.decode(value) : value);
        fields.set(key, EMPTY); // keeps the key's place; replaced below
      }
    }
    for (const [key, field] of this.encode(changed)) fields.set(key, field);
    return fields;
  }

  /**
   * Each key's value, encoded on its own. A loaded field of a previous serializer whose value the current one
   * cannot carry unchanged is kept as it was (only a loaded value can be such: set() checks every other against the
   * current serializer's rules).
   */
  encode(data: SessionRecord, loaded?: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
    const serializer = this.serializer;
    const fields = new Map<string, Buffer>();
    for (const key of Object.keys(data)) {
      const kept = loaded?.get(key);
      if (kept !== undefined && kept[0] !== serializer.id && unfitKey({ [key]: data[key] }, this.rules) !== undefined) {
        fields.set(key, kept);
        continue;
      }
      const single: SessionRecord = {};
      define(single, key, data[key]);
      let body: Uint8Array;
      try {
        body = serializer.serialize(single);
      } catch (cause) {
        throw serializeFailed(serializer.name, key, cause);
      }
      const field = Buffer.allocUnsafe(1 + body.byteLength);
      field[0] = serializer.id;
      field.set(body, 1);
      fields.set(key, field);
    }
    return fields;
  }

  /** The session data of a record, or `undefined` when a value does not decode. */
  decode(fields: ReadonlyMap<string, Uint8Array>): { data: SessionRecord; stale: boolean } | undefined {
    const data: SessionRecord = {};
    let stale = false;
    for (const [key, field] of fields) {
      const serializer = field.byteLength > 1 ? this.readers.get(field[0] as number) : undefined;
      if (serializer === undefined) return undefined;
      let single: unknown;
      try {
        single = serializer.deserialize(field.subarray(1));
      } catch {
        return undefined;
      }
      if (typeof single !== 'object' || single === null || !Object.hasOwn(single, key) || Object.keys(single).length !== 1) return undefined;
      const value = (single as SessionRecord)[key];
      define(data, key, value);
      // Moved to the current serializer only if it carries the value unchanged; else it stays in its own.
      if (serializer !== this.serializer && unfitKey({ [key]: value }, this.rules) === undefined) stale = true;
      else if (serializer !== this.serializer) publishRefused('store', this.name, 'ERR_SESSION_UNSUPPORTED_VALUE', key);
    }
    return { data, stale };
  }

  /** @throws {@link SessionError} `ERR_SESSION_TOO_LARGE` for fields larger than `maxBytes`. */
  checkSize(fields: ReadonlyMap<string, Uint8Array>): void {
    const size = sizeOf(fields);
    if (size <= this.maxBytes) return;
    const sizes = [...fields].map(([key, bytes]) => [key, bytes.byteLength] as const);
    throw new SessionError(
      'ERR_SESSION_TOO_LARGE',
      `The session is too large for the store: ${size} bytes, and maxBytes is ${this.maxBytes}. Largest keys: ` +
        `${largestKeys(sizes)}. Raise maxBytes or store less. The stored session is unchanged.`,
    );
  }
}

/** A record's size as `maxBytes` counts it: each key's UTF-8 bytes and its encoded value's. */
export function sizeOf(fields: ReadonlyMap<string, Uint8Array>): number {
  let size = 0;
  for (const [key, bytes] of fields) size += Buffer.byteLength(key) + bytes.byteLength;
  return size;
}

/** A record's fields as Buffers (views, not copies), whatever a store of one's own returned. */
export function buffersOf(fields: ReadonlyMap<string, Uint8Array>): ReadonlyMap<string, Buffer> {
  for (const field of fields.values()) {
    if (!Buffer.isBuffer(field))
      return new Map([...fields].map(([key, value]) => [key, Buffer.from(value.buffer, value.byteOffset, value.byteLength)]));
  }
  return fields as ReadonlyMap<string, Buffer>;
}
