import type { EntryCodec } from './entries.js';
import type { ValueRules } from './value.js';

/** Lowest serializer id free for your own serializers; the ids below it are reserved for this library's. */
export const FIRST_USER_SERIALIZER_ID = 128;

/** A session's data as the serializers see it: a plain object of plain-data values. */
export type SessionRecord = Record<string, unknown>;

/**
 * Turns session data into bytes and back. The cookie envelope records `id`, so a cookie says which serializer
 * wrote it; a backend can then keep reading cookies of an older serializer while it writes with a new one.
 *
 * An implementation must round-trip own `__proto__`, `constructor` and `prototype` keys as data and must never
 * return an object whose prototype it changed. `deserialize` receives bytes that passed authentication, but it
 * should still throw, not crash or hang, on anything it did not write.
 */
export interface Serializer {
  /**
   * Written into every envelope: 1 is JSON, 2 is MessagePack, 3–127 are reserved; 128–255
   * ({@link FIRST_USER_SERIALIZER_ID} and up) are free for your own serializers.
   */
  readonly id: number;
  /** For messages and docs, e.g. `'json'`. */
  readonly name: string;
  /** Encodes the session; throws when a value cannot be encoded. */
  serialize(data: SessionRecord): Uint8Array;
  /** Decodes what `serialize` wrote; throws on anything else. Must return a plain object. */
  deserialize(bytes: Uint8Array): SessionRecord;
  /**
   * What this serializer cannot carry beyond what no serializer can (a lone surrogate through UTF-8, a BigInt
   * through JSON): `set()` refuses it, so every value it accepts comes back. Absent: plain data only, and
   * `serialize` decides the rest when the session is written.
   */
  readonly valueRules?: ValueRules;
  /**
   * Reads and writes one top-level entry at a time, so a request decodes and encodes only the keys it touches.
   * Used only while `serialize` and `deserialize` are the ones the codec names (a subclass that overrides them
   * loses it). Advanced: the built-in serializers have one; yours works without.
   */
  readonly entryCodec?: EntryCodec;
}
