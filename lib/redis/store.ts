import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { InvalidCursorError, InvalidInputError, InvalidOptionError, SessionNotFoundError, StoreUnavailableError } from '../errors.js'
import { decodeListCursor, encodeListCursor, listRows, rowFilter } from '../stores/list-rows.js'
import { checkLimit, positionCursor } from '../stores/read-query.js'
import { previewOf, RECORD_ID_PATTERN, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RecordOptions, type RowPatch, type SessionRow, type SessionStore } from '../stores/store.js'
import type { TranscriptEntry } from '../transcript.js'
import { connect, DEFAULT_KEY_PREFIX, type RedisConnection, type RedisConnectionOptions } from './connection.js'
import { listMember, memberPosition, StoreKeys } from './store-keys.js'
import { ADD_RECORD, APPEND, CREATE, DELETE, PATCH, READ, RESET } from './store-scripts.js'

export interface RedisStoreOptions extends RedisConnectionOptions {
  /**
   * How many index entries one `list` page may examine (default 2000). Filters by label or
   * text skip rows; a page that reaches this many ends early, with a cursor to go on from.
   */
  listScanLimit?: number
  /**
   * How long a deleted session's row and transcripts stay archived in Redis, for an
   * operator to recover (default 7 days); 0 drops them at once.
   */
  deletedTtlSeconds?: number
}

const DEFAULT_LIST_SCAN_LIMIT = 2000
const DEFAULT_DELETED_TTL_SECONDS = 7 * 24 * 3600

/**
 * Session rows, transcripts, listing and records on Redis, for several gateway processes
 * sharing one Redis (or a Cluster, or a primary with replicas). Key layout: store-keys.ts.
 *
 * Each session's keys share one Cluster slot, so every change to a session is one atomic
 * script and is acknowledged once Redis has applied it (durable as Redis's persistence
 * makes it: AOF recommended). The listing indexes live in another slot, so they follow
 * each change rather than share its atomicity:
 * - the row is the truth; an index only orders. It is written after the row (a row's
 *   members never run ahead of it), and a failed index write does not fail the change
 *   that is already stored;
 * - listing checks every member it meets against its row: a member whose row is gone is
 *   skipped and removed, one whose row has moved is listed where the row is now and moved.
 * So a crash (or a lost connection) between the two writes leaves at worst a row listed
 * at its previous place until a listing meets it, or, for a session never touched after
 * it was created, unlisted until its first append. Nothing is lost, nothing listed twice.
 */
export class RedisStore implements SessionStore {
  readonly #connection: Promise<RedisConnection>
  readonly #keys: StoreKeys
  readonly #listScanLimit: number
  readonly #deletedTtlSeconds: number
  #closed: Promise<void> | undefined

  constructor (options: RedisStoreOptions) {
    if (options?.client === undefined && typeof options?.url !== 'string') {
      throw new InvalidOptionError('store', 'RedisStore needs { client } (an ioredis client) or { url } (a redis:// URL)')
    }
    this.#listScanLimit = option(options, 'listScanLimit', DEFAULT_LIST_SCAN_LIMIT, 1)
    this.#deletedTtlSeconds = option(options, 'deletedTtlSeconds', DEFAULT_DELETED_TTL_SECONDS, 0)
    this.#keys = new StoreKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX)
    this.#connection = connect(options, 'RedisStore')
    // Kept for the first call to report; not an unhandled rejection meanwhile.
    this.#connection.catch(ignore)
  }

  async get (key: string): Promise<SessionRow | undefined> {
    const fields = await this.#redis(async client => await client.hgetall(this.#keys.session(key).row))
    return fields.sessionId === undefined ? undefined : toRow(key, fields)
  }

  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> {
    const key = await this.#redis(async client => await client.get(this.#keys.sessionId(sessionId)))
    if (key === null) return undefined
    // A pointer left by a crash, or by a reset in progress, names a row that moved on.
    const row = await this.get(key)
    return row?.sessionId === sessionId ? row : undefined
  }

