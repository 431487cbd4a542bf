import { expect } from 'chai';
import fc from 'fast-check';
import request from 'supertest';
import { RawValue, type EntryCodec } from '../../src/codec/entries.js';
import { JsonSerializer, KeyRing, MsgpackSerializer, type SessionRecord, type Serializer } from '../../src/index.js';
import { COMBINATIONS, KEY_A, appWith, backendFor, cookieValue, listen, sealBytes } from '../support/helpers.js';

const codecOf = (serializer: Serializer) => serializer.entryCodec as EntryCodec;

const SESSION = {
  counter: 1,
  user: { name: 'Ada', roles: ['admin', 'dev'], '}': '{', 'quote"key': 'back\\slash "q"' },
  list: [1, [2, { a: '[' }], null, true, -0.5, 1e21],
  text: 'héllo ✓ \u2028 \n',
  empty: {},
  none: [],
};

describe('lazy entries', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when a request changes one key (${label})`, () => {
      it('should write exactly the payload a full serialization of the new data would', async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const server = await listen(appWith(backend));
        const res = await request(server)
          .get('/')
          .set('Cookie', `session=${backend.seal(SESSION)}`)
          .expect(200, '1');
        const written = cookieValue(res);
        expect(backend.open(written)).to.deep.equal({ ...SESSION, counter: 2 });
        if (mode === 'signed') {
          const payload = Buffer.from(written, 'base64url').subarray(23, -32);
          expect(payload.equals(Buffer.from(serializer().serialize({ ...SESSION, counter: 2 })))).to.equal(true);
        }
      });

      it('should hand out copies of values it has not decoded yet', async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const app = appWith(backend, (ctx) => {
          const user = ctx.session.get<{ roles: string[] }>('user');
          user?.roles.push('root');
          ctx.body = { again: ctx.session.get('user'), status: ctx.session.status, entries: Object.fromEntries(ctx.session.entries()) };
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${backend.seal(SESSION)}`)
          .expect(200);
        expect(res.body).to.deep.equal({ again: SESSION.user, status: 'unchanged', entries: SESSION });
      });

      it('should keep keys in order when a key is removed, replaced and added', async () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
        const app = appWith(backend, (ctx) => {
          ctx.session.remove('list');
          ctx.session.set('user', 'replaced');
          ctx.session.set('added', { x: 1 });
          ctx.body = [...ctx.session.keys()];
        });
        const res = await request(await listen(app))
          .get('/')
          .set('Cookie', `session=${backend.seal(SESSION)}`)
          .expect(200);
        expect(res.body).to.deep.equal(['counter', 'user', 'text', 'empty', 'none', 'added']);
        const { list: _list, ...rest } = SESSION;
        expect(backend.open(cookieValue(res))).to.deep.equal({ ...rest, user: 'replaced', added: { x: 1 } });
      });
    });
  }

  describe('splitting and joining', () => {
    const jsonRecords = fc
      .dictionary(fc.string(), fc.jsonValue(), { maxKeys: 12 })
      .map((record) => JSON.parse(JSON.stringify(record)) as SessionRecord);

    for (const serializer of [new JsonSerializer(), new MsgpackSerializer()]) {
      const codec = codecOf(serializer);

      it(`should split any ${serializer.name} payload into entries that decode and join back to the same bytes`, () => {
        fc.assert(
          fc.property(jsonRecords, (record) => {
            const payload = serializer.serialize(record);
            const entries = codec.split(Buffer.from(payload));
            expect(entries, 'split').not.to.equal(undefined);
            const decoded: SessionRecord = {};
            for (const [key, raw] of entries ?? []) Object.defineProperty(decoded, key, { value: codec.decode(raw), enumerable: true });
            expect(decoded).to.deep.equal(serializer.deserialize(payload));
            expect(codec.join(entries ?? new Map()).equals(Buffer.from(payload))).to.equal(true);
          }),
          { numRuns: 500 },
        );
      });

      it(`should join new values and raw ones into what ${serializer.name} writes for the whole record`, () => {
        fc.assert(
          fc.property(jsonRecords, fc.string(), fc.jsonValue(), (record, key, value) => {
            const entries: Map<string, unknown> = new Map(codec.split(Buffer.from(serializer.serialize(record))));
            const plain = JSON.parse(JSON.stringify(value ?? null)) as unknown;
            entries.set(key, plain);
            const expected: SessionRecord = { ...record };
            Object.defineProperty(expected, key, { value: plain, enumerable: true, writable: true, configurable: true });
            const joined = codec.join(entries);
            expect(serializer.deserialize(joined)).to.deep.equal(serializer.deserialize(serializer.serialize(expected)));
          }),
          { numRuns: 300 },
        );
      });
    }

    for (const serializer of [new JsonSerializer(), new MsgpackSerializer()]) {
      const codec = codecOf(serializer);
      it(`should read a one-key ${serializer.name} payload after a prefix as its entry, and only under its own key`, () => {
        fc.assert(
          fc.property(fc.string(), fc.string(), fc.jsonValue(), fc.uint8Array({ maxLength: 3 }), (key, other, value, prefix) => {
            const plain = JSON.parse(JSON.stringify(value ?? null)) as unknown;
            const single: SessionRecord = {};
            Object.defineProperty(single, key, { value: plain, enumerable: true });
            const field = Buffer.concat([prefix, serializer.serialize(single)]);
            const raw = codec.entry(field, prefix.length, key);
            expect(raw, 'entry').to.be.instanceOf(RawValue);
            expect(raw?.source, 'the field itself, not a copy').to.equal(field);
            expect(codec.decode(raw as RawValue)).to.deep.equal(serializer.deserialize(field.subarray(prefix.length))[key]);
            if (other !== key) expect(codec.entry(field, prefix.length, other), 'another key').to.equal(undefined);
            const two: SessionRecord = { ...single };
            Object.defineProperty(two, key === 'x' ? 'y' : 'x', { value: 1, enumerable: true });
            expect(codec.entry(Buffer.from(serializer.serialize(two)), 0, key), 'two keys').to.equal(undefined);
            expect(codec.entry(field.subarray(0, field.length - 1), prefix.length, key), 'cut short').to.equal(undefined);
          }),
          { numRuns: 400 },
        );
      });
    }

    it('should read a one-key JSON payload with whitespace or an escaped key, and refuse a broken one', () => {
      const codec = codecOf(new JsonSerializer());
      const spaced = codec.entry(Buffer.from('\x01 { "a" : [ 1 ] } '), 1, 'a');
      expect(spaced === undefined ? undefined : codec.decode(spaced)).to.deep.equal([1]);
      const escaped = codec.entry(Buffer.from('{"\\u00e9t\\u00e9":2}'), 0, 'été');
      expect(escaped === undefined ? undefined : codec.decode(escaped)).to.equal(2);
      expect(codec.entry(Buffer.from('{"été":3}'), 0, 'été')).to.be.instanceOf(RawValue);
      expect(codec.entry(Buffer.from('{"ete":3}'), 0, 'été')).to.equal(undefined);
      for (const text of ['{"a":1', '{"a":1}x', '{"a":[1}', '{}', '{"a":1,"a":1}', '{"ab":1}', '{"":1}']) {
        expect(codec.entry(Buffer.from(text), 0, 'a'), text).to.equal(undefined);
      }
    });

    it('should split JSON with whitespace, and refuse what is not a JSON object', () => {
      const codec = codecOf(new JsonSerializer());
      for (const text of ['{"a":[1],"b":2]', '[1]', '{"a":', '{"a"}', '{"a":1,}', '{"a":1 2}', '{"a":tru}', '{"a\n":1}', '{"a":01}', '{"a":"\\x"}']) {
        expect(codec.split(Buffer.from(text)), text).to.equal(undefined);
      }
      expect([...(codec.split(Buffer.from('{}')) ?? [])]).to.deep.equal([]);
      const spaced = codec.split(Buffer.from(' {\n "a" : [ 1 , 2 ] ,\t"b":{ } } ')) ?? new Map<string, RawValue>();
      expect([...spaced].map(([key, raw]) => [key, codec.decode(raw)])).to.deep.equal([
        ['a', [1, 2]],
        ['b', {}],
      ]);
    });

    it('should open a sealed JSON payload that is not compact', async () => {
      const token = sealBytes('signed', new KeyRing([KEY_A]), 1, Buffer.from(JSON.stringify({ counter: 4, a: { b: [1] } }, null, 2)));
      const backend = backendFor('signed', new KeyRing([KEY_A]));
      const res = await request(await listen(appWith(backend)))
        .get('/')
        .set('Cookie', `session=${token}`)
        .expect(200, '4');
      expect(backend.open(cookieValue(res))).to.deep.equal({ counter: 5, a: { b: [1] } });
    });

    it('should mark MessagePack values holding a "__proto__" key for careful decoding', () => {
      const codec = codecOf(new MsgpackSerializer());
      const record = JSON.parse('{"plain":{"a":1},"tricky":{"x":{"__proto__":{"y":2}}},"__proto__":3}') as SessionRecord;
      const entries = codec.split(Buffer.from(new MsgpackSerializer().serialize(record))) ?? new Map<string, RawValue>();
      expect([...entries].map(([key, raw]) => [key, raw.careful])).to.deep.equal([
        ['plain', false],
        ['tricky', true],
        ['__proto__', false],
      ]);
      const tricky = codec.decode(entries.get('tricky') as RawValue) as { x: Record<string, unknown> };
      expect(Object.keys(tricky.x)).to.deep.equal(['__proto__']);
      expect(Object.getPrototypeOf(tricky.x)).to.equal(Object.prototype);
    });
  });
});
