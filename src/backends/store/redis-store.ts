import { createHash } from 'node:crypto';
import { checkOptionNames, invalidOption } from '../../options.js';
import type { SessionStore, StoreRecord, StoreWrite } from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** Put before every key, so that sessions share a Redis with other data. @default 'sess:' */
  readonly prefix?: string;
}

/**
 * A connected client the app already has: node-redis (`createClient`, `createCluster`; redis 5 and 6) or ioredis
 * (`Redis`, `Cluster`; 5 and 6). Typed loosely on purpose: neither package is a dependency of this one.
 */
export type RedisClientLike = object;

/** One Redis command, routed by `key` on a cluster, answered with binary strings as Buffers. */
type Send = (key: string, args: readonly (string | Buffer)[]) => Promise<unknown>;

// A record is a Redis hash: "@c" holds when the session began, and each session key is a field "." + key.
const CREATED_FIELD = '@c';
const DATA_PREFIX = '.';

// Load: the fields, and the TTL extended, in one command (so one round trip, on a cluster too).
const LOAD = `local f = redis.call('HGETALL', KEYS[1])
if #f > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return f`;

// Write, atomically: create only if absent, change only if present (never bring back a record that is gone).
// ARGV: create ("1"/"0"), ttl ms, clear ("1"/"0"), created at, number of fields set, then name/value pairs, then
// the names to remove.
const WRITE = `local exists = redis.call('EXISTS', KEYS[1])
if (ARGV[1] == '1') == (exists == 1) then return 0 end
if ARGV[3] == '1' then
  local names = redis.call('HKEYS', KEYS[1])
  for i = 1, #names do
    if string.sub(names[i], 1, 1) == '.' then redis.call('HDEL', KEYS[1], names[i]) end
  end
end
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], '@c', ARGV[4]) end
local n = tonumber(ARGV[5])
local at = 6
for i = 1, n do
  redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
  at = at + 2
end
for i = at, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const LOAD_SHA = sha1(LOAD);
const WRITE_SHA = sha1(WRITE);

/**
 * Sessions in Redis (single node or cluster), one hash per session with a TTL that follows the session's
 * lifetime. Reading a session is one command (`EVALSHA`: `HGETALL` and `PEXPIRE`), writing one is one command
 * (`EVALSHA`: a Lua script, atomic), ending one is `UNLINK`.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const redis = await createClient({ url: process.env.REDIS_URL }).connect();
 * app.use(session(new StoreSessionBackend(new RedisStore(redis), keyRing)));
 * ```
 */
export class RedisStore implements SessionStore {
  /** What every key starts with. */
  readonly prefix: string;
  readonly #send: Send;

  constructor(client: RedisClientLike, options: RedisStoreOptions = {}) {
    checkOptionNames('RedisStore', options, ['prefix']);
    const prefix = options.prefix ?? 'sess:';
    if (typeof prefix !== 'string') throw invalidOption('RedisStore', 'prefix', 'a string');
    this.prefix = prefix;
    this.#send = adapt(client);
    Object.freeze(this);
  }

  async load(key: string, ttlMs: number): Promise<StoreRecord | undefined> {
    const reply = await this.#script(LOAD, LOAD_SHA, this.prefix + key, [String(Math.max(1, Math.ceil(ttlMs)))]);
    if (!Array.isArray(reply) || reply.length === 0) return undefined;
    const fields = new Map<string, Uint8Array>();
    let createdAt: number | undefined;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const name = text(reply[i]);
      const value = bytes(reply[i + 1]);
      if (name.startsWith(DATA_PREFIX)) fields.set(name.slice(DATA_PREFIX.length), value);
      else if (name === CREATED_FIELD) createdAt = Number(value.toString('latin1'));
    }
    return { fields, createdAt };
  }

  async write(key: string, write: StoreWrite): Promise<boolean> {
    const args: (string | Buffer)[] = [
      write.create ? '1' : '0',
      String(Math.max(1, Math.ceil(write.ttlMs))),
      write.clear ? '1' : '0',
      String(write.createdAt),
      String(write.set.size),
    ];
    for (const [name, value] of write.set) args.push(DATA_PREFIX + name, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    for (const name of write.remove) args.push(DATA_PREFIX + name);
    const reply = await this.#script(WRITE, WRITE_SHA, this.prefix + key, args);
    return Number(reply) === 1;
  }

  async destroy(key: string): Promise<void> {
    await this.#send(this.prefix + key, ['UNLINK', this.prefix + key]);
  }

  /** EVALSHA, falling back to EVAL the first time a server has not seen the script (then it is cached). */
  async #script(script: string, sha: string, key: string, args: readonly (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.#send(key, ['EVALSHA', sha, '1', key, ...args]);
    } catch (err) {
      if (!String((err as { message?: unknown })?.message).startsWith('NOSCRIPT')) throw err;
      return this.#send(key, ['EVAL', script, '1', key, ...args]);
    }
  }
}

const BLOB_STRING = 36; // node-redis' RESP_TYPES.BLOB_STRING ("$"): answered as Buffers
const BUFFERS = { typeMapping: { [BLOB_STRING]: Buffer } };

/** One way to send a raw command, whichever client the app uses. */
function adapt(client: RedisClientLike): Send {
  const c = client as Record<string, unknown>;
  // ioredis (Redis and Cluster): callBuffer routes by the command's keys on a cluster.
  if (typeof c.callBuffer === 'function') {
    const call = c.callBuffer as (command: string, ...args: (string | Buffer)[]) => Promise<unknown>;
    return (_key, [command, ...args]) => call.call(client, command as string, ...args);
  }
  if (typeof c.sendCommand === 'function') {
    // node-redis' cluster takes the key that picks the node first; its single-node client takes the arguments.
    if ('masters' in c) {
      const send = c.sendCommand as (key: string, readonly: boolean, args: readonly (string | Buffer)[], options: object) => Promise<unknown>;
      return (key, args) => send.call(client, key, false, args, BUFFERS);
    }
    const send = c.sendCommand as (args: readonly (string | Buffer)[], options: object) => Promise<unknown>;
    return (_key, args) => send.call(client, args, BUFFERS);
  }
  throw invalidOption('RedisStore', 'client', "a connected node-redis (createClient, createCluster) or ioredis (Redis, Cluster) client");
}

function bytes(value: unknown): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
}

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}
