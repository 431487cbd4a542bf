// Compile-only checks of the public types: `npm test` fails to build if one of these stops holding.
import Koa from 'koa';
import { CookieSessionBackend, KeyRing, session, type Session, type SessionStatus } from '../../src/index.js';

declare module '../../src/index.js' {
  interface SessionData {
    userId: string;
  }
}

const app = new Koa();
app.use(session(CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()]))));
app.use((ctx) => {
  // ctx.session is typed without a cast.
  const s: Session = ctx.session;
  const count: number | undefined = s.get<number>('counter');
  const user: string | undefined = s.get('userId');
  s.set('userId', 'ada');
  // @ts-expect-error a declared key takes its declared type
  s.set('userId', 42);
  // Property access, typed from SessionData.
  const viaProperty: string | undefined = ctx.session.userId;
  ctx.session.userId = 'grace';
  // @ts-expect-error a declared key takes its declared type by property too
  ctx.session.userId = 42;
  // @ts-expect-error a key SessionData does not declare is not a property (declare it, or use get/set)
  ctx.session.views = 1;
  ctx.session = null;
  // @ts-expect-error only null or a plain object can be assigned
  ctx.session = 5;
  void ctx.session.save().then(() => ctx.session.regenerate());
  const n: number = ctx.session.length + (ctx.session.populated ? 1 : 0);
  const _status: SessionStatus = s.status;
  // @ts-expect-error status is one of four strings
  const wrong: typeof _status = 'deleted';
  // @ts-expect-error the modes are constructors, not flags
  CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()]), { signed: true });
  ctx.body = [count, user, wrong, viaProperty, n];
});
