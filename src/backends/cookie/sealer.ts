import type { SessionWrite, StoredSession } from '../../core/backend.js';
import { publishRefused, type RejectionReason, type ResealedMessage } from '../../core/diagnostics.js';
import { SessionError } from '../../core/errors.js';
import { RawValue, lazyStored, type EntryCodec } from '../../codec/entries.js';
import type { Serializer, SessionRecord } from '../../codec/serializer.js';
import { assertFits, unfitKey, type ValueRules } from '../../codec/value.js';
import { OVERHEAD, open, seal, type Opened, type OwnLifetime, type SealMode } from '../../crypto/envelope.js';
import { MAX_COOKIE_VALUE_BYTES, decodeCookieValue } from '../../http/cookie.js';
import { serverLifetime, timeRejection } from '../../policy/lifetime.js';
import { largestKeys, rejectionReason, serializeFailed, type Refusal } from '../shared/checks.js';
import type { KeySlot } from '../shared/keys.js';

/** What the sealer needs to know of its backend: everything that decides whether a cookie opens. */
export interface SealerOptions {
  readonly mode: SealMode;
  readonly keys: KeySlot;
  /** Writes; `readers` holds it and every previous serializer, by id. */
  readonly serializer: Serializer;
  readonly readers: ReadonlyMap<number, Serializer>;
  readonly rules: ValueRules;
  /** The cookie name, for diagnostics. */
  readonly name: string;
  /** The backend's lifetime (its `maxAge`, or a day for `'session'`). */
  readonly lifetime: number;
  readonly absolute: number;
  readonly autoRenew: boolean;
}

/** An authenticated, unexpired cookie, as a request uses it. */
export interface OpenedSession {
  readonly stored: StoredSession;
  /** The id of the key that opened it. */
  readonly keyId: number;
  /** When its session began; `undefined` for a version 1 cookie. */
  readonly createdAt: number | undefined;
  /** Why it must be written back now, if it must. */
  readonly staleCause: ResealedMessage['cause'] | undefined;
  /** A previous serializer whose data the current one cannot carry unchanged: it keeps sealing this session. */
  readonly keptIn?: Serializer | undefined;
}

/** What `inspect` shows of a cookie value: the envelope's fields once it authenticated, and the reason it does not open. */
export interface Examined {
  readonly envelope?: Opened;
  readonly serializer?: Serializer;
  readonly data?: SessionRecord;
  readonly reason?: RejectionReason;
}

/** What an authenticated, unexpired cookie carries. */
interface Unsealed {
  readonly opened: Opened;
  readonly serializer: Serializer;
  readonly staleCause: ResealedMessage['cause'] | undefined;
}

/**
 * Seals and opens cookie values, knowing nothing of Koa: a value in, the session or the exact reason it does not
 * open out. The cookie backend reads and writes every cookie through it, and `inspect` opens cookies with it, so
 * the two cannot disagree.
 */
export class CookieSealer {
  readonly #o: SealerOptions;
  readonly #codec: EntryCodec | undefined;

  constructor(options: SealerOptions, codec: EntryCodec | undefined) {
    this.#o = options;
    this.#codec = codec;
  }

  get mode(): SealMode {
    return this.#o.mode;
  }

