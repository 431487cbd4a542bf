import type { ServerResponse } from 'node:http';
import { invalidOption } from '../core/options.js';
import { BROWSER_SESSION_LIFETIME_MS, DEFAULT_MAX_AGE_MS, LIFETIME_TEXT, isLifetime } from '../policy/lifetime.js';

/** Largest cookie value written, in bytes: under every browser's 4096-byte limit for name and value. */
export const MAX_COOKIE_VALUE_BYTES = 4000;
/** Longest cookie name, so that name and a full-size value stay within 4096 bytes. */
export const MAX_COOKIE_NAME_BYTES = 96;

// RFC 6265 §4.1.1: cookie-name = token (RFC 2616 §2.2): 1*<any CHAR except CTLs or separators>
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 6265 §4.1.1: path-value = <any CHAR except CTLs or ";">
const PATH_VALUE = /^[\u0020-\u003A\u003C-\u007E]+$/;
// RFC 6265 §4.1.2.3 and RFC 1034 §3.5: labels of letters, digits and inner hyphens; a leading dot is ignored
const DOMAIN_VALUE = /^\.?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Cookie attributes as the caller gives them. */
export interface CookieAttributeOptions {
  /** @default 'session' */
  readonly name?: string;
  /** @default '/' */
  readonly path?: string;
  /** @default undefined (host-only cookie) */
  readonly domain?: string;
  /**
   * `'auto'` sets `Secure` when the request came over HTTPS (`ctx.secure`, which honours `app.proxy`). With
   * `sameSite: 'none'`, `Secure` is always set, as browsers require.
   * @default 'auto'
   */
  readonly secure?: boolean | 'auto';
  /** @default true */
  readonly httpOnly?: boolean;
  /** @default 'lax' */
  readonly sameSite?: 'lax' | 'strict' | 'none' | false;
  /**
   * Write the `Partitioned` attribute (CHIPS): a browser keeps the cookie apart for each top-level site the app is
   * embedded in, which is how an embedded app keeps a session where third-party cookies are blocked. Browsers
   * require `Secure` with it, so `Secure` is always written (also over plain HTTP with `secure: 'auto'`) and
   * `secure: false` is refused.
   * @default false
   */
  readonly partitioned?: boolean;
  /**
   * Lifetime in milliseconds, as elsewhere in Koa, written as `Max-Age` and `Expires` and enforced by the server
   * through the expiry sealed in the cookie. `'session'` makes a browser-session cookie, still sealed with an
   * expiry of {@link BROWSER_SESSION_LIFETIME_MS}.
   * @default 86_400_000 (one day)
   */
  readonly maxAge?: number | 'session';
}

/** The names of {@link CookieAttributeOptions}, which every backend takes beside its own options. */
export const COOKIE_ATTRIBUTE_OPTION_NAMES = [
  'name',
  'path',
  'domain',
  'secure',
  'httpOnly',
  'sameSite',
  'partitioned',
  'maxAge',
] as const satisfies readonly (keyof CookieAttributeOptions)[];

/** Validated attributes, with the parts of the Set-Cookie line that never change precomputed. */
export interface CookieAttributes {
  readonly name: string;
  readonly secure: boolean | 'auto';
  /** `undefined` for a browser-session cookie. */
  readonly maxAge: number | undefined;
  /** Milliseconds the sealed expiry lies ahead of the clock. */
  readonly lifetime: number;
  /** `; Path=…; Domain=…; HttpOnly; SameSite=…; Partitioned` */
  readonly fixedAttributes: string;
}

/**
 * Validates cookie attributes against RFC 6265 and browsers' rules and resolves the defaults.
 * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION` naming the option.
 */
