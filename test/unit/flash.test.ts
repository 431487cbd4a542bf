import { expect } from 'chai';
import type Koa from 'koa';
import request from 'supertest';
import {
  FLASH_KEY,
  JsonSerializer,
  KeyRing,
  MemoryStore,
  MsgpackSerializer,
  Session,
  StoreSessionBackend,
  type SessionBackend,
  type StoreWrite,
} from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, expectSessionError, listen, setCookieFor } from '../support/helpers.js';

/** A MemoryStore that counts its writes: a request that changes nothing must not write. */
class CountingStore extends MemoryStore {
  writes = 0;
  override write(key: string, write: StoreWrite): Promise<boolean> {
    this.writes++;
    return super.write(key, write);
  }
}

describe('flash messages (ctx.session.flash)', () => {
  describe('on a Session', () => {
    it('should queue messages by type and hand each type out once, oldest first', () => {
      const session = new Session();
      expect(session.flash('notice')).to.deep.equal([]);
      expect(session.flash()).to.deep.equal({});
      expect(session.status).to.equal('unchanged');
      session.flash('notice', 'Saved.');
      session.flash('notice', { text: 'Sent', count: 2 });
      session.flash('error', 'Nope.');
      expect(session.get(FLASH_KEY)).to.deep.equal({ notice: ['Saved.', { text: 'Sent', count: 2 }], error: ['Nope.'] });
      expect(session.flash('notice')).to.deep.equal(['Saved.', { text: 'Sent', count: 2 }]);
      expect(session.flash('notice')).to.deep.equal([]);
      expect(session.flash()).to.deep.equal({ error: ['Nope.'] });
      expect(session.flash()).to.deep.equal({});
      expect(session.has(FLASH_KEY)).to.equal(false);
    });

    it('should remove the key once the last type is read, and keep the other types when one is read', () => {
      const session = new Session();
      session.flash('a', 1);
      session.flash('b', 2);
      expect(session.flash('a')).to.deep.equal([1]);
      expect(session.get(FLASH_KEY)).to.deep.equal({ b: [2] });
      expect(session.flash('b')).to.deep.equal([2]);
      expect(session.has(FLASH_KEY)).to.equal(false);
    });

    it('should hand out copies: changing a message read or queued changes nothing stored', () => {
      const session = new Session();
      const message = { text: 'x' };
      session.flash('n', message);
      message.text = 'changed';
      const [read] = session.flash<{ text: string }>('n');
      expect(read).to.deep.equal({ text: 'x' });
    });

    it('should refuse a type that is not a string with a typed error', () => {
      const session = new Session();
      for (const type of [42, null, {}, ['notice']]) expectSessionError(() => session.flash(type as never, 'x'), 'ERR_SESSION_UNSUPPORTED_VALUE');
      expect(session.status).to.equal('unchanged');
    });

    it('should take "__proto__" and other odd types as plain names', () => {
      const session = new Session();
      session.flash('__proto__', 'p');
      session.flash('constructor', 'c');
      expect(Object.getPrototypeOf(session.get(FLASH_KEY))).to.equal(Object.prototype);
      expect(session.flash('__proto__')).to.deep.equal(['p']);
      expect(session.flash()).to.deep.equal({ constructor: ['c'] });
    });

    it('should hand out a queue koa-connect-flash left under the same key (a session moved from koa-session)', () => {
      const session = new Session();
      session.set(FLASH_KEY, { info: ['Welcome back.'], error: ['Old error.'] });
      expect(session.flash('info')).to.deep.equal(['Welcome back.']);
      expect(session.flash()).to.deep.equal({ error: ['Old error.'] });
    });

    it('should count anything else stored under the key as nothing queued, and replace it when a message is queued', () => {
      for (const stored of ['text', 42, [1, 2], { notice: 'not an array' }, { notice: [] }, null]) {
        const session = new Session();
        session.set(FLASH_KEY, stored);
        expect(session.flash('notice'), JSON.stringify(stored)).to.deep.equal([]);
        session.flash('notice', 'Saved.');
        expect(session.get(FLASH_KEY)).to.deep.equal({ notice: ['Saved.'] });
      }
    });

    it('should refuse a message that is not plain data with the usual typed error, the queue unchanged', () => {
      const session = new Session();
      session.flash('n', 'kept');
      for (const bad of [new Map(), () => 1, Symbol('s'), new (class Widget {})()]) {
        expectSessionError(() => session.flash('n', bad), 'ERR_SESSION_UNSUPPORTED_VALUE');
      }
      expect(session.flash('n')).to.deep.equal(['kept']);
    });
  });

  describe('over HTTP: post, redirect (ctx.redirect), get', () => {
    const ring = new KeyRing([KEY_A]);
    const cases: { label: string; backend: () => SessionBackend; store?: CountingStore }[] = [
      ...COMBINATIONS.map(({ mode, serializer, label }) => ({
        label: `cookie ${label}`,
        backend: () => backendFor(mode, ring, { serializer: serializer() }),
      })),
      ...[new JsonSerializer(), new MsgpackSerializer()].map((serializer) => {
        const store = new CountingStore();
        return { label: `store + ${serializer.name}`, store, backend: () => new StoreSessionBackend(store, ring, { serializer }) };
      }),
    ];

    const app = (backend: SessionBackend): Koa =>
      appWith(backend, (ctx) => {
        if (ctx.method === 'POST' && ctx.path === '/save') {
          ctx.session.set('user', 'ada');
          ctx.session.flash('notice', 'Saved.');
          ctx.session.flash('notice', 'Mailed.');
          ctx.redirect('/');
        } else if (ctx.path === '/') {
          ctx.body = { notice: ctx.session.flash('notice'), user: ctx.session.get('user') };
        } else {
          ctx.body = { user: ctx.session.get('user') };
        }
      });

    for (const { label, backend, store } of cases) {
      it(`should show the messages on the page after the redirect, once, and write nothing for a request that reads none (${label})`, async () => {
        const server = await listen(app(backend()));
        const posted = await request(server).post('/save').expect(302).expect('Location', '/');
        let cookie = `session=${cookieValue(posted)}`;
        // A request that reads no flash leaves the queue and writes nothing.
        const writes = store?.writes;
        const other = await request(server).get('/other').set('Cookie', cookie).expect(200, { user: 'ada' });
        expect(setCookieFor(other)).to.equal(undefined);
        expect(store?.writes).to.equal(writes);
        const shown = await request(server)
          .get('/')
          .set('Cookie', cookie)
          .expect(200, { notice: ['Saved.', 'Mailed.'], user: 'ada' });
        if (store === undefined) cookie = `session=${cookieValue(shown)}`;
        else expect(store.writes).to.equal((writes ?? 0) + 1);
        // Shown once: the next page finds nothing queued, and reading an empty queue writes nothing.
        const again = await request(server).get('/').set('Cookie', cookie).expect(200, { notice: [], user: 'ada' });
        expect(setCookieFor(again)).to.equal(undefined);
        if (store !== undefined) expect(store.writes).to.equal((writes ?? 0) + 1);
      });
    }
  });
});
