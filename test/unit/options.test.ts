import { expect } from 'chai';
import Koa from 'koa';
import {
  CookieSessionBackend,
  JsonSerializer,
  KeyRing,
  MsgpackSerializer,
  session,
  type CookieSessionOptions,
  type SessionBackend,
} from '../../src/index.js';
import { KEY_A, KEY_B, expectSessionError } from '../support/helpers.js';

const ring = new KeyRing([KEY_A]);

describe('option validation', () => {
  describe('when CookieSessionBackend gets valid options', () => {
    const valid: CookieSessionOptions[] = [
      {},
      { name: 'sid', path: '/app', domain: '.example.com', secure: true, httpOnly: false, sameSite: 'strict' },
      { sameSite: 'none', secure: 'auto' },
      { sameSite: false, maxAge: 'session' },
      { maxAge: 1000, autoRenew: true },
      { name: '__Host-session', secure: true, path: '/' },
      { name: '__Secure-session', secure: true, domain: 'example.com' },
      { name: 'a'.repeat(96) },
      { serializer: { id: 128, name: 'mine', serialize: () => new Uint8Array(), deserialize: () => ({}) } },
      { serializer: new MsgpackSerializer(), previousSerializers: [new JsonSerializer()] },
    ];
    for (const options of valid) {
      it(`should accept ${JSON.stringify(options)}`, () => {
        expect(CookieSessionBackend.signed(ring, options).mode).to.equal('signed');
        expect(CookieSessionBackend.private(ring, options).mode).to.equal('private');
      });
    }

    it('should not change the options object the caller passed', () => {
      const options = Object.freeze({ name: 'sid' });
      const backend = CookieSessionBackend.signed(ring, options);
      expect(options).to.deep.equal({ name: 'sid' });
      expect(Object.isFrozen(backend.cookie)).to.equal(true);
    });
  });

  describe('when CookieSessionBackend gets invalid options', () => {
    const invalid: [string, unknown, RegExp][] = [
      ['a name with a space', { name: 'my session' }, /option "name"/],
      ['a name with "="', { name: 'a=b' }, /option "name"/],
      ['an empty name', { name: '' }, /option "name"/],
      ['a name of 97 characters', { name: 'a'.repeat(97) }, /option "name"/],
      ['a path with ";"', { path: '/a;b' }, /option "path"/],
      ['a path with a control character', { path: '/a\nb' }, /option "path"/],
      ['a domain with a space', { domain: 'exa mple.com' }, /option "domain"/],
      ['a domain with a port', { domain: 'example.com:80' }, /option "domain"/],
      ['secure as a string', { secure: 'yes' }, /option "secure"/],
      ['httpOnly as a string', { httpOnly: 'true' }, /option "httpOnly"/],
      ['sameSite in capitals', { sameSite: 'Lax' }, /option "sameSite"/],
      ["sameSite 'none' without secure", { sameSite: 'none', secure: false }, /option "secure"/],
      ['a maxAge under one second', { maxAge: 999 }, /option "maxAge"/],
      ['a fractional maxAge', { maxAge: 1500.5 }, /option "maxAge"/],
      ['a maxAge over 400 days', { maxAge: 401 * 86_400_000 }, /option "maxAge"/],
      ['a maxAge in seconds as a string', { maxAge: '3600' }, /option "maxAge"/],
      ['a path without a leading slash', { path: 'admin' }, /option "path".*starting with "\/"/],
      ['a lowercase __host- cookie that is not secure', { name: '__host-s' }, /option "secure"/],
      ['an uppercase __SECURE- cookie that is not secure', { name: '__SECURE-s' }, /option "secure"/],
      ['a mixed-case __hOsT- cookie with a path', { name: '__hOsT-s', secure: true, path: '/app' }, /option "path"/],
      [
        'a custom serializer with a reserved id',
        { serializer: { id: 5, name: 'x', serialize: () => new Uint8Array(), deserialize: () => ({}) } },
        /reserved.*got 5/,
      ],
      [
        'a custom serializer claiming the JSON id',
        { serializer: { id: 1, name: 'x', serialize: () => new Uint8Array(), deserialize: () => ({}) } },
        /reserved.*got 1/,
      ],
      ['a JsonSerializer claiming the MessagePack id', { serializer: Object.assign(new JsonSerializer(), { id: 2 }) }, /reserved.*got 2/],
      ['a __Host- cookie that is not secure', { name: '__Host-s' }, /option "secure"/],
      ['a __Host- cookie with a domain', { name: '__Host-s', secure: true, domain: 'example.com' }, /option "path"/],
      ['a __Secure- cookie that is not secure', { name: '__Secure-s', secure: 'auto' }, /option "secure"/],
      ['a serializer without methods', { serializer: { id: 3 } }, /option "serializer"/],
      ['a serializer id of 0', { serializer: Object.assign(new JsonSerializer(), { id: 0 }) }, /option "serializer"/],
      ['previousSerializers that is not an array', { previousSerializers: new JsonSerializer() }, /option "previousSerializers"/],
      ['a clock that is not a function', { now: 5 }, /option "now"/],
      ['autoRenew as a string', { autoRenew: 'yes' }, /option "autoRenew"/],
      ['a misspelt option', { samesite: 'lax' }, /unknown option "samesite". Did you mean "sameSite"\?/],
      ['an unknown option', { signed: true }, /unknown option "signed"/],
    ];
    for (const [label, options, message] of invalid) {
      it(`should refuse ${label} at construction`, () => {
        const err = expectSessionError(() => CookieSessionBackend.signed(ring, options as CookieSessionOptions), 'ERR_SESSION_INVALID_OPTION');
        expect(err.message).to.match(message);
      });
    }

    it('should refuse a key ring that is not a KeyRing, at construction and in setKeyRing', () => {
      expectSessionError(() => CookieSessionBackend.private([KEY_A] as unknown as KeyRing), 'ERR_SESSION_INVALID_KEY');
      const backend = CookieSessionBackend.private(ring);
      expectSessionError(() => backend.setKeyRing([KEY_A] as unknown as KeyRing), 'ERR_SESSION_INVALID_KEY');
    });
  });

  describe('when session() gets bad arguments', () => {
    it('should refuse a missing or wrong backend', () => {
      expectSessionError(() => session(undefined as unknown as SessionBackend), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => session({} as SessionBackend), 'ERR_SESSION_INVALID_OPTION');
    });

    it("should say so when given the app, in koa-session's session(config, app) order or alone", () => {
      const app = new Koa();
      const backend = CookieSessionBackend.signed(ring);
      for (const call of [() => session(backend, app as never), () => session(app as never), () => session({} as SessionBackend, app as never)]) {
        expect(expectSessionError(call, 'ERR_SESSION_INVALID_OPTION').message).to.match(/not the Koa app.*app\.use\(session\(/);
      }
    });

    it('should refuse unknown or mistyped options', () => {
      const backend = CookieSessionBackend.signed(ring);
      expect(expectSessionError(() => session(backend, { rolling: true } as never), 'ERR_SESSION_INVALID_OPTION').message).to.match(
        /unknown option "rolling"/,
      );
      expect(expectSessionError(() => session(backend, { commitOnError: 'yes' } as never), 'ERR_SESSION_INVALID_OPTION').message).to.match(
        /commitOnError/,
      );
    });
  });

  describe('when KeyRing gets bad arguments', () => {
    it('should refuse a misspelt option, so that a staging step cannot silently disappear', () => {
      const err = expectSessionError(() => new KeyRing([KEY_A], { stagged: [KEY_B] } as never), 'ERR_SESSION_INVALID_OPTION');
      expect(err.message).to.match(/KeyRing: unknown option "stagged"/);
    });

    it('should say that it takes an array when given one key', () => {
      const err = expectSessionError(() => new KeyRing(KEY_A as never), 'ERR_SESSION_INVALID_KEY');
      expect(err.message).to.match(/takes an array of keys.*new KeyRing\(\[key\]\)/);
    });

    it('should point at an unset environment variable for a missing or empty key', () => {
      for (const key of [undefined, Buffer.from('', 'base64url')]) {
        const err = expectSessionError(() => new KeyRing([key as never]), 'ERR_SESSION_INVALID_KEY');
        expect(err.message).to.match(/key 0 is (missing|empty).*environment variable/);
      }
    });
  });
});
