import type { Context } from 'koa';
import type { SessionRecord } from '../codec/serializer.js';

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

/**
 * `ctx.session[SESSION_HANDLE]` is the backend handle behind the request's session (internal): a backend recognises
 * "this request's session" (`revokeUser(user, { keep: ctx.session })`) by it.
 */
export const SESSION_HANDLE = Symbol('koa-sealed-session.handle');
