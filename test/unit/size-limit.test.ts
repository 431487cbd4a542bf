import { expect } from 'chai';
import request from 'supertest';
import { KeyRing, MAX_COOKIE_VALUE_BYTES, SessionError } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen, setCookieFor } from '../support/helpers.js';

function sealsAt(seal: (data: Record<string, unknown>) => string, padding: number): string | undefined {
  try {
    return seal({ user: 'ada', pad: 'x'.repeat(padding) });
  } catch (err) {
    expect((err as SessionError).code).to.equal('ERR_SESSION_TOO_LARGE');
    return undefined;
  }
}

/** The largest padding that still seals, by bisection. */
function largestPadding(seal: (data: Record<string, unknown>) => string): number {
  let fits = 0;
  let fails = 8000;
  while (fails - fits > 1) {
    const middle = Math.floor((fits + fails) / 2);
    if (sealsAt(seal, middle) === undefined) fails = middle;
    else fits = middle;
  }
  return fits;
}

describe('the 4000-byte cookie limit', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const seal = (data: Record<string, unknown>) => backend.seal(data);

      it('should seal the largest session that fits into more than 3990 and at most 4000 bytes', () => {
        const padding = largestPadding(seal);
        const value = sealsAt(seal, padding) ?? '';
        expect(value.length).to.be.within(3991, MAX_COOKIE_VALUE_BYTES);
        expect(backend.open(value)).to.deep.equal({ user: 'ada', pad: 'x'.repeat(padding) });
        expect(sealsAt(seal, padding + 1)).to.equal(undefined);
      });

      it("should answer 500 for a session one byte too large, keep the client's cookie and lose nothing", async () => {
        const padding = largestPadding(seal);
        const app = appWith(backend, (ctx) => {
          const grow = Number(ctx.query.grow ?? 0);
          ctx.session.set('pad', 'x'.repeat(padding + grow));
          ctx.cookies.set('other', 'kept', { signed: false });
          ctx.body = 'ok';
        });
        const server = await listen(app);
        const fits = await request(server)
          .get('/?grow=0')
          .set('Cookie', `session=${backend.seal({ user: 'ada' })}`)
          .expect(200);
        const good = cookieValue(fits);
        expect(good.length).to.be.greaterThan(3990);

        const tooLarge = await request(server).get('/?grow=1').set('Cookie', `session=${good}`).expect(500);
        expect(setCookieFor(tooLarge)).to.equal(undefined);
        expect(app.errors).to.have.length(1);
        const err = app.errors[0] as SessionError;
        expect(err).to.be.instanceOf(SessionError);
        expect(err.code).to.equal('ERR_SESSION_TOO_LARGE');
        expect(err.message).to.match(/it would be \d{4} bytes, and the limit is 4000/);
        expect(err.message).to.match(/Largest keys: "pad" \(\d+ bytes\), "user" \(\d+ bytes\)/);
        expect(err.message).not.to.contain(good.slice(0, 40));
        expect(tooLarge.text).not.to.contain('limit');

        // The client still holds the last good cookie, and it still opens to the data before the failed request.
        expect(backend.open(good)).to.deep.equal({ user: 'ada', pad: 'x'.repeat(padding) });
      });
    });
  }
});
