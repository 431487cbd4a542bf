import { expect } from 'chai';
import type Koa from 'koa';
import request from 'supertest';
import { seal } from '../../src/crypto/envelope.js';
import { keysFor } from '../../src/crypto/key-ring.js';
import { KeyRing, type Session } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, expectSessionError, listen, manualClock, setCookieFor } from '../support/helpers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** What a version 2 envelope says of its times: expiry, creation time, and the own-lifetime field. */
function timesOf(value: string): { expiresAt: number; createdAt: number; lifetime: number } {
  const envelope = Buffer.from(value, 'base64url');
  return { expiresAt: envelope.readUIntBE(6, 6), createdAt: envelope.readUIntBE(12, 6), lifetime: envelope.readUIntBE(18, 5) };
}

/** ctx.session as untyped koa-session code sees it. */
const sessionOf = (ctx: Koa.Context) => ctx.session as unknown as Session & Record<string, unknown>;

// koa-session's `ctx.session.maxAge`: a lifetime for this one session, kept across requests.
describe('a session with its own lifetime (ctx.session.maxAge, renew({ maxAge }))', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const clock = manualClock();
      // absoluteTimeout beyond the 30 days given below, so that they show as they are (the cap: cookie-revocation.test.ts).
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: HOUR, now: clock.now, absoluteTimeout: 60 * DAY });
      const app = appWith(backend, (ctx) => {
        const session = sessionOf(ctx);
        if (ctx.path === '/remember') session.maxAge = 30 * DAY;
        if (ctx.path === '/browser') session.maxAge = 'session';
        if (ctx.path === '/login') session.renew({ maxAge: 7 * DAY });
        if (ctx.path === '/renew') session.renew();
        if (ctx.path === '/default') session.maxAge = undefined;
        if (ctx.path === '/logout') ctx.session = null;
        if (ctx.path === '/count') session.views = ((session.views as number | undefined) ?? 0) + 1;
        ctx.body = { maxAge: session.maxAge ?? null, views: session.views ?? null };
      });

      it("should read the backend's maxAge until the session gets its own, then keep that one across requests", async () => {
        const server = await listen(app);
        await request(server).get('/count').expect(200, { maxAge: HOUR, views: 1 });
        const first = await request(server)
          .get('/remember')
          .expect(200, { maxAge: 30 * DAY, views: null });
        expect(setCookieFor(first)).to.include(`Max-Age=${(30 * DAY) / 1000}`);
        const cookie = `session=${cookieValue(first)}`;
        expect(timesOf(cookieValue(first))).to.deep.include({ expiresAt: clock.now() + 30 * DAY, lifetime: 30 * DAY });
        // Later writes keep it: a day on (long past the backend's hour), a change writes another 30 days.
        clock.advance(DAY);
        const later = await request(server)
          .get('/count')
          .set('Cookie', cookie)
          .expect(200, { maxAge: 30 * DAY, views: 1 });
        expect(setCookieFor(later)).to.include(`Max-Age=${(30 * DAY) / 1000}`);
        expect(timesOf(cookieValue(later)).expiresAt).to.equal(clock.now() + 30 * DAY);
        // Back to the backend's.
        const reset = await request(server)
          .get('/default')
          .set('Cookie', `session=${cookieValue(later)}`)
          .expect(200, { maxAge: HOUR, views: 1 });
        expect(setCookieFor(reset)).to.include(`Max-Age=${HOUR / 1000}`);
        expect(timesOf(cookieValue(reset))).to.deep.include({ expiresAt: clock.now() + HOUR, lifetime: 0 });
      });

      it("should write a browser-session cookie for maxAge 'session', sealed for a day, and keep writing it so", async () => {
        const server = await listen(app);
        const res = await request(server).get('/browser').expect(200, { maxAge: 'session', views: null });
        expect(setCookieFor(res)).not.to.match(/Max-Age|Expires/);
        expect(timesOf(cookieValue(res)).expiresAt).to.equal(clock.now() + DAY);
        const next = await request(server)
          .get('/count')
          .set('Cookie', `session=${cookieValue(res)}`)
          .expect(200, { maxAge: 'session', views: 1 });
        expect(setCookieFor(next)).not.to.match(/Max-Age|Expires/);
      });

      it('should give the session its own lifetime with renew({ maxAge }), keep it through renew(), and drop it on ctx.session = null', async () => {
        const server = await listen(app);
        const login = await request(server)
          .get('/login')
          .expect(200, { maxAge: 7 * DAY, views: null });
        expect(setCookieFor(login)).to.include(`Max-Age=${(7 * DAY) / 1000}`);
        const renewed = await request(server)
          .get('/renew')
          .set('Cookie', `session=${cookieValue(login)}`)
          .expect(200, { maxAge: 7 * DAY, views: null });
        expect(timesOf(cookieValue(renewed)).lifetime).to.equal(7 * DAY);
        const out = await request(server)
          .get('/logout')
          .set('Cookie', `session=${cookieValue(renewed)}`)
          .expect(200);
        expect(setCookieFor(out)).to.match(/Max-Age=0/);
        const after = await request(server)
          .get('/count')
          .set('Cookie', `session=${cookieValue(renewed)}`)
          .expect(200);
        expect(after.body).to.deep.equal({ maxAge: 7 * DAY, views: 1 }); // the old cookie still opens: stateless
      });

      it('should refuse a lifetime a cookie cannot have, changing nothing', async () => {
        const seen: unknown[] = [];
        const strict = appWith(backend, (ctx) => {
          for (const value of [0, 999, 1500.5, -1, 401 * DAY, '1d', null, Number.NaN]) {
            seen.push(expectSessionError(() => ((ctx.session as { maxAge: unknown }).maxAge = value), 'ERR_SESSION_INVALID_OPTION').message);
            expectSessionError(() => ctx.session.renew({ maxAge: value as number }), 'ERR_SESSION_INVALID_OPTION');
          }
          ctx.body = { maxAge: ctx.session.maxAge ?? null, status: ctx.session.status };
        });
        await request(await listen(strict))
          .get('/')
          .expect(200, { maxAge: HOUR, status: 'unchanged' });
        expect(seen[0]).to.match(/ctx\.session\.maxAge must be undefined, 'session' or a whole number of milliseconds from 1000/);
      });

      it('should not count setting the lifetime it already has as a change', async () => {
        const token = await request(await listen(app))
          .get('/remember')
          .then((res) => cookieValue(res));
        const same = appWith(backend, (ctx) => {
          ctx.session.maxAge = 30 * DAY;
          ctx.body = ctx.session.status;
        });
        const res = await request(await listen(same))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, 'unchanged');
        expect(setCookieFor(res)).to.equal(undefined);
      });

      it('should keep opening a cookie sealed for its own lifetime beyond the backend maxAge, and stop once that lifetime passed', async () => {
        const token = await request(await listen(app))
          .get('/remember')
          .then((res) => cookieValue(res));
        clock.advance(29 * DAY);
        expect(backend.open(token)).to.deep.equal({});
        clock.advance(DAY);
        expect(backend.open(token)).to.equal(undefined);
      });

      it('should not open a correctly sealed cookie whose own lifetime no session can have', () => {
        const now = clock.now();
        const payload = serializer().serialize({ a: 1 });
        const sealed = (maxAge: number | 'session') =>
          seal(mode, keysFor(new KeyRing([KEY_A]), 'session'), serializer().id, { expiresAt: now + HOUR, createdAt: now, maxAge }, payload).toString(
            'base64url',
          );
        expect(backend.open(sealed(2 * HOUR))).to.deep.equal({ a: 1 });
        expect(backend.open(sealed('session'))).to.deep.equal({ a: 1 });
        for (const maxAge of [2, 999, 401 * DAY]) expect(backend.open(sealed(maxAge)), String(maxAge)).to.equal(undefined);
      });

      it('should renew on the session’s own half lifetime with autoRenew', async () => {
        const renewing = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: HOUR, now: clock.now, autoRenew: true });
        const reader = appWith(renewing, (ctx) => {
          if (ctx.path === '/remember') ctx.session.maxAge = 10 * DAY;
          ctx.body = String(ctx.session.maxAge);
        });
        const server = await listen(reader);
        const token = cookieValue(await request(server).get('/remember').expect(200));
        clock.advance(4 * DAY); // far beyond the backend's half hour, within the session's 5 days
        expect(
          setCookieFor(
            await request(server)
              .get('/')
              .set('Cookie', `session=${token}`)
              .expect(200, String(10 * DAY)),
          ),
        ).to.equal(undefined);
        clock.advance(2 * DAY);
        const renewed = await request(server)
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, String(10 * DAY));
        expect(timesOf(cookieValue(renewed))).to.deep.include({ expiresAt: clock.now() + 10 * DAY, lifetime: 10 * DAY });
      });
    });
  }
});

