import { expect } from 'chai';
import { hash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import request from 'supertest';
import type Koa from 'koa';
import {
  CookieSessionBackend,
  DIAGNOSTICS_CHANNELS,
  JsonSerializer,
  KeyRing,
  MemoryRevocationStore,
  MemoryStore,
  MsgpackSerializer,
  StoreSessionBackend,
  type RevocationStore,
  type SessionStore,
} from '../../src/index.js';
import { KEY_A, KEY_B, appWith, cookieValue, listen, manualClock, sealBytes } from '../support/helpers.js';

const SECRET = 'secret-data-7f3a';
const DAY = 86_400_000;

/** Every message published on every channel while `run` runs, as [channel, message]. */
async function published(run: () => Promise<void>): Promise<[string, Record<string, unknown>][]> {
  const seen: [string, Record<string, unknown>][] = [];
  const listeners = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
    const listener = (message: unknown) => void seen.push([name.slice('koa-sealed-session:'.length), message as Record<string, unknown>]);
    diagnostics.subscribe(name, listener);
    return [name, listener] as const;
  });
  try {
    await run();
  } finally {
    for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener);
  }
  return seen;
}

/** The app of every case: /set stores the secret, /renew, /purge, /big (past the cookie limit), / reads. */
const handler: Koa.Middleware = (ctx) => {
  if (ctx.path === '/set') ctx.session.set('secret', SECRET);
  if (ctx.path === '/renew') ctx.session.renew();
  if (ctx.path === '/purge') ctx.session.purge();
  if (ctx.path === '/big') ctx.session.set('big', 'x'.repeat(5000));
  if (ctx.path === '/login') ctx.session.set('userId', 'u1');
  ctx.body = { secret: ctx.session.get('secret') ?? null };
};

/** No message may hold a key, a cookie value, a session id or session data. */
function expectNoSecrets(messages: unknown[], cookies: string[]): void {
  const text = JSON.stringify(messages);
  expect(text).not.to.include(SECRET);
  for (const key of [KEY_A, KEY_B])
    for (const spelling of ['base64url', 'base64', 'hex'] as const) expect(text).not.to.include(key.toString(spelling));
  for (const cookie of cookies) {
    expect(text).not.to.include(cookie.slice(0, 24));
    const id = Buffer.from(cookie, 'base64url').subarray(23, 55);
    if (id.length === 32) for (const spelling of ['base64url', 'hex'] as const) expect(text).not.to.include(id.toString(spelling));
  }
}

