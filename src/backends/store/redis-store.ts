import { checkOptionNames, invalidOption } from '../../options.js';
import { RedisConnection, bytes, luaScript, milliseconds, text, type RedisClientLike } from '../../redis/client.js';
import type { SessionStore, StoreRecord, StoreWrite, UserIndex, UserRecord } from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** Put before every key, so that sessions share a Redis with other data. @default 'sess:' */
  readonly prefix?: string;
  /**
   * Most commands waiting for Redis' answer at once. Past it, a call fails at once (the request answers 503)
   * instead of queueing in the client's memory while Redis is stalled. @default 10_000
   */
  readonly maxPending?: number;
}

// A record is a Redis hash: "@c" holds when the session began, and each session key is a field "." + key. With a
// user index, "@u" holds the record's user, "@s" when it was last seen and "@i" its description; the user's index
// is a sorted set under prefix + "user:" + user, of record keys scored by the latest each can live (ms).
const CREATED_FIELD = '@c';
const USER_FIELD = '@u';
const DATA_PREFIX = '.';
const USER_INDEX = 'user:';

// A write or delete that reaches a server after its deadline (server time, ms; 0: none) is not applied: the app
// was told it failed. Each script answers with the server's clock, so that later calls can carry a deadline in it.
const LATE = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '0' and now > tonumber(ARGV[1]) then return {-1, now} end`;

// Adds a record to its user's index (KEYS[idx]): drops the entries past their time, and lets the index expire with
// its last entry. ARGV[at]: the record's key, ARGV[at + 1]: until.
const INDEX_ADD = `local function index_add(idx, member, untilMs, now)
  redis.call('ZADD', idx, untilMs, member)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #top == 2 then redis.call('PEXPIREAT', idx, top[2]) end
end`;

// Write, atomically: create only if absent, change only if present (never bring back a record that is gone).
// ARGV: deadline, create ("1"/"0"), ttl ms, clear ("1"/"0"), created at, user ("-": unchanged, "": none), until,
// info, number of fields set, then name/value pairs, then the names to remove. KEYS[2], when given (a single
// node), is the new user's index, updated in the same script. Answers the user the record had, when it changed.
const WRITE = luaScript(`${LATE}
${INDEX_ADD}
local exists = redis.call('EXISTS', KEYS[1])
if (ARGV[2] == '1') == (exists == 1) then return {0, now} end
if ARGV[4] == '1' then
  local names = redis.call('HKEYS', KEYS[1])
  for i = 1, #names do
    if string.sub(names[i], 1, 1) == '.' then redis.call('HDEL', KEYS[1], names[i]) end
  end
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], '@c', ARGV[5]) end
local previous = false
if ARGV[6] ~= '-' then
  previous = redis.call('HGET', KEYS[1], '@u')
  if previous == ARGV[6] then previous = false end
  if ARGV[6] == '' then
    redis.call('HDEL', KEYS[1], '@u', '@i', '@s')
  else
    redis.call('HSET', KEYS[1], '@u', ARGV[6])
    if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], '@i', ARGV[8]) end
    if #KEYS > 1 then index_add(KEYS[2], KEYS[1], ARGV[7], now) end
  end
end
local n = tonumber(ARGV[9])
local at = 10
for i = 1, n do
  redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
  at = at + 2
end
for i = at, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, now, previous}`);

// On a cluster, the index entry is written on its own, before the record. ARGV: member, until.
const INDEX = luaScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
${INDEX_ADD}
index_add(KEYS[1], ARGV[1], ARGV[2], now)
return 1`);

// The index's members, after dropping those past their time.
const INDEX_LIST = luaScript(`local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) * 1000)
return redis.call('ZRANGE', KEYS[1], 0, -1)`);

// Read a record and extend its lifetime, as one command, for clients that would write two commands apart, or when
// a user's record must keep when it was last seen. ARGV: ttl ms, seen at ("" for none).
const LOAD = luaScript(`local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  if ARGV[2] ~= '' then
    local seen = redis.call('HMGET', KEYS[1], '@u', '@s')
    if seen[1] and not (tonumber(ARGV[2]) - (tonumber(seen[2]) or 0) < 60000) then redis.call('HSET', KEYS[1], '@s', ARGV[2]) end
  end
end
return fields`);

