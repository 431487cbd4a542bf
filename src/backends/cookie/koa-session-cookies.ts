import { createHmac, timingSafeEqual } from 'node:crypto';
import { nestsDeeperThan } from '../../codec/json/json-scan.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { MAX_COOKIE_AGE_MS } from '../../policy/lifetime.js';
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
   * beside it (`_maxAge`, or `'session'` for `_session`), or `undefined`.
   */
  open(header: string | undefined, now: number): { readonly data: SessionRecord; readonly maxAge?: unknown } | undefined;
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
  checkOptionNames(where, options, ['keys', 'key', 'path', 'domain', 'until']);
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
  return Object.freeze({
    expired: Object.freeze(expired),
    until: untilMs,
    open(header: string | undefined, now: number): { data: SessionRecord; maxAge?: unknown } | undefined {
      if (now >= untilMs) return undefined;
      const [value] = readCookies(header, name, 1);
      const [signature] = readCookies(header, signatureName, 1);
      if (value === undefined || signature === undefined || value.length > 4096) return undefined;
      if (!secrets.some((secret) => sameText(keygripSign(secret, `${name}=${value}`), signature))) return undefined;
      let data: unknown;
      try {
        data = JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
      } catch {
        return undefined;
      }
      if (typeof data !== 'object' || data === null || Array.isArray(data) || nestsDeeperThan(data, MAX_VALUE_DEPTH + 1)) return undefined;
      const record = data as SessionRecord;
      if (typeof record._expire === 'number' && record._expire < now) return undefined;
      // koa-session's metadata, mixed into its data: not the app's. Its lifetime carries over.
      const maxAge = record._session === true ? 'session' : record._maxAge;
      delete record._expire;
      delete record._maxAge;
      delete record._session;
      return { data: record, maxAge };
    },
  });
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
