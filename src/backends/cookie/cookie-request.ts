import type { Context } from 'koa';
import type { SessionHandle, SessionWrite, StoredSession } from '../../core/backend.js';
import { channels, publishRefused, publishRejected, type ResealedMessage } from '../../core/diagnostics.js';
import type { SessionError } from '../../core/errors.js';
import { entryValue } from '../../codec/entries.js';
import type { Serializer } from '../../codec/serializer.js';
import { unfitKey, type ValueRules } from '../../codec/value.js';
import type { OwnLifetime } from '../../crypto/envelope.js';
import { expiredCookieLine, isSecure, putSetCookie, readCookies, setCookieLine, type CookieAttributes } from '../../http/cookie.js';
import { putToken, requestValues, type HeaderTransport } from '../../http/transport.js';
import { isLifetime } from '../../policy/lifetime.js';
import { assertHeadersOpen, userIdOf } from '../shared/checks.js';
import { MAX_SAME_NAME_COOKIES, firstThatOpens } from '../shared/candidates.js';
import type { KeySlot } from '../shared/keys.js';
import type { LegacyCookies, MovedSession } from '../shared/koa-session-cookies.js';
import { isRevoked, revocationsUnavailable, type Revocation, type RevocationCache } from './revocations.js';
import { DeadlineExceeded } from '../shared/deadlines.js';
import type { CookieSealer } from './sealer.js';

/** What a cookie backend's requests share: its resolved options. */
export interface CookieConfig {
  /** The backend itself: a request's handle is recognised as its own by it (`revokeUser`'s `keep`). */
  readonly owner: object;
  readonly cookie: CookieAttributes;
  /** `transport: 'header'`; `undefined` for the cookie. */
  readonly transport: HeaderTransport | undefined;
  readonly sealer: CookieSealer;
  readonly keys: KeySlot;
  readonly rules: ValueRules;
  readonly legacy: LegacyCookies | undefined;
  readonly absolute: number;
  readonly userKey: string | undefined;
  readonly revocations: RevocationCache | undefined;
  readonly failOpen: boolean;
}

/**
 * One request's cookie session: reads the clock at load, nothing else until used; `read` opens the first cookie
 * that opens (or a legacy cookie), `write` seals and sets the response's cookie. With revocations, the cookie is
 * opened at load ({@link CookieRequest.gate}) so that its user's revocations can be checked first.
 */
export class CookieRequest implements SessionHandle {
  readonly maxAge: number | 'session';
  readonly valueRules: ValueRules;
  #hadCookie = false;
  /** The id of the key that opened the session; `undefined` when none did (a new or legacy session). */
  #openedWith: number | undefined;
  #createdAt: number | undefined;
  #legacyOpened = false;
  // With koa-session's store: the record's key and the session it held, fetched at load.
  #legacyKey: string | undefined;
  #legacyFetched: MovedSession | undefined;
  // The serializer that keeps writing this session (see OpenedSession.keptIn), or 'legacy' for legacy data no
  // serializer here carries.
  #keptIn: Serializer | 'legacy' | undefined;
  #staleCause: ResealedMessage['cause'] | undefined;
  // Set when the cookie was opened at load (to check its user's revocations): read() hands it out.
  #found: { readonly stored: StoredSession | undefined } | undefined;

  constructor(
    readonly config: CookieConfig,
    readonly ctx: Context,
    /** The request's clock, read once. */
    readonly now: number,
  ) {
    this.maxAge = config.cookie.maxAge ?? 'session';
    this.valueRules = config.rules;
  }

  /** When the loaded session began: `undefined` when it begins in this request, or is a version 1 or legacy cookie. */
  get createdAt(): number | undefined {
    return this.#createdAt;
  }

