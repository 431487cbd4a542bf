#!/usr/bin/env node
// npx koa-sealed-session <keygen | keys | inspect> [options]: make keys, check a ring, open a cookie and say why
// it does or does not open. Never prints a key. Exit codes: see HELP.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MAX_COOKIE_VALUE_BYTES, readCookies } from '../http/cookie.js';
import type { RejectionReason } from '../core/diagnostics.js';
import { formatOf, keyIdOf, type EnvelopeMode } from '../crypto/envelope.js';
import { KeyRing, ringKeyIds } from '../crypto/key-ring.js';
import { MAX_COOKIE_AGE_MS } from '../policy/lifetime.js';
import { valueRulesOf } from '../codec/value.js';
import { entryCodecOf } from '../codec/entries.js';
import { CookieSealer } from '../backends/cookie/sealer.js';
import { KeySlot } from '../backends/shared/keys.js';
import { IdCookie } from '../backends/store/id-cookie.js';
import { JsonSerializer } from '../codec/json/json-serializer.js';
import { MsgpackSerializer } from '../codec/msgpack/msgpack-serializer.js';
import type { Serializer, SessionRecord } from '../codec/serializer.js';
import { StoreSessionBackend } from '../backends/store/store-backend.js';
import { RedisStore } from '../redis/redis-store.js';
import type { RedisClientLike } from '../redis/client.js';
import { SessionError } from '../core/errors.js';

