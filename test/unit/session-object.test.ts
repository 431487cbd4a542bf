import { expect } from 'chai';
import request from 'supertest';
import { KeyRing, Session } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, expectSessionError, listen } from '../support/helpers.js';

describe('Session', () => {
  describe('when values are read and written', () => {
    it('should return copies: mutating what get returned changes nothing until set', () => {
      const s = new Session({ data: { cart: { items: [1, 2] } }, stale: false });
      const cart = s.get<{ items: number[] }>('cart');
      cart?.items.push(3);
      expect(s.get('cart')).to.deep.equal({ items: [1, 2] });
      expect(s.status).to.equal('unchanged');
      s.set('cart', cart);
      expect(s.get('cart')).to.deep.equal({ items: [1, 2, 3] });
      expect(s.status).to.equal('changed');
    });

    it('should store copies: mutating an object after set changes nothing', () => {
      const s = new Session();
      const prefs = { theme: 'dark' };
      s.set('prefs', prefs);
      prefs.theme = 'light';
      expect(s.get('prefs')).to.deep.equal({ theme: 'dark' });
    });

    it('should report has, keys, size and entries', () => {
      const s = new Session();
      s.set('a', 1);
      s.set('b', { c: [true, null] });
      expect(s.has('a')).to.equal(true);
      expect(s.has('z')).to.equal(false);
      expect([...s.keys()]).to.deep.equal(['a', 'b']);
      expect(s.size).to.equal(2);
      const entries = [...s.entries()];
      expect(entries).to.deep.equal([
        ['a', 1],
        ['b', { c: [true, null] }],
      ]);
      (entries[1]?.[1] as { c: unknown[] }).c.push(1);
      expect(s.get('b')).to.deep.equal({ c: [true, null] });
    });

    it('should treat set(key, undefined) as remove and drop undefined inside objects', () => {
      const s = new Session({ data: { a: 1 }, stale: false });
      s.set('a', undefined);
      expect(s.has('a')).to.equal(false);
      s.set('b', { x: undefined, y: [undefined, 1] });
      expect(s.get('b')).to.deep.equal({ y: [null, 1] });
    });

    it('should keep Dates and byte arrays as copies', () => {
      const s = new Session();
      const when = new Date(1_700_000_000_000);
      const bytes = Uint8Array.from([1, 2, 3]);
      s.set('when', when);
      s.set('bytes', bytes);
      when.setTime(0);
      bytes[0] = 9;
      expect(s.get<Date>('when')?.getTime()).to.equal(1_700_000_000_000);
      expect([...(s.get<Uint8Array>('bytes') ?? [])]).to.deep.equal([1, 2, 3]);
    });
  });

  describe('when tracking status', () => {
    it('should stay unchanged for reads, equal primitives and no-op removes', () => {
      const s = new Session({ data: { n: 1, s: 'x' }, stale: false });
      s.get('n');
      s.set('n', 1);
      s.set('s', 'x');
      expect(s.remove('missing')).to.equal(false);
      new Session().clear();
      expect(s.status).to.equal('unchanged');
      expect(s.isNew).to.equal(false);
    });

    it('should move through changed, renewed and purged', () => {
      const s = new Session();
      expect(s.isNew).to.equal(true);
      s.set('a', 1);
      expect(s.status).to.equal('changed');
      s.renew();
      expect(s.status).to.equal('renewed');
      s.set('b', 2);
      expect(s.status).to.equal('renewed');
      s.purge();
      expect(s.status).to.equal('purged');
      expect(s.size).to.equal(0);
      s.set('c', 3);
      expect(s.status).to.equal('renewed');
      expect([...s.keys()]).to.deep.equal(['c']);
    });

    it('should count clear() of a non-empty session as a change', () => {
      const s = new Session({ data: { a: 1 }, stale: false });
      s.clear();
      expect(s.status).to.equal('changed');
      expect(s.size).to.equal(0);
    });
  });

  describe('when given values that are not plain data', () => {
    const cases: [string, unknown][] = [
      ['a function', () => 1],
      ['a symbol', Symbol('s')],
      ['a Map', new Map([['a', 1]])],
      ['a Set', new Set([1])],
      [
        'a class instance',
        new (class Point {
          x = 1;
        })(),
      ],
      ['a RegExp', /x/],
      ['an Error', new Error('e')],
      ['a nested function', { a: [{ b: () => 1 }] }],
    ];
    for (const [label, value] of cases) {
      it(`should refuse ${label} with ERR_SESSION_UNSUPPORTED_VALUE and stay unchanged`, () => {
        const s = new Session();
        expectSessionError(() => s.set('v', value), 'ERR_SESSION_UNSUPPORTED_VALUE');
        expect(s.status).to.equal('unchanged');
        expect(s.has('v')).to.equal(false);
      });
    }

    it('should name the path of the bad value in the message', () => {
      const err = expectSessionError(() => new Session().set('v', { a: [{ b: () => 1 }] }), 'ERR_SESSION_UNSUPPORTED_VALUE');
      expect(err.message).to.contain('v.a[0].b');
    });

    it('should refuse cycles and nesting deeper than 64 levels', () => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      expect(expectSessionError(() => new Session().set('v', cyclic), 'ERR_SESSION_UNSUPPORTED_VALUE').message).to.contain('cycle');
      let deep: unknown = 1;
      for (let i = 0; i < 65; i++) deep = [deep];
      expectSessionError(() => new Session().set('v', deep), 'ERR_SESSION_UNSUPPORTED_VALUE');
      let ok: unknown = 1;
      for (let i = 0; i < 63; i++) ok = [ok];
      new Session().set('v', ok);
    });

    it('should refuse keys that are not strings', () => {
      expectSessionError(() => new Session().set(1 as unknown as string, 1), 'ERR_SESSION_UNSUPPORTED_VALUE');
    });
  });

  describe('when keys are named __proto__, constructor or prototype', () => {
    const tricky = JSON.parse(
      '{"__proto__": {"polluted": true, "__proto__": {"deep": 1}}, "constructor": {"prototype": {"polluted": true}},' +
        ' "prototype": [{"__proto__": 2}]}',
    ) as Record<string, unknown>;

    it('should keep them as plain data in the session', () => {
      const s = new Session();
      for (const key of Object.keys(tricky)) s.set(key, tricky[key]);
      expect(Object.keys(s.toJSON())).to.deep.equal(['__proto__', 'constructor', 'prototype']);
      expect(s.get('__proto__')).to.deep.equal(tricky.__proto__);
      expect(Object.getPrototypeOf(s.get('__proto__'))).to.equal(Object.prototype);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });

    for (const { mode, serializer, label } of COMBINATIONS) {
      it(`should round-trip them unchanged through a ${label} cookie without touching Object.prototype`, async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const opened = backend.open(backend.seal(tricky));
        expect(opened).to.deep.equal(tricky);
        expect(Object.getPrototypeOf(opened)).to.equal(Object.prototype);
        expect(Object.keys((opened as Record<string, Record<string, unknown>>).__proto__ ?? {})).to.deep.equal(['polluted', '__proto__']);
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
        expect(({} as Record<string, unknown>).deep).to.equal(undefined);

        const server = await listen(
          appWith(backend, (ctx) => {
            if (ctx.query.step === 'write') for (const key of Object.keys(tricky)) ctx.session.set(key, tricky[key]);
            ctx.body = ctx.session.toJSON();
          }),
        );
        const written = await request(server).get('/?step=write').expect(200);
        const read = await request(server)
          .get('/')
          .set('Cookie', `session=${cookieValue(written)}`)
          .expect(200);
        expect(read.body).to.deep.equal(tricky);
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      });
    }
  });
});
