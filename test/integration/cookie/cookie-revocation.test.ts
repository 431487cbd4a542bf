import { expect } from 'chai';
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis as IORedis, Cluster as IORedisCluster } from 'ioredis';
import { Cluster as ValkeyCluster, Valkey } from 'iovalkey';
import type Koa from 'koa';
import type { Server } from 'node:http';
import { createClient, createCluster } from 'redis';
import request from 'supertest';
import fc from 'fast-check';
import {
  CookieSessionBackend,
  KeyRing,
  MemoryRevocationStore,
  RedisRevocationStore,
  SessionError,
  type CookieSessionOptions,
  type Revocation,
  type RevocationStore,
  type RedisClientLike,
} from '../../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor, signIn } from '../../support/helpers.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../../support/redis-server.js';

/** A client with ioredis' API (ioredis, iovalkey). */
type IORedisLike = RedisClientLike & { connect(): Promise<unknown>; disconnect(): void; on(event: 'error', listener: () => void): unknown };

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const KEY_RING = new KeyRing([KEY_A]);

/** A login app on a cookie backend: /login?user=… (renew, then the user), /others-out, /everywhere-out, /count. */
function loginApp(backend: CookieSessionBackend): Koa.Middleware {
  return async (ctx) => {
    const session = ctx.session;
    const user = session.get<string>('userId');
    if (ctx.path === '/login') {
      const signedIn = signIn(ctx);
      if (ctx.query.then === 'others-out') await backend.revokeUser(signedIn, { keep: ctx.session });
    } else if (ctx.path === '/others-out' && user !== undefined) {
      await backend.revokeUser(user, { keep: ctx.session });
    } else if (ctx.path === '/everywhere-out' && user !== undefined) {
      await backend.revokeUser(user);
    } else if (ctx.path === '/count') {
      session.set('counter', (session.get<number>('counter') ?? 0) + 1);
    }
    ctx.body = { user: session.get('userId') ?? null, counter: session.get('counter') ?? null };
  };
}

const cookieOf = (res: request.Response) => `session=${cookieValue(res)}`;

describe('the absolute timeout of cookie sessions (absoluteTimeout)', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    it(`should end a session absoluteTimeout after it began, however often autoRenew re-sealed it (${label})`, async () => {
      const clock = manualClock();
      const backend = backendFor(mode, KEY_RING, {
        serializer: serializer(),
        now: clock.now,
        maxAge: DAY,
        autoRenew: true,
        absoluteTimeout: 3 * DAY,
      });
      const server = await listen(appWith(backend, loginApp(backend)));
      let cookie = cookieOf(await request(server).get('/count').expect(200));
      let renewals = 0;
      for (let hour = 11; hour < 72; hour += 11) {
        clock.advance(11 * HOUR);
        const res = await request(server).get('/').set('Cookie', cookie).expect(200);
        expect(res.body.counter, `after ${hour} hours`).to.equal(1);
        if (setCookieFor(res) !== undefined) [cookie, renewals] = [cookieOf(res), renewals + 1];
      }
      expect(renewals).to.be.at.least(2);
      // 72 hours: the cookie is fresh (re-sealed at most 11 hours ago) but the session is three days old.
      clock.advance(6 * HOUR);
      await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: null });
    });

    it(`should cap the cookie's Max-Age at the absolute deadline, and start again on renew() (${label})`, async () => {
      const clock = manualClock();
      const backend = backendFor(mode, KEY_RING, { serializer: serializer(), now: clock.now, maxAge: DAY, absoluteTimeout: 2 * DAY });
      const server = await listen(appWith(backend, loginApp(backend)));
      const first = await request(server).get('/count').expect(200);
      expect(setCookieFor(first)).to.match(new RegExp(`Max-Age=${DAY / 1000};`));
      clock.advance(20 * HOUR);
      const middle = await request(server).get('/count').set('Cookie', cookieOf(first)).expect(200, { user: null, counter: 2 });
      expect(setCookieFor(middle)).to.match(new RegExp(`Max-Age=${DAY / 1000};`));
      clock.advance(16 * HOUR);
      const late = await request(server).get('/count').set('Cookie', cookieOf(middle)).expect(200, { user: null, counter: 3 });
      expect(setCookieFor(late)).to.match(new RegExp(`Max-Age=${(12 * HOUR) / 1000};`));
      const renewed = await request(server).get('/login?user=ada').set('Cookie', cookieOf(late)).expect(200);
      expect(setCookieFor(renewed)).to.match(new RegExp(`Max-Age=${DAY / 1000};`));
      clock.advance(20 * HOUR);
      await request(server).get('/').set('Cookie', cookieOf(renewed)).expect(200, { user: 'ada', counter: 3 });
    });
  }

  it('should default to 30 days, or maxAge when that is longer, and refuse what no lifetime can be', async () => {
    for (const [maxAge, resealAt, opensAt31Days] of [
      [20 * DAY, 15 * DAY, false],
      [40 * DAY, 25 * DAY, true],
    ] as const) {
      const clock = manualClock();
      const backend = backendFor('signed', KEY_RING, { now: clock.now, maxAge, autoRenew: true });
      const server = await listen(appWith(backend, loginApp(backend)));
      let cookie = cookieOf(await request(server).get('/count').expect(200));
      clock.advance(resealAt); // past half its lifetime: re-sealed
      cookie = cookieOf(await request(server).get('/').set('Cookie', cookie).expect(200, { user: null, counter: 1 }));
      clock.advance(31 * DAY - resealAt);
      await request(server)
        .get('/')
        .set('Cookie', cookie)
        .expect(200, { user: null, counter: opensAt31Days ? 1 : null });
    }
    expect(() => backendFor('signed', KEY_RING, { absoluteTimeout: 10 })).to.throw(SessionError, /absoluteTimeout/);
    expect(() => backendFor('signed', KEY_RING, { absoluteTimeout: 500 * DAY })).to.throw(SessionError, /absoluteTimeout/);
  });
});

