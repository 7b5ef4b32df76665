// A real PostgreSQL for a test file: a throwaway cluster (initdb into a temp dir), started
// with pg_ctl on a free 127.0.0.1 port, stopped by its pid at teardown. initdb refuses to
// run as root, so as root the cluster belongs to the `postgres` user the Debian package
// makes. A machine without PostgreSQL fails the test with a message saying how to install
// it: it is never skipped silently.
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises'
import { freePort } from './free-port.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import pg from 'pg'

export interface PostgresServer {
  url: string
  port: number
  /** A pool of the test's, ended at teardown. */
  pool: (max?: number) => pg.Pool
}

const INSTALL = 'install it (Debian: apt-get update && apt-get install -y postgresql); .ci/run does this on CI'

/** The folder with initdb, pg_ctl and postgres: on PATH, or Debian's newest /usr/lib/postgresql/<version>/bin. */
export function postgresBin (): string {
  const onPath = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' })
  const candidates = [
    ...(onPath.status === 0 ? [onPath.stdout.trim()] : []),
    ...(existsSync('/usr/lib/postgresql')
      ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)).map(version => `/usr/lib/postgresql/${version}/bin`)
      : [])
  ]
  const found = candidates.find(dir => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')))
  if (found === undefined) throw new Error(`PostgreSQL (initdb, pg_ctl) was not found: ${INSTALL}`)
  return found
}

/** Runs a PostgreSQL program as the cluster's owner: the `postgres` user when we are root. */
async function runAs (program: string, args: string[]): Promise<void> {
  const [command, all] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args]
  await promisify(execFile)(command as string, all as string[], { timeout: 60_000 })
}

/**
 * Starts a cluster; `fsync: false` (the default, for tests) trades crash safety for speed,
 * which no test here needs; commits are still commits.
 */
export async function startPostgres (t: { teardown: (fn: () => unknown) => void }, options: { fsync?: boolean } = {}): Promise<PostgresServer> {
  const bin = postgresBin()
  const dir = await mkdtemp(join(tmpdir(), 'fsg-pg-'))
  const data = join(dir, 'data')
  const pools: pg.Pool[] = []
  let pid: number | undefined
  t.teardown(async () => {
    await Promise.allSettled(pools.map(async pool => { await pool.end() }))
    if (pid !== undefined) await stop(pid)
    await rm(dir, { recursive: true, force: true })
  })
  if (process.getuid?.() === 0) {
    const owner = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
    if (owner.status !== 0) throw new Error(`there is no postgres user to own the test cluster (initdb refuses root): ${INSTALL}`)
    const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
    await chown(dir, Number(owner.stdout), Number(group.stdout))
  }
  await runAs(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
  const port = await freePort()
  const settings = [
    `-p ${port}`, '-c listen_addresses=127.0.0.1', "-c unix_socket_directories=''",
    `-c fsync=${options.fsync === true ? 'on' : 'off'}`, '-c max_connections=100'
  ]
  await runAs(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', settings.join(' '), '-w', '-t', '60', 'start'])
  // The postmaster's pid is the first line of postmaster.pid: the teardown stops it by that.
  pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0])
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  return {
    url,
    port,
    pool: (max = 10) => {
      const pool = new pg.Pool({ connectionString: url, max })
      pool.on('error', () => {})
      pools.push(pool)
      return pool
    }
  }
}

/** A fast shutdown (SIGINT), then SIGKILL if it has not exited within 10 s. */
async function stop (pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  if (!alive()) return
  process.kill(pid, 'SIGINT')
  for (let i = 0; i < 200 && alive(); i++) await sleep(50)
  if (alive()) process.kill(pid, 'SIGKILL')
}
