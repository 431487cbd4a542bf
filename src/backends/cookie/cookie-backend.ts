import type { Context } from 'koa';
import { handleOf, type SessionBackend, type SessionHandle, type SessionWrite, type StoredSession } from '../../core/backend.js';
import {
  MAX_COOKIE_VALUE_BYTES,
  expiredCookieLine,
  COOKIE_ATTRIBUTE_OPTION_NAMES,
  decodeCookieValue,
  putSetCookie,
  readCookies,
  resolveCookieAttributes,
  setCookieLine,
  type CookieAttributeOptions,
  type CookieAttributes,
} from '../../http/cookie.js';
import { OVERHEAD, open, seal, type OwnLifetime, type SealMode } from '../../crypto/envelope.js';
import { channels, publishRefused, type ResealedMessage } from '../../core/diagnostics.js';
import { RawValue, entryCodecOf, entryValue, recordOf, type EntryCodec } from '../../codec/entries.js';
import { RevocationCache, RevocationTimeout, isRevoked, type Revocation, type RevocationStore } from './revocations.js';
import { SessionError, storeFailure } from '../../core/errors.js';
import { KeyRing, keysFor, type ContextKeys } from '../../crypto/key-ring.js';
import type { LegacyCookies } from './koa-session-cookies.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { CLOCK_SKEW_MS, DEFAULT_ABSOLUTE_MS, DURATION_TEXT, isDuration, isLifetime, serverLifetime, timeRejection } from '../../policy/lifetime.js';
import {
  assertHeadersOpen,
  checkKeyRing,
  largestKeys,
  resolveClock,
  resolveSerializers,
  serializeFailed,
  rejectionReason,
  userIdOf,
  type Refusal,
} from '../checks.js';
import { assertFits, unfitKey, valueRulesOf, type ValueRules } from '../../codec/value.js';
import type { SessionRecord, Serializer } from '../../codec/serializer.js';

/** Options of {@link CookieSessionBackend.signed} and {@link CookieSessionBackend.private}. */
export interface CookieSessionOptions extends CookieAttributeOptions {
  /** Writes new cookies. @default new JsonSerializer() */
  readonly serializer?: Serializer;
  /**
   * Serializers whose cookies are still read. A cookie written by one of them is rewritten with `serializer`
   * in the same response, so you can move from JSON to MessagePack without logging anyone out.
   * @default []
   */
  readonly previousSerializers?: readonly Serializer[];
  /**
   * Keep active users signed in: a request that reads a session with less than half its lifetime left renews
   * it (a new cookie with a fresh lifetime, as `ctx.session.renew()` would), at most once per half lifetime.
   * Without it, a session expires `maxAge` after it was last written, however often it is read.
   * @default false
   */
  readonly autoRenew?: boolean;
  /** The clock, in milliseconds since the epoch; read once per request. For tests. @default Date.now */
  readonly now?: () => number;
  /**
   * Cookies of the session library the app used before, read when a request has no cookie of this one, written
   * back in this library's format in the same response, and expired: `koaSessionCookies({ keys: app.keys, until })`.
   * @default undefined
   */
  readonly legacy?: LegacyCookies;
  /**
   * A session ends this long after it began (its login, with `renew()` at login), however active it is and however
   * often it is re-sealed. Milliseconds, 1 s to 400 days. @default 2_592_000_000 (30 days), or `maxAge` if longer
   */
  readonly absoluteTimeout?: number;
  /**
   * The session key that holds the signed-in user's id (a string or a number): with `revocations`,
   * {@link CookieSessionBackend.revokeUser} stops that user's cookies opening. @default undefined
   */
  readonly userKey?: string;
  /** Where revocations are kept (`RedisRevocationStore`, `MemoryRevocationStore`); needs `userKey`. @default undefined */
  readonly revocations?: RevocationStore;
  /**
   * How long a process trusts what it last heard of a user's revocations, in milliseconds: a cookie revoked on
   * another server still opens here for at most this long. 0 asks the store on every request with a user.
   * @default 5000
   */
  readonly revocationCacheMs?: number;
  /** Longest wait for the revocation store, in milliseconds. @default 1000 */
  readonly revocationTimeout?: number;
  /**
   * When the revocation store fails or is slow: `'reject'` fails the request of a signed-in user with
   * `ERR_SESSION_STORE_UNAVAILABLE` (503); `'accept'` opens the cookie as if it were not revoked. @default 'reject'
   */
  readonly revocationStoreDown?: 'reject' | 'accept';
}

