import type { Context } from 'koa';
import type { LazyEntries } from '../codec/entries.js';
import type { SessionRecord } from '../codec/serializer.js';
import type { ValueRules } from '../codec/value.js';

/** What happened to a session during a request. */
export type SessionStatus = 'unchanged' | 'changed' | 'renewed' | 'purged';

/** A session as a backend stored it. */
export interface StoredSession {
  /** The session's data, owned by the session from now on. */
  readonly data: SessionRecord;
  /** Write it back even if unchanged: it was stored in an older format or with a retired key, or is due for renewal. */
  readonly stale: boolean;
  /** The session's own lifetime, when it was given one (`ctx.session.maxAge`, `renew({ maxAge })`). */
  readonly maxAge?: number | 'session';
  /**
   * The session's top-level values still encoded, for a serializer with an {@link Serializer.entryCodec}: the
   * session decodes only the keys the request reads, and `SessionWrite.entries` hands the untouched ones back as
   * they were. Optional: without it the session works on `data`.
   */
  readonly entries?: LazyEntries | undefined;
}

/** What the middleware asks a backend to store at the end of a request. */
export interface SessionWrite {
  /** `'unchanged'` only for a stale session that is written back as it was. */
  readonly status: SessionStatus;
  /** The session's data after the request (empty when purged). */
  readonly data: SessionRecord;
  /** True when no stored session was found for this request. */
  readonly isNew: boolean;
  /** The session's own lifetime, or `undefined` for the backend's. A backend that has no lifetimes ignores it. */
  readonly maxAge?: number | 'session';
  /**
   * The request emptied the session (`clear()`, or `ctx.session = {...}`) before setting what `data` holds: a store
   * that keeps keys apart removes the ones this request never saw too.
   */
  readonly cleared?: boolean;
  /** The entries behind `data`, untouched values still encoded, when the session was read from `StoredSession.entries`. */
  readonly entries?: LazyEntries | undefined;
}

/**
 * One request's view of a backend. `read` is called at most once, on the first access to `ctx.session`, so a
 * request that never uses its session costs no decoding; `write` at most once, after the downstream
 * middleware finished, and only when the session changed or is stale.
 */
export interface SessionHandle {
  /** The lifetime a session has unless given its own: what `ctx.session.maxAge` reads then. */
  readonly maxAge?: number | 'session';
  read(): StoredSession | undefined;
  write(change: SessionWrite): void | Promise<void>;
  /**
   * The middleware refused to write the session (a value set by property access that is not plain data): nothing
   * is written. `key` is the session key whose value it refused. For the backend to report, never to store.
   */
  refused?(code: string, key: string | undefined): void;
  /**
   * What the backend's serializer can carry ({@link Serializer.valueRules}): `set()` refuses the rest at once,
   * rather than the write failing at the end of the request. Absent: plain data only.
   */
  readonly valueRules?: ValueRules | undefined;
}

/**
 * Where sessions live. The middleware knows nothing else of a backend: the cookie backend and any other store
 * (a server-side store keyed by a session id in a cookie, say) implement this.
 *
 * `load` runs at the start of every request, before the app's middleware: do any I/O there (fetch the record
 * for the request's session id), and leave decoding to `read`.
 */
export interface SessionBackend {
  load(ctx: Context): SessionHandle | Promise<SessionHandle>;
}

// A backend recognises its own request's session (`revokeUser(user, { keep: ctx.session })`) by the handle it
// made: `handleOf(ctx.session)` answers it, and the backend checks it is one of its own (`instanceof` its class).
export { handleOf } from './view.js';
