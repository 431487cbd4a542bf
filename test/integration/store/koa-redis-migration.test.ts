// Moving from koa-session + koa-redis without signing anyone out: sessions written by the real koa-session, kept by the
// real koa-redis on a real Redis (with a login by the real koa-passport), moved to this library's store backend and
// to its cookie backend.
import { expect } from 'chai';
import Koa from 'koa';
import koaSession from 'koa-session';
import redisStore from 'koa-redis';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import {
  CookieSessionBackend,
  KeyRing,
  MemoryStore,
  PostgresStore,
  RedisStore,
  StoreSessionBackend,
  koaSessionCookies,
  type KoaSessionStore,
  type SessionBackend,
  type SessionError,
  type SessionStore,
} from '../../../src/index.js';
import { KEY_A, appWith, cookieValue, expectSessionError, listen, manualClock, setCookieFor, setCookies } from '../../support/helpers.js';
import { KoaPassport, LocalStrategy } from '../../support/passport.js';
import { startPostgres, type PostgresServer } from '../../support/postgres-server.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const APP_KEYS = ['the app key koa-session signed with'];
const UNTIL = new Date(Date.now() + 90 * 86_400_000);
const KEY_RING = new KeyRing([KEY_A]);

/** koa-passport over a session: POST /login?user=ada signs in, any other path answers who is signed in and the views. */
function withPassport(app: Koa): Koa {
  const passport = new KoaPassport();
  passport.use(new LocalStrategy((username, _password, done) => done(null, username === 'ada' ? { id: 'u1' } : false)));
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, { id }));
  app.use(async (ctx, next) => {
    (ctx.request as unknown as { body: unknown }).body = { username: ctx.query.user, password: 'x' };
    await next();
  });
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(async (ctx, next) => {
    if (ctx.path === '/login') return passport.authenticate('local', { successRedirect: '/me', failureRedirect: '/nope' })(ctx, next);
    const session = ctx.session as unknown as Record<string, unknown> & { maxAge?: unknown };
    if (ctx.path === '/count') session.views = (Number(session.views) || 0) + 1;
    if (ctx.path === '/remember') session.maxAge = 7 * 86_400_000;
    if (ctx.path === '/logout') {
      (ctx.session as unknown as { purge(): void }).purge();
      ctx.body = { user: null, views: null };
      return;
    }
    const user = ctx.state.user as { id: string } | undefined;
    ctx.body = { user: user?.id ?? null, views: session.views ?? null };
  });
  return app;
}

/** The Cookie header a browser holds after `res`. */
const cookiesOf = (res: request.Response) =>
  setCookies(res)
    .filter((line) => !/Max-Age=0|expires=Thu, 01 Jan 1970/i.test(line))
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ');

