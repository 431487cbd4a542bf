import { expect } from 'chai';
import Koa from 'koa';
import mount from 'koa-mount';
import request from 'supertest';
import { KeyRing, session } from '../../src/index.js';
import { KEY_A, KEY_B, backendFor, cookieValue, listen, setCookieFor } from '../support/helpers.js';

describe('two session() middlewares in one app', () => {
  const sid = backendFor('private', new KeyRing([KEY_A]), { name: 'sid' });
  const prefs = backendFor('signed', new KeyRing([KEY_B]), { name: 'prefs' });
  const sidCookie = sid.seal({ userId: 'ada' });
  // Client-readable, so the client may well have written this itself: it must never pass for the private session.
  const prefsCookie = prefs.seal({ userId: 'mallory', theme: 'dark' });

  /** Outer app: the private session, checked after next(); `inner` is what runs downstream of it. */
  function outerApp(inner: Koa.Middleware): { app: Koa; seen: Record<string, unknown> } {
    const seen: Record<string, unknown> = {};
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx, next) => {
      await next();
      seen.upstream = ctx.session.get('userId');
    });
    app.use(session(sid));
    app.use(async (ctx, next) => {
      seen.before = ctx.session.get('userId');
      await next();
      seen.after = ctx.session.get('userId');
      ctx.session.set('visits', 1);
    });
    app.use(inner);
    return { app, seen };
  }

  it('should give the outer middleware its own session before and after next(), and the inner one downstream of it', async () => {
    let inner: unknown;
    const { app, seen } = outerApp(
      mount(
        '/prefs',
        new Koa().use(session(prefs)).use((ctx) => {
          inner = ctx.session.get('userId');
          ctx.session.set('theme', 'light');
          ctx.body = 'ok';
        }),
      ),
    );
    const res = await request(await listen(app))
      .get('/prefs')
      .set('Cookie', `sid=${sidCookie}; prefs=${prefsCookie}`)
      .expect(200, 'ok');
    expect(seen).to.deep.equal({ before: 'ada', after: 'ada', upstream: 'ada' });
    expect(inner).to.equal('mallory');
    // Each session was written to its own cookie, with its own change.
    expect(sid.open(cookieValue(res, 'sid'))).to.deep.equal({ userId: 'ada', visits: 1 });
    expect(prefs.open(cookieValue(res, 'prefs'))).to.deep.equal({ userId: 'mallory', theme: 'light' });
  });

  it('should restore the outer session when the inner part throws', async () => {
    const { app, seen } = outerApp(
      mount(
        '/prefs',
        new Koa().use(session(prefs)).use((ctx) => {
          ctx.session.get('theme');
          ctx.throw(400);
        }),
      ),
    );
    app.middleware.splice(2, 0, async (ctx, next) => {
      try {
        await next();
      } catch {
        seen.caught = ctx.session.get('userId');
        ctx.status = 400;
      }
    });
    await request(await listen(app))
      .get('/prefs')
      .set('Cookie', `sid=${sidCookie}; prefs=${prefsCookie}`)
      .expect(400);
    expect(seen.caught).to.equal('ada');
  });

  it('should leave requests outside the mount with the outer session alone', async () => {
    const { app, seen } = outerApp(
      mount(
        '/prefs',
        new Koa().use(session(prefs)).use((ctx) => void (ctx.body = 'prefs')),
      ),
    );
    app.use((ctx) => void (ctx.body = 'home'));
    const res = await request(await listen(app))
      .get('/')
      .set('Cookie', `sid=${sidCookie}; prefs=${prefsCookie}`)
      .expect(200, 'home');
    expect(seen).to.deep.equal({ before: 'ada', after: 'ada', upstream: 'ada' });
    expect(setCookieFor(res, 'prefs')).to.equal(undefined);
  });
});
