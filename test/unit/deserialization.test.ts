import { expect } from 'chai';
import request from 'supertest';
import { KeyRing, MsgpackSerializer, type SessionRecord } from '../../src/index.js';
import { KEY_A, MODES, appWith, backendFor, listen, sealBytes } from '../support/helpers.js';

/** Seals bytes as they are under a serializer id: what only a holder of the key could send. */
function sealedBytes(mode: 'signed' | 'private', id: number, bytes: Buffer): string {
  return sealBytes(mode, new KeyRing([KEY_A]), id, bytes);
}

const reader = (ctx: { session: { get(key: string): unknown; isNew: boolean }; body: unknown }) => {
  const value = ctx.session.get('v');
  ctx.body = {
    isNew: ctx.session.isNew,
    kind: Array.isArray(value) ? `array of ${value.length}` : typeof value,
    counter: ctx.session.get('counter') ?? null,
  };
};

describe('deserializing correctly sealed but hostile payloads', () => {
  for (const mode of MODES) {
    describe(`when ${mode} with JSON`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]));

      it('should refuse a value nested 1,400 deep, as MessagePack does: an empty new session and a 200', async () => {
        const deep = Buffer.from(`{"counter":7,"v":${'['.repeat(1400)}${']'.repeat(1400)}}`);
        const token = sealedBytes(mode, 1, deep);
        const app = appWith(backend, reader);
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200);
        expect(res.body).to.deep.equal({ isNew: true, kind: 'undefined', counter: null });
        expect(backend.open(token)).to.equal(undefined);
        expect(app.errors).to.deep.equal([]);
      });

      it('should open values nested exactly 64 deep, and nothing deeper, on every path', () => {
        const nested = (depth: number) => Buffer.from(`{"counter":7,"v":${'['.repeat(depth)}${']'.repeat(depth)}}`);
        expect(backend.open(sealedBytes(mode, 1, nested(64)))).to.have.property('counter', 7);
        expect(backend.open(sealedBytes(mode, 1, nested(65)))).to.equal(undefined);
      });

      it('should read a very long array', async () => {
        const token = sealedBytes(mode, 1, Buffer.from(`{"v":[${Array(1400).fill(0).join(',')}]}`));
        const res = await request(await listen(appWith(backend, reader)))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200);
        expect(res.body).to.deep.equal({ isNew: false, kind: 'array of 1400', counter: null });
      });
    });

    describe(`when ${mode} with MessagePack`, () => {
      const cases: [string, Buffer][] = [
        ['nesting 2,900 deep', Buffer.concat([Buffer.from([0x81, 0xa1, 0x76]), Buffer.alloc(2900, 0x91), Buffer.from([0x01])])],
        ['an array claiming 65,535 items it does not have', Buffer.from([0x81, 0xa1, 0x76, 0xdc, 0xff, 0xff, 0x01, 0x02])],
        ["msgpackr's Set extension", Buffer.from([0x81, 0xa1, 0x76, 0xd4, 0x73, 0x90])],
        ['an unknown extension type', Buffer.from([0x81, 0xa1, 0x76, 0xd5, 0x05, 0x00, 0x00])],
        ['a map with an integer key', Buffer.from([0x81, 0xa1, 0x76, 0x81, 0x01, 0x02])],
      ];
      for (const [label, bytes] of cases) {
        it(`should refuse ${label}: an empty new session and a 200`, async () => {
          const app = appWith(backendFor(mode, new KeyRing([KEY_A]), { serializer: new MsgpackSerializer() }), reader);
          const res = await request(await listen(app))
            .get('/')
            .set('Cookie', `session=${sealedBytes(mode, 2, bytes)}`)
            .expect(200);
          expect(res.body).to.deep.equal({ isNew: true, kind: 'undefined', counter: null });
          expect(app.errors).to.deep.equal([]);
        });
      }

      it('should read a very long array', async () => {
        const bytes = Buffer.concat([Buffer.from([0x81, 0xa1, 0x76, 0xdc, 0x0a, 0xf0]), Buffer.alloc(2800, 0x00)]);
        const app = appWith(backendFor(mode, new KeyRing([KEY_A]), { serializer: new MsgpackSerializer() }), reader);
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${sealedBytes(mode, 2, bytes)}`)
          .expect(200);
        expect(res.body).to.deep.equal({ isNew: false, kind: 'array of 2800', counter: null } satisfies SessionRecord);
      });
    });
  }
});
