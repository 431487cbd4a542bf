import { createCipheriv, createDecipheriv, createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { ContextKeys, DerivedKey } from './key-ring.js';

/**
 * The sealed cookie's binary layout. Multi-byte integers are big-endian; times are milliseconds since the epoch.
 *
 * ```
 * header, version 2 (23 bytes): format (1) | key id (4) | serializer id (1) | expires at (6) | created at (6)
 *                               | own lifetime (5): 0 for the backend's maxAge, 1 for 'session', else milliseconds
 * header, version 1 (12 bytes): format (1) | key id (4) | serializer id (1) | expires at (6)   (read, never written)
 * signed:  header | payload (serialized bytes, unchanged) | HMAC-SHA256 tag (32)
 * store:   header | session id (32) | HMAC-SHA256 tag (32)       (format 0x23; serializer id 0)
 * private: header | nonce (12) | AES-256-GCM ciphertext of payload | GCM tag (16)
 * ```
 *
 * The MAC (signed) or the associated data (private) covers the whole header, and the keys are derived for the
 * cookie name, so a value moved to another cookie name, another mode, another serializer, another expiry or
 * another lifetime does not open.
 */
export type SealMode = 'signed' | 'private';

/** What an envelope seals: a cookie session (signed or private), or a store session's id (signed). */
export type EnvelopeMode = SealMode | 'store';

/** First byte of the envelope: the format version (high nibble, 0 for version 1) and the mode (low nibble). */
export const FORMAT = { signed: 0x21, private: 0x22, store: 0x23 } as const satisfies Record<EnvelopeMode, number>;
/** The first byte of version 1 envelopes, which still open (store ids came with version 2: none). */
const FORMAT_V1 = { signed: 0x01, private: 0x02, store: -1 } as const satisfies Record<EnvelopeMode, number>;

export const HEADER_BYTES = 23;
const HEADER_BYTES_V1 = 12;
const MAC_BYTES = 32;
const NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** Bytes the envelope adds around the payload in each mode. */
export const OVERHEAD: Readonly<Record<EnvelopeMode, number>> = {
  signed: HEADER_BYTES + MAC_BYTES,
  store: HEADER_BYTES + MAC_BYTES,
  private: HEADER_BYTES + NONCE_BYTES + GCM_TAG_BYTES,
};

/** Latest time a 6-byte field holds; far beyond any cookie's lifetime. */
const MAX_TIME = 2 ** 48 - 1;
/** The own-lifetime field's codes below any valid lifetime (which is at least a second). */
const LIFETIME_DEFAULT = 0;
const LIFETIME_SESSION = 1;
/** Longest lifetime the 5-byte field holds (34 years; browsers keep a cookie 400 days at most). */
const MAX_LIFETIME = 2 ** 40 - 1;

/** A session's own lifetime: milliseconds, `'session'` (a browser-session cookie), or `undefined` (the backend's). */
export type OwnLifetime = number | 'session' | undefined;

/** The times a seal carries besides the payload. */
export interface SealTimes {
  readonly expiresAt: number;
  /** When the session began; an explicit renewal begins a new one. */
  readonly createdAt: number;
  readonly maxAge: OwnLifetime;
}

/** What an envelope said, once authenticated. */
export interface Opened {
  /** Id of the key that opened it. */
  readonly keyId: number;
  readonly serializerId: number;
  readonly expiresAt: number;
  /** `undefined` in a version 1 envelope, which did not carry it. */
  readonly createdAt: number | undefined;
  readonly maxAge: OwnLifetime;
  readonly payload: Buffer;
  /** The key that opened it is no longer the newest: the cookie should be sealed again. */
  readonly retiredKey: boolean;
}

/** Seals a payload into an envelope (raw bytes; the backend encodes them) with the context's sealing key. */
export function seal(mode: EnvelopeMode, keys: ContextKeys, serializerId: number, times: SealTimes, payload: Uint8Array): Buffer {
  const key = keys.sealing;
  const out = Buffer.allocUnsafe(OVERHEAD[mode] + payload.byteLength);
  out[0] = FORMAT[mode];
  out.writeUInt32BE(key.id, 1);
  out[5] = serializerId;
  out.writeUIntBE(clamp(times.expiresAt, MAX_TIME), 6, 6);
  out.writeUIntBE(clamp(times.createdAt, MAX_TIME), 12, 6);
  const { maxAge } = times;
  out.writeUIntBE(maxAge === undefined ? LIFETIME_DEFAULT : maxAge === 'session' ? LIFETIME_SESSION : clamp(maxAge, MAX_LIFETIME), 18, 5);
  if (mode !== 'private') {
    out.set(payload, HEADER_BYTES);
    const tagAt = HEADER_BYTES + payload.byteLength;
    mac(key, out.subarray(0, tagAt)).copy(out, tagAt);
    return out;
  }
  const nonce = out.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  takeNonce(nonce);
  const cipher = createCipheriv('aes-256-gcm', key.encKey, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(out.subarray(0, HEADER_BYTES));
  let at = HEADER_BYTES + NONCE_BYTES;
  at += cipher.update(payload).copy(out, at);
  at += cipher.final().copy(out, at);
  cipher.getAuthTag().copy(out, at);
  return out;
}

/**
 * Authenticates an envelope and returns what it carries, or `undefined` for anything that does not open: wrong
 * format, unknown key, bad tag. Every failure looks the same to the caller. The expiry is returned, not checked:
 * the caller owns the clock.
 */
export function open(mode: EnvelopeMode, keys: ContextKeys, envelope: Buffer): Opened | undefined {
  const format = envelope[0];
  const headerBytes = format === FORMAT[mode] ? HEADER_BYTES : format === FORMAT_V1[mode] ? HEADER_BYTES_V1 : 0;
  if (headerBytes === 0 || envelope.byteLength < OVERHEAD[mode] - HEADER_BYTES + headerBytes) return undefined;
  const key = keys.byId.get(envelope.readUInt32BE(1));
  if (key === undefined) return undefined;
  const header = envelope.subarray(0, headerBytes);
  let payload: Buffer;
  if (mode !== 'private') {
    const tagAt = envelope.byteLength - MAC_BYTES;
    const expected = mac(key, envelope.subarray(0, tagAt));
    if (!timingSafeEqual(expected, envelope.subarray(tagAt))) return undefined;
    payload = envelope.subarray(headerBytes, tagAt);
  } else {
    const tagAt = envelope.byteLength - GCM_TAG_BYTES;
    const nonce = envelope.subarray(headerBytes, headerBytes + NONCE_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.encKey, nonce, { authTagLength: GCM_TAG_BYTES });
      decipher.setAAD(header);
      decipher.setAuthTag(envelope.subarray(tagAt));
      const body = decipher.update(envelope.subarray(headerBytes + NONCE_BYTES, tagAt));
      const rest = decipher.final();
      payload = rest.byteLength === 0 ? body : Buffer.concat([body, rest]);
    } catch {
      return undefined;
    }
  }
  return {
    keyId: key.id,
    serializerId: header[5] as number,
    expiresAt: header.readUIntBE(6, 6),
    createdAt: headerBytes === HEADER_BYTES ? header.readUIntBE(12, 6) : undefined,
    maxAge: headerBytes === HEADER_BYTES ? ownLifetime(header.readUIntBE(18, 5)) : undefined,
    payload,
    retiredKey: key.retired,
  };
}

function ownLifetime(code: number): OwnLifetime {
  return code === LIFETIME_DEFAULT ? undefined : code === LIFETIME_SESSION ? 'session' : code;
}

function clamp(value: number, max: number): number {
  return Math.min(Math.max(0, Math.floor(value)), max);
}

function mac(key: DerivedKey, signed: Uint8Array): Buffer {
  return createHmac('sha256', key.macKey).update(signed).digest();
}

// One CSPRNG call fills many nonces: randomFillSync per seal costs more than the AES itself at this size.
const NONCE_POOL_BYTES = NONCE_BYTES * 512;
const noncePool = Buffer.alloc(NONCE_POOL_BYTES);
let noncePoolAt = NONCE_POOL_BYTES;

function takeNonce(target: Buffer): void {
  if (noncePoolAt === NONCE_POOL_BYTES) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  noncePool.copy(target, 0, noncePoolAt, noncePoolAt + NONCE_BYTES);
  // Wipe what was handed out, so a nonce can never be handed out twice.
  noncePool.fill(0, noncePoolAt, noncePoolAt + NONCE_BYTES);
  noncePoolAt += NONCE_BYTES;
}

/**
 * Why a value does not open as an envelope: the first check it fails, in the order `open` makes them. Stable
 * strings, shared by the command line (`inspect`) and the diagnostics channel.
 */
export type EnvelopeRejection =
  'too-long' | 'not-base64url' | 'not-canonical' | 'unknown-format' | 'wrong-mode' | 'truncated' | 'unknown-key' | 'bad-mac' | 'bad-tag';

/** What a format byte says: the version and the mode, or `undefined` for none this library writes or reads. */
export function formatOf(byte: number | undefined): { readonly version: 1 | 2; readonly mode: EnvelopeMode } | undefined {
  for (const mode of ['signed', 'private', 'store'] as const) {
    if (byte === FORMAT[mode]) return { version: 2, mode };
    if (byte === FORMAT_V1[mode]) return { version: 1, mode };
  }
  return undefined;
}

/**
 * Why a cookie value does not open under `mode` and `keys`, or `undefined` when it does. Slower than `open` (it
 * looks again at what `open` refused), so it runs only when someone asks: `inspect`, or a diagnostics subscriber.
 */
export function whyNotOpen(mode: EnvelopeMode, keys: ContextKeys, value: string, maxLength: number): EnvelopeRejection | undefined {
  if (value.length > maxLength) return 'too-long';
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(value)) return 'not-base64url';
  const envelope = Buffer.from(value, 'base64url');
  if (envelope.toString('base64url') !== value) return 'not-canonical';
  const format = formatOf(envelope[0]);
  if (format === undefined) return 'unknown-format';
  if (format.mode !== mode) return 'wrong-mode';
  const headerBytes = format.version === 2 ? HEADER_BYTES : HEADER_BYTES_V1;
  if (envelope.byteLength < OVERHEAD[mode] - HEADER_BYTES + headerBytes) return 'truncated';
  if (!keys.byId.has(envelope.readUInt32BE(1))) return 'unknown-key';
  if (open(mode, keys, envelope) === undefined) return mode === 'private' ? 'bad-tag' : 'bad-mac';
  return undefined;
}

/** The id of the key an envelope names (for `inspect` to say which key a cookie wants), or `undefined` when too short. */
export function keyIdOf(envelope: Buffer): number | undefined {
  return envelope.byteLength >= 5 ? envelope.readUInt32BE(1) : undefined;
}