  async ensure (key: string, agentId: string): Promise<SessionRow> {
    const existing = await this.get(key)
    if (existing !== undefined) return existing
    const client = await this.#client()
    const keys = this.#keys.session(key)
    const sessionId = randomUUID()
    // The pointer first: a crash after it leaves a pointer findBySessionId ignores, never a row it cannot find.
    await this.#redis(async () => await client.set(this.#keys.sessionId(sessionId), key))
    const [created, fields] = await this.#redis(async () => await CREATE.run(client, [keys.row, keys.generations], [sessionId, agentId, Date.now()])) as [number, string[]]
    const row = toRow(key, pairs(fields))
    if (created === 0) {
      await client.del(this.#keys.sessionId(sessionId)).catch(ignore) // another call was first
      return row
    }
    await this.#reindex(key, row.agentId, undefined, row.updatedAt)
    return row
  }

  async list (query: ListQuery): Promise<ListPage> {
    const limit = checkLimit(query.limit)
    const listed = rowFilter(query) // checks the cursor too
    const after = query.cursor === undefined ? undefined : decodeListCursor(query.cursor)
    if (after !== undefined && !(Number.isSafeInteger(after.updatedAt) && after.updatedAt >= 0)) throw new InvalidCursorError((query.cursor as string).slice(0, 80))
    const client = await this.#client()
    const index = query.agentId === undefined ? this.#keys.all : this.#keys.agent(query.agentId)
    const rows = new Map<string, SessionRow>()
    let matched = 0
    let examined = 0
    let from = after === undefined ? '-' : `(${listMember(after)}`
    let exhausted = false
    // In index order from the cursor, in growing batches, until a row past the page is
    // found (so the page knows more follow), the index ends, or the scan limit is reached.
    while (matched <= limit && examined < this.#listScanLimit && !exhausted) {
      const count = Math.min(this.#listScanLimit - examined, Math.max(limit + 1 - matched, examined))
      const members = await this.#redis(async () => await client.zrange(index, from, '+', 'BYLEX', 'LIMIT', 0, count))
      examined += members.length
      exhausted = members.length < count
      const found = await Promise.all(members.map(async member => await this.get(memberPosition(member).key)))
      const repairs: Array<Promise<void>> = []
      members.forEach((member, i) => {
        const row = found[i]
        const current = row !== undefined && listMember(row) === member && (query.agentId === undefined || row.agentId === query.agentId)
        if (!current) repairs.push(this.#repair(index, member, row))
        // A member newer than its row (a key deleted and made again by a node with a slower
        // clock) is not where the row belongs: the repair puts it there, to be met in turn.
        if (row === undefined || listMember(row) > member || rows.has(row.key)) return
        rows.set(row.key, row)
        if (listed(row)) matched++
      })
      await Promise.all(repairs)
      const last = members.at(-1)
      if (last !== undefined) from = `(${last}`
    }
    const page = listRows(rows.values(), query)
    // Stopped by the scan limit: the next page goes on from the last member examined.
    if (page.cursor === undefined && !exhausted) page.cursor = encodeListCursor(memberPosition(from.slice(1)))
    return page
  }

  async patch (key: string, patch: RowPatch): Promise<SessionRow | undefined> {
    const args: Array<string | number> = [Date.now()]
    for (const field of ['label', 'epoch'] as const) {
      if (!(field in patch)) args.push('keep', '')
      else if (patch[field] === undefined) args.push('clear', '')
      else args.push('set', patch[field])
    }
    const client = await this.#client()
    const done = await this.#redis(async () => await PATCH.run(client, [this.#keys.session(key).row], args)) as [string, string[]] | null
    if (done === null) return undefined
    const row = toRow(key, pairs(done[1]))
    await this.#reindex(key, row.agentId, Number(done[0]), row.updatedAt)
    return row
  }

  async reset (key: string): Promise<SessionRow | undefined> {
    const client = await this.#client()
    const keys = this.#keys.session(key)
    const sessionId = randomUUID()
    await this.#redis(async () => await client.set(this.#keys.sessionId(sessionId), key))
    const done = await this.#redis(async () => await RESET.run(client, [keys.row, keys.generations], [sessionId, Date.now()])) as [string, string, string[]] | null
    if (done === null) {
      await client.del(this.#keys.sessionId(sessionId)).catch(ignore)
      return undefined
    }
    const row = toRow(key, pairs(done[2]))
    // The old generation stays readable through the key; only the current one is found by its id.
    await client.del(this.#keys.sessionId(done[0])).catch(ignore)
    await this.#reindex(key, row.agentId, Number(done[1]), row.updatedAt)
    return row
  }

  async delete (key: string): Promise<boolean> {
    const client = await this.#client()
    const keys = this.#keys.session(key)
    const stamp = `${new Date().toISOString()}-${randomUUID().slice(0, 8)}`
    const done = await this.#redis(async () => await DELETE.run(client, [keys.row, keys.transcript, keys.generations, ...keys.archived(stamp), keys.records], [this.#deletedTtlSeconds])) as [string, string, string, string[]] | null
    if (done === null) return false
    const [sessionId, updatedAt, agentId, records] = done
    // One by one: each is in a slot of its own. A record a crash leaves here still expires.
    const names = [this.#keys.sessionId(sessionId), ...records]
    await Promise.all(names.map(async name => await client.del(name).catch(ignore)))
    await this.#reindex(key, agentId, Number(updatedAt), undefined)
    return true
  }

  async append (key: string, entries: TranscriptEntry[]): Promise<void> {
    const keys = this.#keys.session(key)
    const args = [Date.now(), previewOf(entries) ?? '', ...entries.map(entry => JSON.stringify(entry))]
    const done = await this.#redis(async client => await APPEND.run(client, [keys.row, keys.transcript], args)) as [string, string, string] | null
    if (done === null) throw new SessionNotFoundError(key)
    await this.#reindex(key, done[0], Number(done[1]), Number(done[2]))
  }

  async read (key: string, query: ReadQuery): Promise<ReadPage> {
    const limit = checkLimit(query.limit)
    if (query.before !== undefined) positionCursor(query.before)
    const keys = this.#keys.session(key)
    const args = [query.sessionId === undefined ? 'current' : 'given', query.sessionId ?? '', query.before ?? '', limit]
    const found = await this.#redis(async client => await READ.run(client, [keys.row, keys.generations, keys.transcript], args)) as Array<[string, string[]]> | 0 | null
    if (found === null) throw new SessionNotFoundError(key)
    if (found === 0) throw new SessionNotFoundError(`${key} (generation ${query.sessionId as string})`)
    const entries = found.map(([, fields]) => JSON.parse(fields[1] as string) as TranscriptEntry).reverse()
    // Positions count from 1 in every generation, so the oldest one read says whether more precede it.
    const oldest = found.length === 0 ? 0 : Number((found.at(-1) as [string, string[]])[0].split('-')[1])
    return oldest > 1 ? { entries, before: String(oldest) } : { entries }
  }

  async putRecord (kind: string, id: string, value: unknown, options: RecordOptions = {}): Promise<void> {
    const json = JSON.stringify(value)
    if (json === undefined) throw new InvalidInputError('a record must be a JSON value')
    const name = this.#recordKey(kind, id)
    const { sessionKey, expiresAt } = options
    // The session's set first: it never misses a record that exists.
    if (sessionKey !== undefined) await this.#redis(async client => await ADD_RECORD.run(client, [this.#keys.session(sessionKey).records], [name, expiresAt ?? '', Date.now()]))
    await this.#redis(async client => expiresAt === undefined ? await client.set(name, json) : await client.set(name, json, 'PXAT', expiresAt))
  }

  async getRecord (kind: string, id: string): Promise<unknown> {
    const name = this.#recordKey(kind, id)
    const json = await this.#redis(async client => await client.get(name))
    return json === null ? undefined : JSON.parse(json)
  }

  /** Closes the client the store made from a URL; a client the application passed stays open. */
  async close (): Promise<void> {
    this.#closed ??= this.#connection.then(async ({ client, owned }) => {
      if (owned) await client.quit()
    })
    await this.#closed
  }

  async #client (): Promise<Redis> {
    return (await this.#connection).client
  }

  /**
   * One call to Redis. A failure of Redis (unreachable, a connection lost, a command it
   * refused) is `FSG_STORE_UNAVAILABLE`, a 503 every transport answers as such.
   */
  async #redis<T> (call: (client: Redis) => Promise<T>): Promise<T> {
    const client = await this.#client()
    try {
      return await call(client)
    } catch (err) {
      throw new StoreUnavailableError((err as Error).message)
    }
  }

  #recordKey (kind: string, id: string): string {
    if (!RECORD_ID_PATTERN.test(kind) || !RECORD_ID_PATTERN.test(id)) throw new InvalidInputError('a record kind or id has unsafe characters')
    return this.#keys.record(kind, id)
  }

  /** Moves a row's members in both indexes (all, and its agent's), at once. */
  async #reindex (key: string, agentId: string, from: number | undefined, to: number | undefined): Promise<void> {
    const multi = (await this.#client()).multi()
    for (const index of [this.#keys.all, this.#keys.agent(agentId)]) {
      if (from !== undefined) multi.zrem(index, listMember({ updatedAt: from, key }))
      if (to !== undefined) multi.zadd(index, 0, listMember({ updatedAt: to, key }))
    }
    // Best effort: the change is stored; a listing repairs what this misses.
    await multi.exec().catch(ignore)
  }

  /** Drops a member that is not its row's (any more), and puts the row, if any, where it belongs. */
  async #repair (index: string, member: string, row: SessionRow | undefined): Promise<void> {
    const multi = (await this.#client()).multi().zrem(index, member)
    if (row !== undefined) {
      for (const own of [this.#keys.all, this.#keys.agent(row.agentId)]) multi.zrem(own, member).zadd(own, 0, listMember(row))
    }
    await multi.exec().catch(ignore)
  }
}

function toRow (key: string, fields: Record<string, string>): SessionRow {
  return {
    key,
    sessionId: fields.sessionId as string,
    agentId: fields.agentId as string,
    ...(fields.label === undefined ? {} : { label: fields.label }),
    createdAt: Number(fields.createdAt),
    updatedAt: Number(fields.updatedAt),
    ...(fields.preview === undefined ? {} : { preview: fields.preview }),
    ...(fields.epoch === undefined ? {} : { epoch: fields.epoch })
  }
}

/** A script's HGETALL reply, [field, value, …], as an object. */
function pairs (flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string
  return fields
}

function option (options: RedisStoreOptions, name: 'listScanLimit' | 'deletedTtlSeconds', fallback: number, min: number): number {
  const value = options[name] ?? fallback
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidOptionError(name, `a whole number, ${min} or more`)
  return value
}

function ignore (): void {}
