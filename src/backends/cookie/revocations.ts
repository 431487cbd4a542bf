import { SessionError, storeFailure } from '../../core/errors.js';
import { checkOptionNames, invalidOption } from '../../core/options.js';
import { Deadlines } from '../shared/deadlines.js';

/**
 * A user's revocation: their sessions that began before `before` no longer open, but for the one that began at
 * `except` (the session that asked to "sign out everywhere else"). Times in milliseconds since the epoch.
 */
export interface Revocation {
  readonly before: number;
  readonly except?: number;
}

/**
 * Where `CookieSessionBackend` keeps each user's {@link Revocation}. A user is an opaque string (a hash of the
 * app's user id). Small: one entry per revoked user, kept as long as a session begun before it could still open.
 *
 * What each method must guarantee:
 * - `get`: the user's revocation, or `undefined` when none is kept.
 * - `set`: keeps, for at least `ttlMs`, the {@link mergeRevocations} of `revocation` and the one kept already, in one
 *   atomic step: no sequence of `set` calls makes a session open that an earlier one ended (a `keep` spares only a
 *   session the kept entry does not revoke). Answers what it keeps now, or nothing (then the next `get` asks).
 *
 * Both reject when the store cannot answer.
 */
export interface RevocationStore {
  get(user: string): Promise<Revocation | undefined>;
  set(user: string, revocation: Revocation, ttlMs: number): Promise<Revocation | void>;
}

/**
 * Two revocations as one: a session opens under it only if it opens under both. So the later `before` stands, and
 * its `except` only if the other revocation spares that session too: a "sign out my other sessions" from a session
 * that was signed out already spares nothing.
 */
export function mergeRevocations(a: Revocation | undefined, b: Revocation): Revocation {
  if (a === undefined) return b;
  const [later, earlier] = a.before > b.before ? [a, b] : [b, a];
  if (later.except !== undefined && !isRevoked(earlier, later.except)) return later;
  return { before: later.before };
}

/** What a malformed revocation entry counts as: every session of the user revoked (it fails closed). */
export const REVOKE_ALL: Revocation = Object.freeze({ before: Infinity });

/** Options of {@link MemoryRevocationStore}. */
export interface MemoryRevocationStoreOptions {
  /** The clock, in milliseconds since the epoch. For tests. @default Date.now */
  readonly now?: () => number;
}

/**
 * Revocations in this process's memory: for one process, development and tests. A revocation made here does not
 * reach other processes; use `RedisRevocationStore` for more than one.
 */
export class MemoryRevocationStore implements RevocationStore {
  readonly #users = new Map<string, { revocation: Revocation; expiresAt: number }>();
  readonly #now: () => number;

  constructor(options: MemoryRevocationStoreOptions = {}) {
    checkOptionNames('MemoryRevocationStore', options, ['now']);
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw invalidOption('MemoryRevocationStore', 'now', 'a function returning milliseconds since the epoch');
    this.#now = now;
  }

  /** Users with a time kept, expired ones included until a later revocation sweeps them. */
  get size(): number {
    return this.#users.size;
  }

  async get(user: string): Promise<Revocation | undefined> {
    const entry = this.#users.get(user);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#now()) return entry.revocation;
    this.#users.delete(user);
    return undefined;
  }

  async set(user: string, revocation: Revocation, ttlMs: number): Promise<Revocation> {
    const now = this.#now();
    // Entries are kept as long as the longest cookie lifetime, all alike: the oldest expire first.
    for (const [name, entry] of this.#users) {
      if (entry.expiresAt > now) break;
      this.#users.delete(name);
    }
    const previous = this.#users.get(user);
    const live = previous !== undefined && previous.expiresAt > now ? previous : undefined;
    const kept = mergeRevocations(live?.revocation, { ...revocation });
    this.#users.delete(user);
    this.#users.set(user, { revocation: kept, expiresAt: Math.max(now + ttlMs, live?.expiresAt ?? 0) });
    return kept;
  }
}

