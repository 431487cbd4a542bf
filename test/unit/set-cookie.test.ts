import { expect } from 'chai';
import Koa from 'koa';
import request from 'supertest';
import {
  MAX_SAME_NAME_COOKIES,
  JsonSerializer,
  KeyRing,
  MemoryStore,
  SessionError,
  StoreSessionBackend,
  type SessionBackend,
  type SessionRecord,
  type SessionWrite,
  type Serializer,
} from '../../src/index.js';
import {
  COMBINATIONS,
  KEY_A,
  KEY_B,
  appWith,
  appWithErrorHandler,
  backendFor,
  cookieValue,
  expectSessionError,
  listen,
  setCookieFor,
  setCookies,
} from '../support/helpers.js';

/** JSON, counting how often it decodes: a request that does not touch its session must not decode. */
class CountingSerializer implements Serializer {
  readonly id = 130;
  readonly name = 'counting json';
  readonly #json = new JsonSerializer();
  decoded = 0;
  serialize(data: SessionRecord): Uint8Array {
    return this.#json.serialize(data);
  }
  deserialize(bytes: Uint8Array): SessionRecord {
    this.decoded++;
    return this.#json.deserialize(bytes);
  }
}

/** A subclass that overrides deserialize: it must be called, not bypassed by the lazy path of its base class. */
class CountingSubclass extends JsonSerializer {
  decoded = 0;
  override deserialize(bytes: Uint8Array): SessionRecord {
    this.decoded++;
    return super.deserialize(bytes);
  }
}

/** Counts how often the middleware asks the backend to open the request's cookie. */
function countingReads(backend: SessionBackend): SessionBackend & { reads: number } {
  const counting = {
    reads: 0,
    async load(ctx: Koa.Context) {
      const handle = await backend.load(ctx);
      return {
        read: () => {
          counting.reads++;
          return handle.read();
        },
        write: (change: SessionWrite) => handle.write(change),
      };
    },
  };
  return counting;
}

