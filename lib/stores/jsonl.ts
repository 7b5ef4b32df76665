import { open, type FileHandle } from 'node:fs/promises'
import type { TranscriptEntry } from '../transcript.js'
import { replaceFile, writeFailed, type FileLayer } from './file-layer.js'

// OpenClaw's transcript files: one JSON object per line, a `session` header first.
// Writes are whole lines in one write() call; reads go backwards from the end, so the
// newest entries cost the same however long the file is.

const NEWLINE = 0x0a
const CHUNK = 64 * 1024

interface TranscriptFile {
  /** Set the moment the file is first wanted, so concurrent appends share one `open()`. */
  handle: Promise<FileHandle>
  /** The open failed: the next append tries again. */
  failed: boolean
  /** Where our last append ended; -1 until we know. Equal to the size: nobody else wrote since. */
  end: number
  /** Appends (or replacements) in progress or waiting: a file is closed only when none is. */
  users: number
  /** The last append queued: appends to one file run one at a time, so a failed one can be undone. */
  queue: Promise<void>
}

/**
 * Appends to transcript files through handles kept open (the most recently used `max`),
 * so an append costs a `stat`, a `write` and a flush instead of six system calls.
 * Lines are written whole, in one `write()` on a file opened for appending. A torn last
 * line (a crash mid-write, or another writer's) is closed off first, so the new lines start
 * fresh and the torn one stays the only casualty. An append that does not reach the disk
 * whole (a short write when the disk fills, a failed write or flush) is cut off again,
 * back to where the file ended, and fails with `FSG_STORE_FAILED`: what a caller was told
 * failed is not there, and the next append does not land on half a line.
 */
export class TranscriptFiles {
  readonly #open = new Map<string, TranscriptFile>()
  readonly #layer: FileLayer
  readonly #max: number

  constructor (layer: FileLayer, max = 64) {
    this.#layer = layer
    this.#max = max
  }

  /** Appends the entries; resolves with the file's size after them. */
  async append (path: string, entries: readonly unknown[]): Promise<number> {
    let end = 0
    await this.#exclusive(path, async file => {
      const handle = await file.handle
      const { size } = await handle.stat()
      let text = ''
      // The byte before the end is ours when the file ends where we left it; else look.
      if (size > 0 && size !== file.end) {
        const last = Buffer.alloc(1)
        await handle.read(last, 0, 1, size - 1)
        if (last[0] !== NEWLINE) text = '\n'
      }
      for (const entry of entries) text += JSON.stringify(entry) + '\n'
      const bytes = Buffer.from(text)
      try {
        const { bytesWritten } = await handle.write(bytes, 0, bytes.length)
        if (bytesWritten !== bytes.length) throw new Error(`only ${bytesWritten} of ${bytes.length} bytes were written (is the disk full?)`)
        if (this.#layer.fsync) await handle.datasync()
      } catch (err) {
        // Undo what did get written. Should even that fail, the file no longer ends at `end`,
        // so the next append looks at its last byte and starts a line of its own.
        await handle.truncate(size).catch(() => {})
        file.end = size
        throw writeFailed(this.#layer, path, err)
      }
      file.end = size + bytes.length
      end = file.end
    })
    return end
  }

  /**
   * Makes the file hold exactly `entries()`, asked once no append to it is running (so an
   * append that comes later lands after them). Emptying truncates in place; anything else
   * replaces the file atomically, so a crash leaves either the old lines or the new ones.
   */
  async replace (path: string, entries: () => readonly unknown[]): Promise<void> {
    await this.#exclusive(path, async file => {
      const lines = entries()
      if (lines.length === 0) {
        const handle = await file.handle
        await handle.truncate(0)
        if (this.#layer.fsync) await handle.datasync()
        file.end = 0
        return
      }
      await replaceFile(this.#layer, path, lines.map(line => JSON.stringify(line) + '\n').join(''))
      // The handle still points at the file that was replaced: appends from now on need the new one.
      await close(file)
      file.handle = this.#layer.openFile(path, 'a+', 0o600)
      file.handle.catch(() => { file.failed = true })
      file.end = -1
    })
  }

  /** Closes the file's handle, if open (before the file is renamed away). */
  async forget (path: string): Promise<void> {
    const file = this.#open.get(path)
    if (file === undefined) return
    this.#open.delete(path)
    await close(file)
  }