describe('diagnostics (node:diagnostics_channel)', () => {
  it('should tell why a cookie was rejected, with the reasons inspect gives, and nothing secret', async () => {
    const clock = manualClock(Date.now());
    const ring = new KeyRing([KEY_A]);
    const backend = CookieSessionBackend.signed(ring, { now: clock.now, maxAge: DAY, absoluteTimeout: 3 * DAY });
    const server = await listen(appWith(backend, handler));
    const good = cookieValue(await request(server).get('/set').expect(200));
    const flipped = good.slice(0, 40) + (good[40] === 'A' ? 'B' : 'A') + good.slice(41);
    const longer = CookieSessionBackend.signed(ring, { now: clock.now, maxAge: 30 * DAY }).seal({ secret: SECRET });
    const cases: [string, string][] = [
      ['abc+def', 'not-base64url'],
      [flipped, 'bad-mac'],
      [CookieSessionBackend.signed(new KeyRing([KEY_B])).seal({ secret: SECRET }), 'unknown-key'],
      [CookieSessionBackend.private(ring).seal({ secret: SECRET }), 'wrong-mode'],
      [longer, 'beyond-lifetime'],
      [sealBytes('signed', ring, 200, Buffer.from('{}'), 'session', clock.now()), 'unknown-serializer'],
      [sealBytes('signed', ring, 1, Buffer.from('{"secret":'), 'session', clock.now()), 'undecodable'],
    ];
    const cookies = [good, ...cases.map(([value]) => value)];
    const messages = await published(async () => {
      for (const [value] of cases) await request(server).get('/').set('Cookie', `session=${value}`).expect(200, { secret: null });
      clock.advance(DAY + 1);
      await request(server).get('/').set('Cookie', `session=${good}`).expect(200, { secret: null });
    });
    expect(messages).to.deep.equal([
      ...cases.map(([, reason]) => ['cookie-rejected', { backend: 'cookie', name: 'session', reason }]),
      ['cookie-rejected', { backend: 'cookie', name: 'session', reason: 'expired' }],
    ]);
    expectNoSecrets(messages, cookies);
  });

  it('should tell of re-seals by cause, renewals, purges and refused writes', async () => {
    const clock = manualClock(Date.now());
    const app = (ring: KeyRing, options = {}) =>
      listen(appWith(CookieSessionBackend.signed(ring, { now: clock.now, maxAge: DAY, ...options }), handler));
    const oldKey = await app(new KeyRing([KEY_B]));
    const rotated = await app(new KeyRing([KEY_A, KEY_B]));
    const json = await app(new KeyRing([KEY_A]), { serializer: new JsonSerializer() });
    const msgpack = await app(new KeyRing([KEY_A]), { serializer: new MsgpackSerializer(), previousSerializers: [new JsonSerializer()] });
    const renewing = await app(new KeyRing([KEY_A]), { autoRenew: true });
    const cookies: string[] = [];
    const messages = await published(async () => {
      const b = cookieValue(await request(oldKey).get('/set'));
      const j = cookieValue(await request(json).get('/set'));
      const r = cookieValue(await request(renewing).get('/set'));
      cookies.push(b, j, r);
      await request(rotated).get('/').set('Cookie', `session=${b}`).expect(200, { secret: SECRET });
      await request(msgpack).get('/').set('Cookie', `session=${j}`).expect(200, { secret: SECRET });
      clock.advance(DAY * 0.6);
      await request(renewing).get('/').set('Cookie', `session=${r}`).expect(200, { secret: SECRET });
      await request(json).get('/renew').set('Cookie', `session=${j}`).expect(200);
      await request(json).get('/purge').set('Cookie', `session=${j}`).expect(200);
      await request(json).get('/big').set('Cookie', `session=${j}`).expect(500);
    });
    expect(messages).to.deep.equal([
      ['resealed', { backend: 'cookie', name: 'session', cause: 'key-rotation' }],
      ['resealed', { backend: 'cookie', name: 'session', cause: 'serializer' }],
      ['resealed', { backend: 'cookie', name: 'session', cause: 'renewal' }],
      ['renewed', { backend: 'cookie', name: 'session' }],
      ['purged', { backend: 'cookie', name: 'session' }],
      ['write-refused', { backend: 'cookie', name: 'session', code: 'ERR_SESSION_TOO_LARGE' }],
    ]);
    expectNoSecrets(messages, cookies);
  });

  it('should tell of a value refused at commit (set by property access), on both backends, with its key and not its value', async () => {
    const backends = [CookieSessionBackend.signed(new KeyRing([KEY_A])), new StoreSessionBackend(new MemoryStore(), new KeyRing([KEY_A]))];
    const messages = await published(async () => {
      for (const backend of backends) {
        const server = await listen(
          appWith(backend, (ctx) => {
            (ctx.session as unknown as Record<string, unknown>).prefs = { onChange: () => SECRET };
            ctx.body = 'ok';
          }),
        );
        await request(server).get('/').expect(500);
      }
    });
    expect(messages).to.deep.equal([
      ['write-refused', { backend: 'cookie', name: 'session', code: 'ERR_SESSION_UNSUPPORTED_VALUE', key: 'prefs' }],
      ['write-refused', { backend: 'store', name: 'session', code: 'ERR_SESSION_UNSUPPORTED_VALUE', key: 'prefs' }],
    ]);
    expectNoSecrets(messages, []);
  });

  it('should tell of a revoked cookie, and of a revocation store that fails', async () => {
    const revocations = new MemoryRevocationStore();
    let failing = false;
    const flaky: RevocationStore = {
      get: (user) => (failing ? Promise.reject(new Error('down')) : revocations.get(user)),
      set: (u, r, t) => revocations.set(u, r, t),
    };
    const backend = CookieSessionBackend.private(new KeyRing([KEY_A]), { userKey: 'userId', revocations: flaky, revocationCacheMs: 0 });
    const server = await listen(appWith(backend, handler));
    const cookie = cookieValue(await request(server).get('/login'));
    const messages = await published(async () => {
      failing = true;
      await request(server).get('/').set('Cookie', `session=${cookie}`).expect(503);
      failing = false;
      await new Promise((resolve) => setTimeout(resolve, 2));
      await backend.revokeUser('u1');
      await request(server).get('/').set('Cookie', `session=${cookie}`).expect(200, { secret: null });
    });
    expect(messages.map(([name, message]) => [name, { ...message, durationMs: typeof message.durationMs }])).to.deep.equal([
      ['store-unavailable', { backend: 'cookie', name: 'session', operation: 'revocations', durationMs: 'number', cause: 'error' }],
      ['cookie-rejected', { backend: 'cookie', name: 'session', reason: 'revoked', durationMs: 'undefined' }],
    ]);
    expectNoSecrets(messages, [cookie]);
  });

  it('should tell a revocation store that did not answer in time (timeout) from one that failed', async () => {
    const hanging: RevocationStore = { get: () => new Promise(() => undefined), set: async () => undefined };
    const backend = CookieSessionBackend.private(new KeyRing([KEY_A]), { userKey: 'userId', revocations: hanging, revocationTimeout: 50 });
    const cookie = backend.seal({ userId: 'u1' });
    const server = await listen(appWith(backend, handler));
    const messages = await published(async () => {
      await request(server).get('/').set('Cookie', `session=${cookie}`).expect(503);
    });
    expect(messages.map(([name, message]) => [name, message.operation, message.cause])).to.deep.equal([
      ['store-unavailable', 'revocations', 'timeout'],
    ]);
  });

  it('should tell of the store backend: records gone or corrupt, writes dropped, renewals, purges, a slow or failing store', async () => {
    const memory = new MemoryStore();
    let delayMs = 0;
    let failing = false;
    // Every load, so that the case waits for a stalled one's late answer: it must not be reported again (as slow).
    const loads: Promise<unknown>[] = [];
    const store: SessionStore = {
      load: (key, ttl) => {
        const load = (async () => {
          if (failing) throw new Error('down');
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
          return memory.load(key, ttl);
        })();
        loads.push(load.catch(() => undefined));
        return load;
      },
      write: (key, write) => memory.write(key, write),
      destroy: (key) => memory.destroy(key),
    };
    const backend = new StoreSessionBackend(store, new KeyRing([KEY_A]), { storeTimeout: 100 });
    const server = await listen(appWith(backend, handler));
    const cookies: string[] = [];
    const messages = await published(async () => {
      const a = cookieValue(await request(server).get('/set'));
      const b = cookieValue(await request(server).get('/set'));
      cookies.push(a, b);
      await request(server).get('/').set('Cookie', 'session=x').expect(200);
      delayMs = 70;
      await request(server).get('/').set('Cookie', `session=${a}`).expect(200, { secret: SECRET });
      delayMs = 150;
      await request(server).get('/').set('Cookie', `session=${a}`).expect(503);
      await Promise.all(loads); // the stalled load answers now, after its 503
      delayMs = 0;
      failing = true;
      await request(server).get('/').set('Cookie', `session=${a}`).expect(503);
      failing = false;
      const renewed = cookieValue(await request(server).get('/renew').set('Cookie', `session=${a}`).expect(200));
      cookies.push(renewed);
      await request(server).get('/').set('Cookie', `session=${a}`).expect(200, { secret: null }); // renewed: a marker in its place
      await request(server).get('/purge').set('Cookie', `session=${renewed}`).expect(200);
      await request(server).get('/').set('Cookie', `session=${renewed}`).expect(200, { secret: null }); // its record is gone
      await request(server).get('/big').set('Cookie', `session=${b}`).expect(200); // 64 KiB allowed: no refusal
    });
    const names = messages.map(
      ([name, message]) =>
        `${name}${message.reason === undefined ? '' : `:${message.reason as string}`}${message.operation === undefined ? '' : `:${message.operation as string}`}${message.cause === undefined ? '' : `:${message.cause as string}`}`,
    );
    expect(names).to.deep.equal([
      'cookie-rejected:not-canonical',
      'store-slow:load',
      'store-unavailable:load:timeout',
      'store-unavailable:load:error',
      'renewed',
      'cookie-rejected:renewed',
      'purged',
      'cookie-rejected:no-record',
    ]);
    for (const [, message] of messages) if (message.operation !== undefined) expect(message.durationMs).to.be.a('number');
    expectNoSecrets(messages, cookies);
  });

  it('should tell of a corrupt record and of a write dropped because its record ended meanwhile', async () => {
    const memory = new MemoryStore();
    let gate: Promise<void> = Promise.resolve();
    const backend = new StoreSessionBackend(memory, new KeyRing([KEY_A]));
    const server = await listen(
      appWith(
        backend,
        async (ctx, next) => {
          if (ctx.path === '/slow-set') {
            ctx.session.get('secret');
            await gate;
            ctx.session.set('secret', 'changed');
            ctx.body = 'ok';
            return;
          }
          await next();
        },
        handler,
      ),
    );
    const cookie = cookieValue(await request(server).get('/set'));
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const messages = await published(async () => {
      const slow = request(server)
        .get('/slow-set')
        .set('Cookie', `session=${cookie}`)
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 30));
      await request(server).get('/purge').set('Cookie', `session=${cookie}`).expect(200);
      open();
      await slow;
      // A record whose value does not decode: the session starts afresh.
      const fresh = cookieValue(await request(server).get('/set'));
      const write = { create: false, createdAt: 0, clear: true, set: new Map([['secret', Buffer.from([1, 0x7b])]]), remove: [], ttlMs: 60_000 };
      expect(await backend.open(fresh)).to.deep.equal({ secret: SECRET });
      const key = hash('sha256', Buffer.from(fresh, 'base64url').subarray(23, 55), 'base64url');
      expect(await memory.write(key, write)).to.equal(true);
      await request(server).get('/').set('Cookie', `session=${fresh}`).expect(200, { secret: null });
    });
    expect(messages.map(([name, message]) => `${name}${message.reason === undefined ? '' : `:${message.reason as string}`}`)).to.deep.equal([
      'purged',
      'write-dropped',
      'cookie-rejected:corrupt-record',
    ]);
    expectNoSecrets(messages, [cookie]);
  });
});
