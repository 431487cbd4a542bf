#!/usr/bin/env node
// npx koa-sealed-session <keygen | keys | inspect> [options]: make keys, check a ring, open a cookie and say why
// it does or does not open. Never prints a key. Exit codes: see HELP.
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MAX_COOKIE_VALUE_BYTES, readCookies } from '../http/cookie.js';
import { formatOf, open, whyNotOpen, type EnvelopeMode, type EnvelopeRejection, type Opened } from '../envelope/envelope.js';
import { KeyRing, keysFor, ringKeyIds } from '../key-ring.js';
import { JsonSerializer } from '../serializers/json-serializer.js';
import { MsgpackSerializer } from '../serializers/msgpack-serializer.js';
import type { Serializer } from '../serializers/serializer.js';
import { SessionError } from '../errors.js';

const HELP = `Usage: npx koa-sealed-session <command> [options]

Commands:
  keygen [--count N]             print N new keys (default 1), comma-separated: the value of SESSION_KEYS
  keys [KEYS]                    list the ring's key ids: which one seals, which are older, which are staged
  inspect [KEYS] [--name session] [--mode signed|private|store] [--redis-url URL] [--prefix sess:] <cookie>
                                 open a cookie value (or a whole Cookie header) and show what it holds, or why
                                 it does not open

KEYS: --keys-env VARIABLE (default SESSION_KEYS) or --keys-file FILE, holding keys as KeyRing.fromEnv reads them:
      base64url keys, newest first, separated by commas; staged ones marked "staged:".
Options: --json (inspect, keys): print JSON instead of a table. --help: this text.

Exit codes: 0 done (the cookie opened); 1 the cookie does not open (the reason is printed); 2 wrong usage;
            3 the keys are missing or invalid; 4 the store could not be read.
Keys are never printed, and a store cookie's id only as its hash (the store's key).`;

/** A failure the user can fix: printed without a stack, with its exit code. */
class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const SERIALIZERS: ReadonlyMap<number, Serializer> = new Map<number, Serializer>([
  [1, new JsonSerializer()],
  [2, new MsgpackSerializer()],
]);

const REASONS: Record<EnvelopeRejection | 'expired' | 'unknown-serializer' | 'undecodable', string> = {
  'too-long': `longer than ${MAX_COOKIE_VALUE_BYTES} characters: no cookie of this library is`,
  'not-base64url': 'not base64url: it holds a character outside A-Z a-z 0-9 - _ (or nothing)',
  'not-canonical': 'not canonical base64url: it decodes, but is not how the bytes are written (changed, or padded)',
  'unknown-format': 'unknown format: its first byte is no format this library writes',
  'wrong-mode': 'sealed for another mode',
  truncated: 'too short for its format: cut off',
  'unknown-key': 'sealed with a key that is not in the ring',
  'bad-mac': 'the MAC does not match: the value was changed, or sealed for another cookie name (--name)',
  'bad-tag': 'the GCM tag does not match: the value was changed, or sealed for another cookie name (--name)',
  expired: 'expired',
  'unknown-serializer': 'written by a serializer this command does not know (an app-defined one)',
  undecodable: 'its payload does not decode',
};

const hex = (id: number) => `0x${id.toString(16).padStart(8, '0')}`;

function keyRingOf(values: { 'keys-env'?: string; 'keys-file'?: string }): KeyRing {
  try {
    if (values['keys-file'] !== undefined) {
      const file = values['keys-file'];
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        throw new UserError(`Cannot read the keys file ${file}.`, 3);
      }
      return KeyRing.fromEnv(file, { [file]: text.trim() });
    }
    return KeyRing.fromEnv(values['keys-env'] ?? 'SESSION_KEYS');
  } catch (err) {
    if (err instanceof SessionError) throw new UserError(err.message, 3);
    throw err;
  }
}

function keygen(count: string | undefined): string {
  const n = count === undefined ? 1 : Number(count);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new UserError('--count takes a whole number from 1 to 16.', 2);
  return Array.from({ length: n }, () => KeyRing.generateKey().toString('base64url')).join(',');
}

