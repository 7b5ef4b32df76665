import { randomUUID } from 'node:crypto'
import { mkdir, readdir, rename, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidCursorError, InvalidInputError, SessionNotFoundError, StoreCorruptError } from '../errors.js'
import { AGENT_ID_PATTERN, agentOfKey } from '../session-key.js'
import { withoutInboundMetadata } from '../inbound-metadata.js'
import type { TranscriptEntry } from '../transcript.js'
import { DirectoryLock } from './directory-lock.js'
import { openFile, replaceFile, syncFolder, type FileLayer, type OpenFile } from './file-layer.js'
import { FileRecords } from './file-records.js'
import { withFileLock } from './file-lock.js'
import { entriesOf, entryOf, readIndex, SESSION_ID_PATTERN, type Index, type IndexEntry } from './index-file.js'
import { JOURNAL_FILE, readJournal } from './index-journal.js'
import { readTail, sessionHeader, TranscriptFiles } from './jsonl.js'
import { listRows } from './list-rows.js'
import { previewOf, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RecordOptions, type RowPatch, type SessionRow, type SessionStore, type StoreContext } from './store.js'

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

/** The shortest wait before an index write: a crash loses at most this much of list order and previews (see #flush). */
const INDEX_FLUSH_DELAY_MS = 10
/** Entries read from the end of a transcript another writer grew, for its preview. */
const REFRESH_TAIL = 16

