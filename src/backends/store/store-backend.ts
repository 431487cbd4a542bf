import type { Context } from 'koa';
import { handleOf, type SessionBackend, type SessionHandle } from '../../core/backend.js';
import { channels, publishRejected } from '../../core/diagnostics.js';
import { SessionError, storeFailure } from '../../core/errors.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { entryCodecOf } from '../../codec/entries.js';
import type { Serializer, SessionRecord } from '../../codec/serializer.js';
import { valueRulesOf } from '../../codec/value.js';
import type { KeyRing } from '../../crypto/key-ring.js';
import { COOKIE_ATTRIBUTE_OPTION_NAMES, resolveCookieAttributes, type CookieAttributeOptions, type CookieAttributes } from '../../http/cookie.js';
import { TRANSPORT_OPTION_NAMES, requestValues, resolveTransport, type TransportOptions } from '../../http/transport.js';
import { DEFAULT_ABSOLUTE_MS, DEFAULT_MAX_AGE_MS, DURATION_TEXT, isDuration } from '../../policy/lifetime.js';
import { checkUserKey, resolveClock, resolveSerializers, userIdOf } from '../shared/checks.js';
import { MAX_SAME_NAME_COOKIES, firstThatOpens } from '../shared/candidates.js';
import { DeadlineExceeded, Deadlines } from '../shared/deadlines.js';
import { checkKeyRing } from '../shared/keys.js';
import { IdCookie } from './id-cookie.js';
import { RecordCodec, buffersOf, sizeOf } from './record-codec.js';
import type { SessionStore, StoreRecord, UserIndex } from './store.js';
import { legacyRevoked, revokeLegacy } from './legacy-revocation.js';
import { StoreRequest, type LegacySession, type StoreConfig } from './store-request.js';
import { checkLegacy, type LegacyCookies } from '../shared/koa-session-cookies.js';

/** Options of {@link StoreSessionBackend}. */
export interface StoreSessionOptions extends Omit<CookieAttributeOptions, 'maxAge'>, TransportOptions {
  /** Writes new values. @default new JsonSerializer() */
  readonly serializer?: Serializer;
  /** Serializers whose values are still read; a record holding one is rewritten with `serializer`. @default [] */
  readonly previousSerializers?: readonly Serializer[];
  /**
   * A session ends this long after its last request (each request that carries it extends it). The record's TTL and
   * the cookie's `Expires` follow it. Milliseconds, 1 s to 400 days. @default 86_400_000 (one day)
   */
  readonly idleTimeout?: number;
  /**
   * A session ends this long after it began, however active it is; `renew()` begins a new one. Milliseconds, 1 s
   * to 400 days. @default 2_592_000_000 (30 days)
   */
  readonly absoluteTimeout?: number;
  /** `'session'`: a browser-session cookie (no `Expires`); the record still ends on `idleTimeout`. */
  readonly maxAge?: 'session';
  /** Largest record, in bytes of keys and encoded values; a larger one is refused with `ERR_SESSION_TOO_LARGE`. @default 65_536 */
  readonly maxBytes?: number;
  /** Longest wait for the store, in milliseconds, before the request fails with `ERR_SESSION_STORE_UNAVAILABLE` (503). @default 1000 */
  readonly storeTimeout?: number;
  /** The clock, in milliseconds since the epoch; read once per request. For tests. @default Date.now */
  readonly now?: () => number;
  /**
   * The session key that holds the signed-in user's id (a string or a number): each session that holds it is
   * indexed under it, so that {@link StoreSessionBackend.sessionsOf} lists a user's sessions and
   * {@link StoreSessionBackend.revokeUser} ends them. The store must keep a user index (`RedisStore` and
   * `MemoryStore` do). @default undefined (no index)
   */
  readonly userKey?: string;
  /**
   * With `userKey`: what to list with a session in `sessionsOf`, asked once when the session gets its user (at
   * login): a JSON value of at most 1 KiB, such as `{ userAgent: ctx.get('user-agent').slice(0, 200) }`. Store raw IP
   * addresses only if you need to: they are personal data. @default undefined
   */
  readonly describe?: (ctx: Context) => unknown;
  /**
   * The sessions of koa-session, moved on a request with no cookie of this backend: the session in koa-session's
   * cookie, or, with `store`, in koa-session's external store (koa-redis), becomes a session of this store under a
   * new id in the same response, the old record is destroyed and koa-session's cookies are expired:
   * `koaSessionCookies({ keys: app.keys, store: redisStore(), until })`. @default undefined
   */
  readonly legacy?: LegacyCookies;
}

