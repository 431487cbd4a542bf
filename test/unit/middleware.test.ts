import { expect } from 'chai';
import Koa from 'koa';
import request from 'supertest';
import { KeyRing, session, type SessionBackend } from '../../src/index.js';
import { KEY_A, appWith, backendFor, cookieValue, listen } from '../support/helpers.js';

const memory: SessionBackend = { load: () => ({ read: () => ({ data: { counter: 1 }, stale: false }), write: () => undefined }) };

describe('the middleware', () => {
  it('should give ctx.session to a bare context object without touching Object.prototype', async () => {
    const ctx = {} as Koa.Context;
    let seen: unknown;
    await session(memory)(ctx, async () => {
      seen = ctx.session.get('counter');
    });
    expect(seen).to.equal(1);
    expect('session' in {}).to.equal(false);
    expect(Object.getOwnPropertyDescriptor(Object.prototype, 'session')).to.equal(undefined);
  });

  it('should wait for a backend whose load returns a thenable that is not a native Promise', async () => {
    const handle = { read: () => ({ data: { counter: 41 }, stale: false }), write: () => undefined };
    const thenable = { load: () => ({ then: (resolve: (value: typeof handle) => void) => setTimeout(() => resolve(handle), 5) }) };
    const ctx = {} as Koa.Context;
    let seen: unknown;
    await session(thenable as unknown as SessionBackend)(ctx, async () => {
      seen = ctx.session.get('counter');
    });
    expect(seen).to.equal(41);
  });

  it('should keep the sessions of two apps and of concurrent requests apart', async () => {
    const ring = new KeyRing([KEY_A]);
    const a = backendFor('signed', ring, { name: 'a' });
    const b = backendFor('private', ring, { name: 'b' });
    const appA = await listen(appWith(a));
    const appB = await listen(appWith(b));
    const tokenA = a.seal({ counter: 10 });
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? request(appA).get('/').set('Cookie', `a=${tokenA}`) : request(appB).get('/'))),
    );
    responses.forEach((res, i) => {
      expect(res.text).to.equal(i % 2 === 0 ? '10' : '0');
      if (i % 2 === 0) expect(a.open(cookieValue(res, 'a'))).to.deep.equal({ counter: 11 });
      else expect(b.open(cookieValue(res, 'b'))).to.deep.equal({ counter: 1 });
    });
  });

  it('should leave ctx.session undefined in an app that does not use the middleware', async () => {
    appWith(backendFor('signed', new KeyRing([KEY_A])));
    const plain = new Koa();
    // What String() makes of a session is what this test checks.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    plain.use((ctx) => void (ctx.body = String(ctx.session)));
    await request(await listen(plain))
      .get('/')
      .expect(200, 'undefined');
  });
});
