import t from 'tap'
import { RedisSessionLog } from '../lib/redis/index.js'
import { sessionLogContract } from '../lib/testing/index.js'
import { startRedis } from './redis-server.js'

// The session log on a real Redis passes the same contract as the in-process one.
const redis = await startRedis(t)
let n = 0
sessionLogContract({
  test: (name, fn) => t.test(name, fn),
  // Each test its own key space on the one server.
  makeLog: async ({ replay, claimTtlMs }) => new RedisSessionLog({ url: redis.url, keyPrefix: `contract-${n++}:`, replay, claimTtlMs, laneTtlMs: 2000 })
})