/** Where a stored session carries the id of the key that opened it and when it began (internal). */
const OPENED_WITH = Symbol('koa-sealed-session.openedWith');
const CREATED_AT = Symbol('koa-sealed-session.createdAt');
const STALE_CAUSE = Symbol('koa-sealed-session.staleCause');
/** A session read by a previous serializer whose data the current one cannot carry unchanged: it is sealed by that one. */
const KEPT_IN = Symbol('koa-sealed-session.keptIn');
type Opened<T> = T & {
  readonly [OPENED_WITH]: number;
  readonly [CREATED_AT]: number | undefined;
  readonly [STALE_CAUSE]?: ResealedMessage['cause'];
  readonly [KEPT_IN]?: Serializer;
};

/**
 * Where a cookie handle tells `revokeUser`'s `keep` (internal) when its request read the clock, and when its session
 * began (`undefined`: it begins in this request, or is a version 1 cookie, rewritten as begun now).
 */
const KEEP = Symbol('koa-sealed-session.keep');

/** What an authenticated, unexpired cookie carries. */
interface Unsealed {
  readonly payload: Buffer;
  readonly serializer: Serializer;
  readonly stale: boolean;
  readonly keyId: number;
  /** `undefined` for a version 1 cookie. */
  readonly createdAt: number | undefined;
  readonly maxAge: OwnLifetime;
  readonly staleCause: ResealedMessage['cause'] | undefined;
}

/** How many cookies of the session's name a request's cookies are searched for one that opens. */
export const MAX_SAME_NAME_COOKIES = 4;

const OPTION_NAMES = [
  'serializer',
  'previousSerializers',
  ...COOKIE_ATTRIBUTE_OPTION_NAMES,
  'autoRenew',
  'now',
  'legacy',
  'absoluteTimeout',
  'userKey',
  'revocations',
  'revocationCacheMs',
  'revocationTimeout',
  'revocationStoreDown',
] as const satisfies readonly (keyof CookieSessionOptions)[];

/**
 * Stores the whole session in one sealed cookie of at most 4000 bytes.
 *
 * - `CookieSessionBackend.signed(keyRing)`: HMAC-SHA256. The client can read the session (the serialized bytes
 *   are in the cookie as they are) but cannot change it.
 * - `CookieSessionBackend.private(keyRing)`: AES-256-GCM. The client can neither read nor change it.
 *
 * Every cookie carries an expiry that the server enforces, the id of the key that sealed it and the id of the
 * serializer that wrote it; its name and mode are authenticated too.
 *
 * @example
 * ```ts
 * app.use(session(CookieSessionBackend.private(keyRing, { serializer: new MsgpackSerializer() })));
 * ```
 */
export class CookieSessionBackend implements SessionBackend {
  /** Sessions the client may read but not modify. */
  static signed(keyRing: KeyRing, options?: CookieSessionOptions): CookieSessionBackend {
    return new CookieSessionBackend('signed', keyRing, options);
  }

  /** Sessions the client may neither read nor modify. */
  static private(keyRing: KeyRing, options?: CookieSessionOptions): CookieSessionBackend {
    return new CookieSessionBackend('private', keyRing, options);
  }

  /** `'signed'` or `'private'`. */
  readonly mode: SealMode;
  /** The validated cookie attributes. */
  readonly cookie: CookieAttributes;
  #keys: ContextKeys;
  readonly #serializer: Serializer;
  readonly #codec: EntryCodec | undefined;
  readonly #rules: ValueRules;
  readonly #readers: ReadonlyMap<number, Serializer>;
  readonly #now: () => number;
  readonly #autoRenew: boolean;
  readonly #legacy: LegacyCookies | undefined;
  readonly #absolute: number;
  readonly #userKey: string | undefined;
  readonly #revocations: RevocationCache | undefined;
  readonly #revocationTtl: number;
  readonly #failOpen: boolean;

