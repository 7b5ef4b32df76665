import { randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidCursorError, InvalidInputError, SessionNotFoundError, StoreCorruptError } from '../errors.js'
import { AGENT_ID_PATTERN, agentOfKey } from '../session-key.js'
import type { TranscriptEntry } from '../transcript.js'
import { DirectoryLock } from './directory-lock.js'
import { openFile, replaceFile, type FileLayer, type OpenFile } from './file-layer.js'
import { withFileLock } from './file-lock.js'
import { entriesOf, entryOf, readIndex, SESSION_ID_PATTERN, type Index, type IndexEntry } from './index-file.js'
import { readTail, sessionHeader, TranscriptFiles } from './jsonl.js'
import { listRows } from './list-rows.js'
import { previewOf, RECORD_ID_PATTERN, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RowPatch, type SessionRow, type SessionStore, type StoreContext } from './store.js'

export interface FileStoreOptions {
  /** The state directory (OpenClaw's `~/.openclaw` has this layout). Created when missing. */
  dir: string
  /**
   * Flush every write to the disk before it is acknowledged: transcript appends, index
   * rewrites and records (default true). Without it a write survives a crash of the
   * process, not of the machine.
   */
  fsync?: boolean
  /** How long a write waits for another process's lock on an index (default 10 s). */
  lockTimeoutMs?: number
  /**
   * Opens every file the store writes and flushes (default `fs.promises.open`): a wrapper
   * sees each write and each flush, to measure them or, in tests, to count them or make
   * them fail.
   */
  openFile?: OpenFile
}

interface Touch {
  updatedAt: number
  preview: string | undefined
}

interface CachedIndex {
  /** Changes whenever the file is replaced (a rename gives it a new inode). */
  stamp: string
  index: Index
}

/** How long the index may trail the transcripts (a crash loses at most this much of list order and previews). */
const INDEX_FLUSH_DELAY_MS = 10

/**
 * The embedded default: OpenClaw's own file layout, so an existing OpenClaw state
 * directory can be listed and continued, and what we append stays readable by OpenClaw.
 *
 *     <dir>/agents/<agentId>/sessions/sessions.json     key → { sessionId, updatedAt, … }
 *     <dir>/agents/<agentId>/sessions/<sessionId>.jsonl  a header line, then one entry per line
 *     <dir>/records/<kind>/<id>.json                     small transport records
 *
 * One process per directory: the store holds `<dir>/session-gateway.lock` from its first
 * call (or `open`) to `close`, and a second store on the directory is refused, naming the
 * holder (see directory-lock.ts). Each index is rewritten atomically (temp file, then
 * rename) under a lock file OpenClaw shares, and re-read under that lock before every
 * change, so OpenClaw's own updates are never lost. Session keys never become paths;
 * agent and session ids do only after a strict pattern check.
 */
export class FileStore implements SessionStore {
  readonly dir: string
  readonly #files: TranscriptFiles
  readonly #layer: FileLayer
  readonly #lockTimeoutMs: number
  readonly #cache = new Map<string, CachedIndex>()
  /** Index writes of this process, one at a time per agent (the lock file orders processes). */
  readonly #writes = new Map<string, Promise<unknown>>()
  /**
   * What appends changed in an index (`updatedAt`, the preview) and is not written yet:
   * agent → key → touch. Reads see it at once; one index write per agent carries every
   * touch made meanwhile, so a busy gateway rewrites each index once per batch, not per append.
   */
  readonly #touches = new Map<string, Map<string, Touch>>()
  readonly #flushes = new Map<string, Promise<void>>()
  #opening: Promise<void> | undefined
  #lock: DirectoryLock | undefined
  #logger: StoreContext['logger'] | undefined

  constructor (options: FileStoreOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new InvalidInputError('FileStore needs a dir')
    this.dir = resolve(options.dir)
    this.#layer = { root: this.dir, openFile: options.openFile ?? openFile, fsync: options.fsync ?? true }
    this.#files = new TranscriptFiles(this.#layer)
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 10_000
  }

