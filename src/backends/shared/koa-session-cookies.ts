import { createHmac, timingSafeEqual } from 'node:crypto';
import { nestsDeeperThan } from '../../codec/json/json-scan.js';
import { SessionError, storeFailure } from '../../core/errors.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { LIFETIME_TEXT, MAX_COOKIE_AGE_MS, isLifetime } from '../../policy/lifetime.js';
import { Deadlines, DeadlineExceeded } from './deadlines.js';
import type { SessionRecord } from '../../codec/serializer.js';
import { MAX_VALUE_DEPTH } from '../../codec/value.js';
import { expiredCookieLine, readCookies, resolveCookieAttributes } from '../../http/cookie.js';

/** Options of {@link koaSessionCookies}: koa-session's own names for the cookie it wrote. */
export interface KoaSessionCookiesOptions {
  /** The keys koa-session signed with: the app's `app.keys`, newest first. */
  readonly keys: readonly (string | Uint8Array)[];
  /** koa-session's `key` option, the cookie's name. @default 'koa.sess' */
  readonly key?: string;
  /** The `path` koa-session wrote the cookie with, so that the line expiring it matches. @default '/' */
  readonly path?: string;
  /** The `domain` koa-session wrote the cookie with, if any. */
  readonly domain?: string;
  /**
   * The end of the move: from then on no koa-session cookie opens, however it was written (one without `_expire`,
   * a browser-session cookie of koa-session's `maxAge: 'session'`, has no end of its own). Required; at most 400
   * days ahead. Users who have not come back by then sign in again.
   */
  readonly until: Date;
  /**
   * koa-session's `store` (koa-redis, or an object of your own with `get` and `destroy`): the koa-session cookie then
   * names a record in it, read with `store.get(key, maxAge, { rolling, ctx })`, moved into this library's session
   * and destroyed with `store.destroy(key, { ctx })` once the new session is written. @default undefined
   */
  readonly store?: KoaSessionStore;
  /** koa-session's `maxAge`, which `store.get` is given. @default 86_400_000 */
  readonly maxAge?: number | 'session';
  /** koa-session's `rolling`, which `store.get` is given. @default false */
  readonly rolling?: boolean;
  /** Longest wait for `store`, in milliseconds: past it the request fails with a 503. @default 1000 */
  readonly storeTimeout?: number;
}

/** koa-session's external store, as koa-redis and koa-session's README write one: the two methods a move calls. */
export interface KoaSessionStore {
  get(key: string, maxAge: number | 'session', options: { readonly rolling: boolean; readonly ctx: unknown }): unknown;
  destroy(key: string, options: { readonly ctx: unknown }): unknown;
}

/** A koa-session session, as moved: its data, and the lifetime koa-session kept beside it. */
export interface MovedSession {
  readonly data: SessionRecord;
  readonly maxAge?: unknown;
}

/** With `store`: the records koa-session kept in it, named by its cookies. Internal. */
export interface LegacyStore {
  /** The external key a valid signed koa-session cookie in `header` names, or `undefined`. */
  keyOf(header: string | undefined, now: number): string | undefined;
  /**
   * The session under `key`, or `undefined` for none (or one that is no koa-session session, or has expired).
   * @throws (rejects) {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is too slow.
   */
  load(key: string, now: number, ctx: unknown): Promise<MovedSession | undefined>;
  /** @throws (rejects) {@link SessionError} `ERR_SESSION_STORE_UNAVAILABLE` when the store fails or is too slow. */
  destroy(key: string, ctx: unknown): Promise<void>;
}

/**
 * Cookies written by koa-session, read once so that an app moving to this library logs nobody out. Internal
 * shape: give it to `CookieSessionBackend`'s `legacy` option.
 */
export interface LegacyCookies {
  /** `until`, in milliseconds since the epoch: no legacy cookie opens from then on. */
  readonly until: number;
  /** The cookies to expire once the session was moved, the value and its signature: name and Set-Cookie line. */
  readonly expired: readonly (readonly [name: string, line: string])[];
  /**
   * The session data of a valid, unexpired koa-session cookie in `header`, with the lifetime koa-session kept
   * beside it (`_maxAge`, or `'session'` for `_session`), or `undefined`; always `undefined` with a `store`.
   */
  open(header: string | undefined, now: number): MovedSession | undefined;
  /** With koa-session's `store`: its records. */
  readonly store: LegacyStore | undefined;
}

/**
 * Reads the cookies koa-session wrote with its defaults (signed with keygrip: HMAC-SHA1 over `name=value` in a
 * `.sig` cookie; the value base64 JSON with `_expire` and `_maxAge` beside the data).
 *
 * @example
 * ```ts
 * CookieSessionBackend.private(keyRing, { legacy: koaSessionCookies({ keys: app.keys, key: 'koa.sess', until: new Date('2027-03-01') }) });
 * ```
 */
