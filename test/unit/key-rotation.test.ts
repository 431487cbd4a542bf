import { expect } from 'chai';
import request from 'supertest';
import type Koa from 'koa';
import { KeyRing, type CookieSessionBackend, type CookieSessionOptions } from '../../src/index.js';
import { COMBINATIONS, KEY_A, KEY_B, KEY_C, appWith, backendFor, cookieValue, listen, manualClock, setCookieFor } from '../support/helpers.js';

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

  describe('when setKeyRing revokes a key while a request that opened a session with it is in flight', () => {
    /** An app whose handler reads the session, waits for the test to revoke, then does `after`. */
    function slowApp(backend: CookieSessionBackend, after: (ctx: Koa.Context) => void) {
      let reached!: () => void;
      let release!: () => void;
      const reading = new Promise<void>((resolve) => (reached = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      const app = appWith(backend, async (ctx) => {
        ctx.body = String(ctx.session.get('counter'));
        reached();
        await released;
        after(ctx);
      });
      return { app, reading, release };
    }

    for (const { mode, serializer, label } of COMBINATIONS) {
      describe(`when sealed ${label}`, () => {
        const scenarios: [string, CookieSessionOptions, number, (ctx: Koa.Context) => void][] = [
          ['a change', {}, 0, (ctx) => ctx.session.set('admin', true)],
          ['renew()', {}, 0, (ctx) => ctx.session.renew()],
          ['autoRenew and no change at all', { autoRenew: true, maxAge: 60_000 }, 45_000, () => undefined],
        ];
        for (const [what, options, age, after] of scenarios) {
          it(`should expire the cookie instead of sealing the session with the new ring, after ${what}`, async () => {
            const clock = manualClock();
            const leaked = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), ...options, now: clock.now });
            const forged = leaked.seal({ counter: 1 });
            clock.advance(age);
            const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), ...options, now: clock.now });
            const { app, reading, release } = slowApp(backend, after);
            const server = await listen(app);
            const pending = request(server).get('/').set('Cookie', `session=${forged}`);
            const response = pending.then((res) => res);
            await reading;
            backend.setKeyRing(new KeyRing([KEY_C]));
            release();
            const res = await response;
            expect(res.status).to.equal(200);
            expect(setCookieFor(res)).to.match(/^session=; .*Max-Age=0/);
            expect(backend.open(forged)).to.equal(undefined);
          });
        }

        it('should still re-seal with the new ring when the key that opened the session stays in it (control)', async () => {
          const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
          const token = backend.seal({ counter: 1 });
          const { app, reading, release } = slowApp(backend, (ctx) => ctx.session.set('counter', 2));
          const response = request(await listen(app))
            .get('/')
            .set('Cookie', `session=${token}`)
            .then((res) => res);
          await reading;
          backend.setKeyRing(new KeyRing([KEY_B, KEY_A]));
          release();
          const written = cookieValue(await response);
          expect(keyIdOf(written)).to.equal(keyIdOf(backendFor(mode, new KeyRing([KEY_B])).seal({})));
          expect(backend.open(written)).to.deep.equal({ counter: 2 });
        });
      });
    }
  });
});
