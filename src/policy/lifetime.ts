import type { OwnLifetime } from '../crypto/envelope.js';

// The lifetime policy, in one place: how long sessions may last, and whether a sealed time still opens.
// Both backends, the cookie attributes and `ctx.session.maxAge` decide by what is here.

export const DAY = 24 * 60 * 60 * 1000;

/** Longest lifetime a session can have: browsers keep a cookie 400 days at most (Chrome caps Max-Age there). */
export const MAX_COOKIE_AGE_MS = 400 * DAY;

/** Server-side lifetime of a browser-session cookie (`maxAge: 'session'`): one day. */
export const BROWSER_SESSION_LIFETIME_MS = DAY;

/** The cookie's lifetime when none is given. */
export const DEFAULT_MAX_AGE_MS = DAY;

/** A session's absolute lifetime when none is given (the cookie backend takes `maxAge` when that is longer). */
export const DEFAULT_ABSOLUTE_MS = 30 * DAY;

/**
 * How far a cookie's sealed expiry may lie beyond `now + maxAge` and still open: the clocks of a fleet's servers
 * disagree a little, and a cookie sealed by a server running ahead must not log its user out.
 */
export const CLOCK_SKEW_MS = 60_000;

/** A session lifetime: `'session'` (a browser-session cookie) or whole milliseconds from 1 s to 400 days. */
export function isLifetime(value: unknown): value is number | 'session' {
  return value === 'session' || isDuration(value);
}

/** Whole milliseconds from 1 s to 400 days: what every lifetime option takes. */
export function isDuration(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1000 && value <= MAX_COOKIE_AGE_MS;
}

/** What {@link isDuration} accepts, for error messages. */
export const DURATION_TEXT = `a whole number of milliseconds from 1000 to ${MAX_COOKIE_AGE_MS} (400 days)`;

/** What {@link isLifetime} accepts, for error messages. */
export const LIFETIME_TEXT = `'session' or ${DURATION_TEXT}`;

/** How long a session opens on the server under its own lifetime, or under `lifetime` when it has none. */
export function serverLifetime(own: OwnLifetime, lifetime: number): number {
  return own === undefined ? lifetime : own === 'session' ? BROWSER_SESSION_LIFETIME_MS : own;
}

/** Why a sealed session's times keep it from opening. */
export type TimeRejection = 'expired' | 'beyond-lifetime' | 'absolute-timeout';

/**
 * Whether a sealed session's times rule it out now: a sealed own lifetime no session can have, past its expiry,
 * sealed for longer than its lifetime allows (plus `CLOCK_SKEW_MS`: shortening the lifetime ends longer sessions),
 * or begun `absolute` ago (or, beyond the skew, in the future). Both backends decide by this, and only by this.
 * @param lifetimeOf - How long a session with this own lifetime lasts on the server.
 */
export function timeRejection(
  times: { readonly expiresAt: number; readonly createdAt: number | undefined; readonly maxAge: OwnLifetime },
  now: number,
  lifetimeOf: (own: OwnLifetime) => number,
  absolute: number,
): TimeRejection | undefined {
  if (times.maxAge !== undefined && !isLifetime(times.maxAge)) return 'beyond-lifetime';
  if (times.expiresAt <= now) return 'expired';
  if (times.expiresAt > now + lifetimeOf(times.maxAge) + CLOCK_SKEW_MS) return 'beyond-lifetime';
  if (times.createdAt !== undefined && (now >= times.createdAt + absolute || times.createdAt > now + CLOCK_SKEW_MS)) return 'absolute-timeout';
  return undefined;
}
