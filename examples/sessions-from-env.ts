// Where the example gateway keeps sessions, from the environment:
//   neither set       a file store in GATEWAY_DATA_DIR (./data): one process
//   DATABASE_URL      PostgreSQL for the store (migrated first with `npm run postgres:migrate`)
//   REDIS_URL         the Redis session log, so any number of processes on that Redis behave
//                     as one, and Redis for the store too unless DATABASE_URL is set;
//                     REDIS_KEY_PREFIX (fsg:), LANE_TTL_MS (10000), ORPHAN_CHECK_MS (5000)
import { resolve } from 'node:path'
import { FileStore, type SessionLog, type SessionStore } from 'fastify-session-gateway'
import { PostgresStore } from 'fastify-session-gateway/postgres'
import { RedisSessionLog, RedisStore } from 'fastify-session-gateway/redis'
import { checkDatabase, checkDataDir, envInteger, envText, StartError } from './startup.js'

export interface Sessions {
  store: SessionStore
  /** Absent: the gateway's own in-process log. */
  sessionLog?: SessionLog
  /** How often this process looks for turns of a dead process (the plugin's `orphanCheckMs`). */
  orphanCheckMs?: number
  /** Says where sessions are, for the start-up lines. */
  description: string
}

/** How long the start-up check waits for Redis before it gives up. */
const REDIS_CHECK_MS = 5000

export async function sessionsFromEnv (): Promise<Sessions> {
  const databaseUrl = envText('DATABASE_URL', 'the file store in GATEWAY_DATA_DIR')
  const redisUrl = envText('REDIS_URL', 'sessions in GATEWAY_DATA_DIR')
  let database: Sessions | undefined
  if (databaseUrl !== undefined) {
    // Sessions in PostgreSQL: the database must answer, with its tables made, before we listen.
    const store = new PostgresStore({ connectionString: databaseUrl })
    await checkDatabase(async () => { await store.open() })
    database = { store, description: 'sessions in PostgreSQL (DATABASE_URL)' }
  }
  if (redisUrl === undefined) {
    if (database !== undefined) return database
    const dataDir = envText('GATEWAY_DATA_DIR', './data') ?? './data'
    await checkDataDir(dataDir, 'GATEWAY_DATA_DIR')
    return { store: new FileStore({ dir: dataDir }), description: `sessions in ${resolve(dataDir)}` }
  }
  const shown = withoutPassword(redisUrl)
  const keyPrefix = envText('REDIS_KEY_PREFIX', 'fsg:') ?? 'fsg:'
  // How late a dead process's turn is recorded as ended, and its session's lane freed.
  const laneTtlMs = envInteger('LANE_TTL_MS', 10_000, 100, 600_000)
  const orphanCheckMs = envInteger('ORPHAN_CHECK_MS', 5000, 10, 3_600_000)
  const redisStore = new RedisStore({ url: redisUrl, keyPrefix })
  const sessionLog = new RedisSessionLog({ url: redisUrl, keyPrefix, laneTtlMs })
  // A Redis that is not there is said at once, not at the first turn.
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      redisStore.list({ limit: 1 }),
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_CHECK_MS} ms`)), REDIS_CHECK_MS) })
    ])
  } catch (err) {
    throw new StartError(`REDIS_URL=${shown} cannot be used (${(err as Error).message}): start Redis there, fix REDIS_URL, or unset it to keep sessions in GATEWAY_DATA_DIR`)
  } finally {
    clearTimeout(timer)
  }
  if (database !== undefined) {
    await redisStore.close()
    return { ...database, sessionLog, orphanCheckMs, description: `${database.description}, session log in Redis at ${shown} (key prefix ${keyPrefix})` }
  }
  return { store: redisStore, sessionLog, orphanCheckMs, description: `sessions in Redis at ${shown} (key prefix ${keyPrefix})` }
}

/** The URL as it may be printed: a password in it is replaced by `***`. */
function withoutPassword (url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new StartError('REDIS_URL is not a URL: set it like redis://127.0.0.1:6379, or unset it')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new StartError(`REDIS_URL must start with redis:// or rediss://, not ${parsed.protocol}//: set it like redis://127.0.0.1:6379, or unset it`)
  }
  if (parsed.password !== '') parsed.password = '***'
  return parsed.toString()
}
