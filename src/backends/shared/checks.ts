import { hash } from 'node:crypto';
import type { Context } from 'koa';
import type { RejectionReason } from '../../core/diagnostics.js';
import { whyNotOpen, type EnvelopeMode } from '../../crypto/envelope.js';
import { MAX_COOKIE_VALUE_BYTES } from '../../http/cookie.js';
import { SessionError } from '../../core/errors.js';
import type { ContextKeys } from '../../crypto/key-ring.js';
import { invalidOption } from '../../core/options.js';
import { isWellFormed } from '../../codec/value.js';
import { JsonSerializer } from '../../codec/json/json-serializer.js';
import { MsgpackSerializer } from '../../codec/msgpack/msgpack-serializer.js';
import { FIRST_USER_SERIALIZER_ID, type Serializer } from '../../codec/serializer.js';

// Checks every backend makes of its constructor's arguments.

/** The `userKey` option: a session key, or absent. */
export function checkUserKey(where: string, userKey: unknown): void {
  if (userKey !== undefined && (typeof userKey !== 'string' || userKey === ''))
    throw invalidOption(where, 'userKey', 'a session key (a non-empty string)');
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

/**
 * The serializer that writes and every serializer that reads, by id: `serializer` (JSON by default) and
 * `previousSerializers`, whose ids must be distinct.
 */
export function resolveSerializers(
  where: string,
  options: { readonly serializer?: Serializer; readonly previousSerializers?: readonly Serializer[] },
): { serializer: Serializer; readers: ReadonlyMap<number, Serializer> } {
  const serializer = checkSerializer(where, 'serializer', options.serializer ?? new JsonSerializer());
  const previous = options.previousSerializers ?? [];
  if (!Array.isArray(previous)) throw invalidOption(where, 'previousSerializers', 'an array of serializers');
  const readers = new Map<number, Serializer>([[serializer.id, serializer]]);
  for (const candidate of previous as readonly Serializer[]) {
    checkSerializer(where, 'previousSerializers', candidate);
    const known = readers.get(candidate.id);
    if (known !== undefined && known !== candidate) {
      throw invalidOption(where, 'previousSerializers', `serializers with distinct ids (${candidate.id} is used twice)`);
    }
    readers.set(candidate.id, candidate);
  }
  return { serializer, readers };
}

/** The `now` option: the clock, in milliseconds since the epoch. */
export function resolveClock(where: string, now: unknown): () => number {
  const clock = now ?? Date.now;
  if (typeof clock !== 'function') throw invalidOption(where, 'now', 'a function returning milliseconds since the epoch');
  return clock as () => number;
}

/** Throws when the response headers are gone: a session cookie can no longer be written. */
export function assertHeadersOpen(ctx: Context): void {
  if (ctx.headerSent) {
    throw new SessionError(
      'ERR_SESSION_HEADERS_SENT',
      'The session changed but the response headers were already sent, so its cookie cannot be written. ' +
        'Change the session before streaming or flushing the response.',
    );
  }
}

/** The three largest keys and their sizes, for a too-large message: `"cart" (2100 bytes), ...`, or `none`. */
export function largestKeys(sizes: Iterable<readonly [key: string, bytes: number]>): string {
  const largest = [...sizes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([key, bytes]) => `"${key}" (${bytes} bytes)`);
  return largest.join(', ') || 'none';
}

/**
 * A user's id as the user index and the revocation store know it: a one-way hash of the id's text, so that neither
 * spells out user ids.
 * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for anything but a non-empty string or a finite number.
 */
export function userIdOf(user: unknown, what: string): string {
  // A lone surrogate would be hashed as U+FFFD: 'Jos\ud800' and 'Jos\ufffd' would share one index and revocation.
  if (!(
    (typeof user === 'string' && user !== '' && isWellFormed(user)) ||
    (typeof user === 'number' && Number.isFinite(user)) ||
    typeof user === 'bigint'
  )) {
    throw new SessionError(
      'ERR_SESSION_UNSUPPORTED_VALUE',
      `${what} must be a user id: a non-empty, well-formed string (no lone surrogate) or a finite number.`,
    );
  }
  return hash('sha256', String(user), 'base64url');
}

/** Why a cookie value did not open: a reason, or `envelope` for the envelope's own checks (told apart only when asked). */
export type Refusal = RejectionReason | 'envelope';

/** The reason a diagnostics subscriber is told: an `envelope` refusal is looked at again to say which check failed. */
export function rejectionReason(mode: EnvelopeMode, keys: ContextKeys, value: string, refusal: Refusal): RejectionReason {
  return refusal === 'envelope' ? (whyNotOpen(mode, keys, value, MAX_COOKIE_VALUE_BYTES) ?? 'bad-mac') : refusal;
}