/**
 * The embedded default: OpenClaw's own file layout, so an existing OpenClaw state
 * directory can be listed and continued, and what we append stays readable by OpenClaw.
 *
 *     <dir>/agents/<agentId>/sessions/sessions.json     key → { sessionId, updatedAt, … }
 *     <dir>/agents/<agentId>/sessions/<sessionId>.jsonl  a header line, then one entry per line
 *     <dir>/records/…                                    small transport records (file-records.ts)
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
  readonly #records: FileRecords
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
  /**
   * Sessions created and not in `sessions.json` yet: agent → key → entry. Each is in the
   * agent's journal (durable); reads see it at once; the next index write takes it in.
   */
  readonly #creations = new Map<string, Map<string, IndexEntry>>()
  /** Creations whose journal line is still being written: pending (so `get` and the journal keep them), not yet for the index. */
  readonly #journaling = new Set<IndexEntry>()
  /** Creations in progress, by key: a second `ensure` of the key waits for the first. */
  readonly #creating = new Map<string, Promise<SessionRow>>()
  readonly #flushes = new Map<string, Promise<void>>()
  /** How long the agent's last index write took, in ms (see #flush). */
  readonly #writeMs = new Map<string, number>()
  /** Journals being emptied after an index write took their lines in. */
  readonly #compactions = new Set<Promise<void>>()
  /** Each transcript's size when its row's time and preview last matched it (see #refreshGrown). */
  readonly #seen = new Map<string, number>()
  #opening: Promise<void> | undefined
  #lock: DirectoryLock | undefined
  #logger: StoreContext['logger'] | undefined

  constructor (options: FileStoreOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new InvalidInputError('FileStore needs a dir')
    this.dir = resolve(options.dir)
    this.#layer = { root: this.dir, openFile: options.openFile ?? openFile, fsync: options.fsync ?? true }
    this.#files = new TranscriptFiles(this.#layer)
    this.#records = new FileRecords(this.#layer, this.#files)
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 10_000
  }

  /**
   * Takes the directory for this process (`FSG_STORE_LOCKED`, naming the holder, when
   * another has it), takes in the sessions a crash left in the journals, and reports
   * every index it cannot read through `logger`. The gateway calls it when it starts;
   * every other method calls it first, so a store used on its own works too.
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
      const entry = await this.#entry(agentId, key)
      if (entry !== undefined) return this.#row(key, agentId, entry)
    }
    return undefined
  }

  async findBySessionId (sessionId: string): Promise<SessionRow | undefined> {
    await this.open()
    for (const agentId of await this.#agents()) {
      for (const [key, entry] of await this.#entries(agentId).catch(skipDamaged)) {
        if (entry.sessionId === sessionId) return this.#row(key, agentId, entry)
      }
    }
    return undefined
  }

  async ensure (key: string, agentId: string): Promise<SessionRow> {
    const existing = await this.get(key)
    if (existing !== undefined) return existing
    const agent = checkAgentId(agentOfKey(key) ?? agentId)
    // A creation is in #creating from its start until it is pending (which `get` sees):
    // a second ensure of the key finds one or the other.
    const creating = this.#creating.get(key)
    if (creating !== undefined) return await creating
    const created = this.#create(key, agent).finally(() => this.#creating.delete(key))
    this.#creating.set(key, created)
    return await created
  }

  async list (query: ListQuery): Promise<ListPage> {
    await this.open()
    const rows: SessionRow[] = []
    for (const agentId of await this.#agents()) {
      if (query.agentId !== undefined && query.agentId !== agentId) continue
      // An agent whose index cannot be read is left out (and logged): the others are listed.
      for (const [key, entry] of await this.#entries(agentId).catch(skipDamaged)) rows.push(this.#row(key, agentId, entry))
    }
    return listRows(await Promise.all(rows.map(async row => await this.#refreshGrown(row))), query)
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
      await this.#records.deleteSession(key)
      return true
    }
    return false
  }

  async append (key: string, entries: TranscriptEntry[]): Promise<void> {
    const row = await this.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    const path = this.#transcriptPath(row.agentId, checkSessionId(row.sessionId))
    this.#seen.set(path, await this.#files.append(path, entries))
    // The lines are durable now; the index only orders and labels the list, so it follows a moment later.
    this.#touch(row.agentId, key, row.updatedAt, previewOf(entries))
  }

  async read (key: string, query: ReadQuery): Promise<ReadPage> {
    const row = await this.get(key)
    if (row === undefined) throw new SessionNotFoundError(key)
    const sessionId = query.sessionId ?? row.sessionId
    if (sessionId !== row.sessionId) {
      const entry = await this.#entry(row.agentId, key)
      if (!(entry?.gatewayGenerations ?? []).includes(sessionId)) throw new SessionNotFoundError(`${key} (generation ${sessionId})`)
    }
    const end = query.before === undefined ? undefined : byteOffset(query.before)
    const page = await readTail(this.#transcriptPath(row.agentId, checkSessionId(sessionId)), query.limit, end)
    return page.before === undefined ? { entries: page.entries } : { entries: page.entries, before: String(page.before) }
  }

  async putRecord (kind: string, id: string, value: unknown, options: RecordOptions = {}): Promise<void> {
    await this.open()
    await this.#records.put(kind, id, value, options)
  }

  async getRecord (kind: string, id: string): Promise<unknown> {
    await this.open()
    return await this.#records.get(kind, id)
  }

  async sweepRecords (now: number, limit: number): Promise<number> {
    await this.open()
    return await this.#records.sweep(now, limit)
  }

  /** Writes what is still pending, waits for this process's writes to finish, and gives the directory back. */
  async close (): Promise<void> {
    await Promise.allSettled([...this.#flushes.values()])
    // A flush that failed (a lock held too long by another process) gets one more try.
    for (const agentId of new Set([...this.#touches.keys(), ...this.#creations.keys()])) this.#flush(agentId)
    await Promise.allSettled([...this.#flushes.values(), ...this.#writes.values()])
    await Promise.allSettled([...this.#compactions])
    await this.#files.closeAll()
    const lock = this.#lock
    this.#lock = undefined
    this.#opening = undefined
    await lock?.release()
  }

  // ── opening ────────────────────────────────────────────────────────────────

  async #start (): Promise<void> {
    const lock = await DirectoryLock.acquire(this.#layer)
    try {
      for (const agentId of await this.#agents()) {
        let index: Index
        try {
          // Read now, so a damaged index is reported when the gateway starts, not at its first use.
          index = await this.#index(agentId)
        } catch (err) {
          skipDamaged(err)
          continue
        }
        await this.#recover(agentId, index)
      }
    } catch (err) {
      await lock.release() // not opened: the next call starts over
      throw err
    }
    this.#lock = lock
  }

  /** Takes in the sessions a crash left in the agent's journal, and empties it. */
  async #recover (agentId: string, index: Index): Promise<void> {
    const journal = this.#journalPath(agentId)
    const creations = await readJournal(journal)
    if (creations.length === 0) return
    for (const { key, entry } of creations) {
      // Not if the key has an entry (the index took it in before the crash), nor if its
      // transcript is gone (the session was deleted, and archived, since).
      if (entryOf(index, key) !== undefined) continue
      if (!await stat(this.#transcriptPath(agentId, entry.sessionId)).then(() => true, () => false)) continue
      this.#pending(agentId).set(key, entry)
    }
    await this.#update(agentId, async () => {})
    await this.#compact(agentId)
  }

  // ── creating sessions ──────────────────────────────────────────────────────

  /**
   * A new session costs what a turn's append costs, however large the index: its
   * transcript, one journal line, and one flush of the folder that now names both.
   * `sessions.json` takes it in with the next batched index write.
   */
  async #create (key: string, agentId: string): Promise<SessionRow> {
    const sessionId = randomUUID()
    await this.#startTranscript(agentId, sessionId)
    const now = Date.now()
    const entry: IndexEntry = { sessionId, updatedAt: now, createdAt: now }
    const pending = this.#pending(agentId)
    pending.set(key, entry) // before its journal line: a journal emptied meanwhile keeps it
    // ...but no index write takes it in before that line is durable: the creation may still fail.
    this.#journaling.add(entry)
    try {
      await this.#files.append(this.#journalPath(agentId), [{ key, entry }])
      if (this.#layer.fsync) await syncFolder(this.#layer, this.#sessionsDir(agentId))
    } catch (err) {
      if (pending.get(key) === entry) pending.delete(key)
      throw err
    } finally {
      this.#journaling.delete(entry)
    }
    this.#flush(agentId)
    return toRow(key, agentId, entry)
  }

  #pending (agentId: string): Map<string, IndexEntry> {
    let pending = this.#creations.get(agentId)
    if (pending === undefined) {
      pending = new Map()
      this.#creations.set(agentId, pending)
    }
    return pending
  }

  /** Puts the agent's pending creations into `index`, about to be written; returns what it put. */
  #takeIn (agentId: string, index: Index): Map<string, IndexEntry> {
    const taken = new Map([...this.#creations.get(agentId) ?? []].filter(([, entry]) => !this.#journaling.has(entry)))
    for (const [key, entry] of taken) {
      const there = entryOf(index, key)
      // Someone else (OpenClaw) created the key meanwhile: theirs stays current, ours stays readable.
      if (there === undefined) index[key] = { ...entry }
      else if (there.sessionId !== entry.sessionId) index[key] = { ...there, gatewayGenerations: [...(there.gatewayGenerations ?? []), entry.sessionId] }
    }
    return taken
  }

  /** After the index write that took `taken` in: they are no longer pending, and the journal can lose their lines. */
  #tookIn (agentId: string, taken: Map<string, IndexEntry>): void {
    if (taken.size === 0) return
    const pending = this.#pending(agentId)
    for (const [key, entry] of taken) if (pending.get(key) === entry) pending.delete(key)
    if (pending.size === 0) this.#creations.delete(agentId)
    const compaction = this.#compact(agentId)
    this.#compactions.add(compaction)
    void compaction.then(() => this.#compactions.delete(compaction))
  }

  /** Leaves in the agent's journal only what is still pending (created while the index was written). */
  async #compact (agentId: string): Promise<void> {
    const lines = (): Array<{ key: string, entry: IndexEntry }> => [...this.#creations.get(agentId) ?? []].map(([key, entry]) => ({ key, entry }))
    // A journal that could not be emptied keeps lines the index has: longer, never wrong (see #recover).
    await this.#files.replace(this.#journalPath(agentId), lines).catch(() => {})
  }

  // ── touches: index updates that follow appends ─────────────────────────────

  #touchesOf (agentId: string): Map<string, Touch> {
    let touches = this.#touches.get(agentId)
    if (touches === undefined) {
      touches = new Map()
      this.#touches.set(agentId, touches)
    }
    return touches
  }

  #touch (agentId: string, key: string, updatedAt: number, preview: string | undefined): void {
    const touches = this.#touchesOf(agentId)
    const earlier = touches.get(key)
    // A new object each time: a flush clears only the touches it wrote (see #flush).
    touches.set(key, {
      updatedAt: Math.max(Date.now(), updatedAt + 1, (earlier?.updatedAt ?? 0) + 1),
      preview: preview ?? earlier?.preview
    })
    this.#flush(agentId)
  }

  /** Schedules one index write for the agent's touches and creations (and every one made until it runs). */
  #flush (agentId: string): void {
    if (this.#flushes.has(agentId)) return
    let written = new Map<string, Touch>()
    // A short wait gathers the touches of many turns (and sessions) into one write. A large
    // index waits longer, so that rewriting it takes at most a ninth of the time.
    const delay = Math.max(INDEX_FLUSH_DELAY_MS, 8 * (this.#writeMs.get(agentId) ?? 0))
    const flush = sleep(delay).then(async () => await this.#update(agentId, async index => {
      this.#flushes.delete(agentId) // touches from now on need a write of their own
      written = new Map(this.#touches.get(agentId))
      for (const [key, touch] of written) {
        const entry = entryOf(index, key)
        if (entry === undefined) continue
        index[key] = {
          ...entry,
          updatedAt: Math.max(entry.updatedAt, touch.updatedAt),
          ...(touch.preview === undefined ? {} : { lastMessagePreview: touch.preview })
        }
      }
    })).then(() => {
      // Only now is the index on disk (and in the cache) newer than these touches.
      const touches = this.#touches.get(agentId) ?? new Map<string, Touch>()
      for (const [key, touch] of written) if (touches.get(key) === touch) touches.delete(key)
      if (touches.size === 0) this.#touches.delete(agentId)
    }, () => {
      this.#flushes.delete(agentId) // kept for the next flush (close() tries again)
    })
    this.#flushes.set(agentId, flush)
  }

  /**
   * The row, or, when another writer (OpenClaw sharing the directory) appended to its
   * transcript since the row was last made, the row as the transcript now says: its time,
   * and the preview of its newest message (OpenClaw's own user text as OpenClaw shows it),
   * kept in the index too. Grown means a size other than the one this process last knew,
   * or, for a transcript it never knew, a time later than the row's. One `stat` per
   * transcript; only a grown one is read, and only its tail.
   */
  async #refreshGrown (row: SessionRow): Promise<SessionRow> {
    const path = this.#transcriptPath(row.agentId, row.sessionId)
    try {
      const { size, mtimeMs } = await stat(path)
      const changedAt = Math.floor(mtimeMs)
      const seen = this.#seen.get(path)
      if (seen === undefined ? changedAt <= row.updatedAt : size === seen) return row
      const { entries } = await readTail(path, REFRESH_TAIL)
      this.#seen.set(path, size)
      const preview = previewOf(entries.map(entry => entry.runId === undefined && entry.message?.role === 'user' ? { ...entry, message: withoutInboundMetadata(entry.message) } : entry))
      const updatedAt = Math.max(row.updatedAt, changedAt)
      this.#note(row.agentId, row.key, updatedAt, preview)
      return { ...row, updatedAt, ...(preview === undefined ? {} : { preview }) }
    } catch {
      // No transcript yet (a session created and never used), or one that cannot be read now: the row as it is.
      return row
    }
  }

  /** Like a touch, but at a given time (when another writer appended), not now. */
  #note (agentId: string, key: string, updatedAt: number, preview: string | undefined): void {
    const touches = this.#touchesOf(agentId)
    const earlier = touches.get(key)
    touches.set(key, { updatedAt: Math.max(updatedAt, earlier?.updatedAt ?? 0), preview: preview ?? earlier?.preview })
    this.#flush(agentId)
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

  #journalPath (agentId: string): string {
    return join(this.#sessionsDir(agentId), JOURNAL_FILE)
  }

  async #startTranscript (agentId: string, sessionId: string): Promise<void> {
    await mkdir(this.#sessionsDir(agentId), { recursive: true, mode: 0o700 })
    await this.#files.append(this.#transcriptPath(agentId, sessionId), [sessionHeader(sessionId)])
  }

  /** The entry for `key`: a creation not written yet, or the index's. */
  async #entry (agentId: string, key: string): Promise<IndexEntry | undefined> {
    const index = await this.#index(agentId)
    return this.#creations.get(agentId)?.get(key) ?? entryOf(index, key)
  }

  /** Every entry of the agent: the index's, then the creations not written yet. */
  async #entries (agentId: string): Promise<Array<[string, IndexEntry]>> {
    const index = await this.#index(agentId)
    const pending = this.#creations.get(agentId) ?? new Map<string, IndexEntry>()
    return [...entriesOf(index)].filter(([key]) => !pending.has(key)).concat([...pending])
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
   * Changes one agent's index: under the lock, from what is on disk right now with the
   * creations not written yet, then written back atomically. `change` gets a copy of the
   * index it may add keys to and delete keys from; an entry it changes it must replace
   * (`index[key] = { ...entry, … }`), never change in place: the cached index is shared
   * with readers, and is only replaced once the write is done. A change that replaced
   * nothing writes nothing.
   */
  async #update<T> (agentId: string, change: (index: Index) => Promise<T>): Promise<T> {
    const previous = this.#writes.get(agentId) ?? Promise.resolve()
    const next = previous.catch(() => {}).then(async () => {
      const folder = this.#sessionsDir(agentId)
      await mkdir(folder, { recursive: true, mode: 0o700 })
      const path = join(folder, 'sessions.json')
      return await withFileLock(this.#layer, `${path}.lock`, this.#lockTimeoutMs, async () => {
        // The cached index when the file is still the one we read (under the lock, so it stays so).
        const base = await this.#index(agentId)
        const index = { ...base }
        const taken = this.#takeIn(agentId, index)
        const result = await change(index)
        if (replacedAny(base, index)) {
          const started = performance.now()
          // Flushes the folder too, and with it the entry of a transcript `change` just created there.
          await replaceFile(this.#layer, path, JSON.stringify(index, null, 2))
          const info = await stat(path)
          this.#cache.set(agentId, { stamp: `${info.ino}:${info.size}:${info.mtimeMs}`, index })
          this.#writeMs.set(agentId, performance.now() - started)
        }
        this.#tookIn(agentId, taken)
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
        const found = entryOf(index, key)
        if (found === undefined) return undefined
        const entry = { ...found }
        await change(entry, agentId)
        index[key] = entry
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

/** Whether `after` has a key `before` has not, lacks one it has, or holds another object for one (O(keys), no serializing). */
function replacedAny (before: Index, after: Index): boolean {
  const keys = Object.keys(after)
  return keys.length !== Object.keys(before).length || keys.some(key => after[key] !== before[key])
}

/** For reads across agents: an index that cannot be read (reported already) counts as empty. */
function skipDamaged (err: unknown): never[] {
  if (err instanceof StoreCorruptError) return []
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

function byteOffset (before: string): number {
  const offset = Number(before)
  if (!/^\d+$/.test(before) || !Number.isSafeInteger(offset)) throw new InvalidCursorError(before.slice(0, 80))
  return offset
}
