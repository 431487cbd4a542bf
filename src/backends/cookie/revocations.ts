import { checkOptionNames, invalidOption } from '../../options.js';

/**
 * Where `CookieSessionBackend` keeps, per user, a "not before" time: a cookie of that user sealed before it does
 * not open. A user is an opaque string (a hash of the app's user id). Small: one number per revoked user, kept as
 * long as a cookie sealed before it could still open.
 *
 * What each method must guarantee:
 * - `notBefore`: the user's time, in milliseconds since the epoch, or `undefined` when none is kept.
 * - `revoke`: sets the user's time to `at`, unless a later one is set already, and keeps it at least `ttlMs`.
 *
 * Both reject when the store cannot answer.
 */
export interface RevocationStore {
  notBefore(user: string): Promise<number | undefined>;
  revoke(user: string, at: number, ttlMs: number): Promise<void>;
}

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
  readonly #users = new Map<string, { at: number; expiresAt: number }>();
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

  async notBefore(user: string): Promise<number | undefined> {
    const entry = this.#users.get(user);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#now()) return entry.at;
    this.#users.delete(user);
    return undefined;
  }

  async revoke(user: string, at: number, ttlMs: number): Promise<void> {
    const now = this.#now();
    // Entries are kept as long as the longest cookie lifetime, all alike: the oldest expire first.
    for (const [name, entry] of this.#users) {
      if (entry.expiresAt > now) break;
      this.#users.delete(name);
    }
    const previous = this.#users.get(user);
    const kept = previous !== undefined && previous.expiresAt > now && previous.at >= at ? previous.at : at;
    this.#users.delete(user);
    this.#users.set(user, { at: kept, expiresAt: Math.max(now + ttlMs, previous?.expiresAt ?? 0) });
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
  readonly #timeoutMs: number;
  readonly #entries = new Map<string, { notBefore: number | undefined; fetchedAt: number }>();
  readonly #asking = new Map<string, Promise<number | undefined>>();

  constructor(store: RevocationStore, freshMs: number, timeoutMs: number) {
    this.#store = store;
    this.#freshMs = freshMs;
    this.#timeoutMs = timeoutMs;
  }

  /** The user's time: at once when the cache holds a fresh one, else from the store (rejects when it fails). */
  get(user: string, now: number): number | undefined | Promise<number | undefined> {
    const entry = this.#entries.get(user);
    if (entry !== undefined && now - entry.fetchedAt < this.#freshMs && now >= entry.fetchedAt) return entry.notBefore;
    const asking = this.#asking.get(user);
    if (asking !== undefined) return asking;
    const asked = withTimeout(this.#store.notBefore(user), this.#timeoutMs).then(
      (notBefore) => {
        this.#asking.delete(user);
        this.#put(user, typeof notBefore === 'number' && Number.isFinite(notBefore) ? notBefore : undefined, now);
        return this.#entries.get(user)?.notBefore;
      },
      (err: unknown) => {
        this.#asking.delete(user);
        throw err;
      },
    );
    this.#asking.set(user, asked);
    return asked;
  }

  /** Revokes in the store, then here, so that this process never opens a revoked cookie again. */
  async revoke(user: string, at: number, ttlMs: number, now: number): Promise<void> {
    await withTimeout(this.#store.revoke(user, at, ttlMs), this.#timeoutMs);
    this.#put(user, at, now);
  }

  #put(user: string, notBefore: number | undefined, now: number): void {
    const known = this.#entries.get(user)?.notBefore;
    // A later time known here (a revocation of this process, say) is never replaced by an older answer.
    const kept = known !== undefined && (notBefore === undefined || known > notBefore) ? known : notBefore;
    this.#entries.delete(user);
    if (this.#entries.size >= MAX_CACHED_USERS) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(user, { notBefore: kept, fetchedAt: now });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the revocation store did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
