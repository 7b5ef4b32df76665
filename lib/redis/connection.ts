import type { Redis, RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../errors.js'

// How the Redis adapters reach Redis: a client the application already has (it keeps
// ownership and closes it), or a URL (we make the client, and close it with the gateway).
// ioredis is an optional peer dependency, loaded only when a URL is given.

export interface RedisConnectionOptions {
  /** A connected ioredis client (or Cluster) of the application's; it stays the application's to close. */
  client?: Redis
  /** Else a `redis://` or `rediss://` URL; the adapter makes its client, and closes it. */
  url?: string
  /** ioredis options for a client made from `url`. */
  redisOptions?: RedisOptions
  /** Put in front of every key, to share a Redis with other applications. Default `fsg:`. */
  keyPrefix?: string
}

/** A client and whether we made it (so we close it), plus a way to make more like it. */
export interface RedisConnection {
  client: Redis
  owned: boolean
  /** Another connection to the same server (a subscriber needs its own), with `override` options. */
  duplicate: (override?: RedisOptions) => Redis
  prefix: string
}

export const DEFAULT_KEY_PREFIX = 'fsg:'

/** Refuses options that name no Redis, at once (the connection itself is made later). */
export function checkConnection (options: RedisConnectionOptions, who: string): void {
  if (options.client === undefined && options.url === undefined) {
    throw new InvalidOptionError(who, 'a Redis to use: { client } (an ioredis client) or { url } ("redis://…")')
  }
}

export async function connect (options: RedisConnectionOptions, who: string): Promise<RedisConnection> {
  checkConnection(options, who)
  const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  if (options.client !== undefined) {
    const client = options.client
    // A Cluster's duplicate takes startup nodes first, and subscribes through its own nodes: it keeps its options.
    const duplicate = (override?: RedisOptions): Redis => client.isCluster ? client.duplicate() : client.duplicate(override)
    return { client, owned: false, duplicate, prefix }
  }
  let Redis: typeof import('ioredis').Redis
  try {
    ({ Redis } = await import('ioredis'))
  /* c8 ignore next 3: only where the optional peer dependency is not installed */
  } catch {
    throw new InvalidOptionError(who, 'the ioredis package, which is not installed: npm install ioredis')
  }
  const url = options.url as string
  const make = (override?: RedisOptions): Redis => {
    const client = new Redis(url, { maxRetriesPerRequest: 2, ...options.redisOptions, ...override })
    // A lost connection is retried by ioredis and reported by the commands that needed it.
    client.on('error', () => {})
    return client
  }
  return { client: make(), owned: true, duplicate: make, prefix }
}