  /** A request's session: its top-level values stay encoded until read, when the serializer allows it. */
  read(value: string, now: number): OpenedSession | Refusal {
    const unsealed = this.#unseal(value, now);
    if (typeof unsealed === 'string') return unsealed;
    const { opened, serializer, staleCause } = unsealed;
    const { keyId, createdAt, maxAge, payload } = opened;
    const stale = staleCause !== undefined;
    const codec = serializer === this.#o.serializer ? this.#codec : undefined;
    const entries = codec === undefined ? undefined : split(codec, payload);
    if (codec !== undefined && entries !== undefined) return { stored: lazyStored(codec, entries, stale, maxAge), keyId, createdAt, staleCause };
    const data = deserialize(serializer, payload);
    if (data === undefined) return 'undecodable';
    // Moving to the current serializer must not change the data: when it cannot carry it, the session stays in its own.
    const unfit = serializer === this.#o.serializer ? undefined : unfitKey(data, this.#o.rules);
    if (unfit === undefined) return { stored: { data, stale, maxAge }, keyId, createdAt, staleCause };
    publishRefused('cookie', this.#o.name, 'ERR_SESSION_UNSUPPORTED_VALUE', unfit);
    const cause = staleCause === 'serializer' ? undefined : staleCause;
    return { stored: { data, stale: cause !== undefined, maxAge }, keyId, createdAt, staleCause: cause, keptIn: serializer };
  }

  /** The data of a cookie value, or why it does not open. */
  open(value: string, now: number): SessionRecord | Refusal {
    const unsealed = this.#unseal(value, now);
    if (typeof unsealed === 'string') return unsealed;
    return deserialize(unsealed.serializer, unsealed.opened.payload) ?? 'undecodable';
  }

  /** Everything `inspect` prints of a value: why it does not open, exactly, and what it holds when it does. */
  examine(value: string, now: number): Examined {
    const keys = this.#o.keys.keys;
    const envelope = decodeCookieValue(value);
    const opened = envelope === undefined ? undefined : open(this.#o.mode, keys, envelope);
    const unsealed = this.#unseal(value, now);
    const serializer = opened === undefined ? undefined : this.#o.readers.get(opened.serializerId);
    const base = { ...(opened === undefined ? {} : { envelope: opened }), ...(serializer === undefined ? {} : { serializer }) };
    if (typeof unsealed === 'string') return { ...base, reason: rejectionReason(this.#o.mode, keys, value, unsealed) };
    const data = deserialize(unsealed.serializer, unsealed.opened.payload);
    return data === undefined ? { ...base, reason: 'undecodable' } : { ...base, data };
  }

  /** How long a session with this own lifetime lasts on the server. */
  #lifetime(maxAge: OwnLifetime): number {
    return serverLifetime(maxAge, this.#o.lifetime);
  }

  /**
   * A cookie value for `data`, sealed with the newest key and `serializer`, checked first as `set()` checks.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE`, `ERR_SESSION_SERIALIZE` or `ERR_SESSION_TOO_LARGE`.
   */
  seal(data: SessionRecord, now: number): string {
    // The rules set() applies: what the serializer would silently change (a lone surrogate through MessagePack) is refused.
    assertFits(data, this.#o.rules);
    return this.#seal(data, now, now, undefined);
  }

  /**
   * Seals what the middleware asks to write, copying untouched values as they were encoded. A session `keptIn` a
   * previous serializer is sealed by it while the current one cannot carry its data unchanged.
   */
  sealWrite(change: SessionWrite, now: number, createdAt: number, keptIn?: Serializer | 'legacy'): string {
    const lazy = change.entries;
    const maxAge = change.maxAge;
    if (keptIn !== undefined) {
      const unfit = unfitKey(change.data, this.#o.rules);
      if (unfit !== undefined && keptIn === 'legacy') {
        throw new SessionError(
          'ERR_SESSION_UNSUPPORTED_VALUE',
          `The value at "${unfit}", read from koa-session's cookie, cannot be written by ${this.#o.serializer.name} unchanged ` +
            "(a lone surrogate, say), so the session stays in koa-session's cookie. Change or remove that key to move it.",
        );
      }
      if (unfit !== undefined) return this.#seal(change.data, now, createdAt, maxAge, keptIn as Serializer);
    }
    if (lazy === undefined || lazy.codec !== this.#codec) return this.#seal(change.data, now, createdAt, maxAge);
    const { codec, entries } = lazy;
    const keys = () => [...entries.keys()];
    const entrySize = (key: string) => codec.entrySize(key, entries.get(key));
    const payload = encode(this.#o.serializer.name, () => codec.join(entries), keys, entrySize);
    return this.#sealPayload(payload, { now, createdAt, maxAge }, keys, entrySize, this.#o.serializer.id);
  }

  /** Authenticates a cookie value: its envelope and serializer, or why it does not open. */
  #unseal(value: string, now: number): Unsealed | Refusal {
    const envelope = decodeCookieValue(value);
    if (envelope === undefined) return 'envelope';
    const opened = open(this.#o.mode, this.#o.keys.keys, envelope);
    if (opened === undefined) return 'envelope';
    // Past its expiry; sealed beyond its lifetime (under a longer maxAge: shortening maxAge ends it); or begun
    // absoluteTimeout ago, however often it was sealed again since.
    const late = timeRejection(opened, now, (own) => this.#lifetime(own), this.#o.absolute);
    if (late !== undefined) return late;
    const serializer = this.#o.readers.get(opened.serializerId);
    if (serializer === undefined) return 'unknown-serializer';
    const renewalDue = this.#o.autoRenew && opened.expiresAt - now < this.#lifetime(opened.maxAge) / 2;
    // A version 1 cookie is rewritten as version 2, which carries its creation time.
    let staleCause: ResealedMessage['cause'] | undefined;
    if (opened.retiredKey) staleCause = 'key-rotation';
    else if (serializer !== this.#o.serializer) staleCause = 'serializer';
    else if (opened.createdAt === undefined) staleCause = 'format';
    else if (renewalDue) staleCause = 'renewal';
    return { opened, serializer, staleCause };
  }

  #seal(data: SessionRecord, now: number, createdAt: number, maxAge: OwnLifetime, serializer = this.#o.serializer): string {
    const keys = () => Object.keys(data);
    const entrySize = (key: string) => serializer.serialize({ [key]: data[key] }).byteLength;
    const payload = encode(serializer.name, () => serializer.serialize(data), keys, entrySize);
    return this.#sealPayload(payload, { now, createdAt, maxAge }, keys, entrySize, serializer.id);
  }

  /** `keys` and `entrySize` are asked only to explain a failure, never on the way to a cookie. */
  #sealPayload(
    payload: Uint8Array,
    { now, createdAt, maxAge }: { now: number; createdAt: number; maxAge: OwnLifetime },
    keys: () => readonly string[],
    entrySize: (key: string) => number,
    serializerId: number,
  ): string {
    const size = Math.ceil(((OVERHEAD[this.#o.mode] + payload.byteLength) * 4) / 3);
    if (size > MAX_COOKIE_VALUE_BYTES) throw tooLarge(size, keys, entrySize);
    const times = { expiresAt: now + this.#lifetime(maxAge), createdAt, maxAge };
    return seal(this.#o.mode, this.#o.keys.keys, serializerId, times, payload).toString('base64url');
  }
}

function split(codec: EntryCodec, payload: Buffer): Map<string, RawValue> | undefined {
  try {
    return codec.split(payload);
  } catch {
    return undefined; // the whole-payload path decides
  }
}

function deserialize(serializer: Serializer, payload: Uint8Array): SessionRecord | undefined {
  let data: unknown;
  try {
    data = serializer.deserialize(payload);
  } catch {
    return undefined;
  }
  return typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as SessionRecord) : undefined;
}

/** Runs an encoder; on failure, names the first key whose value cannot be encoded. */
function encode(serializerName: string, run: () => Uint8Array, keys: () => readonly string[], entrySize: (key: string) => number): Uint8Array {
  try {
    return run();
  } catch (cause) {
    const culprit = keys().find((key) => {
      try {
        entrySize(key);
        return false;
      } catch {
        return true;
      }
    });
    throw serializeFailed(serializerName, culprit, cause);
  }
}

function tooLarge(size: number, keys: () => readonly string[], entrySize: (key: string) => number): SessionError {
  return new SessionError(
    'ERR_SESSION_TOO_LARGE',
    `The session is too large for a cookie: sealed, it would be ${size} bytes, and the limit is ` +
      `${MAX_COOKIE_VALUE_BYTES}. Largest keys: ${largestKeys(keys().map((key) => [key, entrySize(key)]))}. ` +
      'Keep large data server-side and store only a reference in the session. The client keeps its previous cookie.',
  );
}
