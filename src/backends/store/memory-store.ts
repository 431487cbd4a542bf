import { checkOptionNames, invalidOption } from '../../options.js';
import type { SessionStore, StoreRecord, StoreWrite } from './store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most sessions kept; past it, the least recently used one is dropped. @default 10_000 */
  readonly maxSessions?: number;
  /** The clock, in milliseconds since the epoch. For tests. @default Date.now */
  readonly now?: () => number;
}

/** Expired entries dropped per write at most: a bounded cost per request. */
const SWEEP_PER_TOUCH = 4;

interface Entry {
  // Replaced by each write, never changed: a load hands out this very map.
  fields: ReadonlyMap<string, Buffer>;
  readonly createdAt: number;
  expiresAt: number;
}

/**
 * Sessions in this process's memory: for development and tests, or a single process that may lose its sessions
 * on restart. Bounded (least recently used first out) and expiring, with the same semantics as `RedisStore`.
 */
export class MemoryStore implements SessionStore {
  readonly #entries = new Map<string, Entry>();
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

  async load(key: string, ttlMs: number): Promise<StoreRecord | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    entry.expiresAt = this.#now() + ttlMs;
    this.#touch(key, entry);
    // The fields themselves, not copies: a write replaces the map and its values, never changes them, and the
    // backend only reads them (the contract's fields are read-only).
    return { fields: entry.fields, createdAt: entry.createdAt };
  }

  async write(key: string, write: StoreWrite): Promise<boolean> {
    const existing = this.#live(key);
    if (write.create !== (existing === undefined)) return false;
    const entry = existing ?? { fields: new Map(), createdAt: write.createdAt, expiresAt: 0 };
    const fields = new Map(write.clear ? [] : entry.fields);
    for (const [name, value] of write.set) fields.set(name, Buffer.from(value));
    for (const name of write.remove) fields.delete(name);
    entry.fields = fields;
    entry.expiresAt = this.#now() + write.ttlMs;
    this.#touch(key, entry);
    return true;
  }

  // Synchronous: a call either happens at once or not at all, so timeoutMs has nothing to guard.
  async destroy(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#now()) return entry;
    this.#entries.delete(key);
    return undefined;
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
      this.#entries.delete(oldKey);
      swept += 1;
    }
    while (this.#entries.size > this.#maxSessions) this.#entries.delete(this.#entries.keys().next().value as string);
  }
}
