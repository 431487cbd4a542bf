// Lazy entries: the cookie backend hands the session its top-level values still encoded, and takes back the
// untouched ones as they were, so a request pays decoding and encoding only for the keys it reads or writes.
// Internal: nothing here is exported from the package; custom serializers and backends see plain records.

/** One top-level value still in its serialized form, with its key as the serializer wrote it. */
export class RawValue {
  constructor(
    /** The key, encoded (quotes or a string header included), to write it back unchanged. */
    readonly key: Uint8Array,
    /** The value, encoded. */
    readonly bytes: Uint8Array,
    /** Set when this value needs the serializer's careful decoding (it holds a "__proto__" key, say). */
    readonly careful: boolean,
  ) {}
}

/** What a serializer offers for lazy entries, beside its whole-payload `serialize` and `deserialize`. */
export interface EntryCodec {
  /** The payload's top-level entries, values undecoded; `undefined` when this payload cannot be split. */
  split(payload: Uint8Array): Map<string, RawValue> | undefined;
  /** One value, decoded into fresh plain data. Throws on bytes it did not write. */
  decode(raw: RawValue): unknown;
  /** A whole payload from entries, each either encoded already or a plain value to encode. */
  join(entries: ReadonlyMap<string, unknown>): Uint8Array;
  /** Bytes one entry takes in a payload; for the size-limit message. */
  entrySize(key: string, value: unknown): number;
}

/** The property of a first-party serializer that holds its {@link EntryCodec}. */
export const ENTRY_CODEC = Symbol('koa-sealed-session.entryCodec');

/** Where a stored session or a write carries its lazy entries, beside the public `data`. */
export const LAZY_ENTRIES = Symbol('koa-sealed-session.lazyEntries');

/** A stored session or a write that may carry lazy entries (internal view of the public types). */
export type WithLazyEntries<T> = T & { readonly [LAZY_ENTRIES]?: LazyEntries };

export interface LazyEntries {
  readonly codec: EntryCodec;
  /** Values are {@link RawValue}s (untouched) or plain data (set during the request). */
  readonly entries: ReadonlyMap<string, unknown>;
}

export function entryCodecOf(serializer: object): EntryCodec | undefined {
  return (serializer as { [ENTRY_CODEC]?: EntryCodec })[ENTRY_CODEC];
}
