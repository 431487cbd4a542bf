import { expect } from 'chai';
import { createHmac, hkdfSync } from 'node:crypto';
import { JsonSerializer, KeyRing, MsgpackSerializer, type Serializer } from '../../src/index.js';
import { COMBINATIONS, KEY_A, backendFor } from '../support/helpers.js';

const NOW = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const DATA = { user: 'ada', n: 42, tags: ['x', 'y'] };

// Sealed once with KEY_A at NOW and checked in: any accidental change of the format breaks these.
const FIXTURES = {
  'signed json': 'IcM9IeABAZt8AQQAAZt22qgAAAAAAAB7InVzZXIiOiJhZGEiLCJuIjo0MiwidGFncyI6WyJ4IiwieSJdfdCRqdTnEZSlPtzs5RHbezUMBVHnMq3LkyTPCvmOut20',
  'signed msgpack': 'IcM9IeACAZt8AQQAAZt22qgAAAAAAACDpHVzZXKjYWRhoW4qpHRhZ3OSoXiheYPOZeHJxvR2tHU94eid-0Y34ZClCrnn9lH4b0LgNi78',
  'private json': 'IsM9IeABAZt8AQQAAZt22qgAAAAAAABaYc-iVa6Zd-VLDv0AYkS9gldT2Swgp4WDpwk-WouODQa11h-iWdrULxRNAsX5YL_V5reo8_jopsds4LvfZyhhSgo',
  'private msgpack': 'IsM9IeACAZt8AQQAAZt22qgAAAAAAADSR4sZosoD2yPq96s-1-gm2cAfTT-NwG9GdAgtfnKfeSCmmI81HpLb7FroglFePcxEiS4',
} as const;

// Version 1, as 0.x wrote it before the creation time and own lifetime were added: these must keep opening.
const FIXTURES_V1 = {
  'signed json': 'AcM9IeABAZt8AQQAeyJ1c2VyIjoiYWRhIiwibiI6NDIsInRhZ3MiOlsieCIsInkiXX2sO9cRWZS3j22mdYDLvAF8tZCp4UJjKDEtMvv9yRYrxw',
  'signed msgpack': 'AcM9IeACAZt8AQQAg6R1c2Vyo2FkYaFuKqR0YWdzkqF4oXlw7wOLXm2Cn8SjuT935tOornQPmA9b6QifVzGV9OpiYQ',
  'private json': 'AsM9IeABAZt8AQQAqWTzg1y-AjYAd3wgZ9thTmTwxRdrBBbGGLRqBoFuWucCTFaSjVaRajRDTWquKrvTblP10TDNparVgnR8N_CxSpr7',
  'private msgpack': 'AsM9IeACAZt8AQQArv1zpy4utSJgUsjfsF44pcZn1-J4soljgYibPN5azA9fnSn9DRBdqyfL6afrCkcJmnyY',
} as const;

function serializerNamed(name: string): Serializer {
  return name === 'json' ? new JsonSerializer() : new MsgpackSerializer();
}

describe('the sealed cookie format', () => {
  describe('when opening checked-in tokens (known answers)', () => {
    for (const [version, fixtures] of [
      ['2', FIXTURES],
      ['1', FIXTURES_V1],
    ] as const) {
      for (const [label, token] of Object.entries(fixtures)) {
        const [mode, name] = label.split(' ') as ['signed' | 'private', string];
        it(`should open the version ${version} ${label} fixture to its data`, () => {
          const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializerNamed(name), now: () => NOW + 1000 });
          expect(backend.open(token)).to.deep.equal(DATA);
        });
      }
    }

    it('should seal the signed fixtures byte for byte (signed sealing is deterministic)', () => {
      for (const name of ['json', 'msgpack']) {
        const backend = backendFor('signed', new KeyRing([KEY_A]), { serializer: serializerNamed(name), now: () => NOW });
        expect(backend.seal(DATA)).to.equal(FIXTURES[`signed ${name}` as keyof typeof FIXTURES]);
      }
    });

    it('should compute the signed tag as HMAC-SHA256 over the envelope with a key derived for the cookie name', () => {
      const envelope = Buffer.from(FIXTURES['signed json'], 'base64url');
      const macKey = Buffer.from(hkdfSync('sha256', KEY_A, Buffer.alloc(0), 'koa-sealed-session/1 hmac-sha256\0session', 32));
      const tag = createHmac('sha256', macKey).update(envelope.subarray(0, -32)).digest();
      expect(tag.equals(envelope.subarray(-32))).to.equal(true);
      expect(tag.equals(createHmac('sha256', KEY_A).update(envelope.subarray(0, -32)).digest())).to.equal(false);
    });
  });

  for (const { mode, serializer, label } of COMBINATIONS) {
    describe(`when sealing ${label}`, () => {
      const make = () => backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer(), now: () => NOW });

      it('should write one base64url token without padding', () => {
        expect(make().seal(DATA)).to.match(/^[A-Za-z0-9_-]+$/);
      });

      it('should lay out format, key id, serializer id, expiry, creation time and own lifetime in a 23-byte header', () => {
        const backend = make();
        const envelope = Buffer.from(backend.seal(DATA), 'base64url');
        expect(envelope[0]).to.equal(mode === 'signed' ? 0x21 : 0x22);
        const keyId = Buffer.from(hkdfSync('sha256', KEY_A, Buffer.alloc(0), 'koa-sealed-session/1 key-id', 4)).readUInt32BE(0);
        expect(envelope.readUInt32BE(1)).to.equal(keyId);
        expect(envelope[5]).to.equal(serializer().id);
        expect(envelope.readUIntBE(6, 6)).to.equal(NOW + DAY);
        expect(envelope.readUIntBE(12, 6)).to.equal(NOW);
        expect(envelope.readUIntBE(18, 5)).to.equal(0); // the backend's maxAge
        const payload = serializer().serialize(DATA);
        const overhead = mode === 'signed' ? 23 + 32 : 23 + 12 + 16;
        expect(envelope.length).to.equal(payload.byteLength + overhead);
      });

      it(mode === 'signed' ? 'should carry the serialized bytes unchanged' : 'should not carry the serialized bytes', () => {
        const envelope = Buffer.from(make().seal(DATA), 'base64url');
        const payload = Buffer.from(serializer().serialize(DATA));
        expect(envelope.includes(payload)).to.equal(mode === 'signed');
        expect(envelope.includes(Buffer.from('ada'))).to.equal(mode === 'signed');
      });

      if (mode === 'private') {
        it('should use a fresh nonce for every seal', () => {
          const backend = make();
          const nonces = new Set(Array.from({ length: 2000 }, () => Buffer.from(backend.seal(DATA), 'base64url').subarray(23, 35).toString('hex')));
          expect(nonces.size).to.equal(2000);
        });
      }
    });
  }
});
