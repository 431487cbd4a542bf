import { isAscii } from 'node:buffer';

// How a session's keys and values are kept as the members of a row's "fields" (jsonb), and read back.

/**
 * A value as a member of "fields": "t" and its text when it is ASCII without NUL (a JSON value, mostly: PostgreSQL
 * compresses it, whatever the database's encoding), else "b" and base64.
 */
export function memberOf(value: Uint8Array): string {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return isAscii(bytes) && !bytes.includes(0) ? `t${bytes.toString('latin1')}` : `b${bytes.toString('base64')}`;
}

// jsonb cannot hold U+0000: a session key's NUL is stored as "%00", and its "%" as "%25" so that names stay apart.
export function escapeName(name: string): string {
  return /[%\0]/.test(name) ? name.replace(/[%\0]/g, (c) => (c === '%' ? '%25' : '%00')) : name;
}

function unescapeName(name: string): string {
  return name.includes('%') ? name.replace(/%(00|25)/g, (_, hex: string) => (hex === '00' ? '\0' : '%')) : name;
}

const T = 't'.charCodeAt(0);
const B = 'b'.charCodeAt(0);

/** The fields of a row, decoded; `undefined` for anything this store does not write. */
export function fieldsOf(json: string | null | undefined): Map<string, Uint8Array> | undefined {
  if (typeof json !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const fields = new Map<string, Uint8Array>();
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== 'string') return undefined;
    const kind = value.charCodeAt(0);
    if (kind === T) fields.set(unescapeName(name), Buffer.from(value, 'latin1').subarray(1));
    else if (kind === B) fields.set(unescapeName(name), Buffer.from(value.slice(1), 'base64'));
    else return undefined;
  }
  return fields;
}
