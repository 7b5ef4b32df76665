import { open } from 'node:fs/promises'
import type { TranscriptEntry } from '../transcript.js'

// OpenClaw's transcript files: one JSON object per line, a `session` header first.
// Writes are whole lines in one write() call; reads go backwards from the end, so the
// newest entries cost the same however long the file is.

const NEWLINE = 0x0a
const CHUNK = 64 * 1024

/**
 * Appends entries as lines. A torn last line (a crash mid-write) is closed off first,
 * so the new lines start fresh and the torn one stays the only casualty.
 */
export async function appendLines (path: string, entries: readonly unknown[], fsync: boolean): Promise<void> {
  const handle = await open(path, 'a+', 0o600)
  try {
    const { size } = await handle.stat()
    let text = ''
    if (size > 0) {
      const last = Buffer.alloc(1)
      await handle.read(last, 0, 1, size - 1)
      if (last[0] !== NEWLINE) text = '\n'
    }
    for (const entry of entries) text += JSON.stringify(entry) + '\n'
    await handle.write(text)
    if (fsync) await handle.datasync()
  } finally {
    await handle.close()
  }
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