/** Counts the revocation store's calls: how often the cache let a request through to it. */
class Counted implements RevocationStore {
  asked = 0;
  /** How long each question takes, in ms: a store over the network. */
  delayMs = 0;
  constructor(readonly inner: RevocationStore) {}
  async get(user: string) {
    this.asked += 1;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.inner.get(user);
  }
  set(user: string, revocation: Revocation, ttlMs: number) {
    return this.inner.set(user, revocation, ttlMs);
  }
}

describe('revoking the cookies of one user (userKey, revocations, revokeUser)', function () {
  this.timeout(30_000);

  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const setup = async (options: CookieSessionOptions = {}) => {
        const clock = manualClock(Date.now());
        const store = new Counted(new MemoryRevocationStore({ now: clock.now }));
        const backend = backendFor(mode, KEY_RING, { serializer: serializer(), now: clock.now, userKey: 'userId', revocations: store, ...options });
        return { clock, store, backend, server: await listen(appWith(backend, loginApp(backend))) };
      };
      /** A clock that moves on by a millisecond each time it is read, as a real one does between two reads. */
      const ticking = async () => {
        let t = Date.now();
        const now = () => (t += 1);
        const store = new MemoryRevocationStore({ now });
        const backend = backendFor(mode, KEY_RING, { serializer: serializer(), now, userKey: 'userId', revocations: store });
        return { server: await listen(appWith(backend, loginApp(backend))) };
      };

      it("should stop every earlier cookie of the user opening, and no one else's", async () => {
        const { clock, server } = await setup();
        const laptop = cookieOf(await request(server).get('/login?user=alice').expect(200));
        const phone = cookieOf(await request(server).get('/login?user=alice').expect(200));
        const bob = cookieOf(await request(server).get('/login?user=bob').expect(200));
        const anonymous = cookieOf(await request(server).get('/count').expect(200));
        clock.advance(1000);
        await request(server).get('/everywhere-out').set('Cookie', laptop).expect(200);
        for (const gone of [laptop, phone]) await request(server).get('/').set('Cookie', gone).expect(200, { user: null, counter: null });
        await request(server).get('/').set('Cookie', bob).expect(200, { user: 'bob', counter: null });
        await request(server).get('/').set('Cookie', anonymous).expect(200, { user: null, counter: 1 });
        // Signing in again after the revocation works.
        clock.advance(1);
        const again = cookieOf(await request(server).get('/login?user=alice').expect(200));
        await request(server).get('/').set('Cookie', again).expect(200, { user: 'alice', counter: null });
      });

      it('should keep the session given as keep signed in, with the cookie it has, and one it begins in the same request', async () => {
        const { server } = await ticking();
        const laptop = cookieOf(await request(server).get('/login?user=alice').expect(200));
        const phone = cookieOf(await request(server).get('/login?user=alice').expect(200));
        const res = await request(server).get('/others-out').set('Cookie', laptop).expect(200, { user: 'alice', counter: null });
        expect(setCookieFor(res), 'nothing to write: the kept cookie is known by when its session began').to.equal(undefined);
        await request(server).get('/').set('Cookie', laptop).expect(200, { user: 'alice', counter: null });
        await request(server).get('/').set('Cookie', phone).expect(200, { user: null, counter: null });
        // A later revocation without keep ends it too; a session that signs in and keeps itself at once survives.
        await request(server).get('/everywhere-out').set('Cookie', laptop).expect(200);
        await request(server).get('/').set('Cookie', laptop).expect(200, { user: null, counter: null });
        const fresh = cookieOf(await request(server).get('/login?user=alice&then=others-out').expect(200));
        await request(server).get('/').set('Cookie', fresh).expect(200, { user: 'alice', counter: null });
      });

      it('should not let a server that has not heard of the revocation yet re-seal a revoked session out of it', async () => {
        const { clock, store, backend } = await setup();
        const other = backendFor(mode, KEY_RING, {
          serializer: serializer(),
          now: clock.now,
          userKey: 'userId',
          revocations: store,
          revocationCacheMs: 5000,
        });
        const here = await listen(appWith(backend, loginApp(backend)));
        const there = await listen(appWith(other, loginApp(other)));
        const alice = cookieOf(await request(here).get('/login?user=alice').expect(200));
        await request(there).get('/').set('Cookie', alice).expect(200, { user: 'alice', counter: null }); // cached: not revoked
        clock.advance(1000);
        await backend.revokeUser('alice');
        // Within its cache bound the other server still serves it, and seals a changed cookie, now...
        const resealed = cookieOf(await request(there).get('/count').set('Cookie', alice).expect(200, { user: 'alice', counter: 1 }));
        // ...which still carries when the session began: revoked once the bound has passed.
        clock.advance(5000);
        await request(there).get('/').set('Cookie', resealed).expect(200, { user: null, counter: null });
        await request(here).get('/').set('Cookie', resealed).expect(200, { user: null, counter: null });
      });

      it('should open the pre-login cookie only as the anonymous session it was (session fixation)', async () => {
        const { server } = await setup();
        const before = cookieOf(await request(server).get('/count').expect(200));
        const after = cookieOf(await request(server).get('/login?user=alice').set('Cookie', before).expect(200));
        expect(after).not.to.equal(before);
        await request(server).get('/').set('Cookie', before).expect(200, { user: null, counter: 1 });
        await request(server).get('/').set('Cookie', after).expect(200, { user: 'alice', counter: 1 });
      });

      it('should ask the store at most once per revocationCacheMs per user, and not at all without a user', async () => {
        const { clock, store, server } = await setup({ revocationCacheMs: 5000 });
        store.delayMs = 30;
        const alice = cookieOf(await request(server).get('/login?user=alice').expect(200));
        const anonymous = cookieOf(await request(server).get('/count').expect(200));
        for (let i = 0; i < 5; i++) await request(server).get('/').set('Cookie', anonymous).expect(200);
        expect(store.asked).to.equal(0);
        await Promise.all(Array.from({ length: 10 }, () => request(server).get('/').set('Cookie', alice).expect(200)));
        expect(store.asked, 'ten concurrent requests, one question').to.equal(1);
        clock.advance(4999);
        await request(server).get('/').set('Cookie', alice).expect(200);
        expect(store.asked).to.equal(1);
        clock.advance(1);
        await request(server).get('/').set('Cookie', alice).expect(200);
        expect(store.asked).to.equal(2);
      });

      it('should not open a cookie whose user value is no user id', async () => {
        const { backend, server } = await setup();
        const token = backend.seal({ userId: { not: 'an id' } });
        await request(server).get('/').set('Cookie', `session=${token}`).expect(200, { user: null, counter: null });
      });
    });
  }

  it('should refuse to revoke a user id with a lone surrogate, which would share its entry with the id that has U+FFFD there', async () => {
    const backend = CookieSessionBackend.private(KEY_RING, { userKey: 'userId', revocations: new MemoryRevocationStore() });
    const server = await listen(appWith(backend, loginApp(backend)));
    const cookie = cookieOf(
      await request(server)
        .get(`/login?user=${encodeURIComponent('Jos\ufffd')}`)
        .expect(200),
    );
    let refused: unknown;
    await backend.revokeUser('Jos\ud800').catch((err: unknown) => (refused = err));
    expect((refused as SessionError).code).to.equal('ERR_SESSION_UNSUPPORTED_VALUE');
    await request(server).get('/').set('Cookie', cookie).expect(200, { user: 'Jos\ufffd', counter: null });
  });

  it('should hold the documented bound for clocks that disagree: exactly the skew, in both directions', async () => {
    const real = manualClock(Date.now());
    const SKEW = 20_000; // within CLOCK_SKEW_MS
    const revocations = new MemoryRevocationStore({ now: real.now });
    const serverAt = async (offset: number) => {
      const backend = CookieSessionBackend.private(KEY_RING, {
        userKey: 'userId',
        revocations,
        revocationCacheMs: 0,
        now: () => real.now() + offset,
      });
      return listen(appWith(backend, loginApp(backend)));
    };
    const [correct, ahead, behind] = [await serverAt(0), await serverAt(SKEW), await serverAt(-SKEW)];
    const opensOn = async (cookie: string) => {
      const users = [];
      for (const server of [correct, ahead, behind])
        users.push(((await request(server).get('/').set('Cookie', cookie)).body as { user: string | null }).user);
      return users;
    };
    // A server running ahead: what it began up to SKEW before a revocation (by the revoking server's clock) escapes it.
    const early = cookieOf(await request(ahead).get('/login?user=alice').expect(200));
    real.advance(SKEW + 1);
    const escapes = cookieOf(await request(ahead).get('/login?user=alice').expect(200));
    real.advance(1000);
    await request(correct).get('/everywhere-out').set('Cookie', early).expect(200, { user: 'alice', counter: null });
    expect(await opensOn(early), 'begun SKEW + 1 s before: revoked everywhere').to.deep.equal([null, null, null]);
    expect(await opensOn(escapes), 'begun 1 s before on a server SKEW ahead: escapes, everywhere').to.deep.equal(['alice', 'alice', 'alice']);
    // A server running behind: its revocation misses what began up to SKEW before it by the others' clocks...
    real.advance(60_000);
    const missed = cookieOf(await request(correct).get('/login?user=carol').expect(200));
    real.advance(SKEW - 1000);
    await request(behind).get('/everywhere-out').set('Cookie', missed).expect(200, { user: 'carol', counter: null });
    expect(await opensOn(missed), 'begun SKEW - 1 s before a revocation on a server SKEW behind: missed').to.deep.equal(['carol', 'carol', 'carol']);
    real.advance(1);
    const caught = cookieOf(await request(correct).get('/login?user=carol').expect(200));
    real.advance(SKEW + 1000);
    await request(behind).get('/everywhere-out').set('Cookie', caught).expect(200, { user: 'carol', counter: null });
    expect(await opensOn(caught), 'begun SKEW + 1 s before it: revoked').to.deep.equal([null, null, null]);
    // ...and what it begins up to SKEW after a revocation by the others' clocks is revoked too (signed in again).
    real.advance(60_000);
    await request(correct)
      .get('/everywhere-out')
      .set('Cookie', cookieOf(await request(correct).get('/login?user=dan').expect(200)));
    real.advance(1000);
    const signedOut = cookieOf(await request(behind).get('/login?user=dan').expect(200));
    real.advance(SKEW);
    const kept = cookieOf(await request(behind).get('/login?user=dan').expect(200));
    expect(await opensOn(signedOut), 'begun 1 s after on a server SKEW behind: revoked').to.deep.equal([null, null, null]);
    expect(await opensOn(kept), 'begun SKEW + 1 s after: kept').to.deep.equal(['dan', 'dan', 'dan']);
  });

  it('should refuse revocations without userKey, a store that is none, and revokeUser without revocations', async () => {
    const store = new MemoryRevocationStore();
    expect(() => CookieSessionBackend.signed(KEY_RING, { revocations: store })).to.throw(SessionError, /userKey/);
    expect(() => CookieSessionBackend.signed(KEY_RING, { userKey: 'userId', revocations: {} as RevocationStore })).to.throw(
      SessionError,
      /revocations/,
    );
    expect(() => CookieSessionBackend.signed(KEY_RING, { userKey: 'userId', revocations: store, revocationStoreDown: 'maybe' as 'reject' })).to.throw(
      SessionError,
      /revocationStoreDown/,
    );
    let err: unknown;
    try {
      await CookieSessionBackend.signed(KEY_RING, { userKey: 'userId' }).revokeUser('alice');
    } catch (caught) {
      err = caught;
    }
    expect((err as SessionError).code).to.equal('ERR_SESSION_INVALID_OPTION');
  });
});

