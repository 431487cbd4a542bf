import { expect } from 'chai';
import request from 'supertest';
import { KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, listen, MODES } from '../support/helpers.js';

describe('context binding', () => {
  const ring = new KeyRing([KEY_A]);

  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      it('should not open under another cookie name', async () => {
        const token = backendFor(mode, ring, { serializer: serializer(), name: 'session' }).seal({ user: 'ada' });
        const other = backendFor(mode, ring, { serializer: serializer(), name: 'admin' });
        expect(other.open(token)).to.equal(undefined);
        expect(backendFor(mode, ring, { serializer: serializer(), name: 'session' }).open(token)).to.deep.equal({ user: 'ada' });

        const app = appWith(other, (ctx) => void (ctx.body = { isNew: ctx.session.isNew }));
        const server = await listen(app);
        const res = await request(server).get('/').set('Cookie', `admin=${token}`).expect(200);
        expect(res.body).to.deep.equal({ isNew: true });
      });

      it('should not open in the other mode, with the same key ring and serializer', () => {
        const token = backendFor(mode, ring, { serializer: serializer() }).seal({ user: 'ada' });
        const otherMode = MODES.find((m) => m !== mode) ?? mode;
        expect(backendFor(otherMode, ring, { serializer: serializer() }).open(token)).to.equal(undefined);
        // Even re-labelled as the other mode, the value does not open.
        const relabelled = Buffer.from(token, 'base64url');
        relabelled[0] = otherMode === 'signed' ? 1 : 2;
        expect(backendFor(otherMode, ring, { serializer: serializer() }).open(relabelled.toString('base64url'))).to.equal(undefined);
      });
    });
  }
});
