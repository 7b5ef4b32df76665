import { readFile, stat, unlink } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreBusyError } from '../errors.js'
import { writeFailed, type FileLayer } from './file-layer.js'

// A lock file shared by every process that opens the same index (OpenClaw takes the same
// one): created with O_EXCL (only one creator wins), holding its owner as OpenClaw writes
// it, `{"pid":…,"createdAt":…}`. A lock is broken when its owner is dead, when it names no
// owner at all (empty or unreadable: a writer that crashed, or whose disk filled, between
// creating it and writing in it) once it is a moment old, and when it is older than
// `STALE_MS` whoever holds it (a hung owner).

/** A lock older than this is abandoned, whoever holds it: no index write takes that long. */
const STALE_MS = 30_000
/** A lock that names no owner is abandoned once this old: its creator fills it right after creating it. */
export const UNNAMED_GRACE_MS = 1000

/** Runs `fn` holding the lock at `path`; waits at most `timeoutMs` for it. */
export async function withFileLock<T> (layer: FileLayer, path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await acquire(layer, path, timeoutMs)
  try {
    return await fn()
  } finally {
    await unlink(path).catch(() => {})
  }
}

async function acquire (layer: FileLayer, path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    if (await writeLockFile(layer, path, JSON.stringify({ pid: process.pid, createdAt: new Date().toISOString() }))) return
    const owner = await inspect(path)
    if (owner.abandoned) {
      await unlink(path).catch(() => {})
      continue
    }
    if (Date.now() > deadline) throw new StoreBusyError(owner.pid === undefined ? path : `${path} (held by pid ${owner.pid})`)
    await sleep(wait + Math.random() * wait)
  }
}

/** Creates a lock file holding `content` (its owner): true when it is ours, false when it exists already. */
export async function writeLockFile (layer: FileLayer, path: string, content: string): Promise<boolean> {
  let handle
  try {
    handle = await layer.openFile(path, 'wx', 0o600)
  } catch (err) {
    /* c8 ignore next: a folder we may not write to (tests run as root, who always may) */
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return false
  }
  try {
    await handle.writeFile(content)
    await handle.close()
    return true
  } catch (err) {
    // A lock without its owner in it would stop every writer: take it away again.
    await handle.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw writeFailed(layer, path, err)
  }
}

async function inspect (path: string): Promise<{ abandoned: boolean, pid?: number }> {
  try {
    const info = await stat(path)
    const age = Date.now() - info.mtimeMs
    if (age > STALE_MS) return { abandoned: true }
    const pid = ownerPid(await readFile(path, 'utf8'))
    if (pid === undefined) return { abandoned: age > UNNAMED_GRACE_MS }
    return { abandoned: !processAlive(pid), pid }
  /* c8 ignore next 3: the owner unlinked it between our open() and this look, a race no test can time */
  } catch {
    return { abandoned: false } // gone already: the next try will tell
  }
}

/** The pid in a lock: OpenClaw's JSON (and ours), or a bare number (what we wrote before). */
function ownerPid (text: string): number | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  const pid = typeof value === 'object' && value !== null ? (value as { pid?: unknown }).pid : value
  return typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
