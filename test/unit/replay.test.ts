import { expect } from 'chai';
import request from 'supertest';
import { KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, KEY_B, KEY_C, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor } from '../support/helpers.js';

describe('cross-context replay', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      it('should not open a valid cookie under an unrelated key ring', () => {
        const token = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() }).seal({ user: 'ada' });
        expect(backendFor(mode, new KeyRing([KEY_B, KEY_C]), { serializer: serializer() }).open(token)).to.equal(undefined);
      });

      it('should not open a valid cookie after its expiry, sent through the middleware', async () => {
        const clock = manualClock();
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: 3_600_000, now: clock.now });
        const token = backend.seal({ user: 'ada' });
        const server = await listen(appWith(backend, (ctx) => void (ctx.body = { isNew: ctx.session.isNew })));
        clock.advance(3_600_000);
        expect((await request(server).get('/').set('Cookie', `session=${token}`)).body).to.deep.equal({ isNew: true });
      });

      describe('after purge()', () => {
        // A stateless cookie cannot be revoked one by one: the server keeps no list of purged cookies. purge()
        // expires the cookie in the browser; a copy kept elsewhere opens until its sealed expiry, or until the
        // key ring drops its key. This is the documented limit; these tests hold the library to it.
        const setup = async () => {
          const clock = manualClock();
          const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), maxAge: 3_600_000, now: clock.now });
          const app = appWith(backend, (ctx) => {
            if (ctx.path === '/login') ctx.session.set('user', 'ada');
            if (ctx.path === '/logout') ctx.session.purge();
            ctx.body = { user: ctx.session.get('user') ?? null };
          });
          const server = await listen(app);
          const login = await request(server).get('/login').expect(200);
          const old = cookieValue(login);
          const logout = await request(server).get('/logout').set('Cookie', `session=${old}`).expect(200, { user: null });
          return { clock, backend, server, old, logout };
        };

        it('should expire the cookie in the browser', async () => {
          const { logout } = await setup();
          expect(setCookieFor(logout)).to.match(/^session=; .*Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT/);
        });

        it('should still open a copy of the older cookie until its sealed expiry (the stateless limit)', async () => {
          const { clock, server, old } = await setup();
          await request(server).get('/').set('Cookie', `session=${old}`).expect(200, { user: 'ada' });
          clock.advance(3_600_000);
          await request(server).get('/').set('Cookie', `session=${old}`).expect(200, { user: null });
        });

        it('should stop opening every older cookie once the key ring drops its key (revocation)', async () => {
          const { backend, server, old } = await setup();
          backend.setKeyRing(new KeyRing([KEY_B]));
          await request(server).get('/').set('Cookie', `session=${old}`).expect(200, { user: null });
        });
      });
    });
  }
});
