import { expect } from 'chai';
import fc from 'fast-check';
import { isCanonicalBase64url } from '../../src/http/cookie.js';

const reference = (text: string) => Buffer.from(text, 'base64url').toString('base64url') === text;
const check = (text: string) => isCanonicalBase64url(text, Buffer.from(text, 'base64url').length);
const CHARS = [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
  '+',
  '/',
  '=',
  ' ',
  '\n',
  '.',
  '%',
  '\u00e9',
  '\u0141',
  '\uff21',
  '\0',
];

describe('canonical base64url', () => {
  it('should agree with re-encoding and comparing, for random texts', () => {
    const texts = fc.array(fc.constantFrom(...CHARS), { maxLength: 40 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(texts, (text) => {
        expect(check(text), JSON.stringify(text)).to.equal(reference(text));
      }),
      { numRuns: 50_000 },
    );
  });

  it('should agree for every single-character change of canonical texts of every length mod 4', () => {
    for (const bytes of [3, 4, 5, 33]) {
      const text = Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64url');
      for (let at = 0; at < text.length; at++) {
        for (const char of CHARS) {
          const changed = text.slice(0, at) + char + text.slice(at + 1);
          expect(check(changed), JSON.stringify(changed)).to.equal(reference(changed));
        }
      }
      for (const extra of CHARS) {
        expect(check(text + extra)).to.equal(reference(text + extra));
        expect(check(extra + text)).to.equal(reference(extra + text));
      }
    }
  });

  it('should refuse the lenient spellings node would decode to the same bytes', () => {
    const text = Buffer.from([0xfb, 0xff, 0x10, 0x20]).toString('base64url'); // '-_8QIA'
    expect(check(text)).to.equal(true);
    for (const lenient of [
      text.replace('-', '+'),
      text.replace('_', '/'),
      `${text.slice(0, 2)}\n${text.slice(2)}`,
      `${text.slice(0, -1)}B`,
      `${text}==`,
      text.replace('-', '\u012d'),
    ]) {
      expect(Buffer.from(lenient, 'base64url').equals(Buffer.from(text, 'base64url')), JSON.stringify(lenient)).to.equal(true);
      expect(check(lenient), JSON.stringify(lenient)).to.equal(false);
    }
  });
});
