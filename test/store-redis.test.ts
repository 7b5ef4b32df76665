import t from 'tap'
import { RedisStore } from '../lib/redis/index.js'
import { storeContract } from '../lib/testing/index.js'
import { startRedis } from './redis-server.js'

const redis = await startRedis(t)
let stores = 0

// Each contract test gets an empty store: its own key prefix on the one server.
storeContract({
  test: (name, fn) => t.test(`redis store: ${name}`, fn),
  makeStore: async () => new RedisStore({ url: redis.url, keyPrefix: `contract${++stores}:` })
})
