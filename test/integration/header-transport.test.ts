// transport: 'header': the session travels as a token in Authorization: Bearer (or a header of the app's choice)
// and comes back in Session-Token, on both backends, with no cookie read or written.
import { expect } from 'chai';
import type Koa from 'koa';
import request from 'supertest';
import {
  CookieSessionBackend,
  KeyRing,
  MemoryRevocationStore,
  StoreSessionBackend,
  koaSessionCookies,
  type SessionBackend,
} from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, expectSessionError, listen, setCookies } from '../support/helpers.js';
import { eachStore } from '../support/stores.js';

const KEY_RING = new KeyRing([KEY_A]);

/** A mobile client's API: /login renews and signs in, /me reads, /count changes a key, /logout purges. */
const api: Koa.Middleware = (ctx) => {
  const session = ctx.session;
  if (ctx.path === '/login') {
    session.renew();
    session.set('userId', String(ctx.query.user));
  } else if (ctx.path === '/count') {
    session.set('counter', (session.get<number>('counter') ?? 0) + 1);
  } else if (ctx.path === '/logout') {
    session.purge();
  }
  ctx.body = { user: session.get('userId') ?? null, counter: session.get('counter') ?? null };
};

/** The token a response handed out; fails the test when it handed out none. */
function tokenOf(res: request.Response, header = 'session-token'): string {
  const token = res.headers[header];
  if (typeof token !== 'string' || token === '') throw new Error(`expected a token in ${header}, got: ${JSON.stringify(res.headers)}`);
  return token;
}

/** Login, authenticated reads and changes, renewal at login, logout: what a mobile client does, on `backend`. */
async function mobileFlow(backend: SessionBackend, { stateless }: { stateless: boolean }): Promise<void> {
  const server = await listen(appWith(backend, api));
  const anonymous = await request(server).get('/count').expect(200);
  expect(setCookies(anonymous), 'no cookie, ever').to.deep.equal([]);
  const first = tokenOf(anonymous);
  expect(anonymous.headers['cache-control']).to.equal('no-store');

  const login = await request(server).get('/login?user=ada').set('Authorization', `Bearer ${first}`).expect(200);
  expect(login.body).to.deep.equal({ user: 'ada', counter: 1 });
  const token = tokenOf(login);
  expect(token, 'renew() at login hands out a new token').to.not.equal(first);
  expect(setCookies(login)).to.deep.equal([]);

  // A read-only request carries no new token (the store backend's sends one only when it is due).
  const me = await request(server).get('/me').set('Authorization', `Bearer ${token}`).expect(200);
  expect(me.body).to.deep.equal({ user: 'ada', counter: 1 });
  expect(me.headers['session-token']).to.equal(undefined);
  // The scheme is case-insensitive (RFC 9110), and extra spaces before the token are allowed (RFC 6750's grammar).
  const lower = await request(server).get('/me').set('Authorization', `bearer   ${token}`).expect(200);
  expect(lower.body.user).to.equal('ada');

  const counted = await request(server).get('/count').set('Authorization', `Bearer ${token}`).expect(200);
  expect(counted.body).to.deep.equal({ user: 'ada', counter: 2 });
  // The cookie backend seals the session again on each change; the store backend keeps its id.
  const current = stateless ? tokenOf(counted) : token;
  if (!stateless) expect(counted.headers['session-token']).to.equal(undefined);

  // The pre-login token never opens the signed-in session (fixation).
  const before = await request(server).get('/me').set('Authorization', `Bearer ${first}`).expect(200);
  expect(before.body.user).to.equal(null);

  // A token in a cookie is not read: the transport is the header.
  const asCookie = await request(server).get('/me').set('Cookie', `session=${current}`).expect(200);
  expect(asCookie.body.user).to.equal(null);

  const out = await request(server).get('/logout').set('Authorization', `Bearer ${current}`).expect(200);
  expect(out.body).to.deep.equal({ user: null, counter: null });
  expect(out.headers['session-token'], 'a purge sends the header empty').to.equal('');
  expect(setCookies(out)).to.deep.equal([]);
  const after = await request(server).get('/me').set('Authorization', `Bearer ${current}`).expect(200);
  // A sealed cookie session is its own data: a purged token still opens until it expires (revocations end it).
  expect(after.body.user).to.equal(stateless ? 'ada' : null);
}

