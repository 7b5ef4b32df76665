import { open, readFile, stat, unlink } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreBusyError } from '../errors.js'

// A lock file shared by every process that opens the same directory: created with
// O_EXCL (only one creator wins), holding the owner's pid. A lock whose owner is dead,
// or that is older than `STALE_MS` (a hung owner), is broken.

/** A lock older than this is abandoned, whoever holds it: no index write takes that long. */
const STALE_MS = 30_000

/** Runs `fn` holding the lock at `path`; waits at most `timeoutMs` for it. */
export async function withFileLock<T> (path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await acquire(path, timeoutMs)
  try {
    return await fn()
  } finally {
    await unlink(path).catch(() => {})
  }
}

async function acquire (path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    try {
      const handle = await open(path, 'wx', 0o600)
      await handle.writeFile(String(process.pid))
      await handle.close()
      return
    } catch (err) {
      /* c8 ignore next: a folder we may not write to (tests run as root, who always may) */
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (await abandoned(path)) {
      await unlink(path).catch(() => {})
      continue
    }
    if (Date.now() > deadline) throw new StoreBusyError(path)
    await sleep(wait + Math.random() * wait)
  }
}

async function abandoned (path: string): Promise<boolean> {
  try {
    const info = await stat(path)
    if (Date.now() - info.mtimeMs > STALE_MS) return true
    const pid = Number(await readFile(path, 'utf8'))
    // An empty file is a lock being written right now, not an abandoned one.
    if (!Number.isSafeInteger(pid) || pid <= 0) return false
    return !alive(pid)
  /* c8 ignore next 3: the owner unlinked it between our open() and this look, a race no test can time */
  } catch {
    return false // gone already: the next try will tell
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
