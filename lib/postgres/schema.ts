import { StoreSchemaError } from '../errors.js'
import { connect, inTransaction, tablesOf, type PgQueryable, type PostgresConnectionOptions, type Tables } from './connection.js'

// The tables of the PostgreSQL store, made by an explicit, versioned migration: never by
// the store on first use. Each migration runs once, in order, in one transaction with the
// row that records it, so a schema is always at one version; a later change to the tables
// is a new entry at the end of MIGRATIONS, never an edit of one that has shipped.

interface Migration {
  version: number
  description: string
  statements: (tables: Tables) => string[]
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'sessions, generations, entries and records',
    statements: ({ name, prefix }) => [
      // The row of a session key: the generation it points at now. `length` counts that
      // generation's entries (an append takes its seqs from it, under the row's lock); the
      // folded columns are the label and preview lower-cased as JavaScript does it, so a
      // search matches exactly what the other stores match, whatever the database's locale.
      // Keys compare by their bytes (COLLATE "C"), as JavaScript orders them, not by the locale's rules.
      `CREATE TABLE ${name('sessions')} (
        key text COLLATE "C" PRIMARY KEY,
        session_id uuid NOT NULL UNIQUE,
        agent_id text NOT NULL,
        label text,
        label_folded text,
        preview text,
        preview_folded text,
        epoch text,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        length bigint NOT NULL DEFAULT 0
      )`,
      // Listing: newest first, ties by key, from a keyset cursor; all sessions, or one agent's.
      `CREATE INDEX "${prefix}sessions_recent" ON ${name('sessions')} (updated_at DESC, key)`,
      `CREATE INDEX "${prefix}sessions_agent_recent" ON ${name('sessions')} (agent_id, updated_at DESC, key)`,
      // Every transcript generation a key has had. A reset adds one, and writes down how
      // many entries the one it leaves has (`length`: null while current, the row has it);
      // a delete archives the key's generations (deleted_at), keeping their entries, as the
      // file store keeps a deleted session's files.
      `CREATE TABLE ${name('generations')} (
        session_id uuid PRIMARY KEY,
        key text COLLATE "C" NOT NULL,
        agent_id text NOT NULL,
        created_at bigint NOT NULL,
        length bigint,
        deleted_at bigint
      )`,
      `CREATE INDEX "${prefix}generations_key" ON ${name('generations')} (key)`,
      // One row per transcript entry, its JSON exactly as given; seq counts from 1 in each
      // generation with no gaps, so a page of history is a range of the key (session_id, seq)
      // known before it is read: it costs its own rows, however long the transcript.
      `CREATE TABLE ${name('entries')} (
        session_id uuid NOT NULL REFERENCES ${name('generations')} (session_id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        entry json NOT NULL,
        PRIMARY KEY (session_id, seq)
      )`,
      `CREATE TABLE ${name('records')} (
        kind text NOT NULL,
        id text NOT NULL,
        value json NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, id)
      )`
    ]
  },
  {
    version: 2,
    description: 'records: the session each belongs to, and when it expires',
    // A delete of a session deletes its records by the first index; a sweep finds expired ones by the second.
    statements: ({ name, prefix }) => [
      `ALTER TABLE ${name('records')} ADD COLUMN IF NOT EXISTS session_key text COLLATE "C"`,
      `ALTER TABLE ${name('records')} ADD COLUMN IF NOT EXISTS expires_at bigint`,
      `CREATE INDEX IF NOT EXISTS "${prefix}records_session" ON ${name('records')} (session_key) WHERE session_key IS NOT NULL`,
      `CREATE INDEX IF NOT EXISTS "${prefix}records_expiry" ON ${name('records')} (expires_at) WHERE expires_at IS NOT NULL`
    ]
  }
]

/** The version of the tables this package reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

export interface MigrateResult {
  /** The version the schema was at (0: no tables). */
  from: number
  /** The version it is at now: `SCHEMA_VERSION`. */
  to: number
}

/**
 * Creates the store's tables, or brings them to this package's version. Safe to run any
 * number of times, from several processes at once (they take turns on an advisory lock);
 * a schema already at this version is left as it is. The database user needs the right
 * to create tables in the schema (and to create the schema, when it does not exist).
 */
export async function migrate (options: PostgresConnectionOptions): Promise<MigrateResult> {
  const tables = tablesOf(options, 'migrate')
  const { pool, owned } = await connect(options, 'migrate')
  try {
    return await inTransaction(pool, async client => await migrateIn(client, tables))
  } finally {
    if (owned) await pool.end()
  }
}

async function migrateIn (client: PgQueryable, tables: Tables): Promise<MigrateResult> {
  const { name, schema } = tables
  // One migration at a time per schema, until this transaction ends.
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`fastify-session-gateway migrate ${schema}`])
  // Not CREATE SCHEMA IF NOT EXISTS: that needs the right to create schemas even when it exists.
  const { rows: schemas } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
  if (schemas.length === 0) await client.query(`CREATE SCHEMA "${schema}"`)
  await client.query(`CREATE TABLE IF NOT EXISTS ${name('migrations')} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`)
  const from = await versionIn(client, tables)
  if (from > SCHEMA_VERSION) throw newerError(tables, from)
  for (const migration of MIGRATIONS) {
    if (migration.version <= from) continue
    for (const statement of migration.statements(tables)) await client.query(statement)
    await client.query(`INSERT INTO ${name('migrations')} (version, description) VALUES ($1, $2)`, [migration.version, migration.description])
  }
  return { from, to: SCHEMA_VERSION }
}

async function versionIn (client: PgQueryable, { name }: Tables): Promise<number> {
  const { rows } = await client.query(`SELECT coalesce(max(version), 0) AS version FROM ${name('migrations')}`)
  return Number(rows[0]?.version)
}

/**
 * Throws `FSG_STORE_SCHEMA`, saying what to do, unless the tables are there at this
 * package's version. The store calls it before its first query.
 */
export async function checkSchema (client: PgQueryable, tables: Tables): Promise<void> {
  const { rows } = await client.query('SELECT to_regclass($1) IS NOT NULL AS found', [tables.name('migrations')])
  const version = rows[0]?.found === true ? await versionIn(client, tables) : 0
  if (version === SCHEMA_VERSION) return
  if (version > SCHEMA_VERSION) throw newerError(tables, version)
  throw new StoreSchemaError(`the session gateway tables in PostgreSQL (schema "${tables.schema}", table prefix "${tables.prefix}") are at version ${version} (0: not made yet), and this package needs version ${SCHEMA_VERSION}; the store never creates or changes them itself: run \`npm run postgres:migrate\` (DATABASE_URL set), or migrate() from fastify-session-gateway/postgres`)
}

function newerError ({ schema, prefix }: Tables, version: number): InstanceType<typeof StoreSchemaError> {
  return new StoreSchemaError(`the session gateway tables (schema "${schema}", table prefix "${prefix}") are at version ${version}, newer than this package knows (${SCHEMA_VERSION}): upgrade fastify-session-gateway`)
}
