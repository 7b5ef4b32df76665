import { randomUUID } from 'node:crypto'
import { InvalidCursorError, InvalidInputError, SessionNotFoundError, StoreFailedError } from '../errors.js'
import { decodeListCursor, encodeListCursor, listRows } from '../stores/list-rows.js'
import { checkLimit, positionCursor } from '../stores/read-query.js'
import { previewOf, RECORD_ID_PATTERN, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RecordOptions, type RowPatch, type SessionRow, type SessionStore, type StoreContext } from '../stores/store.js'
import type { TranscriptEntry } from '../transcript.js'
import { checkConnection, connect, inTransaction, reporting, tablesOf, unreachable, type PgConnection, type PgPool, type PostgresConnectionOptions, type Tables } from './connection.js'
import { checkSchema } from './schema.js'

export type PostgresStoreOptions = PostgresConnectionOptions

/** The columns a `SessionRow` is made of. */
const ROW = 'key, session_id, agent_id, label, preview, epoch, created_at, updated_at'

/** A session id as this store makes them (the column is a uuid: anything else names no generation). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The newest entries of a transcript: no `before` reads from the end. */
const END = Number.MAX_SAFE_INTEGER

/**
 * Session rows, transcripts, listing and records in PostgreSQL (tables: schema.ts; make
 * them first with `migrate()` or `npm run postgres:migrate`: the store never does).
 *
 * Every change to a session is one transaction, and the promise resolves once it has
 * committed. Changes to one session are ordered by its row's lock: an append is one
 * statement that updates the row (taking its lock, as `SELECT … FOR UPDATE` would, and
 * reserving the next seqs from its `length`) and inserts the entries, so two processes
 * appending to one session at once take turns and each batch lands whole, in order,
 * with seqs that have no gaps. A delete locks the row first, then archives every
 * generation committed before it. Nothing is retried: there are no conflicts to retry.
 */
export class PostgresStore implements SessionStore {
  readonly #connection: Promise<PgConnection>
  readonly #tables: Tables
  readonly #t: Record<'sessions' | 'generations' | 'entries' | 'records', string>
  #checked: Promise<void> | undefined
  #closed: Promise<void> | undefined

  constructor (options: PostgresStoreOptions) {
    checkConnection(options, 'PostgresStore')
    this.#tables = tablesOf(options, 'PostgresStore')
    const name = this.#tables.name
    this.#t = { sessions: name('sessions'), generations: name('generations'), entries: name('entries'), records: name('records') }
    this.#connection = connect(options, 'PostgresStore')
    // Kept for the first call to report; not an unhandled rejection meanwhile.
    this.#connection.catch(() => {})
  }

  /** Checks that the tables are there at this package's version (`FSG_STORE_SCHEMA` says how to make them). */
  async open (_context?: StoreContext): Promise<void> {
    await this.#pool()
  }

