import { checkOptionNames, invalidOption } from '../../options.js';
import { RedisConnection, luaScript, milliseconds, text, type RedisClientLike } from '../../redis/client.js';
import type { Revocation, RevocationStore } from './revocations.js';

/** Options of {@link RedisRevocationStore}. */
export interface RedisRevocationStoreOptions {
  /** Put before every key. @default 'revoked:' */
  readonly prefix?: string;
  /** Most commands waiting for Redis at once; past it a call fails at once. @default 10_000 */
  readonly maxPending?: number;
}

// An entry is "before" or "before:except". Keeps the one with the later "before", and the entry at least as long as
// asked. ARGV: the entry, its "before", ttl ms.
const REVOKE = luaScript(`local current = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[3])
local before = current and tonumber(string.match(current, '^%d+'))
if before and before > tonumber(ARGV[2]) then
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return 1`);

/**
 * Revocations of cookie sessions in Redis (single node or cluster; node-redis or ioredis, the client the app has):
 * one string key per revoked user, expiring once no cookie sealed before it can open.
 *
 * @example
 * ```ts
 * const cookies = CookieSessionBackend.private(keyRing, { userKey: 'userId', revocations: new RedisRevocationStore(redis) });
 * ```
 */
export class RedisRevocationStore implements RevocationStore {
  /** What every key starts with. */
  readonly prefix: string;
  readonly #redis: RedisConnection;

  constructor(client: RedisClientLike, options: RedisRevocationStoreOptions = {}) {
    const where = 'RedisRevocationStore';
    checkOptionNames(where, options, ['prefix', 'maxPending']);
    const prefix = options.prefix ?? 'revoked:';
    if (typeof prefix !== 'string') throw invalidOption(where, 'prefix', 'a string');
    const maxPending = options.maxPending ?? 10_000;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw invalidOption(where, 'maxPending', 'a whole number from 1');
    this.prefix = prefix;
    this.#redis = new RedisConnection(where, client, maxPending);
    Object.freeze(this);
  }

  async get(user: string): Promise<Revocation | undefined> {
    const key = this.prefix + user;
    const reply = await this.#redis.run(key, ['GET', key]);
    if (reply === null || reply === undefined) return undefined;
    const match = /^(\d{1,15})(?::(\d{1,15}))?$/.exec(text(reply));
    // Something else under the key fails closed, as an outage does: a revoked user must not slip through.
    if (match === null) throw new Error('the revocation entry is not one');
    return match[2] === undefined ? { before: Number(match[1]) } : { before: Number(match[1]), except: Number(match[2]) };
  }

  async set(user: string, revocation: Revocation, ttlMs: number): Promise<void> {
    const key = this.prefix + user;
    const before = String(Math.floor(revocation.before));
    const entry = revocation.except === undefined ? before : `${before}:${Math.floor(revocation.except)}`;
    await this.#redis.script(REVOKE, [key], [entry, before, milliseconds(ttlMs)]);
  }
}
