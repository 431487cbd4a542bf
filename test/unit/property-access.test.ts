import { expect } from 'chai';
import type Koa from 'koa';
import { inspect } from 'node:util';
import request from 'supertest';
import { KeyRing, type SessionError } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor } from '../support/helpers.js';

/** ctx.session as untyped koa-session code sees it. */
const sessionOf = (ctx: Koa.Context) => ctx.session as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('property access on ctx.session, as koa-session apps write it', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });

      it("should run koa-session's views counter", async () => {
        const app = appWith(backend, (ctx) => {
          if (ctx.path === '/favicon.ico') return;
          const n = (sessionOf(ctx).views as number | undefined) ?? 0;
          sessionOf(ctx).views = n + 1;
          ctx.body = `${n} views`;
        });
        const server = await listen(app);
        let cookie = `session=${cookieValue(await request(server).get('/').expect(200, '0 views'))}`;
        for (const expected of ['1 views', '2 views']) {
          const res = await request(server).get('/').set('Cookie', cookie).expect(200, expected);
          cookie = `session=${cookieValue(res)}`;
        }
        expect(backend.open(cookie.slice('session='.length))).to.deep.equal({ views: 3 });
      });

      it("should refuse assigning one of the session's members by property (a 500, nothing written), and take maxAge", async () => {
        const token = backend.seal({ views: 4 });
        const app = appWith(backend, (ctx) => {
          const view = sessionOf(ctx);
          if (ctx.path === '/remember') view.maxAge = 3_600_000;
          else view[String(ctx.query.member)] = { some: 'data' };
          ctx.body = 'ok';
        });
        const server = await listen(app);
        for (const member of ['flash', 'get', 'set', 'renew', 'isNew', 'status', 'length']) {
          const res = await request(server).get(`/?member=${member}`).set('Cookie', `session=${token}`).expect(500);
          expect(setCookieFor(res), member).to.equal(undefined);
          const err = app.errors.at(-1) as SessionError;
          expect(err.code, member).to.equal('ERR_SESSION_ASSIGNMENT');
          expect(err.message).to.contain(`set('${member}', value)`);
        }
        const remembered = await request(server).get('/remember').set('Cookie', `session=${token}`).expect(200);
        expect(setCookieFor(remembered)).to.match(/Max-Age=3600;/);
      });

      it('should end the session on ctx.session = null, and replace its data on ctx.session = {...}', async () => {
        const token = backend.seal({ views: 4, user: 'ada' });
        const app = appWith(backend, (ctx) => {
          if (ctx.path === '/logout') (ctx as unknown as { session: null }).session = null;
          else (ctx as unknown as { session: object }).session = { fresh: true };
          ctx.body = 'ok';
        });
        const server = await listen(app);
        const out = await request(server).get('/logout').set('Cookie', `session=${token}`).expect(200);
        expect(setCookieFor(out)).to.match(/^session=; .*Max-Age=0/);
        const replaced = await request(server).get('/').set('Cookie', `session=${token}`).expect(200);
        expect(backend.open(cookieValue(replaced))).to.deep.equal({ fresh: true });
      });

      it('should keep keys named like its members as data on ctx.session = {...}, and refuse a bad value before changing anything', async () => {
        const token = backend.seal({ views: 4, user: 'ada' });
        const app = appWith(backend, (ctx) => {
          const session = ctx as unknown as { session: object };
          if (ctx.path === '/members') session.session = { plan: 'pro', status: 'active', get: 'x' };
          if (ctx.path === '/bad') {
            try {
              session.session = { plan: 'pro', onChange() {} };
            } catch (err) {
              // Refused whole: the session is as it was, not cleared and half filled.
              ctx.body = { code: (err as SessionError).code, data: ctx.session.toJSON(), status: ctx.session.status };
              return;
            }
          }
          ctx.body = { status: ctx.session.get('status') ?? null, get: ctx.session.get('get') ?? null, plan: ctx.session.get('plan') ?? null };
        });
        const server = await listen(app);
        const res = await request(server).get('/members').set('Cookie', `session=${token}`).expect(200, { status: 'active', get: 'x', plan: 'pro' });
        expect(backend.open(cookieValue(res))).to.deep.equal({ plan: 'pro', status: 'active', get: 'x' });
        const bad = await request(server)
          .get('/bad')
          .set('Cookie', `session=${token}`)
          .expect(200, { code: 'ERR_SESSION_UNSUPPORTED_VALUE', data: { views: 4, user: 'ada' }, status: 'unchanged' });
        expect(setCookieFor(bad)).to.equal(undefined);
      });

      it('should persist reads, assignments, deletes and in-place changes of nested values', async () => {
        const token = backend.seal({ passport: { user: 'old' }, cart: { items: ['a'] }, views: 1, untouched: { deep: [1, 2] } });
        const app = appWith(backend, (ctx) => {
          const s = sessionOf(ctx);
          s.passport.user = 'ada';
          s.cart.items.push('b');
          delete s.views;
          s.notice = { message: 'saved' };
          s.notice.level = 'info'; // changed after assignment: still written
          ctx.body = {
            has: 'passport' in s,
            hasViews: 'views' in s,
            hasMethod: 'get' in s,
            keys: Object.keys(s),
            json: JSON.parse(JSON.stringify(s)) as unknown,
            viaGet: ctx.session.get('passport'),
          };
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200);
        const expected = {
          passport: { user: 'ada' },
          cart: { items: ['a', 'b'] },
          untouched: { deep: [1, 2] },
          notice: { message: 'saved', level: 'info' },
        };
        expect(res.body).to.deep.equal({
          has: true,
          hasViews: false,
          hasMethod: true,
          keys: ['passport', 'cart', 'untouched', 'notice'],
          json: expected,
          viaGet: { user: 'ada' },
        });
        expect(backend.open(cookieValue(res))).to.deep.equal(expected);
      });

      it('should write nothing when values read by property access did not change', async () => {
        const token = backend.seal({ passport: { user: 'ada' }, list: [1, { a: 'b' }], n: 5 });
        const app = appWith(backend, (ctx) => {
          const s = sessionOf(ctx);
          const user = s.passport.user as string;
          s.list[1].a = 'b'; // the same value written over itself
          s.n = 5; // an equal primitive
          ctx.body = `${user} ${s.list.length as number}`;
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, 'ada 2');
        expect(setCookieFor(res)).to.equal(undefined);
      });

      it('should fail the commit with ERR_SESSION_UNSUPPORTED_VALUE for a value that cannot be stored, losing nothing', async () => {
        const token = backend.seal({ user: { name: 'ada' }, views: 1 });
        const app = appWith(backend, (ctx) => {
          const s = sessionOf(ctx);
          s.views = 2;
          if (ctx.query.bad === 'fn') s.user.greet = () => 'hi';
          if (ctx.query.bad === 'class') s.when = new (class Moment {})();
          ctx.body = 'ok';
        });
        const server = await listen(app);
        for (const bad of ['fn', 'class']) {
          const res = await request(server).get(`/?bad=${bad}`).set('Cookie', `session=${token}`).expect(500);
          expect(setCookieFor(res)).to.equal(undefined);
        }
        expect(app.errors.map((err) => (err as SessionError).code)).to.deep.equal(['ERR_SESSION_UNSUPPORTED_VALUE', 'ERR_SESSION_UNSUPPORTED_VALUE']);
        expect(backend.open(token)).to.deep.equal({ user: { name: 'ada' }, views: 1 });
      });

      it('should keep methods ahead of data keys of the same name, which get() and set() still reach', async () => {
        const app = appWith(backend, (ctx) => {
          ctx.session.set('get', 'a value');
          const s = sessionOf(ctx);
          ctx.body = { method: typeof s.get, value: ctx.session.get('get'), same: s.get === s.get };
        });
        const res = await request(await listen(app))
          .get('/')
          .expect(200);
        expect(res.body).to.deep.equal({ method: 'function', value: 'a value', same: true });
        expect(backend.open(cookieValue(res))).to.deep.equal({ get: 'a value' });
      });

      it('should save() now, and still write what changes after it at the end', async () => {
        const app = appWith(backend, async (ctx) => {
          sessionOf(ctx).step = 1;
          await ctx.session.save();
          const saved = String(ctx.response.get('Set-Cookie'));
          sessionOf(ctx).step = 2;
          ctx.body = saved.includes('session=') ? 'saved' : 'not saved';
        });
        const res = await request(await listen(app))
          .get('/')
          .expect(200, 'saved');
        expect(setCookieFor(res)).to.not.equal(undefined);
        expect(backend.open(cookieValue(res))).to.deep.equal({ step: 2 });
      });

      it('should regenerate() with a new cookie for the same data, by promise or callback, and count length and populated', async () => {
        // A minute later than the seal below, so that even a signed cookie of the same data differs.
        const clock = manualClock();
        const timed = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), now: clock.now });
        const token = timed.seal({ returnTo: '/cart', csrf: 's3cret' });
        clock.advance(60_000);
        const app = appWith(timed, async (ctx) => {
          const before = { length: ctx.session.length, populated: ctx.session.populated };
          if (ctx.query.style === 'callback')
            await new Promise<void>((resolve, reject) =>
              ctx.session.regenerate((err) => (err ? reject(err instanceof Error ? err : new Error('regenerate failed')) : resolve())),
            );
          else await ctx.session.regenerate();
          ctx.body = { before, status: ctx.session.status };
        });
        const server = await listen(app);
        for (const style of ['promise', 'callback']) {
          const res = await request(server).get(`/?style=${style}`).set('Cookie', `session=${token}`).expect(200);
          expect(res.body).to.deep.equal({ before: { length: 2, populated: true }, status: 'unchanged' });
          const renewed = cookieValue(res);
          expect(renewed).not.to.equal(token);
          expect(timed.open(renewed)).to.deep.equal({ returnTo: '/cart', csrf: 's3cret' });
        }
      });

      it('should reject save(), or pass the callback the error, when the session cannot be written, losing nothing', async () => {
        const token = backend.seal({ views: 1 });
        const app = appWith(backend, async (ctx) => {
          sessionOf(ctx).pad = 'x'.repeat(5000);
          const viaPromise = await ctx.session.save().then(
            () => 'saved',
            (err: SessionError) => err.code,
          );
          const viaCallback = await new Promise((resolve) => ctx.session.save((err) => resolve((err as SessionError | undefined)?.code ?? 'saved')));
          ctx.session.remove('pad');
          ctx.body = [viaPromise, viaCallback];
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, ['ERR_SESSION_TOO_LARGE', 'ERR_SESSION_TOO_LARGE']);
        expect(backend.open(cookieValue(res))).to.deep.equal({ views: 1 });
      });

      it('should show keys and state in util.inspect, never the values', async () => {
        const token = backend.seal({ user: 'ada', token: 'do-not-log-me' });
        const app = appWith(backend, (ctx) => void (ctx.body = inspect(ctx.session) + inspect(ctx.session.get('user'))));
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200);
        expect(res.text).to.equal("Session { keys: [ 'user', 'token' ], status: 'unchanged', isNew: false }'ada'");
      });

      it('should destroy() the session now', async () => {
        const token = backend.seal({ user: 'ada' });
        const app = appWith(backend, async (ctx) => {
          await ctx.session.destroy();
          ctx.body = String(ctx.session.populated);
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, 'false');
        expect(setCookieFor(res)).to.match(/^session=; .*Max-Age=0/);
      });
    });
  }
});
