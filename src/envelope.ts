import { createCipheriv, createDecipheriv, createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { ContextKeys, DerivedKey } from './key-ring.js';

/**
 * The sealed cookie's binary layout, version 1. Multi-byte integers are big-endian.
 *
 * ```
 * header (12 bytes): format (1) | key id (4) | serializer id (1) | expires at, ms since epoch (6)
 * signed:  header | payload (serialized bytes, unchanged) | HMAC-SHA256 tag (32)
 * private: header | nonce (12) | AES-256-GCM ciphertext of payload | GCM tag (16)
 * ```
 *
 * The MAC (signed) or the associated data (private) covers the whole header, and the keys are derived for the
 * cookie name, so a value moved to another cookie name, another mode, another serializer or another expiry does
 * not open.
 */
export type SealMode = 'signed' | 'private';

/** First byte of the envelope: the format version and mode in one. */
export const FORMAT = { signed: 0x01, private: 0x02 } as const satisfies Record<SealMode, number>;

export const HEADER_BYTES = 12;
const MAC_BYTES = 32;
const NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** Bytes the envelope adds around the payload in each mode. */
export const OVERHEAD: Readonly<Record<SealMode, number>> = {
  signed: HEADER_BYTES + MAC_BYTES,
  private: HEADER_BYTES + NONCE_BYTES + GCM_TAG_BYTES,
};

/** Latest expiry a 6-byte field holds; far beyond any cookie's lifetime. */
const MAX_EXPIRES = 2 ** 48 - 1;

/** What an envelope said, once authenticated. */
export interface Opened {
  /** Id of the key that opened it. */
  readonly keyId: number;
  readonly serializerId: number;
  readonly expiresAt: number;
  readonly payload: Buffer;
  /** The key that opened it is no longer the newest: the cookie should be sealed again. */
  readonly retiredKey: boolean;
}

/** Seals a payload into an envelope (raw bytes; the backend encodes them) with the context's sealing key. */
export function seal(mode: SealMode, keys: ContextKeys, serializerId: number, expiresAt: number, payload: Uint8Array): Buffer {
  const key = keys.sealing;
  const out = Buffer.allocUnsafe(OVERHEAD[mode] + payload.byteLength);
  out[0] = FORMAT[mode];
  out.writeUInt32BE(key.id, 1);
  out[5] = serializerId;
  const expires = Math.min(Math.max(0, Math.floor(expiresAt)), MAX_EXPIRES);
  out.writeUInt16BE(Math.floor(expires / 2 ** 32), 6);
  out.writeUInt32BE(expires % 2 ** 32, 8);
  if (mode === 'signed') {
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
export function open(mode: SealMode, keys: ContextKeys, envelope: Buffer): Opened | undefined {
  if (envelope.byteLength < OVERHEAD[mode] || envelope[0] !== FORMAT[mode]) return undefined;
  const key = keys.byId.get(envelope.readUInt32BE(1));
  if (key === undefined) return undefined;
  const header = envelope.subarray(0, HEADER_BYTES);
  let payload: Buffer;
  if (mode === 'signed') {
    const tagAt = envelope.byteLength - MAC_BYTES;
    const expected = mac(key, envelope.subarray(0, tagAt));
    if (!timingSafeEqual(expected, envelope.subarray(tagAt))) return undefined;
    payload = envelope.subarray(HEADER_BYTES, tagAt);
  } else {
    const tagAt = envelope.byteLength - GCM_TAG_BYTES;
    const nonce = envelope.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.encKey, nonce, { authTagLength: GCM_TAG_BYTES });
      decipher.setAAD(header);
      decipher.setAuthTag(envelope.subarray(tagAt));
      const body = decipher.update(envelope.subarray(HEADER_BYTES + NONCE_BYTES, tagAt));
      const rest = decipher.final();
      payload = rest.byteLength === 0 ? body : Buffer.concat([body, rest]);
    } catch {
      return undefined;
    }
  }
  return {
    keyId: key.id,
    serializerId: header[5] as number,
    expiresAt: header.readUInt16BE(6) * 2 ** 32 + header.readUInt32BE(8),
    payload,
    retiredKey: key.retired,
  };
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
