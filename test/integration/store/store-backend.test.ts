import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type Koa from 'koa';
import request from 'supertest';
import {
  JsonSerializer,
  KeyRing,
  MemoryStore,
  MsgpackSerializer,
  SessionError,
  StoreSessionBackend,
  type SessionStore,
  type StoreSessionOptions,
} from '../../../src/index.js';
import { KEY_A, KEY_B, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor } from '../../support/helpers.js';
import { roundTrips } from '../../support/redis-server.js';
import { eachStore } from '../../support/stores.js';

/** Requests of the handler below that loaded their session and wait at a gate: a case opens it once all have. */
const waiting = { count: 0 };

/** Resolves once `n` requests wait at a gate (bounded: a request that never arrives fails the case). */
async function arrived(n: number): Promise<void> {
  for (let i = 0; waiting.count < n; i++) {
    if (i > 2000) throw new Error(`${waiting.count} of ${n} requests arrived`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  waiting.count = 0;
}

/** The session handler every case uses: counter, set/remove of named keys, renew, purge, a barrier for races. */
function handler(gates: Map<string, Promise<void>> = new Map()): Koa.Middleware {
  return async (ctx) => {
    const session = ctx.session;
    const wait = ctx.query.wait as string | undefined;
    if (wait !== undefined) {
      session.get('counter'); // loaded before waiting
      waiting.count += 1;
      await gates.get(wait);
    }
    if (ctx.path === '/count') session.set('counter', (session.get<number>('counter') ?? 0) + 1);
    if (ctx.path === '/set') session.set(String(ctx.query.key), ctx.query.value ?? true);
    if (ctx.path === '/remove') session.remove(String(ctx.query.key));
    if (ctx.path === '/clear') session.clear();
    if (ctx.path === '/renew') session.renew();
    if (ctx.path === '/purge') session.purge();
    if (ctx.path === '/big') session.set(String(ctx.query.key ?? 'big'), 'x'.repeat(Number(ctx.query.bytes)));
    ctx.body = { ...session.toJSON(), isNew: session.isNew };
  };
}

const KEY_RING = new KeyRing([KEY_A]);

describe('the store backend (StoreSessionBackend)', function () {
  this.timeout(30_000);
  eachStore((store) => {
    const { label, kind: isRedis } = store;
    const appOf = (options?: StoreSessionOptions, gates?: Map<string, Promise<void>>) =>
      appWith(new StoreSessionBackend(store.current.store, KEY_RING, options), handler(gates));

    it('should keep a session across requests with only a signed id in the cookie', async () => {
      const server = await listen(appOf());
      const first = await request(server).get('/count').expect(200, { counter: 1, isNew: true });
      const cookie = `session=${cookieValue(first)}`;
      expect(cookieValue(first)).to.have.length(Math.ceil(((23 + 32 + 32) * 4) / 3));
      await request(server).get('/count').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
      await request(server).get('/').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
      expect(setCookieFor(await request(server).get('/').set('Cookie', cookie))).to.equal(undefined);
    });

    it('should store no id in the clear: the store key is a hash of it', async () => {
      const server = await listen(appOf());
      const token = cookieValue(await request(server).get('/count').expect(200));
      const id = Buffer.from(token, 'base64url').subarray(23, 55);
      if (store.current.keys !== undefined) {
        const keys = store.current.keys();
        expect(keys).to.have.length(1);
        const dump = keys.join('\n');
        for (const form of [id.toString('base64url'), id.toString('hex'), id.toString('base64')]) expect(dump).not.to.include(form);
      }
    });

    it('should reject a forged, tampered or garbage cookie, and a cookie session, as a new session', async () => {
      const server = await listen(appOf());
      const token = cookieValue(await request(server).get('/count').expect(200));
      const flipped = Buffer.from(token, 'base64url');
      flipped[30] = (flipped[30] as number) ^ 1;
      const cookieSession = backendFor('signed', KEY_RING).seal({ counter: 5 });
      const foreign = cookieValue(
        await request(await listen(appWith(new StoreSessionBackend(store.current.store, new KeyRing([KEY_B])), handler()))).get('/count'),
      );
      for (const bad of [flipped.toString('base64url'), cookieSession, foreign, 'garbage', token.slice(1)]) {
        await request(server).get('/').set('Cookie', `session=${bad}`).expect(200, { isNew: true });
      }
    });

    it('should keep both changes of two concurrent requests that change different keys', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const server = await listen(appOf(undefined, new Map([['g', gate]])));
      const cookie = `session=${cookieValue(await request(server).get('/set?key=a&value=0').expect(200))}`;
      const one = request(server)
        .get('/set?key=a&value=1&wait=g')
        .set('Cookie', cookie)
        .then((res) => res);
      const two = request(server)
        .get('/set?key=b&value=2&wait=g')
        .set('Cookie', cookie)
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 150)); // both loaded, both waiting
      open();
      await Promise.all([one, two]);
      await request(server).get('/').set('Cookie', cookie).expect(200, { a: '1', b: '2', isNew: false });
    });

    it('should not bring back a session that another request purged while it ran', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const server = await listen(appOf(undefined, new Map([['g', gate]])));
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      const slow = request(server)
        .get('/set?key=late&value=1&wait=g')
        .set('Cookie', cookie)
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await request(server).get('/purge').set('Cookie', cookie).expect(200);
      open();
      const res = await slow;
      expect(setCookieFor(res)).to.equal(undefined);
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.deep.equal([]);
    });

    it('should not bring back on renew() a session that another request purged while it ran', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const server = await listen(appOf(undefined, new Map([['g', gate]])));
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      waiting.count = 0;
      const slow = request(server)
        .get('/renew?wait=g')
        .set('Cookie', cookie)
        .then((res) => res);
      await arrived(1);
      await request(server).get('/purge').set('Cookie', cookie).expect(200);
      open();
      const res = await slow;
      expect(res.status).to.equal(200);
      expect(setCookieFor(res)).to.equal(undefined);
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.deep.equal([]);
    });

    it('should hold maxBytes per record, not per request: concurrent requests that each add a key cannot pass it together', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const app = appOf({ maxBytes: 16_384 }, new Map([['g', gate]]));
      const server = await listen(app);
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      // Each loads the small record, waits until all have, then adds 5 kB under a key of its own.
      waiting.count = 0;
      const adds = Array.from({ length: 10 }, (_, i) =>
        request(server)
          .get(`/big?key=k${i}&bytes=5000&wait=g`)
          .set('Cookie', cookie)
          .then((res) => res.status),
      );
      await arrived(10);
      open();
      const statuses = await Promise.all(adds);
      expect(statuses.filter((status) => status === 200)).to.have.length(3);
      expect(statuses.filter((status) => status === 500)).to.have.length(7);
      expect(app.errors.map((err) => (err as SessionError).code)).to.deep.equal(Array(7).fill('ERR_SESSION_TOO_LARGE'));
      const kept = (await request(server).get('/').set('Cookie', cookie).expect(200)).body as Record<string, unknown>;
      expect(Object.keys(kept).filter((key) => key.startsWith('k'))).to.have.length(3);
      // Removing and replacing values is counted too: the record can shrink and grow back to the limit, no further.
      const [first, second] = Object.keys(kept).filter((key) => key.startsWith('k'));
      await request(server).get(`/remove?key=${first}`).set('Cookie', cookie).expect(200);
      await request(server).get(`/big?key=${second}&bytes=12000`).set('Cookie', cookie).expect(500);
      await request(server).get(`/big?key=${second}&bytes=11000`).set('Cookie', cookie).expect(200);
    });

    it('should end a record found larger than maxBytes, at the cost of one load and without decoding it', async () => {
      const server = await listen(appOf());
      const cookie = `session=${cookieValue(await request(server).get('/big?bytes=20000').expect(200))}`;
      const smaller = await listen(appOf({ maxBytes: 8192 }));
      await request(smaller).get('/').set('Cookie', cookie).expect(200, { isNew: true });
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.deep.equal([]);
    });

    it('should move the data to a new id on renew(), deleting the old record, and end it on purge()', async () => {
      const server = await listen(appOf());
      const old = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      const renewed = await request(server).get('/renew').set('Cookie', old).expect(200, { counter: 1, isNew: false });
      const fresh = `session=${cookieValue(renewed)}`;
      expect(fresh).not.to.equal(old);
      await request(server).get('/').set('Cookie', old).expect(200, { isNew: true });
      await request(server).get('/').set('Cookie', fresh).expect(200, { counter: 1, isNew: false });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.have.length(1);
      const purged = await request(server).get('/purge').set('Cookie', fresh).expect(200);
      expect(setCookieFor(purged)).to.match(/^session=; .*Max-Age=0/);
      await request(server).get('/').set('Cookie', fresh).expect(200, { isNew: true });
      if (store.current.keys !== undefined) expect(store.current.keys()).to.deep.equal([]);
    });

    it('should remove every key on clear(), also one this request never saw', async () => {
      const server = await listen(appOf());
      const cookie = `session=${cookieValue(await request(server).get('/set?key=a').expect(200))}`;
      await request(server).get('/set?key=b').set('Cookie', cookie).expect(200);
      await request(server).get('/clear').set('Cookie', cookie).expect(200, { isNew: false });
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: false });
    });

    it('should refuse a session larger than maxBytes with a 500, leaving the stored one as it was', async () => {
      const app = appOf({ maxBytes: 4096 });
      const server = await listen(app);
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      await request(server).get('/big?bytes=3000').set('Cookie', cookie).expect(200);
      const res = await request(server).get('/big?bytes=5000').set('Cookie', cookie).expect(500);
      expect(setCookieFor(res)).to.equal(undefined);
      expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_TOO_LARGE');
      const kept = await request(server).get('/').set('Cookie', cookie).expect(200);
      expect(kept.body.big).to.have.length(3000);
      // No cookie limit: 32 kB sessions are fine under the default maxBytes.
      const large = await request(await listen(appOf()))
        .get('/big?bytes=32000')
        .expect(200);
      expect(cookieValue(large)).to.have.length(116);
    });

    it('should end a session after idleTimeout without requests, and after absoluteTimeout however active', async () => {
      const clock = manualClock(Date.now());
      const server = await listen(appOf({ now: clock.now, idleTimeout: 60_000, absoluteTimeout: 150_000 }));
      let cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      for (let i = 0; i < 4; i += 1) {
        clock.advance(40_000); // within the idle minute each time
        const res = await request(server).get('/count').set('Cookie', cookie).expect(200);
        if (i < 3) expect(res.body).to.deep.equal({ counter: i + 2, isNew: false });
        else expect(res.body).to.deep.equal({ counter: 1, isNew: true }); // 160 s after it began
        cookie = setCookieFor(res) === undefined ? cookie : `session=${cookieValue(res)}`;
      }
      clock.advance(61_000);
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
    });

    it('should write the cookie with Expires at the idle deadline, or none with maxAge: session', async () => {
      const server = await listen(appOf({ idleTimeout: 3_600_000 }));
      expect(setCookieFor(await request(server).get('/count'))).to.include('Max-Age=3600');
      const browser = await listen(appOf({ maxAge: 'session' }));
      expect(setCookieFor(await request(browser).get('/count'))).not.to.match(/Max-Age|Expires/);
    });

    it('should read records written with a previous serializer and rewrite them', async () => {
      const server = await listen(appWith(new StoreSessionBackend(store.current.store, KEY_RING, { serializer: new JsonSerializer() }), handler()));
      const cookie = `session=${cookieValue(await request(server).get('/set?key=a&value=x').expect(200))}`;
      const next = appWith(
        new StoreSessionBackend(store.current.store, KEY_RING, { serializer: new MsgpackSerializer(), previousSerializers: [new JsonSerializer()] }),
        handler(),
      );
      await request(await listen(next))
        .get('/count')
        .set('Cookie', cookie)
        .expect(200, { a: 'x', counter: 1, isNew: false });
      const strict = appWith(new StoreSessionBackend(store.current.store, KEY_RING, { serializer: new MsgpackSerializer() }), handler());
      await request(await listen(strict))
        .get('/')
        .set('Cookie', cookie)
        .expect(200, { a: 'x', counter: 1, isNew: false });
    });

    it("should persist koa-session's property access: in-place changes, deletes, assignments, save() twice, = null", async () => {
      const app = appWith(new StoreSessionBackend(store.current.store, KEY_RING), async (ctx) => {
        const s = ctx.session as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        if (ctx.path === '/seed') Object.assign(s, { passport: { user: 'old' }, cart: { items: ['a'] }, views: 1 });
        if (ctx.path === '/change') {
          s.passport.user = 'ada';
          s.cart.items.push('b');
          delete s.views;
          await ctx.session.save();
          s.notice = { message: 'saved' };
          await ctx.session.save();
          s.notice.level = 'info';
        }
        if (ctx.path === '/null') (ctx as unknown as { session: null }).session = null;
        ctx.body = { ...ctx.session.toJSON(), isNew: ctx.session.isNew };
      });
      const server = await listen(app);
      const cookie = `session=${cookieValue(await request(server).get('/seed').expect(200))}`;
      await request(server).get('/change').set('Cookie', cookie).expect(200);
      const expected = { passport: { user: 'ada' }, cart: { items: ['a', 'b'] }, notice: { message: 'saved', level: 'info' }, isNew: false };
      await request(server).get('/').set('Cookie', cookie).expect(200, expected);
      const ended = await request(server).get('/null').set('Cookie', cookie).expect(200);
      expect(setCookieFor(ended)).to.match(/Max-Age=0/);
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
    });

    it('should give an empty new session for a valid cookie whose record is gone (expired or deleted)', async () => {
      const server = await listen(appOf());
      const token = cookieValue(await request(server).get('/count').expect(200));
      const key = createHash('sha256').update(Buffer.from(token, 'base64url').subarray(23, 55)).digest('base64url');
      await store.current.store.destroy(key);
      const res = await request(server).get('/count').set('Cookie', `session=${token}`).expect(200, { counter: 1, isNew: true });
      expect(cookieValue(res)).not.to.equal(token);
      if (store.current.keys !== undefined) expect(store.current.keys()).to.have.length(1);
    });

    it('should start a new session under a new id for a record that does not decode, leaving that record alone', async () => {
      const server = await listen(appOf());
      const token = cookieValue(await request(server).get('/count').expect(200));
      const key = createHash('sha256').update(Buffer.from(token, 'base64url').subarray(23, 55)).digest('base64url');
      const corrupt = Buffer.from([1, 0x7b, 0x22]); // JSON's id, then a broken document
      const set = new Map([['counter', corrupt]]);
      expect(await store.current.store.write(key, { create: false, createdAt: 0, clear: false, set, remove: [], ttlMs: 60_000 })).to.equal(true);
      const res = await request(server).get('/count').set('Cookie', `session=${token}`).expect(200, { counter: 1, isNew: true });
      expect(cookieValue(res)).not.to.equal(token);
      const kept = await store.current.store.load(key, 60_000);
      expect(Buffer.from(kept?.fields.get('counter') ?? []).equals(corrupt)).to.equal(true);
    });

    if (isRedis === 'cluster') {
      it('should cost one round trip to read and two to change on the cluster too, and three to renew across slots', async () => {
        const server = await listen(appOf());
        // Each master's first call of a script is an EVALSHA it refuses, then EVAL. Sessions land on random masters:
        // after 30 sessions read, renewed and purged, every master knows every script (but with odds of 1 in 50,000).
        for (let i = 0; i < 30; i++) {
          const spare = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
          const renewed = `session=${cookieValue(await request(server).get('/renew').set('Cookie', spare).expect(200))}`;
          await request(server).get('/purge').set('Cookie', renewed).expect(200);
        }
        const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
        const sent = () => roundTrips(store.cluster.commandCounts(), label.includes('node-redis'));
        for (const [path, expected] of [
          ['/', 1],
          ['/count', 2],
          ['/renew', 3],
        ] as const) {
          store.cluster.resetStats();
          await request(server).get(path).set('Cookie', cookie).expect(200);
          expect(sent(), path).to.equal(expected);
        }
      });
    }

    it("should give one session its own idle timeout with ctx.session.maxAge, in its cookie and its record's lifetime", async () => {
      const clock = manualClock(Date.now());
      const app = appWith(new StoreSessionBackend(store.current.store, KEY_RING, { idleTimeout: 3_600_000, now: clock.now }), (ctx) => {
        if (ctx.path === '/remember') ctx.session.maxAge = 7_200_000;
        ctx.session.set('n', (ctx.session.get<number>('n') ?? 0) + 1);
        ctx.body = { n: ctx.session.get('n'), maxAge: ctx.session.maxAge };
      });
      const server = await listen(app);
      const first = await request(server).get('/').expect(200, { n: 1, maxAge: 3_600_000 });
      expect(setCookieFor(first)).to.include('Max-Age=3600');
      const cookie = `session=${cookieValue(first)}`;
      const remembered = await request(server).get('/remember').set('Cookie', cookie).expect(200, { n: 2, maxAge: 7_200_000 });
      expect(setCookieFor(remembered)).to.include('Max-Age=7200');
      clock.advance(5_400_000); // past the backend's hour, within the session's two
      await request(server)
        .get('/')
        .set('Cookie', `session=${cookieValue(remembered)}`)
        .expect(200, { n: 3, maxAge: 7_200_000 });
    });

    it('should end, not write back, a session whose key setKeyRing revoked while its request ran', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const backend = new StoreSessionBackend(store.current.store, new KeyRing([KEY_A]));
      const server = await listen(appWith(backend, handler(new Map([['g', gate]]))));
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      const slow = request(server)
        .get('/count?wait=g')
        .set('Cookie', cookie)
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      backend.setKeyRing(new KeyRing([KEY_B]));
      open();
      const res = await slow;
      expect(setCookieFor(res)).to.match(/^session=; .*Max-Age=0/);
      backend.setKeyRing(new KeyRing([KEY_A]));
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
    });

    it('should keep sessions across a key rotation, re-sealing the cookie with the newest key', async () => {
      const backend = new StoreSessionBackend(store.current.store, new KeyRing([KEY_A]));
      const server = await listen(appWith(backend, handler()));
      const cookie = `session=${cookieValue(await request(server).get('/count').expect(200))}`;
      backend.setKeyRing(new KeyRing([KEY_B, KEY_A]));
      const res = await request(server).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
      const resealed = `session=${cookieValue(res)}`;
      backend.setKeyRing(new KeyRing([KEY_B]));
      await request(server).get('/').set('Cookie', resealed).expect(200, { counter: 1, isNew: false });
      await request(server).get('/').set('Cookie', cookie).expect(200, { isNew: true });
    });
  });

  it('should fail each store call that overruns storeTimeout on time, however calls overlap, and any that throws', async () => {
    const memory = new MemoryStore();
    let mode: 'hang' | 'throw' | 'reject' | 'ok' = 'ok';
    const store: SessionStore = {
      load: (key, ttl) => {
        if (mode === 'hang') return new Promise(() => undefined);
        if (mode === 'throw') throw new Error('thrown before any promise');
        if (mode === 'reject') return Promise.reject(new Error('rejected'));
        return memory.load(key, ttl);
      },
      write: (key, write) => memory.write(key, write),
      destroy: (key) => memory.destroy(key),
    };
    const app = appWith(new StoreSessionBackend(store, new KeyRing([KEY_A]), { storeTimeout: 200 }));
    const server = await listen(app);
    const cookie = `session=${cookieValue(await request(server).get('/').expect(200))}`;
    const timed = async () => {
      const started = performance.now();
      const res = await request(server).get('/').set('Cookie', cookie);
      return { status: res.status, ms: performance.now() - started };
    };
    mode = 'hang';
    const first = timed();
    await new Promise((resolve) => setTimeout(resolve, 120));
    const second = timed(); // due 120 ms after the first: not failed with it, nor left waiting for a later timer
    for (const [label, result] of [
      ['first', await first],
      ['second', await second],
    ] as const) {
      expect(result.status, label).to.equal(503);
      expect(result.ms, label).to.be.within(190, 400);
    }
    for (const failing of ['throw', 'reject'] as const) {
      mode = failing;
      const result = await timed();
      expect(result.status, failing).to.equal(503);
      expect(result.ms, failing).to.be.below(150);
    }
    mode = 'ok';
    await request(server).get('/').set('Cookie', cookie).expect(200, '1');
    expect(app.errors.map((err) => (err as SessionError).code)).to.deep.equal(Array(4).fill('ERR_SESSION_STORE_UNAVAILABLE'));
  });
});
