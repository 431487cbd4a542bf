import type { SessionStatus, SessionWrite, StoredSession } from './backend.js';
import { LAZY_ENTRIES, RawValue, recordOf, type EntryCodec, type WithLazyEntries } from './entries.js';
import { SessionError } from './errors.js';
import type { SessionRecord } from './serializer.js';
import { PLAIN_DATA, copyValue, define, isWellFormed, type ValueRules } from './value.js';

/**
 * The shape of your session data, for typed `get` and `set`. Empty here; extend it by declaration merging:
 *
 * @example
 * ```ts
 * declare module 'koa-sealed-session' {
 *   interface SessionData { userId: string; counter: number }
 * }
 * ctx.session.get('counter'); // number | undefined
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {}

type Key = keyof SessionData & string;

let finishSession: (session: Session, stale: boolean) => SessionWrite | undefined;
let setRules: (session: Session, rules: ValueRules) => void;

/**
 * The session of one request, at `ctx.session`.
 *
 * Values are copies: `get` returns a copy and `set` stores one, so mutating an object you got or set changes
 * nothing until you call `set` again. Only plain data is stored (see the README's value table).
 */
export class Session {
  // Values are plain data the session owns, or RawValues: still encoded, decoded afresh on every read.
  readonly #data: Map<string, unknown>;
  readonly #codec: EntryCodec | undefined;
  readonly #isNew: boolean;
  // What the backend's serializer can carry; plain data only until the middleware says which serializer writes.
  #rules: ValueRules = PLAIN_DATA;
  #status: SessionStatus = 'unchanged';
  #active = true;

  /** @param stored - What the backend found for this request; `undefined` starts a new, empty session. */
  constructor(stored?: StoredSession) {
    this.#isNew = stored === undefined;
    const lazy = (stored as WithLazyEntries<StoredSession> | undefined)?.[LAZY_ENTRIES];
    this.#codec = lazy?.codec;
    // The backend hands its freshly split entries over: no copy.
    this.#data = lazy === undefined ? new Map() : (lazy.entries as Map<string, unknown>);
    if (stored !== undefined && lazy === undefined) {
      for (const key of Object.keys(stored.data)) this.#data.set(key, stored.data[key]);
    }
  }

  /** True when the request carried no valid session: it was missing, expired, tampered with or unreadable. */
  get isNew(): boolean {
    return this.#isNew;
  }

  /** What this request did to the session so far. */
  get status(): SessionStatus {
    return this.#status;
  }

  /** Number of keys. */
  get size(): number {
    return this.#data.size;
  }

  /** A copy of the value at `key`, or `undefined`. */
  get<K extends Key>(key: K): SessionData[K] | undefined;
  get<T = unknown>(key: string): T | undefined;
  get(key: string): unknown {
    const value = this.#data.get(key);
    if (value === undefined) return undefined;
    return value instanceof RawValue ? this.#decode(value, key) : copyValue(value, key);
  }

