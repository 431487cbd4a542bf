import { expect } from 'chai';
import request from 'supertest';
import { JsonSerializer, KeyRing, MsgpackSerializer, type Serializer } from '../../src/index.js';
import { KEY_A, MODES, appWith, backendFor, cookieValue, expectSessionError, listen, setCookieFor } from '../support/helpers.js';

describe('serializer migration', () => {
  for (const mode of MODES) {
    describe(`when a ${mode} app moves from JSON to MessagePack`, () => {
      const ring = new KeyRing([KEY_A]);
      const before = backendFor(mode, ring);
      const after = backendFor(mode, ring, { serializer: new MsgpackSerializer(), previousSerializers: [new JsonSerializer()] });

      it('should read JSON cookies and rewrite them as MessagePack in the same response', async () => {
        const old = before.seal({ counter: 9, name: 'ada' });
        const server = await listen(appWith(after, (ctx) => void (ctx.body = String(ctx.session.get('counter')))));
        const res = await request(server).get('/').set('Cookie', `session=${old}`).expect(200, '9');
        const rewritten = cookieValue(res);
        expect(Buffer.from(rewritten, 'base64url')[5]).to.equal(new MsgpackSerializer().id);
        expect(after.open(rewritten)).to.deep.equal({ counter: 9, name: 'ada' });
        // The JSON-only backend cannot read the new cookie: the id in the envelope decides.
        expect(before.open(rewritten)).to.equal(undefined);
      });

      it('should not rewrite a cookie already in the current format', async () => {
        const current = after.seal({ counter: 1 });
        const server = await listen(appWith(after, (ctx) => void (ctx.body = String(ctx.session.get('counter')))));
        expect(setCookieFor(await request(server).get('/').set('Cookie', `session=${current}`).expect(200, '1'))).to.equal(undefined);
      });

      it('should not read cookies of a serializer that is not listed', () => {
        const msgpackOnly = backendFor(mode, ring, { serializer: new MsgpackSerializer() });
        expect(msgpackOnly.open(before.seal({ a: 1 }))).to.equal(undefined);
      });
    });
  }

  it('should refuse two different serializers with one id', () => {
    const custom = (name: string): Serializer => ({ id: 200, name, serialize: () => new Uint8Array(), deserialize: () => ({}) });
    const err = expectSessionError(
      () => backendFor('signed', new KeyRing([KEY_A]), { serializer: custom('one'), previousSerializers: [custom('other')] }),
      'ERR_SESSION_INVALID_OPTION',
    );
    expect(err.message).to.match(/distinct ids \(200 is used twice\)/);
  });
});
