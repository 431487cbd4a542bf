import { expect } from 'chai';
import fc from 'fast-check';
import type { Server } from 'node:http';
import { nearLimitSession } from '../../../benchmarks/fixture.js';
import { readCookies } from '../../../src/http/cookie.js';
import { KeyRing, MAX_SAME_NAME_COOKIES } from '../../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, listen, rawCookie, rawGet } from '../../support/helpers.js';

const RUNS = process.env.HARDENING_LONG === '1' ? 30_000 : 3000;
// What node itself may answer before the app runs: 400 for bytes its parser refuses, 431 for oversized headers.
const NODE_ANSWERS = [400, 431];

function heapAfterGc(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

describe('fuzzing the Cookie header', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const valid = backend.seal(nearLimitSession());
      let server: Server;
      let app: ReturnType<typeof appWith>;

      beforeEach(async () => {
        app = appWith(backend, (ctx) => {
          const count = ctx.session.get<number>('counter');
          ctx.session.set('counter', (count ?? -1) + 1);
          ctx.body = JSON.stringify({ isNew: ctx.session.isNew, count: count ?? null });
        });
        server = await listen(app);
      });

      // Any byte but CR and LF: those would end the header line, and CRLF CRLF the request, so that the rest went
      // out as data after `Connection: close`, which node's parser reports on the socket as the response is sent
      // (a race that Koa reports as an app error). That is another request, not a Cookie header.
      const latin1 = (bytes: Uint8Array) =>
        Buffer.from(bytes)
          .toString('latin1')
          .replace(/[\r\n]/g, ' ');
      const cookieValues = fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 300 }).map(latin1),
        fc.tuple(fc.nat(valid.length), fc.string({ maxLength: 8 })).map(([cut, tail]) => valid.slice(0, cut) + tail),
        fc.string({ maxLength: 8 }).map((head) => head + valid),
        fc.constant(valid).map((value) => encodeURIComponent(value).replace(/-/g, '%2D')),
        fc.constant(''),
        fc.constantFrom('%00', '%E2%9C%93', 'caf\u00e9', '"', '""', '=', ';', ' '),
      );
      const headers = fc.oneof(
        cookieValues.map((value) => [`Cookie: session=${value}`]),
        fc.tuple(cookieValues, cookieValues).map(([a, b]) => [`Cookie: session=${a}`, `Cookie: session=${b}`]),
        fc.tuple(cookieValues, cookieValues).map(([a, b]) => [`Cookie: session=${a}; other=1; session=${b}`]),
        fc
          .tuple(cookieValues, fc.boolean())
          .map(([a, first]) => [first ? `Cookie: session=${valid}; session=${a}` : `Cookie: session=${a}; session=${valid}`]),
        fc.uint8Array({ maxLength: 200 }).map((bytes) => [`Cookie: ${latin1(bytes)}`]),
      );

      it(`should answer ${RUNS} hostile Cookie headers without a 500, a hang, an error event or memory growth`, async function () {
        this.timeout(120_000);
        const before = heapAfterGc();
        await fc.assert(
          fc.asyncProperty(headers, async (lines) => {
            const res = await rawGet(server, lines);
            if (NODE_ANSWERS.includes(res.status)) return;
            expect(res.status, res.body).to.equal(200);
            const body = JSON.parse(res.body) as { isNew: boolean; count: number | null };
            // The valid cookie opens only as it was sealed, so the count it carries is 0.
            if (!body.isNew) expect(body.count).to.equal(0);
            const written = rawCookie(res);
            expect(written, 'every answer writes the counter').not.to.equal(undefined);
            expect(backend.open(written ?? '')).to.have.property('counter');
          }),
          { numRuns: RUNS },
        );
        expect(app.errors).to.deep.equal([]);
        const growth = heapAfterGc() - before;
        expect(growth, `heap grew by ${growth} bytes`).to.be.lessThan(16 * 2 ** 20);
      });

      it('should let node answer 431 for a Cookie header beyond its header limit, and a 100 kB value', async () => {
        expect((await rawGet(server, [`Cookie: session=${'A'.repeat(100_000)}`])).status).to.equal(431);
        expect((await rawGet(server, [`Cookie: ${'a=b; '.repeat(5000)}session=${valid}`])).status).to.equal(431);
        expect(app.errors).to.deep.equal([]);
      });

      it('should still open the valid cookie among others (control)', async () => {
        const res = await rawGet(server, [`Cookie: a=1; session=${valid}; b=2`]);
        expect(JSON.parse(res.body)).to.deep.equal({ isNew: false, count: 0 });
      });
    });
  }

  describe('when reading a Cookie header of any shape', () => {
    /** Characters String#indexOf looks at while `read` runs: the parser's cost, counted rather than timed. */
    function scanned(read: () => void): number {
      // Saved to be put back after counting; called only through call().
      // eslint-disable-next-line @typescript-eslint/unbound-method
      const indexOf = String.prototype.indexOf;
      let count = 0;
      String.prototype.indexOf = function (this: string, search: string, from = 0) {
        const at = indexOf.call(this, search, from);
        count += (at === -1 ? this.length : at + 1) - from;
        return at;
      };
      try {
        read();
      } finally {
        String.prototype.indexOf = indexOf;
      }
      return count;
    }

    it('should cost at most a few times what an ordinary header of the same length costs', () => {
      const size = 16_000;
      const ordinary = Array.from({ length: 400 }, (_, i) => `c${i}=${'v'.repeat(32)}`)
        .join('; ')
        .slice(0, size);
      const baseline = scanned(() => readCookies(ordinary, 'session', MAX_SAME_NAME_COOKIES));
      const shapes = fc.array(fc.constantFrom(';', '=', ' ', 'a', '"', 'session', '\t', ',', 'session='), { minLength: 1, maxLength: 6 });
      fc.assert(
        fc.property(shapes, shapes, (parts, tail) => {
          // A repeated unit, then a different tail: an "=" only at the very end is what made the old parser quadratic.
          const unit = parts.join('');
          const end = tail.join('');
          const header = unit.repeat(Math.ceil(size / unit.length)).slice(0, size - end.length) + end;
          const cost = scanned(() => readCookies(header, 'session', MAX_SAME_NAME_COOKIES));
          expect(cost / baseline, `cost ratio for ${JSON.stringify(unit)} then ${JSON.stringify(end)}`).to.be.at.most(3);
        }),
        {
          numRuns: 300,
          examples: [
            [[';'], ['a', '=']],
            [[';'], [';']],
            [['a', ';'], ['session=']],
            [[' ', ';'], ['=']],
          ],
        },
      );
    });
  });
});
