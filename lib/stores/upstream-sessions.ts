import type { FastifyBaseLogger } from 'fastify'
import type { UpstreamSessions } from '../agents/agent.js'
import { InvalidCursorError } from '../errors.js'
import type { ListPage, ListQuery, ReadPage, ReadQuery, RecordOptions, RowPatch, SessionRow, SessionStore, StoreContext } from './store.js'
import type { TranscriptEntry } from '../transcript.js'

// A store that also holds the sessions an agent's upstream keeps itself (OpenClaw's):
// listed beside the store's own, newest first across both, and imported into the store
// the first time one is asked for (opened, continued, read), so that from then on it is
// one of ours: cursors, resume and history work as for any other. The store stays the
// only one written to; the upstream is only read.

const CURSOR_PREFIX = 'up1.'

/** Where a listing is in each source: the store's own cursor (null: done), the upstream's offset (null: done). */
interface Position { store?: string | null, upstream: number | null }

export interface UpstreamSessionStoreOptions {
  /** Only sessions of these agents are taken from the upstream (the gateway's allow-list). */
  agents?: readonly string[]
  logger: FastifyBaseLogger
}

export class UpstreamSessionStore implements SessionStore {
  readonly #store: SessionStore
  readonly #upstream: UpstreamSessions
  readonly #options: UpstreamSessionStoreOptions
  // One import per key at a time in this process; a second asker waits for the first.
  readonly #importing = new Map<string, Promise<SessionRow | undefined>>()

  constructor (store: SessionStore, upstream: UpstreamSessions, options: UpstreamSessionStoreOptions) {
    this.#store = store
    this.#upstream = upstream
    this.#options = options
  }

  /** The store's row, else the upstream's session, imported now; undefined when neither has it. */
  async get (key: string): Promise<SessionRow | undefined> {
    const row = await this.#store.get(key)
    if (row !== undefined) return row
    let importing = this.#importing.get(key)
    if (importing === undefined) {
      importing = this.#import(key).finally(() => this.#importing.delete(key))
      this.#importing.set(key, importing)
    }
    return await importing
  }

  async #import (key: string): Promise<SessionRow | undefined> {
    const found = await this.#upstream.read(key)
    if (found === undefined || !this.#allowed(found.row.agentId)) return undefined
    await this.#store.ensure(key, found.row.agentId)
    // Another process sharing the store may have imported it meanwhile.
    const { entries } = await this.#store.read(key, { limit: 1 })
    if (entries.length === 0) {
      if (found.entries.length > 0) await this.#store.append(key, found.entries)
      if (found.row.label !== undefined) await this.#store.patch(key, { label: found.row.label })
      this.#options.logger.info({ sessionKey: key, messages: found.entries.length }, 'session gateway: imported a session from the upstream')
    }
    return await this.#store.get(key)
  }

