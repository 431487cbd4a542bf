import { expect } from 'chai';
import fc from 'fast-check';
import { scanMsgpack } from '../../src/codec/msgpack/msgpack-scan.js';
import { KeyRing, MsgpackSerializer, type SessionRecord } from '../../src/index.js';
import { KEY_A, MODES, backendFor, sealBytes } from '../support/helpers.js';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
// A map {"v": <value>} around the given value bytes.
const withValue = (value: string) => hex(`81 a1 76 ${value}`);

describe('MessagePack payload checks', () => {
  describe('when given random or mutated bytes', () => {
    const serializer = new MsgpackSerializer();

    it('should answer random bytes without throwing', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
          scanMsgpack(Buffer.from(bytes), true);
        }),
        { numRuns: 20_000 },
      );
    });

    it('should accept only payloads that msgpackr then decodes, for valid payloads with one byte changed', () => {
      let accepted = 0;
      const mutated = fc.tuple(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 5 }), fc.nat(), fc.nat(255)).map(([record, at, value]) => {
        const bytes = Buffer.from(serializer.serialize(JSON.parse(JSON.stringify(record)) as SessionRecord));
        bytes[at % bytes.length] = value;
        return bytes;
      });
      fc.assert(
        fc.property(mutated, (bytes) => {
          if (scanMsgpack(bytes, true) === undefined) return;
          accepted++;
          expect(serializer.deserialize(bytes)).to.be.an('object');
        }),
        { numRuns: 10_000 },
      );
      expect(accepted).to.be.greaterThan(1000);
    });
  });

  describe('when the payload holds standard plain data', () => {
    const accepted: [string, Buffer][] = [
      ['an empty map', hex('80')],
      ['nil, booleans, fixints', withValue('94 c0 c2 c3 ff')],
      ['integers of every width', withValue('98 cc 01 cd 01 02 ce 01 02 03 04 cf 0102030405060708 d0 ff d1 ff ff d2 ffffffff d3 ffffffffffffffff')],
      ['floats', withValue('92 ca 3f800000 cb 3ff0000000000000')],
      ['strings and binary', withValue('95 a0 d9 01 61 da 0001 61 c4 01 00 c5 0001 00')],
      ['a timestamp 32', withValue('d6 ff 00000001')],
      ['a timestamp 64', withValue('d7 ff 0000000000000001')],
      ['a timestamp 96', withValue('c7 0c ff 000000000000000000000001')],
      ['map16 and array16', hex('de 0001 a1 76 dc 0001 01')],
    ];
    for (const [label, bytes] of accepted) {
      it(`should accept ${label}`, () => {
        expect(scanMsgpack(bytes, true)).not.to.equal(undefined);
      });
    }
  });

  describe('when the payload holds anything else', () => {
    const refused: [string, Buffer][] = [
      ['nothing', hex('')],
      ['a top-level array', hex('91 01')],
      ['a top-level string', hex('a1 61')],
      ['an integer key', hex('81 01 02')],
      ['an integer key in a nested map', withValue('81 01 02')],
      ['a truncated map', hex('82 a1 61 01')],
      ['a truncated string', withValue('a5 61')],
      ['trailing bytes', hex('81 a1 61 01 00')],
      ["msgpackr's undefined extension (0)", withValue('d4 00 00')],
      ["msgpackr's Set extension (0x73)", withValue('d4 73 90')],
      ["msgpackr's Error extension (0x65)", withValue('d4 65 90')],
      ["msgpackr's RegExp extension (0x78)", withValue('d4 78 90')],
      ["msgpackr's typed-array extension (0x74)", withValue('c7 03 74 01 02 03')],
      ["msgpackr's record extension (0x72)", withValue('d4 72 00')],
      ['an unknown extension', withValue('d5 05 00 00')],
      ['a timestamp extension of the wrong size', withValue('d5 ff 00 00')],
      ['the unused byte 0xc1', withValue('c1')],
      ['an array claiming 2^32-1 items', withValue('dd ffffffff 01')],
      ['nesting 65 levels deep', withValue(`${'91'.repeat(65)}01`)],
    ];
    for (const [label, bytes] of refused) {
      it(`should refuse ${label}`, () => {
        expect(scanMsgpack(bytes, true)).to.equal(undefined);
      });
    }

    it('should accept nesting 64 levels deep', () => {
      expect(scanMsgpack(withValue(`${'91'.repeat(64)}01`), true)).not.to.equal(undefined);
    });

    for (const mode of MODES) {
      it(`should not open a correctly sealed ${mode} cookie whose payload uses a refused type`, () => {
        const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: new MsgpackSerializer() });
        for (const payload of [withValue('d4 73 90'), withValue('d5 05 00 00'), withValue(`${'91'.repeat(2900)}01`)]) {
          const sealed = sealBytes(mode, new KeyRing([KEY_A]), 2, payload);
          expect(backend.open(sealed)).to.equal(undefined);
        }
        const fine = sealBytes(mode, new KeyRing([KEY_A]), 2, withValue('01'));
        expect(backend.open(fine)).to.deep.equal({ v: 1 } satisfies SessionRecord);
      });
    }
  });
});
