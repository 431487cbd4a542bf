import { MAX_VALUE_DEPTH } from './value.js';

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
  readonly entries: ScannedEntry[];
  /** Some top-level key is "__proto__". */
  readonly protoKey: boolean;
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
export function scanMsgpack(b: Uint8Array): Scan | undefined {
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
  let protoKey = false;
  for (let i = 0; i < count; i++) {
    const keyStart = pos;
    const key = readStringHeader(b, pos);
    if (key === undefined) return undefined;
    const keyText = key.start;
    pos = key.start + key.length;
    if (pos > end) return undefined;
    if (key.length === 9 && isProto(b, keyText)) protoKey = true;
    const valueStart = pos;
    const skipped = skipValue(b, pos);
    if (skipped === undefined) return undefined;
    pos = skipped.end;
    entries.push({ keyStart, keyText, valueStart, valueEnd: pos, protoInside: skipped.proto });
  }
  return pos === end ? { entries, protoKey } : undefined;
}

function readStringHeader(b: Uint8Array, pos: number): { start: number; length: number } | undefined {
  const c = b[pos];
  if (c === undefined) return undefined;
  if (c >= 0xa0 && c <= 0xbf) return { start: pos + 1, length: c & 0x1f };
  if (c === 0xd9 && pos + 1 < b.length) return { start: pos + 2, length: b[pos + 1] as number };
  if (c === 0xda && pos + 2 < b.length) return { start: pos + 3, length: uint(b, pos + 1, 2) };
  if (c === 0xdb && pos + 4 < b.length) return { start: pos + 5, length: uint(b, pos + 1, 4) };
  return undefined;
}

function uint(b: Uint8Array, at: number, bytes: number): number {
  let value = 0;
  for (let i = 0; i < bytes; i++) value = value * 256 + ((b[at + i] as number) ?? 0);
  return value;
}

// Bytes that follow a fixed-size token: floats and integers.
const FIXED_SIZE: Record<number, number> = { 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 };

/** Skips one value; returns where it ends and whether a map inside it has a "__proto__" key. */
function skipValue(b: Uint8Array, start: number): { end: number; proto: boolean } | undefined {
  const end = b.length;
  // Items still to read at each open level; for maps twice the entries, so an even count means a key is next.
  const left: number[] = [1];
  const isMap: boolean[] = [false];
  let proto = false;
  let pos = start;
  while (left.length > 0) {
    const top = left.length - 1;
    const remaining = left[top] as number;
    if (remaining === 0) {
      left.pop();
      isMap.pop();
      continue;
    }
    const keyNext = (isMap[top] as boolean) && remaining % 2 === 0;
    left[top] = remaining - 1;
    if (pos >= end) return undefined;
    const c = b[pos] as number;
    if (keyNext) {
      const key = readStringHeader(b, pos);
      if (key === undefined) return undefined;
      if (key.length === 9 && isProto(b, key.start)) proto = true;
      pos = key.start + key.length;
      if (pos > end) return undefined;
      continue;
    }
    pos++;
    let items = -1;
    let map = false;
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) {
      // fixints, nil, false, true: nothing follows
    } else if (c <= 0x8f) {
      items = (c & 0x0f) * 2;
      map = true;
    } else if (c <= 0x9f) {
      items = c & 0x0f;
    } else if (c <= 0xbf) {
      pos += c & 0x1f;
    } else if (FIXED_SIZE[c] !== undefined) {
      pos += FIXED_SIZE[c];
    } else {
      switch (c) {
        case 0xc4: // bin 8, 16, 32
        case 0xd9: // str 8, 16, 32
          if (pos >= end) return undefined;
          pos += 1 + (b[pos] as number);
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
          map = true;
          pos += 2;
          break;
        case 0xdf:
          items = uint(b, pos, 4) * 2;
          map = true;
          pos += 4;
          break;
        case 0xd6: // timestamp 32: fixext 4 of type -1
          if (b[pos] !== 0xff) return undefined;
          pos += 5;
          break;
        case 0xd7: // timestamp 64: fixext 8 of type -1
          if (b[pos] !== 0xff) return undefined;
          pos += 9;
          break;
        case 0xc7: // timestamp 96: ext 8 of length 12 and type -1
          if (b[pos] !== 12 || b[pos + 1] !== 0xff) return undefined;
          pos += 14;
          break;
        default:
          return undefined; // any other extension, or 0xc1 (never used)
      }
    }
    if (pos > end) return undefined;
    if (items >= 0) {
      if (left.length > MAX_VALUE_DEPTH) return undefined;
      left.push(items);
      isMap.push(map);
    }
  }
  return { end: pos, proto };
}