// ARGV: deadline. Answers the user the record had ("" for none), whose index entry goes next.
const DESTROY = luaScript(`${LATE}
local user = redis.call('HGET', KEYS[1], '@u')
redis.call('UNLINK', KEYS[1])
return {1, now, user or ''}`);

// Removes a record only if it still belongs to the user (ARGV[1]).
const DESTROY_OF = luaScript(`if redis.call('HGET', KEYS[1], '@u') ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1])
return 1`);

/** Commands in flight at once when listing or ending a user's sessions. */
const USER_BATCH = 64;

/**
 * Sessions in Redis (single node or cluster), one hash per session with a TTL that follows the session's
 * lifetime. Reading a session is one round trip (`HGETALL` and `PEXPIRE`: pipelined through node-redis, a Lua script
 * through ioredis), writing one is one command (`EVALSHA`: a Lua script, atomic), and so is ending one.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const redis = await createClient({ url: process.env.REDIS_URL }).connect();
 * app.use(session(new StoreSessionBackend(new RedisStore(redis), keyRing)));
 * ```
 */
export class RedisStore implements SessionStore, UserIndex {
  /** What every key starts with. */
  readonly prefix: string;
  readonly #redis: RedisConnection;
  // Redis' clock minus this process's, learnt from each write; undefined until the first.
  #offset: number | undefined;

  constructor(client: RedisClientLike, options: RedisStoreOptions = {}) {
    checkOptionNames('RedisStore', options, ['prefix', 'maxPending']);
    const maxPending = options.maxPending ?? 10_000;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw invalidOption('RedisStore', 'maxPending', 'a whole number from 1');
    const prefix = options.prefix ?? 'sess:';
    if (typeof prefix !== 'string') throw invalidOption('RedisStore', 'prefix', 'a string');
    this.prefix = prefix;
    this.#redis = new RedisConnection('RedisStore', client, maxPending);
    Object.seal(this);
  }

