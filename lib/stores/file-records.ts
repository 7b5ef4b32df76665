import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidInputError } from '../errors.js'
import { replaceFile, syncFolder, type FileLayer } from './file-layer.js'
import type { TranscriptFiles } from './jsonl.js'
import { expired, RECORD_ID_PATTERN, type RecordOptions } from './store.js'

// The file store's records, in a folder of its own beside OpenClaw's files:
//
//     records/<kind>/<id>.json              { value, sessionKey?, expiresAt? }
//     records/sessions/<sha256 of key>.jsonl  the records put with that session key, a { kind, id } a line
//     records/expiry/<hour>.jsonl           the records that expire in that hour (ms since the epoch / 3600000)
//
// Both lists are written before the record, so they never miss a record that exists; a
// line whose record is gone is skipped. A delete reads its session's list, not every
// record; a sweep reads the lists of hours that have begun, and drops those that are over.

const HOUR = 3_600_000

interface StoredRecord extends RecordOptions {
  value: unknown
}

interface RecordName {
  kind: string
  id: string
}

export class FileRecords {
  readonly #layer: FileLayer
  readonly #files: TranscriptFiles
  readonly #root: string

  constructor (layer: FileLayer, files: TranscriptFiles) {
    this.#layer = layer
    this.#files = files
    this.#root = join(layer.root, 'records')
  }

  async put (kind: string, id: string, value: unknown, options: RecordOptions): Promise<void> {
    const path = this.#path(kind, id)
    if (options.sessionKey !== undefined) await this.#list('sessions', sessionList(options.sessionKey), { kind, id })
    if (options.expiresAt !== undefined) await this.#list('expiry', `${Math.floor(options.expiresAt / HOUR)}.jsonl`, { kind, id })
    await mkdir(join(this.#root, kind), { recursive: true, mode: 0o700 })
    await replaceFile(this.#layer, path, JSON.stringify({ ...options, value }))
  }

  async get (kind: string, id: string): Promise<unknown> {
    const record = await this.#read(kind, id)
    return record === undefined || expired(record, Date.now()) ? undefined : record.value
  }

  /** Removes the records put with `key`, then their list. */
  async deleteSession (key: string): Promise<void> {
    const list = join(this.#root, 'sessions', sessionList(key))
    for (const { kind, id } of await readNames(list)) await removeFile(this.#path(kind, id))
    await this.#files.forget(list)
    await removeFile(list)
  }

  async sweep (now: number, limit: number): Promise<number> {
    const folder = join(this.#root, 'expiry')
    const names = await readdir(folder).catch(absentAs([]))
    const hours = names.map(name => Number.parseInt(name, 10)).filter(hour => hour * HOUR <= now).sort((a, b) => a - b)
    let swept = 0
    for (const hour of hours) {
      const list = join(folder, `${hour}.jsonl`)
      for (const { kind, id } of await readNames(list)) {
        if (swept === limit) return swept
        const record = await this.#read(kind, id)
        // Gone already, or put again since with a later expiry (it is on that hour's list too).
        if (record === undefined || !expired(record, now)) continue
        await removeFile(this.#path(kind, id))
        swept++
      }
      if ((hour + 1) * HOUR > now) continue
      // The hour is over: whatever its list named has been swept or lives on a later list.
      await this.#files.forget(list)
      await removeFile(list)
    }
    return swept
  }

  #path (kind: string, id: string): string {
    return join(this.#root, checkRecordId(kind), `${checkRecordId(id)}.json`)
  }

  async #read (kind: string, id: string): Promise<StoredRecord | undefined> {
    const text = await readText(this.#path(kind, id))
    if (text === '') return undefined
    const stored = JSON.parse(text) as StoredRecord
    // A record written before records had a session and an expiry is the value alone: it
    // stays readable (and is on no list, so nothing sweeps it).
    return typeof stored === 'object' && stored !== null && Object.hasOwn(stored, 'value') ? stored : { value: stored }
  }

  /** Adds a line to a list, durably: a list file just made is named in its folder once that folder is flushed. */
  async #list (folder: string, file: string, name: RecordName): Promise<void> {
    const dir = join(this.#root, folder)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const size = await this.#files.append(join(dir, file), [name])
    if (this.#layer.fsync && size === Buffer.byteLength(JSON.stringify(name) + '\n')) await syncFolder(this.#layer, dir)
  }
}

/** A session key is not a file name: its hash is. */
function sessionList (key: string): string {
  return `${createHash('sha256').update(key).digest('hex')}.jsonl`
}

/** The names on a list; a line a crash tore is skipped (its record was never written). */
async function readNames (path: string): Promise<RecordName[]> {
  const names: RecordName[] = []
  for (const line of (await readText(path)).split('\n')) {
    try {
      names.push(JSON.parse(line) as RecordName)
    } catch {}
  }
  return names
}

async function readText (path: string): Promise<string> {
  return await readFile(path, 'utf8').catch(absentAs(''))
}

async function removeFile (path: string): Promise<void> {
  await unlink(path).catch(absentAs(undefined))
}

/** A file or folder that is not there reads as `empty`; any other failure is thrown. */
function absentAs<T> (empty: T): (err: NodeJS.ErrnoException) => T {
  return err => {
    if (err.code === 'ENOENT') return empty
    throw err
  }
}

function checkRecordId (id: string): string {
  if (!RECORD_ID_PATTERN.test(id)) throw new InvalidInputError('a record kind or id has unsafe characters')
  return id
}
