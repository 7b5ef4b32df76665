import { randomUUID } from 'node:crypto'
import { InvalidInputError, SessionNotFoundError } from '../errors.js'
import type { TranscriptEntry } from '../transcript.js'
import { listRows } from './list-rows.js'
import { positionCursor } from './read-query.js'
import { expired, previewOf, RECORD_ID_PATTERN, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RecordOptions, type RowPatch, type SessionRow, type SessionStore } from './store.js'

/**
 * Keeps everything in this process. For tests and demos: a restart loses every
 * session (and so every session gets a new `sessionId`, hence a new event epoch).
 */
export class MemoryStore implements SessionStore {
  readonly #rows = new Map<string, SessionRow>()
  /**
   * sessionId → the key that owns it and its entries, for every generation of a live key.
   * Entries are kept as JSON: a copy nobody can change, and cheaper to make than a clone.
   */
  readonly #transcripts = new Map<string, { key: string, entries: string[] }>()
  readonly #records = new Map<string, StoredRecord>()

  async get (key: string): Promise<SessionRow | undefined> {
    const row = this.#rows.get(key)
    return row === undefined ? undefined : { ...row }
  }

  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> {
    for (const row of this.#rows.values()) if (row.sessionId === sessionId) return { ...row }
    return undefined
  }

  async ensure (key: string, agentId: string): Promise<SessionRow> {
    let row = this.#rows.get(key)
    if (row === undefined) {
      const now = Date.now()
      row = { key, sessionId: randomUUID(), agentId, createdAt: now, updatedAt: now }
      this.#rows.set(key, row)
      this.#transcripts.set(row.sessionId, { key, entries: [] })
    }
    return { ...row }
  }

  async list (query: ListQuery): Promise<ListPage> {
    const page = listRows(this.#rows.values(), query)
    return { ...page, rows: page.rows.map(row => ({ ...row })) }
  }

  async patch (key: string, patch: RowPatch): Promise<SessionRow | undefined> {
    const row = this.#rows.get(key)
    if (row === undefined) return undefined
    Object.assign(row, patch, { updatedAt: Date.now() })
    return { ...row }
  }

  async reset (key: string): Promise<SessionRow | undefined> {
    const row = this.#rows.get(key)
    if (row === undefined) return undefined
    row.sessionId = randomUUID()
    row.updatedAt = Date.now()
    delete row.epoch
    delete row.preview
    this.#transcripts.set(row.sessionId, { key, entries: [] })
    return { ...row }
  }

  async delete (key: string): Promise<boolean> {
    for (const [sessionId, transcript] of this.#transcripts) {
      if (transcript.key === key) this.#transcripts.delete(sessionId)
    }
    if (!this.#rows.delete(key)) return false
    for (const [name, record] of this.#records) if (record.sessionKey === key) this.#records.delete(name)
    return true
  }

  async append (key: string, entries: TranscriptEntry[]): Promise<void> {
    const row = this.#rows.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    const transcript = this.#transcripts.get(row.sessionId)?.entries as string[]
    for (const entry of entries) transcript.push(JSON.stringify(entry))
    row.updatedAt = Date.now()
    row.preview = previewOf(entries) ?? row.preview
  }

  async read (key: string, query: ReadQuery): Promise<ReadPage> {
    const row = this.#rows.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    const generation = this.#transcripts.get(query.sessionId ?? row.sessionId)
    if (generation === undefined || generation.key !== key) throw new SessionNotFoundError(`${key} (generation ${query.sessionId})`)
    const transcript = generation.entries
    const end = query.before === undefined ? transcript.length : Math.min(positionCursor(query.before), transcript.length)
    const start = Math.max(0, end - query.limit)
    const entries = transcript.slice(start, end).map(entry => JSON.parse(entry) as TranscriptEntry)
    return start > 0 ? { entries, before: String(start) } : { entries }
  }

  async putRecord (kind: string, id: string, value: unknown, options: RecordOptions = {}): Promise<void> {
    this.#records.set(recordKey(kind, id), { ...options, json: JSON.stringify(value) })
  }

  async getRecord (kind: string, id: string): Promise<unknown> {
    const record = this.#records.get(recordKey(kind, id))
    return record === undefined || expired(record, Date.now()) ? undefined : JSON.parse(record.json)
  }

  async sweepRecords (now: number, limit: number): Promise<number> {
    let swept = 0
    for (const [name, record] of this.#records) {
      if (swept === limit) break
      if (!expired(record, now)) continue
      this.#records.delete(name)
      swept++
    }
    return swept
  }
}

/** A record as kept: its JSON (a copy nobody can change) and what ties it to the rest. */
interface StoredRecord extends RecordOptions {
  json: string
}

function recordKey (kind: string, id: string): string {
  if (!RECORD_ID_PATTERN.test(kind) || !RECORD_ID_PATTERN.test(id)) throw new InvalidInputError('a record kind or id has unsafe characters')
  return `${kind}/${id}`
}