  /**
   * Takes the directory for this process (`FSG_STORE_LOCKED`, naming the holder, when
   * another has it), and reports every index it cannot read through `logger`. The gateway
   * calls it when it starts; every other method calls it first, so a store used on its
   * own works too.
   */
  async open (context?: StoreContext): Promise<void> {
    if (context !== undefined) this.#logger = context.logger
    this.#opening ??= this.#start().catch(err => {
      this.#opening = undefined // a later call tries again (the other process may have gone)
      throw err
    })
    await this.#opening
  }

  async get (key: string): Promise<SessionRow | undefined> {
    await this.open()
    for (const agentId of await this.#agentsFor(key)) {
      const entry = entryOf(await this.#index(agentId), key)
      if (entry !== undefined) return this.#row(key, agentId, entry)
    }
    return undefined
  }

  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> {
    await this.open()
    for (const agentId of await this.#agents()) {
      for (const [key, entry] of entriesOf(await this.#index(agentId).catch(skipDamaged))) {
        if (entry.sessionId === sessionId) return this.#row(key, agentId, entry)
      }
    }
    return undefined
  }

  async ensure (key: string, agentId: string): Promise<SessionRow> {
    const existing = await this.get(key)
    if (existing !== undefined) return existing
    const agent = checkAgentId(agentOfKey(key) ?? agentId)
    return await this.#update(agent, async index => {
      const found = entryOf(index, key)
      if (found !== undefined) return toRow(key, agent, found) // another process was first
      const sessionId = randomUUID()
      await this.#startTranscript(agent, sessionId)
      const now = Date.now()
      const entry: IndexEntry = { sessionId, updatedAt: now, createdAt: now }
      index[key] = entry
      return toRow(key, agent, entry)
    })
  }

  async list (query: ListQuery): Promise<ListPage> {
    await this.open()
    const rows: SessionRow[] = []
    for (const agentId of await this.#agents()) {
      if (query.agentId !== undefined && query.agentId !== agentId) continue
      // An agent whose index cannot be read is left out (and logged): the others are listed.
      for (const [key, entry] of entriesOf(await this.#index(agentId).catch(skipDamaged))) rows.push(this.#row(key, agentId, entry))
    }
    return listRows(rows, query)
  }

  async patch (key: string, patch: RowPatch): Promise<SessionRow | undefined> {
    return await this.#change(key, (entry) => {
      if ('label' in patch) setOrDelete(entry, 'label', patch.label)
      if ('epoch' in patch) setOrDelete(entry, 'gatewayEpoch', patch.epoch)
      entry.updatedAt = Date.now()
    })
  }

  async reset (key: string): Promise<SessionRow | undefined> {
    return await this.#change(key, async (entry, agentId) => {
      const sessionId = randomUUID()
      await this.#startTranscript(agentId, sessionId)
      this.#touches.get(agentId)?.delete(key) // they were about the old generation
      entry.gatewayGenerations = [...(entry.gatewayGenerations ?? []), entry.sessionId]
      entry.sessionId = sessionId
      entry.updatedAt = Date.now()
      delete entry.lastMessagePreview
      delete entry.gatewayEpoch
    })
  }

  async delete (key: string): Promise<boolean> {
    await this.open()
    for (const agentId of await this.#agentsFor(key)) {
      const removed = await this.#update(agentId, async index => {
        const entry = entryOf(index, key)
        if (entry === undefined) return undefined
        delete index[key]
        this.#touches.get(agentId)?.delete(key)
        return entry
      })
      if (removed === undefined) continue
      // Archived the way OpenClaw does it, not erased: a deleted session's words stay on disk.
      const stamp = new Date().toISOString().replaceAll(':', '-')
      for (const sessionId of [...(removed.gatewayGenerations ?? []), removed.sessionId]) {
        if (!SESSION_ID_PATTERN.test(sessionId)) continue
        const path = this.#transcriptPath(agentId, sessionId)
        await this.#files.forget(path)
        await rename(path, `${path}.deleted.${stamp}`).catch(() => {})
      }
      return true
    }
    return false
  }

  async append (key: string, entries: TranscriptEntry[]): Promise<void> {
    const row = await this.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    await this.#files.append(this.#transcriptPath(row.agentId, checkSessionId(row.sessionId)), entries)
    // The lines are durable now; the index only orders and labels the list, so it follows a moment later.
    this.#touch(row.agentId, key, row.updatedAt, previewOf(entries))
  }

  async read (key: string, query: ReadQuery): Promise<ReadPage> {
    const row = await this.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    const sessionId = query.sessionId ?? row.sessionId
    if (sessionId !== row.sessionId) {
      const entry = entryOf(await this.#index(row.agentId), key)
      if (!(entry?.gatewayGenerations ?? []).includes(sessionId)) throw new SessionNotFoundError(`${key} (generation ${sessionId})`)
    }
    const end = query.before === undefined ? undefined : byteOffset(query.before)
    const page = await readTail(this.#transcriptPath(row.agentId, checkSessionId(sessionId)), query.limit, end)
    return page.before === undefined ? { entries: page.entries } : { entries: page.entries, before: String(page.before) }
  }

  async putRecord (kind: string, id: string, value: unknown): Promise<void> {
    await this.open()
    const folder = join(this.dir, 'records', checkRecordId(kind))
    const path = join(folder, `${checkRecordId(id)}.json`)
    await mkdir(folder, { recursive: true, mode: 0o700 })
    await replaceFile(this.#layer, path, JSON.stringify(value))
  }

  async getRecord (kind: string, id: string): Promise<unknown> {
    await this.open()
    try {
      return JSON.parse(await readFile(join(this.dir, 'records', checkRecordId(kind), `${checkRecordId(id)}.json`), 'utf8'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  /** Writes what is still pending, waits for this process's writes to finish, and gives the directory back. */
  async close (): Promise<void> {
    await Promise.allSettled([...this.#flushes.values()])
    // A flush that failed (a lock held too long by another process) gets one more try.
    for (const agentId of this.#touches.keys()) this.#flush(agentId)
    await Promise.allSettled([...this.#flushes.values(), ...this.#writes.values()])
    await this.#files.closeAll()
    const lock = this.#lock
    this.#lock = undefined
    this.#opening = undefined
    await lock?.release()
  }

  async #start (): Promise<void> {
    this.#lock = await DirectoryLock.acquire(this.#layer)
    // Every index read now, so a damaged one is reported when the gateway starts, not at its first use.
    for (const agentId of await this.#agents()) await this.#index(agentId).catch(skipDamaged)
  }

  // ── touches: index updates that follow appends ─────────────────────────────

  #touch (agentId: string, key: string, updatedAt: number, preview: string | undefined): void {
    let touches = this.#touches.get(agentId)
    if (touches === undefined) {
      touches = new Map()
      this.#touches.set(agentId, touches)
    }
    const earlier = touches.get(key)
    // A new object each time: a flush clears only the touches it wrote (see #flush).
    touches.set(key, {
      updatedAt: Math.max(Date.now(), updatedAt + 1, (earlier?.updatedAt ?? 0) + 1),
      preview: preview ?? earlier?.preview
    })
    this.#flush(agentId)
  }

  /** Schedules one index write for the agent's touches (and every touch made until it runs). */
  #flush (agentId: string): void {
    if (this.#flushes.has(agentId)) return
    let written: Map<string, Touch> | undefined
    // A short wait gathers the touches of many turns (and sessions) into one write.
    const flush = sleep(INDEX_FLUSH_DELAY_MS).then(async () => await this.#update(agentId, async index => {
      this.#flushes.delete(agentId) // touches from now on need a write of their own
      written = new Map(this.#touches.get(agentId))
      for (const [key, touch] of written) {
        const entry = entryOf(index, key)
        if (entry === undefined) continue
        entry.updatedAt = Math.max(entry.updatedAt, touch.updatedAt)
        if (touch.preview !== undefined) entry.lastMessagePreview = touch.preview
      }
    })).then(() => {
      // Only now is the index on disk (and in the cache) newer than these touches.
      // Both are set: the agent's touches are only dropped here, one flush at a time.
      const touches = this.#touches.get(agentId) as Map<string, Touch>
      for (const [key, touch] of written as Map<string, Touch>) if (touches.get(key) === touch) touches.delete(key)
      if (touches.size === 0) this.#touches.delete(agentId)
    }, () => {
      this.#flushes.delete(agentId) // kept for the next flush (close() tries again)
    })
    this.#flushes.set(agentId, flush)
  }

  /** A row as it is now: the index entry, with the touches not written yet. */
  #row (key: string, agentId: string, entry: IndexEntry): SessionRow {
    const row = toRow(key, agentId, entry)
    const touch = this.#touches.get(agentId)?.get(key)
    if (touch === undefined) return row
    row.updatedAt = Math.max(row.updatedAt, touch.updatedAt)
    if (touch.preview !== undefined) row.preview = touch.preview
    return row
  }

  // ── the index ──────────────────────────────────────────────────────────────

  #sessionsDir (agentId: string): string {
    return join(this.dir, 'agents', agentId, 'sessions')
  }

  #transcriptPath (agentId: string, sessionId: string): string {
    return join(this.#sessionsDir(agentId), `${sessionId}.jsonl`)
  }

  async #startTranscript (agentId: string, sessionId: string): Promise<void> {
    await mkdir(this.#sessionsDir(agentId), { recursive: true, mode: 0o700 })
    await this.#files.append(this.#transcriptPath(agentId, sessionId), [sessionHeader(sessionId)])
  }

  /** The index as it is on disk now (re-read only when the file was replaced). */
  async #index (agentId: string): Promise<Index> {
    const path = join(this.#sessionsDir(agentId), 'sessions.json')
    let stamp: string
    try {
      const info = await stat(path)
      stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw err
    }
    const cached = this.#cache.get(agentId)
    if (cached?.stamp === stamp) return cached.index
    const index = await this.#readIndex(agentId, path)
    this.#cache.set(agentId, { stamp, index })
    return index
  }

  /** Reads an index from disk; a damaged one is reported, to the log and to the caller, on every use. */
  async #readIndex (agentId: string, path: string): Promise<Index> {
    try {
      return await readIndex(this.dir, agentId, path)
    } catch (err) {
      if (err instanceof StoreCorruptError) this.#logger?.error({ file: path }, `session gateway: ${err.message}`)
      throw err
    }
  }

  /**
   * Changes one agent's index: under the lock, from what is on disk right now, then
   * written back atomically. `change` may mutate the index it is given.
   */
  async #update<T> (agentId: string, change: (index: Index) => Promise<T>): Promise<T> {
    const previous = this.#writes.get(agentId) ?? Promise.resolve()
    const next = previous.catch(() => {}).then(async () => {
      const folder = this.#sessionsDir(agentId)
      await mkdir(folder, { recursive: true, mode: 0o700 })
      const path = join(folder, 'sessions.json')
      return await withFileLock(this.#layer, `${path}.lock`, this.#lockTimeoutMs, async () => {
        const index = await this.#readIndex(agentId, path)
        const before = JSON.stringify(index)
        const result = await change(index)
        if (JSON.stringify(index) !== before) {
          // Flushes the folder too, and with it the entry of a transcript `change` just created there.
          await replaceFile(this.#layer, path, JSON.stringify(index, null, 2))
          const info = await stat(path)
          this.#cache.set(agentId, { stamp: `${info.ino}:${info.size}:${info.mtimeMs}`, index })
        }
        return result
      })
    })
    this.#writes.set(agentId, next)
    try {
      return await next
    } finally {
      if (this.#writes.get(agentId) === next) this.#writes.delete(agentId)
    }
  }

  async #change (key: string, change: (entry: IndexEntry, agentId: string) => unknown): Promise<SessionRow | undefined> {
    await this.open()
    for (const agentId of await this.#agentsFor(key)) {
      const row = await this.#update(agentId, async index => {
        const entry = entryOf(index, key)
        if (entry === undefined) return undefined
        await change(entry, agentId)
        return this.#row(key, agentId, entry)
      })
      if (row !== undefined) return row
    }
    return undefined
  }

  /** Where a key may live: its own agent's index, or every index for a key without one. */
  async #agentsFor (key: string): Promise<string[]> {
    const agentId = agentOfKey(key)
    return agentId === undefined ? await this.#agents() : [agentId]
  }

  async #agents (): Promise<string[]> {
    try {
      const names = await readdir(join(this.dir, 'agents'))
      return names.filter(name => AGENT_ID_PATTERN.test(name)).sort()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
  }
}

/** For reads across agents: an index that cannot be read (reported already) counts as empty. */
function skipDamaged (err: unknown): Index {
  if (err instanceof StoreCorruptError) return {}
  throw err
}

function toRow (key: string, agentId: string, entry: IndexEntry): SessionRow {
  const updatedAt = typeof entry.updatedAt === 'number' ? entry.updatedAt : 0
  return {
    key,
    sessionId: entry.sessionId,
    agentId,
    ...(typeof entry.label === 'string' ? { label: entry.label } : {}),
    createdAt: typeof entry.createdAt === 'number' ? entry.createdAt : updatedAt,
    updatedAt,
    ...(typeof entry.lastMessagePreview === 'string' ? { preview: entry.lastMessagePreview } : {}),
    ...(typeof entry.gatewayEpoch === 'string' ? { epoch: entry.gatewayEpoch } : {})
  }
}

function setOrDelete (entry: IndexEntry, field: string, value: string | undefined): void {
  if (value === undefined) delete entry[field]
  else entry[field] = value
}

function checkAgentId (agentId: string): string {
  if (!AGENT_ID_PATTERN.test(agentId)) throw new InvalidInputError('an agent id the file store cannot use as a folder name')
  return agentId
}

function checkSessionId (sessionId: string): string {
  if (!SESSION_ID_PATTERN.test(sessionId)) throw new InvalidInputError('a session id the file store cannot use as a file name')
  return sessionId
}

function checkRecordId (id: string): string {
  if (!RECORD_ID_PATTERN.test(id)) throw new InvalidInputError('a record kind or id has unsafe characters')
  return id
}

function byteOffset (before: string): number {
  const offset = Number(before)
  if (!/^\d+$/.test(before) || !Number.isSafeInteger(offset)) throw new InvalidCursorError(before.slice(0, 80))
  return offset
}