  async load(key: string, ttlMs: number, seenAt?: number): Promise<StoreRecord | undefined> {
    const redisKey = this.prefix + key;
    const ttl = milliseconds(ttlMs);
    let reply: unknown;
    try {
      // One round trip either way. Sent together, two plain commands cost Redis less than the script does.
      reply =
        this.#redis.batches && seenAt === undefined
          ? (await Promise.all([this.#redis.run(redisKey, ['HGETALL', redisKey]), this.#redis.run(redisKey, ['PEXPIRE', redisKey, ttl])]))[0]
          : await this.#redis.script(LOAD, [redisKey], [ttl, seenAt === undefined ? '' : String(Math.floor(seenAt))]);
    } catch (err) {
      // Something else than a hash under the key (a value SET over it, say) is no session record: the session starts
      // afresh under a new id and the key is left alone, as for a record that does not decode. Not an outage.
      if (String((err as { message?: unknown })?.message).startsWith('WRONGTYPE')) return undefined;
      throw err;
    }
    // [name, value, ...]: HGETALL's answer, from the script or, with the map type asked for as an array (RESP3), the client.
    const pairs = Array.isArray(reply) ? (reply as unknown[]) : [];
    if (pairs.length === 0) return undefined;
    const fields = new Map<string, Uint8Array>();
    let createdAt: number | undefined;
    let user: string | undefined;
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const name = text(pairs[i]);
      const value = bytes(pairs[i + 1]);
      if (name.startsWith(DATA_PREFIX)) fields.set(name.slice(DATA_PREFIX.length), value);
      else if (name === CREATED_FIELD) createdAt = Number(value.toString('latin1'));
      else if (name === USER_FIELD) user = value.toString('utf8');
    }
    return { fields, createdAt, user };
  }

  async write(key: string, write: StoreWrite): Promise<boolean> {
    const until = String(Math.floor(write.until ?? 0));
    const args: (string | Buffer)[] = [
      this.#deadline(write.timeoutMs),
      write.create ? '1' : '0',
      milliseconds(write.ttlMs),
      write.clear ? '1' : '0',
      String(write.createdAt),
      write.user === undefined ? '-' : (write.user ?? ''),
      until,
      write.info ?? '',
      String(write.set.size),
    ];
    for (const [name, value] of write.set) args.push(DATA_PREFIX + name, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    for (const name of write.remove) args.push(DATA_PREFIX + name);
    const redisKey = this.prefix + key;
    const keys = [redisKey];
    if (typeof write.user === 'string') {
      const index = this.#indexKey(write.user);
      // A cluster keeps the index in another slot: its entry is written first, so the index never misses a record.
      if (this.#redis.cluster) await this.#redis.script(INDEX, [index], [redisKey, until]);
      else keys.push(index);
    }
    const reply = await this.#redis.script(WRITE, keys, args);
    const status = this.#status(reply);
    if (status === -1) throw new Error('the session record was not written: the server answered after the deadline');
    const previous = Array.isArray(reply) ? (reply as unknown[])[2] : undefined;
    if (status === 1 && previous !== undefined && previous !== null && previous !== 0 && previous !== false)
      await this.#unindex(text(previous), [redisKey]);
    return status === 1;
  }

  async destroy(key: string, timeoutMs?: number): Promise<void> {
    const redisKey = this.prefix + key;
    const reply = await this.#redis.script(DESTROY, [redisKey], [this.#deadline(timeoutMs)]);
    if (this.#status(reply) !== 1) throw new Error('the session record was not deleted: the server answered after the deadline');
    const user = text((reply as unknown[])[2]);
    if (user !== '') await this.#unindex(user, [redisKey]);
  }

  async sessionsOf(user: string): Promise<readonly UserRecord[]> {
    const members = await this.#members(user);
    const records: UserRecord[] = [];
    const stale: string[] = [];
    await inBatches(members, async (member) => {
      const reply = await this.#redis.run(member, ['HMGET', member, USER_FIELD, CREATED_FIELD, '@s', '@i']);
      const [owner, created, seen, info] = Array.isArray(reply) ? (reply as unknown[]) : [];
      if (owner === null || owner === undefined || text(owner) !== user) {
        stale.push(member);
        return;
      }
      records.push({
        key: member.slice(this.prefix.length),
        createdAt: numberOf(created),
        lastSeenAt: numberOf(seen),
        info: info === null || info === undefined ? undefined : text(info),
      });
    });
    await this.#unindex(user, stale);
    return records;
  }

  async destroyUser(user: string, keep?: string): Promise<number> {
    const members = await this.#members(user);
    const keepKey = keep === undefined ? undefined : this.prefix + keep;
    const gone: string[] = [];
    let removed = 0;
    await inBatches(members, async (member) => {
      if (member === keepKey) return;
      // Awaited before the sum is read: `removed += await …` would add to the value read before the wait.
      const ended = Number(await this.#redis.script(DESTROY_OF, [member], [user]));
      removed += ended;
      gone.push(member);
    });
    await this.#unindex(user, gone);
    return removed;
  }

  /** The keys a user's index lists, as Redis keys. */
  async #members(user: string): Promise<string[]> {
    const reply = await this.#redis.script(INDEX_LIST, [this.#indexKey(user)], []);
    return Array.isArray(reply) ? reply.map(text) : [];
  }

  /** Takes records (Redis keys) out of a user's index. */
  async #unindex(user: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    const index = this.#indexKey(user);
    await this.#redis.run(index, ['ZREM', index, ...members]);
  }

  #indexKey(user: string): string {
    return this.prefix + USER_INDEX + user;
  }

  /** A script's status; learns the server's clock from its answer (taken on receipt: errs towards earlier deadlines). */
  #status(reply: unknown): number {
    if (!Array.isArray(reply)) return Number.NaN;
    const serverNow = Number(reply[1]);
    if (Number.isFinite(serverNow)) this.#offset = serverNow - Date.now();
    return Number(reply[0]);
  }

  /** Half the timeout from now, in the server's time; "0" (none) until a first write told the server's clock. */
  #deadline(timeoutMs: number | undefined): string {
    if (timeoutMs === undefined || this.#offset === undefined) return '0';
    return String(Math.floor(Date.now() + this.#offset + timeoutMs / 2));
  }
}

/** Runs `each` over `items`, at most {@link USER_BATCH} at once: a user may have many sessions, and maxPending holds. */
async function inBatches<T>(items: readonly T[], each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += USER_BATCH) await Promise.all(items.slice(i, i + USER_BATCH).map(each));
}

function numberOf(value: unknown): number | undefined {
  if (value === null || value === undefined) return undefined;
  const n = Number(text(value));
  return Number.isFinite(n) ? n : undefined;
}