export function koaSessionCookies(options: KoaSessionCookiesOptions): LegacyCookies {
  const where = 'koaSessionCookies';
  checkOptionNames(where, options, ['keys', 'key', 'path', 'domain', 'until', 'store', 'maxAge', 'rolling', 'storeTimeout']);
  const until = options?.until;
  if (!(until instanceof Date) || Number.isNaN(until.getTime()) || until.getTime() > Date.now() + MAX_COOKIE_AGE_MS) {
    throw invalidOption(
      where,
      'until',
      "a Date at most 400 days ahead, after which no koa-session cookie opens: new Date('2027-03-01'), say. " +
        "A koa-session cookie of maxAge 'session' has no end of its own",
    );
  }
  const untilMs = until.getTime();
  const keys = options?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((key) => typeof key === 'string' || key instanceof Uint8Array)) {
    throw invalidOption(where, 'keys', "koa-session's signing keys (the app's app.keys), a non-empty array");
  }
  const name = options.key ?? 'koa.sess';
  if (typeof name !== 'string' || name.length === 0) throw invalidOption(where, 'key', "koa-session's cookie name, such as 'koa.sess'");
  const signatureName = `${name}.sig`;
  // The lines that expire them, made (and their path and domain checked) as the session cookie's own are.
  const expired = [name, signatureName].map((cookie) => {
    const attributes = resolveCookieAttributes(where, { name: cookie, path: options.path, domain: options.domain, httpOnly: false, sameSite: false });
    return Object.freeze([cookie, expiredCookieLine(attributes, false)] as const);
  });
  const secrets = keys.map((key) => (typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key)));
  /** The value of a koa-session cookie in `header` whose signature holds, before `until`. */
  const signedValue = (header: string | undefined, now: number): string | undefined => {
    if (now >= untilMs) return undefined;
    const [value] = readCookies(header, name, 1);
    const [signature] = readCookies(header, signatureName, 1);
    if (value === undefined || signature === undefined || value.length === 0 || value.length > 4096) return undefined;
    return secrets.some((secret) => sameText(keygripSign(secret, `${name}=${value}`), signature)) ? value : undefined;
  };
  const store = legacyStore(where, options);
  return Object.freeze({
    expired: Object.freeze(expired),
    until: untilMs,
    store: store === undefined ? undefined : Object.freeze({ ...store, keyOf: signedValue }),
    open(header: string | undefined, now: number): MovedSession | undefined {
      if (store !== undefined) return undefined;
      const value = signedValue(header, now);
      if (value === undefined) return undefined;
      let data: unknown;
      try {
        data = JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
      } catch {
        return undefined;
      }
      return movedOf(data, now);
    },
  });
}

/**
 * `legacy` as a backend's option: the result of {@link koaSessionCookies}, or `undefined`.
 * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION`.
 */
export function checkLegacy(where: string, legacy: Partial<LegacyCookies> | null | undefined, headerTransport: boolean): LegacyCookies | undefined {
  if (legacy === undefined) return undefined;
  const candidate = legacy;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.open !== 'function' ||
    !Array.isArray(candidate.expired) ||
    !Number.isFinite(candidate.until)
  ) {
    throw invalidOption(where, 'legacy', 'the result of koaSessionCookies({ keys: app.keys, until })');
  }
  if (headerTransport) throw invalidOption(where, 'legacy', "absent with transport: 'header': koa-session's sessions are cookies");
  return candidate as LegacyCookies;
}

/** koa-session's session data (from its cookie or its store) as moved, or `undefined` for anything else or an expired one. */
function movedOf(data: unknown, now: number): MovedSession | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data) || nestsDeeperThan(data, MAX_VALUE_DEPTH + 1)) return undefined;
  const record = { ...(data as SessionRecord) };
  if (typeof record._expire === 'number' && record._expire < now) return undefined;
  // koa-session's metadata, mixed into its data: not the app's. Its lifetime carries over.
  const maxAge = record._session === true ? 'session' : record._maxAge;
  delete record._expire;
  delete record._maxAge;
  delete record._session;
  return { data: record, maxAge };
}

/** The `store` option's calls, bounded by `storeTimeout`; `undefined` without a store. */
function legacyStore(where: string, options: KoaSessionCookiesOptions): Omit<LegacyStore, 'keyOf'> | undefined {
  const { store } = options;
  for (const name of ['maxAge', 'rolling', 'storeTimeout'] as const)
    if (store === undefined && options[name] !== undefined) throw invalidOption(where, name, 'given with store only');
  if (store === undefined) return undefined;
  if (typeof store !== 'object' || store === null || typeof store.get !== 'function' || typeof store.destroy !== 'function')
    throw invalidOption(where, 'store', "koa-session's store: an object with get(key, maxAge, options) and destroy(key), such as koa-redis'");
  const maxAge = options.maxAge ?? 86_400_000;
  if (!isLifetime(maxAge)) throw invalidOption(where, 'maxAge', LIFETIME_TEXT);
  const rolling = options.rolling ?? false;
  if (typeof rolling !== 'boolean') throw invalidOption(where, 'rolling', 'a boolean');
  const timeout = options.storeTimeout ?? 1000;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000)
    throw invalidOption(where, 'storeTimeout', 'a whole number of milliseconds from 1 to 60000');
  const deadlines = new Deadlines(timeout);
  const call = async <T>(run: () => T): Promise<Awaited<T>> => {
    try {
      return await deadlines.run(async () => await run());
    } catch (err) {
      throw legacyUnavailable(err);
    }
  };
  return {
    load: async (key, now, ctx) => movedOf(await call(() => store.get(key, maxAge, { rolling, ctx })), now),
    destroy: async (key, ctx) => void (await call(() => store.destroy(key, { ctx }))),
  };
}

function legacyUnavailable(err: unknown): SessionError {
  const what = err instanceof DeadlineExceeded ? `did not answer within ${err.timeoutMs} ms` : 'failed (see err.cause)';
  return new SessionError(
    'ERR_SESSION_STORE_UNAVAILABLE',
    `koa-session's store ${what}: the request fails (503) rather than run with an empty session, and the koa-session ` +
      'session is moved once it answers. Check the store.',
    err instanceof DeadlineExceeded ? undefined : { cause: storeFailure(err) },
  );
}

/** keygrip's signature: HMAC-SHA1, base64 with `/`, `+` and `=` made URL-safe. */
function keygripSign(secret: Buffer, data: string): string {
  return createHmac('sha1', secret)
    .update(data)
    .digest('base64')
    .replace(/\/|\+|=/g, (c) => (c === '/' ? '_' : c === '+' ? '-' : ''));
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
