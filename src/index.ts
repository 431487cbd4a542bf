export { session, type SessionMiddlewareOptions } from './middleware.js';
export { Session, type SessionData, type SessionView } from './session.js';
export type { SessionBackend, SessionHandle, SessionStatus, SessionWrite, StoredSession } from './backend.js';
export { CLOCK_SKEW_MS, CookieSessionBackend, MAX_SAME_NAME_COOKIES, type CookieSessionOptions } from './backends/cookie/cookie-backend.js';
export {
  BROWSER_SESSION_LIFETIME_MS,
  MAX_COOKIE_AGE_MS,
  MAX_COOKIE_NAME_BYTES,
  MAX_COOKIE_VALUE_BYTES,
  type CookieAttributeOptions,
  type CookieAttributes,
} from './http/cookie.js';
export { StoreSessionBackend, type StoreSessionOptions, type UserSession } from './backends/store/store-backend.js';
export type { SessionStore, StoreRecord, StoreWrite, UserIndex, UserRecord } from './backends/store/store.js';
export { MemoryStore, type MemoryStoreOptions } from './backends/store/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './backends/store/redis-store.js';
export type { RedisClientLike } from './redis/client.js';
export { KeyRing, MIN_KEY_BYTES, type KeyRingOptions } from './key-ring.js';
export {
  MemoryRevocationStore,
  mergeRevocations,
  type MemoryRevocationStoreOptions,
  type Revocation,
  type RevocationStore,
} from './backends/cookie/revocations.js';
export { RedisRevocationStore, type RedisRevocationStoreOptions } from './backends/cookie/redis-revocation-store.js';
export { koaSessionCookies, type KoaSessionCookiesOptions, type LegacyCookies } from './backends/cookie/koa-session-cookies.js';
export type { SealMode } from './envelope/envelope.js';
export { FIRST_USER_SERIALIZER_ID, type Serializer, type SessionRecord } from './serializers/serializer.js';
export { JsonSerializer } from './serializers/json-serializer.js';
export { MsgpackSerializer } from './serializers/msgpack-serializer.js';
export { MAX_VALUE_DEPTH } from './value.js';
export { SessionError, type SessionErrorCode } from './errors.js';
export {
  DIAGNOSTICS_CHANNELS,
  type CookieRejectedMessage,
  type RejectionReason,
  type ResealedMessage,
  type SessionMessage,
  type StoreMessage,
  type WriteRefusedMessage,
} from './diagnostics.js';