describe('revocations in Redis (RedisRevocationStore)', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let cluster: RedisCluster;
  before(async () => {
    redis = await startRedis();
    cluster = await startRedisCluster();
  });
  after(async () => {
    await redis?.stop();
    await cluster?.stop();
  });

  const SINGLE_NODE = { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 };
  const clusterRoots = () => [{ host: '127.0.0.1', port: cluster.nodes[0]?.port as number }];
  // ioredis and iovalkey share one API: connected and closed alike; `quiet` swallows the single node's reconnect errors.
  const ioredisLike = (label: string, connect: () => IORedisLike, { quiet }: { quiet: boolean }) => ({
    label,
    make: async () => {
      const client = connect();
      if (quiet) client.on('error', () => undefined);
      await client.connect();
      return { client, close: async () => client.disconnect() };
    },
  });
  const CLIENTS = [
    {
      label: 'node-redis',
      make: async () => {
        const client = createClient({ url: redis.url, socket: { reconnectStrategy: () => 50 } });
        client.on('error', () => undefined);
        await client.connect();
        return { client, close: () => client.destroy() };
      },
    },
    ioredisLike('ioredis', () => new IORedis(redis.port, '127.0.0.1', SINGLE_NODE), { quiet: true }),
    ioredisLike('iovalkey', () => new Valkey(redis.port, '127.0.0.1', SINGLE_NODE), { quiet: true }),
    {
      label: 'node-redis on a cluster',
      make: async () => {
        const client = await createCluster({ rootNodes: [{ url: cluster.nodes[0]?.url }] }).connect();
        return { client, close: () => client.close() };
      },
    },
    ioredisLike('ioredis on a cluster', () => new IORedisCluster(clusterRoots(), { lazyConnect: true }), { quiet: false }),
    ioredisLike('iovalkey on a cluster', () => new ValkeyCluster(clusterRoots(), { lazyConnect: true }), { quiet: false }),
  ];

  for (const { label, make } of CLIENTS) {
    it(`should keep the revocations of a user as one (the later time; a keep only if not revoked), for as long as asked (${label})`, async () => {
      const { client, close } = await make();
      try {
        const store = new RedisRevocationStore(client, { prefix: `revoked-${label.replace(/ /g, '-')}:` });
        expect(await store.get('u1')).to.equal(undefined);
        await store.set('u1', { before: 2000, except: 1500 }, 60_000);
        await store.set('u1', { before: 1000 }, 60_000);
        expect(await store.get('u1')).to.deep.equal({ before: 2000, except: 1500 });
        // The merged entry lives as long as the longer of the two asked: the earlier one's sessions stay ended.
        await store.set('u1', { before: 3000 }, 50);
        expect(await store.get('u1')).to.deep.equal({ before: 3000 });
        await store.set('u2', { before: 3000 }, 50);
        await new Promise((resolve) => setTimeout(resolve, 120));
        expect(await store.get('u2')).to.equal(undefined);
        expect(await store.get('u1')).to.deep.equal({ before: 3000 });
      } finally {
        await close();
      }
    });
  }

  it('should fail closed on a malformed revocation entry, whatever revocationStoreDown says', async () => {
    const { client, close } = await (CLIENTS[0] as (typeof CLIENTS)[number]).make();
    try {
      const custom: RevocationStore = { get: async () => ({ before: 'not a time' }) as unknown as Revocation, set: async () => undefined };
      for (const [revocations, plant] of [
        [new RedisRevocationStore(client, { prefix: 'malformed:' }), (user: string) => redis.cli('SET', `malformed:${user}`, 'not a time')],
        [custom, () => undefined],
      ] as const) {
        for (const down of ['accept', 'reject'] as const) {
          const backend = CookieSessionBackend.private(KEY_RING, { userKey: 'userId', revocations, revocationCacheMs: 0, revocationStoreDown: down });
          const app = appWith(backend, loginApp(backend));
          const server = await listen(app);
          const alice = cookieOf(await request(server).get('/login?user=alice').expect(200));
          plant(createHash('sha256').update('alice').digest('base64url'));
          await request(server).get('/').set('Cookie', alice).expect(200, { user: null, counter: null });
          expect(app.errors).to.deep.equal([]);
        }
      }
    } finally {
      await close();
    }
  });

  /** Two servers on one revocation store, each with its own cache, on one manual clock. */
  const twoServers = async (revocations: RevocationStore, clock: { now: () => number }) => {
    const options = { userKey: 'userId', revocations, revocationCacheMs: 300, now: clock.now };
    const backends = [CookieSessionBackend.private(KEY_RING, options), CookieSessionBackend.private(KEY_RING, options)];
    return Promise.all(backends.map((backend) => listen(appWith(backend, loginApp(backend)))));
  };

  it('should not let a stolen cookie shelter itself from "sign out everywhere" through a server whose cache is stale', async () => {
    const { client, close } = await (CLIENTS[0] as (typeof CLIENTS)[number]).make();
    try {
      const clock = manualClock(Date.now());
      const [a, b] = (await twoServers(new RedisRevocationStore(client, { prefix: 'shelter:' }), clock)) as [Server, Server];
      const victim = cookieOf(await request(a).get('/login?user=alice').expect(200));
      const stolen = victim; // the attacker's copy
      clock.advance(10);
      await request(b).get('/').set('Cookie', stolen).expect(200, { user: 'alice', counter: null }); // B caches "not revoked"
      clock.advance(10);
      await request(a).get('/everywhere-out').set('Cookie', victim).expect(200);
      clock.advance(10);
      // Within B's cache: the stolen cookie still opens there, and asks to sign out every other session.
      await request(b).get('/others-out').set('Cookie', stolen).expect(200, { user: 'alice', counter: null });
      for (const server of [a, b]) await request(server).get('/').set('Cookie', stolen).expect(200, { user: null, counter: null });
      clock.advance(1000);
      for (const server of [a, b]) await request(server).get('/').set('Cookie', stolen).expect(200, { user: null, counter: null });
      // A session begun after the sign-out still keeps itself.
      const fresh = cookieOf(await request(a).get('/login?user=alice').expect(200));
      clock.advance(10);
      await request(b).get('/others-out').set('Cookie', fresh).expect(200, { user: 'alice', counter: null });
      clock.advance(1000);
      for (const server of [a, b]) await request(server).get('/').set('Cookie', fresh).expect(200, { user: 'alice', counter: null });
    } finally {
      await close();
    }
  });

  it('should never open a session an earlier revocation ended, over random logins, revokes and keeps on two servers', async () => {
    const { client, close } = await (CLIENTS[0] as (typeof CLIENTS)[number]).make();
    let run = 0;
    const step = fc.record({
      kind: fc.constantFrom('login', 'everywhere', 'others', 'read', 'wait'),
      server: fc.integer({ min: 0, max: 1 }),
      session: fc.nat(),
      ms: fc.integer({ min: 1, max: 400 }),
    });
    try {
      for (const storeOf of [
        () => new MemoryRevocationStore({ now: Date.now }),
        () => new RedisRevocationStore(client, { prefix: `prop${run++}:` }),
      ]) {
        await fc.assert(
          fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
            const clock = manualClock(Date.now());
            const servers = await twoServers(storeOf(), clock);
            // The model: each session's cookie, when it began, and whether a revocation ended it (for good).
            const sessions: { cookie: string; createdAt: number; revoked: boolean }[] = [];
            for (const { kind, server: i, session: k, ms } of steps) {
              const server = servers[i] as Server;
              const target = sessions[k % Math.max(1, sessions.length)];
              clock.advance(kind === 'wait' ? ms : 1);
              if (kind === 'login') {
                sessions.push({
                  cookie: cookieOf(await request(server).get('/login?user=alice').expect(200)),
                  createdAt: clock.now(),
                  revoked: false,
                });
              } else if (target !== undefined && kind !== 'wait') {
                const path = kind === 'read' ? '/' : kind === 'everywhere' ? '/everywhere-out' : '/others-out';
                const res = await request(server).get(path).set('Cookie', target.cookie).expect(200);
                const opened = (res.body as { user: string | null }).user === 'alice';
                // Opened although revoked: only from a cache younger than revocationCacheMs, never for good.
                if (opened && kind !== 'read') {
                  const now = clock.now();
                  for (const other of sessions) if (other.createdAt < now && (kind === 'everywhere' || other !== target)) other.revoked = true;
                  // A keep spares only a session no earlier revocation ended.
                }
              }
            }
            clock.advance(1000); // past every cache
            for (const { cookie, revoked } of sessions) {
              for (const server of servers) {
                const user = ((await request(server).get('/').set('Cookie', cookie).expect(200)).body as { user: string | null }).user;
                expect(user, revoked ? 'a revoked session opened' : 'a live session was signed out').to.equal(revoked ? null : 'alice');
              }
            }
          }),
          { numRuns: 40 },
        );
      }
    } finally {
      await close();
    }
  });

  it('should fail closed (503) while Redis is stalled, or open the cookie with revocationStoreDown: accept', async () => {
    const { client, close } = await (CLIENTS[0] as (typeof CLIENTS)[number]).make();
    try {
      const revocations = new RedisRevocationStore(client);
      const strict = CookieSessionBackend.private(KEY_RING, { userKey: 'userId', revocations, revocationCacheMs: 0, revocationTimeout: 200 });
      const lenient = CookieSessionBackend.private(KEY_RING, {
        userKey: 'userId',
        revocations,
        revocationCacheMs: 0,
        revocationTimeout: 200,
        revocationStoreDown: 'accept',
      });
      const strictApp = appWith(strict, loginApp(strict));
      const strictServer = await listen(strictApp);
      const lenientServer = await listen(appWith(lenient, loginApp(lenient)));
      const alice = cookieOf(await request(strictServer).get('/login?user=alice').expect(200));
      const anonymous = cookieOf(await request(strictServer).get('/count').expect(200));
      redis.pause();
      try {
        const started = Date.now();
        await request(strictServer).get('/').set('Cookie', alice).expect(503);
        expect(Date.now() - started).to.be.below(1500);
        await request(lenientServer).get('/').set('Cookie', alice).expect(200, { user: 'alice', counter: null });
        // No user, no question: unaffected by the outage.
        await request(strictServer).get('/').set('Cookie', anonymous).expect(200, { user: null, counter: 1 });
      } finally {
        redis.resume();
      }
      expect((strictApp.errors[0] as SessionError).code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
      await request(strictServer).get('/').set('Cookie', alice).expect(200, { user: 'alice', counter: null });
    } finally {
      await close();
    }
  });

  it('should stop a revoked cookie opening on a second app process within revocationCacheMs', async () => {
    const cacheMs = 500;
    const { client, close } = await (CLIENTS[0] as (typeof CLIENTS)[number]).make();
    const peer = fork(fileURLToPath(new URL('../../support/revocation-peer.js', import.meta.url)), [String(redis.port), String(cacheMs)], {
      stdio: 'ignore',
    });
    try {
      const [port] = (await once(peer, 'message')) as [number];
      const here = CookieSessionBackend.private(KEY_RING, {
        userKey: 'userId',
        revocations: new RedisRevocationStore(client),
        revocationCacheMs: cacheMs,
      });
      const server = await listen(appWith(here, loginApp(here)));
      const alice = cookieOf(await request(server).get('/login?user=alice').expect(200));
      const other = `http://127.0.0.1:${port}`;
      const userThere = async () => ((await (await fetch(`${other}/`, { headers: { cookie: alice } })).json()) as { user: string | null }).user;
      expect(await userThere()).to.equal('alice'); // the peer has now cached "not revoked"
      await new Promise((resolve) => setTimeout(resolve, 1));
      await here.revokeUser('alice');
      const revokedAt = Date.now();
      await request(server).get('/').set('Cookie', alice).expect(200, { user: null, counter: null }); // here: at once
      let openedFor = 0;
      for (;;) {
        if ((await userThere()) === null) break;
        openedFor = Date.now() - revokedAt;
        expect(openedFor, 'still opening on the peer').to.be.below(cacheMs + 1000);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(openedFor).to.be.at.most(cacheMs + 100);
    } finally {
      peer.kill();
      await close();
    }
  });
});