function keys(ring: KeyRing, json: boolean): string {
  const ids = ringKeyIds(ring).map(({ id, role }) => ({ id: hex(id), role }));
  if (json) return JSON.stringify({ keys: ids }, null, 2);
  return ids
    .map(({ id, role }) => `${id}  ${role === 'sealing' ? 'seals (newest)' : role === 'retired' ? 'opens (older)' : 'opens (staged)'}`)
    .join('\n');
}

/** The cookie's value: the argument itself, or the named cookie of a whole Cookie header. */
function cookieValueOf(input: string, name: string): string {
  const text = input.replace(/^cookie:\s*/i, '').trim();
  // A value holds no "=" but for padding at its end; a header has name=value.
  if (!/=[^=]/.test(text)) return text;
  const [value] = readCookies(text, name, 1);
  if (value === undefined) throw new UserError(`The Cookie header has no cookie named ${name} (--name).`, 2);
  return value;
}

function printable(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v)),
  ) as unknown;
}

interface Report {
  opens: boolean;
  reason?: string;
  detail?: string;
  [field: string]: unknown;
}

async function inspectCookie(
  ring: KeyRing,
  input: string,
  options: { name: string; mode?: string; redisUrl?: string; prefix: string },
): Promise<Report> {
  const { name } = options;
  if (options.mode !== undefined && !['signed', 'private', 'store'].includes(options.mode))
    throw new UserError('--mode is signed, private or store.', 2);
  const value = cookieValueOf(input, name);
  const contextOf = (mode: EnvelopeMode) => keysFor(ring, mode === 'store' ? `${name}\0store-id` : name);
  const format = formatOf(/^[A-Za-z0-9_-]+$/.test(value) ? Buffer.from(value, 'base64url')[0] : undefined);
  const mode = (options.mode as EnvelopeMode | undefined) ?? format?.mode ?? 'signed';
  const report: Report = { opens: false, size: `${value.length} of ${MAX_COOKIE_VALUE_BYTES} characters` };
  const rejected = whyNotOpen(mode, contextOf(mode), value, MAX_COOKIE_VALUE_BYTES);
  if (rejected !== undefined) {
    report.reason = rejected;
    report.detail = REASONS[rejected];
    const envelope = Buffer.from(value, 'base64url');
    if (rejected === 'wrong-mode') report.detail = `sealed as ${format?.mode} (format version ${format?.version}), not ${mode} (--mode)`;
    if (rejected === 'unknown-key') {
      const ids = ringKeyIds(ring).map(({ id }) => hex(id));
      report.detail = `sealed with key id ${hex(envelope.readUInt32BE(1))}, which the ring does not hold (it holds ${ids.join(', ')})`;
    }
    if (format !== undefined) Object.assign(report, { format: format.version, mode: format.mode });
    return report;
  }
  const opened = open(mode, contextOf(mode), Buffer.from(value, 'base64url')) as Opened;
  const role = ringKeyIds(ring).find(({ id }) => id === opened.keyId)?.role;
  const now = Date.now();
  Object.assign(report, {
    format: format?.version,
    mode,
    key: `${hex(opened.keyId)} (${role === 'sealing' ? 'newest: seals' : role === 'retired' ? 'older: the cookie is re-sealed with the newest on its next write' : 'staged'})`,
    expires: `${new Date(opened.expiresAt).toISOString()}${opened.expiresAt <= now ? ' (past)' : ''}`,
    began: opened.createdAt === undefined ? 'unknown (version 1)' : new Date(opened.createdAt).toISOString(),
    lifetime: opened.maxAge === undefined ? "the backend's maxAge" : opened.maxAge === 'session' ? 'browser session' : `${opened.maxAge} ms`,
  });
  if (opened.expiresAt <= now) {
    report.reason = 'expired';
    report.detail = `expired at ${new Date(opened.expiresAt).toISOString()}`;
    return report;
  }
  if (mode === 'store') {
    const key = hash('sha256', opened.payload, 'base64url');
    report.store = `${options.prefix}${key}`;
    report.opens = true;
    if (options.redisUrl !== undefined) report.data = await fetchRecord(options.redisUrl, `${options.prefix}${key}`);
    return report;
  }
  const serializer = SERIALIZERS.get(opened.serializerId);
  if (serializer === undefined) {
    report.reason = 'unknown-serializer';
    report.detail = `${REASONS['unknown-serializer']}: id ${opened.serializerId}`;
    return report;
  }
  report.serializer = serializer.name;
  try {
    report.data = printable(serializer.deserialize(opened.payload));
  } catch {
    report.reason = 'undecodable';
    report.detail = REASONS.undecodable;
    return report;
  }
  report.opens = true;
  return report;
}

