import { inspect, isDeepStrictEqual } from 'node:util';
import type { SessionHandle, SessionStatus, SessionWrite, StoredSession } from './backend.js';
import { LazyData, RawValue, type EntryCodec, type LazyEntries } from '../codec/entries.js';
import { PLAIN_DATA, checkValue, copyValue, isWellFormed, type ValueRules } from '../codec/value.js';
import { SessionError } from './errors.js';
import { LIFETIME_TEXT, isLifetime } from '../policy/lifetime.js';

/** What `save()` writes through: the middleware's per-request lifecycle. */
export interface SessionWriter {
  saveNow(state: SessionState): Promise<void>;
  /** The backend's handle for this request: what `handleOf(ctx.session)` answers. */
  readonly handle: SessionHandle;
}

/** How the middleware sets a request's session up. */
export interface SessionSetup {
  /** What the backend's serializer can carry; plain data only by default. */
  readonly rules?: ValueRules | undefined;
  /** The backend's lifetime, which `maxAge` reads while the session has none of its own. */
  readonly defaultMaxAge?: number | 'session' | undefined;
  /** Where `save()` writes; a session without one (made with `new Session()`) writes nothing. */
  readonly writer?: SessionWriter | undefined;
}

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
 * The data and state of one request's session: what {@link Session} shows and the view reads and writes live, and
 * what the middleware closes and hands to the backend at commit. Internal to core/.
 */
export class SessionState {
  // Values are plain data the session owns, or RawValues: still encoded, decoded afresh on every read.
  readonly data: Map<string, unknown>;
  readonly #codec: EntryCodec | undefined;
  readonly isNew: boolean;
  readonly rules: ValueRules;
  readonly writer: SessionWriter | undefined;
  readonly #defaultMaxAge: number | 'session' | undefined;
  status: SessionStatus = 'unchanged';
  #active = true;
  // The session's own lifetime (koa-session's per-session maxAge), or undefined for the backend's.
  #maxAge: number | 'session' | undefined;
  // Set when a save() wrote a purge: values set afterwards start a new session.
  #purgeWritten = false;
  // Set by clear(): a store removes keys this request never saw too.
  #cleared = false;
  // Values handed out live by property access (koa-session's style), by key; created on first use.
  #live: Map<string, Live> | undefined;
  /** The methods property access hands out, bound to the session; kept here, not in a WeakMap, which costs GC time. */
  bound: Map<string, unknown> | undefined;

  /** @param stored - What the backend found for this request; `undefined` starts a new, empty session. */
  constructor(stored: StoredSession | undefined, setup: SessionSetup = {}) {
    this.isNew = stored === undefined;
    this.#maxAge = stored?.maxAge;
    this.rules = setup.rules ?? PLAIN_DATA;
    this.#defaultMaxAge = setup.defaultMaxAge;
    this.writer = setup.writer;
    const lazy = stored?.entries;
    this.#codec = lazy?.codec;
    // The backend hands its freshly split entries over: no copy.
    this.data = lazy === undefined ? new Map<string, unknown>() : (lazy.entries as Map<string, unknown>);
    if (stored !== undefined && lazy === undefined) {
      for (const key of Object.keys(stored.data)) this.data.set(key, stored.data[key]);
    }
  }

  get maxAge(): number | 'session' | undefined {
    return this.#maxAge ?? this.#defaultMaxAge;
  }