export function resolveCookieAttributes(where: string, options: CookieAttributeOptions): CookieAttributes {
  const name = options.name ?? 'session';
  if (typeof name !== 'string' || !TOKEN.test(name) || name.length > MAX_COOKIE_NAME_BYTES) {
    throw invalidOption(where, 'name', `an RFC 6265 token (letters, digits, !#$%&'*+-.^_\`|~) of 1 to ${MAX_COOKIE_NAME_BYTES} characters`);
  }
  const path = options.path ?? '/';
  // RFC 6265 §5.2.4: a Path that does not start with "/" is ignored by browsers, which then use a default path.
  if (typeof path !== 'string' || !PATH_VALUE.test(path) || !path.startsWith('/')) {
    throw invalidOption(where, 'path', 'a path starting with "/", of printable ASCII without ";"');
  }
  const domain = options.domain;
  if (domain !== undefined && (typeof domain !== 'string' || !DOMAIN_VALUE.test(domain))) {
    throw invalidOption(where, 'domain', 'a host name such as "example.com"');
  }
  const secureOption = options.secure ?? 'auto';
  if (secureOption !== true && secureOption !== false && secureOption !== 'auto') {
    throw invalidOption(where, 'secure', "true, false or 'auto'");
  }
  const httpOnly = options.httpOnly ?? true;
  if (typeof httpOnly !== 'boolean') throw invalidOption(where, 'httpOnly', 'a boolean');
  const sameSite = options.sameSite ?? 'lax';
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none' && sameSite !== false) {
    throw invalidOption(where, 'sameSite', "'lax', 'strict', 'none' or false");
  }
  if (sameSite === 'none' && secureOption === false) {
    throw invalidOption(where, 'secure', "true or 'auto' with sameSite 'none' (browsers drop SameSite=None cookies without Secure)");
  }
  const partitioned = options.partitioned ?? false;
  if (typeof partitioned !== 'boolean') throw invalidOption(where, 'partitioned', 'a boolean');
  if (partitioned && secureOption === false) {
    throw invalidOption(where, 'secure', "true or 'auto' with partitioned (browsers drop Partitioned cookies without Secure)");
  }
  // Browsers drop a SameSite=None or Partitioned cookie without Secure, and the line that would expire it too:
  // never write one.
  const secure = sameSite === 'none' || partitioned ? true : secureOption;
  const maxAge = options.maxAge ?? DEFAULT_MAX_AGE_MS;
  if (!isLifetime(maxAge)) throw invalidOption(where, 'maxAge', LIFETIME_TEXT);
  // Cookie prefixes (RFC 6265bis §4.1.3): browsers match them case-insensitively and reject these names unless
  // the attributes match.
  const lowerName = name.toLowerCase();
  if (lowerName.startsWith('__secure-') || lowerName.startsWith('__host-')) {
    if (secure !== true) throw invalidOption(where, 'secure', `true for a cookie named "${name}"`);
    if (lowerName.startsWith('__host-') && (path !== '/' || domain !== undefined)) {
      throw invalidOption(where, 'path', `"/" with no domain for a cookie named "${name}"`);
    }
  }
  let fixedAttributes = `; Path=${path}`;
  if (domain !== undefined) fixedAttributes += `; Domain=${domain}`;
  if (httpOnly) fixedAttributes += '; HttpOnly';
  if (sameSite !== false) fixedAttributes += `; SameSite=${sameSite[0]?.toUpperCase()}${sameSite.slice(1)}`;
  // A partitioned cookie is a cookie of its own: the line that expires it must carry the attribute too.
  if (partitioned) fixedAttributes += '; Partitioned';
  return Object.freeze({
    name,
    secure,
    maxAge: maxAge === 'session' ? undefined : maxAge,
    lifetime: maxAge === 'session' ? BROWSER_SESSION_LIFETIME_MS : maxAge,
    fixedAttributes,
  });
}

/** Whether the cookie is sent `Secure` on this request: `secure: 'auto'` follows the request (`ctx.secure`). */
export function isSecure(attributes: CookieAttributes, requestSecure: boolean): boolean {
  return attributes.secure === 'auto' ? requestSecure : attributes.secure;
}

/** The Set-Cookie line for a session value that lives `maxAge` milliseconds (`undefined`: a browser-session cookie). */
export function setCookieLine(attributes: CookieAttributes, value: string, now: number, secure: boolean, maxAge: number | undefined): string {
  let line = `${attributes.name}=${value}${attributes.fixedAttributes}`;
  if (maxAge !== undefined) {
    line += `; Max-Age=${Math.floor(maxAge / 1000)}; Expires=${httpDate(now + maxAge)}`;
  }
  return secure ? `${line}; Secure` : line;
}

