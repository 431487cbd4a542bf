/**
 * Where {@link StoreSessionBackend} keeps session records. A record is a set of fields, one per top-level key of
 * the session, so that two requests that change different keys both keep their changes. The backend hands the
 * store an opaque key (a hash of the session id, never the id) and encoded field values; the store never sees a
 * cookie or an id.
 *
 * What each method must guarantee:
 * - `load`: the record's fields, or `undefined` when there is none (or it expired); when there is one, its
 *   lifetime is extended to `ttlMs` from now, in the same round trip.
 * - `write`: atomic, all or nothing. `create` writes only when no record exists under `key` (and stores
 *   `createdAt`); otherwise it writes only when one exists, so that a record that was deleted or expired meanwhile
 *   is never brought back. `clear` removes every field first. The record then expires `ttlMs` from now. Answers
 *   whether it wrote.
 * - `destroy`: removes the record; removing one that does not exist is no error.
 * - `write` and `destroy` given a `timeoutMs` should not apply once half of it has passed since the call, where a
 *   remote store can tell (its clock): the backend reports a call slower than that as failed, and a stalled server
 *   that resumes must not apply a change the app was told did not happen.
 *
 * Every method rejects when the store cannot answer; the backend turns that, and a call slower than its
 * `storeTimeout`, into `ERR_SESSION_STORE_UNAVAILABLE` (a 503).
 */
export interface SessionStore {
  load(key: string, ttlMs: number): Promise<StoreRecord | undefined>;
  write(key: string, write: StoreWrite): Promise<boolean>;
  /** `timeoutMs`: as {@link StoreWrite.timeoutMs}. */
  destroy(key: string, timeoutMs?: number): Promise<void>;
}

/** A stored record: its fields by session key, each an encoded value (read, never changed, by the backend), and when its session began. */
export interface StoreRecord {
  readonly fields: ReadonlyMap<string, Uint8Array>;
  /** Milliseconds since the epoch; `undefined` when the store lost it. */
  readonly createdAt?: number;
}

/** One atomic change of a record. */
export interface StoreWrite {
  /** Create a record that must not exist yet (a new id), instead of changing one that must exist. */
  readonly create: boolean;
  /** With `create`: when the session began, kept with the record. */
  readonly createdAt: number;
  /** Remove every field before setting `set`. */
  readonly clear: boolean;
  readonly set: ReadonlyMap<string, Uint8Array>;
  readonly remove: readonly string[];
  /** The record expires this many milliseconds from now. */
  readonly ttlMs: number;
  /** The backend gives up on the call after this long: see {@link SessionStore}. */
  readonly timeoutMs?: number;
}
