import { MAX_VALUE_DEPTH } from '../value.js';

// Byte values of the JSON grammar (RFC 8259).
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

// RFC 8259 §2: ws = space, tab, line feed, carriage return.
const WHITESPACE = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WHITESPACE[c] = 1;
// RFC 8259 §7: the characters a backslash may escape besides "u": " \ / b f n r t.
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

/**
 * Checks that `b` from `start` on is one JSON object (RFC 8259, whitespace allowed) whose values nest at most
 * {@link MAX_VALUE_DEPTH} deep, writes its top-level entries into `bounds` as `[keyStart, keyEnd, valueStart,
 * valueEnd, ...]` (the key with its quotes), and returns how many numbers that is (4 per entry), or -1 for anything
 * else. A typed array of fixed length may serve as `bounds`: what does not fit is not kept, but still counted. It
 * accepts exactly the texts that `JSON.parse` accepts as such an object (a property test holds it to that), so
 * reading a payload entry by entry and reading it whole agree on every payload. Iterative and linear in the text:
 * no input can overflow the stack or loop.
 */
export function scanJson(b: Uint8Array, start = 0, bounds: { [index: number]: number } = []): number {
  const end = b.length;
  let i = skipWhitespace(b, start);
  if (b[i] !== OPEN_OBJECT) return -1;
  i = skipWhitespace(b, i + 1);
  if (b[i] === CLOSE_OBJECT) return skipWhitespace(b, i + 1) === end ? 0 : -1;
  let n = 0;
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const keyStart = i;
    i = afterString(b, i + 1);
    if (i < 0) return -1;
    const keyEnd = i;
    i = skipWhitespace(b, i);
    if (b[i] !== COLON) return -1;
    const valueStart = skipWhitespace(b, i + 1);
    i = afterValue(b, valueStart);
    if (i < 0) return -1;
    bounds[n] = keyStart;
    bounds[n + 1] = keyEnd;
    bounds[n + 2] = valueStart;
    bounds[n + 3] = i;
    n += 4;
    i = skipWhitespace(b, i);
    if (b[i] === COMMA) {
      i = skipWhitespace(b, i + 1);
      continue;
    }
    if (b[i] === CLOSE_OBJECT) return skipWhitespace(b, i + 1) === end ? n : -1;
    return -1;
  }
}

function skipWhitespace(b: Uint8Array, i: number): number {
  // Compact JSON, what serializers write, has none: one look and out.
  while (WHITESPACE[b[i] as number] === 1) i++;
  return i;
}

// Bytes a string may hold as they are: all but control characters, the quote and the backslash.
const PLAIN_IN_STRING = new Uint8Array(256).fill(1);
PLAIN_IN_STRING.fill(0, 0, 0x20);
PLAIN_IN_STRING[QUOTE] = 0;
PLAIN_IN_STRING[BACKSLASH] = 0;

/** Index just past the closing quote of a string whose content starts at `i`, or -1 if it is not valid. */
function afterString(b: Uint8Array, i: number): number {
  for (;;) {
    // Past the end, b[i] is undefined and the loop stops there.
    while (PLAIN_IN_STRING[b[i] as number] === 1) i++;
    const c = b[i];
    if (c === QUOTE) return i + 1;
    if (c !== BACKSLASH) return -1; // unterminated, or a raw control character
    const e = b[i + 1] as number;
    if (SIMPLE_ESCAPE[e] === 1) i += 2;
    else if (
      e === 0x75 &&
      HEX[b[i + 2] as number] === 1 &&
      HEX[b[i + 3] as number] === 1 &&
      HEX[b[i + 4] as number] === 1 &&
      HEX[b[i + 5] as number] === 1
    )
      i += 6;
    else return -1;
  }
}

const DIGIT = new Uint8Array(256);
DIGIT.fill(1, 0x30, 0x3a);

function afterDigits(b: Uint8Array, i: number): number {
  while (DIGIT[b[i] as number] === 1) i++;
  return i;
}

/** RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; the index after it, or -1. */
function afterNumber(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (DIGIT[b[i] as number] === 1) i = afterDigits(b, i + 1);
  else return -1;
  if (b[i] === 0x2e) {
    const start = i + 1;
    i = afterDigits(b, start);
    if (i === start) return -1;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const start = i;
    i = afterDigits(b, start);
    if (i === start) return -1;
  }
  return i;
}

/** The index after `true`, `false` or `null` starting at `i` (whose first letter the caller saw), or -1. */
function afterWord(b: Uint8Array, i: number, c: number): number {
  if (c === 0x74) return b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : -1;
  if (c === 0x66) return b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? i + 5 : -1;
  return b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : -1;
}

// The open containers of the value being walked: 1 for an object, 0 for an array. Reused: never re-entered.
const open = new Uint8Array(MAX_VALUE_DEPTH);

/** Index just past the one value starting at `i`, nested at most MAX_VALUE_DEPTH deep, or -1. */
function afterValue(b: Uint8Array, i: number): number {
  let depth = 0;
  for (;;) {
    // A value starts at i.
    const c = b[i];
    let opened = false;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === MAX_VALUE_DEPTH) return -1;
      const isObject = c === OPEN_OBJECT;
      open[depth++] = isObject ? 1 : 0;
      i = skipWhitespace(b, i + 1);
      if (b[i] === (isObject ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        i++;
        depth--;
      } else opened = true;
    } else if (c === QUOTE) i = afterString(b, i + 1);
    else if (c === 0x74 || c === 0x66 || c === 0x6e) i = afterWord(b, i, c);
    else i = afterNumber(b, i);
    if (i < 0) return -1;
    if (opened) {
      // The first member of a container that is not empty.
      if (open[depth - 1] === 1) {
        i = afterKey(b, i);
        if (i < 0) return -1;
      }
      continue;
    }
    // A value ended: close what it ends, or move on to the next member.
    for (;;) {
      if (depth === 0) return i;
      if (WHITESPACE[b[i] as number] === 1) i = skipWhitespace(b, i);
      const isObject = open[depth - 1] === 1;
      if (b[i] === COMMA) {
        i++;
        if (WHITESPACE[b[i] as number] === 1) i = skipWhitespace(b, i);
        if (isObject) {
          i = afterKey(b, i);
          if (i < 0) return -1;
        }
        break;
      }
      if (b[i] !== (isObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return -1;
      i++;
      depth--;
    }
  }
}

/** After `"key" :` and any whitespace, at the member's value; or -1. */
function afterKey(b: Uint8Array, i: number): number {
  if (b[i] !== QUOTE) return -1;
  i = afterString(b, i + 1);
  if (i < 0) return -1;
  i = skipWhitespace(b, i);
  if (b[i] !== COLON) return -1;
  return skipWhitespace(b, i + 1);
}

/**
 * Whether a parsed JSON value nests more than `limit` arrays and objects deep. Recursive, but it never descends
 * past `limit`, so any input is safe.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (limit === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'object' && item !== null && nestsDeeperThan(item, limit - 1)) return true;
    }
    return false;
  }
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const item = record[key];
    if (typeof item === 'object' && item !== null && nestsDeeperThan(item, limit - 1)) return true;
  }
  return false;
}
