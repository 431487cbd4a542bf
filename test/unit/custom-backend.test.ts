import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { Context } from 'koa';
import request from 'supertest';
import { handleOf } from '../../src/backend.js';
import { SessionError, type SessionBackend, type SessionHandle, type SessionRecord, type SessionWrite } from '../../src/index.js';
import { appWith, counter, listen, setCookieFor } from '../support/helpers.js';

/** A server-side store written against the public interface alone: the session id travels in a cookie. */
class MemoryBackend implements SessionBackend {
  readonly records = new Map<string, SessionRecord>();
  writes: SessionWrite[] = [];

  async load(ctx: Context): Promise<SessionHandle> {
    const id = ctx.cookies.get('sid');
    // An async store does its I/O here, before the app runs.
    const record = id === undefined ? undefined : await Promise.resolve(this.records.get(id));
    return {
      read: () => (record === undefined ? undefined : { data: structuredClone(record), stale: false }),
      write: async (change) => {
        this.writes.push(change);
        if (id !== undefined && (change.status === 'purged' || change.status === 'renewed')) this.records.delete(id);
        if (change.status === 'purged') {
          ctx.cookies.set('sid', null);
          return;
        }
        const nextId = id === undefined || change.isNew || change.status === 'renewed' ? randomUUID() : id;
        await Promise.resolve(this.records.set(nextId, change.data));
        ctx.cookies.set('sid', nextId);
      },
    };
  }
}

describe('a custom backend', () => {
  it('should drive the counter through the public SessionBackend interface alone', async () => {
    const backend = new MemoryBackend();
    const server = await listen(appWith(backend, counter));
    let cookie = '';
    for (let visit = 0; visit < 4; visit++) {
      const res = await request(server).get('/').set('Cookie', cookie).expect(200, String(visit));
      cookie = (setCookieFor(res, 'sid') ?? '').split(';')[0] ?? '';
    }
    expect([...backend.records.values()]).to.deep.equal([{ counter: 4 }]);
    expect(backend.writes.map((w) => [w.status, w.isNew])).to.deep.equal([
      ['changed', true],
      ['changed', false],
      ['changed', false],
      ['changed', false],
    ]);
  });

  it('should be told about renew and purge, and not be asked to write an untouched session', async () => {
    const backend = new MemoryBackend();
    const server = await listen(
      appWith(backend, (ctx) => {
        if (ctx.path === '/login') {
          ctx.session.set('user', 'ada');
          ctx.session.renew();
        } else if (ctx.path === '/logout') ctx.session.purge();
        ctx.body = 'ok';
      }),
    );
    const login = await request(server).get('/login').expect(200);
    const cookie = (setCookieFor(login, 'sid') ?? '').split(';')[0] ?? '';
    await request(server).get('/idle').set('Cookie', cookie).expect(200);
    await request(server).get('/logout').set('Cookie', cookie).expect(200);
    expect(backend.writes.map((w) => w.status)).to.deep.equal(['renewed', 'purged']);
    expect(backend.records.size).to.equal(0);
  });
});

/** A handle of a backend's own: what `handleOf(ctx.session)` gives back, recognised by its class. */
class OwnHandle implements SessionHandle {
  readonly valueRules = { bytesDepth: 0, wellFormedStrings: true, bigint: undefined };
  constructor(readonly requestId: string) {}
  read() {
    return undefined;
  }
  write() {}
}

describe('a custom backend through koa-sealed-session/backend', () => {
  it('should get its own handle back from handleOf(ctx.session), and have set() apply its valueRules at once', async () => {
    const backend: SessionBackend = { load: () => new OwnHandle(randomUUID()) };
    const seen: unknown[] = [];
    const server = await listen(
      appWith(backend, (ctx) => {
        const handle = handleOf(ctx.session);
        seen.push(handle instanceof OwnHandle ? handle.requestId : handle);
        // Not its serializer's to carry: refused by set() itself, before the end of the request.
        expect(() => ctx.session.set('name', 'Jos\ud800'))
          .to.throw(SessionError)
          .with.property('code', 'ERR_SESSION_UNSUPPORTED_VALUE');
        expect(() => ctx.session.set('n', 1n))
          .to.throw(SessionError)
          .with.property('code', 'ERR_SESSION_UNSUPPORTED_VALUE');
        ctx.body = 'ok';
      }),
    );
    await request(server).get('/').expect(200, 'ok');
    await request(server).get('/').expect(200, 'ok');
    expect(seen).to.have.length(2);
    expect(seen[0]).to.be.a('string').and.not.equal(seen[1]);
    // Anything but a request's ctx.session has no handle.
    expect(handleOf({})).to.equal(undefined);
    expect(handleOf(null)).to.equal(undefined);
  });
});
