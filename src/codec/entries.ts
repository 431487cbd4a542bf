import type { SessionRecord } from './serializer.js';
import { define } from './value.js';

// Lazy entries: the cookie backend hands the session its top-level values still encoded, and takes back the
// untouched ones as they were, so a request pays decoding and encoding only for the keys it reads or writes.
// A serializer offers it as `entryCodec`; a backend hands entries to the session as `StoredSession.entries` and
// takes them back from `SessionWrite.entries` (see core/backend.ts).

/**
 * One top-level entry still in its serialized form: offsets into the payload it came from, so that splitting
 * a payload allocates no buffers. `source[keyStart, valueEnd)` is the whole entry, key then value.
 */
export class RawValue {
  constructor(
    readonly source: Buffer,
    readonly keyStart: number,
    readonly valueStart: number,
    readonly valueEnd: number,
    /** Set when the value needs the serializer's careful decoding (it holds a "__proto__" key, say). */
    readonly careful: boolean,
  ) {}
}

/** What a serializer offers for lazy entries, beside its whole-payload `serialize` and `deserialize`. */
export interface EntryCodec {
  /** The whole-payload methods this codec agrees with: a subclass that overrides them loses the codec. */
  readonly serialize: unknown;
  readonly deserialize: unknown;
  /** The payload's top-level entries, values undecoded; `undefined` when this payload cannot be split. */
  readonly split: (payload: Buffer) => Map<string, RawValue> | undefined;
  /**
   * The one entry of a one-key payload that starts at `start` in `bytes` (a store keeps one such payload per key),
   * checked as `split` checks a payload, if its key is `key`; `undefined` for anything else.
   */
  readonly entry: (bytes: Buffer, start: number, key: string) => RawValue | undefined;
  /** One value, decoded into fresh plain data. Throws on bytes it did not write. */
  readonly decode: (raw: RawValue) => unknown;
  /** One plain value as the payload would hold it, to compare with a {@link RawValue}'s bytes. */
  readonly encodeValue: (value: unknown) => Uint8Array;
  /** A whole payload from entries, each either encoded already or a plain value to encode. */
  readonly join: (entries: ReadonlyMap<string, unknown>) => Buffer;
  /** Bytes one entry takes in a payload; for the size-limit message. */
  readonly entrySize: (key: string, value: unknown) => number;
}

/** A session's top-level entries, values still encoded where untouched, and the codec that reads them. */
export interface LazyEntries {
  readonly codec: EntryCodec;
  /** Values are {@link RawValue}s (untouched) or plain data (set during the request). */
  readonly entries: ReadonlyMap<string, unknown>;
}

/**
 * The serializer's codec, if it has one and still encodes as the codec does: a subclass that overrides
 * `serialize` or `deserialize` may write something else, so its sessions are decoded whole.
 */
export function entryCodecOf(serializer: { serialize: unknown; deserialize: unknown; entryCodec?: EntryCodec }): EntryCodec | undefined {
  const codec = serializer.entryCodec;
  return codec !== undefined && codec.serialize === serializer.serialize && codec.deserialize === serializer.deserialize ? codec : undefined;
}

/**
 * One key's value in a stored session or a write, without decoding the others: from its entries when it holds them
 * still encoded, else from its data. Throws when the key's encoded value does not decode.
 */
export function entryValue(record: { readonly data: SessionRecord; readonly entries?: LazyEntries | undefined }, key: string): unknown {
  const lazy = record.entries;
  if (lazy === undefined) return Object.hasOwn(record.data, key) ? record.data[key] : undefined;
  const value = lazy.entries.get(key);
  return value instanceof RawValue ? lazy.codec.decode(value) : value;
}

/** A plain record of the entries, decoding the raw values with `decode`. */
export function recordOf(entries: ReadonlyMap<string, unknown>, decode: (raw: RawValue, key: string) => unknown): SessionRecord {
  const record: SessionRecord = {};
  for (const [key, value] of entries) define(record, key, value instanceof RawValue ? decode(value, key) : value);
  return record;
}

