import { isUtf8 } from 'node:buffer';
import { MAX_VALUE_DEPTH } from '../value.js';

/** Where one top-level entry of a MessagePack map lies in the payload. */
export interface ScannedEntry {
  readonly keyStart: number;
  /** Start of the key's UTF-8 bytes, after its string header. */
  readonly keyText: number;
  /** End of the key and start of the value. */
  readonly valueStart: number;
  readonly valueEnd: number;
  /** The value holds a map key "__proto__" somewhere, which msgpackr's object decoding would rename. */
  readonly protoInside: boolean;
}

export interface Scan {
  /** The entries' layout; empty unless asked for. */
  readonly entries: ScannedEntry[];
  /** Some key, at any depth, is "__proto__". */
  readonly proto: boolean;
}

const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "__proto__"

function isProto(b: Uint8Array, at: number): boolean {
  for (let i = 0; i < 9; i++) if (b[at + i] !== PROTO[i]) return false;
  return true;
}

/**
 * Walks a MessagePack payload without decoding it and returns its top-level map's layout, or `undefined`
 * unless the payload is exactly one map with string keys holding standard plain data only: nil, booleans,
 * integers, floats, strings, binary, arrays, maps with string keys and timestamps (extension -1), nested at
 * most {@link MAX_VALUE_DEPTH} deep. Every other extension type (msgpackr's Set, Error, RegExp, records...)
 * is refused here, before msgpackr could build it. Iterative, linear in the payload: no input can overflow the
 * stack or loop.
 */
export function scanMsgpack(b: Uint8Array, layout: boolean): Scan | undefined {
  const end = b.length;
  if (end === 0) return undefined;
  let pos = 0;
  const head = b[pos++] as number;
  let count: number;
  if (head >= 0x80 && head <= 0x8f) count = head & 0x0f;
  else if (head === 0xde && end >= 3) {
    count = (b[1] as number) * 256 + (b[2] as number);
    pos = 3;
  } else if (head === 0xdf && end >= 5) {
    count = (((b[1] as number) << 24) >>> 0) + ((b[2] as number) << 16) + ((b[3] as number) << 8) + (b[4] as number);
    pos = 5;
  } else return undefined;

  const entries: ScannedEntry[] = [];
  let proto = false;
  for (let i = 0; i < count; i++) {
    const keyStart = pos;
    const keyText = readStringHeader(b, pos);
    if (keyText < 0) return undefined;
    pos = keyText + stringLength;
    if (pos > end) return undefined;
    // Entry by entry, a key is decoded by node and whole by msgpackr, which differ on bytes that are not UTF-8.
    if (!isUtf8Text(b, keyText, pos)) return undefined;
    if (stringLength === 9 && isProto(b, keyText)) proto = true;
    const valueStart = pos;
    protoSeen = false;
    pos = skipValue(b, pos);
    if (pos < 0) return undefined;
    if (protoSeen) proto = true;
    if (layout) entries.push({ keyStart, keyText, valueStart, valueEnd: pos, protoInside: protoSeen });
  }
  return pos === end ? { entries, proto } : undefined;
}

function isUtf8Text(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if ((b[i] as number) >= 0x80) return isUtf8(b.subarray(start, end));
  }
  return true;
}

// Scratch results of the readers below, instead of an object per token: the scan is on every request's path.
let stringLength = 0;
let protoSeen = false;

/** Start of the UTF-8 bytes of the string at `pos` (its length in `stringLength`), or -1 if none is there. */
function readStringHeader(b: Uint8Array, pos: number): number {
  const c = b[pos];
  if (c === undefined) return -1;
  if (c >= 0xa0 && c <= 0xbf) {
    stringLength = c & 0x1f;
    return pos + 1;
  }
  if (c === 0xd9 && pos + 1 < b.length) {
    stringLength = b[pos + 1] as number;
    return pos + 2;
  }
  if (c === 0xda && pos + 2 < b.length) {
    stringLength = uint(b, pos + 1, 2);
    return pos + 3;
  }
  if (c === 0xdb && pos + 4 < b.length) {
    stringLength = uint(b, pos + 1, 4);
    return pos + 5;
  }
  return -1;
}

function uint(b: Uint8Array, at: number, bytes: number): number {
  let value = 0;
  for (let i = 0; i < bytes; i++) value = value * 256 + ((b[at + i] as number) ?? 0);
  return value;
}

// Bytes that follow a scalar token whose first byte gives its size (fixints, nil, booleans, fixstr, numbers);
// COMPLEX for containers, variable-length and extension tokens, and tokens that are refused.
const COMPLEX = 255;
const SKIP = new Uint8Array(256).fill(COMPLEX);
for (let c = 0x00; c <= 0x7f; c++) SKIP[c] = 0;
for (let c = 0xe0; c <= 0xff; c++) SKIP[c] = 0;
for (let c = 0xa0; c <= 0xbf; c++) SKIP[c] = c & 0x1f;
for (const [token, size] of [
  [0xc0, 0],
  [0xc2, 0],
  [0xc3, 0],
  [0xca, 4],
  [0xcb, 8],
  [0xcc, 1],
  [0xcd, 2],
  [0xce, 4],
  [0xcf, 8],
  [0xd0, 1],
  [0xd1, 2],
  [0xd2, 4],
  [0xd3, 8],
] as const) {
  SKIP[token] = size;
}

