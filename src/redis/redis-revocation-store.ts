import { checkOptionNames, invalidOption } from '../core/options.js';
import { RedisConnection, luaScript, milliseconds, text, type RedisClientLike } from './client.js';
import { REVOKE_ALL, type Revocation, type RevocationStore } from '../backends/cookie/revocations.js';

/** Options of {@link RedisRevocationStore}. */
export interface RedisRevocationStoreOptions {
  /** Put before every key. @default 'revoked:' */
  readonly prefix?: string;
  /** Most commands waiting for Redis at once; past it a call fails at once. @default 10_000 */
  readonly maxPending?: number;
}

// An entry is "before" or "before:except". Keeps the two revocations as one (mergeRevocations): the later
// "before", and its "except" only if the other spares that session too; an entry that is not one revokes every
// session, so it spares none. Keeps the entry at least as long as asked. ARGV: before, except ("" for none),
// ttl ms. Answers the entry it keeps.
const REVOKE = luaScript(`local current = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[3])
local before = tonumber(ARGV[1])
local except = nil
if ARGV[2] ~= '' then except = tonumber(ARGV[2]) end
if current then
  local b, e = string.match(current, '^(%d+):?(%d*)$')
  if b then
    b = tonumber(b)
    if e == '' then e = nil else e = tonumber(e) end
    local eb, ee = b, e
    if b > before then
      eb, ee = before, except
      before, except = b, e
    end
    if except and except < eb and except ~= ee then except = nil end
  else
    except = nil
  end
end
local entry = string.format('%.0f', before)
if except then entry = entry .. ':' .. string.format('%.0f', except) end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > ttl then ttl = pttl end
redis.call('SET', KEYS[1], entry, 'PX', ttl)
return entry`);

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
    return reply === null || reply === undefined ? undefined : parseEntry(text(reply));
  }

  async set(user: string, revocation: Revocation, ttlMs: number): Promise<Revocation> {
    const key = this.prefix + user;
    const except = revocation.except === undefined ? '' : String(Math.floor(revocation.except));
    const kept = await this.#redis.script(REVOKE, [key], [String(Math.floor(revocation.before)), except, milliseconds(ttlMs)]);
    return parseEntry(text(kept));
  }
}

/** An entry's revocation; something else under the key revokes every session: a revoked user must not slip through. */
function parseEntry(entry: string): Revocation {
  const match = /^(\d{1,15})(?::(\d{1,15}))?$/.exec(entry);
  if (match === null) return REVOKE_ALL;
  return match[2] === undefined ? { before: Number(match[1]) } : { before: Number(match[1]), except: Number(match[2]) };
}
