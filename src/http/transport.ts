import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { invalidOption } from '../core/options.js';
import { MAX_COOKIE_VALUE_BYTES, readCookies, type CookieAttributeOptions } from './cookie.js';

/** Where a session's sealed value travels between client and server; both backends take these options. */
export interface TransportOptions {
  /**
   * `'cookie'`: in the session cookie. `'header'`: for API and mobile clients, read from the request's
   * `Authorization: Bearer <token>` (or the header named by `header`) and sent in the response's `Session-Token`
   * header (`responseHeader`) when the session is created, renewed or sealed again; a purge sends it empty. No
   * cookie is read or written, and the cookie attributes (`path`, `domain`, `secure`, `httpOnly`, `sameSite`,
   * `partitioned`) are refused.
   * @default 'cookie'
   */
  readonly transport?: 'cookie' | 'header';
  /**
   * With `transport: 'header'`, the request header that carries the token: `'authorization'` takes it from the
   * Bearer scheme (RFC 6750), any other header as its whole value. @default 'authorization'
   */
  readonly header?: string;
  /** With `transport: 'header'`, the response header that carries a new token. @default 'Session-Token' */
  readonly responseHeader?: string;
}

/** The names of {@link TransportOptions}. */
export const TRANSPORT_OPTION_NAMES = ['transport', 'header', 'responseHeader'] as const satisfies readonly (keyof TransportOptions)[];

/** A resolved `transport: 'header'`. */
export interface HeaderTransport {
  /** The request header, lower-case, as Node keys it. */
  readonly header: string;
  /** The token is the Bearer credentials of an Authorization header. */
  readonly bearer: boolean;
  readonly responseHeader: string;
}

// RFC 9110 §5.1: field-name = token
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
// Headers that carry something else, or that Node and browsers treat apart.
const RESERVED = new Set(['cookie', 'set-cookie', 'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'cache-control']);
const COOKIE_ONLY = ['path', 'domain', 'secure', 'httpOnly', 'sameSite', 'partitioned'] as const satisfies readonly (keyof CookieAttributeOptions)[];

/**
 * The header transport the options ask for, or `undefined` for the cookie.
 * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION` naming the option.
 */
export function resolveTransport(where: string, options: TransportOptions & CookieAttributeOptions): HeaderTransport | undefined {
  const transport = options.transport ?? 'cookie';
  if (transport !== 'cookie' && transport !== 'header') throw invalidOption(where, 'transport', "'cookie' or 'header'");
  if (transport === 'cookie') {
    for (const name of ['header', 'responseHeader'] as const)
      if (options[name] !== undefined) throw invalidOption(where, name, "given with transport: 'header' only");
    return undefined;
  }
  for (const name of COOKIE_ONLY)
    if (options[name] !== undefined) throw invalidOption(where, name, "absent with transport: 'header', which writes no cookie");
  const header = options.header ?? 'authorization';
  if (typeof header !== 'string' || !FIELD_NAME.test(header) || RESERVED.has(header.toLowerCase()))
    throw invalidOption(where, 'header', "a request header's name, such as 'authorization' or 'x-session-token', other than Cookie");
  const responseHeader = options.responseHeader ?? 'Session-Token';
  if (typeof responseHeader !== 'string' || !FIELD_NAME.test(responseHeader) || RESERVED.has(responseHeader.toLowerCase()))
    throw invalidOption(where, 'responseHeader', "a response header's name, such as 'Session-Token', other than Set-Cookie");
  const lower = header.toLowerCase();
  return Object.freeze({ header: lower, bearer: lower === 'authorization', responseHeader });
}

/**
 * The session values a request carries: the first `max` cookies called `name`, or, with a header transport, the
 * token of its header (one at most). Linear in the headers, whatever they hold.
 */
export function requestValues(headers: IncomingHttpHeaders, name: string, transport: HeaderTransport | undefined, max: number): string[] {
  if (transport === undefined) return readCookies(headers.cookie, name, max);
  const raw = headers[transport.header];
  if (typeof raw !== 'string') return [];
  let token = raw.trim();
  if (transport.bearer) {
    // RFC 9110 §11.1: the scheme is case-insensitive; one or more spaces before the credentials.
    if (token.length < 8 || token.slice(0, 7).toLowerCase() !== 'bearer ') return [];
    token = token.slice(7).trimStart();
  }
  // Longer than any sealed value: not looked at (the envelope would refuse it anyway).
  return token.length === 0 || token.length > MAX_COOKIE_VALUE_BYTES ? [] : [token];
}

/**
 * Sends a token in the response (`''` to tell the client to drop its token). A response that carries one is
 * marked `Cache-Control: no-store`, so that no cache hands it to another client.
 */
export function putToken(res: ServerResponse, transport: HeaderTransport, token: string): void {
  res.setHeader(transport.responseHeader, token);
  res.setHeader('Cache-Control', 'no-store');
}
