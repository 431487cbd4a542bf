import type { Context } from 'koa';
import { handleOf, type SessionBackend, type SessionHandle } from '../../core/backend.js';
import { SessionError } from '../../core/errors.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { entryCodecOf } from '../../codec/entries.js';
import type { Serializer, SessionRecord } from '../../codec/serializer.js';
import { valueRulesOf } from '../../codec/value.js';
import type { SealMode } from '../../crypto/envelope.js';
import type { KeyRing } from '../../crypto/key-ring.js';
import { COOKIE_ATTRIBUTE_OPTION_NAMES, resolveCookieAttributes, type CookieAttributeOptions, type CookieAttributes } from '../../http/cookie.js';
import { TRANSPORT_OPTION_NAMES, resolveTransport, type TransportOptions } from '../../http/transport.js';
import { CLOCK_SKEW_MS, DEFAULT_ABSOLUTE_MS, DURATION_TEXT, isDuration } from '../../policy/lifetime.js';
import { checkUserKey, resolveClock, resolveSerializers, userIdOf } from '../shared/checks.js';
import { KeySlot, checkKeyRing } from '../shared/keys.js';
import { CookieRequest, type CookieConfig } from './cookie-request.js';
import { checkLegacy, type LegacyCookies } from '../shared/koa-session-cookies.js';
import { RevocationCache, revocationsUnavailable, type Revocation, type RevocationStore } from './revocations.js';
import { CookieSealer } from './sealer.js';

/** Options of {@link CookieSessionBackend.signed} and {@link CookieSessionBackend.private}. */
export interface CookieSessionOptions extends CookieAttributeOptions, TransportOptions {
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
   * back in this library's format in the same response, and expired: `koaSessionCookies({ keys: app.keys, until })`,
   * with `store` when koa-session kept its sessions in an external store (koa-redis): the record is moved and destroyed.
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

export { MAX_SAME_NAME_COOKIES } from '../shared/candidates.js';

const OPTION_NAMES = [
  'serializer',
  'previousSerializers',
  ...COOKIE_ATTRIBUTE_OPTION_NAMES,
  ...TRANSPORT_OPTION_NAMES,
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
  // What every request of this backend shares: the sealer, the keys, the revocation cache.
  readonly #config: CookieConfig;
  readonly #now: () => number;
  readonly #revocationTtl: number;

  private constructor(mode: SealMode, keyRing: KeyRing, options: CookieSessionOptions = {}) {
    const where = `CookieSessionBackend.${mode}`;
    checkKeyRing(where, keyRing);
    checkOptionNames(where, options, OPTION_NAMES);
    this.mode = mode;
    this.cookie = resolveCookieAttributes(where, options);
    const transport = resolveTransport(where, options);
    const { serializer, readers } = resolveSerializers(where, options);
    const rules = valueRulesOf(serializer);
    this.#now = resolveClock(where, options.now);
    const autoRenew = options.autoRenew ?? false;
    if (typeof autoRenew !== 'boolean') throw invalidOption(where, 'autoRenew', 'a boolean');
    const legacy = checkLegacy(where, options.legacy, transport !== undefined);
    const absolute = options.absoluteTimeout ?? Math.max(DEFAULT_ABSOLUTE_MS, this.cookie.lifetime);
    if (!isDuration(absolute)) throw invalidOption(where, 'absoluteTimeout', DURATION_TEXT);
    const { userKey, revocations } = options;
    checkUserKey(where, userKey);
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
    // A revocation outlives every cookie sealed before it: none opens past its session's absolute deadline.
    this.#revocationTtl = absolute + CLOCK_SKEW_MS;
    const keys = new KeySlot(where, keyRing, this.cookie.name);
    const sealer = new CookieSealer(
      { mode, keys, serializer, readers, rules, name: this.cookie.name, lifetime: this.cookie.lifetime, absolute, autoRenew },
      entryCodecOf(serializer),
    );
    this.#config = {
      owner: this,
      cookie: this.cookie,
      transport,
      sealer,
      keys,
      rules,
      legacy,
      absolute,
      userKey,
      revocations: revocations === undefined ? undefined : new RevocationCache(revocations, cacheMs, timeout),
      failOpen: down === 'accept',
    };
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
    const cache = this.#config.revocations;
    if (cache === undefined) throw invalidOption(`CookieSessionBackend.${this.mode}`, 'revocations', 'set (with userKey), to call revokeUser()');
    const id = userIdOf(user, 'revokeUser');
    const now = this.#now();
    let revocation: Revocation = { before: now };
    if (options.keep !== undefined) {
      const kept = handleOf(options.keep);
      if (!(kept instanceof CookieRequest) || kept.config.owner !== this)
        throw new SessionError('ERR_SESSION_INVALID_OPTION', "keep takes a request's session (ctx.session) of this backend.");
      // From the kept request's clock: a session it begins now (or renews, or rewrites from version 1) is not older.
      const { now: requestNow, createdAt } = kept;
      revocation = createdAt === undefined ? { before: requestNow } : { before: requestNow, except: createdAt };
    }
    // Kept while any cookie begun before it could open: a legacy cookie, begun at no known time, opens until `until`.
    const ttl = Math.max(this.#revocationTtl, (this.#config.legacy?.until ?? 0) - now + CLOCK_SKEW_MS);
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
    this.#config.keys.swap('CookieSessionBackend.setKeyRing', keyRing);
  }

  /**
   * The cookie value for a session's data, sealed with the newest key and the current serializer, expiring
   * `maxAge` from now. The middleware writes cookies through this same code.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for what `set()` refuses, `ERR_SESSION_SERIALIZE` or
   * `ERR_SESSION_TOO_LARGE`.
   */
  seal(data: SessionRecord): string {
    return this.#config.sealer.seal(data, this.#now());
  }

  /**
   * The data of a cookie value, or `undefined` for anything that does not open: malformed, tampered with,
   * expired, sealed with an unknown key or for another cookie name or mode, or undecodable.
   */
  open(value: string): SessionRecord | undefined {
    const data = this.#config.sealer.open(value, this.#now());
    return typeof data === 'string' ? undefined : data;
  }

  /**
   * The middleware's entry point (see {@link SessionBackend}): reads the clock, nothing else, until used; with
   * `revocations`, opens the cookie at once and checks its user's revocations (from the cache on most requests).
   */
  load(ctx: Context): SessionHandle | Promise<SessionHandle> {
    const request = new CookieRequest(this.#config, ctx, this.#now());
    const cache = this.#config.revocations;
    // With koa-session's store, a request that carries its cookie (and none of ours) fetches that record first.
    const fetched = request.fetchLegacy();
    if (fetched instanceof Promise) return fetched.then((loaded) => (cache === undefined ? loaded : loaded.gate(cache)));
    return cache === undefined ? request : request.gate(cache);
  }
}