/** A store session's record, decoded field by field. node-redis is an optional dependency: loaded only here. */
async function fetchRecord(url: string, key: string): Promise<unknown> {
  let createClient: (options: object) => {
    connect(): Promise<unknown>;
    sendCommand(args: string[], options?: object): Promise<unknown>;
    destroy(): void;
    on(event: string, listener: () => void): unknown;
  };
  try {
    ({ createClient } = (await import('redis')) as unknown as { createClient: typeof createClient });
  } catch {
    throw new UserError('--redis-url needs the redis package (npm install redis).', 4);
  }
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 5000 } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = (await client.sendCommand(['HGETALL', key], { typeMapping: { 36: Buffer, 37: Array } })) as Buffer[];
    if (reply.length === 0) return 'no record: it expired, or was purged or renewed';
    const record: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const field = String(reply[i]);
      const bytes = reply[i + 1] as Buffer;
      if (!field.startsWith('.')) {
        record[field] = bytes.toString('utf8');
        continue;
      }
      const serializer = SERIALIZERS.get(bytes[0] as number);
      try {
        const single = serializer?.deserialize(bytes.subarray(1));
        record[field.slice(1)] = single === undefined ? '<unknown serializer>' : printable(single[field.slice(1)]);
      } catch {
        record[field.slice(1)] = '<does not decode>';
      }
    }
    return record;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`Cannot read the record from Redis at the given --redis-url: ${(err as Error).message}`, 4);
  } finally {
    client.destroy();
  }
}

function table(report: Report): string {
  const lines: string[] = [report.opens ? 'opens: yes' : `opens: no — ${report.detail ?? report.reason}`];
  for (const [field, value] of Object.entries(report)) {
    if (field === 'opens' || field === 'detail' || field === 'data' || value === undefined) continue;
    lines.push(`${field}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  if (report.data !== undefined) lines.push(`data: ${JSON.stringify(report.data, null, 2)}`);
  return lines.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
        count: { type: 'string' },
        'keys-env': { type: 'string' },
        'keys-file': { type: 'string' },
        name: { type: 'string' },
        mode: { type: 'string' },
        'redis-url': { type: 'string' },
        prefix: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UserError(`${(err as Error).message}\nSee --help.`, 2);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help === true || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (command === undefined) throw new UserError(`a command, please.\n\n${HELP}`, 2);
  if (values['keys-env'] !== undefined && values['keys-file'] !== undefined) throw new UserError('Give --keys-env or --keys-file, not both.', 2);
  switch (command) {
    case 'keygen':
      process.stdout.write(`${keygen(values.count)}\n`);
      return 0;
    case 'keys':
      process.stdout.write(`${keys(keyRingOf(values), values.json === true)}\n`);
      return 0;
    case 'inspect': {
      if (rest.length !== 1) throw new UserError('inspect takes one cookie value or Cookie header (quote it). See --help.', 2);
      const report = await inspectCookie(keyRingOf(values), rest[0] as string, {
        name: values.name ?? 'session',
        mode: values.mode,
        redisUrl: values['redis-url'],
        prefix: values.prefix ?? 'sess:',
      });
      process.stdout.write(`${values.json === true ? JSON.stringify(report, null, 2) : table(report)}\n`);
      return report.opens ? 0 : 1;
    }
    default:
      throw new UserError(`Unknown command ${JSON.stringify(command)}. See --help.`, 2);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UserError) {
      process.stderr.write(`koa-sealed-session: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`koa-sealed-session: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 70;
  },
);
