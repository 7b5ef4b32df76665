import { InvalidOptionError, isGatewayError, StoreUnavailableError } from '../errors.js'

// How the PostgreSQL adapters reach the database: a pool the application already has (it
// keeps ownership and ends it), or a connection string (we make the pool, and end it with
// the store). `pg` is an optional peer dependency, loaded only for a connection string.
// The pool is typed by the few methods we call, so these declarations need no @types/pg:
// a `pg.Pool` fits them.

/** A query's answer: what `pg` resolves with. */
export interface PgResult {
  rows: Array<Record<string, unknown>>
  rowCount: number | null
}

export interface PgQueryable {
  query: (text: string, values?: unknown[]) => Promise<PgResult>
}

/** A client checked out of a pool, for a transaction. */
export interface PgPoolClient extends PgQueryable {
  release: (err?: Error | boolean) => void
}

/** What we use of a `pg.Pool`. */
export interface PgPool extends PgQueryable {
  connect: () => Promise<PgPoolClient>
  end: () => Promise<void>
}

export interface PostgresConnectionOptions {
  /** A `pg.Pool` of the application's; it stays the application's to end. */
  pool?: PgPool
  /** Else a `postgres://` URL: the store makes a pool of its own, and ends it on `close()`. */
  connectionString?: string
  /** For a pool made from `connectionString`: how many connections it may open (default 10). */
  maxConnections?: number
  /** The schema the tables live in (default `public`); a lower-case SQL name. */
  schema?: string
  /** Put in front of every table's name, to share a schema with other applications (default `fsg_`). */
  tablePrefix?: string
}

export const DEFAULT_SCHEMA = 'public'
export const DEFAULT_TABLE_PREFIX = 'fsg_'

/** Plain lower-case SQL names, so they need no escaping: a schema (PostgreSQL allows 63 bytes) and a prefix short enough for the longest table and index name. */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/
const PREFIX_PATTERN = /^(?:[a-z_][a-z0-9_]{0,29})?$/

/** The quoted names of a store's tables. */
export interface Tables {
  schema: string
  prefix: string
  /** `"schema"."<prefix>name"` */
  name: (table: string) => string
}

export function tablesOf (options: PostgresConnectionOptions, who: string): Tables {
  const schema = options.schema ?? DEFAULT_SCHEMA
  const prefix = options.tablePrefix ?? DEFAULT_TABLE_PREFIX
  if (typeof schema !== 'string' || !SCHEMA_PATTERN.test(schema)) throw new InvalidOptionError(`${who} schema`, 'a lower-case SQL name: a-z, 0-9 and _, not starting with a digit, at most 63 characters')
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) throw new InvalidOptionError(`${who} tablePrefix`, 'a-z, 0-9 and _, not starting with a digit, at most 30 characters')
  return { schema, prefix, name: table => `"${schema}"."${prefix}${table}"` }
}

/** A pool and whether we made it (so we end it). */
export interface PgConnection {
  pool: PgPool
  owned: boolean
}

/** Refuses options that name no database, at once (the pool itself is made later). */
export function checkConnection (options: PostgresConnectionOptions | undefined, who: string): void {
  const given = options?.pool
  if (given !== undefined && (typeof given.query !== 'function' || typeof given.connect !== 'function')) {
    throw new InvalidOptionError(who, '{ pool } must be a pg.Pool')
  }
  if (given === undefined && (typeof options?.connectionString !== 'string' || options.connectionString === '')) {
    throw new InvalidOptionError(who, 'a database to use: { pool } (a pg.Pool) or { connectionString } ("postgres://…")')
  }
  const max = options?.maxConnections
  if (max !== undefined && !(Number.isSafeInteger(max) && max >= 1)) throw new InvalidOptionError(`${who} maxConnections`, 'a whole number, 1 or more')
}

export async function connect (options: PostgresConnectionOptions, who: string): Promise<PgConnection> {
  checkConnection(options, who)
  if (options.pool !== undefined) return { pool: options.pool, owned: false }
  let Pool: typeof import('pg').Pool
  try {
    ({ default: { Pool } } = await import('pg'))
  /* c8 ignore next 3: only where the optional peer dependency is not installed */
  } catch {
    throw new InvalidOptionError(who, 'the pg package, which is not installed: npm install pg')
  }
  const pool = new Pool({ connectionString: options.connectionString, max: options.maxConnections ?? 10 })
  // An idle connection the server dropped: the pool replaces it, and the next query that
  // cannot be answered reports it. Unhandled, this event would end the process.
  pool.on('error', () => {})
  return { pool, owned: true }
}

/**
 * A failure to reach PostgreSQL (refused, cut, shutting down, out of connections) as the
 * 503 every transport answers: try again once it is back. An error a statement made (a
 * SQLSTATE of another class) and our own errors stay what they are.
 */
export function unreachable (err: unknown): unknown {
  if (isGatewayError(err)) return err
  const code = (err as { code?: unknown } | null)?.code
  const ofStatement = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57P|53)/.test(code)
  return ofStatement ? err : new StoreUnavailableError(err instanceof Error ? err.message : String(err))
}

/** The pool, its clients and their queries, with failures to reach the server made 503s. */
export function reporting (pool: PgPool): PgPool {
  const fail = (err: unknown): never => { throw unreachable(err) }
  return {
    query: async (text, values) => await pool.query(text, values).catch(fail),
    connect: async () => {
      const client = await pool.connect().catch(fail)
      return {
        query: async (text, values) => await client.query(text, values).catch(fail),
        release: err => { client.release(err) }
      }
    },
    end: pool.end.bind(pool)
  }
}

/** Runs `work` in one transaction on a client of `pool`: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T> (pool: PgPool, work: (client: PgQueryable) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let failure: Error | undefined
  let result: T
  try {
    await client.query('BEGIN')
    result = await work(client)
    await client.query('COMMIT')
  } catch (err) {
    failure = err as Error
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release(failure) // a connection that failed is not given back to the pool
  }
  return result
}
