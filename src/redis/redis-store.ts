import { checkOptionNames, invalidOption } from '../core/options.js';
import { RedisConnection, bytes, milliseconds, text, type RedisClientLike } from './client.js';
import {
  CREATED_FIELD,
  DATA_PREFIX,
  DESTROY,
  DESTROY_OF,
  INDEX,
  INDEX_LIST,
  LOAD,
  RENEWED_MARKER,
  USER_FIELD,
  USER_INDEX,
  WRITE,
} from './store-scripts.js';
import { recordTooLarge, type SessionStore, type StoreRecord, type StoreWrite, type UserIndex, type UserRecord } from '../backends/store/store.js';

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

/** What `load` answers for a key renewed within its grace. */
const RENEWED: StoreRecord = Object.freeze({ fields: new Map<string, Uint8Array>(), renewed: true });

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
 * const redis = createClient({ url: process.env.REDIS_URL });
 * redis.on('error', (err) => console.error('redis:', err.message)); // without it, a lost Redis crashes the process
 * await redis.connect();
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
      if (isWrongType(err)) return undefined;
      throw err;
    }
    // [name, value, ...]: HGETALL's answer, from the script or, with the map type asked for as an array (RESP3), the client.
    const pairs = Array.isArray(reply) ? (reply as unknown[]) : [];
    // No record: a second look, for its renewal's marker, only then (a stale cookie, not most requests).
    if (pairs.length === 0) {
      const marker = this.prefix + RENEWED_MARKER + key;
      return Number(await this.#redis.run(marker, ['EXISTS', marker])) === 1 ? RENEWED : undefined;
    }
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
    const redisKey = this.prefix + key;
    const until = String(Math.floor(write.until ?? 0));
    // A cluster keeps the replaced record in another slot: it is removed first, and the new one is created only if
    // it was there. A failure in between signs the user out; it never leaves both records, nor revives an ended one.
    const replaced = write.replaces === undefined ? undefined : this.prefix + write.replaces;
    const grace = replaced === undefined || write.graceMs === undefined || write.graceMs <= 0 ? 0 : Math.ceil(write.graceMs);
    const marker = grace > 0 ? this.prefix + RENEWED_MARKER + (write.replaces as string) : undefined;
    if (replaced !== undefined && this.#redis.cluster) {
      // The marker first: a request that finds the old record gone finds it.
      if (marker !== undefined) await this.#redis.run(marker, ['SET', marker, '1', 'PX', String(grace)]);
      if (!(await this.#destroy(replaced, write.timeoutMs))) {
        // Ended meanwhile, not renewed: its id is unknown again, as it is on a single node.
        if (marker !== undefined) await this.#redis.run(marker, ['DEL', marker]);
        return false;
      }
    }
    const atomic = replaced !== undefined && !this.#redis.cluster;
    const args: (string | Buffer)[] = [
      this.#deadline(write.timeoutMs),
      write.create ? '1' : '0',
      milliseconds(write.ttlMs),
      write.clear ? '1' : '0',
      String(write.createdAt),
      write.user === undefined ? '-' : (write.user ?? ''),
      until,
      write.info ?? '',
      // The index lists a record by its key as this store names it, never with a client's own key prefix (ioredis'
      // keyPrefix): the client adds that again to each key it is sent.
      redisKey,
      String(write.maxBytes ?? 0),
      atomic ? String(grace) : '',
      String(write.set.size),
    ];
    for (const [name, value] of write.set) args.push(DATA_PREFIX + name, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    for (const name of write.remove) args.push(DATA_PREFIX + name);
    const keys = atomic ? (marker === undefined ? [redisKey, replaced] : [redisKey, replaced, marker]) : [redisKey];
    if (typeof write.user === 'string') {
      const index = this.#indexKey(write.user);
      // A cluster keeps the index in another slot: its entry is written first, so the index never misses a record.
      if (this.#redis.cluster) await this.#redis.script(INDEX, [index], [redisKey, until]);
      else keys.push(index);
    }
    const reply = await this.#redis.script(WRITE, keys, args);
    const status = this.#status(reply);
    if (status === -1) throw new Error('the session record was not written: the server answered after the deadline');
    if (status === -2) throw recordTooLarge(Number((reply as unknown[])[2]), write.maxBytes as number);
    const [, , previous, replacedUser] = Array.isArray(reply) ? (reply as unknown[]) : [];
    if (status === 1 && isUser(previous)) await this.#unindex(text(previous), [redisKey]);
    if (status === 1 && replaced !== undefined && isUser(replacedUser)) await this.#unindex(text(replacedUser), [replaced]);
    return status === 1;
  }

  async destroy(key: string, timeoutMs?: number): Promise<void> {
    await this.#destroy(this.prefix + key, timeoutMs);
  }

  /** Removes a record and its index entry; answers whether there was one. */
  async #destroy(redisKey: string, timeoutMs: number | undefined): Promise<boolean> {
    const reply = await this.#redis.script(DESTROY, [redisKey], [this.#deadline(timeoutMs)]);
    if (this.#status(reply) !== 1) throw new Error('the session record was not deleted: the server answered after the deadline');
    const [, , user, removed] = reply as unknown[];
    if (text(user) !== '') await this.#unindex(text(user), [redisKey]);
    return Number(removed) > 0;
  }

  async sessionsOf(user: string): Promise<readonly UserRecord[]> {
    const members = await this.#members(user);
    const records: UserRecord[] = [];
    const stale: string[] = [];
    await inBatches(members, async ({ entry, key }) => {
      const reply = await this.#redis.run(key, ['HMGET', key, USER_FIELD, CREATED_FIELD, '@s', '@i']);
      const [owner, created, seen, info] = Array.isArray(reply) ? (reply as unknown[]) : [];
      if (owner === null || owner === undefined || text(owner) !== user) {
        stale.push(entry);
        return;
      }
      records.push({
        key: key.slice(this.prefix.length),
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
    await inBatches(members, async ({ entry, key }) => {
      if (key === keepKey) return;
      // Awaited before the sum is read: `removed += await …` would add to the value read before the wait.
      const ended = Number(await this.#redis.script(DESTROY_OF, [key], [user]));
      removed += ended;
      gone.push(entry);
    });
    await this.#unindex(user, gone);
    return removed;
  }

  /**
   * A user's index: each entry as stored, and the record's key as this store names it. Entries that 0.1 wrote
   * through a client with a key prefix of its own (ioredis' keyPrefix) carry that prefix: it is taken off, since
   * the client adds it again.
   */
  async #members(user: string): Promise<{ entry: string; key: string }[]> {
    const reply = await this.#redis.script(INDEX_LIST, [this.#indexKey(user)], []);
    const clientPrefix = this.#redis.keyPrefix;
    const prefixed = clientPrefix + this.prefix;
    return (Array.isArray(reply) ? reply.map(text) : []).map((entry) => ({
      entry,
      key: clientPrefix !== '' && entry.startsWith(prefixed) ? entry.slice(clientPrefix.length) : entry,
    }));
  }

  /** Takes records out of a user's index, by their entries. */
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

/** A user id in a script's answer: Lua's false comes back as null (node-redis) or 0 / false, depending on the client. */
function isUser(value: unknown): boolean {
  return value !== undefined && value !== null && value !== 0 && value !== false && text(value) !== '';
}

/**
 * Redis' WRONGTYPE error, as Redis 7 reports it (`WRONGTYPE …`) and as Redis before 7 wraps it when a script
 * raised it (`ERR Error running script (call to f_…): @user_script:…: WRONGTYPE …`).
 */
export function isWrongType(err: unknown): boolean {
  const message = String((err as { message?: unknown } | null)?.message);
  return message.startsWith('WRONGTYPE') || (message.startsWith('ERR Error running script') && message.includes('WRONGTYPE'));
}

function numberOf(value: unknown): number | undefined {
  if (value === null || value === undefined) return undefined;
  const n = Number(text(value));
  return Number.isFinite(n) ? n : undefined;
}
