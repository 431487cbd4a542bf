import { checkOptionNames, invalidOption } from '../../core/options.js';
import { recordTooLarge, type SessionStore, type StoreRecord, type StoreWrite, type UserIndex, type UserRecord } from './store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most sessions kept; past it, the least recently used one is dropped. @default 10_000 */
  readonly maxSessions?: number;
  /** The clock, in milliseconds since the epoch. For tests. @default Date.now */
  readonly now?: () => number;
}

/** Expired entries dropped per write at most: a bounded cost per request. */
const SWEEP_PER_TOUCH = 4;
/** A user's session keeps a new `lastSeenAt` at most this often. */
const SEEN_EVERY_MS = 60_000;
/** What `load` answers for a key renewed within its grace. */
const RENEWED: StoreRecord = Object.freeze({ fields: new Map<string, Uint8Array>(), renewed: true });

interface Entry {
  // Replaced by each write, never changed: a load hands out this very map.
  fields: ReadonlyMap<string, Buffer>;
  readonly createdAt: number;
  expiresAt: number;
  user: string | undefined;
  lastSeenAt: number | undefined;
  info: string | undefined;
}

/**
 * Sessions in this process's memory: for development and tests, or a single process that may lose its sessions
 * on restart. Bounded (least recently used first out) and expiring, with the same semantics as `RedisStore`.
 */
export class MemoryStore implements SessionStore, UserIndex {
  readonly #entries = new Map<string, Entry>();
  // Each user's records: key → until (the latest the record can live).
  readonly #users = new Map<string, Map<string, number>>();
  // Keys renewed within their grace: key → until (ms). All share one grace, so insertion order is expiry order.
  readonly #renewed = new Map<string, number>();
  readonly #maxSessions: number;
  readonly #now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    checkOptionNames('MemoryStore', options, ['maxSessions', 'now']);
    const maxSessions = options.maxSessions ?? 10_000;
    if (!Number.isInteger(maxSessions) || maxSessions < 1) throw invalidOption('MemoryStore', 'maxSessions', 'a whole number from 1');
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw invalidOption('MemoryStore', 'now', 'a function returning milliseconds since the epoch');
    this.#maxSessions = maxSessions;
    this.#now = now;
  }

  /** Records held in memory: live ones, and expired ones that later writes have not swept yet. */
  get size(): number {
    return this.#entries.size;
  }

  async load(key: string, ttlMs: number, seenAt?: number): Promise<StoreRecord | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return this.#isRenewed(key) ? RENEWED : undefined;
    entry.expiresAt = this.#now() + ttlMs;
    if (seenAt !== undefined && entry.user !== undefined && !(seenAt - (entry.lastSeenAt ?? 0) < SEEN_EVERY_MS)) entry.lastSeenAt = seenAt;
    this.#touch(key, entry);
    // The fields themselves, not copies: a write replaces the map and its values, never changes them, and the
    // backend only reads them (the contract's fields are read-only).
    return { fields: entry.fields, createdAt: entry.createdAt, user: entry.user };
  }

  async write(key: string, write: StoreWrite): Promise<boolean> {
    const existing = this.#live(key);
    if (write.create !== (existing === undefined)) return false;
    const replaced = write.replaces === undefined ? undefined : this.#live(write.replaces);
    if (write.replaces !== undefined && replaced === undefined) return false;
    const entry: Entry = existing ?? {
      fields: new Map(),
      createdAt: write.createdAt,
      expiresAt: 0,
      user: undefined,
      lastSeenAt: undefined,
      info: undefined,
    };
    const fields = new Map(write.clear ? [] : entry.fields);
    for (const [name, value] of write.set) fields.set(name, Buffer.from(value));
    for (const name of write.remove) fields.delete(name);
    if (write.maxBytes !== undefined) {
      let size = 0;
      for (const [name, value] of fields) size += Buffer.byteLength(name) + value.byteLength;
      if (size > write.maxBytes) throw recordTooLarge(size, write.maxBytes);
    }
    entry.fields = fields;
    entry.expiresAt = this.#now() + write.ttlMs;
    if (write.user !== undefined && write.user !== entry.user) {
      this.#unindex(key, entry.user);
      entry.user = write.user ?? undefined;
      entry.info = write.user === null ? undefined : write.info;
      if (write.user !== null) {
        let index = this.#users.get(write.user);
        if (index === undefined) this.#users.set(write.user, (index = new Map<string, number>()));
        index.set(key, write.until ?? entry.expiresAt);
      }
    }
    this.#touch(key, entry);
    if (write.replaces !== undefined) {
      this.#drop(write.replaces);
      if (write.graceMs !== undefined && write.graceMs > 0) this.#markRenewed(write.replaces, this.#now() + write.graceMs);
    }
    return true;
  }

  // Synchronous: a call either happens at once or not at all, so timeoutMs has nothing to guard.
  async destroy(key: string): Promise<void> {
    this.#drop(key);
  }

  async sessionsOf(user: string): Promise<readonly UserRecord[]> {
    const index = this.#users.get(user);
    if (index === undefined) return [];
    const records: UserRecord[] = [];
    for (const key of index.keys()) {
      const entry = this.#live(key);
      if (entry?.user === user) records.push({ key, createdAt: entry.createdAt, lastSeenAt: entry.lastSeenAt, info: entry.info });
    }
    return records;
  }

  async destroyUser(user: string, keep?: string): Promise<number> {
    const index = this.#users.get(user);
    if (index === undefined) return 0;
    let removed = 0;
    for (const key of [...index.keys()]) {
      if (key === keep) continue;
      if (this.#live(key)?.user === user) removed += 1;
      this.#drop(key);
    }
    return removed;
  }

  #isRenewed(key: string): boolean {
    const until = this.#renewed.get(key);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#renewed.delete(key);
    return false;
  }

  /** Keeps a marker for a renewed key, dropping the expired markers first and the oldest past maxSessions. */
  #markRenewed(key: string, until: number): void {
    const now = this.#now();
    for (const [old, oldUntil] of this.#renewed) {
      if (oldUntil > now && this.#renewed.size < this.#maxSessions) break;
      this.#renewed.delete(old);
    }
    this.#renewed.set(key, until);
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#now()) return entry;
    this.#drop(key);
    return undefined;
  }

  /** Removes a record and its user's index entry. */
  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#unindex(key, entry.user);
  }

  #unindex(key: string, user: string | undefined): void {
    if (user === undefined) return;
    const index = this.#users.get(user);
    index?.delete(key);
    if (index?.size === 0) this.#users.delete(user);
  }

  /**
   * Most recently used last: a Map keeps insertion order, so the first entry is the one to drop. Each touch also
   * drops the least recently used entries that expired, a few at a time, so expired sessions do not hold memory.
   */
  #touch(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    const now = this.#now();
    let swept = 0;
    for (const [oldKey, old] of this.#entries) {
      if (swept === SWEEP_PER_TOUCH || (old.expiresAt > now && this.#entries.size <= this.#maxSessions)) break;
      this.#drop(oldKey);
      swept += 1;
    }
    while (this.#entries.size > this.#maxSessions) this.#drop(this.#entries.keys().next().value as string);
  }
}
