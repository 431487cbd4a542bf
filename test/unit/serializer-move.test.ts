import { expect } from 'chai';
import diagnostics from 'node:diagnostics_channel';
import Koa from 'koa';
import koaSession from 'koa-session';
import request from 'supertest';
import {
  DIAGNOSTICS_CHANNELS,
  JsonSerializer,
  KeyRing,
  MemoryStore,
  MsgpackSerializer,
  StoreSessionBackend,
  koaSessionCookies,
  type SessionBackend,
} from '../../src/index.js';
import { KEY_A, appWith, backendFor, cookieValue, expectSessionError, listen, setCookieFor, setCookies } from '../support/helpers.js';

const RING = new KeyRing([KEY_A]);
const LONE = { 'a\ud800': 1, 'a\udc00': 2 };

/** The app: / reads every key (as JSON-escaped names), /change sets another key. */
function app(backend: SessionBackend): Koa {
  return appWith(backend, (ctx) => {
    if (ctx.path === '/change') ctx.session.set('other', true);
    ctx.body = {
      keys: [...ctx.session.keys()].map((key) => JSON.stringify(key)),
      values: [...ctx.session.keys()].map((key) => ctx.session.get(key)),
    };
  });
}

/** What write-refused carried while `run` ran. */
async function refusals(run: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (message: unknown) => void seen.push(message);
  diagnostics.subscribe(DIAGNOSTICS_CHANNELS.writeRefused, listener);
  try {
    await run();
  } finally {
    diagnostics.unsubscribe(DIAGNOSTICS_CHANNELS.writeRefused, listener);
  }
  return seen;
}

const KEYS = ['"a\\ud800"', '"a\\udc00"'];

describe('moving a session to another serializer never changes its data', () => {
  it('should keep a JSON cookie that MessagePack cannot carry unchanged in JSON: read as it is, changed in JSON', async () => {
    const json = backendFor('signed', RING, { serializer: new JsonSerializer() });
    const msgpack = backendFor('signed', RING, { serializer: new MsgpackSerializer(), previousSerializers: [new JsonSerializer()] });
    const server = await listen(app(msgpack));
    const cookie = `session=${json.seal(LONE)}`;
    const seen = await refusals(async () => {
      const read = await request(server)
        .get('/')
        .set('Cookie', cookie)
        .expect(200, { keys: KEYS, values: [1, 2] });
      expect(setCookieFor(read), 'not rewritten').to.equal(undefined);
    });
    expect(seen).to.deep.equal([{ backend: 'cookie', name: 'session', code: 'ERR_SESSION_UNSUPPORTED_VALUE', key: 'a\ud800' }]);
    const changed = await request(server).get('/change').set('Cookie', cookie).expect(200);
    const value = cookieValue(changed);
    expect(Buffer.from(value, 'base64url')[5], 'sealed by JSON (id 1)').to.equal(1);
    await request(server)
      .get('/')
      .set('Cookie', `session=${value}`)
      .expect(200, { keys: [...KEYS, '"other"'], values: [1, 2, true] });
    // A session MessagePack carries is moved as before.
    const plain = await request(server)
      .get('/')
      .set('Cookie', `session=${json.seal({ a: 1 })}`)
      .expect(200);
    expect(Buffer.from(cookieValue(plain), 'base64url')[5]).to.equal(2);
  });

  it("should leave koa-session's cookie as it is when the serializer cannot carry its data unchanged", async () => {
    const old = new Koa();
    old.keys = ['an app key'];
    old.use(koaSession({}, old));
    old.use((ctx) => {
      Object.assign(ctx.session as object, LONE);
      ctx.body = 'ok';
    });
    const legacyCookie = setCookies(
      await request(await listen(old))
        .get('/')
        .expect(200),
    )
      .map((line) => line.slice(0, line.indexOf(';')))
      .join('; ');
    const legacy = koaSessionCookies({ keys: ['an app key'], until: new Date(Date.now() + 86_400_000) });
    const msgpack = backendFor('private', RING, { serializer: new MsgpackSerializer(), legacy });
    const server = await listen(app(msgpack));
    const read = await request(server)
      .get('/')
      .set('Cookie', legacyCookie)
      .expect(200, { keys: KEYS, values: [1, 2] });
    expect(setCookies(read)).to.deep.equal([]);
    await request(server).get('/change').set('Cookie', legacyCookie).expect(500);
  });

  it('should keep a store field that the new serializer cannot carry in its own, and move the others', async () => {
    const store = new MemoryStore();
    const before = new StoreSessionBackend(store, RING, { serializer: new MsgpackSerializer() });
    const after = new StoreSessionBackend(store, RING, { serializer: new JsonSerializer(), previousSerializers: [new MsgpackSerializer()] });
    const write = await listen(
      appWith(before, (ctx) => {
        ctx.session.set('big', 2n ** 60n);
        ctx.session.set('n', 1);
        ctx.body = 'ok';
      }),
    );
    const cookie = `session=${cookieValue(await request(write).get('/').expect(200))}`;
    const server = await listen(
      appWith(after, (ctx) => {
        if (ctx.path === '/change') ctx.session.set('other', true);
        ctx.body = { big: String(ctx.session.get('big')), n: ctx.session.get('n') ?? null, other: ctx.session.get('other') ?? null };
      }),
    );
    await request(server)
      .get('/')
      .set('Cookie', cookie)
      .expect(200, { big: String(2n ** 60n), n: 1, other: null });
    await request(server).get('/change').set('Cookie', cookie).expect(200);
    await request(server)
      .get('/')
      .set('Cookie', cookie)
      .expect(200, { big: String(2n ** 60n), n: 1, other: true });
  });

  it('should refuse in backend.seal() what set() refuses, instead of changing it', () => {
    const msgpack = backendFor('signed', RING, { serializer: new MsgpackSerializer() });
    expectSessionError(() => msgpack.seal(LONE), 'ERR_SESSION_UNSUPPORTED_VALUE');
    expectSessionError(() => backendFor('signed', RING).seal({ big: 1n }), 'ERR_SESSION_UNSUPPORTED_VALUE');
    expect(msgpack.open(msgpack.seal({ a: 'b' }))).to.deep.equal({ a: 'b' });
  });
});
