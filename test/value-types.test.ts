import { expect } from 'chai';
import request from 'supertest';
import { JsonSerializer, KeyRing, MsgpackSerializer, SessionError } from '../src/index.js';
import { KEY_A, MODES, appWith, backendFor, cookieValue, listen, setCookieFor } from './helpers.js';

const ring = new KeyRing([KEY_A]);
const plain = { s: 'héllo ✓', i: -42, f: 3.25, big: 2 ** 53 - 1, t: true, n: null, a: [1, [2, [3]]], o: { nested: { deep: 'x' } }, empty: {}, list: [] };

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

  describe('when a value cannot be serialized at commit', () => {
    const cases = [
      { label: 'a BigInt with JSON', serializer: () => new JsonSerializer(), value: 10n },
      { label: 'a BigInt beyond 64 bits with MessagePack', serializer: () => new MsgpackSerializer(), value: 2n ** 70n },
    ];
    for (const { label, serializer, value } of cases) {
      it(`should answer 500 with ERR_SESSION_SERIALIZE for ${label}, write no cookie and lose nothing`, async () => {
        const backend = backendFor('private', ring, { serializer: serializer() });
        const app = appWith(backend, (ctx) => {
          if (ctx.query.bad === '1') ctx.session.set('bad', value);
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
    }
  });
});