describe('moving from koa-session + koa-redis (the real packages, a real Redis)', function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let koaRedis: ReturnType<typeof redisStore>;
  // koa-redis as koa-session calls it (its typings name neither method).
  const koaStore = () => koaRedis as unknown as KoaSessionStore & { get(key: string): Promise<unknown>; destroy(key: string): Promise<unknown> };
  let node: ReturnType<typeof createClient>;

  before(async () => {
    redis = await startRedis();
    koaRedis = redisStore({ host: '127.0.0.1', port: redis.port } as never);
    node = createClient({ url: redis.url });
    await node.connect();
  });
  after(async () => {
    await koaRedis?.client.quit();
    await node?.quit();
    await redis?.stop();
  });

  /** The app as it ran before the move: koa-session with koa-redis, and koa-passport. */
  const oldApp = (options: object = {}) => {
    const app = new Koa();
    app.keys = APP_KEYS;
    app.use(koaSession({ store: koaRedis as never, ...options }, app));
    return withPassport(app);
  };

  /** Signs in on the old app and counts a view: the Cookie header its browser then holds, and koa-redis' key. */
  const oldLogin = async (options: object = {}) => {
    const server = await listen(oldApp(options));
    const login = await request(server).get('/login?user=ada').expect(302);
    let cookie = cookiesOf(login);
    const res = await request(server).get('/count').set('Cookie', cookie).expect(200, { user: 'u1', views: 1 });
    cookie = cookiesOf(res) || cookie;
    const key = /koa\.sess=([^;]+)/.exec(cookie)?.[1] as string;
    expect(redis.cli('EXISTS', key).trim(), 'koa-redis keeps the session').to.equal('1');
    return { cookie, key };
  };

  const legacy = (extra: object = {}) => koaSessionCookies({ keys: APP_KEYS, store: koaStore(), until: UNTIL, ...extra });

  const TARGETS: { label: string; make: (extra?: object, options?: object) => SessionBackend }[] = [
    {
      label: 'StoreSessionBackend + RedisStore',
      make: (extra, options) => new StoreSessionBackend(new RedisStore(node), KEY_RING, { legacy: legacy(extra), ...options }),
    },
    {
      label: 'CookieSessionBackend.private',
      make: (extra, options) => CookieSessionBackend.private(KEY_RING, { legacy: legacy(extra), ...options }),
    },
  ];

  /** The new app: this library's session, the same koa-passport code. */
  const newApp = (backend: SessionBackend) => {
    const app = appWith(backend);
    app.middleware.pop(); // appWith's counter: the passport routes instead
    return withPassport(app);
  };

  for (const { label, make } of TARGETS) {
    describe(`to ${label}`, () => {
      it("should move koa-passport's login: signed in under a new cookie, koa-redis' record destroyed, koa-session's cookies expired", async () => {
        const { cookie, key } = await oldLogin();
        const server = await listen(newApp(make()));
        const moved = await request(server).get('/me').set('Cookie', cookie).expect(200, { user: 'u1', views: 1 });
        expect(cookieValue(moved)).to.be.a('string');
        expect(setCookieFor(moved, 'koa.sess')).to.match(/^koa\.sess=; Path=\/; Max-Age=0/);
        expect(setCookieFor(moved, 'koa.sess.sig')).to.match(/^koa\.sess\.sig=; Path=\/; Max-Age=0/);
        expect(redis.cli('EXISTS', key).trim(), 'the koa-redis record is destroyed').to.equal('0');
        const ours = `session=${cookieValue(moved)}`;
        await request(server).get('/count').set('Cookie', ours).expect(200, { user: 'u1', views: 2 });
        // The old cookies, sent again (a copy someone kept): their record is gone, nobody is signed in.
        const replayed = await request(server).get('/me').set('Cookie', cookie).expect(200, { user: null, views: null });
        expect(setCookieFor(replayed)).to.equal(undefined);
      });

      it("should move a session with its own lifetime (koa-session's _maxAge: remember me) with that lifetime", async () => {
        const server = await listen(oldApp());
        const login = await request(server).get('/login?user=ada').expect(302);
        const remembered = await request(server).get('/remember').set('Cookie', cookiesOf(login)).expect(200);
        const cookie = cookiesOf(remembered) || cookiesOf(login);
        const moved = await request(await listen(newApp(make())))
          .get('/me')
          .set('Cookie', cookie)
          .expect(200, { user: 'u1', views: null });
        expect(setCookieFor(moved)).to.match(/^session=[^;]+;.*; Max-Age=604800;/);
      });

      it('should move nothing once a record has passed its _expire, nor after until', async () => {
        const { cookie } = await oldLogin();
        const clock = manualClock(Date.now() + 2 * 86_400_000); // past koa-session's default maxAge of one day
        await request(await listen(newApp(make(undefined, { now: clock.now }))))
          .get('/me')
          .set('Cookie', cookie)
          .expect(200, { user: null, views: null });
        const late = manualClock(UNTIL.getTime());
        await request(await listen(newApp(make({ maxAge: 30 * 86_400_000 }, { now: late.now }))))
          .get('/me')
          .set('Cookie', cookie)
          .expect(200, { user: null, views: null });
      });

      it('should end the moved session on logout: koa-redis record destroyed, no new session', async () => {
        const { cookie, key } = await oldLogin();
        const res = await request(await listen(newApp(make())))
          .get('/logout')
          .set('Cookie', cookie)
          .expect(200);
        expect(res.body.user).to.equal(null);
        expect(setCookieFor(res)).to.equal(undefined);
        expect(setCookieFor(res, 'koa.sess')).to.match(/Max-Age=0/);
        expect(redis.cli('EXISTS', key).trim()).to.equal('0');
      });

      it('should ask koa-redis nothing for a cookie whose signature does not hold, nor for a request with a cookie of ours', async () => {
        const { cookie, key } = await oldLogin();
        let asked = 0;
        const counting: KoaSessionStore = {
          get: (k) => (asked++, koaStore().get(k)),
          destroy: (k) => koaStore().destroy(k),
        };
        const backend = make({ store: counting });
        const server = await listen(newApp(backend));
        const forged = cookie.replace(/koa\.sess=[^;]+/, 'koa.sess=another-key');
        await request(server).get('/me').set('Cookie', forged).expect(200, { user: null, views: null });
        const fresh = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        await request(server).get('/me').set('Cookie', `${fresh}; ${cookie}`).expect(200, { user: null, views: 1 });
        expect(asked).to.equal(0);
        expect(redis.cli('EXISTS', key).trim()).to.equal('1');
      });

      it('should answer 503 within storeTimeout while koa-redis does not answer, and move the session once it does', async () => {
        const { cookie, key } = await oldLogin();
        const app = newApp(make({ storeTimeout: 300 }));
        const server = await listen(app);
        redis.pause();
        try {
          const started = performance.now();
          await request(server).get('/me').set('Cookie', cookie).expect(503);
          expect(performance.now() - started).to.be.below(2000);
          expect((app as unknown as { errors: SessionError[] }).errors.at(-1)?.code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
        } finally {
          redis.resume();
        }
        await request(server).get('/me').set('Cookie', cookie).expect(200, { user: 'u1', views: 1 });
        expect(redis.cli('EXISTS', key).trim()).to.equal('0');
      });

      it('should give an empty session for a record that is no koa-session session, never an error', async () => {
        const { cookie } = await oldLogin();
        for (const reply of ['a string', 42, [1, 2], null, { _expire: 'soon', views: 3 }]) {
          const store: KoaSessionStore = { get: async () => reply, destroy: async () => undefined };
          const res = await request(await listen(newApp(make({ store }))))
            .get('/me')
            .set('Cookie', cookie);
          expect(res.status, JSON.stringify(reply)).to.equal(200);
          expect(res.body.user).to.equal(null);
        }
      });
    });
  }

  describe('revokeUser while sessions still move over (StoreSessionBackend)', () => {
    /** The old app, signing in by a top-level key this time: what `userKey` names. */
    const oldSignIn = async (user: string) => {
      const app = new Koa();
      app.keys = APP_KEYS;
      app.use(koaSession({ store: koaRedis as never }, app));
      app.use((ctx) => {
        (ctx.session as unknown as Record<string, unknown>).userId = user;
        ctx.body = 'ok';
      });
      const res = await request(await listen(app))
        .get('/login')
        .expect(200);
      const cookie = cookiesOf(res);
      return { cookie, key: /koa\.sess=([^;]+)/.exec(cookie)?.[1] as string };
    };
    /** The new app: GET / answers who is signed in; /revoke revokes them in this request (?keep: all but it). */
    const newRevokingApp = (store: SessionStore) => {
      const backend = new StoreSessionBackend(store, KEY_RING, { legacy: legacy(), userKey: 'userId' });
      const app = appWith(backend, async (ctx) => {
        if (ctx.path === '/sign-in') ctx.session.set('userId', String(ctx.query.user));
        const user = ctx.session.get<string>('userId') ?? null;
        if (ctx.path === '/revoke' && user !== null) await backend.revokeUser(user, ctx.query.keep === undefined ? {} : { keep: ctx.session });
        ctx.body = { user };
      });
      return { backend, app };
    };
    // PostgreSQL too: the mark is a row of the store's own table, written and read as a session's record is.
    let postgresServer: PostgresServer;
    let pools: pg.Pool[] = [];
    before(async function () {
      this.timeout(60_000);
      postgresServer = await startPostgres();
    });
    after(async () => {
      await Promise.all(pools.map((pool) => pool.end()));
      pools = [];
      await postgresServer?.stop();
    });
    let tables = 0;
    const STORES: { label: string; make: () => SessionStore }[] = [
      { label: 'RedisStore', make: () => new RedisStore(node, { prefix: `revoke-${Math.random()}:` }) },
      { label: 'MemoryStore', make: () => new MemoryStore() },
      {
        label: 'PostgresStore',
        make: () => {
          const pool = new pg.Pool({ connectionString: postgresServer.url, max: 4 });
          pools.push(pool);
          return new PostgresStore(pool, { table: `revoke_${++tables}`, createTable: true });
        },
      },
    ];
    for (const { label, make } of STORES) {
      describe(`on ${label}`, () => {
        it("should end the moved sessions and refuse the user's sessions not moved yet; other users' and new logins unaffected", async () => {
          const [deviceA, deviceB, bob] = [await oldSignIn('ada'), await oldSignIn('ada'), await oldSignIn('bob')];
          const { backend, app } = newRevokingApp(make());
          const server = await listen(app);
          const moved = await request(server).get('/').set('Cookie', deviceA.cookie).expect(200, { user: 'ada' });
          const ours = `session=${cookieValue(moved)}`;
          expect(await backend.revokeUser('ada')).to.equal(1);
          await request(server).get('/').set('Cookie', ours).expect(200, { user: null });
          // Device B never moved: its koa-session session is in no index, and does not move from now on.
          const refused = await request(server).get('/').set('Cookie', deviceB.cookie).expect(200, { user: null });
          expect(setCookieFor(refused)).to.equal(undefined);
          await request(server).get('/').set('Cookie', deviceB.cookie).expect(200, { user: null });
          // Another user's session still moves; the revoked user signs in again as anyone would.
          await request(server).get('/').set('Cookie', bob.cookie).expect(200, { user: 'bob' });
          const again = await request(server).get('/sign-in?user=ada').expect(200, { user: 'ada' });
          await request(server)
            .get('/')
            .set('Cookie', `session=${cookieValue(again)}`)
            .expect(200, { user: 'ada' });
        });

        it('should undo a move that revokeUser overtook: revoked after the move looked, before it wrote', async () => {
          const { cookie, key } = await oldSignIn('ada');
          const { backend, app } = newRevokingApp(make());
          const server = await listen(app);
          // The revocation runs inside the moving request, after its look at the mark and before its write.
          const res = await request(server).get('/revoke').set('Cookie', cookie).expect(200, { user: 'ada' });
          expect(setCookieFor(res)).to.match(/^session=;.*; Max-Age=0/);
          expect(setCookieFor(res, 'koa.sess')).to.match(/Max-Age=0/);
          expect(redis.cli('EXISTS', key).trim(), 'the koa-redis record is destroyed').to.equal('0');
          expect(await backend.sessionsOf('ada')).to.deep.equal([]);
        });

        it('should keep the session kept ("sign out everywhere else") when it moves in that very request', async () => {
          const [here, elsewhere] = [await oldSignIn('ada'), await oldSignIn('ada')];
          const { backend, app } = newRevokingApp(make());
          const server = await listen(app);
          const res = await request(server).get('/revoke?keep').set('Cookie', here.cookie).expect(200, { user: 'ada' });
          const ours = `session=${cookieValue(res)}`;
          await request(server).get('/').set('Cookie', ours).expect(200, { user: 'ada' });
          expect(await backend.sessionsOf('ada')).to.have.length(1);
          await request(server).get('/').set('Cookie', elsewhere.cookie).expect(200, { user: null });
        });
      });
    }
  });

  it('should refuse a store that is not one, and store options without a store', () => {
    for (const options of [
      { store: {} },
      { store: { get: () => undefined } },
      { maxAge: 1000 },
      { rolling: true },
      { storeTimeout: 10 },
      { store: koaRedis, storeTimeout: 0 },
    ]) {
      expectSessionError(() => koaSessionCookies({ keys: APP_KEYS, until: UNTIL, ...options } as never), 'ERR_SESSION_INVALID_OPTION');
    }
  });
});