// Sealed by the version 1 format (0.x) with KEY_A at 2026-01-01 for a day: { user: 'ada', n: 42, tags: ['x', 'y'] }.
const V1 = {
  'signed + json': 'AcM9IeABAZt8AQQAeyJ1c2VyIjoiYWRhIiwibiI6NDIsInRhZ3MiOlsieCIsInkiXX2sO9cRWZS3j22mdYDLvAF8tZCp4UJjKDEtMvv9yRYrxw',
  'signed + msgpack': 'AcM9IeACAZt8AQQAg6R1c2Vyo2FkYaFuKqR0YWdzkqF4oXlw7wOLXm2Cn8SjuT935tOornQPmA9b6QifVzGV9OpiYQ',
  'private + json': 'AsM9IeABAZt8AQQAqWTzg1y-AjYAd3wgZ9thTmTwxRdrBBbGGLRqBoFuWucCTFaSjVaRajRDTWquKrvTblP10TDNparVgnR8N_CxSpr7',
  'private + msgpack': 'AsM9IeACAZt8AQQArv1zpy4utSJgUsjfsF44pcZn1-J4soljgYibPN5azA9fnSn9DRBdqyfL6afrCkcJmnyY',
} as Record<string, string>;

describe('the creation time sealed in a cookie (format version 2)', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    it(`should rewrite a version 1 cookie that is only read as version 2, begun when first seen (${label})`, async () => {
      const clock = manualClock();
      clock.advance(HOUR);
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), now: clock.now });
      const server = await listen(appWith(backend, (ctx) => void (ctx.body = ctx.session.get('user'))));
      const res = await request(server).get('/').set('Cookie', `session=${V1[label]}`).expect(200, 'ada');
      const token = cookieValue(res);
      expect(Buffer.from(token, 'base64url')[0]).to.equal(mode === 'signed' ? 0x21 : 0x22);
      expect(timesOf(token)).to.deep.equal({ createdAt: clock.now(), expiresAt: clock.now() + DAY, lifetime: 0 });
      expect(backend.open(token)).to.deep.equal({ user: 'ada', n: 42, tags: ['x', 'y'] });
      // Once rewritten, a read writes nothing.
      expect(setCookieFor(await request(server).get('/').set('Cookie', `session=${token}`).expect(200, 'ada'))).to.equal(undefined);
    });

    it(`should keep it across changes and re-seals, and start it again on renew() (${label})`, async () => {
      const clock = manualClock();
      const began = clock.now();
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), now: clock.now, autoRenew: true });
      const server = await listen(
        appWith(backend, (ctx) => {
          if (ctx.path === '/renew') ctx.session.renew();
          const n = ctx.session.get<number>('n') ?? 0;
          if (ctx.path === '/count') ctx.session.set('n', n + 1);
          ctx.body = 'ok';
        }),
      );
      let token = cookieValue(await request(server).get('/count'));
      expect(timesOf(token).createdAt).to.equal(began);
      clock.advance(HOUR);
      token = cookieValue(await request(server).get('/count').set('Cookie', `session=${token}`));
      expect(timesOf(token).createdAt).to.equal(began);
      clock.advance(20 * HOUR); // autoRenew's re-seal
      token = cookieValue(await request(server).get('/').set('Cookie', `session=${token}`));
      expect(timesOf(token)).to.deep.include({ createdAt: began, expiresAt: clock.now() + DAY });
      token = cookieValue(await request(server).get('/renew').set('Cookie', `session=${token}`));
      expect(timesOf(token).createdAt).to.equal(clock.now());
    });
  }
});
