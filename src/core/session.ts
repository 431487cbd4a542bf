import { SESSION_HANDLE, type SessionHandle, type SessionStatus, type SessionWrite, type StoredSession } from './backend.js';
import { LAZY_ENTRIES, RawValue, recordOf, type EntryCodec, type WithLazyEntries } from '../codec/entries.js';
import { inspect, isDeepStrictEqual } from 'node:util';
import { SessionError } from './errors.js';
import { LIFETIME_TEXT, isLifetime } from '../policy/lifetime.js';
import type { SessionRecord } from '../codec/serializer.js';
import { PLAIN_DATA, checkValue, copyValue, define, isWellFormed, type ValueRules } from '../codec/value.js';

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
export interface SessionData {}

type Key = Extract<keyof SessionData, string>;

let finishSession: (session: Session, stale: boolean, close: boolean) => SessionWrite | undefined;
let setup: (session: Session, rules: ValueRules, defaultMaxAge: number | 'session' | undefined) => void;

/** What `save()` writes through: the middleware's per-request lifecycle. Internal. */
export interface SessionWriter {
  saveNow(session: Session): Promise<void>;
  /** The backend's handle for this request, which the view hands out as its SESSION_HANDLE. */
  readonly handle?: SessionHandle;
}
let markSessionWritten: (session: Session, write: SessionWrite) => void;
let boundMethods: (session: Session) => Map<string, unknown>;
let liveGet: (session: Session, key: string) => unknown;
let liveSet: (session: Session, key: string, value: unknown) => void;
let replaceData: (session: Session, data: Record<string, unknown>) => void;

// The writer of the save() under way: set by the view just around the call, so that no session holds its
// request's lifecycle (measured: a session that did cost a fifth of the HTTP throughput).
let activeWriter: SessionWriter | undefined;

/** A value handed out by property access: compared at commit with what it was read from. */
interface Live {
  /** The encoded value it was decoded from; compared byte for byte. */
  raw?: RawValue;
  /** A copy of the plain value it was read as, when it was not encoded. */
  snapshot?: unknown;
  /** Assigned by property access: the session changed already, and the value is checked at commit. */
  assigned?: boolean;
}