/** One of a user's sessions, as {@link StoreSessionBackend.sessionsOf} lists it. */
export interface UserSession {
  /** Names the session to {@link StoreSessionBackend.revoke}. Not its id: it cannot be made into a cookie. */
  readonly handle: string;
  /** When the session began (its login, with `renew()` at login), ms since the epoch. */
  readonly createdAt: number | undefined;
  /** Its last request, to within a minute (its `createdAt` until a later request). */
  readonly lastSeenAt: number | undefined;
  /** Whether it is the session given as `current`. */
  readonly current: boolean;
  /** What `describe(ctx)` answered when the session got its user. */
  readonly info: unknown;
}

const OPTION_NAMES = [
  'serializer',
  'previousSerializers',
  ...COOKIE_ATTRIBUTE_OPTION_NAMES,
  ...TRANSPORT_OPTION_NAMES,
  'idleTimeout',
  'absoluteTimeout',
  'maxBytes',
  'storeTimeout',
  'now',
  'userKey',
  'describe',
  'legacy',
] as const satisfies readonly (keyof StoreSessionOptions)[];

/**
 * Keeps sessions in a {@link SessionStore} (Redis, memory, your database) and only a signed id in the cookie: no
 * size limit but `maxBytes`, revocable, and each top-level key stored apart, so concurrent requests that change
 * different keys both keep their changes.
 *
 * @example
 * ```ts
 * const redis = createClient({ url: process.env.REDIS_URL });
 * redis.on('error', (err) => console.error('redis:', err.message)); // without it, a lost Redis crashes the process
 * await redis.connect();
 * app.use(session(new StoreSessionBackend(new RedisStore(redis), keyRing)));
 * ```
 */
export class StoreSessionBackend implements SessionBackend {
  /** The validated cookie attributes. */
  readonly cookie: CookieAttributes;
  // What every request of this backend shares: the store, the id cookie, the record codec, the bounded calls.
  readonly #config: StoreConfig;
  readonly #now: () => number;
  readonly #deadlines: Deadlines;
  // The Koa apps this backend serves, for sessionsOf's `current` through Koa's own async local storage.
  readonly #apps = new Set<object>();

