import { hash, randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { handleOf, type SessionBackend, type SessionHandle, type SessionWrite, type StoredSession } from '../../core/backend.js';
import { OVERHEAD, open, seal, type OwnLifetime } from '../../crypto/envelope.js';
import { channels, publishRefused, type RejectionReason, type ResealedMessage } from '../../core/diagnostics.js';
import { SessionError, storeFailure } from '../../core/errors.js';
import {
  COOKIE_ATTRIBUTE_OPTION_NAMES,
  decodeCookieValue,
  expiredCookieLine,
  putSetCookie,
  readCookies,
  resolveCookieAttributes,
  setCookieLine,
  type CookieAttributeOptions,
  type CookieAttributes,
} from '../../http/cookie.js';
import { keysFor, type ContextKeys, type KeyRing } from '../../crypto/key-ring.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { DEFAULT_ABSOLUTE_MS, DEFAULT_MAX_AGE_MS, DURATION_TEXT, isDuration, timeRejection } from '../../policy/lifetime.js';
import type { Serializer, SessionRecord } from '../../codec/serializer.js';
import { RawValue, entryCodecOf, entryValue, recordOf, type EntryCodec } from '../../codec/entries.js';
import { define, unfitKey, valueRulesOf, type ValueRules } from '../../codec/value.js';
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
import { MAX_SAME_NAME_COOKIES } from '../cookie/cookie-backend.js';
import type { SessionStore, StoreRecord, UserIndex } from './store.js';

/** Bytes of a session id: 256 random bits. */
const ID_BYTES = 32;

/** Options of {@link StoreSessionBackend}. */
export interface StoreSessionOptions extends Omit<CookieAttributeOptions, 'maxAge'> {
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

/** Largest `describe` answer kept, in bytes of JSON. */
const MAX_INFO_BYTES = 1024;

const OPTION_NAMES = [
  'serializer',
  'previousSerializers',
  ...COOKIE_ATTRIBUTE_OPTION_NAMES,
  'idleTimeout',
  'absoluteTimeout',
  'maxBytes',
  'storeTimeout',
  'now',
  'userKey',
  'describe',
] as const satisfies readonly (keyof StoreSessionOptions)[];

/** What a request's id cookie said, once authenticated. */
interface Ticket {
  readonly id: Buffer;
  readonly keyId: number;
  readonly retired: boolean;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly maxAge: OwnLifetime;
}

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
  readonly #store: SessionStore;
  #keys: ContextKeys;
  readonly #serializer: Serializer;
  readonly #readers: ReadonlyMap<number, Serializer>;
  readonly #rules: ValueRules;
  readonly #codec: EntryCodec | undefined;
  readonly #idle: number;
  readonly #absolute: number;
  readonly #maxBytes: number;
  readonly #timeout: number;
  readonly #now: () => number;
  readonly #userKey: string | undefined;
  readonly #describe: ((ctx: Context) => unknown) | undefined;
  // The Koa apps this backend serves, for sessionsOf's `current` through Koa's own async local storage.
  readonly #apps = new Set<object>();
  // Store calls in flight, oldest first, and the one timer that fails them when they overrun storeTimeout.
  readonly #calls = new Set<PendingCall>();
  #watchdog: NodeJS.Timeout | undefined;

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
    this.#store = store;
    const idle = options.idleTimeout ?? DEFAULT_MAX_AGE_MS;
    if (!isDuration(idle)) throw invalidOption(where, 'idleTimeout', DURATION_TEXT);
    const absolute = options.absoluteTimeout ?? DEFAULT_ABSOLUTE_MS;
    if (!isDuration(absolute)) throw invalidOption(where, 'absoluteTimeout', DURATION_TEXT);
    if (options.maxAge !== undefined && options.maxAge !== 'session') {
      throw invalidOption(where, 'maxAge', "'session' (for a browser-session cookie) or absent: the cookie follows idleTimeout");
    }
    this.#idle = idle;
    this.#absolute = absolute;
    const maxBytes = options.maxBytes ?? 65_536;
    if (!Number.isInteger(maxBytes) || maxBytes < 1024) throw invalidOption(where, 'maxBytes', 'a whole number of bytes from 1024');
    this.#maxBytes = maxBytes;
    const timeout = options.storeTimeout ?? 1000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000)
      throw invalidOption(where, 'storeTimeout', 'a whole number of milliseconds from 1 to 60000');
    this.#timeout = timeout;
    const { name, path, domain, secure, httpOnly, sameSite } = options;
    this.cookie = resolveCookieAttributes(where, { name, path, domain, secure, httpOnly, sameSite, maxAge: options.maxAge ?? idle });
    const { serializer, readers } = resolveSerializers(where, options);
    this.#serializer = serializer;
    this.#readers = readers;
    // Keys become field names in UTF-8: a lone surrogate would turn two keys into one.
    this.#rules = Object.freeze({ ...valueRulesOf(this.#serializer), wellFormedStrings: true });
    this.#codec = entryCodecOf(this.#serializer);
    this.#now = resolveClock(where, options.now);
    const { userKey, describe } = options;
    if (userKey !== undefined && (typeof userKey !== 'string' || userKey === ''))
      throw invalidOption(where, 'userKey', 'a session key (a non-empty string)');
    if (userKey !== undefined && !isUserIndex(store)) {
      throw invalidOption(
        where,
        'userKey',
        'given with a store that keeps a user index (sessionsOf and destroyUser), such as RedisStore or MemoryStore',
      );
    }
    if (describe !== undefined && (typeof describe !== 'function' || userKey === undefined))
      throw invalidOption(where, 'describe', 'a function, given with userKey');
    this.#userKey = userKey;
    this.#describe = describe;
    this.#keys = storeKeys(keyRing, this.cookie.name);
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
   * running finishes with the data it loaded, and writes nothing back.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails.
   */
  async revokeUser(user: string | number, options: { readonly keep?: object } = {}): Promise<number> {
    const index = this.#userIndex('revokeUser');
    const keep = options.keep === undefined ? undefined : this.#keyOfSession(options.keep);
    return this.#call('destroyUser', () => index.destroyUser(userIdOf(user, 'revokeUser'), keep));
  }

  /**
   * Ends one session, named by a handle from {@link StoreSessionBackend.sessionsOf}. Check that the handle is one of
   * the signed-in user's before you pass it on: a handle names a session, whoever's it is.
   */
  async revoke(handle: string): Promise<void> {
    if (typeof handle !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(handle)) {
      throw new SessionError('ERR_SESSION_INVALID_OPTION', 'revoke() takes a handle from sessionsOf(): 43 characters of base64url.');
    }
    await this.#call('destroy', () => this.#store.destroy(handle, this.#timeout));
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
    if (this.#userKey === undefined) throw invalidOption('StoreSessionBackend', 'userKey', `set, to call ${method}()`);
    return this.#store as SessionStore & UserIndex;
  }

  /** The store key of a request's session (`ctx.session`), as it stands now. */
  #keyOfSession(session: object): string | undefined {
    const handle = handleOf(session) as { [STORE_KEY]?: () => string | undefined } | undefined;
    const key = handle?.[STORE_KEY];
    if (typeof key !== 'function')
      throw new SessionError('ERR_SESSION_INVALID_OPTION', "keep and current take a request's session (ctx.session) of this backend.");
    return key();
  }

  /** The index id of the user a write leaves the session with; `undefined` when it keeps the one it had. */
  #userOf(change: SessionWrite, loaded: ReadonlyMap<string, Buffer> | undefined, had: string | undefined): string | null | undefined {
    const key = this.#userKey as string;
    const raw = change.entries?.entries.get(key);
    // The value as it was loaded, and the record was indexed under it then: nothing to do.
    if (raw instanceof RawValue && had !== undefined && raw.source === loaded?.get(key)) return undefined;
    const value = entryValue(change, key);
    const user = value === undefined || value === null ? null : userIdOf(value, `the session's ${JSON.stringify(key)}`);
    return user === (had ?? null) ? undefined : user;
  }

  /** `describe`'s answer for a session that gets its user, as JSON. */
  #info(ctx: Context): string | undefined {
    if (this.#describe === undefined) return undefined;
    const json = JSON.stringify(this.#describe(ctx));
    if (json === undefined) return undefined;
    if (Buffer.byteLength(json) > MAX_INFO_BYTES) {
      throw new SessionError(
        'ERR_SESSION_TOO_LARGE',
        `describe() answered ${Buffer.byteLength(json)} bytes of JSON; at most ${MAX_INFO_BYTES} are kept. Describe the session in fewer.`,
      );
    }
    return json;
  }

  /** Replaces the key ring, as `CookieSessionBackend.setKeyRing` does: the ids' cookies are sealed with it from now on. */
  setKeyRing(keyRing: KeyRing): void {
    checkKeyRing('StoreSessionBackend.setKeyRing', keyRing);
    this.#keys = storeKeys(keyRing, this.cookie.name);
  }

  /**
   * The data of the session an id cookie's value names, or `undefined` when the value does not open or its record is
   * gone or does not decode. Like a request, it extends the record's lifetime.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is slower than `storeTimeout`.
   */
  async open(value: string): Promise<SessionRecord | undefined> {
    const now = this.#now();
    const ticket = this.#unseal(value, now);
    if (typeof ticket === 'string') return undefined;
    const ttl = this.#ttl(ticket.createdAt, ticket.maxAge, now);
    if (ttl <= 0) return undefined;
    const record = await this.#call('load', () => this.#store.load(keyOf(ticket.id), ttl));
    return record === undefined ? undefined : this.#decode(record.fields)?.data;
  }

  /**
   * The middleware's entry point: authenticates the id cookie and, only when one opens, loads its record and
   * extends its lifetime in one store round trip.
   * @throws {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is slower than `storeTimeout`.
   */
  async load(ctx: Context): Promise<SessionHandle> {
    const now = this.#now();
    if (this.#userKey !== undefined && ctx.app !== undefined && !this.#apps.has(ctx.app)) this.#apps.add(ctx.app);
    const cookie = this.cookie;
    let ticket: Ticket | undefined;
    for (const value of readCookies(ctx.request.headers.cookie, cookie.name, MAX_SAME_NAME_COOKIES)) {
      const unsealed = this.#unseal(value, now);
      if (typeof unsealed !== 'string') {
        ticket = unsealed;
        break;
      }
      if (channels.cookieRejected.hasSubscribers) this.#rejected(rejectionReason('store', this.#keys, value, unsealed));
    }
    let storeKey = ticket === undefined ? undefined : keyOf(ticket.id);
    let record: StoreRecord | undefined;
    if (ticket !== undefined && storeKey !== undefined) {
      const key = storeKey;
      const ttl = this.#ttl(ticket.createdAt, ticket.maxAge, now);
      const seenAt = this.#userKey === undefined ? undefined : now;
      if (ttl > 0) record = await this.#call('load', () => this.#store.load(key, ttl, seenAt));
      if (record === undefined && channels.cookieRejected.hasSubscribers) this.#rejected(ttl > 0 ? 'no-record' : 'absolute-timeout');
      // Larger than maxBytes (written by hand, by an older version, or before maxBytes was lowered): every write
      // would fail and every read would cost its size, so it ends here, measured without decoding a value.
      if (record !== undefined && sizeOf(record.fields) > this.#maxBytes) {
        record = undefined;
        await this.#call('destroy', () => this.#store.destroy(key, this.#timeout));
        if (channels.cookieRejected.hasSubscribers) this.#rejected('oversized-record');
      }
    }
    const found = record === undefined ? undefined : buffersOf(record.fields);
    // The user the record is indexed under, kept up to date by each write.
    let indexed = record?.user;
    let staleCause: ResealedMessage['cause'] | undefined;
    // The record's fields as last loaded or written, or undefined for none (or a corrupt one): set by read(), and
    // kept up to date by each write, since save() may write more than once in a request.
    let loaded: ReadonlyMap<string, Buffer> | undefined;
    let stale = false;
    // Another request ended the session while this one ran: nothing more is written.
    let ended = false;
    const handle: SessionHandle & { readonly valueRules: ValueRules; readonly [STORE_KEY]: () => string | undefined } = {
      valueRules: this.#rules,
      [STORE_KEY]: () => storeKey,
      maxAge: cookie.maxAge ?? 'session',
      read: () => {
        if (found === undefined || ticket === undefined) return undefined;
        // A record of a user that is not in the index yet (written before userKey was set): written back, indexed.
        const unindexed = this.#userKey !== undefined && indexed === undefined && found.has(this.#userKey);
        staleCause = ticket.retired ? 'key-rotation' : unindexed ? 'index' : this.#cookieDue(ticket, now) ? 'renewal' : undefined;
        const due = staleCause !== undefined;
        // Values stay encoded until read, and untouched ones are not encoded again at the end.
        const lazy = this.#split(found);
        if (lazy !== undefined) {
          const codec = this.#codec as EntryCodec;
          loaded = found;
          stale = due;
          let data: SessionRecord | undefined;
          const stored: StoredSession = {
            get data() {
              return (data ??= recordOf(lazy, codec.decode));
            },
            stale,
            maxAge: ticket.maxAge,
            entries: { codec, entries: lazy },
          };
          return stored;
        }
        const decoded = this.#decode(found);
        // A record that does not decode is left as it is, and the session starts afresh under a new id.
        if (decoded === undefined) {
          if (channels.cookieRejected.hasSubscribers) this.#rejected('corrupt-record');
          return undefined;
        }
        loaded = found;
        stale = decoded.stale || due;
        if (decoded.stale) staleCause ??= 'serializer';
        return { data: decoded.data, stale, maxAge: ticket.maxAge };
      },
      refused: (code, key) => publishRefused('store', cookie.name, code, key),
      write: async (change: SessionWrite) => {
        try {
          await write(change);
        } catch (err) {
          const code = (err as SessionError).code;
          if (code !== undefined && code !== 'ERR_SESSION_STORE_UNAVAILABLE') publishRefused('store', cookie.name, code);
          throw err;
        }
      },
    };
    const write = async (change: SessionWrite): Promise<void> => {
      if (ended) return;
      const revoked = ticket !== undefined && !this.#keys.byId.has(ticket.keyId);
      if (change.status === 'purged' || revoked) {
        assertHeadersOpen(ctx);
        const key = storeKey;
        if (loaded !== undefined && key !== undefined) await this.#call('destroy', () => this.#store.destroy(key, this.#timeout));
        if (ticket !== undefined) putSetCookie(ctx.res, cookie.name, expiredCookieLine(cookie, this.#secure(ctx)));
        if (ticket !== undefined && channels.purged.hasSubscribers) channels.purged.publish({ backend: 'store', name: cookie.name });
        loaded = ticket = storeKey = undefined;
        return;
      }
      const own = change.maxAge;
      if (loaded === undefined || storeKey === undefined || ticket === undefined || change.status === 'renewed') {
        const user = this.#userKey === undefined ? undefined : (this.#userOf(change, undefined, undefined) ?? undefined);
        const created = await this.#create(ctx, change.data, own, now, loaded === undefined ? undefined : storeKey, user);
        // The record it renews ended meanwhile (purged, revoked, expired): not brought back under a new id either.
        if (created === undefined) {
          ended = true;
          if (channels.writeDropped.hasSubscribers) channels.writeDropped.publish({ backend: 'store', name: cookie.name });
          return;
        }
        ({ ticket, storeKey, loaded } = created);
        indexed = user;
        stale = false;
        if (change.status === 'renewed' && channels.renewed.hasSubscribers) channels.renewed.publish({ backend: 'store', name: cookie.name });
        return;
      }
      const recordKey = storeKey;
      const current = ticket;
      const fields = this.#encodeWrite(change, loaded);
      const set = new Map<string, Uint8Array>();
      const remove: string[] = [];
      for (const [key, bytes] of fields) {
        const before = loaded.get(key);
        if (change.cleared === true || before === undefined || (before !== bytes && Buffer.compare(before, bytes) !== 0)) set.set(key, bytes);
      }
      if (change.cleared !== true) for (const key of loaded.keys()) if (!fields.has(key)) remove.push(key);
      this.#checkSize(fields);
      const lifetimeChanged = own !== current.maxAge;
      const ttlMs = this.#ttl(current.createdAt, own, now);
      const user = this.#userKey === undefined ? undefined : this.#userOf(change, loaded, indexed);
      if (set.size > 0 || remove.length > 0 || change.cleared === true || lifetimeChanged || user !== undefined) {
        assertHeadersOpen(ctx);
        const clear = change.cleared === true;
        const index =
          user === undefined ? {} : { user, until: current.createdAt + this.#absolute, info: user === null ? undefined : this.#info(ctx) };
        const write = {
          create: false,
          createdAt: current.createdAt,
          clear,
          set,
          remove,
          ttlMs,
          timeoutMs: this.#timeout,
          maxBytes: this.#maxBytes,
          ...index,
        };
        const wrote = await this.#call('write', () => this.#store.write(recordKey, write));
        // Ended meanwhile (purged or renewed by another request, or expired): not brought back, and the cookie is
        // left alone, since the other request's answer may carry the client's new one.
        if (!wrote) {
          ended = true;
          if (channels.writeDropped.hasSubscribers) channels.writeDropped.publish({ backend: 'store', name: cookie.name });
          return;
        }
        loaded = fields;
        if (user !== undefined) indexed = user ?? undefined;
      }
      if (lifetimeChanged || stale) {
        ticket = this.#putTicket(ctx, current.id, current.createdAt, own, now, ttlMs);
        if (stale && channels.resealed.hasSubscribers)
          channels.resealed.publish({ backend: 'store', name: cookie.name, cause: staleCause ?? 'renewal' });
        stale = false;
      }
    };
    return handle;
  }

  /**
   * A new record under a new id (a new session, or `renew()`), replacing the old record, if any, in the same store
   * write: `undefined` when that one ended meanwhile, so that a renewal never revives a session that ended.
   */
  async #create(
    ctx: Context,
    data: SessionRecord,
    own: OwnLifetime,
    now: number,
    oldKey: string | undefined,
    user: string | undefined,
  ): Promise<{ ticket: Ticket; storeKey: string; loaded: ReadonlyMap<string, Buffer> } | undefined> {
    const fields = this.#encode(data);
    this.#checkSize(fields);
    assertHeadersOpen(ctx);
    const id = randomBytes(ID_BYTES);
    const ttlMs = this.#ttl(now, own, now);
    const index = user === undefined ? {} : { user, until: now + this.#absolute, info: this.#info(ctx) };
    const replaces = oldKey === undefined ? {} : { replaces: oldKey };
    const write = { create: true, createdAt: now, clear: false, set: fields, remove: [], ttlMs, timeoutMs: this.#timeout, ...index, ...replaces };
    const storeKey = keyOf(id);
    const created = await this.#call('write', () => this.#store.write(storeKey, write));
    if (!created && oldKey !== undefined) return undefined;
    if (!created) {
      throw new SessionError('ERR_SESSION_STORE_UNAVAILABLE', 'The session store refused to create a new session record. Check the store.');
    }
    return { ticket: this.#putTicket(ctx, id, now, own, now, ttlMs), storeKey, loaded: fields };
  }

  /** Seals the id with the newest key, writes its cookie to live `ttlMs`, and returns what the cookie now says. */
  #putTicket(ctx: Context, id: Buffer, createdAt: number, own: OwnLifetime, now: number, ttlMs: number): Ticket {
    assertHeadersOpen(ctx);
    const cookie = this.cookie;
    const expiresAt = now + ttlMs;
    const value = seal('store', this.#keys, 0, { expiresAt, createdAt, maxAge: own }, id).toString('base64url');
    const browserSession = own === 'session' || (own === undefined && cookie.maxAge === undefined);
    putSetCookie(ctx.res, cookie.name, setCookieLine(cookie, value, now, this.#secure(ctx), browserSession ? undefined : ttlMs));
    return { id, keyId: this.#keys.sealing.id, retired: false, expiresAt, createdAt, maxAge: own };
  }

  #secure(ctx: Context): boolean {
    return this.cookie.secure === 'auto' ? ctx.secure : this.cookie.secure;
  }

  /** An id cookie's ticket, or `undefined` for anything that does not open or whose session has ended. */
  #unseal(value: string, now: number): Ticket | Refusal {
    const envelope = decodeCookieValue(value);
    if (envelope === undefined) return 'envelope';
    if (envelope.length !== OVERHEAD.store + ID_BYTES) return envelope.length < OVERHEAD.store + ID_BYTES ? 'truncated' : 'envelope';
    const opened = open('store', this.#keys, envelope);
    if (opened === undefined || opened.createdAt === undefined || opened.payload.length !== ID_BYTES) return 'envelope';
    const { maxAge, createdAt, expiresAt } = opened;
    const late = timeRejection(opened, now, (own) => this.#idleOf(own), this.#absolute);
    if (late !== undefined) return late;
    return { id: opened.payload, keyId: opened.keyId, retired: opened.retiredKey, expiresAt, createdAt, maxAge };
  }

  /** Tells a diagnostics subscriber why a request's id cookie gave no session. */
  #rejected(reason: RejectionReason): void {
    channels.cookieRejected.publish({ backend: 'store', name: this.cookie.name, reason });
  }

  #idleOf(own: OwnLifetime): number {
    return typeof own === 'number' ? own : this.#idle;
  }

  /** How long a session lasts from now: its idle lifetime, cut short by its absolute deadline. */
  #ttl(createdAt: number, own: OwnLifetime, now: number): number {
    return Math.min(this.#idleOf(own), createdAt + this.#absolute - now);
  }

  /** The cookie is past half its idle lifetime while the record lives on: send it again so the browser keeps it. */
  #cookieDue(ticket: Ticket, now: number): boolean {
    const deadline = now + this.#ttl(ticket.createdAt, ticket.maxAge, now);
    return ticket.expiresAt - now < this.#idleOf(ticket.maxAge) / 2 && deadline > ticket.expiresAt;
  }

  /**
   * A record's entries still encoded, each checked by the codec's scan (so a corrupt one is found now), or
   * `undefined` when they cannot be handed over lazily (another serializer, or no codec): then they are decoded.
   */
  #split(fields: ReadonlyMap<string, Buffer>): Map<string, RawValue> | undefined {
    const codec = this.#codec;
    if (codec === undefined) return undefined;
    const id = this.#serializer.id;
    const entries = new Map<string, RawValue>();
    for (const [key, field] of fields) {
      if (field[0] !== id) return undefined;
      let raw: RawValue | undefined;
      try {
        // After the serializer's id byte: a one-key payload. Its bytes stay where the store put them.
        raw = codec.entry(field, 1, key);
      } catch {
        return undefined;
      }
      if (raw === undefined) return undefined;
      entries.set(key, raw);
    }
    return entries;
  }

  /** The fields to store for a write: the loaded field itself for a value still encoded as it was loaded. */
  #encodeWrite(change: SessionWrite, loaded: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
    const lazy = change.entries;
    if (lazy === undefined || lazy.codec !== this.#codec) return this.#encode(change.data, loaded);
    const fields = new Map<string, Buffer>();
    const changed: SessionRecord = {};
    for (const [key, value] of lazy.entries) {
      const field = loaded.get(key);
      // Only #split makes a RawValue of a loaded field, and for the field's one key: this is that key's, untouched.
      if (value instanceof RawValue && field !== undefined && value.source === field) {
        fields.set(key, field);
      } else {
        define(changed, key, value instanceof RawValue ? lazy.codec.decode(value) : value);
        fields.set(key, EMPTY); // keeps the key's place; replaced below
      }
    }
    for (const [key, field] of this.#encode(changed)) fields.set(key, field);
    return fields;
  }

  /**
   * Each key's value, encoded on its own: its serializer's id, then the serialized one-key record. A loaded field of a
   * previous serializer whose value the current one cannot carry unchanged is kept as it was (only a loaded value
   * can be such: set() checks every other against the current serializer's rules).
   */
  #encode(data: SessionRecord, loaded?: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
    const serializer = this.#serializer;
    const fields = new Map<string, Buffer>();
    for (const key of Object.keys(data)) {
      const kept = loaded?.get(key);
      if (kept !== undefined && kept[0] !== serializer.id && unfitKey({ [key]: data[key] }, this.#rules) !== undefined) {
        fields.set(key, kept);
        continue;
      }
      const single: SessionRecord = {};
      define(single, key, data[key]);
      let body: Uint8Array;
      try {
        body = serializer.serialize(single);
      } catch (cause) {
        throw serializeFailed(serializer.name, key, cause);
      }
      const field = Buffer.allocUnsafe(1 + body.byteLength);
      field[0] = serializer.id;
      field.set(body, 1);
      fields.set(key, field);
    }
    return fields;
  }

  /** The session data of a record, or `undefined` when a value does not decode. */
  #decode(fields: ReadonlyMap<string, Uint8Array>): { data: SessionRecord; stale: boolean } | undefined {
    const data: SessionRecord = {};
    let stale = false;
    for (const [key, field] of fields) {
      const serializer = field.byteLength > 1 ? this.#readers.get(field[0] as number) : undefined;
      if (serializer === undefined) return undefined;
      let single: unknown;
      try {
        single = serializer.deserialize(field.subarray(1));
      } catch {
        return undefined;
      }
      if (typeof single !== 'object' || single === null || !Object.hasOwn(single, key) || Object.keys(single).length !== 1) return undefined;
      const value = (single as SessionRecord)[key];
      define(data, key, value);
      // Moved to the current serializer only if it carries the value unchanged; else it stays in its own.
      if (serializer !== this.#serializer && unfitKey({ [key]: value }, this.#rules) === undefined) stale = true;
      else if (serializer !== this.#serializer) publishRefused('store', this.cookie.name, 'ERR_SESSION_UNSUPPORTED_VALUE', key);
    }
    return { data, stale };
  }

  #checkSize(fields: ReadonlyMap<string, Uint8Array>): void {
    const size = sizeOf(fields);
    if (size <= this.#maxBytes) return;
    const sizes = [...fields].map(([key, bytes]) => [key, bytes.byteLength] as const);
    throw new SessionError(
      'ERR_SESSION_TOO_LARGE',
      `The session is too large for the store: ${size} bytes, and maxBytes is ${this.#maxBytes}. Largest keys: ` +
        `${largestKeys(sizes)}. Raise maxBytes or store less. The stored session is unchanged.`,
    );
  }

  /** Runs a store call within `storeTimeout`; any failure is `ERR_SESSION_STORE_UNAVAILABLE`. */
  #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const started = performance.now();
      const call: PendingCall = { deadline: started + this.#timeout, operation, reject };
      this.#calls.add(call);
      if (this.#watchdog === undefined) this.#watch();
      // A call the watchdog failed already was reported then: its late answer, or late failure, is not reported again.
      const fail = (err: unknown) => {
        if (!this.#calls.delete(call)) return;
        if (channels.storeUnavailable.hasSubscribers) this.#storeMessage(channels.storeUnavailable, operation, started, 'error');
        reject(err instanceof SessionError ? err : unavailable('failed (see err.cause)', err));
      };
      try {
        run().then((value) => {
          if (!this.#calls.delete(call)) return;
          if (channels.storeSlow.hasSubscribers && performance.now() - started > this.#timeout / 2)
            this.#storeMessage(channels.storeSlow, operation, started);
          resolve(value);
        }, fail);
      } catch (err) {
        fail(err);
      }
    });
  }

  /**
   * One timer for every call in flight, not one per call (arming and clearing a timer per request cost a tenth of a
   * MemoryStore read): all calls wait equally long, so the oldest, first in the set, is the first due.
   */
  #watch(): void {
    const now = performance.now();
    for (const call of this.#calls) {
      if (call.deadline > now) {
        // Unreferenced: a call in flight holds its own handle (a socket); an idle app may exit.
        this.#watchdog = setTimeout(() => this.#watch(), Math.ceil(call.deadline - now)).unref();
        return;
      }
      this.#calls.delete(call);
      if (channels.storeUnavailable.hasSubscribers)
        this.#storeMessage(channels.storeUnavailable, call.operation, call.deadline - this.#timeout, 'timeout');
      call.reject(unavailable(`did not answer within ${this.#timeout} ms`));
    }
    this.#watchdog = undefined;
  }

  #storeMessage(to: (typeof channels)['storeSlow'], operation: string, started: number, cause?: 'timeout' | 'error'): void {
    const message = { backend: 'store', name: this.cookie.name, operation, durationMs: Math.round(performance.now() - started) };
    to.publish(cause === undefined ? message : { ...message, cause });
  }
}

/** Where a store handle tells its current store key (internal): `keep` and `current` find the request's session by it. */
const STORE_KEY = Symbol('koa-sealed-session.storeKey');

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

/** A store call in flight, failed once its deadline passes. */
interface PendingCall {
  readonly deadline: number;
  readonly operation: string;
  readonly reject: (err: SessionError) => void;
}

const EMPTY = Buffer.alloc(0);

/** A record's size as `maxBytes` counts it: each key's UTF-8 bytes and its encoded value's. */
function sizeOf(fields: ReadonlyMap<string, Uint8Array>): number {
  let size = 0;
  for (const [key, bytes] of fields) size += Buffer.byteLength(key) + bytes.byteLength;
  return size;
}

/** A record's fields as Buffers (views, not copies), whatever a store of one's own returned. */
function buffersOf(fields: ReadonlyMap<string, Uint8Array>): ReadonlyMap<string, Buffer> {
  for (const field of fields.values()) {
    if (!Buffer.isBuffer(field))
      return new Map([...fields].map(([key, value]) => [key, Buffer.from(value.buffer, value.byteOffset, value.byteLength)]));
  }
  return fields as ReadonlyMap<string, Buffer>;
}

function unavailable(what: string, cause?: unknown): SessionError {
  return new SessionError(
    'ERR_SESSION_STORE_UNAVAILABLE',
    `The session store ${what}: the request fails (503) rather than run with an empty session. Check the store; ` +
      'sessions are intact once it answers again.',
    cause === undefined ? undefined : { cause: storeFailure(cause) },
  );
}

/** The store's key for an id: a one-way hash, so a dump of the store yields no usable cookie. */
function keyOf(id: Uint8Array): string {
  return hash('sha256', id, 'base64url');
}

/** The keys of id cookies: derived apart from a cookie session's (a NUL cannot occur in a cookie name). */
function storeKeys(keyRing: KeyRing, name: string): ContextKeys {
  return keysFor(keyRing, `${name}\0store-id`);
}
