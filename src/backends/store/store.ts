import { SessionError } from '../../core/errors.js';

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
 * - `write` with `replaces` (`renew()`: the same data under a new key): creates the record only if the one under
 *   `replaces` still exists, and removes that one, in one atomic step where the store can; where it cannot (two
 *   slots of a Redis Cluster), it removes the old record first and creates the new one only if there was one, so a
 *   failure in between ends the session rather than keeping or reviving it. Answers `false` when the old one was gone.
 * - `write` with `maxBytes`: refuses, by throwing a `SessionError` `ERR_SESSION_TOO_LARGE` and changing nothing, a
 *   write that would leave the record's data fields (their names' UTF-8 bytes and their values' bytes, counted
 *   after the change, whatever other requests wrote meanwhile) larger than `maxBytes`.
 * - `write` with `replaces` and `graceMs` (optional for a store of your own): for `graceMs` after the renewal, `load`
 *   of the replaced key answers `{ renewed: true }` with no fields, and extends nothing; no write brings it back.
 *   A request still carrying the replaced id (sent before a login that renewed it) then writes nothing, rather
 *   than starting a session whose cookie would replace the new one. A store that ignores it answers `undefined`.
 * - `destroy`: removes the record; removing one that does not exist is no error.
 * - `write` and `destroy` given a `timeoutMs` should not apply once half of it has passed since the call, where a
 *   remote store can tell (its clock): the backend reports a call slower than that as failed, and a stalled server
 *   that resumes must not apply a change the app was told did not happen.
 *
 * Every method rejects when the store cannot answer; the backend turns that, and a call slower than its
 * `storeTimeout`, into `ERR_SESSION_STORE_UNAVAILABLE` (a 503).
 */
export interface SessionStore {
  /**
   * `seenAt`, given only to a store with a user index (see {@link UserIndex}): a record that belongs to a user keeps
   * it as its `lastSeenAt` when the one it holds is a minute older or more, in the same round trip.
   */
  load(key: string, ttlMs: number, seenAt?: number): Promise<StoreRecord | undefined>;
  write(key: string, write: StoreWrite): Promise<boolean>;
  /** `timeoutMs`: as {@link StoreWrite.timeoutMs}. With a user index, the record also leaves its user's index. */
  destroy(key: string, timeoutMs?: number): Promise<void>;
}

/**
 * What a store adds to {@link SessionStore} so that `StoreSessionBackend`'s `userKey` can list and end a user's
 * sessions. A user is an opaque string (a hash of the app's user id). The index may hold more than the user's live
 * records (an entry whose record ended or changed user meanwhile), never fewer: each method checks each record's
 * own user before it reports or ends it, and drops the entries it finds stale. Entries expire at their `until`.
 */
export interface UserIndex {
  /** The user's live records. */
  sessionsOf(user: string): Promise<readonly UserRecord[]>;
  /** Removes every record of the user but `keep`, and their entries; answers how many records it removed. */
  destroyUser(user: string, keep?: string): Promise<number>;
}

/** One record of a user, as {@link UserIndex.sessionsOf} lists it. */
export interface UserRecord {
  readonly key: string;
  readonly createdAt: number | undefined;
  readonly lastSeenAt: number | undefined;
  /** What the backend stored with `StoreWrite.info`, or `undefined`. */
  readonly info: string | undefined;
}

/** A stored record: its fields by session key, each an encoded value (read, never changed, by the backend), and when its session began. */
export interface StoreRecord {
  readonly fields: ReadonlyMap<string, Uint8Array>;
  /** Milliseconds since the epoch; `undefined` when the store lost it. */
  readonly createdAt?: number;
  /** With a user index: the user the record is indexed under, if any. */
  readonly user?: string;
  /** The key was renewed within `graceMs` (see {@link SessionStore}): a marker, with no fields, not a session. */
  readonly renewed?: boolean;
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
  /**
   * The session's absolute deadline, in milliseconds from now: `ttlMs` never passes it. For a store that keeps the
   * deadline apart (PostgresStore's `absolute_until`); `undefined` from a caller that does not know it.
   */
  readonly absoluteMs?: number;
  /** The backend gives up on the call after this long: see {@link SessionStore}. */
  readonly timeoutMs?: number;
  /**
   * With a user index: the user the record belongs to from this write on (`null`: none), indexed in the same
   * atomic write where the store can (the entry is written first where it cannot, so the index never misses a
   * record). `undefined`: unchanged.
   */
  readonly user?: string | null;
  /** With `user`: the latest the record can live (its absolute deadline, ms since the epoch): the entry's expiry. */
  readonly until?: number;
  /** With `user`: a short description of the session to list with it (`describe`'s answer, as JSON). */
  readonly info?: string;
  /** With `create`: the key of the record this one replaces (see {@link SessionStore}). */
  readonly replaces?: string;
  /** With `replaces`: how long the replaced key answers `load` with `{ renewed: true }` (see {@link SessionStore}). */
  readonly graceMs?: number;
  /** The largest the record's data may be after this write, in bytes (see {@link SessionStore}). */
  readonly maxBytes?: number;
}

/** A write the store refused for `maxBytes` (see {@link SessionStore}): for stores to throw. */
export function recordTooLarge(size: number, maxBytes: number): SessionError {
  return new SessionError(
    'ERR_SESSION_TOO_LARGE',
    `The session record would be ${size} bytes in the store, and maxBytes is ${maxBytes}, counting what other requests ` +
      'wrote to it meanwhile. Raise maxBytes or store less. The stored session is unchanged.',
  );
}
