import * as chai from 'chai';
import { expect } from 'chai';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { inspect } from 'node:util';
import request from 'supertest';
import { CookieSessionBackend, KeyRing, MsgpackSerializer, SessionError } from '../../src/index.js';
import { KEY_A, KEY_B, appWith, backendFor, listen } from '../support/helpers.js';

const require = createRequire(import.meta.url);
const crypto = require('node:crypto') as typeof import('node:crypto');

/** Every spelling of a key or token that must never show up in text. */
function spellings(secret: Buffer | string): string[] {
  if (typeof secret === 'string') return [secret.slice(0, 24), secret.slice(-24)];
  return [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url'), secret.toString('latin1').slice(0, 16)];
}

/** The message and inspected form of the SessionError `fn` must throw. */
function messageOf(fn: () => unknown): string {
  const err = chai.util.flag(expect(fn).to.throw(SessionError), 'object') as SessionError;
  return `${err.message}\n${inspect(err)}`;
}

describe('secrets', () => {
  const ring = new KeyRing([KEY_A, KEY_B]);
  const backend = backendFor('private', ring, { serializer: new MsgpackSerializer() });
  const token = backend.seal({ user: 'ada', pad: 'x'.repeat(200) });

  it('should never put a key or a cookie value in an error message', () => {
    const texts = [
      messageOf(() => new KeyRing([KEY_A, KEY_A])),
      messageOf(() => new KeyRing([KEY_A.subarray(0, 16)])),
      messageOf(() => new KeyRing([KEY_A.toString('hex') as unknown as Buffer])),
      messageOf(() => backend.seal({ pad: 'y'.repeat(5000) })),
      messageOf(() => backend.seal({ big: 2n ** 70n })),
      messageOf(() => CookieSessionBackend.signed(ring, { name: token })),
      messageOf(() => CookieSessionBackend.signed(ring, { domain: token })),
      messageOf(() => CookieSessionBackend.signed(ring, { path: `/${token};` })),
    ];
    expect(texts.every((text) => text.length > 0)).to.equal(true);
    for (const text of texts) {
      for (const secret of [...spellings(KEY_A), ...spellings(KEY_B), ...spellings(token)]) expect(text).not.to.contain(secret);
    }
  });

  it('should show neither keys nor derived keys through util.inspect of the ring or the backend', () => {
    const shown = inspect(ring, { showHidden: true, depth: 20 }) + inspect(backend, { showHidden: true, depth: 20 });
    for (const secret of [...spellings(KEY_A), ...spellings(KEY_B)]) expect(shown).not.to.contain(secret);
    expect(shown).not.to.match(/KeyObject|SecretKeyObject/);
  });

  it('should log nothing, whatever the requests', async () => {
    const calls: unknown[][] = [];
    const original = { log: console.log, warn: console.warn, error: console.error, info: console.info, debug: console.debug };
    for (const name of Object.keys(original) as (keyof typeof original)[]) console[name] = (...args: unknown[]) => void calls.push(args);
    try {
      const app = appWith(backend);
      const server = await listen(app);
      for (const cookie of [`session=${token}`, 'session=garbage', `session=${token.slice(1)}`, '']) {
        await request(server).get('/').set('Cookie', cookie);
      }
      const tooLarge = appWith(backend, (ctx) => void ctx.session.set('pad', 'z'.repeat(5000)));
      await request(await listen(tooLarge))
        .get('/')
        .expect(500);
    } finally {
      Object.assign(console, original);
    }
    expect(calls).to.deep.equal([]);
  });

  describe('when comparing MACs', () => {
    it('should use crypto.timingSafeEqual on the full tags, for good and bad cookies alike', () => {
      const signed = backendFor('signed', ring);
      const good = signed.seal({ user: 'ada' });
      const tampered = `${good.slice(0, -2)}${good.endsWith('AA') ? 'BA' : 'AA'}`;
      const original = crypto.timingSafeEqual;
      const seen: [number, number][] = [];
      crypto.timingSafeEqual = (a, b) => {
        seen.push([a.byteLength, b.byteLength]);
        return original(a, b);
      };
      syncBuiltinESMExports();
      try {
        expect(signed.open(good)).to.deep.equal({ user: 'ada' });
        expect(signed.open(tampered)).to.equal(undefined);
      } finally {
        crypto.timingSafeEqual = original;
        syncBuiltinESMExports();
      }
      expect(seen).to.deep.equal([
        [32, 32],
        [32, 32],
      ]);
    });
  });
});