const MAX_NANOSECONDS = 999_999_999;
/** Farthest a Date lies from the epoch, in milliseconds (ECMAScript's time value range). */
const MAX_DATE_MS = 8.64e15;

function isDateTimestamp96(b: Uint8Array, at: number): boolean {
  if (at + 12 > b.length) return false;
  const nanoseconds = uint(b, at, 4);
  const high = uint(b, at + 4, 4);
  const seconds = (high >= 0x80000000 ? high - 0x100000000 : high) * 2 ** 32 + uint(b, at + 8, 4);
  const ms = seconds * 1000 + Math.floor(nanoseconds / 1e6);
  return nanoseconds <= MAX_NANOSECONDS && Math.abs(ms) <= MAX_DATE_MS;
}

// Items still to read at each open level, doubled for maps (an even count in a map means a key is next).
// Reused across calls: the scan is synchronous and never re-entered.
const left = new Int32Array(MAX_VALUE_DEPTH + 2);
const isMap = new Uint8Array(MAX_VALUE_DEPTH + 2);

/** Skips one value: returns where it ends, or -1; sets `protoSeen` when a map inside has a "__proto__" key. */
function skipValue(b: Uint8Array, start: number): number {
  const end = b.length;
  let top = 0;
  left[0] = 1;
  isMap[0] = 0;
  let pos = start;
  while (top >= 0) {
    const remaining = left[top] as number;
    if (remaining === 0) {
      top--;
      continue;
    }
    left[top] = remaining - 1;
    if (pos >= end) return -1;
    if (isMap[top] === 1 && (remaining & 1) === 0) {
      const text = readStringHeader(b, pos);
      if (text < 0) return -1;
      if (stringLength === 9 && isProto(b, text)) protoSeen = true;
      pos = text + stringLength;
      continue;
    }
    const c = b[pos++] as number;
    const skip = SKIP[c] as number;
    if (skip !== COMPLEX) {
      // Most tokens: a scalar whose size the first byte tells.
      pos += skip;
      continue;
    }
    let items = -1;
    let map = 0;
    if (c >= 0x80 && c <= 0x8f) {
      items = (c & 0x0f) * 2;
      map = 1;
    } else if (c >= 0x90 && c <= 0x9f) {
      items = c & 0x0f;
    } else {
      switch (c) {
        case 0xc4: // bin 8, 16, 32
        case 0xd9: // str 8, 16, 32
          pos += 1 + ((b[pos] as number) ?? 0);
          break;
        case 0xc5:
        case 0xda:
          pos += 2 + uint(b, pos, 2);
          break;
        case 0xc6:
        case 0xdb:
          pos += 4 + uint(b, pos, 4);
          break;
        case 0xdc:
          items = uint(b, pos, 2);
          pos += 2;
          break;
        case 0xdd:
          items = uint(b, pos, 4);
          pos += 4;
          break;
        case 0xde:
          items = uint(b, pos, 2) * 2;
          map = 1;
          pos += 2;
          break;
        case 0xdf:
          items = uint(b, pos, 4) * 2;
          map = 1;
          pos += 4;
          break;
        // Timestamps whose nanoseconds or seconds msgpackr would turn into an odd or invalid Date are refused, so
        // every Date that opens is one that set() accepts.
        case 0xd6: // timestamp 32: fixext 4 of type -1, unsigned seconds
          if (b[pos] !== 0xff) return -1;
          pos += 5;
          break;
        case 0xd7: // timestamp 64: fixext 8 of type -1, nanoseconds (30 bits) then seconds (34 bits)
          if (b[pos] !== 0xff || uint(b, pos + 1, 4) >>> 2 > MAX_NANOSECONDS) return -1;
          pos += 9;
          break;
        case 0xc7: // timestamp 96: ext 8 of length 12 and type -1, nanoseconds (32 bits) then signed seconds (64 bits)
          if (b[pos] !== 12 || b[pos + 1] !== 0xff || !isDateTimestamp96(b, pos + 2)) return -1;
          pos += 14;
          break;
        default:
          return -1; // any other extension, or 0xc1 (never used)
      }
    }
    if (pos > end) return -1;
    if (items >= 0) {
      // Every item takes a byte at least: a larger count is a lie, and would overflow the counters.
      if (items > end - pos || top >= MAX_VALUE_DEPTH) return -1;
      top++;
      left[top] = items;
      isMap[top] = map;
    }
  }
  return pos <= end ? pos : -1;
}