describe('the Set-Cookie header', () => {
  const ring = new KeyRing([KEY_A]);

  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealed ${label}`, () => {
      const backend = backendFor(mode, ring, { serializer: serializer() });
      const token = backend.seal({ counter: 2 });

      it('should not be sent when the session is never touched', async () => {
        const server = await listen(appWith(backend, (ctx) => void (ctx.body = 'hi')));
        expect(setCookies(await request(server).get('/').set('Cookie', `session=${token}`).expect(200))).to.deep.equal([]);
        expect(setCookies(await request(server).get('/').expect(200))).to.deep.equal([]);
      });

      it('should not be sent when the session is only read', async () => {
        const server = await listen(appWith(backend, (ctx) => void (ctx.body = String(ctx.session.get('counter')))));
        const res = await request(server).get('/').set('Cookie', `session=${token}`).expect(200, '2');
        expect(setCookies(res)).to.deep.equal([]);
        expect(setCookies(await request(server).get('/').expect(200, 'undefined'))).to.deep.equal([]);
      });

      it('should not be sent when a value is set to what it already was', async () => {
        const server = await listen(
          appWith(backend, (ctx) => {
            ctx.session.set('counter', 2);
            ctx.body = 'ok';
          }),
        );
        expect(setCookies(await request(server).get('/').set('Cookie', `session=${token}`).expect(200))).to.deep.equal([]);
      });

      it('should keep the other cookies of the app and replace its own earlier line', async () => {
        const server = await listen(
          appWith(backend, (ctx) => {
            ctx.cookies.set('theme', 'dark');
            ctx.append('Set-Cookie', 'lang=en; Path=/');
            ctx.append('Set-Cookie', 'session=stale; Path=/');
            ctx.session.set('counter', 3);
            ctx.body = 'ok';
          }),
        );
        const lines = setCookies(await request(server).get('/').expect(200));
        expect(lines.filter((line) => line.startsWith('theme=dark'))).to.have.length(1);
        expect(lines).to.include('lang=en; Path=/');
        expect(lines.filter((line) => line.startsWith('session='))).to.have.length(1);
        const value = (lines.find((line) => line.startsWith('session=')) ?? '').split(';')[0]?.slice('session='.length) ?? '';
        expect(backend.open(value)).to.deep.equal({ counter: 3 });
      });

      it('should expire the cookie on purge, and forget the data', async () => {
        const server = await listen(
          appWith(backend, (ctx) => {
            ctx.session.purge();
            ctx.body = 'bye';
          }),
        );
        const res = await request(server).get('/').set('Cookie', `session=${token}`).expect(200);
        expect(setCookieFor(res)).to.equal('session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
        expect(setCookies(await request(server).get('/').expect(200))).to.deep.equal([]);
      });

      it('should issue a new cookie for the same data on renew', async () => {
        const server = await listen(
          appWith(backend, (ctx) => {
            ctx.session.renew();
            ctx.body = 'ok';
          }),
        );
        const renewed = cookieValue(await request(server).get('/').set('Cookie', `session=${token}`).expect(200));
        expect(renewed).not.to.equal(token);
        expect(backend.open(renewed)).to.deep.equal({ counter: 2 });
      });
    });
  }

  const countingSerializers = [
    { label: 'a serializer of its own', mode: 'signed', make: () => new CountingSerializer() },
    { label: 'a JsonSerializer subclass that overrides deserialize', mode: 'private', make: () => new CountingSubclass() },
  ] as const;
  for (const { label, mode, make } of countingSerializers) {
    it(`should decode through ${label}, and only when the session is touched`, async () => {
      const serializer = make();
      const backend = backendFor(mode, ring, { serializer });
      const token = backend.seal({ counter: 2 });
      const server = await listen(appWith(backend, (ctx) => void (ctx.body = ctx.path === '/read' ? String(ctx.session.get('counter')) : 'hi')));
      await request(server).get('/').set('Cookie', `session=${token}`).expect(200, 'hi');
      expect(serializer.decoded).to.equal(0);
      await request(server).get('/read').set('Cookie', `session=${token}`).expect(200, '2');
      expect(serializer.decoded).to.equal(1);
    });
  }

  for (const { mode, serializer, label } of COMBINATIONS) {
    it(`should not open the cookie of a request that does not touch the session (${label})`, async () => {
      const backend = countingReads(backendFor(mode, ring, { serializer: serializer() }));
      const token = backendFor(mode, ring, { serializer: serializer() }).seal({ counter: 2 });
      const server = await listen(appWith(backend, (ctx) => void (ctx.body = ctx.path === '/read' ? String(ctx.session.get('counter')) : 'hi')));
      await request(server).get('/').set('Cookie', `session=${token}`).expect(200, 'hi');
      expect(backend.reads).to.equal(0);
      await request(server).get('/read').set('Cookie', `session=${token}`).expect(200, '2');
      expect(backend.reads).to.equal(1);
    });
  }

  describe('attributes', () => {
    const line = async (app: Koa, headers: Record<string, string> = {}) =>
      setCookieFor(
        await request(await listen(app))
          .get('/')
          .set(headers)
          .expect(200),
      ) ?? '';

    it('should default to Path=/, HttpOnly, SameSite=Lax, and no Secure over plain HTTP', async () => {
      const written = await line(appWith(backendFor('signed', ring)));
      expect(written).to.match(/^session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=86400; Expires=[^;]+ GMT$/);
    });

    it('should write Secure over plain HTTP when secure is true', async () => {
      expect(await line(appWith(backendFor('signed', ring, { secure: true })))).to.match(/; Secure$/);
    });

    it("should write Secure behind a TLS-terminating proxy with app.proxy and secure 'auto'", async () => {
      const app = appWith(backendFor('signed', ring));
      app.proxy = true;
      expect(await line(app, { 'X-Forwarded-Proto': 'https' })).to.match(/; Secure$/);
      const untrusting = appWith(backendFor('signed', ring));
      expect(await line(untrusting, { 'X-Forwarded-Proto': 'https' })).not.to.contain('Secure');
    });

    it("should always write Secure with SameSite=None, on the cookie and on the line that expires it, also over HTTP with secure 'auto'", async () => {
      const backend = backendFor('signed', ring, { sameSite: 'none' });
      const server = await listen(
        appWith(backend, (ctx) => {
          if (ctx.path === '/logout') ctx.session.purge();
          else ctx.session.set('a', 1);
          ctx.body = 'ok';
        }),
      );
      const written = setCookieFor(await request(server).get('/').expect(200)) ?? '';
      expect(written).to.match(/; SameSite=None;.*; Secure$/);
      const purged =
        setCookieFor(
          await request(server)
            .get('/logout')
            .set('Cookie', `session=${backend.seal({ a: 1 })}`)
            .expect(200),
        ) ?? '';
      expect(purged).to.match(/^session=; .*SameSite=None;.*Max-Age=0.*; Secure$/);
    });

    it("should write Partitioned and Secure on both backends, on the cookie and on the line that expires it, also over HTTP with secure 'auto'", async () => {
      const backends = [backendFor('private', ring, { partitioned: true }), new StoreSessionBackend(new MemoryStore(), ring, { partitioned: true })];
      for (const backend of backends) {
        const server = await listen(
          appWith(backend, (ctx) => {
            if (ctx.path === '/logout') ctx.session.purge();
            else ctx.session.set('a', 1);
            ctx.body = 'ok';
          }),
        );
        const first = await request(server).get('/').expect(200);
        expect(setCookieFor(first)).to.match(
          /^session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax; Partitioned; Max-Age=\d+; Expires=[^;]+; Secure$/,
        );
        const purged = setCookieFor(
          await request(server)
            .get('/logout')
            .set('Cookie', `session=${cookieValue(first)}`)
            .expect(200),
        );
        expect(purged).to.match(/^session=; Path=\/; HttpOnly; SameSite=Lax; Partitioned; Max-Age=0; Expires=[^;]+; Secure$/);
      }
      // Without the option, neither backend writes it.
      const plain = await request(await listen(appWith(new StoreSessionBackend(new MemoryStore(), ring))))
        .get('/')
        .expect(200);
      expect(setCookieFor(plain)).not.to.contain('Partitioned');
    });

    it('should refuse partitioned with secure: false, and a partitioned that is not a boolean, on both backends', () => {
      const make = [
        (options: object) => backendFor('signed', ring, options),
        (options: object) => new StoreSessionBackend(new MemoryStore(), ring, options),
      ];
      for (const backend of make) {
        for (const [options, option] of [
          [{ partitioned: true, secure: false }, 'secure'],
          [{ partitioned: 'yes' }, 'partitioned'],
        ] as const) {
          const err = expectSessionError(() => backend(options), 'ERR_SESSION_INVALID_OPTION');
          expect(err.message).to.contain(`"${option}"`);
        }
        expect(() => backend({ partitioned: true, secure: true })).not.to.throw();
      }
    });

    it('should work with a __Host- name behind a TLS-terminating proxy, as the README recommends', async () => {
      const backend = backendFor('private', ring, { name: '__Host-session', secure: true });
      const app = appWith(backend);
      app.proxy = true;
      const server = await listen(app);
      const first = await request(server).get('/').set('X-Forwarded-Proto', 'https').expect(200, '0');
      expect(setCookieFor(first, '__Host-session')).to.match(
        /^__Host-session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Expires=[^;]+; Secure$/,
      );
      const cookie = `__Host-session=${cookieValue(first, '__Host-session')}`;
      await request(server).get('/').set('X-Forwarded-Proto', 'https').set('Cookie', cookie).expect(200, '1');
    });

    it('should write name, path, domain and SameSite as configured', async () => {
      const backend = backendFor('private', ring, { name: 'sid', path: '/app', domain: 'example.com', sameSite: 'strict', httpOnly: false });
      const app = appWith(backend);
      const res = await request(await listen(app))
        .get('/')
        .expect(200);
      expect(setCookieFor(res, 'sid')).to.match(/^sid=[A-Za-z0-9_-]+; Path=\/app; Domain=example\.com; SameSite=Strict; Max-Age/);
      const noSameSite = await line(appWith(backendFor('signed', ring, { sameSite: false })));
      expect(noSameSite).not.to.contain('SameSite');
    });
  });

  describe('reading the Cookie header', () => {
    const backend = backendFor('signed', ring);
    const token = backend.seal({ counter: 7 });
    const echo = (ctx: Koa.Context) => void (ctx.body = String(ctx.session.get('counter') ?? 'none'));

    it('should find the cookie among others, quoted or not', async () => {
      const server = await listen(appWith(backend, echo));
      await request(server).get('/').set('Cookie', `a=1; session=${token}; b=2`).expect(200, '7');
      await request(server).get('/').set('Cookie', `a=1;session="${token}"`).expect(200, '7');
      await request(server).get('/').set('Cookie', `xsession=${token}`).expect(200, 'none');
    });

    it('should use the first of several cookies of the same name that opens, so a planted cookie cannot push it out', async () => {
      const server = await listen(appWith(backend, echo));
      await request(server).get('/').set('Cookie', `session=${token}; session=garbage`).expect(200, '7');
      await request(server).get('/').set('Cookie', `session=garbage; session=${token}`).expect(200, '7');
      // Sealed for this name, but by another app's key: what a sibling subdomain could plant.
      const planted = backendFor('signed', new KeyRing([KEY_B])).seal({ counter: 666 });
      await request(server).get('/').set('Cookie', `session=${planted}; a=1; session=${token}`).expect(200, '7');
      const other = backend.seal({ counter: 8 });
      await request(server).get('/').set('Cookie', `session=${other}; session=${token}`).expect(200, '8');
    });

    it(`should try at most MAX_SAME_NAME_COOKIES (${MAX_SAME_NAME_COOKIES}) cookies of the same name`, async () => {
      const server = await listen(appWith(backend, echo));
      const garbage = (count: number) => Array.from({ length: count }, (_, i) => `session=g${i}`).join('; ');
      await request(server)
        .get('/')
        .set('Cookie', `${garbage(MAX_SAME_NAME_COOKIES - 1)}; session=${token}`)
        .expect(200, '7');
      await request(server)
        .get('/')
        .set('Cookie', `${garbage(MAX_SAME_NAME_COOKIES)}; session=${token}`)
        .expect(200, 'none');
    });
  });

  describe('when the app misuses ctx.session', () => {
    it('should refuse assigning ctx.session anything but null or a plain object, with ERR_SESSION_ASSIGNMENT', async () => {
      const app = appWith(backendFor('signed', ring), (ctx) => {
        (ctx as unknown as { session: unknown }).session = new Map([['a', 1]]);
      });
      await request(await listen(app))
        .get('/')
        .expect(500);
      expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_ASSIGNMENT');
    });

    it('should refuse a change made after the response was committed with ERR_SESSION_INACTIVE', async () => {
      let late: unknown;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const app = appWith(backendFor('signed', ring), (ctx) => {
        ctx.session.set('a', 1);
        setTimeout(() => {
          try {
            ctx.session.set('b', 2);
          } catch (err) {
            late = err;
          }
          done();
        }, 20);
        ctx.body = 'ok';
      });
      await request(await listen(app))
        .get('/')
        .expect(200);
      await finished;
      expect((late as SessionError).code).to.equal('ERR_SESSION_INACTIVE');
    });
  });

  describe('when downstream middleware throws', () => {
    const failing = (ctx: Koa.Context) => {
      ctx.session.set('attempts', (ctx.session.get<number>('attempts') ?? 0) + 1);
      ctx.throw(401, 'wrong password');
    };

    it('should not write the changes by default', async () => {
      const app = appWith(backendFor('signed', ring), failing);
      const res = await request(await listen(app))
        .get('/')
        .expect(401);
      expect(setCookieFor(res)).to.equal(undefined);
    });

    it('should write them with commitOnError when an upstream middleware turns the error into a response', async () => {
      const backend = backendFor('signed', ring);
      const app = appWithErrorHandler(backend, { commitOnError: true }, failing);
      const res = await request(await listen(app))
        .get('/')
        .expect(401, 'handled');
      expect(backend.open(cookieValue(res))).to.deep.equal({ attempts: 1 });
    });
  });
});
