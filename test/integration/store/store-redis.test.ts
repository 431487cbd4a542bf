import { expect } from 'chai';
import { fork } from 'node:child_process';
import { inspect } from 'node:util';
import { Redis as IORedis } from 'ioredis';
import { createClient } from 'redis';
import request from 'supertest';
import fc from 'fast-check';
import { KeyRing, RedisStore, StoreSessionBackend, type SessionError } from '../../../src/index.js';
import { KEY_A, appWith, cookieValue, expectSessionError, listen, rawGet } from '../../support/helpers.js';
import { roundTrips, startRedis, type RedisServer } from '../../support/redis-server.js';
import Koa from 'koa';
import koaSession from 'koa-session';
import redisStore from 'koa-redis';

const counter: Koa.Middleware = (ctx) => {
  if (ctx.path === '/renew') ctx.session.renew();
  if (ctx.path === '/purge') ctx.session.purge();
  if (ctx.path === '/count') ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
  ctx.body = { counter: ctx.session.get('counter') ?? null, isNew: ctx.session.isNew };
};

describe('the store backend on a real redis-server', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis({ persistence: true });
  });
  after(async () => {
    await redis?.stop();
  });

  const CLIENTS = [
    // batches: sends commands of one turn of the event loop in one write, so a read is two pipelined commands.
    {
      label: 'node-redis',
      batches: true,
      make: async () => {
        const client = createClient({ url: redis.url, socket: { reconnectStrategy: () => 50 } });
        client.on('error', () => undefined); // reconnects are expected here
        await client.connect();
        return { client, close: () => client.destroy() };
      },
    },
    {
      label: 'ioredis',
      batches: false,
      make: async () => {
        const client = new IORedis(redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
        client.on('error', () => undefined);
        await client.connect();
        return { client, close: () => client.disconnect() };
      },
    },
  ];

  for (const { label, batches, make } of CLIENTS) {
    describe(`through ${label}`, () => {
      let client: object;
      let close: () => unknown;
      beforeEach(async () => {
        redis.cli('FLUSHALL');
        ({ client, close } = await make());
      });
      afterEach(() => close());

      it('should cost no command without a valid cookie, one to read, two to change (Redis INFO commandstats)', async () => {
        const server = await listen(appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A])), counter));
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        // A server's first call of a script is an EVALSHA it refuses, then EVAL: these make each script known.
        const spare = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        await request(server).get('/').set('Cookie', spare).expect(200);
        await request(server).get('/purge').set('Cookie', spare).expect(200);
        // A read is HGETALL and PEXPIRE: pipelined, or a script (whose commands commandstats counts too). A change
        // also reads the record's size (@b) and the changed field's, so that maxBytes holds in the script.
        const read: Record<string, number> = batches ? { hgetall: 1, pexpire: 1 } : { evalsha: 1, hgetall: 1, pexpire: 1 };
        const cases: [string, string | undefined, Record<string, number>][] = [
          ['/', undefined, {}],
          ['/', 'session=garbage', {}],
          ['/', `session=${cookie.slice(9, -2)}AA`, {}],
          ['/', cookie, read],
          ['/count', cookie, { ...read, evalsha: (read.evalsha ?? 0) + 1, pexpire: 2, exists: 1, hget: 1, hstrlen: 1, hset: 2, time: 1 }],
        ];
        for (const [path, header, expected] of cases) {
          redis.resetStats();
          const req = request(server).get(path);
          await (header === undefined ? req : req.set('Cookie', header)).expect(200);
          expect(redis.commandCounts(), `${path} ${header ?? 'no cookie'}`).to.deep.equal(expected);
        }
        // Round trips: each script call, and a pipelined read's HGETALL (PEXPIRE rides along). A new session 1,
        // renew() 2 (the new record replaces the old one in the same script), purge() 2.
        const sent = () => roundTrips(redis.commandCounts(), batches);
        redis.resetStats();
        await request(server).get('/count').expect(200);
        expect(sent(), 'new session').to.equal(1);
        redis.resetStats();
        const renewed = `session=${cookieValue(await request(server).get('/renew').set('Cookie', cookie).expect(200))}`;
        expect(sent(), 'renew').to.equal(2);
        redis.resetStats();
        await request(server).get('/purge').set('Cookie', renewed).expect(200);
        expect(sent(), 'purge').to.equal(2);
      });

      it('should give each record a Redis TTL that follows the idle timeout, extended by each read', async () => {
        const server = await listen(appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]), { idleTimeout: 60_000 }), counter));
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        const [key] = redis.cli('--scan', '--pattern', 'sess:*').split('\n');
        const ttl = () => Number(redis.cli('PTTL', key as string));
        expect(ttl()).to.be.within(55_000, 60_000);
        redis.cli('PEXPIRE', key as string, '5000');
        await request(server).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
        expect(ttl()).to.be.within(55_000, 60_000);
        redis.cli('PEXPIRE', key as string, '1');
        await new Promise((resolve) => setTimeout(resolve, 20));
        await request(server).get('/').set('Cookie', cookie).expect(200, { counter: null, isNew: true });
      });

      it('should start a new session, not answer 503, when another type of value stands under the record key', async () => {
        const app = appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A])), counter);
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        const [key] = redis.cli('--scan', '--pattern', 'sess:*').split('\n');
        redis.cli('UNLINK', key as string);
        redis.cli('SET', key as string, 'not a session', 'PX', '60000');
        const res = await request(server).get('/count').set('Cookie', cookie).expect(200, { counter: 1, isNew: true });
        expect(`session=${cookieValue(res)}`).not.to.equal(cookie);
        expect(redis.cli('GET', key as string).trim()).to.equal('not a session');
        expect(app.errors).to.deep.equal([]);
      });

      it("should keep the session's data, ids and keys out of a 503's cause when Redis refuses a write (maxmemory)", async () => {
        const app = appWith(
          new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]), { userKey: 'userId' }),
          async (ctx, next) => {
            if (ctx.path === '/secret') ctx.session.set('csrfSecret', 'csrf-9d2f7a1c');
            if (ctx.path === '/login') ctx.session.set('userId', 'alice');
            await next();
          },
          counter,
        );
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
        redis.cli('CONFIG', 'SET', 'maxmemory', '1');
        try {
          await request(server).get('/secret').set('Cookie', cookie).expect(503);
          await request(server).get('/login').set('Cookie', cookie).expect(503);
        } finally {
          redis.cli('CONFIG', 'SET', 'maxmemory', '0');
        }
        expect(app.errors).to.have.length(2);
        const [key] = redis.cli('--scan', '--pattern', 'sess:*').split('\n');
        for (const err of app.errors) {
          expect((err as SessionError).code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
          const cause = (err as { cause?: { message?: string; args?: unknown; command?: unknown } }).cause;
          expect(cause?.message).to.match(/OOM/);
          expect(cause?.command).to.equal(undefined);
          const printed = inspect(err, { depth: 10, showHidden: true });
          for (const secret of ['csrf-9d2f7a1c', 'csrfSecret', 'alice', key as string, 'sess:']) expect(printed).not.to.include(secret);
        }
      });

      it('should answer 503 within storeTimeout while Redis is stalled (SIGSTOP), then find every session intact', async () => {
        const app = appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]), { storeTimeout: 300 }), counter);
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        redis.pause();
        try {
          for (const path of ['/', '/count']) {
            const started = Date.now();
            const res = await request(server).get(path).set('Cookie', cookie);
            expect(res.status).to.equal(503);
            expect(Date.now() - started).to.be.below(1500);
          }
          // A request without a session cookie never asks the store, and a new session needs it only to be written.
          await request(server).get('/').expect(200);
        } finally {
          redis.resume();
        }
        expect(app.errors.map((err) => (err as SessionError).code)).to.include('ERR_SESSION_STORE_UNAVAILABLE');
        // No id, in any spelling, in what an app logs or inspects.
        const id = Buffer.from(cookie.slice('session='.length), 'base64url').subarray(23, 55);
        const logged = app.errors.map((err) => `${inspect(err)} ${String((err as Error).cause)}`).join('\n') + inspect(app, { depth: 6 });
        for (const form of [cookie.slice('session='.length), id.toString('hex'), id.toString('base64url'), id.toString('base64')]) {
          expect(logged).not.to.include(form);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        const after = await request(server).get('/').set('Cookie', cookie).expect(200);
        expect(after.body.isNew).to.equal(false);
      });

      it('should answer 503 at once, queueing nothing more, past maxPending commands waiting for a stalled Redis', async () => {
        const app = appWith(
          new StoreSessionBackend(new RedisStore(client, { maxPending: 2 }), new KeyRing([KEY_A]), { storeTimeout: 2000 }),
          counter,
        );
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        await request(server).get('/').set('Cookie', cookie).expect(200);
        const read = () => Promise.resolve(request(server).get('/').set('Cookie', cookie)).then((res) => res.status);
        redis.pause();
        let waiting: Promise<number>[] = [];
        try {
          // Two reads' commands (one script each, or two pipelined for the first) fill maxPending...
          waiting = [read(), read()];
          await new Promise((resolve) => setTimeout(resolve, 100));
          // ...and the next read is refused without waiting for storeTimeout.
          const started = Date.now();
          expect(await read()).to.equal(503);
          expect(Date.now() - started).to.be.below(500);
        } finally {
          redis.resume();
        }
        // The first read waited and, Redis back within storeTimeout, was answered.
        expect(await waiting[0]).to.equal(200);
        await Promise.all(waiting);
        await request(server).get('/').set('Cookie', cookie).expect(200);
      });

      it('should leave the record as it was when a write fails because Redis stalled mid-request, also once it resumes', async () => {
        const app = appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]), { storeTimeout: 300 }), (ctx, next) => {
          if (ctx.path === '/stall') {
            ctx.session.get('counter'); // loaded: the stall hits the write
            redis.pause();
            ctx.session.set('counter', 99);
            ctx.body = 'stalled';
            return;
          }
          return counter(ctx, next);
        });
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        try {
          await request(server).get('/stall').set('Cookie', cookie).expect(503);
        } finally {
          redis.resume();
        }
        await new Promise((resolve) => setTimeout(resolve, 300)); // the stalled write reaches Redis now
        await request(server).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
      });

      it('should answer 503 while Redis is down, and open the same cookies once it is back (persistence on)', async () => {
        const app = appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]), { storeTimeout: 300 }), counter);
        const server = await listen(app);
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        await request(server).get('/count').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
        redis.cli('SHUTDOWN');
        await new Promise((resolve) => setTimeout(resolve, 200));
        await request(server).get('/').set('Cookie', cookie).expect(503);
        await redis.restart();
        let res = await request(server).get('/').set('Cookie', cookie);
        for (let i = 0; i < 40 && res.status === 503; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 100)); // the client reconnects
          res = await request(server).get('/').set('Cookie', cookie);
        }
        expect(res.status).to.equal(200);
        expect(res.body).to.deep.equal({ counter: 2, isNew: false });
      });
    });
  }

  it('should keep both concurrent changes where koa-session + koa-redis (the real packages, same Redis) loses one', async () => {
    redis.cli('FLUSHALL');
    const run = async (app: Koa, cookieOf: (res: request.Response) => string, gates: { open: () => void }) => {
      const server = await listen(app);
      const cookie = cookieOf(await request(server).get('/set?key=a&value=0').expect(200));
      const one = request(server)
        .get('/set?key=a&value=1&wait=1')
        .set('Cookie', cookie)
        .then((res) => res);
      const two = request(server)
        .get('/set?key=b&value=2&wait=1')
        .set('Cookie', cookie)
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 150));
      gates.open();
      await Promise.all([one, two]);
      return (await request(server).get('/').set('Cookie', cookie).expect(200)).body as Record<string, unknown>;
    };
    const racer =
      (gate: Promise<void>): Koa.Middleware =>
      async (ctx) => {
        const s = ctx.session as unknown as Record<string, unknown>;
        if (ctx.query.wait !== undefined) {
          void s.a; // loaded before waiting
          await gate;
        }
        if (ctx.path === '/set') s[String(ctx.query.key)] = ctx.query.value;
        ctx.body = { a: s.a ?? null, b: s.b ?? null };
      };
    const gateOf = () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      return { gate, open };
    };
    const theirs = gateOf();
    const koaApp = new Koa();
    koaApp.keys = ['a key for koa-session'];
    const koaRedis = redisStore({ host: '127.0.0.1', port: redis.port } as never);
    koaApp.use(koaSession({ store: koaRedis as never }, koaApp));
    koaApp.use(racer(theirs.gate));
    const sessionCookies = (res: request.Response) =>
      ([] as string[])
        .concat(res.headers['set-cookie'] ?? [])
        .map((line) => line.slice(0, line.indexOf(';')))
        .join('; ');
    try {
      const lost = await run(koaApp, sessionCookies, theirs);
      expect(lost.a === '1' && lost.b === '2', 'koa-session kept both changes: this test no longer shows the difference').to.equal(false);
    } finally {
      await koaRedis.client.quit();
    }
    const ours = gateOf();
    const client = await createClient({ url: redis.url }).connect();
    try {
      const app = appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A])), racer(ours.gate));
      expect(await run(app, (res) => `session=${cookieValue(res)}`, ours)).to.deep.equal({ a: '1', b: '2' });
    } finally {
      await client.close();
    }
  });

  it('should share sessions between two Koa apps in two processes on one Redis', async () => {
    redis.cli('FLUSHALL');
    const child = fork(new URL('../../support/store-peer.js', import.meta.url), [String(redis.port)], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (message) => resolve(Number(message)));
        child.once('exit', (code) => reject(new Error(`the peer exited with ${code}`)));
      });
      const client = await createClient({ url: redis.url }).connect();
      try {
        const server = await listen(appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A])), counter));
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        const peer = await fetch(`http://127.0.0.1:${port}/count`, { headers: { cookie } });
        expect(await peer.json()).to.deep.equal({ counter: 2, isNew: false });
        await request(server).get('/').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
      } finally {
        await client.close();
      }
    } finally {
      child.kill();
    }
  });

  it('should start a new session when a script meets another type of value and Redis before 7 wraps the WRONGTYPE error', async () => {
    redis.cli('FLUSHALL');
    const real = new IORedis(redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
    await real.connect();
    // A stand-in for Redis 6.2 (only 7 is installed here): the real server's answers, with a script's errors
    // wrapped as 6.2 wraps them.
    const asRedis62 = {
      isCluster: false,
      options: {},
      callBuffer: async (command: string, ...args: (string | Buffer)[]) => {
        try {
          return await real.callBuffer(command, ...args);
        } catch (err) {
          const message = (err as Error).message;
          if (!command.startsWith('EVAL') || !message.startsWith('WRONGTYPE')) throw err;
          throw new Error(`ERR Error running script (call to f_${String(args[0]).slice(0, 40)}): @user_script:3: ${message}`);
        }
      },
    };
    try {
      // With userKey, the read is a script (LOAD) through either client.
      const app = appWith(new StoreSessionBackend(new RedisStore(asRedis62), new KeyRing([KEY_A]), { userKey: 'userId' }), counter);
      const server = await listen(app);
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      const [key] = redis.cli('--scan', '--pattern', 'sess:*').split('\n');
      redis.cli('UNLINK', key as string);
      redis.cli('SET', key as string, 'not a session', 'PX', '60000');
      await request(server).get('/count').set('Cookie', cookie).expect(200, { counter: 1, isNew: true });
      expect(app.errors).to.deep.equal([]);
    } finally {
      real.disconnect();
    }
  });

  it('should refuse a client or options it cannot work with, with ERR_SESSION_INVALID_OPTION', async () => {
    const client = await createClient({ url: redis.url }).connect();
    try {
      for (const make of [
        () => new RedisStore({}),
        () => new RedisStore(client, { prefix: 5 as never }),
        () => new RedisStore(client, { maxPending: 0 }),
        () => new RedisStore(client, { maxPending: 1.5 }),
        () => new RedisStore(client, { maxpending: 5 } as never),
      ]) {
        expectSessionError(make, 'ERR_SESSION_INVALID_OPTION');
      }
      expect(new RedisStore(client, { prefix: 'app:', maxPending: 1 }).prefix).to.equal('app:');
    } finally {
      client.destroy();
    }
  });

  it('should never reach the store for a fuzzed Cookie header', async () => {
    redis.cli('FLUSHALL');
    const client = await createClient({ url: redis.url }).connect();
    try {
      const server = await listen(appWith(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A])), counter));
      const token = cookieValue(await request(server).get('/count').expect(200));
      redis.resetStats();
      const tokenish = fc.oneof(
        fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('')), maxLength: 140 }),
        fc
          .nat({ max: token.length - 1 })
          .chain((at) => fc.constantFrom(...'AQgw-_'.split('')).map((c) => token.slice(0, at) + c + token.slice(at + 1))),
        fc.nat({ max: token.length }).map((cut) => token.slice(0, cut)),
      );
      await fc.assert(
        fc.asyncProperty(tokenish, fc.string({ maxLength: 20 }), async (value, noise) => {
          if (value === token) return;
          const res = await rawGet(server, [`Cookie: ${noise.replace(/[^\x20-\x7e]/g, '')}; session=${value}`]);
          expect(res.status).to.equal(200);
        }),
        { numRuns: 300 },
      );
      expect(redis.commandCounts()).to.deep.equal({});
    } finally {
      await client.close();
    }
  });
});
