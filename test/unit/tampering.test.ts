import { expect } from 'chai';
import request from 'supertest';
import { KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, listen } from '../support/helpers.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const STRAY = ['+', '/', '=', '.', ' ', '%', '"', '\u00e9', '\u0141', '\uff21']; // U+0141 decodes as 'A' in node: only canonical text may open
const DATA = { user: 'ada', roles: ['admin'], n: 7 };

describe('a tampered cookie', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const token = backend.seal(DATA);

      it('should open untouched (control)', () => {
        expect(backend.open(token)).to.deep.equal(DATA);
      });

      it('should not open after any single-character change, to any character', () => {
        let tried = 0;
        const opened: string[] = [];
        for (let i = 0; i < token.length; i++) {
          for (const char of [...ALPHABET, ...STRAY]) {
            if (char === token[i]) continue;
            const changed = token.slice(0, i) + char + token.slice(i + 1);
            tried++;
            if (backend.open(changed) !== undefined) opened.push(`${i}:${char}`);
          }
        }
        expect(opened).to.deep.equal([]);
        expect(tried).to.be.greaterThan(token.length * 60);
      });

      it('should not open after any single-byte change of the decoded envelope', () => {
        const envelope = Buffer.from(token, 'base64url');
        const opened: string[] = [];
        for (let i = 0; i < envelope.length; i++) {
          for (let value = 0; value < 256; value++) {
            if (value === envelope[i]) continue;
            const changed = Buffer.from(envelope);
            changed[i] = value;
            if (backend.open(changed.toString('base64url')) !== undefined) opened.push(`${i}=${value}`);
          }
        }
        expect(opened).to.deep.equal([]);
      });

      it('should not open when truncated at any length or extended', () => {
        for (let length = 0; length < token.length; length++) {
          expect(backend.open(token.slice(0, length)), `length ${length}`).to.equal(undefined);
        }
        for (const suffix of ['A', 'AA', 'AAA', 'AAAA', '=', '==']) expect(backend.open(token + suffix)).to.equal(undefined);
        expect(backend.open(`${token}\n`)).to.equal(undefined);
        expect(backend.open(` ${token}`)).to.equal(undefined);
      });
    });
  }

  describe('when sent through the middleware', () => {
    for (const { mode, serializer, label } of COMBINATIONS) {
      it(`should give an empty new session, a 200 and no error event (${label})`, async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const token = backend.seal({ counter: 41 });
        const app = appWith(backend, (ctx) => {
          ctx.body = { isNew: ctx.session.isNew, counter: ctx.session.get('counter') ?? null };
        });
        const server = await listen(app);
        const good = await request(server).get('/').set('Cookie', `session=${token}`).expect(200);
        expect(good.body).to.deep.equal({ isNew: false, counter: 41 });
        const bad = [
          token.slice(0, -1),
          `${token.slice(0, 20)}${token[20] === 'A' ? 'B' : 'A'}${token.slice(21)}`,
          'garbage',
          '',
          '%00%ff',
          '"quoted"',
          'A'.repeat(5000),
          Buffer.from('not an envelope at all, but long enough to pass length checks').toString('base64url'),
        ];
        for (const value of bad) {
          const res = await request(server).get('/').set('Cookie', `session=${value}`).expect(200);
          expect(res.body).to.deep.equal({ isNew: true, counter: null });
        }
        expect(app.errors).to.deep.equal([]);
      });
    }
  });
});