// An HTTP date has one-second resolution: format it once per second, not once per response.
let dateSecond = NaN;
let dateText = '';

function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** The Set-Cookie line that deletes the cookie. */
export function expiredCookieLine(attributes: CookieAttributes, secure: boolean): string {
  const line = `${attributes.name}=${attributes.fixedAttributes}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT`;
  return secure ? `${line}; Secure` : line;
}

// The value of each base64url character, by character code; -1 for every other character.
const BASE64URL_VALUE = new Int8Array(128).fill(-1);
[...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].forEach((char, value) => {
  BASE64URL_VALUE[char.charCodeAt(0)] = value;
});

/**
 * The bytes of a sealed cookie value, or `undefined` unless it is the canonical base64url text (see
 * {@link isCanonicalBase64url}) of 1 to {@link MAX_COOKIE_VALUE_BYTES} characters.
 */
export function decodeCookieValue(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_COOKIE_VALUE_BYTES) return undefined;
  const bytes = Buffer.from(value, 'base64url');
  // Node's decoder is lenient: only the canonical text of a value opens.
  return isCanonicalBase64url(value, bytes.length) ? bytes : undefined;
}

/**
 * Whether `text` is the one canonical base64url spelling (no padding) of the `decodedLength` bytes that node
 * decoded from it. Node's decoder is lenient: it skips or stops at stray characters, reads '+' and '/' as '-'
 * and '_', ignores the unused bits of the last character and reads only the low byte of a wide character, so
 * many texts decode to the same bytes. Checked without allocating; equivalent to re-encoding and comparing
 * (a property test holds it to that).
 */
export function isCanonicalBase64url(text: string, decodedLength: number): boolean {
  const length = text.length;
  // A skipped or stopping character always leaves fewer bytes than the length promises, but for a length
  // of 4n+1, which no canonical text has.
  if (length % 4 === 1 || decodedLength !== Math.floor((length * 3) / 4)) return false;
  if (Buffer.byteLength(text, 'utf8') !== length) return false;
  if (text.includes('+') || text.includes('/')) return false;
  const last = length === 0 ? 0 : (BASE64URL_VALUE[text.charCodeAt(length - 1)] ?? -1);
  const rest = length % 4;
  // The last character of a 4n+2 text carries 2 bits, of a 4n+3 text 4 bits; the rest must be zero.
  return rest === 2 ? (last & 0x0f) === 0 : rest === 3 ? (last & 0x03) === 0 : true;
}

/**
 * The values of the first `max` cookies called `name` in a Cookie header, in the order sent, without
 * surrounding quotes. Browsers send the most specific (longest path) first, but a sibling subdomain can plant a
 * cookie of the same name, so the caller tries them in turn. Linear in the header, whatever it holds.
 */
export function readCookies(header: string | undefined, name: string, max: number): string[] {
  const values: string[] = [];
  if (header === undefined) return values;
  const length = header.length;
  let start = 0;
  // The next "=" at or after `start`: searched again only once passed, so the whole read stays linear.
  let eq = header.indexOf('=');
  while (start < length && eq !== -1 && values.length < max) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    if (eq < end && header.slice(start, eq).trim() === name) {
      const value = header.slice(eq + 1, end).trim();
      values.push(value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value);
    }
    start = end + 1;
    if (eq < start) eq = header.indexOf('=', start);
  }
  return values;
}

/**
 * Adds a Set-Cookie line to the response, replacing any earlier line for the same cookie name and keeping
 * every other cookie the app set.
 */
export function putSetCookie(res: ServerResponse, name: string, line: string): void {
  const previous = res.getHeader('set-cookie');
  if (previous === undefined) {
    res.setHeader('Set-Cookie', line);
    return;
  }
  const prefix = `${name}=`;
  const lines = (Array.isArray(previous) ? previous : [String(previous)]).filter((other) => !other.startsWith(prefix));
  lines.push(line);
  res.setHeader('Set-Cookie', lines);
}
