// A real redis-server for a test file: started on a free 127.0.0.1 port, stopped by pid at
// teardown. A machine without it fails the test with a message saying how to install it:
// it is never skipped silently.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { freePort } from './free-port.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export interface RedisServer {
  url: string
  port: number
  /** A client of the test's, closed at teardown. */
  client: () => Redis
  /** kill -9, and start again on the same port (and the same data, when it persists). */
  restart: () => Promise<void>
  kill: () => Promise<void>
  start: () => Promise<void>
}

const BINARY = 'redis-server'

export function requireRedis (): void {
  const found = spawnSync(BINARY, ['--version'], { encoding: 'utf8' })
  if (found.error !== undefined || found.status !== 0) {
    throw new Error(`${BINARY} was not found: install it (Debian: apt-get update && apt-get install -y redis-server); .ci/run does this on CI`)
  }
}

/**
 * Starts redis-server; `aof` makes it persist every write (appendfsync everysec) in a temp
 * dir; `args` are more command-line options (`['--cluster-enabled', 'yes']`, say).
 */
export async function startRedis (t: { teardown: (fn: () => unknown) => void }, options: { aof?: boolean, args?: string[] } = {}): Promise<RedisServer> {
  requireRedis()
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'fsg-redis-'))
  let child: ChildProcess | undefined
  const clients: Redis[] = []
  const start = async (): Promise<void> => {
    child = spawn(BINARY, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir,
      '--appendonly', options.aof === true ? 'yes' : 'no', '--appendfsync', 'everysec',
      '--enable-debug-command', 'local', '--maxmemory-policy', 'noeviction', ...options.args ?? []
    ], { stdio: 'ignore' })
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {}) // not up yet: tried again below
    for (let i = 0; i < 200; i++) {
      try {
        await probe.connect()
        await probe.ping()
        break
      } catch {
        probe.disconnect()
        await sleep(25)
      }
    }
    probe.disconnect()
  }
  const kill = async (): Promise<void> => {
    const running = child
    // Already gone: killed before (a signal leaves exitCode null), or exited.
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    running.kill('SIGKILL')
    await once(running, 'exit')
  }
  await start()
  t.teardown(async () => {
    for (const client of clients) client.disconnect()
    await kill()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    client: () => {
      const client = new Redis({ port, host: '127.0.0.1' })
      clients.push(client)
      return client
    },
    restart: async () => {
      await kill()
      await start()
    },
    kill,
    start
  }
}
