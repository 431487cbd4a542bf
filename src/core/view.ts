import { inspect } from 'node:util';
import type { SessionHandle } from './backend.js';
import { SessionError } from './errors.js';
import { Session, type SessionData } from './session.js';
import type { SessionState } from './session-state.js';

/** Property access on `ctx.session`, as koa-session apps and middleware (passport, koa-csrf, grant) use it. */
export type SessionView = Session & Partial<SessionData>;

/** The Session's own members: property access reaches these, never data keys of the same names. */
const MEMBERS = new Set<string | symbol>(Reflect.ownKeys(Session.prototype));

/** Whether a key names a member of the session rather than data. */
export function isMember(key: string): boolean {
  return MEMBERS.has(key);
}

/** What a view wraps: the session, and the state its data keys are read and written through. */
class ViewTarget {
  constructor(
    readonly session: Session,
    readonly state: SessionState,
  ) {}

  /**
   * util.inspect looks this up on a view's target but calls it on the view: show the session, not this wrapper.
   */
  [inspect.custom](this: ViewTarget | SessionView): string {
    return inspect(this instanceof ViewTarget ? this.session : (this as unknown as Record<symbol, ViewTarget>)[TARGET]?.session);
  }
}

// The view answers its own target under this key, to handleOf and inspect only: it is no data key and never leaves
// this module.
const TARGET = Symbol('koa-sealed-session.view');

const VIEW_HANDLER: ProxyHandler<ViewTarget> = {
  get(target, key) {
    const { session, state } = target;
    if (key === TARGET) return target;
    if (typeof key === 'symbol' || MEMBERS.has(key)) {
      const member: unknown = Reflect.get(session, key, session);
      // Methods run on the session itself: its private state is not reachable through the proxy.
      return typeof member === 'function' && typeof key === 'string' && key !== 'constructor'
        ? boundMethod(session, state, key, member as (...args: unknown[]) => unknown)
        : member;
    }
    return state.liveGet(key);
  },
  set({ session, state }, key, value) {
    if (typeof key === 'symbol') return Reflect.set(session, key, value, session);
    if (MEMBERS.has(key)) {
      // A member with a setter (maxAge) takes the value; any other would be shadowed or refuse it silently.
      if (typeof Object.getOwnPropertyDescriptor(Session.prototype, key)?.set === 'function') return Reflect.set(session, key, value, session);
      throw new SessionError(
        'ERR_SESSION_ASSIGNMENT',
        `ctx.session.${key} is the session's own, not data, and cannot be assigned. Store data under that name with ` +
          `ctx.session.set('${key}', value), and read it with get('${key}').`,
      );
    }
    state.liveSet(key, value);
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
  getOwnPropertyDescriptor({ session, state }, key) {
    if (typeof key !== 'string' || MEMBERS.has(key) || !session.has(key)) return undefined;
    return { value: state.liveGet(key), writable: true, enumerable: true, configurable: true };
  },
  defineProperty({ state }, key, descriptor) {
    if (typeof key === 'symbol' || MEMBERS.has(key) || !('value' in descriptor)) return false;
    state.liveSet(key, descriptor.value);
    return true;
  },
  getPrototypeOf() {
    return Session.prototype;
  },
};

/** The method bound to the session, once per session and method, so `ctx.session.get === ctx.session.get`. */
function boundMethod(session: Session, state: SessionState, key: string, method: (...args: unknown[]) => unknown): unknown {
  const methods = (state.bound ??= new Map<string, unknown>());
  let fn = methods.get(key);
  if (fn === undefined) methods.set(key, (fn = method.bind(session)));
  return fn;
}

/** The object at `ctx.session`: the session, with its data also readable and writable as properties. */
export function viewOf(session: Session, state: SessionState): SessionView {
  return new Proxy<ViewTarget>(new ViewTarget(session, state), VIEW_HANDLER) as unknown as SessionView;
}

/**
 * The backend handle behind a request's session (`ctx.session`), or `undefined` for anything else: how a backend
 * recognises "this request's session" in `revokeUser(user, { keep: ctx.session })`. A backend checks that the
 * handle is one of its own (its own class) before it trusts it.
 */
export function handleOf(session: unknown): SessionHandle | undefined {
  if (typeof session !== 'object' || session === null) return undefined;
  const target = (session as Record<symbol, unknown>)[TARGET];
  return target instanceof ViewTarget ? target.state.writer?.handle : undefined;
}