  async closeAll (): Promise<void> {
    const files = [...this.#open.values()]
    this.#open.clear()
    await Promise.all(files.map(close))
  }

  /** The file's entry, opened now if it is not yet (synchronous: no two opens of one file). */
  #acquire (path: string): TranscriptFile {
    let file = this.#open.get(path)
    if (file === undefined || file.failed) {
      const opening: TranscriptFile = { handle: this.#layer.openFile(path, 'a+', 0o600), failed: false, end: -1, users: 0, queue: Promise.resolve() }
      opening.handle.catch(() => { opening.failed = true })
      file = opening
    }
    // Map order is recency: the file moves to the end.
    this.#open.delete(path)
    this.#open.set(path, file)
    file.users++
    return file
  }

  /** Runs `fn` on the file once every earlier append or replace of it is done, and before any later one starts. */
  async #exclusive (path: string, fn: (file: TranscriptFile) => Promise<void>): Promise<void> {
    const file = this.#acquire(path)
    const previous = file.queue
    let done!: () => void
    file.queue = new Promise(resolve => { done = resolve })
    try {
      await previous
      await fn(file)
    } finally {
      done()
      file.users--
      await this.#trim()
    }
  }

  /** Closes the least recently used handles past `max` that no append is using. */
  async #trim (): Promise<void> {
    const excess = this.#open.size - this.#max
    if (excess <= 0) return
    const idle = [...this.#open].filter(([, file]) => file.users === 0).slice(0, excess)
    for (const [path] of idle) this.#open.delete(path)
    await Promise.all(idle.map(async ([, file]) => await close(file)))
  }
}

/** Closes a file's handle; one that never opened has nothing to close. */
async function close (file: TranscriptFile): Promise<void> {
  await file.handle.then(async handle => await handle.close(), () => {})
}

export interface TailPage {
  /** Oldest first. */
  entries: TranscriptEntry[]
  /** Byte offset of the oldest entry returned, when older entries exist. */
  before?: number
}

/**
 * The newest `limit` entries that end at or before byte `end` (default: the end of the
 * file). Lines that are not JSON objects (a torn write) and the `session` header are skipped.
 * A missing file reads as empty.
 */
export async function readTail (path: string, limit: number, end?: number): Promise<TailPage> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [] }
    throw err
  }
  try {
    const size = (await handle.stat()).size
    let pos = Math.min(end ?? size, size)
    const found: Array<{ offset: number, entry: TranscriptEntry }> = [] // newest first
    const consider = (line: Buffer, offset: number): void => {
      const entry = parseLine(line)
      if (entry !== undefined) found.push({ offset, entry })
    }
    let tail = Buffer.alloc(0) // the start of a line whose beginning is in an earlier chunk
    while (pos > 0 && found.length <= limit) {
      const length = Math.min(CHUNK, pos)
      pos -= length
      const chunk = Buffer.alloc(length)
      await handle.read(chunk, 0, length, pos)
      const buffer = tail.length === 0 ? chunk : Buffer.concat([chunk, tail])
      let lineEnd = buffer.length
      for (let i = buffer.length - 1; i >= 0 && found.length <= limit; i--) {
        if (buffer[i] !== NEWLINE) continue
        consider(buffer.subarray(i + 1, lineEnd), pos + i + 1)
        lineEnd = i
      }
      tail = buffer.subarray(0, lineEnd)
      if (pos === 0 && found.length <= limit) consider(tail, 0)
    }
    const page = found.slice(0, limit).reverse()
    const oldest = page[0]
    return found.length > limit && oldest !== undefined
      ? { entries: page.map(item => item.entry), before: oldest.offset }
      : { entries: page.map(item => item.entry) }
  } finally {
    await handle.close()
  }
}

function parseLine (line: Buffer): TranscriptEntry | undefined {
  if (line.length === 0) return undefined
  let value: unknown
  try {
    value = JSON.parse(line.toString('utf8'))
  } catch {
    return undefined // a torn line: skipped, never fatal
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const entry = value as TranscriptEntry
  return entry.type === 'session' ? undefined : entry
}

/** The first line of every transcript OpenClaw writes. */
export function sessionHeader (sessionId: string): Record<string, unknown> {
  return { type: 'session', version: 3, id: sessionId, timestamp: new Date().toISOString(), cwd: process.cwd() }
}
