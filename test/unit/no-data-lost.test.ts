import { expect } from 'chai';
import request from 'supertest';
import { KeyRing, SessionError } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, appWithErrorHandler, backendFor, cookieValue, listen, setCookieFor } from '../support/helpers.js';

describe('no data lost', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const start = backend.seal({ counter: 5, user: 'ada' });

      for (const [what, value] of [
        ['a function', () => 1],
        ['a symbol', Symbol('s')],
        ['a class instance', new (class Cart {})()],
      ] as const) {
        it(`should answer 500 for ${what} in the session, write no cookie, and keep the old session readable`, async () => {
          const app = appWith(backend, (ctx) => {
            ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
            if (ctx.query.bad === '1') ctx.session.set('bad', value);
            ctx.body = String(ctx.session.get('counter'));
          });
          const server = await listen(app);
          const failed = await request(server).get('/?bad=1').set('Cookie', `session=${start}`).expect(500);
          expect(setCookieFor(failed)).to.equal(undefined);
          expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_UNSUPPORTED_VALUE');
          // The client still has the old cookie: the next request sees the session as it was.
          await request(server).get('/').set('Cookie', `session=${start}`).expect(200, '6');
        });
      }

      it('should not write changes made before a downstream error that an upstream handler turns into a 4xx', async () => {
        const app = appWithErrorHandler(backend, {}, (ctx) => {
          ctx.session.set('counter', 999);
          ctx.throw(409, 'conflict');
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${start}`)
          .expect(409, 'handled');
        expect(setCookieFor(res)).to.equal(undefined);
      });

      it('should give two racing requests of one client (two tabs) each a complete cookie; the last one stored wins', async () => {
        const app = appWith(backend, async (ctx) => {
          const tab = String(ctx.query.tab);
          ctx.session.set(`seen-${tab}`, true);
          ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
          // Hold the first tab so that both requests are in flight together.
          if (tab === 'a') await new Promise((resolve) => setTimeout(resolve, 30));
          ctx.body = tab;
        });
        const server = await listen(app);
        const [a, b] = await Promise.all([
          request(server).get('/?tab=a').set('Cookie', `session=${start}`),
          request(server).get('/?tab=b').set('Cookie', `session=${start}`),
        ]);
        expect(backend.open(cookieValue(a))).to.deep.equal({ counter: 6, user: 'ada', 'seen-a': true });
        expect(backend.open(cookieValue(b))).to.deep.equal({ counter: 6, user: 'ada', 'seen-b': true });
        expect(app.errors).to.deep.equal([]);
      });
    });
  }
});