  constructor(store: SessionStore, keyRing: KeyRing, options: StoreSessionOptions = {}) {
    const where = 'StoreSessionBackend';
    const candidate = store as Partial<SessionStore> | null;
    if (
      typeof candidate !== 'object' ||
      candidate === null ||
      ['load', 'write', 'destroy'].some((m) => typeof candidate[m as keyof SessionStore] !== 'function')
    ) {
      throw invalidOption(where, 'store', 'a SessionStore, such as new RedisStore(client) or new MemoryStore()');
    }
    checkKeyRing(where, keyRing);
    checkOptionNames(where, options, OPTION_NAMES);
    const idle = options.idleTimeout ?? DEFAULT_MAX_AGE_MS;
    if (!isDuration(idle)) throw invalidOption(where, 'idleTimeout', DURATION_TEXT);
    const absolute = options.absoluteTimeout ?? DEFAULT_ABSOLUTE_MS;
    if (!isDuration(absolute)) throw invalidOption(where, 'absoluteTimeout', DURATION_TEXT);
    if (options.maxAge !== undefined && options.maxAge !== 'session') {
      throw invalidOption(where, 'maxAge', "'session' (for a browser-session cookie) or absent: the cookie follows idleTimeout");
    }
    const maxBytes = options.maxBytes ?? 65_536;
    if (!Number.isInteger(maxBytes) || maxBytes < 1024) throw invalidOption(where, 'maxBytes', 'a whole number of bytes from 1024');
    const timeout = options.storeTimeout ?? 1000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000)
      throw invalidOption(where, 'storeTimeout', 'a whole number of milliseconds from 1 to 60000');
    const { name, path, domain, secure, httpOnly, sameSite, partitioned } = options;
    this.cookie = resolveCookieAttributes(where, { name, path, domain, secure, httpOnly, sameSite, partitioned, maxAge: options.maxAge ?? idle });
    const transport = resolveTransport(where, options);
    const { serializer, readers } = resolveSerializers(where, options);
    // Keys become field names in UTF-8: a lone surrogate would turn two keys into one.
    const rules = Object.freeze({ ...valueRulesOf(serializer), wellFormedStrings: true });
    this.#now = resolveClock(where, options.now);
    const { userKey, describe } = options;
    checkUserKey(where, userKey);
    if (userKey !== undefined && !isUserIndex(store)) {
      throw invalidOption(
        where,
        'userKey',
        'given with a store that keeps a user index (sessionsOf and destroyUser), such as RedisStore or MemoryStore',
      );
    }
    if (describe !== undefined && (typeof describe !== 'function' || userKey === undefined))
      throw invalidOption(where, 'describe', 'a function, given with userKey');
    const legacy = checkLegacy(where, options.legacy, transport !== undefined);
    this.#deadlines = new Deadlines(timeout);
    this.#config = {
      owner: this,
      store,
      cookie: this.cookie,
      transport,
      ids: new IdCookie(where, keyRing, this.cookie.name, idle, absolute),
      records: new RecordCodec(serializer, readers, rules, entryCodecOf(serializer), maxBytes, this.cookie.name),
      userKey,
      describe,
      legacy,
      timeoutMs: timeout,
      call: (operation, run) => this.#call(operation, run),
    };
    Object.freeze(this);
  }

  /**
   * The live sessions of a user (the value the sessions hold under `userKey`), for a "your devices" page.
   * `current`: this request's session (`ctx.session`), marked `current: true` in the list; without it, the session
   * of the request this runs in, when the app keeps Koa's async local storage (`new Koa({ asyncLocalStorage: true })`).
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails; `ERR_SESSION_INVALID_OPTION`
   * without `userKey`.
   */
  async sessionsOf(user: string | number, options: { readonly current?: object } = {}): Promise<UserSession[]> {
    const index = this.#userIndex('sessionsOf');
    const session = options.current ?? this.#currentSession();
    const current = session === undefined ? undefined : this.#keyOfSession(session);
    const records = await this.#call('sessionsOf', () => index.sessionsOf(userIdOf(user, 'sessionsOf')));
    return records.map((record) => ({
      handle: record.key,
      createdAt: record.createdAt,
      lastSeenAt: record.lastSeenAt ?? record.createdAt,
      current: record.key === current,
      info: parseInfo(record.info),
    }));
  }

  /**
   * Ends every session of a user but `keep` (this request's `ctx.session`, say: "sign out everywhere else"), at
   * once: their next request starts a new, empty session. Answers how many it ended. A request of theirs already
   * running finishes with the data it loaded, and writes nothing back. With `legacy`, the user's koa-session sessions
   * that have not moved over yet do not move from now on, until the move's `until`.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails.
   */
  async revokeUser(user: string | number, options: { readonly keep?: object } = {}): Promise<number> {
    const index = this.#userIndex('revokeUser');
    const kept = options.keep === undefined ? undefined : this.#requestOf(options.keep);
    const keep = kept?.storeKey;
    // A session kept that moves over in this very request is not yet in the index: it is kept from the mark too.
    kept?.keepThroughRevocation();
    const id = userIdOf(user, 'revokeUser');
    // While koa-session's sessions move over: theirs of this user are in no index, and must not move from now on.
    await revokeLegacy(this.#config, id, this.#now());
    return this.#call('destroyUser', () => index.destroyUser(id, keep));
  }

  /**
   * Ends one session, named by a handle from {@link StoreSessionBackend.sessionsOf}. Check that the handle is one of
   * the signed-in user's before you pass it on: a handle names a session, whoever's it is.
   */
  async revoke(handle: string): Promise<void> {
    if (typeof handle !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(handle)) {
      throw new SessionError('ERR_SESSION_INVALID_OPTION', 'revoke() takes a handle from sessionsOf(): 43 characters of base64url.');
    }
    await this.#call('destroy', () => this.#config.store.destroy(handle, this.#config.timeoutMs));
  }

  /** The session of the request this runs in, from Koa's async local storage (`app.currentContext`), if on. */
  #currentSession(): object | undefined {
    for (const app of this.#apps) {
      const ctx = (app as { currentContext?: { session?: unknown } }).currentContext;
      const session = ctx?.session;
      if (typeof session === 'object' && session !== null && handleOf(session) !== undefined) return session;
    }
    return undefined;
  }

  #userIndex(method: string): UserIndex {
    if (this.#config.userKey === undefined) throw invalidOption('StoreSessionBackend', 'userKey', `set, to call ${method}()`);
    return this.#config.store as SessionStore & UserIndex;
  }

  /** The store key of a request's session (`ctx.session`), as it stands now. */
  #keyOfSession(session: object): string | undefined {
    return this.#requestOf(session).storeKey;
  }

  /** The store request behind a request's session (`ctx.session`) of this backend. */
  #requestOf(session: object): StoreRequest {
    const handle = handleOf(session);
    if (!(handle instanceof StoreRequest) || handle.config.owner !== this)
      throw new SessionError('ERR_SESSION_INVALID_OPTION', "keep and current take a request's session (ctx.session) of this backend.");
    return handle;
  }

  /** Replaces the key ring, as `CookieSessionBackend.setKeyRing` does: the ids' cookies are sealed with it from now on. */
  setKeyRing(keyRing: KeyRing): void {
    this.#config.ids.keys.swap('StoreSessionBackend.setKeyRing', keyRing);
  }

  /**
   * The data of the session an id cookie's value names, or `undefined` when the value does not open or its record is
   * gone or does not decode. Like a request, it extends the record's lifetime.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is slower than `storeTimeout`.
   */
  async open(value: string): Promise<SessionRecord | undefined> {
    const now = this.#now();
    const { ids, store, records } = this.#config;
    const ticket = ids.open(value, now);
    if (typeof ticket === 'string') return undefined;
    const ttl = ids.ttl(ticket.createdAt, ticket.maxAge, now);
    if (ttl <= 0) return undefined;
    const record = await this.#call('load', () => store.load(IdCookie.recordKey(ticket.id), ttl));
    return record === undefined ? undefined : records.decode(record.fields)?.data;
  }

  /**
   * The middleware's entry point: authenticates the id cookie and, only when one opens, loads its record and
   * extends its lifetime in one store round trip.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is slower than `storeTimeout`.
   */
  async load(ctx: Context): Promise<SessionHandle> {
    const now = this.#now();
    const config = this.#config;
    const { ids, store, cookie } = config;
    if (config.userKey !== undefined && ctx.app !== undefined && !this.#apps.has(ctx.app)) this.#apps.add(ctx.app);
    const source = { backend: 'store', name: cookie.name, mode: 'store', keys: ids.keys.keys } as const;
    const values = requestValues(ctx.request.headers, cookie.name, config.transport, MAX_SAME_NAME_COOKIES);
    const { opened: ticket, count } = firstThatOpens(values, source, (value) => ids.open(value, now));
    // No cookie of ours at all: a koa-session session is moved over, if there is one.
    if (count === 0 && config.legacy !== undefined) {
      const moved = await this.#legacyOf(config.legacy, ctx, now);
      if (moved !== undefined) {
        if (!(await legacyRevoked(config, moved.moved, now)))
          return new StoreRequest(config, ctx, now, undefined, undefined, undefined, false, moved);
        // A revoked user's koa-session session does not move over: the request starts without a session.
        publishRejected('store', cookie.name, 'revoked');
      }
    }
    const storeKey = ticket === undefined ? undefined : IdCookie.recordKey(ticket.id);
    let record: StoreRecord | undefined;
    if (ticket !== undefined && storeKey !== undefined) {
      const ttl = ids.ttl(ticket.createdAt, ticket.maxAge, now);
      const seenAt = config.userKey === undefined ? undefined : now;
      if (ttl > 0) record = await this.#call('load', () => store.load(storeKey, ttl, seenAt));
      if (record === undefined) publishRejected('store', cookie.name, ttl > 0 ? 'no-record' : 'absolute-timeout');
      // Renewed by another request a moment ago (a login): this one carries the old id and must not answer with a
      // cookie that replaces the new one, nor open the renewed session. An empty session that writes nothing.
      if (record?.renewed === true) {
        publishRejected('store', cookie.name, 'renewed');
        return new StoreRequest(config, ctx, now, undefined, undefined, undefined, true);
      }
      // Larger than maxBytes (written by hand, by an older version, or before maxBytes was lowered): every write
      // would fail and every read would cost its size, so it ends here, measured without decoding a value.
      if (record !== undefined && sizeOf(record.fields) > config.records.maxBytes) {
        record = undefined;
        await this.#call('destroy', () => store.destroy(storeKey, config.timeoutMs));
        publishRejected('store', cookie.name, 'oversized-record');
      }
    }
    const found = record === undefined ? undefined : { fields: buffersOf(record.fields), record };
    return new StoreRequest(config, ctx, now, ticket, storeKey, found);
  }

  /** The koa-session session a request carries (in its cookie, or in koa-session's store), or `undefined`. */
  async #legacyOf(legacy: LegacyCookies, ctx: Context, now: number): Promise<LegacySession | undefined> {
    const header = ctx.request.headers.cookie;
    if (legacy.store === undefined) {
      const moved = legacy.open(header, now);
      return moved === undefined ? undefined : { moved, key: undefined };
    }
    const key = legacy.store.keyOf(header, now);
    if (key === undefined) return undefined;
    const moved = await legacy.store.load(key, now, ctx);
    return moved === undefined ? undefined : { moved, key };
  }

  /** Runs a store call within `storeTimeout`; any failure is `ERR_SESSION_STORE_UNAVAILABLE`. */
  #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const timeout = this.#deadlines.timeoutMs;
    return this.#deadlines.run(run).then(
      (value) => {
        if (channels.storeSlow.hasSubscribers && performance.now() - started > timeout / 2)
          this.#storeMessage(channels.storeSlow, operation, started);
        return value;
      },
      (err: unknown) => {
        // A call the deadline failed is reported once, then: its late answer, or late failure, is dropped.
        const late = err instanceof DeadlineExceeded;
        if (channels.storeUnavailable.hasSubscribers) this.#storeMessage(channels.storeUnavailable, operation, started, late ? 'timeout' : 'error');
        if (late) throw unavailable(`did not answer within ${timeout} ms`);
        throw err instanceof SessionError ? err : unavailable('failed (see err.cause)', err);
      },
    );
  }

  #storeMessage(to: (typeof channels)['storeSlow'], operation: string, started: number, cause?: 'timeout' | 'error'): void {
    const message = { backend: 'store', name: this.cookie.name, operation, durationMs: Math.round(performance.now() - started) };
    to.publish(cause === undefined ? message : { ...message, cause });
  }
}

function isUserIndex(store: SessionStore): store is SessionStore & UserIndex {
  const candidate = store as Partial<UserIndex>;
  return typeof candidate.sessionsOf === 'function' && typeof candidate.destroyUser === 'function';
}

function parseInfo(info: string | undefined): unknown {
  if (info === undefined) return undefined;
  try {
    return JSON.parse(info) as unknown;
  } catch {
    return undefined;
  }
}

function unavailable(what: string, cause?: unknown): SessionError {
  return new SessionError(
    'ERR_SESSION_STORE_UNAVAILABLE',
    `The session store ${what}: the request fails (503) rather than run with an empty session. Check the store; ` +
      'sessions are intact once it answers again.',
    cause === undefined ? undefined : { cause: storeFailure(cause) },
  );
}
