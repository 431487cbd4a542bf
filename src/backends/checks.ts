import { SessionError } from '../errors.js';
import { KeyRing } from '../key-ring.js';
import { invalidOption } from '../options.js';
import { JsonSerializer } from '../serializers/json-serializer.js';
import { MsgpackSerializer } from '../serializers/msgpack-serializer.js';
import { FIRST_USER_SERIALIZER_ID, type Serializer } from '../serializers/serializer.js';

// Checks every backend makes of its constructor's arguments.

export function checkKeyRing(where: string, keyRing: unknown): void {
  if (!(keyRing instanceof KeyRing)) {
    throw new SessionError('ERR_SESSION_INVALID_KEY', `${where}: the key ring must be a KeyRing, such as new KeyRing([key]).`);
  }
}

export function checkSerializer(where: string, option: string, serializer: unknown): Serializer {
  const candidate = serializer as Partial<Serializer> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.serialize !== 'function' ||
    typeof candidate.deserialize !== 'function' ||
    !Number.isInteger(candidate.id) ||
    (candidate.id as number) < 1 ||
    (candidate.id as number) > 255
  ) {
    throw invalidOption(where, option, 'a Serializer: an object with an integer id from 1 to 255, serialize() and deserialize()');
  }
  // Ids below 128 name this library's formats: a cookie must never be read by a serializer that did not write it.
  const id = candidate.id as number;
  const ownId = candidate instanceof JsonSerializer ? 1 : candidate instanceof MsgpackSerializer ? 2 : undefined;
  if (id < FIRST_USER_SERIALIZER_ID && id !== ownId) {
    throw invalidOption(
      where,
      option,
      `a Serializer whose id is ${FIRST_USER_SERIALIZER_ID} to 255: ids below ${FIRST_USER_SERIALIZER_ID} are reserved for ` +
        `this library's serializers (got ${id})`,
    );
  }
  return candidate as Serializer;
}

/** The error for a value the serializer could not encode; names the key (or none), never the value. */
export function serializeFailed(serializerName: string, key: string | undefined, cause: unknown): SessionError {
  const where = key === undefined ? 'a value' : `the value at "${key}"`;
  // The cause's message may quote session data, so it stays in `cause` and out of this message.
  return new SessionError(
    'ERR_SESSION_SERIALIZE',
    `The session could not be serialized with ${serializerName}: ${where} is not supported by it ` +
      '(see err.cause). Store only the types that serializer documents.',
    { cause },
  );
}