  /**
   * Stores a copy of `value` at `key`. Setting `undefined` removes the key; setting a primitive equal to the
   * current one is not a change.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` when `value` is not plain data.
   */
  set<K extends string>(key: K, value: K extends Key ? SessionData[K] | undefined : unknown): void {
    this.#assertActive();
    checkKey(key, this.#rules);
    if (value === undefined) {
      this.remove(key);
      return;
    }
    const stored = copyValue(value, key, false, this.#rules);
    const current = this.#data.get(key);
    if (current !== undefined && (typeof stored !== 'object' || stored === null) && Object.is(this.#peek(key, current), stored)) return;
    this.#data.set(key, stored);
    this.#touch();
  }

  /** Whether `key` holds a value. */
  has(key: string): boolean {
    return this.#data.has(key);
  }

  /** Removes `key`; returns whether it was there. */
  remove(key: string): boolean {
    this.#assertActive();
    const removed = this.#data.delete(key);
    if (removed) this.#touch();
    return removed;
  }

  /** Removes every key. The session goes on (the cookie is rewritten, empty); use `purge()` to end it. */
  clear(): void {
    this.#assertActive();
    if (this.#data.size === 0) return;
    this.#data.clear();
    this.#touch();
  }

  /**
   * Ends the session: its data is dropped and the response expires the cookie. Setting values afterwards
   * starts a fresh session, written as if renewed.
   */
  purge(): void {
    this.#assertActive();
    this.#data.clear();
    this.#status = 'purged';
  }

  /**
   * Issues a new cookie for the same data, with a fresh lifetime (and, for a server-side store, a new id: call it
   * after login to prevent session fixation).
   */
  renew(): void {
    this.#assertActive();
    this.#status = 'renewed';
  }

  /** The keys, in insertion order. */
  keys(): IterableIterator<string> {
    return this.#data.keys();
  }

  /** `[key, value]` pairs, in insertion order; each value is a copy. */
  *entries(): IterableIterator<[string, unknown]> {
    for (const key of this.#data.keys()) yield [key, this.get(key)];
  }

  /** A copy of the data as a plain object. */
  toJSON(): SessionRecord {
    const record: SessionRecord = {};
    for (const key of this.#data.keys()) define(record, key, this.get(key));
    return record;
  }

  #decode(raw: RawValue, key = ''): unknown {
    try {
      return (this.#codec as EntryCodec).decode(raw);
    } catch (err) {
      // The backend checked the whole payload before handing it over, so this is a serializer bug, never an
      // attack. Reported rather than read as absent, so that has() and get() never disagree. The cause may
      // quote session data, so it is left out.
      if (err instanceof SessionError) throw err;
      throw new SessionError(
        'ERR_SESSION_UNSUPPORTED_VALUE',
        `The stored value at "${key}" could not be decoded by its serializer. Overwrite or remove it with set() or remove().`,
      );
    }
  }

  /** The current value at `key`, for comparison only: one that cannot be read compares unequal, never throws. */
  #peek(key: string, current: unknown): unknown {
    if (!(current instanceof RawValue)) return current;
    try {
      return this.#decode(current, key);
    } catch {
      return NOT_READABLE;
    }
  }

  #touch(): void {
    if (this.#status === 'unchanged') this.#status = 'changed';
    // After purge, new data is a new session: the backend writes it under a fresh identity.
    else if (this.#status === 'purged') this.#status = 'renewed';
  }

  #assertActive(): void {
    if (!this.#active) {
      throw new SessionError(
        'ERR_SESSION_INACTIVE',
        'The session was changed after its response was committed; the change would be lost. ' +
          'Change ctx.session before the session middleware returns (not in a callback that runs later).',
      );
    }
  }

  static {
    setRules = (session, rules) => {
      session.#rules = rules;
    };
    finishSession = (session, stale) => {
      session.#active = false;
      if (session.#status === 'unchanged' && !stale) return undefined;
      let data: SessionRecord | undefined;
      const write: WithLazyEntries<SessionWrite> = {
        status: session.#status,
        isNew: session.#isNew,
        // Built only for a backend that asks: the cookie backend writes untouched values still encoded.
        get data() {
          return (data ??= recordOf(session.#data, (raw, key) => session.#decode(raw, key)));
        },
        [LAZY_ENTRIES]: session.#codec === undefined ? undefined : { codec: session.#codec, entries: session.#data },
      };
      return write;
    };
  }
}

/**
 * Closes a session to changes and returns what to write: nothing when it is unchanged and not stale.
 * Internal: used by the middleware only.
 */
export function finish(session: Session, stale: boolean): SessionWrite | undefined {
  return finishSession(session, stale);
}

/**
 * A session for the middleware, whose `set()` also refuses what `rules` say the backend's serializer cannot carry.
 * Internal: used by the middleware only.
 */
export function createSession(stored: StoredSession | undefined, rules: ValueRules | undefined): Session {
  const session = new Session(stored);
  if (rules !== undefined) setRules(session, rules);
  return session;
}

const NOT_READABLE = Symbol('not readable');

function checkKey(key: unknown, rules: ValueRules): void {
  if (typeof key !== 'string') {
    throw new SessionError('ERR_SESSION_UNSUPPORTED_VALUE', `Session keys must be strings, got a ${typeof key}.`);
  }
  if (rules.wellFormedStrings && !isWellFormed(key as string)) {
    throw new SessionError(
      'ERR_SESSION_UNSUPPORTED_VALUE',
      'A session key holds a lone surrogate, which this serializer (UTF-8) cannot carry: it would come back as another key.',
    );
  }
}