  setMaxAge(value: number | 'session' | undefined): void {
    this.assertActive();
    if (value !== undefined && !isLifetime(value)) {
      throw new SessionError('ERR_SESSION_INVALID_OPTION', `ctx.session.maxAge must be undefined, ${LIFETIME_TEXT}.`);
    }
    if (value === this.#maxAge) return;
    this.#maxAge = value;
    this.#touch();
  }

  get(key: string): unknown {
    const value = this.data.get(key);
    if (value === undefined) return undefined;
    return value instanceof RawValue ? this.#decode(value, key) : copyValue(value, key);
  }

  set(key: string, value: unknown): void {
    this.assertActive();
    checkKey(key, this.rules);
    if (value === undefined) {
      this.remove(key);
      return;
    }
    const stored = copyValue(value, key, false, this.rules);
    const current = this.data.get(key);
    this.#live?.delete(key);
    if (current !== undefined && (typeof stored !== 'object' || stored === null) && Object.is(this.#peek(key, current), stored)) return;
    this.data.set(key, stored);
    this.#touch();
  }

  remove(key: string): boolean {
    this.assertActive();
    this.#live?.delete(key);
    const removed = this.data.delete(key);
    if (removed) this.#touch();
    return removed;
  }

  clear(): void {
    this.assertActive();
    if (this.data.size === 0) return;
    this.#live?.clear();
    this.data.clear();
    this.#cleared = true;
    this.#touch();
  }

  purge(): void {
    this.assertActive();
    this.#live?.clear();
    this.data.clear();
    this.#maxAge = undefined;
    this.status = 'purged';
  }

  renew(options?: { readonly maxAge?: number | 'session' }): void {
    this.assertActive();
    if (options !== undefined && options !== null && 'maxAge' in options) this.setMaxAge(options.maxAge);
    this.status = 'renewed';
  }

  /** Writes through the request's writer; a session used on its own has none. */
  writeNow(): Promise<void> {
    this.assertActive();
    return this.writer === undefined ? Promise.resolve() : this.writer.saveNow(this);
  }

  /** Shows the keys and the state, never the values: a logged session must not leak its data. */
  describe(): string {
    return `Session { keys: ${inspect([...this.data.keys()])}, status: '${this.status}', isNew: ${this.isNew} }`;
  }

  /** The value at `key` itself, not a copy: what property access reads, and what it may change in place. */
  liveGet(key: string): unknown {
    const value = this.data.get(key);
    if (value === undefined) return undefined;
    const live = (this.#live ??= new Map());
    if (live.has(key)) return value;
    if (value instanceof RawValue) {
      const decoded = this.#decode(value, key);
      if (typeof decoded !== 'object' || decoded === null) return decoded; // nothing to change in place
      this.data.set(key, decoded);
      live.set(key, { raw: value });
      return decoded;
    }
    if (typeof value === 'object' && value !== null) live.set(key, { snapshot: copyValue(value, key) });
    return value;
  }

  /** Property assignment: the value is kept as given (changes to it count) and checked at commit. */
  liveSet(key: string, value: unknown): void {
    this.assertActive();
    checkKey(key, this.rules);
    if (value === undefined) {
      this.remove(key);
      return;
    }
    if (typeof value !== 'object' || value === null) {
      this.set(key, value);
      return;
    }
    this.data.set(key, value);
    (this.#live ??= new Map()).set(key, { assigned: true });
    this.#touch();
  }

  /**
   * `ctx.session = { ... }`: the data becomes `data`'s, checked whole first, so that a refused value leaves the
   * session as it was. A key named like a member of the session (`isMember`) is data all the same, set as a copy.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE`, with the session unchanged.
   */
  replace(data: Record<string, unknown>, isMember: (key: string) => boolean): void {
    this.assertActive();
    const keys = Object.keys(data);
    for (const key of keys) {
      checkKey(key, this.rules);
      checkValue(data[key], key, this.rules);
    }
    this.clear();
    for (const key of keys) {
      if (isMember(key)) this.set(key, data[key]);
      else this.liveSet(key, data[key]);
    }
  }

  /**
   * What to write: `undefined` when the session is unchanged and not stale. `close` (the end of the request)
   * refuses changes from then on; without it (`save()`), the session stays open.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` for a live value that is not plain data, before
   * anything closes: the commit fails, nothing is lost.
   */
  finish(stale: boolean, close: boolean): SessionWrite | undefined {
    const entries = this.#live === undefined || this.#live.size === 0 ? this.data : this.#settleLive();
    if (close) this.#active = false;
    if (this.status === 'unchanged' && !stale) return undefined;
    // `data` is built only for a backend that asks: the cookie backend writes untouched values still encoded.
    return new PendingWrite(
      entries,
      (raw, key) => this.#decode(raw, key),
      this.status,
      this.isNew,
      this.#maxAge,
      this.#cleared,
      this.#codec === undefined ? undefined : { codec: this.#codec, entries },
    );
  }

  /** After a `save()` wrote `write`: unchanged from here on. */
  markWritten(write: SessionWrite): void {
    this.#purgeWritten = write.status === 'purged' || (this.#purgeWritten && write.status === 'unchanged');
    this.status = 'unchanged';
    this.#cleared = false;
  }

  assertActive(): void {
    if (!this.#active) {
      throw new SessionError(
        'ERR_SESSION_INACTIVE',
        'The session was changed after its response was committed; the change would be lost. ' +
          'Change ctx.session before the session middleware returns (not in a callback that runs later).',
      );
    }
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
    if (this.status === 'unchanged') this.status = this.#purgeWritten ? 'renewed' : 'changed';
    // After purge, new data is a new session: the backend writes it under a fresh identity.
    else if (this.status === 'purged') this.status = 'renewed';
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
        checked.set(key, copyValue(this.data.get(key), key, false, this.rules));
      } catch (err) {
        if (err instanceof SessionError) refusedKeys.set(err, key);
        throw err;
      }
    }
    const entries = new Map(this.data);
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
}

/** The session key whose live value a commit refused, by the error it threw. */
const refusedKeys = new WeakMap<SessionError, string>();

/** The key a commit's refusal names, for the backend to report. */
export function refusedKey(err: unknown): string | undefined {
  return err instanceof SessionError ? refusedKeys.get(err) : undefined;
}

function sameBytes(encoded: Uint8Array, raw: RawValue): boolean {
  const length = raw.valueEnd - raw.valueStart;
  if (encoded.byteLength !== length) return false;
  return Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).equals(raw.source.subarray(raw.valueStart, raw.valueEnd));
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

/** A write the middleware hands its backend (see {@link LazyData} for why `data` is an accessor of this shape). */
class PendingWrite extends LazyData implements SessionWrite {
  constructor(
    values: ReadonlyMap<string, unknown>,
    decode: (raw: RawValue, key: string) => unknown,
    readonly status: SessionStatus,
    readonly isNew: boolean,
    readonly maxAge: number | 'session' | undefined,
    readonly cleared: boolean,
    readonly entries: LazyEntries | undefined,
  ) {
    super(values, decode);
  }
}
