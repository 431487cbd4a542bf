import { expect } from 'chai';
import Koa from 'koa';
import koaSession from 'koa-session';
import request from 'supertest';
import { KeyRing, MemoryRevocationStore, MemoryStore, StoreSessionBackend, koaSessionCookies } from '../../../src/index.js';
import {
  COMBINATIONS,
  KEY_A,
  appWith,
  backendFor,
  cookieValue,
  expectSessionError,
  listen,
  manualClock,
  setCookieFor,
  setCookies,
} from '../../support/helpers.js';

const APP_KEYS = ['an old app key', 'an older app key'];
const UNTIL = new Date(Date.now() + 90 * 86_400_000);

/** The Cookie header a browser would send after the real koa-session wrote `data`, signed with `signingKey`. */
async function koaSessionCookie(
  data: Record<string, unknown>,
  signingKey = APP_KEYS[0] as string,
  maxAge = 86_400_000,
  sessionMaxAge?: number | 'session',
): Promise<string> {
  const app = new Koa();
  app.keys = [signingKey];
  app.use(koaSession({ maxAge }, app));
  app.use((ctx) => {
    Object.assign(ctx.session as object, data);
    if (sessionMaxAge !== undefined) (ctx.session as { maxAge: number | 'session' }).maxAge = sessionMaxAge;
    ctx.body = 'ok';
  });
  const res = await request(await listen(app))
    .get('/')
    .expect(200);
  return setCookies(res)
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ');
}

