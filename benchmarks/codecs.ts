// Everything the micro benchmark compares, behind one shape: seal data into a cookie value and open it again.
import Iron from '@hapi/iron';
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { sealData, unsealData } from 'iron-session';
import Keygrip from 'keygrip';
import { Packr, Unpackr } from 'msgpackr';
import { CookieSessionBackend, JsonSerializer, KeyRing, MsgpackSerializer, type SealMode, type SessionRecord } from '../src/index.js';

const require = createRequire(import.meta.url);
const { crc32 } = require('crc') as { crc32: (text: string) => number };
const sodium = require('sodium-native') as {
  crypto_secretbox_MACBYTES: number;
  crypto_secretbox_NONCEBYTES: number;
  crypto_secretbox_KEYBYTES: number;
  randombytes_buf(buffer: Buffer): void;
  crypto_secretbox_easy(cipher: Buffer, message: Buffer, nonce: Buffer, key: Buffer): void;
  crypto_secretbox_open_easy(message: Buffer, cipher: Buffer, nonce: Buffer, key: Buffer): boolean;
};

export interface Codec {
  readonly label: string;
  readonly async: boolean;
  seal(data: SessionRecord): string | Promise<string>;
  open(value: string): SessionRecord | undefined | Promise<SessionRecord | undefined>;
}

export type Format = 'json' | 'msgpack';

// Rows that time a package's scheme written again here (its crypto and encoding, through the same libraries),
// not the package itself: named so, wherever they are shown.
export const KOA_SESSION_SCHEME = 'koa-session (scheme, re-implemented)';
export const SECURE_SESSION_SCHEME = '@fastify/secure-session (scheme, re-implemented)';

const secret = randomBytes(32);
const password = randomBytes(32).toString('base64url');

/** This library, through the backend's public seal and open. */
export function ours(mode: SealMode, format: Format, ring = new KeyRing([secret])): Codec & { backend: CookieSessionBackend } {
  const backend = CookieSessionBackend[mode](ring, { serializer: format === 'json' ? new JsonSerializer() : new MsgpackSerializer() });
  return { label: `${mode} ${format}`, async: false, backend, seal: (data) => backend.seal(data), open: (value) => backend.open(value) };
}

/** The floor: the same serializer, node:crypto and base64url work, with no session features at all. */
export function floor(mode: SealMode, format: Format): Codec {
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const unpackr = new Unpackr({ useRecords: false });
  const encode = format === 'json' ? (data: SessionRecord) => Buffer.from(JSON.stringify(data)) : (data: SessionRecord) => packr.pack(data);
  const decode =
    format === 'json' ? (bytes: Buffer) => JSON.parse(bytes.toString()) as SessionRecord : (bytes: Buffer) => unpackr.unpack(bytes) as SessionRecord;
  if (mode === 'signed') {
    return {
      label: `floor ${mode} ${format}`,
      async: false,
      seal(data) {
        const payload = encode(data);
        return Buffer.concat([payload, createHmac('sha256', secret).update(payload).digest()]).toString('base64url');
      },
      open(value) {
        const bytes = Buffer.from(value, 'base64url');
        const payload = bytes.subarray(0, -32);
        const tag = createHmac('sha256', secret).update(payload).digest();
        return timingSafeEqual(tag, bytes.subarray(-32)) ? decode(payload) : undefined;
      },
    };
  }
  return {
    label: `floor ${mode} ${format}`,
    async: false,
    seal(data) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', secret, nonce);
      const body = Buffer.concat([cipher.update(encode(data)), cipher.final()]);
      return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url');
    },
    open(value) {
      const bytes = Buffer.from(value, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', secret, bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(-16));
      return decode(Buffer.concat([decipher.update(bytes.subarray(12, -16)), decipher.final()]));
    },
  };
}

/**
 * koa-session's signed-cookie pipeline as Koa runs it: keygrip (HMAC-SHA1, Koa's default) over `name=value`
 * through a second `.sig` cookie, base64 JSON, a CRC32 hash of the JSON to detect changes, `_expire` and
 * `_maxAge` added to the data. The signature travels after a tab here, standing for the second cookie.
 */
export function koaSession(): Codec {
  const keys = new Keygrip([secret.toString('base64url')]);
  const maxAge = 86_400_000;
  return {
    label: KOA_SESSION_SCHEME,
    async: false,
    seal(data) {
      const record = { ...data, _expire: Date.now() + maxAge, _maxAge: maxAge };
      crc32(JSON.stringify(record)); // the change check before every commit
      const value = Buffer.from(JSON.stringify(record)).toString('base64');
      return `${value}\t${keys.sign(`koa.sess=${value}`)}`;
    },
    open(cookie) {
      const [value = '', signature = ''] = cookie.split('\t');
      if (keys.index(`koa.sess=${value}`, signature) === -1) return undefined;
      const data = JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as SessionRecord;
      crc32(JSON.stringify(data)); // prevHash, taken when the session is loaded
      return data;
    },
  };
}

/** @hapi/iron with its defaults (AES-256-CBC + HMAC-SHA256, keys stretched per seal). */
export function hapiIron(): Codec {
  return {
    label: '@hapi/iron',
    async: true,
    seal: (data) => Iron.seal(data, password, Iron.defaults),
    open: async (value) => (await Iron.unseal(value, password, Iron.defaults)) as SessionRecord,
  };
}

/** iron-session's sealData and unsealData (iron-webcrypto underneath). */
export function ironSession(): Codec {
  return {
    label: 'iron-session',
    async: true,
    seal: (data) => sealData(data, { password, ttl: 86_400 }),
    open: async (value) => await unsealData<SessionRecord>(value, { password, ttl: 86_400 }),
  };
}

/** @fastify/secure-session's scheme: libsodium secretbox (XSalsa20-Poly1305) over JSON, through sodium-native. */
export function secureSession(): Codec {
  const key = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES);
  sodium.randombytes_buf(key);
  return {
    label: SECURE_SESSION_SCHEME,
    async: false,
    seal(data) {
      const message = Buffer.from(JSON.stringify(data));
      const nonce = Buffer.allocUnsafe(sodium.crypto_secretbox_NONCEBYTES);
      sodium.randombytes_buf(nonce);
      const cipher = Buffer.allocUnsafe(message.length + sodium.crypto_secretbox_MACBYTES);
      sodium.crypto_secretbox_easy(cipher, message, nonce, key);
      return `${cipher.toString('base64')};${nonce.toString('base64')}`;
    },
    open(value) {
      const [body = '', nonceText = ''] = value.split(';');
      const cipher = Buffer.from(body, 'base64');
      const nonce = Buffer.from(nonceText, 'base64');
      if (cipher.length < sodium.crypto_secretbox_MACBYTES || nonce.length !== sodium.crypto_secretbox_NONCEBYTES) return undefined;
      const message = Buffer.allocUnsafe(cipher.length - sodium.crypto_secretbox_MACBYTES);
      if (!sodium.crypto_secretbox_open_easy(message, cipher, nonce, key)) return undefined;
      return JSON.parse(message.toString()) as SessionRecord;
    },
  };
}