const HELP = `Usage: npx koa-sealed-session <command> [options]

Commands:
  keygen [--count N]             print N new keys (default 1), comma-separated: the value of SESSION_KEYS
  keys [KEYS]                    list the ring's key ids: which one seals, which are older, which are staged
  inspect [KEYS] [--name session] [--mode signed|private|store] [--redis-url URL] [--prefix sess:]
          [--timeout 5000] <cookie>
                                 open a cookie value (or a whole Cookie header) and show what it holds, or why
                                 it does not open; a store cookie is opened as the app opens it, through its
                                 record in Redis (--redis-url), within --timeout ms

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

const REASONS: Partial<Record<RejectionReason, string>> = {
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
  'beyond-lifetime': 'sealed for longer than any session lasts',
  'absolute-timeout': 'its session began more than 400 days ago, or in the future',
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
    if (err instanceof SessionError) {
      throw new UserError(`${err.message} Name the variable that holds the keys with --keys-env, or a file with --keys-file.`, 3);
    }
    throw err;
  }
}

function timeoutOf(text: string | undefined): number {
  const ms = text === undefined ? 5000 : Number(text);
  if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) throw new UserError('--timeout takes whole milliseconds from 1 to 60000.', 2);
  return ms;
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
  options: { name: string; mode?: string; redisUrl?: string; prefix: string; timeoutMs: number },
): Promise<Report> {
  const { name } = options;
  if (options.mode !== undefined && !['signed', 'private', 'store'].includes(options.mode))
    throw new UserError('--mode is signed, private or store.', 2);
  const value = cookieValueOf(input, name);
  const format = formatOf(/^[A-Za-z0-9_-]+$/.test(value) ? Buffer.from(value, 'base64url')[0] : undefined);
  const mode = (options.mode as EnvelopeMode | undefined) ?? format?.mode ?? 'signed';
  const report: Report = { opens: false, size: `${value.length} of ${MAX_COOKIE_VALUE_BYTES} characters` };
  const now = Date.now();
  // Opened as the app opens it, by the backends' own code; this command does not know the app's lifetimes, so it
  // checks against the longest any app allows (400 days): a cookie it calls expired, the app refuses too.
  const examined = mode === 'store' ? storeIds(ring, name).examine(value, now) : sealerFor(ring, name, mode).examine(value, now);
  const opened = examined.envelope;
  if (opened === undefined) {
    const reason = examined.reason as RejectionReason;
    report.reason = reason;
    report.detail = REASONS[reason];
    if (reason === 'wrong-mode') report.detail = `sealed as ${format?.mode} (format version ${format?.version}), not ${mode} (--mode)`;
    if (reason === 'unknown-key') {
      const ids = ringKeyIds(ring).map(({ id }) => hex(id));
      report.detail = `sealed with key id ${hex(keyIdOf(Buffer.from(value, 'base64url')) ?? 0)}, which the ring does not hold (it holds ${ids.join(', ')})`;
    }
    if (format !== undefined) Object.assign(report, { format: format.version, mode: format.mode });
    return report;
  }
  const role = ringKeyIds(ring).find(({ id }) => id === opened.keyId)?.role;
  Object.assign(report, {
    format: format?.version,
    mode,
    key: `${hex(opened.keyId)} (${role === 'sealing' ? 'newest: seals' : role === 'retired' ? 'older: the cookie is re-sealed with the newest on its next write' : 'staged'})`,
    expires: `${new Date(opened.expiresAt).toISOString()}${opened.expiresAt <= now ? ' (past)' : ''}`,
    began: opened.createdAt === undefined ? 'unknown (version 1)' : new Date(opened.createdAt).toISOString(),
    lifetime: opened.maxAge === undefined ? "the backend's maxAge" : opened.maxAge === 'session' ? 'browser session' : `${opened.maxAge} ms`,
  });
  const reason = examined.reason;
  if (reason === 'expired') {
    report.reason = 'expired';
    report.detail = `expired at ${new Date(opened.expiresAt).toISOString()}`;
    return report;
  }
  if (reason === 'unknown-serializer') {
    report.reason = reason;
    report.detail = `${REASONS['unknown-serializer']}: id ${opened.serializerId}`;
    return report;
  }
  if (reason !== undefined && reason !== 'undecodable') {
    report.reason = reason;
    report.detail = REASONS[reason];
    return report;
  }
  if (mode === 'store') {
    report.store = `${options.prefix}${IdCookie.recordKey(opened.payload)}`;
    if (options.redisUrl === undefined) {
      report.opens = true;
      report.record = 'not read (give --redis-url to read it as the app does)';
      return report;
    }
    const data = await openInStore(ring, value, options.redisUrl, options);
    if (data === undefined) {
      report.reason = 'no-record';
      report.detail = 'no record: it expired, or was purged, renewed or revoked, or does not decode (the app starts a new session)';
      return report;
    }
    report.data = printable(data);
    report.opens = true;
    return report;
  }
  const withData = examined as { readonly serializer?: Serializer; readonly data?: SessionRecord };
  report.serializer = withData.serializer?.name;
  if (reason === 'undecodable') {
    report.reason = 'undecodable';
    report.detail = REASONS.undecodable;
    return report;
  }
  report.data = printable(withData.data);
  report.opens = true;
  return report;
}

/** The sealer of a cookie backend of this name and mode that reads both built-in serializers. */
function sealerFor(ring: KeyRing, name: string, mode: 'signed' | 'private'): CookieSealer {
  const serializer = SERIALIZERS.get(1) as Serializer;
  const keys = new KeySlot('inspect', ring, name);
  const lifetime = MAX_COOKIE_AGE_MS;
  const options = {
    mode,
    keys,
    serializer,
    readers: SERIALIZERS,
    rules: valueRulesOf(serializer),
    name,
    lifetime,
    absolute: lifetime,
    autoRenew: false,
  };
  return new CookieSealer(options, entryCodecOf(serializer));
}

/** The id cookie of a store backend of this name. */
function storeIds(ring: KeyRing, name: string): IdCookie {
  return new IdCookie('inspect', ring, name, MAX_COOKIE_AGE_MS, MAX_COOKIE_AGE_MS);
}

/**
 * A store cookie's data, opened by the store backend itself (so inspect never disagrees with the app), or
 * `undefined` when it gives no session. node-redis is an optional dependency: loaded only here.
 */
async function openInStore(
  ring: KeyRing,
  value: string,
  url: string,
  options: { name: string; prefix: string; timeoutMs: number },
): Promise<SessionRecord | undefined> {
  // The whole Redis part is bounded: a Redis that accepts the connection and never answers must not hang inspect.
  const deadlineMs = options.timeoutMs;
  let createClient: (options: object) => RedisClientLike & {
    connect(): Promise<unknown>;
    destroy(): void;
    on(event: string, listener: () => void): unknown;
  };
  try {
    ({ createClient } = (await import('redis')) as unknown as { createClient: typeof createClient });
  } catch {
    throw new UserError('--redis-url needs the redis package (npm install redis).', 4);
  }
  let timer: NodeJS.Timeout | undefined;
  let client: ReturnType<typeof createClient> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    const opened = (async () => {
      client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: deadlineMs } });
      client.on('error', () => undefined);
      await client.connect();
      const backend = new StoreSessionBackend(new RedisStore(client, { prefix: options.prefix }), ring, {
        name: options.name,
        storeTimeout: deadlineMs,
      });
      return backend.open(value);
    })();
    opened.catch(() => undefined); // settled by the race below; a late failure is no unhandled rejection
    return await Promise.race([opened, deadline]);
  } catch (err) {
    // The message only: a client's error may name what it sent (never a key or id here, but kept out all the same).
    const why = err instanceof SessionError ? 'the store failed or did not answer' : (err as Error)?.message;
    throw new UserError(`Cannot read the record from Redis at the given --redis-url: ${why}.`, 4);
  } finally {
    clearTimeout(timer);
    try {
      client?.destroy();
    } catch {
      // already closed: the connection failed
    }
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
        timeout: { type: 'string' },
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
        timeoutMs: timeoutOf(values.timeout),
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
