import { expect } from 'chai';
import { inspect } from 'node:util';
import { CookieSessionBackend, KeyRing, SessionError } from '../../src/index.js';
import { KEY_A, KEY_B, KEY_C, expectSessionError } from '../support/helpers.js';

describe('KeyRing', () => {
  describe('when built from valid keys', () => {
    it('should accept Buffers and Uint8Arrays of 32 bytes or more', () => {
      expect(new KeyRing([KEY_A, new Uint8Array(KEY_B), Buffer.concat([KEY_C, KEY_C])]).size).to.equal(3);
    });

    it('should count staged keys', () => {
      const ring = new KeyRing([KEY_A], { staged: [KEY_B] });
      expect(ring.size).to.equal(2);
      expect(ring.toJSON()).to.deep.equal({ keys: 1, staged: 1 });
    });
  });

  describe('when given bad keys', () => {
    const cases: [string, () => unknown][] = [
      ['an empty ring', () => new KeyRing([])],
      ['no array', () => new KeyRing(undefined as unknown as Uint8Array[])],
      ['a 31-byte key', () => new KeyRing([KEY_A.subarray(0, 31)])],
      ['a string key', () => new KeyRing(['a'.repeat(64) as unknown as Uint8Array])],
      ['a duplicate key', () => new KeyRing([KEY_A, Buffer.from(KEY_A)])],
      ['a staged key that repeats an active one', () => new KeyRing([KEY_A], { staged: [KEY_A] })],
      ['an all-zero key', () => new KeyRing([Buffer.alloc(32)])],
      ['a repeated-byte key', () => new KeyRing([Buffer.alloc(64, 0x61)])],
      ['a short staged key', () => new KeyRing([KEY_A], { staged: [Buffer.alloc(8, 1)] })],
      ['a good key followed by a bad one', () => new KeyRing([KEY_A, Buffer.alloc(4)])],
    ];
    for (const [label, build] of cases) {
      it(`should refuse ${label} with ERR_SESSION_INVALID_KEY`, () => {
        expectSessionError(build, 'ERR_SESSION_INVALID_KEY');
      });
    }

    it('should say what to do, and never show key material', () => {
      const { message } = expectSessionError(() => new KeyRing([KEY_A, KEY_A]), 'ERR_SESSION_INVALID_KEY');
      expect(message).to.match(/key 1 repeats an earlier key/);
      expect(message).not.to.contain(KEY_A.toString('hex'));
      expect(message).not.to.contain(KEY_A.toString('base64url'));
      expect(() => new KeyRing([Buffer.alloc(16, 7)])).to.throw(SessionError, /at least 32 random bytes.*KeyRing\.generateKey\(\)/);
    });
  });

  describe('when inspected or serialized', () => {
    it('should show neither the keys nor anything derived from them', () => {
      const ring = new KeyRing([KEY_A, KEY_B]);
      const shown = inspect(ring, { showHidden: true, depth: 10 }) + JSON.stringify(ring) + String(Object.entries(ring));
      expect(shown).to.equal('KeyRing { keys: 2, staged: 0 }{"keys":2,"staged":0}');
    });
  });

  describe('when generating keys', () => {
    it('should return 32 fresh random bytes each time, accepted by a ring', () => {
      const keys = Array.from({ length: 8 }, () => KeyRing.generateKey());
      expect(keys.every((key) => key.length === 32)).to.equal(true);
      expect(new Set(keys.map((key) => key.toString('hex'))).size).to.equal(8);
      expect(new KeyRing(keys).size).to.equal(8);
    });
  });

  describe('when the caller reuses its key buffer', () => {
    it('should keep its own copy', () => {
      const key = Buffer.from(KEY_A);
      const ring = new KeyRing([key]);
      key.fill(0);
      const sealed = CookieSessionBackend.signed(ring).seal({ a: 1 });
      expect(CookieSessionBackend.signed(new KeyRing([KEY_A])).open(sealed)).to.deep.equal({ a: 1 });
    });
  });
});
