// koa-sealed-session/backend: what a backend or serializer of your own needs to do what the built-in ones do.
// Re-exports only; an app needs none of it (the main entry has everything an app writes).
export type { SessionBackend, SessionHandle, SessionStatus, SessionWrite, StoredSession } from './core/backend.js';
export { handleOf } from './core/view.js';
export { RawValue, type EntryCodec, type LazyEntries } from './codec/entries.js';
export { PLAIN_DATA, type ValueRules } from './codec/value.js';
export type { Serializer, SessionRecord } from './codec/serializer.js';