  private constructor(mode: SealMode, keyRing: KeyRing, options: CookieSessionOptions = {}) {
    const where = `CookieSessionBackend.${mode}`;
    checkKeyRing(where, keyRing);
    checkOptionNames(where, options, OPTION_NAMES);
    this.mode = mode;
    this.cookie = resolveCookieAttributes(where, options);
    const { serializer, readers } = resolveSerializers(where, options);
    this.#serializer = serializer;
    this.#readers = readers;
    this.#codec = entryCodecOf(this.#serializer);
    this.#rules = valueRulesOf(this.#serializer);
    this.#now = resolveClock(where, options.now);
    const autoRenew = options.autoRenew ?? false;
    if (typeof autoRenew !== 'boolean') throw invalidOption(where, 'autoRenew', 'a boolean');
    this.#autoRenew = autoRenew;
    const legacy = options.legacy;
    if (
      legacy !== undefined &&
      (typeof legacy !== 'object' ||
        legacy === null ||
        typeof legacy.open !== 'function' ||
        !Array.isArray(legacy.expired) ||
        !Number.isFinite(legacy.until))
    ) {
      throw invalidOption(where, 'legacy', 'the result of koaSessionCookies({ keys: app.keys, until })');
    }
    this.#legacy = legacy;
    const absolute = options.absoluteTimeout ?? Math.max(DEFAULT_ABSOLUTE_MS, this.cookie.lifetime);
    if (!isDuration(absolute)) throw invalidOption(where, 'absoluteTimeout', DURATION_TEXT);
    this.#absolute = absolute;
    const { userKey, revocations } = options;
    if (userKey !== undefined && (typeof userKey !== 'string' || userKey === ''))
      throw invalidOption(where, 'userKey', 'a session key (a non-empty string)');
    if (revocations !== undefined) {
      if (typeof revocations !== 'object' || revocations === null || typeof revocations.get !== 'function' || typeof revocations.set !== 'function') {
        throw invalidOption(where, 'revocations', 'a RevocationStore, such as new RedisRevocationStore(client) or new MemoryRevocationStore()');
      }
      if (userKey === undefined) throw invalidOption(where, 'revocations', 'given with userKey, the session key that holds the user id');
    }
    const cacheMs = options.revocationCacheMs ?? 5000;
    if (!Number.isInteger(cacheMs) || cacheMs < 0 || cacheMs > 3_600_000)
      throw invalidOption(where, 'revocationCacheMs', 'a whole number of milliseconds from 0 to 3600000');
    const timeout = options.revocationTimeout ?? 1000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000)
      throw invalidOption(where, 'revocationTimeout', 'a whole number of milliseconds from 1 to 60000');
    const down = options.revocationStoreDown ?? 'reject';
    if (down !== 'reject' && down !== 'accept') throw invalidOption(where, 'revocationStoreDown', "'reject' (a 503) or 'accept'");
    this.#userKey = userKey;
    this.#revocations = revocations === undefined ? undefined : new RevocationCache(revocations, cacheMs, timeout);
    // A revocation outlives every cookie sealed before it: none opens past its session's absolute deadline.
    this.#revocationTtl = absolute + CLOCK_SKEW_MS;
    this.#failOpen = down === 'accept';
    this.#keys = keysFor(keyRing, this.cookie.name);
    Object.freeze(this);
  }

  /**
   * Stops every cookie of a user whose session began before now from opening (however recently it was re-sealed),
   * on every server that shares the revocation store: at once on this one, within `revocationCacheMs` on the others.
   * `keep`: this request's `ctx.session`, which stays signed in ("sign out everywhere else").
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the revocation store fails;
   * `ERR_SESSION_INVALID_OPTION` without `userKey` and `revocations`.
   */
  async revokeUser(user: string | number, options: { readonly keep?: object } = {}): Promise<void> {
    const cache = this.#revocations;
    if (cache === undefined) throw invalidOption(`CookieSessionBackend.${this.mode}`, 'revocations', 'set (with userKey), to call revokeUser()');
    const id = userIdOf(user, 'revokeUser');
    const now = this.#now();
    let revocation: Revocation = { before: now };
    if (options.keep !== undefined) {
      const kept = (handleOf(options.keep) as { [KEEP]?: () => { now: number; createdAt: number | undefined } } | undefined)?.[KEEP];
      if (typeof kept !== 'function')
        throw new SessionError('ERR_SESSION_INVALID_OPTION', "keep takes a request's session (ctx.session) of this backend.");
      // From the kept request's clock: a session it begins now (or renews, or rewrites from version 1) is not older.
      const { now: requestNow, createdAt } = kept();
      revocation = createdAt === undefined ? { before: requestNow } : { before: requestNow, except: createdAt };
    }
    // Kept while any cookie begun before it could open: a legacy cookie, begun at no known time, opens until `until`.
    const ttl = Math.max(this.#revocationTtl, (this.#legacy?.until ?? 0) - now + CLOCK_SKEW_MS);
    try {
      await cache.revoke(id, revocation, ttl, now);
    } catch (err) {
      throw revocationsUnavailable(err);
    }
  }

  /**
   * Replaces the key ring, for instance to rotate keys without restarting: requests from now on seal with the
   * new ring's newest key and open with its keys. A request already in flight writes with the new ring, except
   * that a session it opened with a key the new ring lacks is not written back: its cookie is expired, so that
   * revoking a leaked key also ends the sessions of requests still running.
   * @throws {@link SessionError} `ERR_SESSION_INVALID_KEY` when `keyRing` is not a KeyRing.
   */
  setKeyRing(keyRing: KeyRing): void {
    checkKeyRing('CookieSessionBackend.setKeyRing', keyRing);
    this.#keys = keysFor(keyRing, this.cookie.name);
  }

  /**
   * The cookie value for a session's data, sealed with the newest key and the current serializer, expiring
   * `maxAge` from now. The middleware writes cookies through this same code.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for what `set()` refuses, `ERR_SESSION_SERIALIZE` or
   * `ERR_SESSION_TOO_LARGE`.
   */
  seal(data: SessionRecord): string {
    const now = this.#now();
    // The rules set() applies: what the serializer would silently change (a lone surrogate through MessagePack) is refused.
    assertFits(data, this.#rules);
    return this.#seal(data, now, now, undefined);
  }

  /**
   * The data of a cookie value, or `undefined` for anything that does not open: malformed, tampered with,
   * expired, sealed with an unknown key or for another cookie name or mode, or undecodable.
   */
  open(value: string): SessionRecord | undefined {
    const unsealed = this.#unseal(value, this.#now());
    return typeof unsealed === 'string' ? undefined : deserialize(unsealed.serializer, unsealed.payload);
  }

  /**
   * The middleware's entry point (see {@link SessionBackend}): reads the clock, nothing else, until used; with
   * `revocations`, opens the cookie at once and checks its user's revocations (from the cache on most requests).
   */
  load(ctx: Context): SessionHandle | Promise<SessionHandle> {
    const now = this.#now();
    const cookie = this.cookie;
    let hadCookie = false;
    let openedWith: number | undefined;
    let createdAt: number | undefined;
    let legacyOpened = false;
    // The serializer that keeps writing this session (see KEPT_IN), or 'legacy' for legacy data no serializer here carries.
    let keptIn: Serializer | 'legacy' | undefined;
    let staleCause: ResealedMessage['cause'] | undefined;
    // Set when the cookie was opened before the request ran (to check its user's revocations): read() hands it out.
    let found: { readonly stored: StoredSession | undefined } | undefined;
    const read = (): Opened<StoredSession> | StoredSession | undefined => {
      if (found !== undefined) return found.stored;
      const header = ctx.request.headers.cookie;
      const values = readCookies(header, cookie.name, MAX_SAME_NAME_COOKIES);
      hadCookie = values.length > 0;
      // The first that opens: a cookie planted by a sibling subdomain must not push the real one out.
      for (const value of values) {
        const stored = this.#read(value, now);
        if (typeof stored !== 'string') {
          openedWith = stored[OPENED_WITH];
          createdAt = stored[CREATED_AT];
          staleCause = stored[STALE_CAUSE];
          keptIn = stored[KEPT_IN];
          return stored;
        }
        if (channels.cookieRejected.hasSubscribers) {
          channels.cookieRejected.publish({ backend: 'cookie', name: cookie.name, reason: rejectionReason(this.mode, this.#keys, value, stored) });
        }
      }
      // No cookie of ours: a session of the library the app used before is moved over (stale: written now).
      const moved = hadCookie ? undefined : this.#legacy?.open(header, now);
      if (moved === undefined) return undefined;
      legacyOpened = true;
      // koa-session keeps every session's lifetime; one that differs from this backend's is the session's own.
      const own = isLifetime(moved.maxAge) && moved.maxAge !== handle.maxAge ? moved.maxAge : undefined;
      const unfit = unfitKey(moved.data, this.#rules);
      if (unfit !== undefined) {
        // The serializer cannot carry it unchanged: readable as it is, and left in koa-session's cookie.
        publishRefused('cookie', cookie.name, 'ERR_SESSION_UNSUPPORTED_VALUE', unfit);
        keptIn = 'legacy';
        return { data: moved.data, stale: false, maxAge: own, [OPENED_WITH]: -1, [CREATED_AT]: undefined };
      }
      // Begun at an unknown time: a user with any revocation does not move over.
      staleCause = 'format';
      return { data: moved.data, stale: true, maxAge: own, [OPENED_WITH]: -1, [CREATED_AT]: undefined };
    };
    const handle: SessionHandle & { readonly valueRules: ValueRules; readonly [KEEP]: () => { now: number; createdAt: number | undefined } } = {
      valueRules: this.#rules,
      [KEEP]: () => ({ now, createdAt }),
      maxAge: cookie.maxAge ?? 'session',
      read,
      refused: (code, key) => publishRefused('cookie', cookie.name, code, key),
      write: (change: SessionWrite) => {
        // The key that opened this session was dropped by setKeyRing while the request ran (a revocation): sealing
        // it again with the new ring would undo the revocation, so the session ends here.
        const revoked = openedWith !== undefined && openedWith !== -1 && !this.#keys.byId.has(openedWith);
        const ending = change.status === 'purged' || revoked;
        if (ending && !hadCookie && !legacyOpened) return;
        // Seal before touching headers: a failure (too large, unserializable) leaves the client's cookies alone.
        // A new or explicitly renewed session begins now; a version 1 cookie, which lacks the time, begins when first seen.
        const began = change.isNew || change.status === 'renewed' ? now : (createdAt ?? now);
        let value: string | undefined;
        try {
          value = ending ? undefined : this.#sealWrite(change, now, began, keptIn);
        } catch (err) {
          publishRefused('cookie', cookie.name, (err as SessionError).code ?? 'unknown');
          throw err;
        }
        assertHeadersOpen(ctx);
        if (legacyOpened) expireLegacy(ctx, this.#legacy as LegacyCookies);
        if (ending && !hadCookie) return;
        const secure = cookie.secure === 'auto' ? ctx.secure : cookie.secure;
        const maxAge = cookieMaxAge(cookie, change.maxAge);
        // The browser keeps it no longer than the session's absolute deadline.
        const capped = maxAge === undefined ? undefined : Math.max(0, Math.min(maxAge, began + this.#absolute - now));
        const line = value === undefined ? expiredCookieLine(cookie, secure) : setCookieLine(cookie, value, now, secure, capped);
        putSetCookie(ctx.res, cookie.name, line);
        const published = ending
          ? channels.purged
          : change.status === 'renewed'
            ? channels.renewed
            : change.status === 'unchanged'
              ? channels.resealed
              : undefined;
        if (published?.hasSubscribers === true) {
          published.publish(
            published === channels.resealed
              ? { backend: 'cookie', name: cookie.name, cause: staleCause ?? 'renewal' }
              : { backend: 'cookie', name: cookie.name },
          );
        }
      },
    };
    const cache = this.#revocations;
    if (cache === undefined) return handle;
    // With revocations, the cookie is opened now: whether it still opens depends on its user's revocation time.
    const stored = read() as Opened<StoredSession> | undefined;
    const user = stored === undefined ? undefined : this.#userOf(stored);
    if (stored === undefined || user === undefined) {
      found = { stored };
      return handle;
    }
    const revokedIf = (revocation: Revocation | undefined): SessionHandle => {
      // By when the session began, which every re-seal keeps: a revoked session cannot be re-sealed out of it.
      if (isRevoked(revocation, stored[CREATED_AT])) {
        if (channels.cookieRejected.hasSubscribers) channels.cookieRejected.publish({ backend: 'cookie', name: cookie.name, reason: 'revoked' });
        // Opens as no session at all: a change starts a new one, which replaces the revoked cookie.
        openedWith = createdAt = undefined;
        legacyOpened = false;
        found = { stored: undefined };
      } else {
        found = { stored };
      }
      return handle;
    };
    // A user value that is no id could never be revoked: such a cookie does not open.
    if (user === '') return revokedIf({ before: Infinity });
    let revocation: Revocation | undefined | Promise<Revocation | undefined>;
    try {
      revocation = cache.get(user, now);
    } catch (err) {
      revocation = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (!(revocation instanceof Promise)) return revokedIf(revocation);
    const asked = performance.now();
    return revocation.then(revokedIf, (err: unknown) => {
      if (channels.storeUnavailable.hasSubscribers) {
        const durationMs = performance.now() - asked;
        channels.storeUnavailable.publish({
          backend: 'cookie',
          name: cookie.name,
          operation: 'revocations',
          durationMs,
          cause: err instanceof RevocationTimeout ? 'timeout' : 'error',
        });
      }
      if (this.#failOpen) return revokedIf(undefined);
      throw revocationsUnavailable(err);
    });
  }

  /** The revocation id of a stored session's user, or `undefined` for a session without one. */
  #userOf(stored: StoredSession): string | undefined {
    let value: unknown;
    try {
      value = entryValue(stored, this.#userKey as string);
    } catch {
      value = undefined;
    }
    if (value === undefined || value === null) return undefined;
    try {
      return userIdOf(value, 'userKey');
    } catch {
      // Not a user id: a cookie with such a value could never be revoked, so it does not open.
      return '';
    }
  }

  /** A request's session: its top-level values stay encoded until read, when the serializer allows it. */
  #read(value: string, now: number): Opened<StoredSession> | Refusal {
    const unsealed = this.#unseal(value, now);
    if (typeof unsealed === 'string') return unsealed;
    const { serializer, payload, stale, keyId, createdAt, maxAge, staleCause } = unsealed;
    const codec = serializer === this.#serializer ? this.#codec : undefined;
    const entries: Map<string, unknown> | undefined = codec === undefined ? undefined : split(codec, payload);
    if (codec !== undefined && entries !== undefined) {
      let data: SessionRecord | undefined;
      const stored: Opened<StoredSession> = {
        // For a backend wrapper that asks; the session takes the entries over and reads them lazily.
        get data() {
          return (data ??= recordOf(entries, codec.decode));
        },
        stale,
        maxAge,
        entries: { codec, entries },
        [OPENED_WITH]: keyId,
        [CREATED_AT]: createdAt,
        [STALE_CAUSE]: staleCause,
      };
      return stored;
    }
    const data = deserialize(serializer, payload);
    if (data === undefined) return 'undecodable';
    // Moving to the current serializer must not change the data: when it cannot carry it, the session stays in its own.
    const unfit = serializer === this.#serializer ? undefined : unfitKey(data, this.#rules);
    if (unfit === undefined) return { data, stale, maxAge, [OPENED_WITH]: keyId, [CREATED_AT]: createdAt, [STALE_CAUSE]: staleCause };
    publishRefused('cookie', this.cookie.name, 'ERR_SESSION_UNSUPPORTED_VALUE', unfit);
    const cause = staleCause === 'serializer' ? undefined : staleCause;
    return { data, stale: cause !== undefined, maxAge, [OPENED_WITH]: keyId, [CREATED_AT]: createdAt, [STALE_CAUSE]: cause, [KEPT_IN]: serializer };
  }

  /** Authenticates a cookie value: its payload and serializer, or `undefined` for anything that does not open. */
  #unseal(value: string, now: number): Unsealed | Refusal {
    const envelope = decodeCookieValue(value);
    if (envelope === undefined) return 'envelope';
    const opened = open(this.mode, this.#keys, envelope);
    if (opened === undefined) return 'envelope';
    const lifetime = this.#lifetime(opened.maxAge);
    // Past its expiry; sealed beyond its lifetime (under a longer maxAge: shortening maxAge ends it); or begun
    // absoluteTimeout ago, however often it was sealed again since.
    const late = timeRejection(opened, now, (own) => this.#lifetime(own), this.#absolute);
    if (late !== undefined) return late;
    const serializer = this.#readers.get(opened.serializerId);
    if (serializer === undefined) return 'unknown-serializer';
    const renewalDue = this.#autoRenew && opened.expiresAt - now < lifetime / 2;
    // A version 1 cookie is rewritten as version 2, which carries its creation time.
    const staleCause = opened.retiredKey
      ? 'key-rotation'
      : serializer !== this.#serializer
        ? 'serializer'
        : opened.createdAt === undefined
          ? 'format'
          : renewalDue
            ? 'renewal'
            : undefined;
    const { payload, keyId, createdAt, maxAge } = opened;
    return { payload, serializer, stale: staleCause !== undefined, keyId, createdAt, maxAge, staleCause };
  }

  /** How long a session with this own lifetime lasts on the server. */
  #lifetime(maxAge: OwnLifetime): number {
    return serverLifetime(maxAge, this.cookie.lifetime);
  }

  #seal(data: SessionRecord, now: number, createdAt: number, maxAge: OwnLifetime, serializer = this.#serializer): string {
    const keys = () => Object.keys(data);
    const entrySize = (key: string) => serializer.serialize({ [key]: data[key] }).byteLength;
    const payload = encode(serializer.name, () => serializer.serialize(data), keys, entrySize);
    return this.#sealPayload(payload, { now, createdAt, maxAge }, keys, entrySize, serializer.id);
  }

  /**
   * Seals what the middleware asks to write, copying untouched values as they were encoded. A session `keptIn` a
   * previous serializer is sealed by it while the current one cannot carry its data unchanged.
   */
  #sealWrite(change: SessionWrite, now: number, createdAt: number, keptIn?: Serializer | 'legacy'): string {
    const lazy = change.entries;
    const maxAge = change.maxAge;
    if (keptIn !== undefined) {
      const unfit = unfitKey(change.data, this.#rules);
      if (unfit !== undefined && keptIn === 'legacy') {
        throw new SessionError(
          'ERR_SESSION_UNSUPPORTED_VALUE',
          `The value at "${unfit}", read from koa-session's cookie, cannot be written by ${this.#serializer.name} unchanged ` +
            "(a lone surrogate, say), so the session stays in koa-session's cookie. Change or remove that key to move it.",
        );
      }
      if (unfit !== undefined) return this.#seal(change.data, now, createdAt, maxAge, keptIn as Serializer);
    }
    if (lazy === undefined || lazy.codec !== this.#codec) return this.#seal(change.data, now, createdAt, maxAge);
    const { codec, entries } = lazy;
    const keys = () => [...entries.keys()];
    const entrySize = (key: string) => codec.entrySize(key, entries.get(key));
    const payload = encode(this.#serializer.name, () => codec.join(entries), keys, entrySize);
    return this.#sealPayload(payload, { now, createdAt, maxAge }, keys, entrySize);
  }

  /** `keys` and `entrySize` are asked only to explain a failure, never on the way to a cookie. */
  #sealPayload(
    payload: Uint8Array,
    { now, createdAt, maxAge }: { now: number; createdAt: number; maxAge: OwnLifetime },
    keys: () => readonly string[],
    entrySize: (key: string) => number,
    serializerId = this.#serializer.id,
  ): string {
    const size = Math.ceil(((OVERHEAD[this.mode] + payload.byteLength) * 4) / 3);
    if (size > MAX_COOKIE_VALUE_BYTES) throw tooLarge(size, keys, entrySize);
    const times = { expiresAt: now + this.#lifetime(maxAge), createdAt, maxAge };
    const envelope = seal(this.mode, this.#keys, serializerId, times, payload);
    return envelope.toString('base64url');
  }
}

function revocationsUnavailable(cause: unknown): SessionError {
  return new SessionError(
    'ERR_SESSION_STORE_UNAVAILABLE',
    'The revocation store failed or did not answer in time: the request fails (503) rather than open a cookie that ' +
      "may be revoked (revocationStoreDown: 'reject'). Check the store.",
    { cause: storeFailure(cause) },
  );
}

/** The cookie's Max-Age for a session's own lifetime: `undefined` makes a browser-session cookie. */
function cookieMaxAge(cookie: CookieAttributes, maxAge: OwnLifetime): number | undefined {
  return maxAge === undefined ? cookie.maxAge : maxAge === 'session' ? undefined : maxAge;
}

/** Expires the cookies of the library the app used before, once their session moved to this one. */
function expireLegacy(ctx: Context, legacy: LegacyCookies): void {
  for (const [name, line] of legacy.expired) putSetCookie(ctx.res, name, line);
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
