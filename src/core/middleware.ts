import type { Context, Middleware, Next } from 'koa';
import type { SessionBackend, SessionHandle } from './backend.js';
import { SessionError } from './errors.js';
import { checkOptionNames, invalidOption } from './options.js';
import { Session } from './session.js';
import { SessionState, refusedKey, type SessionWriter } from './session-state.js';
import { isMember, viewOf, type SessionView } from './view.js';

declare module 'koa' {
  interface ExtendableContext {
    /**
     * This request's session, loaded on first access. Installed by the `session()` middleware. Its methods and,
     * as in koa-session, its data as properties. Assign `null` to end it (as `purge()`), or a plain object to
     * replace its data.
     */
    get session(): SessionView;
    set session(value: SessionView | Record<string, unknown> | null);
  }
}

/** Options of {@link session}. */
export interface SessionMiddlewareOptions {
  /**
   * Also write the session when downstream middleware throws. By default a request that fails leaves the
   * stored session as it was, as a transaction would. Koa's own error handler drops every header of a failed
   * response, so this matters only when an upstream middleware turns the error into a response.
   * @default false
   */
  readonly commitOnError?: boolean;
}

/**
 * The session middleware: puts a {@link Session} on `ctx.session` and stores it through `backend` once the
 * downstream middleware has finished.
 *
 * The session is loaded on first access: a request that never touches `ctx.session` costs no decoding and
 * writes no cookie. The backend is asked to write only when the session changed, was renewed or purged, or
 * was stored in an older format or with a retired key. A failure to write (a session too large for its
 * cookie, say) makes the response a 500 and leaves the client's stored session as it was.
 *
 * @example
 * ```ts
 * app.use(session(CookieSessionBackend.signed(new KeyRing([key]))));
 * app.use((ctx) => {
 *   const count = ctx.session.get<number>('counter') ?? 0;
 *   ctx.session.set('counter', count + 1);
 *   ctx.body = String(count);
 * });
 * ```
 */
export function session(backend: SessionBackend, options: SessionMiddlewareOptions = {}): Middleware {
  if (isKoaApp(backend) || isKoaApp(options)) {
    throw new SessionError(
      'ERR_SESSION_INVALID_OPTION',
      "session() takes a backend and options, not the Koa app (koa-session's session(config, app) order does not " +
        'apply): app.use(session(CookieSessionBackend.private(keyRing), { ... })).',
    );
  }
  if (typeof backend !== 'object' || backend === null || typeof backend.load !== 'function') {
    throw invalidOption('session', 'backend', 'a SessionBackend, such as CookieSessionBackend.signed(keyRing)');
  }
  checkOptionNames('session', options, ['commitOnError']);
  const commitOnError = options.commitOnError ?? false;
  if (typeof commitOnError !== 'boolean') throw invalidOption('session', 'commitOnError', 'a boolean');

  return async function sessionMiddleware(ctx: Context, next: Next): Promise<void> {
    const loading = backend.load(ctx);
    // A synchronous backend (the cookie one) costs no extra turn of the event loop.
    const handle = typeof (loading as PromiseLike<SessionHandle>).then === 'function' ? await loading : (loading as SessionHandle);
    const lifecycle = new Lifecycle(handle);
    // Koa's contexts share their app's prototype; a bare object (a test's stand-in) gets the accessor itself.
    const proto = Object.getPrototypeOf(ctx) as object | null;
    installAccessor(proto === null || proto === Object.prototype ? ctx : proto);
    const slot = ctx as unknown as Record<symbol, Lifecycle | undefined>;
    // With a second session() downstream (a mounted sub-app, say), code below it sees its session; once it
    // returns, code around this one sees this one's session again, never the other's.
    const outer = slot[LIFECYCLE];
    slot[LIFECYCLE] = lifecycle;
    try {
      await next();
    } catch (err) {
      if (commitOnError) {
        try {
          await lifecycle.commit();
        } catch (commitError) {
          // The request's own error goes on to the app; this one is reported beside it.
          ctx.app?.emit('error', commitError, ctx);
        }
      }
      throw err;
    } finally {
      // The outermost one stays: middleware upstream of it can still read the session, as it always could.
      if (outer !== undefined) slot[LIFECYCLE] = outer;
    }
    await lifecycle.commit();
  };
}

