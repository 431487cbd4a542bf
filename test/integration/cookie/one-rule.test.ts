import { expect } from 'chai';
import fc from 'fast-check';
import request from 'supertest';
import { RawValue, recordOf, type EntryCodec } from '../../../src/codec/entries.js';
import { scanJson } from '../../../src/codec/json/json-scan.js';
import {
  JsonSerializer,
  KeyRing,
  MAX_VALUE_DEPTH,
  MsgpackSerializer,
  Session,
  type SessionRecord,
  type Serializer,
  type StoredSession,
} from '../../../src/index.js';
import { KEY_A, MODES, appWith, backendFor, cookieValue, expectSessionError, listen, sealBytes } from '../../support/helpers.js';

const codecOf = (serializer: Serializer) => serializer.entryCodec as EntryCodec;

/** What each path makes of a payload: entry by entry (a request), whole (backend.open, previousSerializers). */
function bothPaths(serializer: Serializer, payload: Buffer): { lazy: SessionRecord | 'refused'; whole: SessionRecord | 'refused' } {
  const codec = codecOf(serializer);
  const entries = codec.split(payload);
  let whole: SessionRecord | 'refused';
  try {
    whole = serializer.deserialize(payload);
  } catch {
    whole = 'refused';
  }
  // Every entry that splits must decode: a failure here fails the test, as has() and get() would disagree.
  return { lazy: entries === undefined ? 'refused' : recordOf(entries, codec.decode), whole };
}

const DEPTH_64 = `${'['.repeat(MAX_VALUE_DEPTH)}${']'.repeat(MAX_VALUE_DEPTH)}`;

