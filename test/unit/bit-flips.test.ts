import { expect } from 'chai';
import request from 'supertest';
import { nearLimitSession } from '../../benchmarks/fixture.js';
import { KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, listen } from '../support/helpers.js';

const SAMPLE = process.env.HARDENING_LONG === '1' ? 400 : 40;

describe('every bit flip of a near-limit cookie', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const data = nearLimitSession();
      const token = backend.seal(data);

      it('should seal a cookie near the limit that opens untouched (control)', () => {
        expect(token.length).to.be.greaterThan(label.includes('json') ? 3800 : 3000);
        expect(backend.open(token)).to.deep.equal(data);
      });

      it('should not open after flipping any one bit of the decoded envelope', () => {
        const envelope = Buffer.from(token, 'base64url');
        const opened: string[] = [];
        for (let i = 0; i < envelope.length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            envelope[i] = (envelope[i] as number) ^ (1 << bit);
            if (backend.open(envelope.toString('base64url')) !== undefined) opened.push(`${i}:${bit}`);
            envelope[i] = (envelope[i] as number) ^ (1 << bit);
          }
        }
        expect(opened).to.deep.equal([]);
        expect(backend.open(envelope.toString('base64url'))).to.deep.equal(data);
      });

      it(`should give an empty new session, a 2xx and no error event for ${SAMPLE} flipped cookies sent through the middleware`, async () => {
        const app = appWith(backend, (ctx) => {
          ctx.body = { isNew: ctx.session.isNew, keys: ctx.session.size };
        });
        const server = await listen(app);
        const envelope = Buffer.from(token, 'base64url');
        for (let n = 0; n < SAMPLE; n++) {
          const flipped = Buffer.from(envelope);
          const at = (n * 7919) % flipped.length;
          flipped[at] = (flipped[at] as number) ^ (1 << (n % 8));
          const res = await request(server)
            .get('/')
            .set('Cookie', `session=${flipped.toString('base64url')}`)
            .expect(200);
          expect(res.body).to.deep.equal({ isNew: true, keys: 0 });
        }
        expect(app.errors).to.deep.equal([]);
      });
    });
  }
});