function isKoaApp(value: unknown): boolean {
  const app = value as { use?: unknown; callback?: unknown; middleware?: unknown } | null;
  return (
    typeof app === 'object' && app !== null && typeof app.use === 'function' && typeof app.callback === 'function' && Array.isArray(app.middleware)
  );
}

const LIFECYCLE = Symbol('koa-sealed-session.lifecycle');
const withAccessor = new WeakSet<object>();

/**
 * Defines `ctx.session` once on the app's context prototype, reading the request's own lifecycle: cheaper per
 * request than defining a property on every context.
 */
function installAccessor(target: object): void {
  if (withAccessor.has(target)) return;
  withAccessor.add(target);
  Object.defineProperty(target, 'session', {
    configurable: true,
    enumerable: true,
    get(this: Record<symbol, Lifecycle | undefined>) {
      return this[LIFECYCLE]?.session;
    },
    set(this: Record<symbol, Lifecycle | undefined>, value: unknown) {
      const lifecycle = this[LIFECYCLE];
      const view = lifecycle?.session;
      // koa-session's ways: null ends the session, a plain object replaces its data.
      if (view !== undefined && value === null) {
        view.purge();
        return;
      }
      if (view !== undefined && value === view) return;
      if (lifecycle !== undefined && typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
        lifecycle.replace(value as Record<string, unknown>);
        return;
      }
      throw new SessionError(
        'ERR_SESSION_ASSIGNMENT',
        'ctx.session can be set to null (to end the session) or to a plain object (to replace its data), nothing ' +
          'else. Use ctx.session.set() and remove() to change it, clear() to empty it, or purge() to end it.',
      );
    },
  });
}

/** One request's session from load to commit, apart from the user-facing {@link Session}. */
class Lifecycle implements SessionWriter {
  #state: SessionState | undefined;
  #view: SessionView | undefined;
  #stale = false;
  #committed = false;

  constructor(readonly handle: SessionHandle) {}

  get session(): SessionView {
    if (this.#view === undefined) {
      const stored = this.handle.read();
      this.#stale = stored?.stale ?? false;
      // The backend says what its serializer can carry, so that set() refuses what would not come back.
      const state = new SessionState(stored, { rules: this.handle.valueRules, defaultMaxAge: this.handle.maxAge, writer: this });
      this.#state = state;
      this.#view = viewOf(new Session(state), state);
      // Touched only after the commit: hand out a session that refuses changes rather than losing them.
      if (this.#committed) state.finish(false, true);
    }
    return this.#view;
  }

  /** `ctx.session = { ... }`. */
  replace(data: Record<string, unknown>): void {
    void this.session; // loaded first
    (this.#state as SessionState).replace(data, isMember);
  }

  /** `save()`: writes what the session holds now; the end of the request writes again only what changes later. */
  async saveNow(state: SessionState): Promise<void> {
    const change = this.#refusing(() => state.finish(this.#stale, false));
    if (change === undefined) return;
    await this.handle.write(change);
    this.#stale = false;
    state.markWritten(change);
  }

  async commit(): Promise<void> {
    if (this.#committed) return;
    this.#committed = true;
    const state = this.#state;
    if (state === undefined) return;
    const change = this.#refusing(() => state.finish(this.#stale, true));
    if (change !== undefined) await this.handle.write(change);
  }

  /** Runs a commit step; a value it refuses is told to the backend, which reports it, before the error goes on. */
  #refusing<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      if (err instanceof SessionError) this.handle.refused?.(err.code, refusedKey(err));
      throw err;
    }
  }
}