describe('moving from koa-session without logging anyone out', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), {
        serializer: serializer(),
        legacy: koaSessionCookies({ keys: APP_KEYS, until: UNTIL }),
      });
      const reader = appWith(backend, (ctx) => {
        ctx.body = { views: ctx.session.get('views') ?? null, isNew: ctx.session.isNew };
        if (ctx.path === '/count') ctx.session.set('views', (ctx.session.get<number>('views') ?? 0) + 1);
        if (ctx.path === '/logout') ctx.session.purge();
      });

      it("should open the real koa-session's cookie, rewrite it in this format and expire the old cookies", async () => {
        const old = await koaSessionCookie({ views: 3, user: { name: 'ada' } });
        const res = await request(await listen(reader))
          .get('/count')
          .set('Cookie', old)
          .expect(200, { views: 3, isNew: false });
        expect(backend.open(cookieValue(res))).to.deep.equal({ views: 4, user: { name: 'ada' } });
        expect(setCookieFor(res, 'koa.sess')).to.match(/^koa\.sess=; Path=\/; Max-Age=0/);
        expect(setCookieFor(res, 'koa.sess.sig')).to.match(/^koa\.sess\.sig=; Path=\/; Max-Age=0/);
      });

      it('should move a session that is only read, and accept an older app key', async () => {
        const old = await koaSessionCookie({ views: 7 }, APP_KEYS[1]);
        const res = await request(await listen(reader))
          .get('/')
          .set('Cookie', old)
          .expect(200, { views: 7, isNew: false });
        expect(backend.open(cookieValue(res))).to.deep.equal({ views: 7 });
      });

      it('should expire the old cookies on logout too', async () => {
        const old = await koaSessionCookie({ views: 1 });
        const res = await request(await listen(reader))
          .get('/logout')
          .set('Cookie', old)
          .expect(200);
        expect(setCookieFor(res, 'koa.sess')).to.match(/Max-Age=0/);
        expect(setCookieFor(res)).to.equal(undefined);
      });

      it('should refuse a forged signature, another key, and an expired koa-session cookie', async () => {
        const server = await listen(reader);
        const forged = (await koaSessionCookie({ views: 1 })).replace(
          /koa\.sess=[^;]+/,
          `koa.sess=${Buffer.from('{"views":99}').toString('base64')}`,
        );
        const foreign = await koaSessionCookie({ views: 1 }, 'somebody else');
        const expired = await koaSessionCookie({ views: 1 }, APP_KEYS[0], 1000);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        for (const cookie of [forged, foreign, expired]) {
          const res = await request(server).get('/').set('Cookie', cookie).expect(200, { views: null, isNew: true });
          expect(setCookieFor(res, 'koa.sess')).to.equal(undefined);
        }
      });

      it("should carry a session's own lifetime over from koa-session's ctx.session.maxAge", async () => {
        const lifetimes = appWith(
          backend,
          (ctx) => void (ctx.body = { maxAge: ctx.session.maxAge ?? null, views: ctx.session.get('views') ?? null }),
        );
        const server = await listen(lifetimes);
        const remembered = await koaSessionCookie({ views: 2 }, APP_KEYS[0], 86_400_000, 30 * 86_400_000);
        const res = await request(server)
          .get('/')
          .set('Cookie', remembered)
          .expect(200, { maxAge: 30 * 86_400_000, views: 2 });
        expect(setCookieFor(res)).to.include(`Max-Age=${30 * 86_400}`);
        const browser = await koaSessionCookie({ views: 3 }, APP_KEYS[0], 86_400_000, 'session');
        const moved = await request(server).get('/').set('Cookie', browser).expect(200, { maxAge: 'session', views: 3 });
        expect(setCookieFor(moved)).not.to.match(/Max-Age|Expires/);
        await request(server)
          .get('/')
          .set('Cookie', `session=${cookieValue(moved)}`)
          .expect(200, { maxAge: 'session', views: 3 });
        // koa-session records every session's lifetime: one equal to this backend's maxAge stays the backend's.
        const plain = await request(server)
          .get('/')
          .set('Cookie', await koaSessionCookie({ views: 4 }))
          .expect(200, { maxAge: 86_400_000, views: 4 });
        expect(Buffer.from(cookieValue(plain), 'base64url').readUIntBE(18, 5)).to.equal(0);
      });

      it('should prefer a cookie of this library when both are sent', async () => {
        const old = await koaSessionCookie({ views: 100 });
        const res = await request(await listen(reader))
          .get('/')
          .set('Cookie', `${old}; session=${backend.seal({ views: 5 })}`)
          .expect(200, { views: 5, isNew: false });
        expect(setCookieFor(res, 'koa.sess')).to.equal(undefined);
      });
    });
  }

  it("should open no koa-session cookie from until on, and none of a revoked user's ever again, whatever the entry's TTL", async () => {
    const clock = manualClock(Date.now());
    const until = new Date(clock.now() + 90 * 86_400_000);
    const revocations = new MemoryRevocationStore({ now: clock.now });
    const backend = backendFor('private', new KeyRing([KEY_A]), {
      now: clock.now,
      legacy: koaSessionCookies({ keys: APP_KEYS, until }),
      userKey: 'userId',
      revocations,
    });
    const server = await listen(
      appWith(backend, async (ctx) => {
        if (ctx.path === '/everywhere-out') await backend.revokeUser('alice');
        ctx.body = { user: ctx.session.get('userId') ?? null };
      }),
    );
    // koa-session's maxAge 'session': no _expire, no end of its own.
    const browserSession = await koaSessionCookie({ userId: 'alice' }, APP_KEYS[0], 86_400_000, 'session');
    const anonymous = await koaSessionCookie({ views: 1 }, APP_KEYS[0], 86_400_000, 'session');
    await request(server).get('/').set('Cookie', browserSession).expect(200, { user: 'alice' });
    await request(server).get('/everywhere-out').expect(200);
    // Past the revocation's usual life (absoluteTimeout, 30 days, and the skew): still refused, until the end.
    clock.advance(60 * 86_400_000);
    await request(server).get('/').set('Cookie', browserSession).expect(200, { user: null });
    // A freshly started server on the same store: the same.
    const restarted = backendFor('private', new KeyRing([KEY_A]), {
      now: clock.now,
      legacy: koaSessionCookies({ keys: APP_KEYS, until }),
      userKey: 'userId',
      revocations,
    });
    const again = await listen(
      appWith(restarted, (ctx) => (ctx.body = { user: ctx.session.get('userId') ?? null, views: ctx.session.get('views') ?? null })),
    );
    await request(again).get('/').set('Cookie', browserSession).expect(200, { user: null, views: null });
    await request(again).get('/').set('Cookie', anonymous).expect(200, { user: null, views: 1 });
    clock.advance(30 * 86_400_000); // past until
    await request(again).get('/').set('Cookie', anonymous).expect(200, { user: null, views: null });
  });

  it("should not move a revoked user's koa-session cookie on the store backend either, until until, however long that is", async () => {
    const clock = manualClock(Date.now());
    const until = new Date(clock.now() + 90 * 86_400_000);
    const store = new MemoryStore({ now: clock.now });
    const backend = new StoreSessionBackend(store, new KeyRing([KEY_A]), {
      now: clock.now,
      legacy: koaSessionCookies({ keys: APP_KEYS, until }),
      userKey: 'userId',
    });
    const server = await listen(
      appWith(backend, async (ctx) => {
        if (ctx.path === '/everywhere-out') await backend.revokeUser('alice');
        ctx.body = { user: ctx.session.get('userId') ?? null, views: ctx.session.get('views') ?? null };
      }),
    );
    const [phone, laptop] = [
      await koaSessionCookie({ userId: 'alice' }),
      await koaSessionCookie({ userId: 'alice', views: 2 }, APP_KEYS[0], 86_400_000, 'session'),
    ];
    const anonymous = await koaSessionCookie({ views: 1 }, APP_KEYS[0], 86_400_000, 'session');
    const moved = await request(server).get('/').set('Cookie', phone).expect(200, { user: 'alice', views: null });
    await request(server)
      .get('/everywhere-out')
      .set('Cookie', `session=${cookieValue(moved)}`)
      .expect(200);
    await request(server).get('/').set('Cookie', laptop).expect(200, { user: null, views: null });
    // Past the idle and absolute lifetimes of any session (the mark's own is until's): still not moved.
    clock.advance(60 * 86_400_000);
    await request(server).get('/').set('Cookie', laptop).expect(200, { user: null, views: null });
    await request(server).get('/').set('Cookie', anonymous).expect(200, { user: null, views: 1 });
  });

  it('should refuse options that cannot work', () => {
    expectSessionError(() => koaSessionCookies({ keys: [], until: UNTIL }), 'ERR_SESSION_INVALID_OPTION');
    expectSessionError(() => koaSessionCookies({ keys: APP_KEYS, until: UNTIL, maxAge: 1 }), 'ERR_SESSION_INVALID_OPTION');
    // until is required, a valid Date, and at most 400 days ahead.
    expectSessionError(() => koaSessionCookies({ keys: APP_KEYS } as never), 'ERR_SESSION_INVALID_OPTION');
    expectSessionError(() => koaSessionCookies({ keys: APP_KEYS, until: new Date('nope') }), 'ERR_SESSION_INVALID_OPTION');
    expectSessionError(() => koaSessionCookies({ keys: APP_KEYS, until: new Date(Date.now() + 401 * 86_400_000) }), 'ERR_SESSION_INVALID_OPTION');
    expectSessionError(() => backendFor('signed', new KeyRing([KEY_A]), { legacy: {} as never }), 'ERR_SESSION_INVALID_OPTION');
  });
});
