import { expect } from 'chai';
import { createHash } from 'node:crypto';
import Koa from 'koa';
import request from 'supertest';
import { KeyRing, MemoryStore, SessionError, StoreSessionBackend, session, type StoreSessionOptions, type UserSession } from '../../../src/index.js';
import { KEY_A, appWith, cookieValue, listen, manualClock, signIn } from '../../support/helpers.js';
import { Cluster as IORedisCluster, Redis as IORedis } from 'ioredis';
import { Cluster as IORedisCluster6, Redis as IORedis6 } from 'ioredis6';
import { Cluster as ValkeyCluster, Redis as Valkey } from 'iovalkey';
import { RedisStore } from '../../../src/index.js';
import { eachStore, type StoreUnderTest } from '../../support/stores.js';
const KEY_RING = new KeyRing([KEY_A]);
const DAY = 86_400_000;

/** A login app: /login?user=…&remember=1 (renew, then the user), /devices, /others-out, /revoke?handle=…, /logout. */
function loginApp(backend: StoreSessionBackend): Koa.Middleware {
  return async (ctx) => {
    const session = ctx.session;
    const user = session.get<string>('userId');
    if (ctx.path === '/login') {
      signIn(ctx);
    } else if (ctx.path === '/devices' && user !== undefined) {
      ctx.body = await backend.sessionsOf(user, { current: ctx.session });
      return;
    } else if (ctx.path === '/others-out' && user !== undefined) {
      ctx.body = { ended: await backend.revokeUser(user, { keep: ctx.session }) };
      return;
    } else if (ctx.path === '/everywhere-out' && user !== undefined) {
      ctx.body = { ended: await backend.revokeUser(user) };
      return;
    } else if (ctx.path === '/revoke' && user !== undefined) {
      const handle = String(ctx.query.handle);
      // As an app must: only a handle of the signed-in user's own sessions.
      if (!(await backend.sessionsOf(user)).some((s) => s.handle === handle)) ctx.throw(404);
      await backend.revoke(handle);
    } else if (ctx.path === '/logout') {
      session.remove('userId');
    } else if (ctx.path === '/purge') {
      session.purge();
    } else if (ctx.path === '/count') {
      session.set('counter', (session.get<number>('counter') ?? 0) + 1);
    }
    ctx.body = { user: session.get('userId') ?? null, counter: session.get('counter') ?? null, isNew: session.isNew };
  };
}

/**
 * A route whose request loads its session, then waits until `open()`, then runs `then`: `arrived` resolves once the
 * request has loaded, so a case acts in between without guessing how long that takes.
 */
function gated(path: string, then: (ctx: Koa.Context) => Promise<void>): { route: Koa.Middleware; arrived: Promise<void>; open: () => void } {
  let open!: () => void;
  let arrive!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const route: Koa.Middleware = async (ctx, next) => {
    if (ctx.path !== path) return next();
    ctx.session.get('userId'); // loaded before the gate
    arrive();
    await gate;
    await then(ctx);
  };
  return { route, arrived, open };
}