  async get (key: string): Promise<SessionRow | undefined> {
    const { rows } = await (await this.#pool()).query(`SELECT ${ROW} FROM ${this.#t.sessions} WHERE key = $1`, [key])
    return rows[0] === undefined ? undefined : toRow(rows[0])
  }

  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> {
    if (!UUID.test(sessionId)) return undefined
    const { rows } = await (await this.#pool()).query(`SELECT ${ROW} FROM ${this.#t.sessions} WHERE session_id = $1`, [sessionId])
    return rows[0] === undefined ? undefined : toRow(rows[0])
  }

  async ensure (key: string, agentId: string): Promise<SessionRow> {
    const existing = await this.get(key)
    if (existing !== undefined) return existing
    const pool = await this.#pool()
    const { sessions, generations } = this.#t
    // A key deleted between our insert losing and our read may need another try; three is plenty.
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = Date.now()
      // The row and its first generation, in one statement. Losing a race to another
      // process waits for its insert to commit, then inserts nothing, and we read its row.
      const { rows: created } = await pool.query(`WITH s AS (
          INSERT INTO ${sessions} (key, session_id, agent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
          ON CONFLICT (key) DO NOTHING RETURNING ${ROW}
        ), g AS (
          INSERT INTO ${generations} (session_id, key, agent_id, created_at) SELECT session_id, key, agent_id, created_at FROM s
        ) SELECT * FROM s`, [key, randomUUID(), agentId, now])
      const row = created[0] === undefined ? await this.get(key) : toRow(created[0])
      if (row !== undefined) return row
    }
    throw new StoreFailedError(`the session ${key}`, 'it was deleted each time it was about to be created; try again')
  }

  async list (query: ListQuery): Promise<ListPage> {
    const limit = checkLimit(query.limit)
    const after = query.cursor === undefined ? undefined : decodeListCursor(query.cursor)
    if (after !== undefined && !(Number.isSafeInteger(after.updatedAt) && after.updatedAt >= 0)) throw new InvalidCursorError((query.cursor as string).slice(0, 80))
    const values: unknown[] = []
    const param = (value: unknown): string => `$${values.push(value)}`
    const where: string[] = []
    if (query.agentId !== undefined) where.push(`agent_id = ${param(query.agentId)}`)
    if (query.label !== undefined) where.push(`label = ${param(query.label)}`)
    if (query.search !== undefined) {
      const needle = param(query.search.toLowerCase())
      where.push(`(strpos(key, ${needle}) > 0 OR strpos(label_folded, ${needle}) > 0 OR strpos(preview_folded, ${needle}) > 0)`)
    }
    if (after !== undefined) {
      const updatedAt = param(after.updatedAt)
      where.push(`(updated_at < ${updatedAt} OR (updated_at = ${updatedAt} AND key > ${param(after.key)}))`)
    }
    // Keyset paging on the (updated_at DESC, key) indexes: one row past the page says more follow.
    const { rows } = await (await this.#pool()).query(`SELECT ${ROW} FROM ${this.#t.sessions}
      ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY updated_at DESC, key LIMIT ${param(limit + 1)}`, values)
    // The shared helper has the last word on filters, order and the cursor: the same as every store's.
    return listRows(rows.map(toRow), query)
  }

  async patch (key: string, patch: RowPatch): Promise<SessionRow | undefined> {
    const label = 'label' in patch
    const epoch = 'epoch' in patch
    const { rows } = await (await this.#pool()).query(`UPDATE ${this.#t.sessions} SET
        label = CASE WHEN $2 THEN $3 ELSE label END,
        label_folded = CASE WHEN $2 THEN $4 ELSE label_folded END,
        epoch = CASE WHEN $5 THEN $6 ELSE epoch END,
        updated_at = GREATEST($7, updated_at + 1)
      WHERE key = $1 RETURNING ${ROW}`,
    [key, label, patch.label ?? null, patch.label?.toLowerCase() ?? null, epoch, patch.epoch ?? null, Date.now()])
    return rows[0] === undefined ? undefined : toRow(rows[0])
  }

  async reset (key: string): Promise<SessionRow | undefined> {
    const { sessions, generations } = this.#t
    return await this.#transaction(async query => {
      // The row's lock first: an append in flight commits before (and counts in the old
      // generation's length) or waits and goes to the new generation.
      const { rows: [old] } = await query(`SELECT session_id, length FROM ${sessions} WHERE key = $1 FOR UPDATE`, [key])
      if (old === undefined) return undefined
      const sessionId = randomUUID()
      const now = Date.now()
      // The old generation keeps its entries, readable through the key by its id.
      await query(`UPDATE ${generations} SET length = $2 WHERE session_id = $1`, [old.session_id, old.length])
      const { rows } = await query(`UPDATE ${sessions} SET session_id = $2, length = 0, preview = NULL, preview_folded = NULL, epoch = NULL,
        updated_at = GREATEST($3, updated_at + 1) WHERE key = $1 RETURNING ${ROW}`, [key, sessionId, now])
      const row = toRow(rows[0] as Record<string, unknown>)
      await query(`INSERT INTO ${generations} (session_id, key, agent_id, created_at) VALUES ($1, $2, $3, $4)`, [sessionId, key, row.agentId, now])
      return row
    })
  }

  async delete (key: string): Promise<boolean> {
    const { sessions, generations } = this.#t
    return await this.#transaction(async query => {
      // Deleting the row takes its lock (waiting for a reset or an append in flight); the
      // next statement then sees every generation committed before, and archives them all.
      const { rows } = await query(`DELETE FROM ${sessions} WHERE key = $1 RETURNING key`, [key])
      if (rows.length === 0) return false
      // Archived, not erased, as the file store renames a deleted session's files: the
      // entries stay; no key reads them again (see README for removing archives for good).
      await query(`UPDATE ${generations} SET deleted_at = $2 WHERE key = $1 AND deleted_at IS NULL`, [key, Date.now()])
      // Its records are not archived: they say what the session's responses were, and it is gone.
      await query(`DELETE FROM ${this.#t.records} WHERE session_key = $1`, [key])
      return true
    })
  }

  async append (key: string, entries: TranscriptEntry[]): Promise<void> {
    const preview = previewOf(entries)
    const { sessions, entries: table } = this.#t
    // One statement, so one transaction: the update locks the session's row and reserves
    // seqs length+1 … length+n; the insert writes the entries with them. A second append
    // to the session waits for the lock, then goes on from the committed length.
    const { rows } = await (await this.#pool()).query(`WITH s AS (
        UPDATE ${sessions} SET length = length + $2, updated_at = GREATEST($3, updated_at + 1),
          preview = coalesce($4, preview), preview_folded = coalesce($5, preview_folded)
        WHERE key = $1 RETURNING session_id, length - $2 AS base
      ), e AS (
        INSERT INTO ${table} (session_id, seq, entry)
        SELECT s.session_id, s.base + n, entry::json FROM s, unnest($6::text[]) WITH ORDINALITY AS given(entry, n)
      ) SELECT count(*)::int AS found FROM s`,
    [key, entries.length, Date.now(), preview ?? null, preview?.toLowerCase() ?? null, entries.map(entry => JSON.stringify(entry))])
    if (rows[0]?.found !== 1) throw new SessionNotFoundError(key)
  }

  async read (key: string, query: ReadQuery): Promise<ReadPage> {
    const limit = checkLimit(query.limit)
    if (query.before !== undefined) positionCursor(query.before)
    const generation = query.sessionId
    if (generation !== undefined && !UUID.test(generation)) throw new SessionNotFoundError(`${key} (generation ${generation})`)
    const { sessions, generations, entries } = this.#t
    // One statement, one snapshot: the row, the generation (the current one, or an older
    // one of this key that is not archived) and its length, and the page. Seqs have no
    // gaps, so the page is the range of seqs that ends before `before` (or at the end):
    // whatever plan the database picks on the (session_id, seq) key, it reads only those
    // rows, the same at 1k entries as at 1M.
    const { rows } = await (await this.#pool()).query(`SELECT g.session_id, e.seq, e.entry FROM ${sessions} s
      LEFT JOIN ${generations} g ON g.session_id = coalesce($2::uuid, s.session_id) AND g.key = s.key AND g.deleted_at IS NULL
      LEFT JOIN LATERAL (SELECT least(CASE WHEN g.session_id = s.session_id THEN s.length ELSE g.length END, $3::bigint - 1) AS last) r ON true
      LEFT JOIN LATERAL (
        SELECT seq, entry::text AS entry FROM ${entries} WHERE session_id = g.session_id AND seq > r.last - $4::bigint AND seq <= r.last ORDER BY seq DESC
      ) e ON true
      WHERE s.key = $1`, [key, generation ?? null, query.before === undefined ? END : Number(query.before), limit])
    if (rows.length === 0) throw new SessionNotFoundError(key)
    if (rows[0]?.session_id === null) throw new SessionNotFoundError(`${key} (generation ${generation as string})`)
    const found = rows.filter(row => row.seq !== null)
    const page = found.map(row => JSON.parse(row.entry as string) as TranscriptEntry).reverse()
    // Seqs count from 1 in every generation, so the oldest one read says whether more precede it.
    const oldest = found.length === 0 ? 0 : Number(found[found.length - 1]?.seq)
    return oldest > 1 ? { entries: page, before: String(oldest) } : { entries: page }
  }

  async putRecord (kind: string, id: string, value: unknown, options: RecordOptions = {}): Promise<void> {
    checkRecordId(kind, id)
    const json = JSON.stringify(value)
    if (json === undefined) throw new InvalidInputError('a record must be a JSON value')
    await (await this.#pool()).query(`INSERT INTO ${this.#t.records} (kind, id, value, session_key, expires_at) VALUES ($1, $2, $3::json, $4, $5)
      ON CONFLICT (kind, id) DO UPDATE SET value = EXCLUDED.value, session_key = EXCLUDED.session_key, expires_at = EXCLUDED.expires_at, updated_at = now()`,
    [kind, id, json, options.sessionKey ?? null, options.expiresAt ?? null])
  }

  async getRecord (kind: string, id: string): Promise<unknown> {
    checkRecordId(kind, id)
    const { rows } = await (await this.#pool()).query(`SELECT value::text AS value FROM ${this.#t.records}
      WHERE kind = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > $3)`, [kind, id, Date.now()])
    return rows[0] === undefined ? undefined : JSON.parse(rows[0].value as string)
  }

  async sweepRecords (now: number, limit: number): Promise<number> {
    // Rows another process's sweep has locked are left to it.
    const { rowCount } = await (await this.#pool()).query(`DELETE FROM ${this.#t.records} WHERE (kind, id) IN (
        SELECT kind, id FROM ${this.#t.records} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED
      )`, [now, limit])
    return rowCount as number
  }

  /** Ends the pool the store made from a connection string; a pool the application passed stays open. */
  async close (): Promise<void> {
    this.#closed ??= this.#connection.then(async ({ pool, owned }) => {
      if (owned) await pool.end()
    })
    await this.#closed
  }

  /** The pool, once the tables are known to be there (checked on first use, and again after a failed check). */
  async #pool (): Promise<PgPool> {
    const { pool } = await this.#connection.catch((err: unknown) => { throw unreachable(err) })
    this.#checked ??= checkSchema(pool, this.#tables).catch(err => {
      this.#checked = undefined
      throw unreachable(err)
    })
    await this.#checked
    this.#reporting ??= reporting(pool)
    return this.#reporting
  }

  #reporting: PgPool | undefined

  async #transaction<T> (work: (query: PgPool['query']) => Promise<T>): Promise<T> {
    return await inTransaction(await this.#pool(), async client => await work(async (text, values) => await client.query(text, values)))
  }
}

function toRow (row: Record<string, unknown>): SessionRow {
  return {
    key: row.key as string,
    sessionId: row.session_id as string,
    agentId: row.agent_id as string,
    ...(row.label === null ? {} : { label: row.label as string }),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    ...(row.preview === null ? {} : { preview: row.preview as string }),
    ...(row.epoch === null ? {} : { epoch: row.epoch as string })
  }
}

function checkRecordId (kind: string, id: string): void {
  if (!RECORD_ID_PATTERN.test(kind) || !RECORD_ID_PATTERN.test(id)) throw new InvalidInputError('a record kind or id has unsafe characters')
}
