import { luaScript } from './client.js';

// The Redis layout of a RedisStore record and the Lua scripts that read and write it, apart from the class that
// sends them: what a record looks like in Redis is here and only here.

// A record is a Redis hash: "@c" holds when the session began, and each session key is a field "." + key. With a
// user index, "@u" holds the record's user, "@s" when it was last seen and "@i" its description; the user's index
// is a sorted set under prefix + "user:" + user, of record keys scored by the latest each can live (ms).
export const CREATED_FIELD = '@c';
export const USER_FIELD = '@u';
export const DATA_PREFIX = '.';
export const USER_INDEX = 'user:';
// A renewed record's marker, a string under prefix + "renewed:" + the old key, for the renewal's grace.
export const RENEWED_MARKER = 'renewed:';

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
// info, the record's index member, maxBytes ("0": none), replaces ("": no, else the grace in ms), number of fields
// set, then name/value pairs, then the names to remove. With replaces (a single node), KEYS[2] is the record this
// one replaces (renew()): created only if that one still exists, which is removed in the same step, and, with a
// grace, KEYS[3] the marker that tells a request still carrying the replaced id that it was renewed. The last key, when there
// is one more, is the new user's index, updated in the same script. "@b" keeps the record's size (names and
// values of its data fields), so that maxBytes holds whatever the concurrency; a record without it is measured
// once. Answers the user the record had, when it changed, and the replaced record's user.
export const WRITE = luaScript(`${LATE}
${INDEX_ADD}
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[2] == '1') == exists then return {0, now} end
local replaces = ARGV[11] ~= ''
local grace = replaces and tonumber(ARGV[11]) or 0
if replaces and redis.call('EXISTS', KEYS[2]) == 0 then return {0, now} end
local keep = exists and ARGV[4] ~= '1'
local size = 0
if keep then
  size = tonumber(redis.call('HGET', KEYS[1], '@b'))
  if not size then
    size = 0
    local names = redis.call('HKEYS', KEYS[1])
    for i = 1, #names do
      if string.sub(names[i], 1, 1) == '.' then size = size + #names[i] - 1 + redis.call('HSTRLEN', KEYS[1], names[i]) end
    end
  end
end
local n = tonumber(ARGV[12])
local at = 13
for i = 1, n do
  local old = keep and redis.call('HSTRLEN', KEYS[1], ARGV[at]) or 0
  if old > 0 then size = size - old else size = size + #ARGV[at] - 1 end
  size = size + #ARGV[at + 1]
  at = at + 2
end
if keep then
  for i = at, #ARGV do
    local old = redis.call('HSTRLEN', KEYS[1], ARGV[i])
    if old > 0 then size = size - old - #ARGV[i] + 1 end
  end
end
local limit = tonumber(ARGV[10])
if limit > 0 and size > limit then return {-2, now, size} end
if ARGV[4] == '1' and exists then
  local names = redis.call('HKEYS', KEYS[1])
  for i = 1, #names do
    if string.sub(names[i], 1, 1) == '.' then redis.call('HDEL', KEYS[1], names[i]) end
  end
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], '@c', ARGV[5]) end
local previous = false
local indexes = replaces and (grace > 0 and 3 or 2) or 1
if ARGV[6] ~= '-' then
  previous = redis.call('HGET', KEYS[1], '@u')
  if previous == ARGV[6] then previous = false end
  if ARGV[6] == '' then
    redis.call('HDEL', KEYS[1], '@u', '@i', '@s')
  else
    redis.call('HSET', KEYS[1], '@u', ARGV[6])
    if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], '@i', ARGV[8]) end
    if #KEYS > indexes then index_add(KEYS[#KEYS], ARGV[9], ARGV[7], now) end
  end
end
at = 13
for i = 1, n do
  redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
  at = at + 2
end
for i = at, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('HSET', KEYS[1], '@b', size)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local replaced = false
if replaces then
  replaced = redis.call('HGET', KEYS[2], '@u')
  redis.call('UNLINK', KEYS[2])
  if grace > 0 then redis.call('SET', KEYS[3], '1', 'PX', grace) end
end
return {1, now, previous, replaced}`);

// On a cluster, the index entry is written on its own, before the record. ARGV: member, until.
export const INDEX = luaScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
${INDEX_ADD}
index_add(KEYS[1], ARGV[1], ARGV[2], now)
return 1`);

// The index's members, after dropping those past their time.
export const INDEX_LIST = luaScript(`local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) * 1000)
return redis.call('ZRANGE', KEYS[1], 0, -1)`);

// Read a record and extend its lifetime, as one command, for clients that would write two commands apart, or when
// a user's record must keep when it was last seen. ARGV: ttl ms, seen at ("" for none).
export const LOAD = luaScript(`local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  if ARGV[2] ~= '' then
    local seen = redis.call('HMGET', KEYS[1], '@u', '@s')
    if seen[1] and not (tonumber(ARGV[2]) - (tonumber(seen[2]) or 0) < 60000) then redis.call('HSET', KEYS[1], '@s', ARGV[2]) end
  end
end
return fields`);

// ARGV: deadline. Answers the user the record had ("" for none), whose index entry goes next, and whether there
// was a record.
export const DESTROY = luaScript(`${LATE}
local user = redis.call('HGET', KEYS[1], '@u')
local removed = redis.call('UNLINK', KEYS[1])
return {1, now, user or '', removed}`);

// Removes a record only if it still belongs to the user (ARGV[1]).
export const DESTROY_OF = luaScript(`if redis.call('HGET', KEYS[1], '@u') ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1])
return 1`);