describe('per-user sessions on the store backend (userKey, sessionsOf, revokeUser, revoke)', function () {
  this.timeout(30_000);
  eachStore((store) => {
    const isRedis = store.kind === 'single' || store.kind === 'cluster' ? store.kind : false;
    const serve = async (options: StoreSessionOptions = {}) => {
      const backend = new StoreSessionBackend(store.current.store, KEY_RING, { userKey: 'userId', ...options });
      return { backend, server: await listen(appWith(backend, loginApp(backend))) };
    };
    const login = async (server: Parameters<typeof request>[0], user: string, from?: string, remember = false) => {
      const req = request(server)
        .get(`/login?user=${user}${remember ? '&remember=1' : ''}`)
        .set('User-Agent', `agent of ${user}`);
      const res = await (from === undefined ? req : req.set('Cookie', from)).expect(200);
      expect(res.body.user).to.equal(user);
      return `session=${cookieValue(res)}`;
    };

    it("should list a user's live sessions with when each began, was last seen, which is current and what describe() said", async () => {
      const clock = manualClock(Date.now());
      const { server } = await serve({ now: clock.now, describe: (ctx) => ({ userAgent: ctx.get('user-agent') }) });
      const laptop = await login(server, 'alice');
      clock.advance(1000);
      const phone = await login(server, 'alice');
      await login(server, 'bob');
      await request(server).get('/count').expect(200); // anonymous: not listed anywhere
      const list = (await request(server).get('/devices').set('Cookie', phone).expect(200)).body as UserSession[];
      expect(list).to.have.length(2);
      const byCurrent = [...list].sort((a, b) => Number(a.current) - Number(b.current));
      expect(byCurrent.map((s) => s.current)).to.deep.equal([false, true]);
      expect(byCurrent.map((s) => s.createdAt)).to.deep.equal([clock.now() - 1000, clock.now()]);
      expect(byCurrent.map((s) => s.lastSeenAt)).to.deep.equal([clock.now() - 1000, clock.now()]);
      expect(byCurrent.map((s) => s.info)).to.deep.equal([{ userAgent: 'agent of alice' }, { userAgent: 'agent of alice' }]);
      // A handle is not the session's id and does not open as a cookie.
      const ids = [laptop, phone].map((cookie) => Buffer.from(cookie.slice('session='.length), 'base64url').subarray(23, 55).toString('base64url'));
      for (const { handle } of list) {
        expect(handle).to.match(/^[A-Za-z0-9_-]{43}$/);
        expect(ids).not.to.include(handle);
        await request(server).get('/').set('Cookie', `session=${handle}`).expect(200, { user: null, counter: null, isNew: true });
      }
    });

    it('should note lastSeenAt in the read, at most once a minute', async () => {
      const clock = manualClock(Date.now());
      const { server } = await serve({ now: clock.now });
      const laptop = await login(server, 'alice');
      const began = clock.now();
      const seen = async () => ((await request(server).get('/devices').set('Cookie', laptop).expect(200)).body as UserSession[])[0]?.lastSeenAt;
      clock.advance(30_000);
      // The /devices request itself is a read: it noted nothing, since the record holds none yet (a first is due).
      expect(await seen()).to.equal(began + 30_000);
      clock.advance(30_000);
      expect(await seen(), 'within a minute of the last one: unchanged').to.equal(began + 30_000);
      clock.advance(30_000);
      expect(await seen(), 'a minute after the last one: noted').to.equal(began + 90_000);
    });

    it("should end every other session of the user with revokeUser(user, { keep }), and no one else's", async () => {
      const { server } = await serve();
      const laptop = await login(server, 'alice');
      const phone = await login(server, 'alice');
      const tablet = await login(server, 'alice');
      const bob = await login(server, 'bob');
      const anonymous = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      await request(server).get('/others-out').set('Cookie', laptop).expect(200, { ended: 2 });
      for (const gone of [phone, tablet]) await request(server).get('/').set('Cookie', gone).expect(200, { user: null, counter: null, isNew: true });
      await request(server).get('/').set('Cookie', laptop).expect(200, { user: 'alice', counter: null, isNew: false });
      await request(server).get('/').set('Cookie', bob).expect(200, { user: 'bob', counter: null, isNew: false });
      await request(server).get('/').set('Cookie', anonymous).expect(200, { user: null, counter: 1, isNew: false });
      expect(((await request(server).get('/devices').set('Cookie', laptop).expect(200)).body as UserSession[]).map((s) => s.current)).to.deep.equal([
        true,
      ]);
      // Everywhere, this one included.
      await request(server).get('/everywhere-out').set('Cookie', laptop).expect(200, { ended: 1 });
      await request(server).get('/').set('Cookie', laptop).expect(200, { user: null, counter: null, isNew: true });
    });

    it('should end one session with revoke(handle)', async () => {
      const { server } = await serve();
      const laptop = await login(server, 'alice');
      const phone = await login(server, 'alice');
      const list = (await request(server).get('/devices').set('Cookie', laptop).expect(200)).body as UserSession[];
      const other = list.find((s) => !s.current) as UserSession;
      await request(server).get(`/revoke?handle=${other.handle}`).set('Cookie', laptop).expect(200);
      await request(server).get('/').set('Cookie', phone).expect(200, { user: null, counter: null, isNew: true });
      await request(server).get('/').set('Cookie', laptop).expect(200, { user: 'alice', counter: null, isNew: false });
      expect((await request(server).get('/devices').set('Cookie', laptop).expect(200)).body).to.have.length(1);
    });

    it('should take a session out of the index when its user signs out or it is purged, and index it again on sign-in', async () => {
      const { backend, server } = await serve();
      const laptop = await login(server, 'alice');
      const phone = await login(server, 'alice');
      await request(server).get('/logout').set('Cookie', phone).expect(200, { user: null, counter: null, isNew: false });
      expect(await backend.sessionsOf('alice')).to.have.length(1);
      await request(server).get('/purge').set('Cookie', laptop).expect(200);
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
      // The signed-out session signs in as another user: indexed under that one only.
      await login(server, 'bob', phone);
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
      expect(await backend.sessionsOf('bob')).to.have.length(1);
      expect(await backend.revokeUser('alice')).to.equal(0);
    });

    it('should make the pre-login cookie useless after renew() at login (session fixation)', async () => {
      const { server } = await serve();
      const before = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      const after = await login(server, 'alice', before);
      expect(after).not.to.equal(before);
      await request(server).get('/').set('Cookie', before).expect(200, { user: null, counter: null, isNew: true });
      await request(server).get('/').set('Cookie', after).expect(200, { user: 'alice', counter: 1, isNew: false });
    });

    it('should give a remembered session its own, longer lifetime (renew({ maxAge }))', async () => {
      const { server } = await serve({ idleTimeout: DAY });
      const res = await request(server).get('/login?user=alice&remember=1').expect(200);
      expect(res.headers['set-cookie']?.[0]).to.match(new RegExp(`Max-Age=${(30 * DAY) / 1000};`));
      const plain = await request(server).get('/login?user=alice').expect(200);
      expect(plain.headers['set-cookie']?.[0]).to.match(new RegExp(`Max-Age=${DAY / 1000};`));
    });

    it('should index a session that got its user before userKey was set, on its next request', async () => {
      const plain = new StoreSessionBackend(store.current.store, KEY_RING);
      const old = await listen(appWith(plain, loginApp(plain)));
      const cookie = await login(old, 'alice');
      const { backend, server } = await serve();
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
      await request(server).get('/').set('Cookie', cookie).expect(200, { user: 'alice', counter: null, isNew: false });
      expect(await backend.sessionsOf('alice')).to.have.length(1);
    });

    it('should not list or end a record the index names that is gone or belongs to someone else now', async () => {
      const { backend, server } = await serve();
      await login(server, 'alice');
      const bob = await login(server, 'bob');
      const [bobs] = await backend.sessionsOf('bob');
      const alice = createHash('sha256').update('alice').digest('base64url');
      const write = { createdAt: Date.now(), clear: false, set: new Map(), remove: [], ttlMs: 60_000, user: alice, until: Date.now() + 60_000 };
      // Writes refused, as on a cluster a write can fail after its index entry was written (the entry goes first):
      // a record that does not exist, and bob's, which exists, as if new.
      const refused = async () => {
        expect(await store.current.store.write('A'.repeat(43), { ...write, create: false })).to.equal(false);
        expect(await store.current.store.write(bobs?.handle as string, { ...write, create: true })).to.equal(false);
        // On a cluster the index now names both; a single node or memory wrote nothing (one atomic write).
        if (isRedis !== false) expect(indexSize(store, `sess:user:${alice}`)).to.equal(isRedis === 'cluster' ? 3 : 1);
      };
      await refused();
      const listed = await backend.sessionsOf('alice');
      expect(listed).to.have.length(1);
      expect(listed.map((s) => s.handle)).not.to.include(bobs?.handle);
      if (isRedis !== false) expect(indexSize(store, `sess:user:${alice}`), 'stale entries dropped').to.equal(1);
      await refused();
      expect(await backend.revokeUser('alice')).to.equal(1);
      await request(server).get('/').set('Cookie', bob).expect(200, { user: 'bob', counter: null, isNew: false });
      expect(await backend.sessionsOf('bob')).to.have.length(1);
    });

    // Waits out a real second: once per kind of store (the clients differ only in how they send the same scripts).
    if (/MemoryStore|node-redis 6|PostgresStore through node-postgres/.test(store.label))
      it('should drop the index entries of sessions that ended, so an index holds live sessions only', async () => {
        const { backend, server } = await serve({ idleTimeout: 1000, absoluteTimeout: 1000 });
        for (let i = 0; i < 5; i++) await login(server, 'alice');
        expect(await backend.sessionsOf('alice')).to.have.length(5);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect(await backend.sessionsOf('alice')).to.deep.equal([]);
        if (isRedis === 'single') expect(store.redis.cli('--scan', '--pattern', 'sess:user:*').trim()).to.equal('');
        if (isRedis === 'cluster') expect(store.cluster.keys('sess:user:*')).to.deep.equal([]);
      });

    // ioredis' and iovalkey's keyPrefix: the client prefixes every key it is sent, index entries sent back included.
    // Once per kind of Redis, on the servers of the ioredis 5 case.
    if (/ioredis 5/.test(store.label))
      it('should list and end the sessions of a user through ioredis and iovalkey clients with and without a keyPrefix', async () => {
        // The three clients share one API; typed as ioredis 5's.
        const single = (Client: unknown, keyPrefix?: string) =>
          new (Client as typeof IORedis)(store.redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, keyPrefix });
        const node = { host: '127.0.0.1', port: store.cluster.nodes[0]?.port as number };
        const cluster = (Client: unknown, keyPrefix?: string) => new (Client as typeof IORedisCluster)([node], { lazyConnect: true, keyPrefix });
        const clients: (() => IORedis | IORedisCluster)[] =
          isRedis === 'single'
            ? [IORedis, IORedis6, Valkey].flatMap((Client) => [undefined, 'myapp:'].map((prefix) => () => single(Client, prefix)))
            : [IORedisCluster, IORedisCluster6, ValkeyCluster].flatMap((Client) =>
                [undefined, '{x}app:'].map((prefix) => () => cluster(Client, prefix)),
              );
        for (const make of clients) {
          const client = make();
          await client.connect();
          try {
            const prefix = (client.options as { keyPrefix?: string }).keyPrefix ?? '';
            const backend = new StoreSessionBackend(new RedisStore(client), KEY_RING, { userKey: 'userId' });
            const server = await listen(appWith(backend, loginApp(backend)));
            const cookies = [await login(server, 'alice'), await login(server, 'alice'), await login(server, 'alice')];
            const what = `${client.constructor.name} keyPrefix ${prefix || 'none'}`;
            expect(await backend.sessionsOf('alice'), what).to.have.length(3);
            // An entry as 0.1 wrote it through a prefixing client (the record's key with the client's prefix):
            // still listed and ended.
            const alice = createHash('sha256').update('alice').digest('base64url');
            const index = `sess:user:${alice}`;
            const [entry] = await client.zrange(index, 0, 0);
            if (prefix !== '' && entry !== undefined) {
              await client.zrem(index, entry);
              await client.zadd(index, Date.now() + DAY, prefix + entry);
            }
            expect(await backend.sessionsOf('alice'), what).to.have.length(3);
            const current = cookies[0] as string;
            const kept = await request(server).get('/others-out').set('Cookie', current).expect(200);
            expect(kept.body, what).to.deep.equal({ ended: 2 });
            for (const cookie of cookies.slice(1))
              await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: null, isNew: true });
            await request(server).get('/').set('Cookie', current).expect(200, { user: 'alice', counter: null, isNew: false });
            expect(await backend.revokeUser('alice'), what).to.equal(1);
            expect(await backend.sessionsOf('alice'), what).to.deep.equal([]);
            await request(server).get('/').set('Cookie', current).expect(200, { user: null, counter: null, isNew: true });
          } finally {
            await client.quit();
          }
        }
      });

    it('should not let a request of a signed-out session keep itself with revokeUser(user, { keep }) once signed out', async () => {
      const backend = new StoreSessionBackend(store.current.store, KEY_RING, { userKey: 'userId' });
      const { route, arrived, open } = gated('/slow-others-out', async (ctx) => {
        // Its session was loaded before the victim signs out everywhere.
        ctx.body = { ended: await backend.revokeUser(ctx.session.get<string>('userId') as string, { keep: ctx.session }) };
        ctx.session.set('counter', 1);
      });
      const server = await listen(appWith(backend, route, loginApp(backend)));
      const stolen = await login(server, 'alice');
      const victim = await login(server, 'alice');
      const slow = request(server)
        .get('/slow-others-out')
        .set('Cookie', stolen)
        .then((res) => res);
      await arrived;
      await request(server).get('/everywhere-out').set('Cookie', victim).expect(200, { ended: 2 });
      open();
      expect((await slow).body).to.deep.equal({ ended: 0 });
      for (const cookie of [stolen, victim])
        await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: null, isNew: true });
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
    });

    it('should not bring back a session revoked while a request that renews it (regenerate at login) ran', async () => {
      const backend = new StoreSessionBackend(store.current.store, KEY_RING, { userKey: 'userId' });
      const { route, arrived, open } = gated('/slow-login', async (ctx) => {
        await ctx.session.regenerate();
        ctx.session.set('userId', 'alice');
        ctx.body = 'ok';
      });
      const server = await listen(appWith(backend, route, loginApp(backend)));
      const cookie = await login(server, 'alice');
      const slow = request(server)
        .get('/slow-login')
        .set('Cookie', cookie)
        .then((res) => res);
      await arrived;
      expect(await backend.revokeUser('alice')).to.equal(1);
      open();
      const res = await slow;
      expect(res.status).to.equal(200);
      expect(res.headers['set-cookie'], 'no cookie for a revived session').to.equal(undefined);
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
      await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: null, isNew: true });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.deep.equal([]);
    });

    it('should leave no session of the user alive that began before revokeUser(), under concurrent sign-ins and requests', async () => {
      const { backend, server } = await serve();
      const cookies = await Promise.all(Array.from({ length: 20 }, () => login(server, 'alice')));
      const traffic = Promise.all(cookies.map((cookie) => request(server).get('/count').set('Cookie', cookie)));
      const ended = await backend.revokeUser('alice');
      const answers = await traffic;
      expect(answers.map((res) => res.status)).to.deep.equal(cookies.map(() => 200));
      expect(ended).to.equal(20);
      for (const cookie of cookies) await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: null, isNew: true });
      expect(await backend.sessionsOf('alice')).to.deep.equal([]);
    });
  });

  it("should mark the request's own session current without being told, when the app keeps Koa's async local storage", async () => {
    const backend = new StoreSessionBackend(new MemoryStore(), KEY_RING, { userKey: 'userId' });
    const app = new Koa({ asyncLocalStorage: true });
    app.use(session(backend));
    app.use(async (ctx) => {
      if (ctx.path === '/login') signIn(ctx);
      ctx.body = ctx.path === '/devices' ? await backend.sessionsOf('alice') : 'ok';
    });
    const server = await listen(app);
    const first = `session=${cookieValue(await request(server).get('/login?user=alice').expect(200))}`;
    const second = `session=${cookieValue(await request(server).get('/login?user=alice').expect(200))}`;
    for (const cookie of [first, second]) {
      const list = (await request(server).get('/devices').set('Cookie', cookie).expect(200)).body as UserSession[];
      expect(list.map((s) => s.current).sort()).to.deep.equal([false, true]);
    }
    const a = (await request(server).get('/devices').set('Cookie', first)).body as UserSession[];
    const b = (await request(server).get('/devices').set('Cookie', second)).body as UserSession[];
    expect(a.find((s) => s.current)?.handle).not.to.equal(b.find((s) => s.current)?.handle);
  });

  describe('options and errors', () => {
    it('should refuse userKey with a store that keeps no user index, and describe without userKey', () => {
      const memory = new MemoryStore();
      const bare = { load: memory.load.bind(memory), write: memory.write.bind(memory), destroy: memory.destroy.bind(memory) };
      expect(() => new StoreSessionBackend(bare, KEY_RING, { userKey: 'userId' })).to.throw(SessionError, /userKey/);
      expect(() => new StoreSessionBackend(memory, KEY_RING, { userKey: '' })).to.throw(SessionError, /userKey/);
      expect(() => new StoreSessionBackend(memory, KEY_RING, { describe: () => 'x' })).to.throw(SessionError, /describe/);
    });

    it('should refuse sessionsOf and revokeUser without userKey, a user that is no id, and a handle that is none', async () => {
      const backend = new StoreSessionBackend(new MemoryStore(), KEY_RING);
      await expectRejected(backend.sessionsOf('alice'), 'ERR_SESSION_INVALID_OPTION');
      await expectRejected(backend.revokeUser('alice'), 'ERR_SESSION_INVALID_OPTION');
      const indexed = new StoreSessionBackend(new MemoryStore(), KEY_RING, { userKey: 'userId' });
      await expectRejected(indexed.sessionsOf({} as unknown as string), 'ERR_SESSION_UNSUPPORTED_VALUE');
      await expectRejected(indexed.revoke('not a handle'), 'ERR_SESSION_INVALID_OPTION');
      await expectRejected(indexed.revokeUser('alice', { keep: {} }), 'ERR_SESSION_INVALID_OPTION');
    });

    it('should refuse a user id with a lone surrogate, which would share its hash with the id that has U+FFFD there', async () => {
      const backend = new StoreSessionBackend(new MemoryStore(), KEY_RING, { userKey: 'userId' });
      const server = await listen(appWith(backend, loginApp(backend)));
      const res = await request(server)
        .get(`/login?user=${encodeURIComponent('Jos\ufffd')}`)
        .expect(200);
      const cookie = `session=${cookieValue(res)}`;
      await expectRejected(backend.revokeUser('Jos\ud800'), 'ERR_SESSION_UNSUPPORTED_VALUE');
      await expectRejected(backend.sessionsOf('Jos\ud800'), 'ERR_SESSION_UNSUPPORTED_VALUE');
      expect(await backend.sessionsOf('Jos\ufffd')).to.have.length(1);
      await request(server).get('/').set('Cookie', cookie).expect(200, { user: 'Jos\ufffd', counter: null, isNew: false });
    });

    it('should answer 500 for a user id that is no string or number, and keep the session as it was', async () => {
      const store = new MemoryStore();
      const backend = new StoreSessionBackend(store, KEY_RING, { userKey: 'userId' });
      const app = appWith(backend, (ctx) => {
        if (ctx.path === '/bad') ctx.session.set('userId', { id: 1 } as unknown as string);
        else ctx.session.set('counter', 1);
        ctx.body = 'ok';
      });
      const server = await listen(app);
      const cookie = `session=${cookieValue(await request(server).get('/').expect(200))}`;
      await request(server).get('/bad').set('Cookie', cookie).expect(500);
      expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_UNSUPPORTED_VALUE');
      expect(store.size).to.equal(1);
    });

    it('should refuse a describe() answer over 1 KiB with ERR_SESSION_TOO_LARGE, and store nothing', async () => {
      const store = new MemoryStore();
      const backend = new StoreSessionBackend(store, KEY_RING, { userKey: 'userId', describe: () => 'x'.repeat(2000) });
      const app = appWith(backend, loginApp(backend));
      await request(await listen(app))
        .get('/login?user=alice')
        .expect(500);
      expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_TOO_LARGE');
      expect(store.size).to.equal(0);
    });
  });
});

/** ZCARD of a user index, on the node that holds it. */
function indexSize(store: StoreUnderTest, key: string): number {
  const answers = store.kind === 'single' ? [store.redis.cli('ZCARD', key)] : store.cluster.nodes.map((node) => node.cli('ZCARD', key));
  const counts = answers.map((answer) => answer.trim()).filter((answer) => /^\d+$/.test(answer));
  expect(counts, `ZCARD ${key} answered by one node`).to.have.length(1);
  return Number(counts[0]);
}

async function expectRejected(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    expect((err as SessionError).code).to.equal(code);
    return;
  }
  expect.fail(`expected a rejection with ${code}`);
}