describe("transport: 'header' (tokens in a header, for API and mobile clients)", () => {
  describe('on the cookie backend', () => {
    for (const { mode, serializer, label } of COMBINATIONS) {
      it(`should log in, serve requests by token, renew at login and log out, with no cookie (${label})`, async () => {
        await mobileFlow(backendFor(mode, KEY_RING, { serializer: serializer(), transport: 'header' }), { stateless: true });
      });
    }

    it("should stop a revoked user's token from opening, as it does a cookie", async () => {
      const backend = CookieSessionBackend.private(KEY_RING, { transport: 'header', userKey: 'userId', revocations: new MemoryRevocationStore() });
      const server = await listen(appWith(backend, api));
      const token = tokenOf(await request(server).get('/login?user=ada').expect(200));
      expect((await request(server).get('/me').set('Authorization', `Bearer ${token}`)).body.user).to.equal('ada');
      await backend.revokeUser('ada');
      expect((await request(server).get('/me').set('Authorization', `Bearer ${token}`)).body.user).to.equal(null);
    });

    it('should read the header the app names, as its whole value, and answer in the header it names', async () => {
      const backend = CookieSessionBackend.signed(KEY_RING, { transport: 'header', header: 'X-Session', responseHeader: 'X-New-Session' });
      const server = await listen(appWith(backend, api));
      const login = await request(server).get('/login?user=ada').expect(200);
      expect(login.headers['session-token']).to.equal(undefined);
      const token = tokenOf(login, 'x-new-session');
      expect((await request(server).get('/me').set('X-Session', token)).body.user).to.equal('ada');
      // Only that header: the same token as a Bearer credential is not looked at.
      expect((await request(server).get('/me').set('Authorization', `Bearer ${token}`)).body.user).to.equal(null);
    });

    it('should give an empty session, never an error, for every malformed Authorization header', async () => {
      const backend = CookieSessionBackend.signed(KEY_RING, { transport: 'header' });
      const server = await listen(appWith(backend, api));
      const token = tokenOf(await request(server).get('/login?user=ada').expect(200));
      const tampered = `${token.slice(0, -2)}${token.endsWith('A') ? 'B' : 'A'}A`;
      for (const value of [
        `Basic ${token}`,
        `Digest ${token}`,
        'Bearer',
        'Bearer ',
        `Bearer${token}`,
        `Bearer ${tampered}`,
        `Bearer ${token} extra`,
        `Bearer ${'A'.repeat(8000)}`,
        `Bearer "${token}"`,
        token,
      ]) {
        const res = await request(server).get('/me').set('Authorization', value).expect(200);
        expect(res.body.user, value.slice(0, 40)).to.equal(null);
      }
    });

    it('should refuse cookie attributes, header names it cannot use and a legacy cookie with the header transport', () => {
      for (const options of [
        { transport: 'header', sameSite: 'strict' },
        { transport: 'header', secure: true },
        { transport: 'header', httpOnly: false },
        { transport: 'header', partitioned: true },
        { transport: 'header', path: '/api' },
        { transport: 'header', domain: 'example.com' },
        { transport: 'header', header: 'Cookie' },
        { transport: 'header', header: 'bad header' },
        { transport: 'header', responseHeader: 'Set-Cookie' },
        { transport: 'header', responseHeader: '' },
        { transport: 'headers' },
        { header: 'authorization' },
        { responseHeader: 'Session-Token' },
        { transport: 'header', legacy: koaSessionCookies({ keys: ['k'], until: new Date(Date.now() + 86_400_000) }) },
      ]) {
        const err = expectSessionError(() => CookieSessionBackend.signed(KEY_RING, options as never), 'ERR_SESSION_INVALID_OPTION');
        expect(err.message, JSON.stringify(options)).to.match(/transport|header|legacy/i);
      }
      expectSessionError(() => new StoreSessionBackend(undefined as never, KEY_RING, { transport: 'header' }), 'ERR_SESSION_INVALID_OPTION');
      for (const options of [{ transport: 'header', sameSite: 'none' }, { header: 'x-token' }]) {
        expectSessionError(
          () =>
            new StoreSessionBackend(
              { load: async () => undefined, write: async () => true, destroy: async () => undefined },
              KEY_RING,
              options as never,
            ),
          'ERR_SESSION_INVALID_OPTION',
        );
      }
    });

    it('should keep writing cookies by default', async () => {
      const server = await listen(appWith(CookieSessionBackend.signed(KEY_RING), api));
      const res = await request(server).get('/count').expect(200);
      expect(cookieValue(res)).to.be.a('string');
      expect(res.headers['session-token']).to.equal(undefined);
    });
  });

  describe('on the store backend', () => {
    eachStore((under) => {
      it('should log in, serve requests by token, renew at login and log out, with no cookie', async () => {
        await mobileFlow(new StoreSessionBackend(under.current.store, KEY_RING, { transport: 'header' }), { stateless: false });
      });
    });
  });
});