/** Most users whose time a process keeps in its cache. */
const MAX_CACHED_USERS = 10_000;

/**
 * A process's view of a {@link RevocationStore}: each user's time, asked at most once per `freshMs` (and once at a
 * time), so that most requests cost no round trip. A revocation made in this process is seen here at once.
 */
export class RevocationCache {
  readonly #store: RevocationStore;
  readonly #freshMs: number;
  readonly #deadlines: Deadlines;
  readonly #entries = new Map<string, { revocation: Revocation | undefined; fetchedAt: number }>();
  readonly #asking = new Map<string, Promise<Revocation | undefined>>();

  constructor(store: RevocationStore, freshMs: number, timeoutMs: number) {
    this.#store = store;
    this.#freshMs = freshMs;
    this.#deadlines = new Deadlines(timeoutMs);
  }

  /** The user's revocation: at once when the cache holds a fresh answer, else from the store (rejects when it fails). */
  get(user: string, now: number): Revocation | undefined | Promise<Revocation | undefined> {
    const entry = this.#entries.get(user);
    if (entry !== undefined && now - entry.fetchedAt < this.#freshMs && now >= entry.fetchedAt) return entry.revocation;
    const asking = this.#asking.get(user);
    if (asking !== undefined) return asking;
    const asked = this.#deadlines
      .run(() => this.#store.get(user))
      .then(
        (revocation) => {
          this.#asking.delete(user);
          // Something else than a revocation fails closed, whatever revocationStoreDown says: it is no outage.
          this.#put(user, revocation === undefined || isRevocation(revocation) ? revocation : REVOKE_ALL, now);
          return this.#entries.get(user)?.revocation;
        },
        (err: unknown) => {
          this.#asking.delete(user);
          throw err;
        },
      );
    this.#asking.set(user, asked);
    return asked;
  }

  /**
   * Revokes in the store, then here, so that this process never opens a revoked cookie again. What the store kept
   * is what counts, not what this cache knew: a stale cache must not let a `keep` spare a session revoked meanwhile.
   */
  async revoke(user: string, revocation: Revocation, ttlMs: number, now: number): Promise<void> {
    const kept = await this.#deadlines.run(() => this.#store.set(user, revocation, ttlMs));
    if (kept !== undefined && isRevocation(kept)) {
      this.#put(user, kept, now);
    } else {
      // A store that does not tell what it kept: the one revoked here is held at once, and the store asked next time.
      this.#put(user, revocation, now);
      const entry = this.#entries.get(user);
      if (entry !== undefined) entry.fetchedAt = -Infinity;
    }
  }

  #put(user: string, revocation: Revocation | undefined, now: number): void {
    const known = this.#entries.get(user)?.revocation;
    // Known here and answered by the store can only add up: what either revokes stays revoked.
    const kept = revocation === undefined ? known : mergeRevocations(known, revocation);
    this.#entries.delete(user);
    if (this.#entries.size >= MAX_CACHED_USERS) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(user, { revocation: kept, fetchedAt: now });
  }
}

/** Whether a session that began at `createdAt` (`undefined`: unknown, a version 1 cookie) is revoked. */
export function isRevoked(revocation: Revocation | undefined, createdAt: number | undefined): boolean {
  if (revocation === undefined) return false;
  if (createdAt === undefined) return true;
  return createdAt < revocation.before && createdAt !== revocation.except;
}

function isRevocation(value: unknown): value is Revocation {
  const r = value as Partial<Revocation> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    (Number.isFinite(r.before) || r.before === Infinity) &&
    (r.except === undefined || Number.isFinite(r.except))
  );
}

/** The 503 a revocation store that fails or is slow answers, its cause kept to a name and a message. */
export function revocationsUnavailable(cause: unknown): SessionError {
  return new SessionError(
    'ERR_SESSION_STORE_UNAVAILABLE',
    'The revocation store failed or did not answer in time: the request fails (503) rather than open a cookie that ' +
      "may be revoked (revocationStoreDown: 'reject'). Check the store.",
    { cause: storeFailure(cause) },
  );
}
