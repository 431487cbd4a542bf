import { channel, type Channel } from 'node:diagnostics_channel';

/**
 * The `node:diagnostics_channel` channels this library publishes on, by name: subscribe with
 * `diagnostics_channel.subscribe(name, listener)`. A message never holds a key, a cookie value, a session id or
 * session data: only what happened, to which backend and cookie name, why, and how long it took. Publishing costs
 * nothing while nobody subscribes (each site checks `hasSubscribers` first).
 */
export const DIAGNOSTICS_CHANNELS = {
  /** A cookie did not open: {@link CookieRejectedMessage}. */
  cookieRejected: 'koa-sealed-session:cookie-rejected',
  /** A session was written back only to bring its cookie up to date: {@link ResealedMessage}. */
  resealed: 'koa-sealed-session:resealed',
  /** `renew()` gave a session a new cookie (and, on a store, a new id): {@link SessionMessage}. */
  renewed: 'koa-sealed-session:renewed',
  /** A session was ended (`purge()`, or its key was dropped while its request ran): {@link SessionMessage}. */
  purged: 'koa-sealed-session:purged',
  /** A write was refused and the stored session left as it was: {@link WriteRefusedMessage}. */
  writeRefused: 'koa-sealed-session:write-refused',
  /** A store write found its record ended meanwhile (purged, renewed, expired) and wrote nothing: {@link SessionMessage}. */
  writeDropped: 'koa-sealed-session:write-dropped',
  /** A store answered, but slower than half its timeout: {@link StoreMessage}. */
  storeSlow: 'koa-sealed-session:store-slow',
  /** A store failed or did not answer in time (the request answers 503): {@link StoreMessage}. */
  storeUnavailable: 'koa-sealed-session:store-unavailable',
} as const;

/** Which backend published a message, and for which cookie name. */
export interface SessionMessage {
  readonly backend: 'cookie' | 'store';
  /** The cookie's name. */
  readonly name: string;
}

/**
 * Why a cookie does not open. The first nine are the envelope's (as `npx koa-sealed-session inspect` reports them);
 * then: `expired` (its sealed expiry passed), `beyond-lifetime` (sealed for longer than the backend now allows),
 * `absolute-timeout` (its session began too long ago), `unknown-serializer`, `undecodable`, `revoked` (its user's
 * sessions were revoked), `no-record` (a store cookie whose record is gone), `corrupt-record` (whose record does
 * not decode; the record is left as it is), `oversized-record` (whose record is larger than `maxBytes`; the
 * record is deleted).
 */
export type RejectionReason =
  | 'too-long'
  | 'not-base64url'
  | 'not-canonical'
  | 'unknown-format'
  | 'wrong-mode'
  | 'truncated'
  | 'unknown-key'
  | 'bad-mac'
  | 'bad-tag'
  | 'expired'
  | 'beyond-lifetime'
  | 'absolute-timeout'
  | 'unknown-serializer'
  | 'undecodable'
  | 'revoked'
  | 'no-record'
  | 'renewed'
  | 'corrupt-record'
  | 'oversized-record';

export interface CookieRejectedMessage extends SessionMessage {
  readonly reason: RejectionReason;
}

export interface ResealedMessage extends SessionMessage {
  /** `key-rotation` (opened with an older key), `serializer` (written by a previous serializer), `format` (an older
   * cookie format), `renewal` (`autoRenew`, or a store id cookie past half its lifetime), `index` (a store session
   * indexed for `userKey`). */
  readonly cause: 'key-rotation' | 'serializer' | 'format' | 'renewal' | 'index';
}

export interface WriteRefusedMessage extends SessionMessage {
  /** The `SessionError` code: `ERR_SESSION_TOO_LARGE`, `ERR_SESSION_SERIALIZE`, `ERR_SESSION_UNSUPPORTED_VALUE`. */
  readonly code: string;
  /** The session key whose value was refused, when one was (never the value). */
  readonly key?: string;
}

export interface StoreMessage extends SessionMessage {
  /** The store method: `load`, `write`, `destroy`, `sessionsOf`, `destroyUser`, or `revocations` (cookie backend). */
  readonly operation: string;
  readonly durationMs: number;
  /** `timeout` or `error` (store-unavailable only). */
  readonly cause?: 'timeout' | 'error';
}

/** Publishes a cookie that gave no session on `cookie-rejected` (when subscribed). Internal: both backends report through it. */
export function publishRejected(backend: SessionMessage['backend'], name: string, reason: RejectionReason): void {
  if (channels.cookieRejected.hasSubscribers) channels.cookieRejected.publish({ backend, name, reason });
}

/** Publishes a refused write on `write-refused` (when subscribed). Internal: both backends report through it. */
export function publishRefused(backend: SessionMessage['backend'], name: string, code: string, key?: string): void {
  if (!channels.writeRefused.hasSubscribers) return;
  channels.writeRefused.publish(key === undefined ? { backend, name, code } : { backend, name, code, key });
}

/** The channels, made once. Internal: the backends publish through these. */
export const channels: { readonly [K in keyof typeof DIAGNOSTICS_CHANNELS]: Channel } = {
  cookieRejected: channel(DIAGNOSTICS_CHANNELS.cookieRejected),
  resealed: channel(DIAGNOSTICS_CHANNELS.resealed),
  renewed: channel(DIAGNOSTICS_CHANNELS.renewed),
  purged: channel(DIAGNOSTICS_CHANNELS.purged),
  writeRefused: channel(DIAGNOSTICS_CHANNELS.writeRefused),
  writeDropped: channel(DIAGNOSTICS_CHANNELS.writeDropped),
  storeSlow: channel(DIAGNOSTICS_CHANNELS.storeSlow),
  storeUnavailable: channel(DIAGNOSTICS_CHANNELS.storeUnavailable),
};
