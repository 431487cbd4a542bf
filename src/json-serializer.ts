import type { SessionRecord, Serializer } from './serializer.js';

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
    const data: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new TypeError('A JSON session payload must be an object.');
    }
    return data as SessionRecord;
  }
}
