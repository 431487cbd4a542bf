import { expect } from 'chai';
import request from 'supertest';
import { KeyRing } from '../src/index.js';
import { COMBINATIONS, KEY_A, KEY_B, KEY_C, appWith, backendFor, cookieValue, listen, setCookieFor } from './helpers.js';

const keyIdOf = (token: string) => Buffer.from(token, 'base64url').readUInt32BE(1);

describe('key rotation', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const withRing = (ring: KeyRing) => backendFor(mode, ring, { serializer: serializer() });

      it('should open a cookie of an older key and re-seal it with the newest in the same response', async () => {
        const old = withRing(new KeyRing([KEY_A])).seal({ counter: 5 });
        const rotated = withRing(new KeyRing([KEY_B, KEY_A]));
        const app = appWith(rotated, (ctx) => {
          ctx.body = String(ctx.session.get('counter'));
        });
        const server = await listen(app);
        const res = await request(server).get('/').set('Cookie', `session=${old}`).expect(200, '5');
        const resealed = cookieValue(res);
        expect(keyIdOf(resealed)).to.equal(keyIdOf(withRing(new KeyRing([KEY_B])).seal({})));
        expect(keyIdOf(resealed)).not.to.equal(keyIdOf(old));
        // The old key can now be retired: a ring without it still opens the re-sealed cookie.
        expect(withRing(new KeyRing([KEY_B])).open(resealed)).to.deep.equal({ counter: 5 });
        expect(withRing(new KeyRing([KEY_A])).open(resealed)).to.equal(undefined);
      });

      it('should not re-seal a cookie of the newest key that the request did not change', async () => {
        const ring = new KeyRing([KEY_B, KEY_A]);
        const current = withRing(ring).seal({ counter: 5 });
        const server = await listen(appWith(withRing(ring), (ctx) => void (ctx.body = String(ctx.session.get('counter')))));
        const res = await request(server).get('/').set('Cookie', `session=${current}`).expect(200, '5');
        expect(setCookieFor(res)).to.equal(undefined);
      });

      it('should open with the oldest key of a five-key ring', () => {
        const keys = [KEY_A, KEY_B, KEY_C, KeyRing.generateKey(), KeyRing.generateKey()];
        const oldest = withRing(new KeyRing([keys[4] as Buffer])).seal({ a: 1 });
        expect(withRing(new KeyRing(keys)).open(oldest)).to.deep.equal({ a: 1 });
      });

      it('should log everyone out when every key is replaced', () => {
        const token = withRing(new KeyRing([KEY_A, KEY_B])).seal({ a: 1 });
        expect(withRing(new KeyRing([KEY_C])).open(token)).to.equal(undefined);
      });

      describe('with a staged key', () => {
        it('should open cookies of the staged key but keep sealing with the newest active key', async () => {
          const staging = withRing(new KeyRing([KEY_A], { staged: [KEY_B] }));
          const promoted = withRing(new KeyRing([KEY_B, KEY_A]));
          const fromPromoted = promoted.seal({ counter: 1 });
          expect(staging.open(fromPromoted)).to.deep.equal({ counter: 1 });
          expect(keyIdOf(staging.seal({}))).to.equal(keyIdOf(withRing(new KeyRing([KEY_A])).seal({})));

          // A server still staging does not rewrite the newer cookie back to the older key.
          const server = await listen(appWith(staging, (ctx) => void (ctx.body = String(ctx.session.get('counter')))));
          const res = await request(server).get('/').set('Cookie', `session=${fromPromoted}`).expect(200, '1');
          expect(setCookieFor(res)).to.equal(undefined);
        });

        it('should not open cookies of a key that is neither active nor staged', () => {
          const staging = withRing(new KeyRing([KEY_A], { staged: [KEY_B] }));
          expect(staging.open(withRing(new KeyRing([KEY_C])).seal({ a: 1 }))).to.equal(undefined);
        });
      });
    });
  }
});
