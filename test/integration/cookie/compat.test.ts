// The middleware Koa apps already use with koa-session, unchanged, over HTTP: koa-passport with passport-local,
// koa-csrf and grant. Each reads and writes ctx.session as a plain object.
import { expect } from 'chai';
import Koa from 'koa';
import { createRequire } from 'node:module';
import request from 'supertest';
import { JsonSerializer, KeyRing, MemoryStore, MsgpackSerializer, StoreSessionBackend } from '../../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen } from '../../support/helpers.js';
import { KoaPassport, LocalStrategy } from '../../support/passport.js';

const require = createRequire(import.meta.url);
const CSRF = require('koa-csrf') as new (options?: object) => Koa.Middleware;
const grant = require('grant') as { koa: (config: object) => Koa.Middleware };

const USERS: Record<string, { id: string; password: string }> = { ada: { id: 'u1', password: 'lovelace' } };

/** Parses a urlencoded form into ctx.request.body, as a body parser would; enough for these tests. */
const formBody: Koa.Middleware = async (ctx, next) => {
  if (ctx.is('application/x-www-form-urlencoded')) {
    let text = '';
    for await (const chunk of ctx.req) text += String(chunk);
    (ctx.request as unknown as { body: unknown }).body = Object.fromEntries(new URLSearchParams(text));
  } else (ctx.request as unknown as { body: unknown }).body = {};
  await next();
};

/** Each backend passport is proven on, with a reader of a cookie's session data. */
const BACKENDS = [
  ...COMBINATIONS.map(({ mode, serializer, label }) => ({
    label,
    make: () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      return { backend, open: async (value: string) => backend.open(value) };
    },
  })),
  ...[new JsonSerializer(), new MsgpackSerializer()].map((serializer) => ({
    label: `store backend, MemoryStore + ${serializer.name}`,
    make: () => {
      const backend = new StoreSessionBackend(new MemoryStore(), new KeyRing([KEY_A]), { serializer });
      return { backend, open: (value: string) => backend.open(value) };
    },
  })),
];

function passportApp(make: (typeof BACKENDS)[number]['make']) {
  const { backend, open } = make();
  const passport = new KoaPassport();
  passport.use(
    new LocalStrategy((username, password, done) => {
      const user = USERS[username];
      done(null, user !== undefined && user.password === password ? { id: user.id } : false);
    }),
  );
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, { id }));
  const app = appWith(backend, formBody, passport.initialize(), passport.session(), async (ctx, next) => {
    if (ctx.path === '/login' && ctx.method === 'POST') {
      ctx.session.set('returnTo', '/cart'); // must survive login's regenerate
      return passport.authenticate('local', { successRedirect: '/me', failureRedirect: '/login' })(ctx, next);
    }
    if (ctx.path === '/logout') {
      await (ctx as unknown as { logout(): Promise<void> }).logout();
      ctx.body = 'bye';
      return;
    }
    if (ctx.path === '/visit') ctx.session.set('seen', true);
    const user = ctx.state.user as { id: string } | undefined;
    ctx.body = { user: user?.id ?? null, authenticated: (ctx as unknown as { isAuthenticated(): boolean }).isAuthenticated() };
  });
  return { app, open };
}

describe('compatibility with middleware written for koa-session', () => {
  for (const { make, label } of BACKENDS) {
    describe(`koa-passport with passport-local (${label})`, () => {
      it('should log in with a new cookie, stay authenticated with ctx.state.user set, and log out', async () => {
        const { app, open } = passportApp(make);
        const server = await listen(app);
        const anonymous = cookieValue(await request(server).get('/visit').expect(200, { user: null, authenticated: false }));
        const login = await request(server)
          .post('/login')
          .set('Cookie', `session=${anonymous}`)
          .type('form')
          .send({ username: 'ada', password: 'lovelace' })
          .expect(302);
        expect(login.headers.location).to.equal('/me');
        const loggedIn = cookieValue(login);
        expect(loggedIn).not.to.equal(anonymous);
        // regenerate() kept the data, as koa-session does: returnTo survives login.
        expect(await open(loggedIn)).to.deep.equal({ seen: true, returnTo: '/cart', passport: { user: 'u1' } });
        await request(server).get('/me').set('Cookie', `session=${loggedIn}`).expect(200, { user: 'u1', authenticated: true });
        const logout = await request(server).get('/logout').set('Cookie', `session=${loggedIn}`).expect(200, 'bye');
        const loggedOut = cookieValue(logout);
        expect(await open(loggedOut)).to.deep.equal({ seen: true, returnTo: '/cart', passport: {} });
        await request(server).get('/me').set('Cookie', `session=${loggedOut}`).expect(200, { user: null, authenticated: false });
      });

      it('should refuse a wrong password and write no login', async () => {
        const { app, open } = passportApp(make);
        const res = await request(await listen(app))
          .post('/login')
          .type('form')
          .send({ username: 'ada', password: 'nope' })
          .expect(302);
        expect(res.headers.location).to.equal('/login');
        expect(await open(cookieValue(res))).to.deep.equal({ returnTo: '/cart' });
      });
    });
  }

  describe('koa-csrf', () => {
    it('should accept the token of a form and refuse a forged one', async () => {
      const backend = backendFor('private', new KeyRing([KEY_A]));
      const app = appWith(backend, formBody, new CSRF(), (ctx) => {
        ctx.body = ctx.method === 'GET' ? String(ctx.state._csrf) : 'posted';
      });
      const server = await listen(app);
      const form = await request(server).get('/form').expect(200);
      const token = form.text;
      const cookie = `session=${cookieValue(form)}`;
      expect(backend.open(cookieValue(form)))
        .to.have.property('secret')
        .that.is.a('string');
      await request(server).post('/form').set('Cookie', cookie).type('form').send({ _csrf: token }).expect(200, 'posted');
      await request(server)
        .post('/form')
        .set('Cookie', cookie)
        .type('form')
        .send({ _csrf: `${token.slice(0, -2)}xx` })
        .expect(403);
      await request(server).post('/form').type('form').send({ _csrf: token }).expect(403);
    });
  });

  describe('grant (OAuth)', () => {
    it('should send the provider a state that the session holds, and refuse a callback with another state', async () => {
      const backend = backendFor('private', new KeyRing([KEY_A]));
      const config = {
        defaults: { origin: 'http://127.0.0.1', transport: 'session', state: true },
        github: { key: 'client-id', secret: 'client-secret', callback: '/done' },
      };
      const app = appWith(backend, formBody, grant.koa(config), (ctx) => void (ctx.body = { grant: ctx.session.get('grant') ?? null }));
      const server = await listen(app);
      const redirect = await request(server).get('/connect/github').expect(302);
      const location = new URL(String(redirect.headers.location));
      expect(location.origin + location.pathname).to.equal('https://github.com/login/oauth/authorize');
      const state = location.searchParams.get('state');
      expect(state).to.be.a('string').with.length.greaterThan(10);
      const stored = backend.open(cookieValue(redirect)) as { grant: { provider: string; state: string } };
      expect(stored.grant).to.include({ provider: 'github', state });
      const forged = await request(server)
        .get('/connect/github/callback?code=x&state=forged')
        .set('Cookie', `session=${cookieValue(redirect)}`)
        .expect(302);
      expect(forged.headers.location).to.equal('/done');
      const after = backend.open(cookieValue(forged)) as { grant: { response: { error: string } } };
      expect(after.grant.response.error).to.equal('Grant: OAuth2 state mismatch');
    });
  });
});
