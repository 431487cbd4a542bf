import { expect } from 'chai';
import request from 'supertest';
import { BROWSER_SESSION_LIFETIME_MS, CLOCK_SKEW_MS, KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor } from '../support/helpers.js';

describe('expiry', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      it('should stop opening a copied cookie once maxAge has passed, even if the client keeps sending it', async () => {
        const clock = manualClock();
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: 60_000, now: clock.now });
        const server = await listen(appWith(backend));
        const first = await request(server).get('/').expect(200, '0');
        const token = cookieValue(first);
        clock.advance(59_999);
        await request(server).get('/').set('Cookie', `session=${token}`).expect(200, '1');
        clock.advance(1);
        await request(server).get('/').set('Cookie', `session=${token}`).expect(200, '0');
        expect(backend.open(token)).to.equal(undefined);
      });

      it('should refuse a cookie sealed under a longer maxAge once maxAge is shortened, allowing only CLOCK_SKEW_MS', async () => {
        const clock = manualClock();
        const ring = new KeyRing([KEY_A]);
        const long = backendFor(mode, ring, { serializer: serializer(), maxAge: 400 * 86_400_000, now: clock.now });
        const hour = backendFor(mode, ring, { serializer: serializer(), maxAge: 3_600_000, now: clock.now });
        const token = long.seal({ counter: 1 });
        expect(long.open(token)).to.deep.equal({ counter: 1 });
        expect(hour.open(token)).to.equal(undefined);
        await request(await listen(appWith(hour)))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, '0');
        // A server whose clock runs up to a minute ahead seals cookies that the others still open.
        const ahead = backendFor(mode, ring, { serializer: serializer(), maxAge: 3_600_000, now: () => clock.now() + CLOCK_SKEW_MS });
        expect(hour.open(ahead.seal({ counter: 2 }))).to.deep.equal({ counter: 2 });
        const further = backendFor(mode, ring, { serializer: serializer(), maxAge: 3_600_000, now: () => clock.now() + CLOCK_SKEW_MS + 1 });
        expect(hour.open(further.seal({ counter: 3 }))).to.equal(undefined);
      });

      it('should give a browser-session cookie no Expires but a sealed expiry of one day', async () => {
        const clock = manualClock();
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: 'session', now: clock.now });
        const server = await listen(appWith(backend));
        const res = await request(server).get('/').expect(200);
        const line = setCookieFor(res) ?? '';
        expect(line).not.to.match(/Expires|Max-Age/i);
        const token = cookieValue(res);
        clock.advance(BROWSER_SESSION_LIFETIME_MS - 1);
        expect(backend.open(token)).to.deep.equal({ counter: 1 });
        clock.advance(1);
        expect(backend.open(token)).to.equal(undefined);
      });
    });
  }

  it('should write Max-Age and Expires from maxAge, defaulting to one day', async () => {
    const clock = manualClock(Date.UTC(2026, 0, 1));
    const server = await listen(appWith(backendFor('signed', new KeyRing([KEY_A]), { now: clock.now })));
    const line = setCookieFor(await request(server).get('/')) ?? '';
    expect(line).to.contain('; Max-Age=86400; Expires=Fri, 02 Jan 2026 00:00:00 GMT');
  });

  describe('with autoRenew', () => {
    const reader = (ctx: { session: { get(key: string): unknown }; body: unknown }) => void (ctx.body = String(ctx.session.get('counter')));

    it('should renew a session read after half its lifetime, once, and keep an active user signed in', async () => {
      const clock = manualClock();
      const backend = backendFor('signed', new KeyRing([KEY_A]), { maxAge: 600_000, autoRenew: true, now: clock.now });
      const server = await listen(appWith(backend, reader));
      const first = backend.seal({ counter: 1 });
      clock.advance(299_000);
      expect(setCookieFor(await request(server).get('/').set('Cookie', `session=${first}`).expect(200, '1'))).to.equal(undefined);
      clock.advance(2_000);
      const renewed = cookieValue(await request(server).get('/').set('Cookie', `session=${first}`).expect(200, '1'));
      expect(Buffer.from(renewed, 'base64url').readUIntBE(6, 6) - clock.now()).to.equal(600_000);
      expect(setCookieFor(await request(server).get('/').set('Cookie', `session=${renewed}`).expect(200, '1'))).to.equal(undefined);
      clock.advance(500_000);
      expect(backend.open(first)).to.equal(undefined);
      expect(backend.open(renewed)).to.deep.equal({ counter: 1 });
    });

    it('should not renew by default: a session only read expires maxAge after its last write', async () => {
      const clock = manualClock();
      const backend = backendFor('signed', new KeyRing([KEY_A]), { maxAge: 600_000, now: clock.now });
      const server = await listen(appWith(backend, reader));
      const first = backend.seal({ counter: 1 });
      clock.advance(599_000);
      expect(setCookieFor(await request(server).get('/').set('Cookie', `session=${first}`).expect(200, '1'))).to.equal(undefined);
      clock.advance(1_000);
      await request(server).get('/').set('Cookie', `session=${first}`).expect(200, 'undefined');
    });
  });

  it('should extend the sealed expiry when the session is renewed', async () => {
    const clock = manualClock();
    const backend = backendFor('private', new KeyRing([KEY_A]), { maxAge: 10_000, now: clock.now });
    const server = await listen(
      appWith(backend, (ctx) => {
        if (ctx.query.renew === '1') ctx.session.renew();
        ctx.body = String(ctx.session.get('counter') ?? 'none');
      }),
    );
    const token = backend.seal({ counter: 3 });
    clock.advance(9_000);
    const renewed = cookieValue(await request(server).get('/?renew=1').set('Cookie', `session=${token}`).expect(200, '3'));
    clock.advance(5_000);
    expect(backend.open(token)).to.equal(undefined);
    expect(backend.open(renewed)).to.deep.equal({ counter: 3 });
  });
});