  /**
   * Both sources' rows, newest first. The cursor says how far each has been read: the
   * store's own cursor and the upstream's offset. An upstream that fails is left out of
   * this listing (and logged); the store's rows are still listed.
   */
  async list (query: ListQuery): Promise<ListPage> {
    const at = query.cursor === undefined ? { upstream: 0 } : position(query.cursor)
    const local: ListPage = at.store === null ? { rows: [] } : await this.#store.list(withCursor(query, at.store))
    const remote = at.upstream === null ? { rows: [], more: false } : await this.#upstreamPage(query, at.upstream)
    // The upstream's rows the store does not have, for agents we serve, with where each was in the upstream's page.
    const fresh: Array<{ row: SessionRow, index: number }> = []
    for (const [index, row] of remote.rows.entries()) {
      if (row !== undefined && this.#allowed(row.agentId) && await this.#store.get(row.key) === undefined) fresh.push({ row, index })
    }
    // Both are newest first: merge them, so that what is taken of each is a prefix of it. A
    // source whose page ran out but has more may still hold rows as new as its last one:
    // nothing older than that is taken from the other.
    const merged: SessionRow[] = []
    const storeFloor = local.cursor === undefined ? -Infinity : (local.rows.at(-1) as SessionRow).updatedAt
    // (A row the upstream gave and we cannot route to has no time we know: then the newest of the page's others.)
    const upstreamFloor = remote.more ? remote.rows.findLast(row => row !== undefined)?.updatedAt ?? Infinity : -Infinity
    let fromStore = 0
    let fromUpstream = 0
    while (merged.length < query.limit) {
      const mine = local.rows[fromStore]
      const theirs = fresh[fromUpstream]
      if (mine === undefined && theirs === undefined) break
      if (mine === undefined && (theirs as { row: SessionRow }).row.updatedAt < storeFloor) break
      if (theirs === undefined && (mine as SessionRow).updatedAt < upstreamFloor) break
      if (theirs === undefined || (mine !== undefined && mine.updatedAt >= theirs.row.updatedAt)) {
        merged.push(mine as SessionRow)
        fromStore++
      } else {
        merged.push(theirs.row)
        fromUpstream++
      }
    }
    const firstLeft = fresh[fromUpstream]
    const next: Position = {
      store: at.store === null
        ? null
        : fromStore === local.rows.length
          ? local.cursor ?? null
          : fromStore === 0 ? at.store : (await this.#store.list({ ...withCursor(query, at.store), limit: fromStore })).cursor as string,
      upstream: at.upstream === null
        ? null
        : firstLeft !== undefined ? at.upstream + firstLeft.index : remote.more ? at.upstream + remote.rows.length : null
    }
    return next.store === null && next.upstream === null ? { rows: merged } : { rows: merged, cursor: CURSOR_PREFIX + Buffer.from(JSON.stringify(next)).toString('base64url') }
  }

  async #upstreamPage (query: ListQuery, offset: number): Promise<{ rows: Array<SessionRow | undefined>, more: boolean }> {
    try {
      return await this.#upstream.list({
        limit: query.limit,
        offset,
        ...(query.agentId === undefined ? {} : { agentId: query.agentId }),
        ...(query.label === undefined ? {} : { label: query.label }),
        ...(query.search === undefined ? {} : { search: query.search })
      })
    } catch (err) {
      this.#options.logger.warn({ err }, 'session gateway: the upstream\'s sessions could not be listed; listing this gateway\'s own')
      return { rows: [], more: false }
    }
  }

  #allowed (agentId: string): boolean {
    return this.#options.agents?.includes(agentId) ?? true
  }

  async open (context: StoreContext): Promise<void> { await this.#store.open?.(context) }
  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> { return await this.#store.findBySessionId(sessionId) }
  async ensure (key: string, agentId: string): Promise<SessionRow> { return await this.#store.ensure(key, agentId) }
  async patch (key: string, patch: RowPatch): Promise<SessionRow | undefined> { return await this.#store.patch(key, patch) }
  async reset (key: string): Promise<SessionRow | undefined> { return await this.#store.reset(key) }
  async delete (key: string): Promise<boolean> { return await this.#store.delete(key) }
  async append (key: string, entries: TranscriptEntry[]): Promise<void> { await this.#store.append(key, entries) }
  async read (key: string, query: ReadQuery): Promise<ReadPage> { return await this.#store.read(key, query) }
  async putRecord (kind: string, id: string, value: unknown, options?: RecordOptions): Promise<void> { await this.#store.putRecord(kind, id, value, options) }
  async getRecord (kind: string, id: string): Promise<unknown> { return await this.#store.getRecord(kind, id) }
  /** The store's sweep; none (0 swept) when the store expires records itself. */
  async sweepRecords (now: number, limit: number): Promise<number> { return await this.#store.sweepRecords?.(now, limit) ?? 0 }
  async close (): Promise<void> { await this.#store.close?.() }
}

function withCursor (query: ListQuery, cursor: string | undefined): ListQuery {
  const { cursor: _ours, ...rest } = query
  return cursor === undefined ? rest : { ...rest, cursor }
}

function position (cursor: string): Position {
  try {
    if (!cursor.startsWith(CURSOR_PREFIX)) throw new Error('not ours')
    const value = JSON.parse(Buffer.from(cursor.slice(CURSOR_PREFIX.length), 'base64url').toString('utf8')) as Position
    const validStore = value.store === undefined || value.store === null || typeof value.store === 'string'
    const validUpstream = value.upstream === null || (Number.isSafeInteger(value.upstream) && value.upstream >= 0)
    if (!validStore || !validUpstream) throw new Error('not ours')
    return value
  } catch {
    throw new InvalidCursorError(cursor.slice(0, 80))
  }
}
