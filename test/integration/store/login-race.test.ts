// Logins that parallel requests cannot undo: a request that left the client with the pre-login cookie and answers
// after the login renewed the session must not replace the new cookie (expressjs/session#923), and the pre-login
// cookie never opens the signed-in session. The client below keeps cookies as a browser does: each response's
// Set-Cookie replaces the cookie, in the order the responses arrive.
import { expect } from 'chai';
import fc from 'fast-check';
import type Koa from 'koa';
import request from 'supertest';
import { KeyRing, MemoryStore, RENEW_GRACE_MS, StoreSessionBackend, type SessionStore } from '../../../src/index.js';
import { KEY_A, appWith, listen, manualClock, setCookieFor } from '../../support/helpers.js';
import { eachStore } from '../../support/stores.js';

const KEY_RING = new KeyRing([KEY_A]);
const HOUR = 3_600_000;

/** The cookie a response leaves in a browser that had `jar`. */
function after(jar: string | undefined, res: request.Response): string | undefined {
  const line = setCookieFor(res);
  if (line === undefined) return jar;
  const value = line.slice('session='.length, line.indexOf(';'));
  return /Max-Age=0/.test(line) ? undefined : value;
}

/**
 * An app whose requests can be held after their session loaded: a request with `x-hold: id` tells `arrived(id)`,
 * then waits for `release(id)` before it does its work (/login: renew and sign in; /count: change a key; else read).
 */
function raceApp(store: SessionStore, clock: { now: () => number }) {
  const held = new Map<string, { arrive: () => void; arrived: Promise<void>; release: () => void; released: Promise<void> }>();
  const slot = (id: string) => {
    let entry = held.get(id);
    if (entry === undefined) {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      held.set(id, (entry = { arrive, arrived, release, released }));
    }
    return entry;
  };
  const route: Koa.Middleware = async (ctx) => {
    const session = ctx.session;
    session.get('userId'); // loaded before any hold
    const hold = ctx.get('x-hold');
    if (hold !== '') {
      slot(hold).arrive();
      await slot(hold).released;
    }
    if (ctx.path === '/login') {
      session.renew();
      session.set('userId', 'ada');
    } else if (ctx.path === '/count') {
      session.set('counter', (session.get<number>('counter') ?? 0) + 1);
    }
    ctx.body = { user: session.get('userId') ?? null, counter: session.get('counter') ?? null };
  };
  const backend = new StoreSessionBackend(store, KEY_RING, { idleTimeout: HOUR, now: clock.now });
  return { app: appWith(backend, route), arrived: (id: string) => slot(id).arrived, release: (id: string) => slot(id).release() };
}

const cookieOf = (jar: string | undefined) => (jar === undefined ? {} : { Cookie: `session=${jar}` });

