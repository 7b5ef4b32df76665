// `fastify-session-gateway/redis`: many gateway processes on one Redis.
export { RedisSessionLog, type RedisSessionLogOptions } from './session-log.js'
export { RedisStore, type RedisStoreOptions } from './store.js'
export type { RedisConnectionOptions } from './connection.js'
