// revokeUser while koa-session's sessions still move over (the store backend's `legacy`): a mark in the session
// store per revoked user, read before a move and after its write, so that sessions in no index do not move.
import { userIdOf } from '../shared/checks.js';
import type { LegacyCookies, MovedSession } from '../shared/koa-session-cookies.js';
import { CLOCK_SKEW_MS } from '../../policy/lifetime.js';
import { IdCookie } from './id-cookie.js';
import type { StoreWrite } from './store.js';
import type { StoreConfig } from './store-request.js';

/**
 * The store key that marks a user revoked while koa-session's sessions still move over: theirs are in no index, so
 * `revokeUser` leaves this mark for them, until the move ends. Hashed from a text no session id can be (an id is 32
 * random bytes), so that no cookie names it.
 */
function legacyRevocationKey(user: string): string {
  return IdCookie.recordKey(Buffer.from(`koa-sealed-session: legacy sessions revoked\0${user}`));
}

/** How long the mark lives from `now`: as long as a koa-session session can still move over, and a clock's skew. */
function legacyRevocationTtl(legacy: LegacyCookies, now: number): number {
  return legacy.until - now + CLOCK_SKEW_MS;
}

/**
 * Marks a user's koa-session sessions as revoked for as long as they could move over (see {@link legacyRevoked}):
 * created, or refreshed when a revocation marked them already.
 */
export async function revokeLegacy(config: StoreConfig, user: string, now: number): Promise<void> {
  const legacy = config.legacy;
  if (legacy === undefined || legacy.until <= now) return;
  const ttlMs = legacyRevocationTtl(legacy, now);
  const key = legacyRevocationKey(user);
  const write = (create: boolean): StoreWrite => ({
    create,
    createdAt: now,
    clear: true,
    set: new Map([['revokedAt', Buffer.from(String(now))]]),
    remove: [],
    ttlMs,
    absoluteMs: ttlMs,
    timeoutMs: config.timeoutMs,
  });
  if (!(await config.call('write', () => config.store.write(key, write(true)))))
    await config.call('write', () => config.store.write(key, write(false)));
}

/** Whether `revokeUser` marked the user a moved koa-session session belongs to; `false` for a session with no user. */
export async function legacyRevoked(config: StoreConfig, moved: MovedSession, now: number): Promise<boolean> {
  const { legacy, userKey, store, call } = config;
  if (legacy === undefined || userKey === undefined || !Object.hasOwn(moved.data, userKey)) return false;
  let user: string;
  try {
    user = userIdOf(moved.data[userKey], 'userKey');
  } catch {
    // No user id: indexed under none, revoked with none.
    return false;
  }
  const mark = await call('load', () => store.load(legacyRevocationKey(user), legacyRevocationTtl(legacy, now)));
  return mark !== undefined;
}