eachStore((under) => {
  describe('a login beside requests in flight', () => {
    it('should answer a request sent with the pre-login cookie after the login with no cookie and no record, the login kept', async () => {
      const { app } = raceApp(under.current.store, manualClock());
      const server = await listen(app);
      let jar = after(undefined, await request(server).get('/count').expect(200));
      const preLogin = jar;
      jar = after(jar, await request(server).get('/login').set(cookieOf(jar)).expect(200, { user: 'ada', counter: 1 }));
      const records = under.current.keys?.().length;
      // Sent before the login answered, arriving after it: it changes a key and reads.
      for (const path of ['/count', '/me']) {
        const late = await request(server).get(path).set(cookieOf(preLogin)).expect(200);
        expect(late.body, `the pre-login cookie never opens the signed-in session (${path})`).to.deep.include({ user: null });
        expect(setCookieFor(late), path).to.equal(undefined);
        jar = after(jar, late);
      }
      if (records !== undefined) expect(under.current.keys?.().length, 'no record was started for it').to.equal(records);
      await request(server).get('/me').set(cookieOf(jar)).expect(200, { user: 'ada', counter: 1 });
    });

    it('should answer a request that loaded before the login and writes, or is due to resend its cookie, after it with no cookie', async () => {
      const clock = manualClock();
      const { app, arrived, release } = raceApp(under.current.store, clock);
      const server = await listen(app);
      let jar = after(undefined, await request(server).get('/count').expect(200));
      // Past half the idle lifetime: a read sends the cookie again.
      clock.advance(HOUR / 2 + 60_000);
      const writer = request(server)
        .get('/count')
        .set(cookieOf(jar))
        .set('x-hold', 'w')
        .then((res) => res);
      const reader = request(server)
        .get('/me')
        .set(cookieOf(jar))
        .set('x-hold', 'r')
        .then((res) => res);
      await Promise.all([arrived('w'), arrived('r')]);
      jar = after(jar, await request(server).get('/login').set(cookieOf(jar)).expect(200, { user: 'ada', counter: 1 }));
      release('w');
      release('r');
      for (const res of await Promise.all([writer, reader])) {
        expect(res.status).to.equal(200);
        expect(setCookieFor(res)).to.equal(undefined);
        jar = after(jar, res);
      }
      await request(server).get('/me').set(cookieOf(jar)).expect(200, { user: 'ada', counter: 1 });
    });

    it(`should keep the renewed id's marker for ${RENEW_GRACE_MS / 1000} s at most, after which the old cookie starts a new session`, async () => {
      const { app } = raceApp(under.current.store, manualClock());
      const server = await listen(app);
      const preLogin = after(undefined, await request(server).get('/count').expect(200));
      await request(server).get('/login').set(cookieOf(preLogin)).expect(200);
      if (under.kind === 'single') {
        const [marker] = under.redis.cli('--scan', '--pattern', 'sess:renewed:*').split('\n');
        const ttl = Number(under.redis.cli('PTTL', marker as string));
        expect(ttl).to.be.within(RENEW_GRACE_MS - 5000, RENEW_GRACE_MS);
        under.redis.cli('DEL', marker as string);
      } else if (under.kind === 'cluster') {
        const [marker] = under.cluster.keys('sess:renewed:*');
        const node = under.cluster.nodes.find((n) => n.cli('EXISTS', marker as string).trim() === '1');
        if (node === undefined) throw new Error('no master holds the marker');
        expect(Number(node.cli('PTTL', marker as string))).to.be.within(RENEW_GRACE_MS - 5000, RENEW_GRACE_MS);
        node.cli('DEL', marker as string);
      } else if (under.kind === 'postgres') {
        const left = Number(under.postgres.psql('SELECT extract(epoch FROM expires_at - now()) * 1000 FROM koa_sessions WHERE size < 0'));
        expect(left).to.be.within(RENEW_GRACE_MS - 5000, RENEW_GRACE_MS);
        // Past its time (rows are pruned later; an expired one never counts).
        under.postgres.psql("UPDATE koa_sessions SET idle_until = now() - interval '1 second' WHERE size < 0");
      } else {
        return; // MemoryStore: its own clock, below
      }
      const res = await request(server).get('/count').set(cookieOf(preLogin)).expect(200, { user: null, counter: 1 });
      expect(setCookieFor(res)).to.match(/^session=[^;]+;/);
    });

    if (
      [
        'MemoryStore',
        'RedisStore through node-redis 6 (createClient)',
        'RedisStore through ioredis 5 on a Redis Cluster (Cluster)',
        'PostgresStore through node-postgres 8 (Pool)',
      ].includes(under.label)
    ) {
      it('should keep the login, whatever the order in which requests beside it load, write and answer (property)', async function () {
        this.timeout(60_000);
        const kinds = ['/count', '/me', '/count'] as const;
        // An order of events: each request loads, then finishes (it works, writes and answers); the login is request 0.
        const order = fc
          .tuple(fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4, maxLength: 4 }), fc.array(fc.nat(7), { minLength: 8, maxLength: 8 }), fc.boolean())
          .map(([loads, weights, due]) => {
            const events: { id: number; step: 'load' | 'finish' }[] = loads.map((id) => ({ id, step: 'load' }));
            for (const id of [0, 1, 2, 3]) {
              const loadedAt = events.findIndex((e) => e.id === id && e.step === 'load');
              const at = Math.min(events.length, loadedAt + 1 + ((weights[id] ?? 0) % (events.length - loadedAt)));
              events.splice(at, 0, { id, step: 'finish' });
            }
            return { events, due };
          });
        let run = 0;
        await fc.assert(
          fc.asyncProperty(order, async ({ events, due }) => {
            run++;
            const clock = manualClock();
            const { app, arrived, release } = raceApp(under.current.store, clock);
            const server = await listen(app);
            let jar = after(undefined, await request(server).get('/count').expect(200));
            const preLogin = jar;
            if (due) clock.advance(HOUR / 2 + 60_000);
            const pending = new Map<number, Promise<request.Response>>();
            const sentWith = new Map<number, string | undefined>();
            for (const { id, step } of events) {
              const hold = `${run}-${id}`;
              if (step === 'load') {
                const path = id === 0 ? '/login' : (kinds[id - 1] as string);
                sentWith.set(id, jar);
                pending.set(
                  id,
                  request(server)
                    .get(path)
                    .set(cookieOf(jar))
                    .set('x-hold', hold)
                    .then((res) => res),
                );
                await arrived(hold);
              } else {
                release(hold);
                const res = await (pending.get(id) as Promise<request.Response>);
                expect(res.status).to.equal(200);
                if (id !== 0 && sentWith.get(id) === preLogin)
                  expect(res.body.user, 'the pre-login cookie opened the signed-in session').to.equal(null);
                jar = after(jar, res);
              }
            }
            const final = await request(server).get('/me').set(cookieOf(jar)).expect(200);
            expect(final.body.user, JSON.stringify(events)).to.equal('ada');
          }),
          { numRuns: 20 },
        );
      });
    }
  });
});

describe('the grace of a renewed id, on MemoryStore with its own clock', () => {
  it(`should end ${RENEW_GRACE_MS / 1000} s after the renewal: the old cookie then starts a new session with a cookie`, async () => {
    const clock = manualClock();
    const { app } = raceApp(new MemoryStore({ now: clock.now }), clock);
    const server = await listen(app);
    const preLogin = after(undefined, await request(server).get('/count').expect(200));
    await request(server).get('/login').set(cookieOf(preLogin)).expect(200);
    clock.advance(RENEW_GRACE_MS - 1000);
    expect(setCookieFor(await request(server).get('/count').set(cookieOf(preLogin)).expect(200))).to.equal(undefined);
    clock.advance(2000);
    const res = await request(server).get('/count').set(cookieOf(preLogin)).expect(200, { user: null, counter: 1 });
    expect(setCookieFor(res)).to.match(/^session=[^;]+;/);
  });
});
