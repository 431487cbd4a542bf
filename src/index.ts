export { session, type SessionMiddlewareOptions } from './core/middleware.js';
export { FLASH_KEY, Session, type SessionData } from './core/session.js';
export type { SessionView } from './core/view.js';
export type { SessionBackend, SessionHandle, SessionStatus, SessionWrite, StoredSession } from './core/backend.js';
export { CookieSessionBackend, MAX_SAME_NAME_COOKIES, type CookieSessionOptions } from './backends/cookie/cookie-backend.js';
export { BROWSER_SESSION_LIFETIME_MS, CLOCK_SKEW_MS, MAX_COOKIE_AGE_MS } from './policy/lifetime.js';
export { MAX_COOKIE_NAME_BYTES, MAX_COOKIE_VALUE_BYTES, type CookieAttributeOptions, type CookieAttributes } from './http/cookie.js';
export type { TransportOptions } from './http/transport.js';
export { StoreSessionBackend, type StoreSessionOptions, type UserSession } from './backends/store/store-backend.js';
export { RENEW_GRACE_MS } from './backends/store/store-request.js';
export type { SessionStore, StoreRecord, StoreWrite, UserIndex, UserRecord } from './backends/store/store.js';
export { MemoryStore, type MemoryStoreOptions } from './backends/store/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './redis/redis-store.js';
export type { RedisClientLike } from './redis/client.js';
export { PostgresStore, TOUCH_STEP_MS, type PostgresStoreOptions } from './postgres/postgres-store.js';
export type { PostgresClientLike } from './postgres/client.js';
export { KeyRing, MIN_KEY_BYTES, type KeyRingOptions } from './crypto/key-ring.js';
export {
  MemoryRevocationStore,
  mergeRevocations,
  type MemoryRevocationStoreOptions,
  type Revocation,
  type RevocationStore,
} from './backends/cookie/revocations.js';
export { RedisRevocationStore, type RedisRevocationStoreOptions } from './redis/redis-revocation-store.js';
export {
  koaSessionCookies,
  type KoaSessionCookiesOptions,
  type KoaSessionStore,
  type LegacyCookies,
  type LegacyStore,
  type MovedSession,
} from './backends/shared/koa-session-cookies.js';
export type { SealMode } from './crypto/envelope.js';
export { FIRST_USER_SERIALIZER_ID, type Serializer, type SessionRecord } from './codec/serializer.js';
export { JsonSerializer } from './codec/json/json-serializer.js';
export { MsgpackSerializer } from './codec/msgpack/msgpack-serializer.js';
export { MAX_VALUE_DEPTH } from './codec/value.js';
export { SessionError, type SessionErrorCode } from './core/errors.js';
export {
  DIAGNOSTICS_CHANNELS,
  type CookieRejectedMessage,
  type RejectionReason,
  type ResealedMessage,
  type SessionMessage,
  type StoreMessage,
  type WriteRefusedMessage,
} from './core/diagnostics.js';
