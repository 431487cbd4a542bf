import { expect } from 'chai';
import request from 'supertest';
import { JsonSerializer, KeyRing, MsgpackSerializer, SessionError, type SessionRecord, type Serializer } from '../../src/index.js';
import { KEY_A, MODES, appWith, backendFor, cookieValue, listen, setCookieFor } from '../support/helpers.js';

const ring = new KeyRing([KEY_A]);
const plain = {
  s: 'héllo ✓',
  i: -42,
  f: 3.25,
  big: 2 ** 53 - 1,
  t: true,
  n: null,
  a: [1, [2, [3]]],
  o: { nested: { deep: 'x' } },
  empty: {},
  list: [],
};

describe('value types', () => {
  for (const mode of MODES) {
    describe(`when sealed ${mode} with JSON`, () => {
      const backend = backendFor(mode, ring, { serializer: new JsonSerializer() });

      it('should round-trip strings, finite numbers, booleans, null, arrays and plain objects', () => {
        expect(backend.open(backend.seal(plain))).to.deep.equal(plain);
      });

      it('should turn Dates into ISO strings and NaN or Infinity into null, as JSON does', () => {
        const opened = backend.open(backend.seal({ d: new Date(0), nan: NaN, inf: Infinity }));
        expect(opened).to.deep.equal({ d: '1970-01-01T00:00:00.000Z', nan: null, inf: null });
      });
    });

    describe(`when sealed ${mode} with MessagePack`, () => {
      const backend = backendFor(mode, ring, { serializer: new MsgpackSerializer() });

      it('should round-trip the JSON types, Dates, byte arrays, NaN, Infinity and 64-bit BigInts', () => {
        const rich = { ...plain, d: new Date(1_700_000_000_123), bytes: Buffer.from([0, 1, 255]), nan: NaN, inf: -Infinity, n64: 2n ** 63n - 1n };
        const opened = backend.open(backend.seal(rich)) as Record<string, unknown>;
        expect(opened).to.deep.equal(rich);
        expect(opened.d).to.be.instanceOf(Date);
      });

      it('should make a smaller cookie than JSON for the same data', () => {
        const json = backendFor(mode, ring).seal(plain);
        expect(backend.seal(plain).length).to.be.lessThan(json.length);
      });
    });
  }

  describe('when set() gets a value the serializer cannot carry', () => {
    const cases = [
      { label: 'a BigInt with JSON', serializer: () => new JsonSerializer(), value: 10n as unknown },
      { label: 'a BigInt beyond 64 bits with MessagePack', serializer: () => new MsgpackSerializer(), value: 2n ** 64n },
      { label: 'a BigInt below -2^63 with MessagePack', serializer: () => new MsgpackSerializer(), value: -(2n ** 63n) - 1n },
      { label: 'an invalid Date with MessagePack', serializer: () => new MsgpackSerializer(), value: new Date('x') },
      { label: 'an invalid Date with JSON', serializer: () => new JsonSerializer(), value: { when: [new Date(Number.NaN)] } },
      { label: 'a lone surrogate with MessagePack', serializer: () => new MsgpackSerializer(), value: 'pref:\ud800' },
      { label: 'a lone surrogate in a nested key with MessagePack', serializer: () => new MsgpackSerializer(), value: { a: { '\udc00': 1 } } },
    ];
    for (const { label, serializer, value } of cases) {
      it(`should refuse ${label} with ERR_SESSION_UNSUPPORTED_VALUE: a 500, no cookie, nothing lost`, async () => {
        const backend = backendFor('private', ring, { serializer: serializer() });
        const app = appWith(backend, (ctx) => {
          ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
          if (ctx.query.bad === '1') ctx.session.set('bad', value);
          ctx.body = String(ctx.session.get('counter'));
        });
        const server = await listen(app);
        const good = cookieValue(await request(server).get('/').expect(200, '1'));
        const failed = await request(server).get('/?bad=1').set('Cookie', `session=${good}`).expect(500);
        expect(setCookieFor(failed)).to.equal(undefined);
        expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_UNSUPPORTED_VALUE');
        await request(server).get('/').set('Cookie', `session=${good}`).expect(200, '2');
      });
    }

    it('should accept the extremes MessagePack carries, and read them back on the next request', async () => {
      const backend = backendFor('signed', ring, { serializer: new MsgpackSerializer() });
      const extremes = { low: -(2n ** 63n), high: 2n ** 64n - 1n, first: new Date(-8.64e15), last: new Date(8.64e15), pair: '\ud83d\ude00' };
      const app = appWith(backend, (ctx) => {
        if (ctx.query.set === '1') for (const [key, value] of Object.entries(extremes)) ctx.session.set(key, value);
        ctx.body = 'ok';
      });
      const server = await listen(app);
      const token = cookieValue(await request(server).get('/?set=1').expect(200));
      expect(backend.open(token)).to.deep.equal(extremes);
    });

    it('should keep keys that differ only in a lone surrogate apart under JSON, which writes them escaped', async () => {
      const backend = backendFor('signed', ring);
      const app = appWith(backend, (ctx) => {
        ctx.session.set('pref:\ud800', 1);
        ctx.session.set('pref:\udc00', 2);
        ctx.body = 'ok';
      });
      const token = cookieValue(
        await request(await listen(app))
          .get('/')
          .expect(200),
      );
      const reader = appWith(backend, (ctx) => void (ctx.body = [ctx.session.get('pref:\ud800'), ctx.session.get('pref:\udc00')]));
      await request(await listen(reader))
        .get('/')
        .set('Cookie', `session=${token}`)
        .expect(200, [1, 2]);
    });
  });

  describe("when a serializer of the app's own cannot encode a value at commit", () => {
    /** JSON under a user id: set() knows nothing of what it carries, so its failure shows at commit. */
    class OwnJson implements Serializer {
      readonly id = 200;
      readonly name = 'own json';
      serialize(data: SessionRecord): Uint8Array {
        return Buffer.from(JSON.stringify(data));
      }
      deserialize(bytes: Uint8Array): SessionRecord {
        return JSON.parse(Buffer.from(bytes).toString()) as SessionRecord;
      }
    }

    it('should answer 500 with ERR_SESSION_SERIALIZE, write no cookie and lose nothing', async () => {
      const backend = backendFor('private', ring, { serializer: new OwnJson() });
      const app = appWith(backend, (ctx) => {
        if (ctx.query.bad === '1') ctx.session.set('bad', 10n);
        ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
        ctx.body = String(ctx.session.get('counter'));
      });
      const server = await listen(app);
      const good = cookieValue(await request(server).get('/').expect(200, '1'));
      const failed = await request(server).get('/?bad=1').set('Cookie', `session=${good}`).expect(500);
      expect(setCookieFor(failed)).to.equal(undefined);
      const err = app.errors[0] as SessionError;
      expect(err.code).to.equal('ERR_SESSION_SERIALIZE');
      expect(err.message).to.contain('"bad"');
      expect(err.cause).to.be.instanceOf(Error);
      await request(server).get('/').set('Cookie', `session=${good}`).expect(200, '2');
    });
  });
});
