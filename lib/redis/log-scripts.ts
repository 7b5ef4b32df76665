// The Lua scripts of the Redis session log. Each runs atomically on the one Redis node that
// holds the session's keys (they share a hash tag), so an append's checks, its XADD and its
// PUBLISH happen as one step. Keys and arguments are listed above each script.

/**
 * Seeds a session's position if Redis knows none (the first use, or Redis lost its data;
 * the hash may hold only a lane's fence counter then).
 * KEYS: meta. ARGV: epoch, seq, ttl ms. Returns { epoch, seq } as they now are.
 */
export const SEED = `
if redis.call('HEXISTS', KEYS[1], 'e') == 0 then
  redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HMGET', KEYS[1], 'e', 's')
`

/**
 * Appends events that must continue the log, under the turn's lane when one is given.
 * KEYS: meta, log, lane, abort.
 * ARGV: epoch, first seq, lane value ('' for none), max length, ttl ms, lane ttl ms,
 *       channel, message to publish, sharded (1/0), then one JSON event per event.
 * Returns 'OK', 'ABORT' (appended, and the turn has been asked to stop), or a refusal:
 * 'LOST' (Redis has no position: it lost its data), 'EPOCH', 'GAP', 'FENCED'.
 */
export const APPEND = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return 'LOST' end
if epoch ~= ARGV[1] then return 'EPOCH' end
local first = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 's')) + 1 ~= first then return 'GAP' end
local answer = 'OK'
if ARGV[3] ~= '' then
  if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 'FENCED' end
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
  local run = string.match(ARGV[3], '^(.*)|')
  if redis.call('GET', KEYS[4]) == run then answer = 'ABORT' end
end
local count = #ARGV - 9
for i = 1, count do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], (first + i - 1) .. '-0', 'e', ARGV[9 + i])
end
redis.call('HSET', KEYS[1], 's', first + count - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[9] == '1' then redis.call('SPUBLISH', ARGV[7], ARGV[8]) else redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return answer
`

/**
 * A new life of the log: its position set, its events dropped, an abort flag cleared.
 * KEYS: meta, log, abort. ARGV: epoch, seq, ttl ms, channel, message ('' for none), sharded.
 */
export const RESTART = `
redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3])
if ARGV[5] ~= '' then
  if ARGV[6] == '1' then redis.call('SPUBLISH', ARGV[4], ARGV[5]) else redis.call('PUBLISH', ARGV[4], ARGV[5]) end
end
return 'OK'
`

/**
 * Takes the lane if it is free, with the next fence.
 * KEYS: meta, lane, abort. ARGV: run id, lane ttl ms.
 * Returns { 'OK', lane value, epoch, seq } (no epoch when Redis holds no position) or
 * { 'BUSY', holder's value, epoch, seq }.
 */
export const ACQUIRE = `
local held = redis.call('GET', KEYS[2])
local position = redis.call('HMGET', KEYS[1], 'e', 's')
if held then
  return { 'BUSY', held, position[1] or '', position[2] or '0' }
end
local value = ARGV[1] .. '|' .. redis.call('HINCRBY', KEYS[1], 'f', 1)
redis.call('SET', KEYS[2], value, 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return { 'OK', value, position[1] or false, position[2] or '0' }
`

/**
 * Gives the lane up (only the holder can) and tells waiting nodes.
 * KEYS: lane, abort. ARGV: lane value, channel, message, sharded.
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[4] == '1' then redis.call('SPUBLISH', ARGV[2], ARGV[3]) else redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1
`

/** Keeps a held lane alive. KEYS: lane. ARGV: lane value, lane ttl ms. Returns 1, or 0 when it is no longer ours. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`

/**
 * Asks the running turn (if it is the given run, when one is given) to stop: a flag its next
 * append sees, and a message its node hears at once.
 * KEYS: lane, abort. ARGV: run id or '', lane ttl ms, channel, message prefix, sharded.
 * Returns the run id asked to stop, or false.
 */
export const ABORT = `
local held = redis.call('GET', KEYS[1])
if not held then return false end
local run = string.match(held, '^(.*)|')
if ARGV[1] ~= '' and ARGV[1] ~= run then return false end
redis.call('SET', KEYS[2], run, 'PX', ARGV[2])
local message = ARGV[4] .. cjson.encode(run) .. '}'
if ARGV[5] == '1' then redis.call('SPUBLISH', ARGV[3], message) else redis.call('PUBLISH', ARGV[3], message) end
return run
`

/**
 * Claims an idempotency key, or names the run that holds it (atomically: no gap between
 * a refused SET and the GET in which the claim could expire).
 * KEYS: claim. ARGV: run id, ttl ms. Returns false when this call claimed it, else the holder.
 */
export const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return false end
return redis.call('GET', KEYS[1])
`
