import type { Context } from 'koa';
import type { SessionHandle, SessionWrite, StoredSession } from '../../core/backend.js';
import { channels, publishRefused, publishRejected, type ResealedMessage } from '../../core/diagnostics.js';
import { SessionError } from '../../core/errors.js';
import { RawValue, entryValue, lazyStored } from '../../codec/entries.js';
import type { SessionRecord } from '../../codec/serializer.js';
import type { ValueRules } from '../../codec/value.js';
import type { OwnLifetime } from '../../crypto/envelope.js';
import { expiredCookieLine, isSecure, putSetCookie, setCookieLine, type CookieAttributes } from '../../http/cookie.js';
import { putToken, type HeaderTransport } from '../../http/transport.js';
import { assertHeadersOpen, userIdOf } from '../shared/checks.js';
import { IdCookie, type Ticket } from './id-cookie.js';
import type { LegacyCookies, MovedSession } from '../shared/koa-session-cookies.js';
import { legacyRevoked } from './legacy-revocation.js';
import { unfitKey } from '../../codec/value.js';
import { isLifetime } from '../../policy/lifetime.js';
import type { RecordCodec } from './record-codec.js';
import type { SessionStore, StoreRecord, StoreWrite } from './store.js';

/** A koa-session session a request carries, to move: its data, and its key in koa-session's store, if it has one. */
export interface LegacySession {
  readonly moved: MovedSession;
  readonly key: string | undefined;
}

/** Largest `describe` answer kept, in bytes of JSON. */
const MAX_INFO_BYTES = 1024;

/**
 * How long a renewed session's old id is known as renewed (30 s): a request that still carries it (sent before the
 * login that renewed it, answered after) gets an empty session and writes nothing, neither a record nor a cookie,
 * so that it cannot sign the user out by replacing the new cookie.
 */
export const RENEW_GRACE_MS = 30_000;

/** What a store backend's requests share: its resolved options and its bounded store calls. */
export interface StoreConfig {
  /** The backend itself: a request's handle is recognised as its own by it (`keep`, `current`). */
  readonly owner: object;
  readonly store: SessionStore;
  readonly cookie: CookieAttributes;
  /** `transport: 'header'`; `undefined` for the cookie. */
  readonly transport: HeaderTransport | undefined;
  readonly ids: IdCookie;
  readonly records: RecordCodec;
  readonly userKey: string | undefined;
  readonly describe: ((ctx: Context) => unknown) | undefined;
  readonly legacy: LegacyCookies | undefined;
  readonly timeoutMs: number;
  /** Runs a store call within `storeTimeout`; any failure is `ERR_SESSION_STORE_UNAVAILABLE`. */
  readonly call: <T>(operation: string, run: () => Promise<T>) => Promise<T>;
}

/**
 * One request's store session, from the record its id cookie names (loaded by the backend before the request runs)
 * to the writes that keep it: each key apart, the id renewed, the user index kept up to date.
 */
export class StoreRequest implements SessionHandle {
  readonly maxAge: number | 'session';
  readonly valueRules: ValueRules;
  #ticket: Ticket | undefined;
  #storeKey: string | undefined;
  // The user the record is indexed under, kept up to date by each write.
  #indexed: string | undefined;
  #staleCause: ResealedMessage['cause'] | undefined;
  // The record's fields as last loaded or written, or undefined for none (or a corrupt one): set by read(), and
  // kept up to date by each write, since save() may write more than once in a request.
  #loaded: ReadonlyMap<string, Buffer> | undefined;
  #stale = false;
  // Another request ended the session while this one ran: nothing more is written.
  #ended = false;
  #keptThroughRevocation = false;
  // A moved koa-session session was read and is to be written: koa-session's record and cookies end with the write.
  #legacyOpened = false;
  // The request's id was renewed by another request just before it loaded: it writes nothing.
  readonly #renewed: boolean;

  constructor(
    readonly config: StoreConfig,
    readonly ctx: Context,
    readonly now: number,
    ticket: Ticket | undefined,
    storeKey: string | undefined,
    /** The record as loaded, its fields as Buffers; `undefined` for none. */
    readonly found: { readonly fields: ReadonlyMap<string, Buffer>; readonly record: StoreRecord } | undefined,
    /** The id was renewed within {@link RENEW_GRACE_MS}: nothing this request does is written. */
    renewed = false,
    /** A koa-session session to move (the request carries no cookie of ours). */
    readonly legacy?: LegacySession,
  ) {
    this.maxAge = config.cookie.maxAge ?? 'session';
    this.valueRules = config.records.rules;
    this.#ticket = ticket;
    this.#storeKey = storeKey;
    this.#indexed = found?.record.user;
    this.#renewed = renewed;
  }