  read(): StoredSession | undefined {
    if (this.#found !== undefined) return this.#found.stored;
    const { cookie, transport, sealer, keys } = this.config;
    const headers = this.ctx.request.headers;
    const source = { backend: 'cookie', name: cookie.name, mode: sealer.mode, keys: keys.keys } as const;
    const values = requestValues(headers, cookie.name, transport, MAX_SAME_NAME_COOKIES);
    const { opened, count } = firstThatOpens(values, source, (value) => sealer.read(value, this.now));
    this.#hadCookie = count > 0;
    if (opened !== undefined) {
      this.#openedWith = opened.keyId;
      this.#createdAt = opened.createdAt;
      this.#staleCause = opened.staleCause;
      this.#keptIn = opened.keptIn;
      return opened.stored;
    }
    return this.#readLegacy(headers.cookie);
  }

  refused(code: string, key: string | undefined): void {
    publishRefused('cookie', this.config.cookie.name, code, key);
  }

  /**
   * With koa-session's store: when the request has no cookie of ours but a koa-session cookie, fetches the record it
   * names, so that `read` (synchronous) finds it.
   * @throws (rejects) {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when that store fails or is too slow.
   */
  fetchLegacy(): this | Promise<this> {
    const store = this.config.legacy?.store;
    if (store === undefined) return this;
    const header = this.ctx.request.headers.cookie;
    if (readCookies(header, this.config.cookie.name, 1).length > 0) return this;
    const key = store.keyOf(header, this.now);
    if (key === undefined) return this;
    return store.load(key, this.now, this.ctx).then((moved) => {
      if (moved !== undefined) [this.#legacyKey, this.#legacyFetched] = [key, moved];
      return this;
    });
  }

  write(change: SessionWrite): void | Promise<void> {
    const { cookie, sealer, keys, legacy } = this.config;
    const now = this.now;
    const ctx = this.ctx;
    // The key that opened this session was dropped by setKeyRing while the request ran (a revocation): sealing
    // it again with the new ring would undo the revocation, so the session ends here.
    const revoked = this.#openedWith !== undefined && !keys.keys.byId.has(this.#openedWith);
    const ending = change.status === 'purged' || revoked;
    if (ending && !this.#hadCookie && !this.#legacyOpened) return;
    // Seal before touching headers: a failure (too large, unserializable) leaves the client's cookies alone.
    // A new or explicitly renewed session begins now; a version 1 cookie, which lacks the time, begins when first seen.
    const began = change.isNew || change.status === 'renewed' ? now : (this.#createdAt ?? now);
    let value: string | undefined;
    try {
      value = ending ? undefined : sealer.sealWrite(change, now, began, this.#keptIn);
    } catch (err) {
      const code = (err as SessionError).code ?? 'unknown';
      publishRefused('cookie', cookie.name, code);
      // A koa-session session too large for a cookie, moved by a request that changed nothing: it stays where it is.
      if (this.#legacyOpened && change.status === 'unchanged' && code === 'ERR_SESSION_TOO_LARGE') return;
      throw err;
    }
    assertHeadersOpen(ctx);
    // koa-session's record first: once it is gone, the response carries the session (a failure leaves both as they were).
    const legacyKey = this.#legacyOpened ? this.#legacyKey : undefined;
    if (legacyKey !== undefined) {
      return (legacy as LegacyCookies).store?.destroy(legacyKey, ctx).then(() => this.#put(change, value, ending, began));
    }
    this.#put(change, value, ending, began);
  }

  /** Sets the response's cookies for a write sealed as `value` (`undefined`: the session ends). */
  #put(change: SessionWrite, value: string | undefined, ending: boolean, began: number): void {
    const { cookie, legacy } = this.config;
    const { ctx, now } = this;
    if (this.#legacyOpened) for (const [name, line] of (legacy as LegacyCookies).expired) putSetCookie(ctx.res, name, line);
    if (ending && !this.#hadCookie) return;
    const transport = this.config.transport;
    if (transport !== undefined) {
      putToken(ctx.res, transport, value ?? '');
      this.#publish(ending ? 'purged' : change.status);
      return;
    }
    const secure = isSecure(cookie, ctx.secure);
    const maxAge = cookieMaxAge(cookie, change.maxAge);
    // The browser keeps it no longer than the session's absolute deadline.
    const capped = maxAge === undefined ? undefined : Math.max(0, Math.min(maxAge, began + this.config.absolute - now));
    const line = value === undefined ? expiredCookieLine(cookie, secure) : setCookieLine(cookie, value, now, secure, capped);
    putSetCookie(ctx.res, cookie.name, line);
    this.#publish(ending ? 'purged' : change.status);
  }

  /**
   * With revocations: opens the cookie now and checks its user's revocation (from the cache on most requests), so
   * that a revoked cookie reads as no session at all.
   * @throws (rejects) {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the revocation store fails and
   * `revocationStoreDown` is `'reject'`.
   */
  gate(cache: RevocationCache): this | Promise<this> {
    const stored = this.read();
    const user = stored === undefined ? undefined : this.#userOf(stored);
    this.#found = { stored };
    if (stored === undefined || user === undefined) return this;
    // A user value that is no id could never be revoked: such a cookie does not open.
    if (user === '') return this.#revokedIf({ before: Infinity });
    let revocation: Revocation | undefined | Promise<Revocation | undefined>;
    try {
      revocation = cache.get(user, this.now);
    } catch (err) {
      revocation = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (!(revocation instanceof Promise)) return this.#revokedIf(revocation);
    const asked = performance.now();
    return revocation.then(
      (answer) => this.#revokedIf(answer),
      (err: unknown) => {
        if (channels.storeUnavailable.hasSubscribers) {
          channels.storeUnavailable.publish({
            backend: 'cookie',
            name: this.config.cookie.name,
            operation: 'revocations',
            durationMs: performance.now() - asked,
            cause: err instanceof DeadlineExceeded ? 'timeout' : 'error',
          });
        }
        if (this.config.failOpen) return this.#revokedIf(undefined);
        throw revocationsUnavailable(err);
      },
    );
  }

  #revokedIf(revocation: Revocation | undefined): this {
    // By when the session began, which every re-seal keeps: a revoked session cannot be re-sealed out of it.
    if (isRevoked(revocation, this.#createdAt)) {
      publishRejected('cookie', this.config.cookie.name, 'revoked');
      // Opens as no session at all: a change starts a new one, which replaces the revoked cookie.
      this.#openedWith = this.#createdAt = undefined;
      this.#legacyOpened = false;
      this.#found = { stored: undefined };
    }
    return this;
  }

  /** No cookie of ours: a session of the library the app used before is moved over (stale: written now). */
  #readLegacy(header: string | undefined): StoredSession | undefined {
    const legacy = this.config.legacy;
    const moved =
      this.#hadCookie || legacy === undefined ? undefined : legacy.store === undefined ? legacy.open(header, this.now) : this.#legacyFetched;
    if (moved === undefined) return undefined;
    this.#legacyOpened = true;
    // koa-session keeps every session's lifetime; one that differs from this backend's is the session's own.
    const own = isLifetime(moved.maxAge) && moved.maxAge !== this.maxAge ? moved.maxAge : undefined;
    const unfit = unfitKey(moved.data, this.config.rules);
    if (unfit !== undefined) {
      // The serializer cannot carry it unchanged: readable as it is, and left in koa-session's cookie.
      publishRefused('cookie', this.config.cookie.name, 'ERR_SESSION_UNSUPPORTED_VALUE', unfit);
      this.#keptIn = 'legacy';
      return { data: moved.data, stale: false, maxAge: own };
    }
    // Begun at an unknown time: a user with any revocation does not move over.
    this.#staleCause = 'format';
    return { data: moved.data, stale: true, maxAge: own };
  }

  /** The revocation id of a stored session's user; `undefined` for a session without one, `''` for a value that is no id. */
  #userOf(stored: StoredSession): string | undefined {
    let value: unknown;
    try {
      value = entryValue(stored, this.config.userKey as string);
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

  #publish(status: SessionWrite['status']): void {
    const name = this.config.cookie.name;
    if (status === 'purged') {
      if (channels.purged.hasSubscribers) channels.purged.publish({ backend: 'cookie', name });
    } else if (status === 'renewed') {
      if (channels.renewed.hasSubscribers) channels.renewed.publish({ backend: 'cookie', name });
    } else if (status === 'unchanged' && channels.resealed.hasSubscribers) {
      channels.resealed.publish({ backend: 'cookie', name, cause: this.#staleCause ?? 'renewal' });
    }
  }
}

/** The cookie's Max-Age for a session's own lifetime: `undefined` makes a browser-session cookie. */
function cookieMaxAge(cookie: CookieAttributes, maxAge: OwnLifetime): number | undefined {
  return maxAge === undefined ? cookie.maxAge : maxAge === 'session' ? undefined : maxAge;
}
