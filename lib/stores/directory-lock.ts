import { mkdir, readFile, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { StoreLockedError } from '../errors.js'
import type { FileLayer } from './file-layer.js'
import { processAlive, UNNAMED_GRACE_MS, writeLockFile } from './file-lock.js'

// One process per data directory. The hub keeps each session's lane, event log and cursor
// in the memory of its process; two processes on one directory would each run their own
// (turns interleaved, duplicate seqs, a cursor that silently misses the other's rows). So a
// file store holds `<dir>/session-gateway.lock` for its whole life, naming its process and
// host, and a second store on the same directory, in this process or another, is refused
// with that name. The lock is released on close and broken when its process is dead.

export const DIRECTORY_LOCK = 'session-gateway.lock'

/** Directories held by a store of this process (a lock naming this pid that is not here is a previous life's). */
const held = new Set<string>()

interface Holder {
  pid?: number
  host?: string
  createdAt?: string
}

export class DirectoryLock {
  readonly path: string
  readonly #content: string

  private constructor (path: string, content: string) {
    this.path = path
    this.#content = content
  }

  /** Takes the directory (created if missing), or throws `FSG_STORE_LOCKED` naming who has it. */
  static async acquire (layer: FileLayer): Promise<DirectoryLock> {
    await mkdir(layer.root, { recursive: true, mode: 0o700 })
    const path = join(layer.root, DIRECTORY_LOCK)
    // A few tries: each is lost only to another process taking or breaking the lock meanwhile.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (held.has(path)) throw locked(layer.root, 'it is already open in this process (one FileStore per directory: share that one)')
      const content = JSON.stringify({ pid: process.pid, host: hostname(), createdAt: new Date().toISOString() })
      if (await writeLockFile(layer, path, content)) {
        held.add(path)
        return new DirectoryLock(path, content)
      }
      await breakIfAbandoned(layer.root, path)
    }
    /* c8 ignore start: three lost races in a row with other processes, a race no test can time */
    throw locked(layer.root, `another process keeps taking ${path}`)
  }
  /* c8 ignore stop */

  /** Gives the directory back (only if the lock is still ours). */
  async release (): Promise<void> {
    held.delete(this.path)
    const now = await readFile(this.path, 'utf8').catch(() => undefined)
    if (now === this.#content) await unlink(this.path).catch(() => {})
  }
}

/** Removes the lock if nobody holds it any more; else throws `FSG_STORE_LOCKED` naming the holder. */
async function breakIfAbandoned (dir: string, path: string): Promise<void> {
  let before
  let holder: Holder
  try {
    before = await stat(path)
    holder = parse(await readFile(path, 'utf8'))
  /* c8 ignore start: the holder let go between our open() and this look, a race no test can time */
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  /* c8 ignore stop */
  const since = holder.createdAt === undefined ? '' : `, since ${holder.createdAt}`
  if (holder.pid === undefined) {
    // Its creator crashed (or its disk filled) before naming itself.
    if (Date.now() - before.mtimeMs <= UNNAMED_GRACE_MS) throw locked(dir, `another process is opening it right now (${path} names no process yet)`)
  } else if (holder.host !== hostname()) {
    throw locked(dir, `it is in use by a gateway process on another host: pid ${holder.pid} on ${holder.host ?? 'an unnamed host'}${since}. ` +
      `Stop that one, or give this one its own directory; several processes need the Redis session log and a store they share. If that process is gone, delete ${path}`)
  } else if (holder.pid !== process.pid && processAlive(holder.pid)) {
    // (Our own pid, not held here: a previous run that had this pid, as pid 1 in a restarted container.)
    throw locked(dir, `it is in use by another gateway process: pid ${holder.pid} on ${holder.host}${since}. ` +
      'Stop that one, or give this one its own directory; several processes need the Redis session log and a store they share')
  }
  // Abandoned. Unlinked only if it is still the file we looked at, not one taken meanwhile.
  const now = await stat(path).catch(() => undefined)
  if (now?.ino === before.ino && now.mtimeMs === before.mtimeMs) await unlink(path).catch(() => {})
}

function parse (text: string): Holder {
  try {
    const value = JSON.parse(text) as Holder | null
    if (typeof value?.pid === 'number' && Number.isSafeInteger(value.pid) && value.pid > 0) return value
  } catch {}
  return {}
}

function locked (dir: string, why: string): InstanceType<typeof StoreLockedError> {
  return new StoreLockedError(`The file store cannot open ${dir}: ${why}.`)
}
