import { inspect } from 'node:util';
import type { SessionStatus, StoredSession } from './backend.js';
import type { SessionRecord } from '../codec/serializer.js';
import { define } from '../codec/value.js';
import { SessionState } from './session-state.js';
import { SessionError } from './errors.js';

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

/**
 * The session of one request, at `ctx.session`.
 *
 * Through `get` and `set`, values are copies: mutating an object you got or set changes nothing until you call
 * `set` again. Read as properties of `ctx.session` (koa-session's style), values are live: changes made in place are
 * written at commit, when their bytes changed. Only plain data is stored (see the docs' value table).
 */
export class Session {
  // Everything the session holds and does lives in its state, which the middleware and the view share.
  readonly #state: SessionState;

  /** @param stored - What the backend found for this request; `undefined` starts a new, empty session. */
  constructor(stored?: StoredSession);
  /** @internal The middleware's: a session over its request's state. */
  constructor(state: SessionState);
  constructor(source?: StoredSession | SessionState) {
    this.#state = source instanceof SessionState ? source : new SessionState(source);
  }

  /** True when the request carried no valid session: it was missing, expired, tampered with or unreadable. */
  get isNew(): boolean {
    return this.#state.isNew;
  }

  /** What this request did to the session so far. */
  get status(): SessionStatus {
    return this.#state.status;
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
    return this.#state.maxAge;
  }

  set maxAge(value: number | 'session' | undefined) {
    this.#state.setMaxAge(value);
  }

  /** Number of keys. */
  get size(): number {
    return this.#state.data.size;
  }

  /** Number of keys, as koa-session names it. */
  get length(): number {
    return this.#state.data.size;
  }

  /** Whether the session holds any key (koa-session's `populated`). */
  get populated(): boolean {
    return this.#state.data.size > 0;
  }

  /** A copy of the value at `key`, or `undefined`. */
  get<K extends Key>(key: K): SessionData[K] | undefined;
  get<T = unknown>(key: string): T | undefined;
  get(key: string): unknown {
    return this.#state.get(key);
  }

  /**
   * Stores a copy of `value` at `key`. Setting `undefined` removes the key; setting a primitive equal to the
   * current one is not a change.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` when `value` is not plain data.
   */
  set<K extends string>(key: K, value: K extends Key ? SessionData[K] | undefined : unknown): void {
    this.#state.set(key, value);
  }

  /** Whether `key` holds a value. */
  has(key: string): boolean {
    return this.#state.data.has(key);
  }

  /** Removes `key`; returns whether it was there. */
  remove(key: string): boolean {
    return this.#state.remove(key);
  }

  /** Removes every key. The session goes on (the cookie is rewritten, empty); use `purge()` to end it. */
  clear(): void {
    this.#state.clear();
  }

  /**
   * Ends the session: its data and its own lifetime are dropped and the response expires the cookie. Setting
   * values afterwards starts a fresh session, written as if renewed.
   */
  purge(): void {
    this.#state.purge();
  }

