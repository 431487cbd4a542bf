import { SessionError } from './errors.js';

/**
 * Throws for an options argument that is not an object or that has a name the receiver does not know, so a
 * typo such as `samesite` fails at start-up instead of being silently ignored.
 */
export function checkOptionNames(where: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: options must be an object.`);
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const near = known.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    const hint = near === undefined ? ` Known options: ${known.join(', ')}.` : ` Did you mean "${near}"?`;
    throw new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: unknown option "${name}".${hint}`);
  }
}

/** The error for an option whose value is wrong; names the option and what it takes, never a secret. */
export function invalidOption(where: string, name: string, expected: string): SessionError {
  return new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: option "${name}" must be ${expected}.`);
}

/** Longest lifetime a session can have: browsers keep a cookie 400 days at most (Chrome caps Max-Age there). */
export const MAX_COOKIE_AGE_MS = 400 * 24 * 60 * 60 * 1000;

/** A session lifetime: `'session'` (a browser-session cookie) or whole milliseconds from 1 s to 400 days. */
export function isLifetime(value: unknown): value is number | 'session' {
  return value === 'session' || (typeof value === 'number' && Number.isInteger(value) && value >= 1000 && value <= MAX_COOKIE_AGE_MS);
}

/** What {@link isLifetime} accepts, for error messages. */
export const LIFETIME_TEXT = `'session' or a whole number of milliseconds from 1000 to ${MAX_COOKIE_AGE_MS} (400 days)`;
