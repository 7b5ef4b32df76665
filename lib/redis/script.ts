import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * A Lua script run by its hash (EVALSHA), sent whole (EVAL) only when the server does not
 * know it yet: after a restart, a failover, or on a Cluster node it has not run on.
 * Nothing is registered on the client, which may be the application's.
 */
export class RedisScript {
  readonly sha: string

  constructor (readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex')
  }

  async run (client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err
      return await client.eval(this.lua, keys.length, ...keys, ...args)
    }
  }
}