  /** The store key of this request's session as it stands now (a renewal changes it). */
  get storeKey(): string | undefined {
    return this.#storeKey;
  }

  read(): StoredSession | undefined {
    const { found } = this;
    const ticket = this.#ticket;
    if (this.legacy !== undefined) return this.#readLegacy(this.legacy.moved);
    if (found === undefined || ticket === undefined) return undefined;
    const { records, ids, userKey } = this.config;
    // A record of a user that is not in the index yet (written before userKey was set): written back, indexed.
    const unindexed = userKey !== undefined && this.#indexed === undefined && found.fields.has(userKey);
    this.#staleCause = ticket.retired ? 'key-rotation' : unindexed ? 'index' : ids.cookieDue(ticket, this.now) ? 'renewal' : undefined;
    const due = this.#staleCause !== undefined;
    // Values stay encoded until read, and untouched ones are not encoded again at the end.
    const lazy = records.split(found.fields);
    if (lazy !== undefined && records.codec !== undefined) {
      this.#loaded = found.fields;
      this.#stale = due;
      return lazyStored(records.codec, lazy, due, ticket.maxAge);
    }
    const decoded = records.decode(found.fields);
    // A record that does not decode is left as it is, and the session starts afresh under a new id.
    if (decoded === undefined) {
      publishRejected('store', this.config.cookie.name, 'corrupt-record');
      return undefined;
    }
    this.#loaded = found.fields;
    this.#stale = decoded.stale || due;
    if (decoded.stale) this.#staleCause ??= 'serializer';
    return { data: decoded.data, stale: this.#stale, maxAge: ticket.maxAge };
  }

  refused(code: string, key: string | undefined): void {
    publishRefused('store', this.config.cookie.name, code, key);
  }

  async write(change: SessionWrite): Promise<void> {
    try {
      await this.#write(change);
      if (this.#legacyOpened) {
        // revokeUser may have run between the backend's look at the mark and this write, after its index was read:
        // a second look, now that the new record is in the index, ends it if so.
        if (this.legacy !== undefined && !this.#keptThroughRevocation && (await legacyRevoked(this.config, this.legacy.moved, this.now)))
          await this.#revokedMove();
        await this.#endLegacy();
      }
    } catch (err) {
      const code = (err as SessionError).code;
      if (code !== undefined && code !== 'ERR_SESSION_STORE_UNAVAILABLE') publishRefused('store', this.config.cookie.name, code);
      throw err;
    }
  }

  async #write(change: SessionWrite): Promise<void> {
    if (this.#ended) return;
    if (this.#renewed) {
      this.#drop();
      return;
    }
    const { cookie, ids } = this.config;
    const ticket = this.#ticket;
    const revoked = ticket !== undefined && !ids.keys.keys.byId.has(ticket.keyId);
    if (change.status === 'purged' || revoked) {
      assertHeadersOpen(this.ctx);
      if ((await this.#endRecord()) && channels.purged.hasSubscribers) channels.purged.publish({ backend: 'store', name: cookie.name });
      return;
    }
    const loaded = this.#loaded;
    const storeKey = this.#storeKey;
    if (loaded === undefined || storeKey === undefined || ticket === undefined || change.status === 'renewed') {
      await this.#renew(change, loaded === undefined ? undefined : storeKey);
      return;
    }
    await this.#update(change, loaded, storeKey, ticket);
  }

  /** A new record under a new id (a new session, or `renew()`), replacing `oldKey`'s record, if any. */
  async #renew(change: SessionWrite, oldKey: string | undefined): Promise<void> {
    const user = this.config.userKey === undefined ? undefined : (this.#userOf(change, undefined, undefined) ?? undefined);
    const created = await this.#create(change.data, change.maxAge, oldKey, user);
    // The record it renews ended meanwhile (purged, revoked, expired): not brought back under a new id either.
    if (created === undefined) {
      this.#drop();
      return;
    }
    ({ ticket: this.#ticket, storeKey: this.#storeKey, loaded: this.#loaded } = created);
    this.#indexed = user;
    this.#stale = false;
    if (change.status === 'renewed' && channels.renewed.hasSubscribers) channels.renewed.publish({ backend: 'store', name: this.config.cookie.name });
  }

  /** Writes the keys the request changed (and only those) to the record it loaded. */
  async #update(change: SessionWrite, loaded: ReadonlyMap<string, Buffer>, recordKey: string, current: Ticket): Promise<void> {
    const { cookie, records, ids, store, call } = this.config;
    const own = change.maxAge;
    const fields = records.encodeWrite(change, loaded);
    const set = new Map<string, Uint8Array>();
    const remove: string[] = [];
    for (const [key, bytes] of fields) {
      const before = loaded.get(key);
      if (change.cleared === true || before === undefined || (before !== bytes && Buffer.compare(before, bytes) !== 0)) set.set(key, bytes);
    }
    if (change.cleared !== true) for (const key of loaded.keys()) if (!fields.has(key)) remove.push(key);
    records.checkSize(fields);
    const lifetimeChanged = own !== current.maxAge;
    const ttlMs = ids.ttl(current.createdAt, own, this.now);
    const user = this.config.userKey === undefined ? undefined : this.#userOf(change, loaded, this.#indexed);
    const writes = set.size > 0 || remove.length > 0 || change.cleared === true || lifetimeChanged || user !== undefined;
    if (writes) {
      assertHeadersOpen(this.ctx);
      const index = user === undefined ? {} : { user, until: current.createdAt + ids.absolute, info: user === null ? undefined : this.#info() };
      const write: StoreWrite = {
        create: false,
        createdAt: current.createdAt,
        clear: change.cleared === true,
        set,
        remove,
        ttlMs,
        absoluteMs: current.createdAt + ids.absolute - this.now,
        timeoutMs: this.config.timeoutMs,
        maxBytes: records.maxBytes,
        ...index,
      };
      const wrote = await call('write', () => store.write(recordKey, write));
      // Ended meanwhile (purged or renewed by another request, or expired): not brought back, and the cookie is
      // left alone, since the other request's answer may carry the client's new one.
      if (!wrote) {
        this.#drop();
        return;
      }
      this.#loaded = fields;
      if (user !== undefined) this.#indexed = user ?? undefined;
    }
    if (lifetimeChanged || this.#stale) {
      // Only the cookie is due, nothing was written: another request may have renewed or purged the session since
      // this one loaded it (a login beside this read), and this id's cookie would then replace the client's new one.
      // Asked first; rare (once per half idle lifetime, or after a key rotation).
      if (!writes && !(await this.#stillLives(recordKey, ttlMs))) {
        this.#drop();
        return;
      }
      this.#ticket = this.#putTicket(current.id, current.createdAt, own, ttlMs);
      if (this.#stale && channels.resealed.hasSubscribers)
        channels.resealed.publish({ backend: 'store', name: cookie.name, cause: this.#staleCause ?? 'renewal' });
      this.#stale = false;
    }
  }

  /**
   * A new record under a new id, replacing the old record, if any, in the same store write: `undefined` when that
   * one ended meanwhile, so that a renewal never revives a session that ended.
   */
  async #create(
    data: SessionRecord,
    own: OwnLifetime,
    oldKey: string | undefined,
    user: string | undefined,
  ): Promise<{ ticket: Ticket; storeKey: string; loaded: ReadonlyMap<string, Buffer> } | undefined> {
    const { records, ids, store, call } = this.config;
    const now = this.now;
    const fields = records.encode(data);
    records.checkSize(fields);
    assertHeadersOpen(this.ctx);
    const id = IdCookie.newId();
    const ttlMs = ids.ttl(now, own, now);
    const index = user === undefined ? {} : { user, until: now + ids.absolute, info: this.#info() };
    const replaces = oldKey === undefined ? {} : { replaces: oldKey, graceMs: RENEW_GRACE_MS };
    const write = {
      create: true,
      createdAt: now,
      clear: false,
      set: fields,
      remove: [],
      ttlMs,
      absoluteMs: ids.absolute,
      timeoutMs: this.config.timeoutMs,
      ...index,
      ...replaces,
    };
    const storeKey = IdCookie.recordKey(id);
    const created = await call('write', () => store.write(storeKey, write));
    if (!created && oldKey !== undefined) return undefined;
    if (!created) {
      throw new SessionError('ERR_SESSION_STORE_UNAVAILABLE', 'The session store refused to create a new session record. Check the store.');
    }
    return { ticket: this.#putTicket(id, now, own, ttlMs), storeKey, loaded: fields };
  }

  /** Seals the id with the newest key, writes its cookie to live `ttlMs`, and returns what the cookie now says. */
  #putTicket(id: Buffer, createdAt: number, own: OwnLifetime, ttlMs: number): Ticket {
    assertHeadersOpen(this.ctx);
    const { cookie, ids } = this.config;
    const now = this.now;
    const value = ids.seal(id, createdAt, own, now, ttlMs);
    const browserSession = own === 'session' || (own === undefined && cookie.maxAge === undefined);
    this.#send(value, browserSession ? undefined : ttlMs);
    return { id, keyId: ids.keys.keys.sealing.id, retired: false, expiresAt: now + ttlMs, createdAt, maxAge: own };
  }

  /** Whether the record still holds a session (and not a renewal's marker), extending it as a read does. */
  async #stillLives(recordKey: string, ttlMs: number): Promise<boolean> {
    const { store, call } = this.config;
    const record = await call('load', () => store.load(recordKey, ttlMs));
    return record !== undefined && record.renewed !== true;
  }

  /** A koa-session session, moved: written as a new session (stale), unless this store cannot carry its values. */
  #readLegacy(moved: MovedSession): StoredSession {
    const { records, cookie } = this.config;
    const own = isLifetime(moved.maxAge) && moved.maxAge !== this.maxAge ? moved.maxAge : undefined;
    const unfit = unfitKey(moved.data, records.rules);
    if (unfit !== undefined) {
      // Readable as it is, and left where koa-session keeps it.
      publishRefused('store', cookie.name, 'ERR_SESSION_UNSUPPORTED_VALUE', unfit);
      return { data: moved.data, stale: false, maxAge: own };
    }
    this.#legacyOpened = true;
    this.#staleCause = 'format';
    return { data: moved.data, stale: true, maxAge: own };
  }

  /** `revokeUser(user, { keep })` keeps this request's session: its move is not undone by the mark it leaves. */
  keepThroughRevocation(): void {
    this.#keptThroughRevocation = true;
  }

  /**
   * Ends the session here: its record deleted (if it has one), its cookie expired (if it sent one). Answers whether
   * it had a cookie.
   */
  async #endRecord(): Promise<boolean> {
    const { store, call } = this.config;
    const key = this.#storeKey;
    const hadCookie = this.#ticket !== undefined;
    if (this.#loaded !== undefined && key !== undefined) await call('destroy', () => store.destroy(key, this.config.timeoutMs));
    if (hadCookie) this.#send(undefined, undefined);
    this.#loaded = this.#ticket = this.#storeKey = undefined;
    return hadCookie;
  }

  /** The moved session's user was revoked while it moved: its new record is destroyed, and its cookie expired. */
  async #revokedMove(): Promise<void> {
    await this.#endRecord();
    publishRejected('store', this.config.cookie.name, 'revoked');
    this.#ended = true;
  }

  /** The moved session is written: koa-session's record is destroyed, then its cookies expired. */
  async #endLegacy(): Promise<void> {
    const { legacy } = this.config;
    const key = this.legacy?.key;
    if (legacy === undefined) return;
    if (key !== undefined) await legacy.store?.destroy(key, this.ctx);
    for (const [name, line] of legacy.expired) putSetCookie(this.ctx.res, name, line);
    this.#legacyOpened = false;
  }

  /** Another request ended the session: this one writes nothing more. */
  #drop(): void {
    this.#ended = true;
    if (channels.writeDropped.hasSubscribers) channels.writeDropped.publish({ backend: 'store', name: this.config.cookie.name });
  }

  /** Sends the id's new value (living `maxAge` ms; `undefined`: a browser-session cookie), or tells the client to drop it. */
  #send(value: string | undefined, maxAge: number | undefined): void {
    const { cookie, transport } = this.config;
    if (transport !== undefined) {
      putToken(this.ctx.res, transport, value ?? '');
      return;
    }
    const secure = isSecure(cookie, this.ctx.secure);
    putSetCookie(
      this.ctx.res,
      cookie.name,
      value === undefined ? expiredCookieLine(cookie, secure) : setCookieLine(cookie, value, this.now, secure, maxAge),
    );
  }

  /** The index id of the user a write leaves the session with; `undefined` when it keeps the one it had. */
  #userOf(change: SessionWrite, loaded: ReadonlyMap<string, Buffer> | undefined, had: string | undefined): string | null | undefined {
    const key = this.config.userKey as string;
    const raw = change.entries?.entries.get(key);
    // The value as it was loaded, and the record was indexed under it then: nothing to do.
    if (raw instanceof RawValue && had !== undefined && raw.source === loaded?.get(key)) return undefined;
    const value = entryValue(change, key);
    const user = value === undefined || value === null ? null : userIdOf(value, `the session's ${JSON.stringify(key)}`);
    return user === (had ?? null) ? undefined : user;
  }

  /** `describe`'s answer for a session that gets its user, as JSON. */
  #info(): string | undefined {
    const describe = this.config.describe;
    if (describe === undefined) return undefined;
    const json = JSON.stringify(describe(this.ctx));
    if (json === undefined) return undefined;
    if (Buffer.byteLength(json) > MAX_INFO_BYTES) {
      throw new SessionError(
        'ERR_SESSION_TOO_LARGE',
        `describe() answered ${Buffer.byteLength(json)} bytes of JSON; at most ${MAX_INFO_BYTES} are kept. Describe the session in fewer.`,
      );
    }
    return json;
  }
}
