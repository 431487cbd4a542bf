// inspect: opens a cookie value as the app would and says what it holds, or exactly why it does not open.
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
import { UserError, hex } from './common.js';

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

export async function inspectCookie(
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

export function table(report: Report): string {
  const lines: string[] = [report.opens ? 'opens: yes' : `opens: no — ${report.detail ?? report.reason}`];
  for (const [field, value] of Object.entries(report)) {
    if (field === 'opens' || field === 'detail' || field === 'data' || value === undefined) continue;
    lines.push(`${field}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  if (report.data !== undefined) lines.push(`data: ${JSON.stringify(report.data, null, 2)}`);
  return lines.join('\n');
}