  /**
   * Issues a new cookie for the same data, with a fresh lifetime (and, for a server-side store, a new id: call it
   * after login to prevent session fixation). It begins a new session: its creation time is now.
   * @param options - `maxAge`: this session's own lifetime from now on (remember me), as setting
   * {@link Session.maxAge} gives it; without it, the session keeps the lifetime it had.
   * @throws {@link SessionError} `ERR_SESSION_INVALID_OPTION` for a `maxAge` that `Session.maxAge` refuses.
   */
  renew(options?: { readonly maxAge?: number | 'session' }): void {
    this.#state.renew(options);
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
    return settle(() => this.#state.writeNow(), callback);
  }

  /**
   * `renew()`, then `save()`: a new cookie (and, for a server-side store, a new id) at once. The data is kept, as
   * koa-session keeps it, so a `returnTo`, a CSRF secret or a flash message survives login. passport calls it at
   * login and logout.
   */
  regenerate(): Promise<void>;
  regenerate(callback: (err?: unknown) => void): void;
  regenerate(callback?: (err?: unknown) => void): Promise<void> | void {
    return settle(() => {
      this.#state.renew();
      return this.#state.writeNow();
    }, callback);
  }

  /** `purge()`, then `save()`: ends the session now (express-session's `destroy`). */
  destroy(): Promise<void>;
  destroy(callback: (err?: unknown) => void): void;
  destroy(callback?: (err?: unknown) => void): Promise<void> | void {
    return settle(() => {
      this.#state.purge();
      return this.#state.writeNow();
    }, callback);
  }

  /**
   * Flash messages, for the request after this one (post/redirect/get). `flash(type, message)` queues a message;
   * `flash(type)` returns the queued messages of that type, oldest first, and removes them; `flash()` returns
   * every type's and removes them all. Messages are kept in the session under {@link FLASH_KEY} (connect-flash's
   * layout: an object of arrays), as plain data under the usual value rules; a request that calls none of these
   * writes nothing for them, and one that finds nothing queued writes nothing either.
   * @throws {@link SessionError} `ERR_SESSION_UNSUPPORTED_VALUE` when `message` is not plain data.
   */
  flash(type: string, message: unknown): void;
  flash<T = unknown>(type: string): T[];
  flash<T = unknown>(): Record<string, T[]>;
  flash(type?: string, ...message: unknown[]): unknown {
    const queued = queueOf(this.#state.get(FLASH_KEY));
    if (type === undefined) {
      // Nothing to remove is no change: reading an empty queue writes nothing.
      if (this.#state.data.has(FLASH_KEY)) this.#state.remove(FLASH_KEY);
      return queued;
    }
    if (typeof type !== 'string')
      throw new SessionError('ERR_SESSION_UNSUPPORTED_VALUE', "flash(type, message) takes the message's type as a string, such as 'notice'.");
    const messages = Object.hasOwn(queued, type) ? (queued[type] as unknown[]) : [];
    if (message.length > 0) {
      define(queued, type, [...messages, message[0]]);
      this.#state.set(FLASH_KEY, queued);
      return undefined;
    }
    if (messages.length === 0) return [];
    delete queued[type];
    if (Object.keys(queued).length === 0) this.#state.remove(FLASH_KEY);
    else this.#state.set(FLASH_KEY, queued);
    return messages;
  }

  /** The keys, in insertion order. */
  keys(): IterableIterator<string> {
    return this.#state.data.keys();
  }

  /** `[key, value]` pairs, in insertion order; each value is a copy. */
  *entries(): IterableIterator<[string, unknown]> {
    for (const key of this.#state.data.keys()) yield [key, this.#state.get(key)];
  }

  /** Shows the keys and the state, never the values: a logged session must not leak its data. */
  [inspect.custom](): string {
    return this.#state.describe();
  }

  /** A copy of the data as a plain object. */
  toJSON(): SessionRecord {
    const record: SessionRecord = {};
    for (const key of this.#state.data.keys()) define(record, key, this.#state.get(key));
    return record;
  }
}

/** The session key that holds the flash messages (as connect-flash and koa-connect-flash keep them). */
export const FLASH_KEY = 'flash';

/** The flash queue as stored, each type's messages an array; anything else stored there counts as nothing queued. */
function queueOf(stored: unknown): Record<string, unknown[]> {
  const queue: Record<string, unknown[]> = {};
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return queue;
  for (const [type, messages] of Object.entries(stored)) if (Array.isArray(messages) && messages.length > 0) define(queue, type, messages);
  return queue;
}

/** Runs `start` and answers as koa-session does: a promise, or `callback` with an error or nothing. */
function settle(start: () => Promise<void>, callback: ((err?: unknown) => void) | undefined): Promise<void> | void {
  let running: Promise<void>;
  try {
    running = start();
  } catch (err) {
    running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  if (callback === undefined) return running;
  running.then(() => callback(), callback);
}
