import { expect } from 'chai';
import request from 'supertest';
import { KeyRing } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen } from '../support/helpers.js';

describe('the session counter', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      it('should count each visit across requests, carrying the count in the cookie', async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const server = await listen(appWith(backend));
        let cookie: string | undefined;
        for (let visit = 0; visit < 5; visit++) {
          const req = request(server).get('/');
          if (cookie !== undefined) req.set('Cookie', `session=${cookie}`);
          const res = await req.expect(200);
          expect(res.text).to.equal(String(visit));
          cookie = cookieValue(res);
          expect(backend.open(cookie)).to.deep.equal({ counter: visit + 1 });
        }
      });

      it('should start again from zero for a client that sends no cookie', async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const server = await listen(appWith(backend));
        const first = await request(server).get('/').expect(200);
        await request(server)
          .get('/')
          .set('Cookie', `session=${cookieValue(first)}`)
          .expect(200, '1');
        await request(server).get('/').expect(200, '0');
      });
    });
  }
});