/**
 * The session of one request, at `ctx.session`.
 *
 * Through `get` and `set`, values are copies: mutating an object you got or set changes nothing until you call
 * `set` again. Read as properties of `ctx.session` (koa-session's style), values are live: changes made in place are
 * written at commit, when their bytes changed. Only plain data is stored (see the README's value table).
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
  // The session's own lifetime (koa-session's per-session maxAge), or undefined for the backend's.
  #maxAge: number | 'session' | undefined;
  #defaultMaxAge: number | 'session' | undefined;
  // Set when a save() wrote a purge: values set afterwards start a new session.
  #purgeWritten = false;
  // Set by clear(): a store removes keys this request never saw too.
  #cleared = false;
  // Values handed out live by property access (koa-session's style), by key; created on first use.
  #live: Map<string, Live> | undefined;
  // The methods property access hands out, bound to this session; kept here, not in a WeakMap, which costs GC time.
  #bound: Map<string, unknown> | undefined;

  /** @param stored - What the backend found for this request; `undefined` starts a new, empty session. */
  constructor(stored?: StoredSession) {
    this.#isNew = stored === undefined;
    this.#maxAge = stored?.maxAge;
    const withEntries: WithLazyEntries<StoredSession> | undefined = stored;
    const lazy = withEntries?.[LAZY_ENTRIES];
    this.#codec = lazy?.codec;
    // The backend hands its freshly split entries over: no copy.
    this.#data = lazy === undefined ? new Map<string, unknown>() : (lazy.entries as Map<string, unknown>);
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

  /**
   * This session's lifetime in milliseconds, or `'session'` for a browser-session cookie: its own when it was
   * given one, else the backend's (`undefined` for a backend without lifetimes). Setting it gives this session its
   * own lifetime from now on, kept across requests and written at the end of this one, as koa-session's
   * `ctx.session.maxAge` does; `undefined` returns it to the backend's.
   * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION` for anything but `'session'`, `undefined` or whole
   * milliseconds from 1 s to 400 days.
   */
  get maxAge(): number | 'session' | undefined {
    return this.#maxAge ?? this.#defaultMaxAge;
  }

  set maxAge(value: number | 'session' | undefined) {
    this.#assertActive();
    if (value !== undefined && !isLifetime(value)) {
      throw new SessionError('ERR_SESSION_INVALID_OPTION', `ctx.session.maxAge must be undefined, ${LIFETIME_TEXT}.`);
    }
    if (value === this.#maxAge) return;
    this.#maxAge = value;
    this.#touch();
  }

  /** Number of keys. */
  get size(): number {
    return this.#data.size;
  }

  /** Number of keys, as koa-session names it. */
  get length(): number {
    return this.#data.size;
  }

  /** Whether the session holds any key (koa-session's `populated`). */
  get populated(): boolean {
    return this.#data.size > 0;
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
    this.#live?.delete(key);
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
    this.#live?.delete(key);
    const removed = this.#data.delete(key);
    if (removed) this.#touch();
    return removed;
  }

  /** Removes every key. The session goes on (the cookie is rewritten, empty); use `purge()` to end it. */
  clear(): void {
    this.#assertActive();
    if (this.#data.size === 0) return;
    this.#live?.clear();
    this.#data.clear();
    this.#cleared = true;
    this.#touch();
  }

  /**
   * Ends the session: its data and its own lifetime are dropped and the response expires the cookie. Setting
   * values afterwards starts a fresh session, written as if renewed.
   */
  purge(): void {
    this.#assertActive();
    this.#live?.clear();
    this.#data.clear();
    this.#maxAge = undefined;
    this.#status = 'purged';
  }

  /**
   * Issues a new cookie for the same data, with a fresh lifetime (and, for a server-side store, a new id: call it
   * after login to prevent session fixation). It begins a new session: its creation time is now.
   * @param options - `maxAge`: this session's own lifetime from now on (remember me), as setting
   * {@link Session.maxAge} gives it; without it, the session keeps the lifetime it had.
   * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION` for a `maxAge` that `Session.maxAge` refuses.
   */
  renew(options?: { readonly maxAge?: number | 'session' }): void {
    this.#assertActive();
    if (options !== undefined && options !== null && 'maxAge' in options) this.maxAge = options.maxAge;
    this.#status = 'renewed';
  }

  /**
   * Writes the session now (the response's cookie, for the cookie backend), as koa-session and express-session
   * do; changes made later in the request are written at its end as usual. Returns a promise, or calls
   * `callback` with an error or nothing.
   * @throws (rejects) {@link SessionError} as the end of the request would: too large, unsupported value.
   */
  save(): Promise<void>;
  save(callback: (err?: unknown) => void): void;
  save(callback?: (err?: unknown) => void): Promise<void> | void {
    return this.#settle(() => this.#writeNow(), callback);
  }

  /**
   * `renew()`, then `save()`: a new cookie (and, for a server-side store, a new id) at once. The data is kept, as
   * koa-session keeps it, so a `returnTo`, a CSRF secret or a flash message survives login. passport calls it at
   * login and logout.
   */
  regenerate(): Promise<void>;
  regenerate(callback: (err?: unknown) => void): void;
  regenerate(callback?: (err?: unknown) => void): Promise<void> | void {
    return this.#settle(() => {
      this.renew();
      return this.#writeNow();
    }, callback);
  }

  /** `purge()`, then `save()`: ends the session now (express-session's `destroy`). */
  destroy(): Promise<void>;
  destroy(callback: (err?: unknown) => void): void;
  destroy(callback?: (err?: unknown) => void): Promise<void> | void {
    return this.#settle(() => {
      this.purge();
      return this.#writeNow();
    }, callback);
  }

  /** Writes through the writer the view set for this call; a session used on its own has none. */
  #writeNow(): Promise<void> {
    this.#assertActive();
    const writer = activeWriter;
    activeWriter = undefined;
    return writer === undefined ? Promise.resolve() : writer.saveNow(this);
  }

  /** Runs `start` and answers as koa-session does: a promise, or `callback` with an error or nothing. */
  #settle(start: () => Promise<void>, callback: ((err?: unknown) => void) | undefined): Promise<void> | void {
    let running: Promise<void>;
    try {
      running = start();
    } catch (err) {
      running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (callback === undefined) return running;
    running.then(() => callback(), callback);
  }

  /** The keys, in insertion order. */
  keys(): IterableIterator<string> {
    return this.#data.keys();
  }

  /** `[key, value]` pairs, in insertion order; each value is a copy. */
  *entries(): IterableIterator<[string, unknown]> {
    for (const key of this.#data.keys()) yield [key, this.get(key)];
  }

  /** Shows the keys and the state, never the values: a logged session must not leak its data. */
  [inspect.custom](): string {
    return `Session { keys: ${inspect([...this.#data.keys()])}, status: '${this.#status}', isNew: ${this.#isNew} }`;
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
    if (this.#status === 'unchanged') this.#status = this.#purgeWritten ? 'renewed' : 'changed';
    // After purge, new data is a new session: the backend writes it under a fresh identity.
    else if (this.#status === 'purged') this.#status = 'renewed';
  }

  /** The value at `key` itself, not a copy: what property access reads, and what it may change in place. */
  #liveGet(key: string): unknown {
    const value = this.#data.get(key);
    if (value === undefined) return undefined;
    const live = (this.#live ??= new Map());
    if (live.has(key)) return value;
    if (value instanceof RawValue) {
      const decoded = this.#decode(value, key);
      if (typeof decoded !== 'object' || decoded === null) return decoded; // nothing to change in place
      this.#data.set(key, decoded);
      live.set(key, { raw: value });
      return decoded;
    }
    if (typeof value === 'object' && value !== null) live.set(key, { snapshot: copyValue(value, key) });
    return value;
  }

  /** Property assignment: the value is kept as given (changes to it count) and checked at commit. */
  #liveSet(key: string, value: unknown): void {
    this.#assertActive();
    checkKey(key, this.#rules);
    if (value === undefined) {
      this.remove(key);
      return;
    }
    if (typeof value !== 'object' || value === null) {
      this.set(key, value);
      return;
    }
    this.#data.set(key, value);
    (this.#live ??= new Map()).set(key, { assigned: true });
    this.#touch();
  }

  /**
   * Checks every live value and compares it with what it was read from: a value whose bytes (or, when it was not
   * encoded, whose data) did not change is written as it was. Returns the entries to write; the live values stay
   * live, with what is written now as their new baseline.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for a live value that is not plain data.
   */
  #settleLive(): Map<string, unknown> {
    const live = this.#live as Map<string, Live>;
    const checked = new Map<string, unknown>();
    // Check them all before changing anything, so that a failure leaves the session as it was.
    for (const key of live.keys()) {
      try {
        checked.set(key, copyValue(this.#data.get(key), key, false, this.#rules));
      } catch (err) {
        if (err instanceof SessionError) refusedKeys.set(err, key);
        throw err;
      }
    }
    const entries = new Map(this.#data);
    let changed = false;
    for (const [key, entry] of live) {
      const value = checked.get(key);
      const same =
        entry.raw !== undefined
          ? this.#codec !== undefined && sameBytes(this.#codec.encodeValue(value), entry.raw)
          : entry.assigned !== true && isDeepStrictEqual(entry.snapshot, value);
      entries.set(key, same && entry.raw !== undefined ? entry.raw : value);
      if (!same && entry.assigned !== true) changed = true;
      live.set(key, { snapshot: value });
    }
    if (changed) this.#touch();
    return entries;
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
    setup = (session, rules, defaultMaxAge) => {
      session.#rules = rules;
      session.#defaultMaxAge = defaultMaxAge;
    };
    boundMethods = (session) => (session.#bound ??= new Map<string, unknown>());
    markSessionWritten = (session, write) => {
      session.#purgeWritten = write.status === 'purged' || (session.#purgeWritten && write.status === 'unchanged');
      session.#status = 'unchanged';
      session.#cleared = false;
    };
    liveGet = (session, key) => session.#liveGet(key);
    liveSet = (session, key, value) => session.#liveSet(key, value);
    replaceData = (session, data) => {
      session.#assertActive();
      const keys = Object.keys(data);
      // All checked before anything changes: a refused value leaves the session as it was, never half replaced.
      for (const key of keys) {
        checkKey(key, session.#rules);
        checkValue(data[key], key, session.#rules);
      }
      session.clear();
      // A key named like a member (status, get) is data all the same, reached through get(); the others stay live.
      for (const key of keys) {
        if (MEMBERS.has(key)) session.set(key, data[key]);
        else session.#liveSet(key, data[key]);
      }
    };
    finishSession = (session, stale, close) => {
      // Checked before the session closes: a live value that cannot be stored fails the commit, nothing lost.
      const entries = session.#live === undefined || session.#live.size === 0 ? session.#data : session.#settleLive();
      if (close) session.#active = false;
      if (session.#status === 'unchanged' && !stale) return undefined;
      let data: SessionRecord | undefined;
      const write: WithLazyEntries<SessionWrite> = {
        status: session.#status,
        isNew: session.#isNew,
        maxAge: session.#maxAge,
        cleared: session.#cleared,
        // Built only for a backend that asks: the cookie backend writes untouched values still encoded.
        get data() {
          return (data ??= recordOf(entries, (raw, key) => session.#decode(raw, key)));
        },
        [LAZY_ENTRIES]: session.#codec === undefined ? undefined : { codec: session.#codec, entries },
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
  return finishSession(session, stale, true);
}

/**
 * What `save()` writes now, leaving the session open; afterwards the session counts as unchanged, and changes
 * made from then on are written at the end. Internal: used by the middleware only.
 */
export function saveNow(session: Session, stale: boolean): SessionWrite | undefined {
  return finishSession(session, stale, false);
}

/**
 * `ctx.session = { ... }`: the session's data becomes `data`'s, checked whole first.
 * Internal: used by the middleware only.
 * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE`, with the session unchanged.
 */
export function replace(session: Session, data: Record<string, unknown>): void {
  replaceData(session, data);
}

/** Marks a session as written: unchanged from here on. Internal: used by the middleware only. */
export function markWritten(session: Session, write: SessionWrite): void {
  markSessionWritten(session, write);
}

/** The session key whose live value a commit refused, by the error it threw. */
const refusedKeys = new WeakMap<SessionError, string>();

/** The key a commit's refusal names, for the backend to report. Internal: used by the middleware only. */
export function refusedKey(err: unknown): string | undefined {
  return err instanceof SessionError ? refusedKeys.get(err) : undefined;
}

/** Property access on `ctx.session`, as koa-session apps and middleware (passport, koa-csrf, grant) use it. */
export type SessionView = Session & Partial<SessionData>;

/** The Session's own members: property access reaches these, never data keys of the same names. */
const MEMBERS = new Set<string | symbol>(Reflect.ownKeys(Session.prototype));

/** What a view wraps: the session, and the lifecycle its save() writes through. */
class ViewTarget {
  constructor(
    readonly session: Session,
    readonly writer: SessionWriter | undefined,
  ) {}

  /**
   * util.inspect looks this up on a view's target but calls it on the view: show the session, not this wrapper.
   */
  [inspect.custom](this: ViewTarget | SessionView): string {
    return inspect(this instanceof ViewTarget ? this.session : (this as unknown as Record<symbol, Session>)[VIEW_SESSION]);
  }
}

/** The members that write now: called through the view, they write through its lifecycle. */
const WRITING = new Set<string | symbol>(['save', 'regenerate', 'destroy']);

/** The key under which a view gives its session to ViewTarget's inspect method. */
const VIEW_SESSION = Symbol('koa-sealed-session.viewSession');

const VIEW_HANDLER: ProxyHandler<ViewTarget> = {
  get({ session, writer }, key) {
    if (key === VIEW_SESSION) return session;
    if (key === SESSION_HANDLE) return writer?.handle;
    if (typeof key === 'symbol' || MEMBERS.has(key)) {
      if (WRITING.has(key)) {
        const method = (session as unknown as Record<string, (callback?: unknown) => unknown>)[key as string] as (callback?: unknown) => unknown;
        return (callback?: unknown) => {
          activeWriter = writer;
          try {
            return callback === undefined ? method.call(session) : method.call(session, callback);
          } finally {
            activeWriter = undefined;
          }
        };
      }
      const member: unknown = Reflect.get(session, key, session);
      // Methods run on the session itself: its private state is not reachable through the proxy.
      return typeof member === 'function' && typeof key === 'string' && key !== 'constructor'
        ? boundMethod(session, key, member as (...args: unknown[]) => unknown)
        : member;
    }
    return liveGet(session, key);
  },
  set({ session }, key, value) {
    if (typeof key === 'symbol' || MEMBERS.has(key)) return Reflect.set(session, key, value, session);
    liveSet(session, key, value);
    return true;
  },
  deleteProperty({ session }, key) {
    if (typeof key === 'symbol' || MEMBERS.has(key)) return Reflect.deleteProperty(session, key);
    session.remove(key);
    return true;
  },
  has({ session }, key) {
    return (typeof key === 'string' && session.has(key)) || Reflect.has(session, key);
  },
  ownKeys({ session }) {
    return [...session.keys()];
  },
  getOwnPropertyDescriptor({ session }, key) {
    if (typeof key !== 'string' || MEMBERS.has(key) || !session.has(key)) return undefined;
    return { value: liveGet(session, key), writable: true, enumerable: true, configurable: true };
  },
  defineProperty({ session }, key, descriptor) {
    if (typeof key === 'symbol' || MEMBERS.has(key) || !('value' in descriptor)) return false;
    liveSet(session, key, descriptor.value);
    return true;
  },
  getPrototypeOf() {
    return Session.prototype;
  },
};

/** The method bound to the session, once per session and method, so `ctx.session.get === ctx.session.get`. */
function boundMethod(target: Session, key: string, method: (...args: unknown[]) => unknown): unknown {
  const methods = boundMethods(target);
  let fn = methods.get(key);
  if (fn === undefined) methods.set(key, (fn = method.bind(target)));
  return fn;
}

/** The object at `ctx.session`: the session, with its data also readable and writable as properties. */
export function viewOf(session: Session, writer?: SessionWriter): SessionView {
  return new Proxy<ViewTarget>(new ViewTarget(session, writer), VIEW_HANDLER) as unknown as SessionView;
}

function sameBytes(encoded: Uint8Array, raw: RawValue): boolean {
  const length = raw.valueEnd - raw.valueStart;
  if (encoded.byteLength !== length) return false;
  return Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).equals(raw.source.subarray(raw.valueStart, raw.valueEnd));
}

/**
 * A session for the middleware, whose `set()` also refuses what `rules` say the backend's serializer cannot carry.
 * Internal: used by the middleware only.
 */
export function createSession(stored: StoredSession | undefined, rules: ValueRules | undefined, defaultMaxAge?: number | 'session'): Session {
  const session = new Session(stored);
  setup(session, rules ?? PLAIN_DATA, defaultMaxAge);
  return session;
}

const NOT_READABLE = Symbol('not readable');

function checkKey(key: unknown, rules: ValueRules): void {
  if (typeof key !== 'string') {
    throw new SessionError('ERR_SESSION_UNSUPPORTED_VALUE', `Session keys must be strings, got a ${typeof key}.`);
  }
  if (rules.wellFormedStrings && !isWellFormed(key)) {
    throw new SessionError(
      'ERR_SESSION_UNSUPPORTED_VALUE',
      'A session key holds a lone surrogate, which this serializer (UTF-8) cannot carry: it would come back as another key.',
    );
  }
}