describe('one rule for every path that reads a payload', () => {
  describe('when JSON that only a key holder could write is opened', () => {
    const serializer = new JsonSerializer();
    const texts = ['{"a":1 2}', '{"a":tru}', '{"a\n":1}', '{"a":"x\ty"}', '{"a":1,}', '{"a":.5}', '{"a":+1}', '{"a":"\\q"}', '{"a":[1,]}'];

    for (const text of texts) {
      it(`should refuse ${JSON.stringify(text)} on every path: a request, backend.open() and previousSerializers`, async () => {
        expect(bothPaths(serializer, Buffer.from(text))).to.deep.equal({ lazy: 'refused', whole: 'refused' });
        for (const mode of MODES) {
          const token = sealBytes(mode, new KeyRing([KEY_A]), 1, Buffer.from(text));
          const backend = backendFor(mode, new KeyRing([KEY_A]));
          expect(backend.open(token)).to.equal(undefined);
          const migrating = backendFor(mode, new KeyRing([KEY_A]), { serializer: new MsgpackSerializer(), previousSerializers: [serializer] });
          expect(migrating.open(token)).to.equal(undefined);
          const app = appWith(
            backend,
            (ctx) => void (ctx.body = { isNew: ctx.session.isNew, has: ctx.session.has('a'), get: ctx.session.get('a') ?? null }),
          );
          await request(await listen(app))
            .get('/')
            .set('Cookie', `session=${token}`)
            .expect(200, { isNew: true, has: false, get: null });
        }
      });
    }

    it('should accept exactly what JSON.parse accepts as an object nested at most 64 deep, and read it alike both ways', () => {
      const alphabet = fc.constantFrom(
        '{',
        '}',
        '[',
        ']',
        '"',
        ':',
        ',',
        ' ',
        '\n',
        '\\',
        'a',
        'u',
        '0',
        '1',
        '-',
        '.',
        'e',
        'E',
        '+',
        'true',
        'null',
        'fals',
        '\u00e9',
        '\x01',
      );
      const almostJson = fc.oneof(
        fc.array(alphabet, { maxLength: 40 }).map((parts) => parts.join('')),
        fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })).map((record) => JSON.stringify(record, null, 1)),
        fc.tuple(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), fc.nat(), alphabet).map(([record, at, insert]) => {
          const text = JSON.stringify(record);
          const cut = at % (text.length + 1);
          return text.slice(0, cut) + insert + text.slice(cut);
        }),
      );
      fc.assert(
        fc.property(almostJson, (text) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
          const bytes = Buffer.from(text);
          expect(scanJson(bytes) >= 0, text).to.equal(isObject);
          const { lazy, whole } = bothPaths(serializer, bytes);
          expect(lazy, text).to.deep.equal(whole);
        }),
        { numRuns: 20_000, examples: [['{"a":1 2}'], ['{"__proto__":{"b":1},"a":"\\ud800"}'], ['{"a":1,"a":2}']] },
      );
    });

    it('should refuse a payload cut off anywhere, in whatever token it ends', () => {
      // The scan reads one byte past where a token may end: each cut ends the text at another kind of token.
      const text = '{"s":"a\\u00e9\\n" , "n":-12.5e+3,"i":0,"t":true,"f":false,"z":null,"a":[1,{"k":[ ]}],"o":{}}';
      expect(JSON.parse(text)).to.be.an('object');
      expect(scanJson(Buffer.from(text))).to.equal(4 * 8);
      for (let end = 0; end < text.length; end++) {
        const cut = Buffer.from(text.slice(0, end));
        expect(scanJson(cut), text.slice(0, end)).to.equal(-1);
        // The same cut inside a longer buffer: the scan stops at its end, not at the bytes after it.
        expect(scanJson(Buffer.from(text).subarray(0, end)), text.slice(0, end)).to.equal(-1);
      }
    });

    it('should agree on depth: 64 levels open both ways, 65 neither', () => {
      expect(bothPaths(serializer, Buffer.from(`{"v":${DEPTH_64}}`)).lazy).to.have.property('v');
      expect(bothPaths(serializer, Buffer.from(`{"v":[${DEPTH_64}]}`))).to.deep.equal({ lazy: 'refused', whole: 'refused' });
    });
  });

  describe('when MessagePack that only a key holder could write is opened', () => {
    const serializer = new MsgpackSerializer();
    const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
    const deep = `${'91'.repeat(MAX_VALUE_DEPTH - 1)}90`;

    it('should read a "__proto__" key beside a value nested 64 deep alike on every path', async () => {
      // {"__proto__": 1, "v": [[...[]...]]} with 64 levels of arrays
      const payload = hex(`82 a9 5f5f70726f746f5f5f 01 a1 76 ${deep}`);
      const { lazy, whole } = bothPaths(serializer, payload);
      expect(whole).not.to.equal('refused');
      expect(lazy).to.deep.equal(whole);
      for (const mode of MODES) {
        const token = sealBytes(mode, new KeyRing([KEY_A]), 2, payload);
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer });
        expect(backend.open(token)).to.deep.equal(whole);
        const migrating = backendFor(mode, new KeyRing([KEY_A]), { previousSerializers: [serializer] });
        expect(migrating.open(token)).to.deep.equal(whole);
        const app = appWith(backend, (ctx) => void (ctx.body = { has: ctx.session.has('v'), isArray: Array.isArray(ctx.session.get('v')) }));
        await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${token}`)
          .expect(200, { has: true, isArray: true });
      }
    });

    it('should refuse top-level keys that are not UTF-8 and timestamps that are no valid Date, on every path', () => {
      const payloads = [
        hex('81 a2 c3 28 01'), // a key of bytes that are not UTF-8
        hex('81 a3 ed a0 80 01'), // a key holding a UTF-8-encoded surrogate
        hex('81 a1 76 d7 ff fffffffc 00000000'), // timestamp 64 with nanoseconds past 999,999,999
        hex('81 a1 76 c7 0c ff 00000000 7fffffff ffffffff'), // timestamp 96 far beyond a Date's range
        hex('81 a1 76 c7 0c ff 3b9aca00 00000000 00000000'), // timestamp 96 with 1e9 nanoseconds
      ];
      for (const payload of payloads)
        expect(bothPaths(serializer, payload), payload.toString('hex')).to.deep.equal({ lazy: 'refused', whole: 'refused' });
    });

    it('should read every payload alike both ways, for valid payloads with bytes changed', () => {
      const mutated = fc
        .tuple(
          fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 6 }),
          fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }),
        )
        .map(([record, changes]) => {
          const withProto = JSON.parse('{"__proto__":{"__proto__":1}}') as SessionRecord;
          const bytes = Buffer.from(serializer.serialize({ ...record, ...withProto, when: new Date(1_700_000_000_123) }));
          for (const [at, value] of changes) bytes[at % bytes.length] = value;
          return bytes;
        });
      fc.assert(
        fc.property(mutated, (bytes) => {
          const { lazy, whole } = bothPaths(serializer, bytes);
          expect(lazy, bytes.toString('hex')).to.deep.equal(whole);
        }),
        { numRuns: 20_000 },
      );
    });
  });

  describe('when a stored value cannot be read', () => {
    /** A session whose one stored value the codec fails on: what a serializer bug would leave. */
    function sessionWithUnreadable(): Session {
      const codec = {
        ...codecOf(new JsonSerializer()),
        decode: () => {
          throw new SyntaxError('bad "secret" bytes');
        },
      };
      const entries = new Map<string, unknown>([['broken', new RawValue(Buffer.from('{"broken":1}'), 1, 10, 11, false)]]);
      const stored = { data: {}, stale: false, entries: { codec, entries } } as StoredSession;
      return new Session(stored);
    }

    it('should report it on get() with a clear error, never read it as absent while has() says it is there', () => {
      const session = sessionWithUnreadable();
      expect(session.has('broken')).to.equal(true);
      const err = expectSessionError(() => session.get('broken'), 'ERR_SESSION_UNSUPPORTED_VALUE');
      expect(err.message).to.match(/"broken" could not be decoded.*Overwrite or remove it/);
      expect(err.message).not.to.contain('secret');
    });

    it('should never block overwriting or removing its key', () => {
      const overwritten = sessionWithUnreadable();
      overwritten.set('broken', 2);
      expect(overwritten.get('broken')).to.equal(2);
      const removed = sessionWithUnreadable();
      expect(removed.remove('broken')).to.equal(true);
      expect(removed.has('broken')).to.equal(false);
    });
  });

  describe('when JSON writes a byte array deep in a value', () => {
    /** A byte array inside `levels` nested arrays. */
    const nestedBytes = (levels: number): unknown => {
      let value: unknown = Buffer.from([1, 2]);
      for (let i = 0; i < levels; i++) value = [value];
      return value;
    };

    it('should count the two levels JSON adds, so that everything set() accepts opens again', async () => {
      const backend = backendFor('signed', new KeyRing([KEY_A]));
      const app = appWith(backend, (ctx) => {
        ctx.session.set('counter', 1);
        ctx.session.set('bytes', nestedBytes(Number(ctx.query.levels)));
        ctx.body = 'ok';
      });
      const server = await listen(app);
      const token = cookieValue(await request(server).get('/?levels=62').expect(200));
      expect(backend.open(token)).to.have.property('counter', 1);
      await request(server).get('/?levels=63').expect(500);
      expect(app.errors.map((err) => (err as { code?: string }).code)).to.deep.equal(['ERR_SESSION_UNSUPPORTED_VALUE']);
    });

    it('should count a byte array as a leaf under MessagePack, which writes it as one', () => {
      const session = new Session();
      const msgpack = backendFor('signed', new KeyRing([KEY_A]), { serializer: new MsgpackSerializer() });
      session.set('bytes', nestedBytes(MAX_VALUE_DEPTH));
      expect(msgpack.open(msgpack.seal(session.toJSON()))).to.have.property('bytes');
    });
  });
});
