import { RedisScript } from './script.js'

// The Redis store's changes to one session: each is one script over that session's keys
// (one Cluster slot), so it happens whole or not at all, also in the AOF. Times come from
// the caller; `updatedAt` still only grows (max(now, before + 1)), so a row's place in the
// list changes on every touch even when clocks of several nodes disagree.

/** KEYS row, generations · ARGV sessionId, agentId, now → {created 0|1, row fields} */
export const CREATE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'sessionId', ARGV[1], 'agentId', ARGV[2], 'createdAt', ARGV[3], 'updatedAt', ARGV[3], 'generation', 1, 'entries', 0)
redis.call('HSET', KEYS[2], ARGV[1], 1)
return {1, redis.call('HGETALL', KEYS[1])}
`)

/** KEYS row, transcript · ARGV now, preview or '', entry JSON… → nil | {agentId, updatedAt before, after} */
export const APPEND = new RedisScript(`
local row = redis.call('HMGET', KEYS[1], 'generation', 'entries', 'updatedAt', 'agentId')
if not row[1] then return false end
local n = tonumber(row[2])
for i = 3, #ARGV do
  n = n + 1
  redis.call('XADD', KEYS[2], row[1] .. '-' .. n, 'e', ARGV[i])
end
local updatedAt = string.format('%d', math.max(tonumber(ARGV[1]), tonumber(row[3]) + 1))
redis.call('HSET', KEYS[1], 'entries', n, 'updatedAt', updatedAt)
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'preview', ARGV[2]) end
return {row[4], row[3], updatedAt}
`)

/** KEYS row · ARGV now, then for label and epoch: keep|set|clear and the value → nil | {updatedAt before, row fields} */
export const PATCH = new RedisScript(`
local before = redis.call('HGET', KEYS[1], 'updatedAt')
if not before then return false end
for i, field in ipairs({'label', 'epoch'}) do
  local op = ARGV[i * 2]
  if op == 'set' then redis.call('HSET', KEYS[1], field, ARGV[i * 2 + 1])
  elseif op == 'clear' then redis.call('HDEL', KEYS[1], field) end
end
redis.call('HSET', KEYS[1], 'updatedAt', string.format('%d', math.max(tonumber(ARGV[1]), tonumber(before) + 1)))
return {before, redis.call('HGETALL', KEYS[1])}
`)

/** KEYS row, generations · ARGV new sessionId, now → nil | {old sessionId, updatedAt before, row fields} */
export const RESET = new RedisScript(`
local row = redis.call('HMGET', KEYS[1], 'sessionId', 'updatedAt', 'generation')
if not row[1] then return false end
local generation = tonumber(row[3]) + 1
redis.call('HSET', KEYS[1], 'sessionId', ARGV[1], 'generation', generation, 'entries', 0,
  'updatedAt', string.format('%d', math.max(tonumber(ARGV[2]), tonumber(row[2]) + 1)))
redis.call('HDEL', KEYS[1], 'preview', 'epoch')
redis.call('HSET', KEYS[2], ARGV[1], generation)
return {row[1], row[2], redis.call('HGETALL', KEYS[1])}
`)

/**
 * KEYS row, transcript, generations, then where to archive each, then the records set ·
 * ARGV seconds to keep the archive (0: drop at once) → nil | {sessionId, updatedAt,
 * agentId, {record names}}. The records are not archived: the caller deletes them.
 */
export const DELETE = new RedisScript(`
local row = redis.call('HMGET', KEYS[1], 'sessionId', 'updatedAt', 'agentId')
if not row[1] then return false end
local ttl = tonumber(ARGV[1])
for i = 1, 3 do
  if ttl == 0 then redis.call('DEL', KEYS[i])
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 3])
    redis.call('EXPIRE', KEYS[i + 3], ttl)
  end
end
local records = redis.call('SMEMBERS', KEYS[7])
redis.call('DEL', KEYS[7])
return {row[1], row[2], row[3], records}
`)

/**
 * KEYS records set · ARGV a record's name, its expiresAt or '', now → nil. The set lives
 * as long as its longest-lived record: for ever once one has no expiry.
 */
export const ADD_RECORD = new RedisScript(`
local ttl = redis.call('PTTL', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == '' then redis.call('PERSIST', KEYS[1])
elseif ttl == -2 or (ttl >= 0 and tonumber(ARGV[3]) + ttl < tonumber(ARGV[2])) then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
`)

/**
 * KEYS row, generations, transcript · ARGV which (current|given), sessionId, before
 * position or '', limit → nil (no row) | 0 (no such generation) | XREVRANGE entries.
 * One range read on the stream's radix tree: the cost is the page, not the transcript.
 */
export const READ = new RedisScript(`
local sessionId = ARGV[2]
if ARGV[1] == 'current' then
  sessionId = redis.call('HGET', KEYS[1], 'sessionId')
  if not sessionId then return false end
elseif redis.call('EXISTS', KEYS[1]) == 0 then return false end
local generation = redis.call('HGET', KEYS[2], sessionId)
if not generation then return 0 end
local newest = generation
if ARGV[3] ~= '' then newest = '(' .. generation .. '-' .. ARGV[3] end
return redis.call('XREVRANGE', KEYS[3], newest, generation, 'COUNT', ARGV[4])
`)