/** How a format lays entries out in its top-level map. */
export interface EntryLayout {
  readonly head: Buffer;
  readonly tail: Buffer;
  /** Byte written between two entries, or -1 for none. */
  readonly separator: number;
  /** One new entry, key and value, encoded. */
  encode(key: string, value: unknown): Buffer;
}

/**
 * Writes entries into one payload. Untouched entries that were neighbours in the payload they came from are
 * copied as one run, so a request that changed one key of ten copies two or three ranges.
 */
export function joinEntries(entries: ReadonlyMap<string, unknown>, layout: EntryLayout): Buffer {
  const sources: Buffer[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  const gap = layout.separator < 0 ? 0 : 1;
  let size = layout.head.length + layout.tail.length;
  for (const [key, value] of entries) {
    const last = sources.length - 1;
    if (value instanceof RawValue) {
      if (last >= 0 && sources[last] === value.source && (ends[last] as number) + gap === value.keyStart) {
        size += value.valueEnd - (ends[last] as number);
        ends[last] = value.valueEnd;
        continue;
      }
      sources.push(value.source);
      starts.push(value.keyStart);
      ends.push(value.valueEnd);
      size += value.valueEnd - value.keyStart;
    } else {
      const bytes = layout.encode(key, value);
      sources.push(bytes);
      starts.push(0);
      ends.push(bytes.length);
      size += bytes.length;
    }
    if (last >= 0) size += gap;
  }
  const out = Buffer.allocUnsafe(size);
  let at = layout.head.copy(out, 0);
  for (let i = 0; i < sources.length; i++) {
    if (i > 0 && gap === 1) out[at++] = layout.separator;
    at += (sources[i] as Buffer).copy(out, at, starts[i], ends[i]);
  }
  layout.tail.copy(out, at);
  return out;
}

/** Bytes an entry takes, separator included. */
export function entrySize(key: string, value: unknown, layout: EntryLayout): number {
  const gap = layout.separator < 0 ? 0 : 1;
  return (value instanceof RawValue ? value.valueEnd - value.keyStart : layout.encode(key, value).length) + gap;
}

/**
 * What has `data` decoded from entries on its first read: an own, enumerable accessor, as an object literal's
 * `get data()` would be (a spread or `Object.assign` of it sees the data), but defined through one getter that every
 * such object shares. A getter of its own per object gives each object a hidden class of its own, which V8 keeps in
 * old space: that class then holds the request's values past every young-generation collection (measured: megabytes
 * promoted per scavenge, the collector's time per request multiplied by twenty).
 */
export class LazyData {
  declare readonly data: SessionRecord;
  #data: SessionRecord | undefined;
  readonly #values: ReadonlyMap<string, unknown>;
  readonly #decode: (raw: RawValue, key: string) => unknown;

  constructor(values: ReadonlyMap<string, unknown>, decode: (raw: RawValue, key: string) => unknown) {
    this.#values = values;
    this.#decode = decode;
    Object.defineProperty(this, 'data', DATA);
  }

  /** The data, decoded once. */
  decodedData(): SessionRecord {
    return (this.#data ??= recordOf(this.#values, this.#decode));
  }
}

const DATA: PropertyDescriptor = Object.freeze({
  get(this: LazyData) {
    return this.decodedData();
  },
  enumerable: true,
  configurable: true,
});

/**
 * A stored session whose values stay encoded until read: the session takes `entries` over, and `data` is decoded
 * only for a backend wrapper that asks for it.
 */
class LazyStored extends LazyData {
  readonly entries: LazyEntries;

  constructor(
    codec: EntryCodec,
    entries: Map<string, RawValue>,
    readonly stale: boolean,
    readonly maxAge: number | 'session' | undefined,
  ) {
    super(entries, codec.decode);
    this.entries = { codec, entries };
  }
}

export function lazyStored(codec: EntryCodec, entries: Map<string, RawValue>, stale: boolean, maxAge: number | 'session' | undefined) {
  return new LazyStored(codec, entries, stale, maxAge);
}
