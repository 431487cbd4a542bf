// Compile-only checks of the public types: `npm test` fails to build if one of these stops holding.
import Koa from 'koa';
import { CookieSessionBackend, KeyRing, session, type Session, type SessionStatus } from '../src/index.js';

declare module '../src/index.js' {
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
  // @ts-expect-error ctx.session is read-only
  ctx.session = s;
  const status: SessionStatus = s.status;
  // @ts-expect-error status is one of four strings
  const wrong: typeof status = 'deleted';
  // @ts-expect-error the modes are constructors, not flags
  CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()]), { signed: true });
  ctx.body = [count, user, wrong];
});
